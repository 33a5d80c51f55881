/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit-test helpers (include after cmocka.h): the TOC's digest accessors
 * (lp_toc_entry_digest(), lp_toc_chunk_digest(), which copy the digest out:
 * a big TOC keeps its digests in a file) as a pointer or NULL, for
 * assertions. A read error of the digest table fails the test. The
 * pointers are to a ring of 8 static copies: enough for the digests of
 * one assertion, not to be kept.
 */
#ifndef LP_TOC_TEST_DIGEST_H
#define LP_TOC_TEST_DIGEST_H

#include "lp_toc.h"

static inline struct lp_digest *toc_test_digest_slot(void)
{
	static struct lp_digest ring[8];
	static unsigned int next;

	return &ring[next++ % 8];
}

/* @e's `digest`, or NULL when the TOC gives none */
static inline const struct lp_digest *edig(const struct lp_toc *toc,
					   const struct lp_toc_entry *e)
{
	struct lp_digest *d = toc_test_digest_slot();
	int r = lp_toc_entry_digest(toc, e, d);

	assert_true(r == 0 || r == 1);
	return r ? d : NULL;
}

/* @c's `chunkDigest`, or NULL when absent */
static inline const struct lp_digest *cdig(const struct lp_toc *toc,
					   const struct lp_toc_chunk *c)
{
	struct lp_digest *d = toc_test_digest_slot();
	int r = lp_toc_chunk_digest(toc, c, d);

	assert_true(r == 0 || r == 1);
	return r ? d : NULL;
}

#endif /* LP_TOC_TEST_DIGEST_H */
