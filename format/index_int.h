/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gzip index's parser (index.c) hands its stream (index_stream.c):
 * a checkpoint's compressed window. Not included from other modules.
 */
#ifndef LP_INDEX_INT_H
#define LP_INDEX_INT_H

#include "lp_index.h"

/* the @c->window_len bytes of checkpoint @c's compressed window */
const uint8_t *lp_index_window_data(const struct lp_index *ix,
				    const struct lp_index_checkpoint *c);

#endif /* LP_INDEX_INT_H */
