/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format/-private fault hook for the unit tests: make reads of a spilled
 * digest table (lp_toc_spill_digests()) fail as a failing disk makes them
 * fail, a given number of times, so that the readers' handling of a
 * transient -EIO (one read fails, the next one succeeds) is tested
 * deterministically, and count the reads. No read fails outside the
 * tests. Not for use outside
 * format/ and its tests.
 */
#ifndef LP_TOC_FAULT_H
#define LP_TOC_FAULT_H

#include <stdatomic.h>

/*
 * every read of a spilled digest table takes the next number of
 * lp_toc_spill_reads (from 0); those numbered in [lp_toc_spill_fail_from,
 * lp_toc_spill_fail_to) fail with -EIO (none by default). Atomic: any
 * thread may read a table. A test sets the window before its reads.
 */
extern atomic_uint lp_toc_spill_reads;
extern atomic_uint lp_toc_spill_fail_from, lp_toc_spill_fail_to;

/* lp_toc_spill_fault() - count reads from 0 on, and fail [@from, @to). */
static inline void lp_toc_spill_fault(unsigned int from, unsigned int to)
{
	atomic_store(&lp_toc_spill_fail_to, 0);
	atomic_store(&lp_toc_spill_reads, 0);
	atomic_store(&lp_toc_spill_fail_from, from);
	atomic_store(&lp_toc_spill_fail_to, to);
}

#endif /* LP_TOC_FAULT_H */
