/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format/-private counters of which way lp_layer_open() took, for the unit
 * tests: that a TOC member was inflated in one go (libdeflate), streamed
 * (zlib) or fed to the parse as it was inflated (igzip), hashed on a second thread or before the parse, and whether it was
 * parsed at all, so that a test asserts the path it meant and not only the
 * result (both paths give the same TOC). Counted always (a relaxed atomic
 * add per open); never read outside the tests. Not for use outside format/
 * and its tests.
 */
#ifndef LP_LAYER_PROBE_H
#define LP_LAYER_PROBE_H

#include <stdatomic.h>

struct lp_layer_probe {
	atomic_uint inflated_whole; /* a gzip TOC inflated by libdeflate */
	atomic_uint inflated_zlib; /* a gzip TOC streamed by zlib */
	atomic_uint inflated_fed; /* a big one inflated (igzip) beside its
				     parse, lp_toc_parse_fed() */
	atomic_uint hashed_threaded; /* hashed on a second thread */
	atomic_uint hashed_first; /* hashed, and compared, before the parse */
	atomic_uint parsed; /* lp_toc_parse() calls */
};

extern struct lp_layer_probe lp_layer_probe;

#endif /* LP_LAYER_PROBE_H */
