/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For the tests of format/lp_inflate.h (test_inflate.c, fuzz_inflate.c):
 * the input as a caller keeps it. [next_in, end_in) sits in a buffer of
 * its own, the bytes before it dropped; on LP_INFLATE_INPUT the unconsumed
 * tail moves to the front of a new buffer of just the right size with the
 * next piece after it, and the old buffer is poisoned and freed, so a read
 * past end_in or through a stale pointer shows under ASan or as a wrong
 * byte.
 */
#ifndef LP_INFLATE_FEED_H
#define LP_INFLATE_FEED_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_inflate.h"

struct inflate_feed {
	const uint8_t *src; /* the whole stream */
	size_t len, fed; /* its length; bytes handed to the decoder so far */
	uint8_t *
		buf; /* the buffer next_in points into; NULL before the first */
	uint64_t dropped; /* input bytes before buf */
};

/* the buffer's bytes poisoned, then freed */
static inline void inflate_feed_drop(struct lp_inflate *s,
				     struct inflate_feed *f)
{
	if (!f->buf)
		return;
	f->dropped += (size_t)(s->next_in - f->buf);
	memset(f->buf, 0xa5, (size_t)(s->end_in - f->buf));
	free(f->buf);
	f->buf = NULL;
}

/* the next @add bytes (fewer at the end) behind what is left; last_in
 * once all are in. false: out of memory */
static inline bool inflate_feed_more(struct lp_inflate *s,
				     struct inflate_feed *f, size_t add)
{
	size_t tail = f->buf ? (size_t)(s->end_in - s->next_in) : 0;
	uint8_t *nb;

	if (add > f->len - f->fed)
		add = f->len - f->fed;
	nb = malloc(tail + add ? tail + add : 1);
	if (!nb)
		return false;
	if (tail)
		memcpy(nb, s->next_in, tail);
	if (add)
		memcpy(nb + tail, f->src + f->fed, add);
	inflate_feed_drop(s, f);
	f->buf = nb;
	f->fed += add;
	s->next_in = nb;
	s->end_in = nb + tail + add;
	s->last_in = f->fed == f->len;
	return true;
}

#endif
