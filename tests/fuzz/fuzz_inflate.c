// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for the raw deflate decoder (format/lp_inflate.h), against
 * zlib's raw inflate byte for byte. Byte 0 picks how the input is handed
 * over (its low 3 bits: whole, in pieces of 1, 7, 100, 1023, 1024 or 4096
 * bytes, or of random sizes; bit 3: after each boundary stop_out moves a
 * span on, as the index builder does), byte 1 picks stop_out (0, never,
 * or in between); the rest is the stream.
 *
 * zlib gets the stream at once and stops at every block boundary
 * (Z_BLOCK). Ours is driven as its caller drives it: the unconsumed input
 * moved into a new buffer of just the right size with the next piece after
 * it (so reading past end_in or through a stale pointer shows under ASan),
 * the output taken at every stop, a slide at LP_INFLATE_FULL. Every byte
 * ours writes must be zlib's at that offset, and at every stop bitcnt < 8,
 * bitbuf the high bits of the last byte consumed, the window the last 32
 * KiB written, INPUT only while fewer than LP_INFLATE_MARGIN bytes are
 * left and not the last; ours stops at the boundaries of zlib's that
 * stop_out asks for (at each: the same input consumed, bits left, output
 * written) and no others. Where zlib ends the stream ours ends it having
 * written and consumed as much; where zlib finds bad data or runs out of
 * input ours fails, with a message. Streams whose output passes 4 MiB are
 * skipped. A difference aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../unit/inflate_feed.h"
#include "lp_inflate.h"

#define HDR 2
#define CAP (4u << 20) /* output compared */
#define MAX_BOUNDS (1u << 17)
#define WHOLE SIZE_MAX

struct bound {
	uint64_t in, out;
	unsigned bits;
};

/* zlib's decode, kept between runs */
static uint8_t *zout;
static struct bound *zb;

/* how the input is cut: pieces of one size, or of random sizes (0) */
struct cut {
	size_t piece;
	uint32_t rng;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* zlib's raw inflate of @in: its return (Z_STREAM_END, Z_DATA_ERROR,
 * Z_BUF_ERROR; Z_MEM_ERROR: over CAP), output length, input used, and the
 * boundaries (*@nb; more than MAX_BOUNDS: *@nb = SIZE_MAX) */
static int zlib_raw(const uint8_t *in, size_t len, size_t *out_len,
		    uint64_t *used, size_t *nb)
{
	z_stream z;
	int zr;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK)
		abort();
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = zout;
	z.avail_out = CAP;
	*nb = 0;
	for (;;) {
		zr = inflate(&z, Z_BLOCK);
		if (zr == Z_OK && (z.data_type & 128) && !(z.data_type & 64) &&
		    *nb != SIZE_MAX) {
			if (*nb == MAX_BOUNDS) {
				*nb = SIZE_MAX;
			} else {
				zb[*nb].in = z.total_in;
				zb[*nb].bits = (unsigned)z.data_type & 7;
				zb[*nb].out = z.total_out;
				++*nb;
			}
		}
		if (zr != Z_OK)
			break;
		if (!z.avail_out) {
			zr = Z_MEM_ERROR;
			break;
		}
	}
	*out_len = z.total_out;
	*used = z.total_in;
	inflateEnd(&z);
	return zr;
}

static size_t piece_size(struct cut *c)
{
	if (c->piece)
		return c->piece;
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng % 4 ? 1 + c->rng % 16 : 1 + c->rng % 3000;
}

/* the next piece behind what is left (inflate_feed.h) */
static void feed_more(struct lp_inflate *s, struct inflate_feed *f,
		      struct cut *c)
{
	if (!inflate_feed_more(s, f, piece_size(c)))
		abort();
}

/* the window: the last bytes zlib wrote before out_total */
static void check_window(const struct lp_inflate *s)
{
	const uint8_t *w = NULL;
	size_t n = lp_inflate_window(s, &w);

	if (n != (s->out_total < LP_INFLATE_WINDOW ? s->out_total :
						     LP_INFLATE_WINDOW))
		abort();
	if (n && memcmp(w, zout + s->out_total - n, n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[8] = {
		WHOLE, 1, 7, 100, 1023, 1024, 4096, 0
	};
	struct lp_err err = { 0 };
	struct lp_inflate s;
	struct inflate_feed f = { 0 };
	struct cut c;
	uint64_t zused, stop, span, last_full = UINT64_MAX, last_pos = 0;
	size_t zlen, nb, i = 0, out_len = 0, n_bounds = 0;
	const uint8_t *in;
	uint8_t *prev;
	int zr, ret;

	if (size < HDR)
		return 0;
	if (!zout) {
		zout = malloc(CAP);
		zb = malloc(MAX_BOUNDS * sizeof(*zb));
		if (!zout || !zb)
			abort();
	}
	in = data + HDR;
	f.src = in;
	f.len = size - HDR;
	c.piece = pieces[data[0] & 7];
	c.rng = 0x9e3779b9u ^ (uint32_t)size ^ (uint32_t)data[0] << 8;
	stop = data[1] == 0   ? 0 :
	       data[1] == 255 ? UINT64_MAX :
				(uint64_t)data[1] * data[1] * 64;
	span = (data[0] & 8) && stop && stop != UINT64_MAX ? stop : 0;

	zr = zlib_raw(in, f.len, &zlen, &zused, &nb);
	if (zr != Z_STREAM_END && zr != Z_DATA_ERROR && zr != Z_BUF_ERROR)
		return 0; /* over CAP */

	if (lp_inflate_init(&s) < 0)
		abort();
	s.stop_out = stop;
	feed_more(&s, &f, &c);
	prev = s.out;
	for (;;) {
		const uint8_t *end = s.end_in;
		size_t n;

		ret = lp_inflate_run(&s, &err);
		if (s.end_in != end || s.next_in < f.buf ||
		    s.next_in > s.end_in || s.out < prev)
			abort();
		n = (size_t)(s.out - prev);
		if (n > zlen - out_len || memcmp(prev, zout + out_len, n))
			abort(); /* a byte zlib does not have */
		out_len += n;
		prev = s.out;
		if (ret < 0)
			break;
		if (s.out_total != out_len || s.bitcnt >= 8)
			abort();
		{
			uint64_t used = f.dropped + (size_t)(s.next_in - f.buf);
			uint64_t want = s.bitcnt && used ?
						in[used - 1] >> (8 - s.bitcnt) :
						0;

			if (s.bitbuf != want || (s.bitcnt && !used))
				abort();
			if (ret == LP_INFLATE_BOUNDARY) {
				uint64_t pos = used * 8 - s.bitcnt;

				if (s.out_total < s.stop_out ||
				    (n_bounds && pos <= last_pos))
					abort();
				last_pos = pos;
				n_bounds++;
				if (nb != SIZE_MAX) {
					while (i < nb && zb[i].out < stop)
						i++;
					if (i == nb || zb[i].in != used ||
					    zb[i].bits != s.bitcnt ||
					    zb[i].out != s.out_total)
						abort(); /* not zlib's next */
					if (span)
						stop = zb[i].out + span;
					i++;
				}
				if (span)
					s.stop_out = s.out_total + span;
			}
			if (ret == LP_INFLATE_END) {
				check_window(&s);
				if (zr != Z_STREAM_END || out_len != zlen ||
				    used != zused)
					abort();
				break;
			}
		}
		if (ret == LP_INFLATE_INPUT) {
			if (s.last_in ||
			    s.end_in - s.next_in >= LP_INFLATE_MARGIN)
				abort();
			feed_more(&s, &f, &c);
		} else if (ret == LP_INFLATE_FULL) {
			if (last_full == s.out_total)
				abort();
			last_full = s.out_total;
			check_window(&s);
			lp_inflate_slide(&s);
			check_window(&s);
			prev = s.out;
		} else if (ret == LP_INFLATE_BOUNDARY) {
			check_window(&s);
		} else {
			abort();
		}
	}
	if (ret < 0 && (zr == Z_STREAM_END || !err.msg[0]))
		abort(); /* refused what zlib takes, or did not say why */
	if (nb != SIZE_MAX) { /* none of zlib's boundaries left out */
		while (i < nb && zb[i].out < stop)
			i++;
		if (i != nb)
			abort();
	}
	inflate_feed_drop(&s, &f);
	lp_inflate_free(&s);
	return 0;
}
