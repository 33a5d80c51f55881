/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format/-private fault hook for the unit tests: make reads of a spilled
 * digest table (lp_toc_spill_digests()) fail as a failing disk makes them
 * fail, a given number of times, so that the readers' handling of a
 * transient -EIO (one read fails, the next one succeeds) is tested
 * deterministically. Always 0 outside the tests. Not for use outside
 * format/ and its tests.
 */
#ifndef LP_TOC_FAULT_H
#define LP_TOC_FAULT_H

#include <stdatomic.h>

/*
 * the next this many reads of any spilled digest table fail with -EIO
 * (counted down by each failed read; atomic: any thread may read a table)
 */
extern atomic_uint lp_toc_spill_fail_reads;

#endif /* LP_TOC_FAULT_H */
