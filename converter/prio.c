// SPDX-License-Identifier: Apache-2.0
/*
 * Prioritised-file lists (being written).
 */
#include "lp_convert.h"
