// SPDX-License-Identifier: Apache-2.0
/*
 * The raw deflate decoder (format/lp_inflate.h) against zlib's raw inflate
 * as the oracle, byte for byte.
 *
 * Every stream is decoded by both. zlib is given the whole stream at once
 * and called with Z_BLOCK, so it returns at every block boundary: those
 * that are not after the last block ((data_type & 128) && !(data_type &
 * 64)) are recorded as (total_in, data_type & 7, total_out). Ours is run
 * by a driver that does what the index builder does: it hands over the
 * input in pieces (1, 7, 1000, 4096 bytes, around LP_INFLATE_MARGIN, or
 * random), and on LP_INFLATE_INPUT moves the unconsumed tail to the front
 * of a new buffer (the old one poisoned and freed, so that a decoder that
 * kept a pointer into it, or reads past end_in, is caught under ASan) with
 * the next piece after it, marking the last; on LP_INFLATE_FULL it takes
 * the output and slides; on LP_INFLATE_BOUNDARY it records (next_in -
 * start, bitcnt, out_total) and goes on. At every stop it checks the
 * contract: out_total is the output taken, bitcnt < 8 and bitbuf holds
 * just the unconsumed high bits of the last byte consumed, INPUT only
 * while fewer than LP_INFLATE_MARGIN bytes are left and never when they
 * are the last, every boundary past stop_out and further on than the one
 * before, and at boundaries, FULL (before and after the slide) and the end
 * the window is the last min(out_total, 32 KiB) bytes of the output.
 *
 * Where zlib ends the stream, ours must end it with the same output, the
 * same input consumed and the same boundaries (with stop_out 0: all of
 * zlib's; with stop_out X: those at total_out >= X; with the index
 * builder's spans: the first at or past each span). Where zlib finds the
 * data bad or cut off, ours must fail (< 0, with a message), after the
 * same boundaries and without a byte differing from zlib's.
 *
 * The streams: zlib's deflate at levels 0, 1, 6, 9 with every strategy
 * over random bytes, text, short-period runs (overlapping copies at
 * distances 1-8), data repeating at near the longest distance, from empty
 * to 3 MiB (several output buffers, so lp_inflate_slide() runs, also in
 * the middle of long matches); with sync, full, partial and Z_BLOCK
 * flushes, parameter changes and memLevel 1 (hundreds of small blocks, at
 * odd bit offsets); hand-made ones (empty stored, fixed and dynamic
 * blocks; the longest distance; length 258 spelt as 284 + 31; code length
 * repeats crossing from the literal/length into the distance lengths;
 * incomplete codes zlib accepts) and broken ones: block type 3, stored
 * LEN != ~NLEN, distances too far back (also across blocks and after
 * lp_inflate_reset()), invalid fixed codes, over-subscribed and incomplete
 * code length, literal/length and distance codes, a missing end-of-block
 * code, a repeat with nothing to repeat, repeats past the last length, too
 * many codes, and every prefix of a stream cut off. The window at each
 * boundary is also checked against zlib's own (inflateGetDictionary())
 * with both decoders stepped in lockstep.
 *
 * With LP_INFLATE_FAIL_DIR set, a stream that makes a comparison fail is
 * written there (inflate-fail-N.bin) to be replayed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "inflate_feed.h"
#include "lp_inflate.h"

#define MIB (1024 * 1024)
#define WIN LP_INFLATE_WINDOW
#define WHOLE SIZE_MAX /* drive.piece: all the input in one piece */
#define ANY (-100) /* agree(): whatever zlib says */
#define Z_CAPPED 100 /* run_zlib(): stopped at the output cap */

/* splitmix64: the tests are deterministic */
static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_room(struct bytes *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return;
	cap = b->cap * 2 + n + 4096;
	p = realloc(b->p, cap);
	assert_non_null(p);
	b->p = p;
	b->cap = cap;
}

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	bytes_room(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* a block boundary: input consumed, bits left of its last byte, output */
struct bound {
	uint64_t in, out;
	unsigned bits;
};

struct bounds {
	struct bound *v;
	size_t n, cap;
};

static void bounds_add(struct bounds *bs, uint64_t in, unsigned bits,
		       uint64_t out)
{
	if (bs->n == bs->cap) {
		struct bound *v;

		bs->cap = bs->cap * 2 + 64;
		v = realloc(bs->v, bs->cap * sizeof(*v));
		assert_non_null(v);
		bs->v = v;
	}
	bs->v[bs->n].in = in;
	bs->v[bs->n].bits = bits;
	bs->v[bs->n].out = out;
	bs->n++;
}

/* a decode: by zlib (ret: Z_STREAM_END, Z_DATA_ERROR, Z_BUF_ERROR: cut
 * off, Z_CAPPED) or ours (ret: LP_INFLATE_END, < 0, or where it stopped) */
struct result {
	int ret;
	struct bytes out;
	uint64_t used;
	struct bounds b;
	size_t n_input, n_full;
	char msg[LP_ERR_MSG_MAX];
};

static void result_free(struct result *r)
{
	bytes_free(&r->out);
	free(r->b.v);
	memset(r, 0, sizeof(*r));
}

/* zlib's raw inflate of @in, stopping at every block (Z_BLOCK), writing at
 * most @cap bytes */
static void run_zlib(const uint8_t *in, size_t len, size_t cap,
		     struct result *r)
{
	z_stream z;
	int zr;

	memset(r, 0, sizeof(*r));
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, -15), Z_OK);
	bytes_room(&r->out, cap + 1);
	z.next_in = (uint8_t *)in;
	z.avail_in = (uInt)len;
	z.next_out = r->out.p;
	z.avail_out = (uInt)cap;
	for (;;) {
		zr = inflate(&z, Z_BLOCK);
		if (zr == Z_OK && (z.data_type & 128) && !(z.data_type & 64))
			bounds_add(&r->b, z.total_in, z.data_type & 7,
				   z.total_out);
		if (zr != Z_OK)
			break;
		if (!z.avail_out) {
			zr = Z_CAPPED;
			break;
		}
	}
	r->ret = zr;
	r->out.len = z.total_out;
	r->used = z.total_in;
	snprintf(r->msg, sizeof(r->msg), "%s", z.msg ? z.msg : "");
	inflateEnd(&z);
}

/* how run_ours() drives the decoder */
struct drive {
	size_t piece; /* input piece size; 0: random sizes; WHOLE */
	uint64_t stop_out;
	uint64_t
		span; /* after a boundary stop_out = out_total + span; 0: kept */
	int stop_at; /* > 0: return at the first stop of this kind */
	/* called at each boundary (after the checks) */
	void (*on_bound)(void *arg, const struct lp_inflate *s,
			 const struct result *r);
	void *arg;
};

static size_t piece_size(size_t piece)
{
	if (piece)
		return piece;
	switch (rnd() % 4) {
	case 0:
		return 1 + rnd() % 16;
	case 1:
		return LP_INFLATE_MARGIN - 3 + rnd() % 7;
	default:
		return 1 + rnd() % 20000;
	}
}

/* the next piece of the input behind what is left (inflate_feed.h) */
static void feed_more(struct lp_inflate *s, struct inflate_feed *f,
		      size_t piece)
{
	assert_true(inflate_feed_more(s, f, piece_size(piece)));
}

static unsigned n_dumped;

/* writes the stream where LP_INFLATE_FAIL_DIR says, then fails */
static void mismatch(const uint8_t *in, size_t len, const struct drive *d,
		     const char *what)
{
	const char *dir = getenv("LP_INFLATE_FAIL_DIR");
	char path[4096] = "";

	if (dir) {
		FILE *fp;

		snprintf(path, sizeof(path), "%s/inflate-fail-%u.bin", dir,
			 n_dumped++);
		fp = fopen(path, "wb");
		if (fp) {
			if (len)
				fwrite(in, 1, len, fp);
			fclose(fp);
		}
	}
	fail_msg("%s (stream of %zu bytes, piece %zu, stop_out %llu, span "
		 "%llu)%s%s",
		 what, len, d->piece, (unsigned long long)d->stop_out,
		 (unsigned long long)d->span, path[0] ? ": " : "", path);
}

/* the stream run_ours() decodes, for failures found inside it */
static const uint8_t *cur_in;
static size_t cur_len;
static const struct drive *cur_d;

#define FAIL(...)                                      \
	do {                                           \
		char m_[512];                          \
		snprintf(m_, sizeof(m_), __VA_ARGS__); \
		mismatch(cur_in, cur_len, cur_d, m_);  \
	} while (0)

/* the window against the last bytes of the output taken */
static void check_window(const struct lp_inflate *s, const struct bytes *out)
{
	const uint8_t *w = NULL;
	size_t n = lp_inflate_window(s, &w);
	size_t want = out->len < WIN ? out->len : WIN;

	if (n != want)
		FAIL("window of %zu bytes at out_total %zu, want %zu", n,
		     out->len, want);
	if (n && memcmp(w, out->p + out->len - n, n))
		FAIL("window differs from the output at out_total %zu",
		     out->len);
}

/* bitbuf: the high bitcnt bits of the last byte consumed, nothing else */
static void check_bits(const struct lp_inflate *s, const uint8_t *in,
		       uint64_t used)
{
	uint64_t want;

	if (s->bitcnt >= 8)
		FAIL("bitcnt %u", s->bitcnt);
	want = s->bitcnt && used ? in[used - 1] >> (8 - s->bitcnt) : 0;
	if (s->bitcnt && !used)
		FAIL("%u bits left but no byte consumed", s->bitcnt);
	if (s->bitbuf != want)
		FAIL("bitbuf %#llx with %u bits left at input %llu, want "
		     "%#llx",
		     (unsigned long long)s->bitbuf, s->bitcnt,
		     (unsigned long long)used, (unsigned long long)want);
}

/* ours over @in driven as @d says, from the decoder's present state */
static void run_ours(struct lp_inflate *s, const uint8_t *in, size_t len,
		     const struct drive *d, struct result *r)
{
	struct inflate_feed f = { .src = in, .len = len };
	struct lp_err err = { 0 };
	uint64_t last_full = UINT64_MAX, last_pos = 0;
	unsigned n_input = 0;
	const uint8_t *end;
	uint8_t *prev;
	int ret;

	memset(r, 0, sizeof(*r));
	cur_in = in;
	cur_len = len;
	cur_d = d;
	s->stop_out = d->stop_out;
	feed_more(s, &f, d->piece);
	prev = s->out;
	for (;;) {
		end = s->end_in;
		ret = lp_inflate_run(s, &err);
		if (s->end_in != end)
			FAIL("end_in moved");
		if (s->next_in < f.buf || s->next_in > s->end_in)
			FAIL("next_in outside the input");
		if (s->out < prev)
			FAIL("out went back (ret %d)", ret);
		bytes_add(&r->out, prev, (size_t)(s->out - prev));
		prev = s->out;
		r->used = f.dropped + (size_t)(s->next_in - f.buf);
		if (ret < 0) {
			if (!err.msg[0])
				FAIL("error %d without a message", ret);
			if (err.code != ret)
				FAIL("returned %d, err.code %d", ret, err.code);
			break;
		}
		if (s->out_total != r->out.len)
			FAIL("out_total %llu, output taken %zu",
			     (unsigned long long)s->out_total, r->out.len);
		check_bits(s, in, r->used);
		if (ret == LP_INFLATE_END) {
			check_window(s, &r->out);
			break;
		}
		switch (ret) {
		case LP_INFLATE_INPUT:
			if (s->last_in)
				FAIL("INPUT after the last input");
			if (s->end_in - s->next_in >= LP_INFLATE_MARGIN)
				FAIL("INPUT with %zu bytes left",
				     (size_t)(s->end_in - s->next_in));
			r->n_input++;
			if (!(++n_input % 97))
				check_window(s, &r->out);
			break;
		case LP_INFLATE_FULL:
			if (last_full == s->out_total)
				FAIL("FULL twice at out_total %llu",
				     (unsigned long long)s->out_total);
			last_full = s->out_total;
			r->n_full++;
			check_window(s, &r->out);
			break;
		case LP_INFLATE_BOUNDARY: {
			uint64_t pos = r->used * 8 - s->bitcnt;

			if (s->out_total < s->stop_out)
				FAIL("boundary at out_total %llu before "
				     "stop_out %llu",
				     (unsigned long long)s->out_total,
				     (unsigned long long)s->stop_out);
			if (r->b.n && pos <= last_pos)
				FAIL("boundary at bit %llu after one at "
				     "bit %llu",
				     (unsigned long long)pos,
				     (unsigned long long)last_pos);
			last_pos = pos;
			bounds_add(&r->b, r->used, s->bitcnt, s->out_total);
			check_window(s, &r->out);
			if (d->on_bound)
				d->on_bound(d->arg, s, r);
			if (d->span)
				s->stop_out = s->out_total + d->span;
			break;
		}
		default:
			FAIL("lp_inflate_run() returned %d", ret);
		}
		if (ret == d->stop_at)
			break;
		if (ret == LP_INFLATE_INPUT) {
			feed_more(s, &f, d->piece);
		} else if (ret == LP_INFLATE_FULL) {
			lp_inflate_slide(s);
			check_window(s, &r->out);
			prev = s->out;
		}
	}
	r->ret = ret;
	snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	inflate_feed_drop(s, &f);
}

/* @got, ours, against the boundaries zlib found (@all) that the drive
 * asks for: those at or past stop_out, or past each span */
static void same_bounds(const uint8_t *in, size_t len, const struct drive *d,
			const struct bounds *got, const struct bounds *all)
{
	uint64_t stop = d->stop_out;
	char what[256];
	size_t i, j = 0;

	for (i = 0; i < all->n; i++) {
		const struct bound *a = &all->v[i], *g = &got->v[j];

		if (a->out < stop)
			continue;
		if (j == got->n) {
			snprintf(what, sizeof(what),
				 "boundary %zu of zlib's (in %llu, %u bits, "
				 "out %llu) missed",
				 i, (unsigned long long)a->in, a->bits,
				 (unsigned long long)a->out);
			mismatch(in, len, d, what);
		}
		if (g->in != a->in || g->bits != a->bits || g->out != a->out) {
			snprintf(what, sizeof(what),
				 "boundary %zu: in %llu, %u bits, out %llu; "
				 "zlib's %zu: in %llu, %u bits, out %llu",
				 j, (unsigned long long)g->in, g->bits,
				 (unsigned long long)g->out, i,
				 (unsigned long long)a->in, a->bits,
				 (unsigned long long)a->out);
			mismatch(in, len, d, what);
		}
		j++;
		if (d->span)
			stop = a->out + d->span;
	}
	if (j != got->n) {
		snprintf(what, sizeof(what),
			 "%zu boundaries, zlib %zu; the first extra at in "
			 "%llu, %u bits, out %llu",
			 got->n, j, (unsigned long long)got->v[j].in,
			 got->v[j].bits, (unsigned long long)got->v[j].out);
		mismatch(in, len, d, what);
	}
}

static const char *zname(int zr)
{
	switch (zr) {
	case Z_STREAM_END:
		return "Z_STREAM_END";
	case Z_DATA_ERROR:
		return "Z_DATA_ERROR";
	case Z_BUF_ERROR:
		return "Z_BUF_ERROR (cut off)";
	case Z_CAPPED:
		return "over the output cap";
	default:
		return "?";
	}
}

/* ours and zlib over @in agree (see the top); zlib must say @want (ANY:
 * whatever it says); @zr and @or, when given, get the two results */
static void agree_r(const uint8_t *in, size_t len, const struct drive *d,
		    size_t cap, int want, struct result *zr, struct result * or)
{
	struct result z, o;
	struct lp_inflate s;
	char what[LP_ERR_MSG_MAX + 256];
	size_t n, i;

	run_zlib(in, len, cap, &z);
	if (z.ret == Z_CAPPED || (want != ANY && z.ret != want))
		fail_msg("test error: zlib says %s (%s), the test meant %s",
			 zname(z.ret), z.msg, zname(want));
	assert_int_equal(lp_inflate_init(&s), 0);
	run_ours(&s, in, len, d, &o);
	lp_inflate_free(&s);
	if (z.ret == Z_STREAM_END && o.ret != LP_INFLATE_END) {
		snprintf(what, sizeof(what),
			 "zlib ends the stream, ours returns %d (%s)", o.ret,
			 o.msg);
		mismatch(in, len, d, what);
	}
	if (z.ret != Z_STREAM_END && o.ret >= 0) {
		snprintf(what, sizeof(what),
			 "zlib says %s (%s), ours returns %d", zname(z.ret),
			 z.msg, o.ret);
		mismatch(in, len, d, what);
	}
	n = z.out.len < o.out.len ? z.out.len : o.out.len;
	for (i = 0; i < n && z.out.p[i] == o.out.p[i]; i++)
		;
	if (i < n) {
		snprintf(what, sizeof(what),
			 "output byte %zu is %#x, zlib's %#x (ours %d: %s)", i,
			 o.out.p[i], z.out.p[i], o.ret, o.msg);
		mismatch(in, len, d, what);
	}
	if (z.ret == Z_STREAM_END && o.out.len != z.out.len) {
		snprintf(what, sizeof(what), "output %zu bytes, zlib's %zu",
			 o.out.len, z.out.len);
		mismatch(in, len, d, what);
	}
	if (z.ret == Z_STREAM_END && o.used != z.used) {
		snprintf(what, sizeof(what),
			 "consumed %llu input bytes, zlib %llu",
			 (unsigned long long)o.used,
			 (unsigned long long)z.used);
		mismatch(in, len, d, what);
	}
	same_bounds(in, len, d, &o.b, &z.b);
	if (zr)
		*zr = z;
	else
		result_free(&z);
	if (or)
		* or = o;
	else
		result_free(&o);
}

static void agree(const uint8_t *in, size_t len, const struct drive *d,
		  size_t cap, int want)
{
	agree_r(in, len, d, cap, want, NULL, NULL);
}

/* ---- data ---- */

enum kind { K_RANDOM, K_TEXT, K_RUNS, K_FAR, K_ZEROS, K_MIXED, K_NKINDS };

static void fill_text(uint8_t *p, size_t len)
{
	static const char *const words[] = {
		"lazy",	   "pull", "deflate", "block", "window", "the",
		"of",	   "and",  "a",	      "to",    "layer",	 "index",
		"\n",	   "span", "bits",    "tar",   "gzip",	 "zlib",
		"huffman", "code", "length",  "1234",  "\t",	 "0",
	};
	size_t off = 0;

	while (off < len) {
		const char *w = words[rnd() % (sizeof(words) / sizeof(*words))];
		size_t n = strlen(w);

		if (n > len - off)
			n = len - off;
		memcpy(p + off, w, n);
		off += n;
		if (off < len)
			p[off++] =
				rnd() % 8 ? ' ' : (uint8_t)('A' + rnd() % 26);
	}
}

static void fill_runs(uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		uint8_t pat[8];
		size_t per = 1 + rnd() % 8, run, i;

		for (i = 0; i < per; i++)
			pat[i] = (uint8_t)rnd();
		run = rnd() % 8 ? 1 + rnd() % 600 : 1 + rnd() % 5000;
		for (i = 0; i < run && off < len; i++)
			p[off++] = pat[i % per];
		for (i = rnd() % 6; i && off < len; i--)
			p[off++] = (uint8_t)rnd();
	}
}

/* random bytes repeating at about the longest distance zlib makes */
static void fill_far(uint8_t *p, size_t len)
{
	size_t per = 32500 - rnd() % 200, i;

	for (i = 0; i < len; i++)
		p[i] = i < per || !(rnd() % 64) ? (uint8_t)rnd() : p[i - per];
}

static void fill(uint8_t *p, size_t len, enum kind k)
{
	size_t i;

	switch (k) {
	case K_RANDOM:
		for (i = 0; i < len; i++)
			p[i] = (uint8_t)rnd();
		break;
	case K_TEXT:
		fill_text(p, len);
		break;
	case K_RUNS:
		fill_runs(p, len);
		break;
	case K_FAR:
		fill_far(p, len);
		break;
	case K_ZEROS:
		memset(p, 0, len);
		break;
	default:
		for (i = 0; i < len;) {
			size_t n = 1 + rnd() % 65536;

			if (n > len - i)
				n = len - i;
			fill(p + i, n, (enum kind)(rnd() % K_MIXED));
			i += n;
		}
	}
}

static uint8_t *make_data(size_t len, enum kind k)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	fill(p, len, k);
	return p;
}

/* ---- zlib's deflate ---- */

struct zopt {
	int level, strategy, mem_level;
	size_t step; /* input per deflate() call; 0: all at once */
	int flush; /* after each step but the last */
	bool vary; /* deflateParams() to other ones between steps */
	bool lead_flush; /* a Z_SYNC_FLUSH before any input */
};

static void zpush(z_stream *z, struct bytes *out, const uint8_t *p, size_t n,
		  int flush)
{
	int zr;

	z->next_in = (uint8_t *)p;
	z->avail_in = (uInt)n;
	for (;;) {
		bytes_room(out, 65536);
		z->next_out = out->p + out->len;
		z->avail_out = (uInt)(out->cap - out->len);
		zr = deflate(z, flush);
		out->len = out->cap - z->avail_out;
		if (flush == Z_FINISH) {
			if (zr == Z_STREAM_END)
				break;
			assert_int_equal(zr, Z_OK);
			continue;
		}
		assert_true(zr == Z_OK || zr == Z_BUF_ERROR);
		if (!z->avail_in && z->avail_out)
			break;
	}
}

static void zparams(z_stream *z, struct bytes *out, int level, int strategy)
{
	int i, zr;

	for (i = 0; i < 100; i++) {
		bytes_room(out, 4 * 65536);
		z->next_out = out->p + out->len;
		z->avail_out = (uInt)(out->cap - out->len);
		zr = deflateParams(z, level, strategy);
		out->len = out->cap - z->avail_out;
		if (zr == Z_OK)
			return;
		assert_int_equal(zr, Z_BUF_ERROR);
	}
	fail_msg("deflateParams() never done");
}

/* a raw deflate stream of @data appended to @out */
static void deflate_raw(const uint8_t *data, size_t len, const struct zopt *o,
			struct bytes *out)
{
	static const int lv[] = { 0, 1, 6, 9, 3 };
	static const int st[] = { Z_DEFAULT_STRATEGY, Z_FILTERED,
				  Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED };
	size_t off = 0;
	unsigned k = 0;
	z_stream z;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, o->level, Z_DEFLATED, -15,
				      o->mem_level ? o->mem_level : 8,
				      o->strategy),
			 Z_OK);
	if (o->lead_flush)
		zpush(&z, out, NULL, 0, Z_SYNC_FLUSH);
	do {
		size_t n = o->step && o->step < len - off ? o->step : len - off;
		bool last = off + n == len;

		if (o->vary && off) {
			zparams(&z, out, lv[k % 5], st[(k + k / 5) % 5]);
			k++;
		}
		zpush(&z, out, data + off, n, last ? Z_FINISH : o->flush);
		off += n;
	} while (off < len);
	deflateEnd(&z);
}

/* ---- hand-made streams ---- */

struct bw {
	struct bytes b;
	uint64_t acc;
	unsigned n;
};

/* @n bits of @v, least significant first */
static void bw_put(struct bw *w, uint32_t v, unsigned n)
{
	if (n < 32)
		v &= (1u << n) - 1;
	w->acc |= (uint64_t)v << w->n;
	w->n += n;
	while (w->n >= 8) {
		uint8_t c = (uint8_t)w->acc;

		bytes_add(&w->b, &c, 1);
		w->acc >>= 8;
		w->n -= 8;
	}
}

/* a Huffman code: most significant bit first */
static void bw_code(struct bw *w, uint32_t code, unsigned len)
{
	uint32_t r = 0;
	unsigned i;

	for (i = 0; i < len; i++)
		r |= ((code >> i) & 1) << (len - 1 - i);
	bw_put(w, r, len);
}

static void bw_align(struct bw *w)
{
	if (w->n)
		bw_put(w, 0, 8 - w->n);
}

static void bw_stored(struct bw *w, bool final, const uint8_t *p, size_t n,
		      uint16_t nlen_xor)
{
	uint8_t h[4];

	bw_put(w, final, 1);
	bw_put(w, 0, 2);
	bw_align(w);
	h[0] = (uint8_t)n;
	h[1] = (uint8_t)(n >> 8);
	h[2] = (uint8_t) ~(n ^ nlen_xor);
	h[3] = (uint8_t)(~(n ^ nlen_xor) >> 8);
	bytes_add(&w->b, h, 4);
	bytes_add(&w->b, p, n);
}

struct huff {
	uint32_t code[320];
	uint8_t len[320];
	int n;
};

/* the canonical code of lengths @lens (RFC 1951 3.2.2) */
static void huff_make(struct huff *h, const uint8_t *lens, int n)
{
	unsigned count[16] = { 0 }, next[16] = { 0 }, code = 0;
	int i;

	for (i = 0; i < n; i++)
		count[lens[i] & 15]++;
	count[0] = 0;
	for (i = 1; i < 16; i++) {
		code = (code + count[i - 1]) << 1;
		next[i] = code;
	}
	h->n = n;
	for (i = 0; i < n; i++) {
		h->len[i] = lens[i];
		h->code[i] = lens[i] ? next[lens[i]]++ : 0;
	}
}

static void emit(struct bw *w, const struct huff *h, int sym)
{
	if (sym >= h->n || !h->len[sym])
		fail_msg("test error: symbol %d has no code", sym);
	bw_code(w, h->code[sym], h->len[sym]);
}

static const uint16_t lbase[29] = { 3,	4,  5,	6,   7,	  8,   9,   10,	 11, 13,
				    15, 17, 19, 23,  27,  31,  35,  43,	 51, 59,
				    67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const uint8_t lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
				  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t dbase[30] = { 1,	  2,	3,    4,     5,	    7,
				    9,	  13,	17,   25,    33,    49,
				    65,	  97,	129,  193,   257,   385,
				    513,  769,	1025, 1537,  2049,  3073,
				    4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t dext[30] = { 0, 0, 0,  0,	1,  1,	2,  2,	3,  3,
				  4, 4, 5,  5,	6,  6,	7,  7,	8,  8,
				  9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };

static void emit_match(struct bw *w, const struct huff *lit,
		       const struct huff *dist, unsigned len, unsigned d)
{
	int i = 28, j = 29;

	while (lbase[i] > len)
		i--;
	emit(w, lit, 257 + i);
	bw_put(w, len - lbase[i], lext[i]);
	while (dbase[j] > d)
		j--;
	emit(w, dist, j);
	bw_put(w, d - dbase[j], dext[j]);
}

static void emit_lits(struct bw *w, const struct huff *lit, const char *s)
{
	while (*s)
		emit(w, lit, (uint8_t)*s++);
}

static struct huff fixed_lit, fixed_dist;

static void fixed_make(void)
{
	uint8_t l[288], d[32];
	int i;

	for (i = 0; i < 288; i++)
		l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
	memset(d, 5, sizeof(d));
	huff_make(&fixed_lit, l, 288);
	huff_make(&fixed_dist, d, 32);
}

static void fixed_header(struct bw *w, bool final)
{
	bw_put(w, final, 1);
	bw_put(w, 1, 2);
}

/* a dynamic block's header */
struct dyn {
	int nlit, ndist, nclen; /* HLIT + 257, HDIST + 1, HCLEN + 4 */
	uint8_t lens[320]; /* nlit literal/length, then ndist distance */
	uint8_t cl[19]; /* code length code lengths, by symbol */
	int nseq; /* code length symbols written; 0: lens one by one; -1:
		   * none */
	uint16_t seq[330][2]; /* symbol, extra bits */
	struct huff lit, dist; /* made by dyn_header() */
};

/* complete codes: 286 literal/lengths (226 of 8 bits, 60 of 9), 30
 * distances (2 of 4 bits, 28 of 5), code lengths 0-15 of 4 bits */
static void dyn_default(struct dyn *d)
{
	int i;

	memset(d, 0, sizeof(*d));
	d->nlit = 286;
	d->ndist = 30;
	d->nclen = 19;
	for (i = 0; i < 286; i++)
		d->lens[i] = i < 226 ? 8 : 9;
	for (i = 0; i < 30; i++)
		d->lens[286 + i] = i < 2 ? 4 : 5;
	for (i = 0; i < 16; i++)
		d->cl[i] = 4;
}

/* code lengths 0-15 of 5 bits, 16 of 2, 17 and 18 of 3: complete */
static void dyn_cl_rep(struct dyn *d)
{
	int i;

	for (i = 0; i < 16; i++)
		d->cl[i] = 5;
	d->cl[16] = 2;
	d->cl[17] = 3;
	d->cl[18] = 3;
}

/* d->seq: the lengths one by one */
static void dyn_seq_plain(struct dyn *d)
{
	int i;

	for (i = 0; i < d->nlit + d->ndist; i++) {
		d->seq[i][0] = d->lens[i];
		d->seq[i][1] = 0;
	}
	d->nseq = d->nlit + d->ndist;
}

static void dyn_header(struct bw *w, bool final, struct dyn *d)
{
	static const uint8_t order[19] = { 16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
					   11, 4,  12, 3, 13, 2, 14, 1, 15 };
	static const uint8_t xbits[3] = { 2, 3, 7 };
	struct huff cl;
	int i;

	bw_put(w, final, 1);
	bw_put(w, 2, 2);
	bw_put(w, (uint32_t)(d->nlit - 257), 5);
	bw_put(w, (uint32_t)(d->ndist - 1), 5);
	bw_put(w, (uint32_t)(d->nclen - 4), 4);
	for (i = 0; i < d->nclen; i++)
		bw_put(w, d->cl[order[i]], 3);
	huff_make(&cl, d->cl, 19);
	if (!d->nseq)
		dyn_seq_plain(d);
	for (i = 0; i < d->nseq; i++) {
		emit(w, &cl, d->seq[i][0]);
		if (d->seq[i][0] >= 16)
			bw_put(w, d->seq[i][1], xbits[d->seq[i][0] - 16]);
	}
	huff_make(&d->lit, d->lens, d->nlit < 288 ? d->nlit : 288);
	huff_make(&d->dist, d->lens + d->nlit, d->ndist);
}

/* ---- the tests ---- */

static const struct drive drives_small[] = {
	{ .piece = WHOLE }, { .piece = 4096, .stop_out = UINT64_MAX },
	{ .piece = 0 },	    { .piece = 1 },
	{ .piece = 7 },	    { .piece = 0, .stop_out = 1000, .span = 3000 },
};

static const struct drive drives_big[] = {
	{ .piece = WHOLE },
	{ .piece = 4096 },
	{ .piece = 0, .span = MIB },
};

/* one stream of @data through every drive */
static void agree_data(const uint8_t *data, size_t len, const struct zopt *o,
		       const struct drive *drives, size_t n_drives,
		       size_t max_small_piece)
{
	struct bytes c = { 0 };
	struct result z, r;
	size_t i;

	deflate_raw(data, len, o, &c);
	for (i = 0; i < n_drives; i++) {
		if (drives[i].piece && drives[i].piece < 8 &&
		    c.len > max_small_piece)
			continue;
		agree_r(c.p, c.len, &drives[i], len + 1, Z_STREAM_END, &z, &r);
		if (z.out.len != len || (len && memcmp(z.out.p, data, len)))
			fail_msg("test error: zlib does not give the data");
		if (len > 2 * LP_INFLATE_OUT && !r.n_full)
			fail_msg("%zu bytes out without LP_INFLATE_FULL", len);
		result_free(&z);
		result_free(&r);
	}
	bytes_free(&c);
}

static const int strategies[] = { Z_DEFAULT_STRATEGY, Z_FILTERED,
				  Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED };
static const int levels[] = { 0, 1, 6, 9 };

/* every level and strategy over every kind of data, empty to 100 KB */
static void test_levels(void **state)
{
	static const size_t sizes[] = { 0,   1,	  2,	3,     17,
					258, 259, 1000, 40000, 100000 };
	size_t si, li, sti;
	int k;

	rng = 1;
	for (k = 0; k < K_NKINDS; k++) {
		for (si = 0; si < sizeof(sizes) / sizeof(*sizes); si++) {
			uint8_t *data = make_data(sizes[si], (enum kind)k);

			for (li = 0; li < 4; li++) {
				for (sti = 0; sti < 5; sti++) {
					struct zopt o = {
						.level = levels[li],
						.strategy = strategies[sti],
					};

					agree_data(
						data, sizes[si], &o,
						drives_small,
						sizeof(drives_small) /
							sizeof(*drives_small),
						40000);
				}
			}
			free(data);
		}
	}
}

/* 3 MiB: many output buffers, slides inside long matches and far ones */
static void test_big(void **state)
{
	static const struct {
		enum kind k;
		int level, strategy, mem_level;
	} c[] = {
		{ K_MIXED, 0, Z_DEFAULT_STRATEGY, 8 },
		{ K_MIXED, 1, Z_DEFAULT_STRATEGY, 8 },
		{ K_MIXED, 6, Z_DEFAULT_STRATEGY, 8 },
		{ K_MIXED, 9, Z_DEFAULT_STRATEGY, 8 },
		{ K_MIXED, 6, Z_FILTERED, 8 },
		{ K_MIXED, 6, Z_HUFFMAN_ONLY, 8 },
		{ K_MIXED, 6, Z_RLE, 8 },
		{ K_MIXED, 6, Z_FIXED, 8 },
		{ K_MIXED, 6, Z_DEFAULT_STRATEGY, 1 },
		{ K_RUNS, 9, Z_DEFAULT_STRATEGY, 9 },
		{ K_RUNS, 1, Z_RLE, 8 },
		{ K_FAR, 9, Z_DEFAULT_STRATEGY, 9 },
		{ K_TEXT, 9, Z_DEFAULT_STRATEGY, 8 },
		{ K_ZEROS, 9, Z_DEFAULT_STRATEGY, 8 },
		{ K_ZEROS, 1, Z_FIXED, 8 },
	};
	size_t len = 3 * MIB, i;

	rng = 2;
	for (i = 0; i < sizeof(c) / sizeof(*c); i++) {
		uint8_t *data = make_data(len, c[i].k);
		struct zopt o = { .level = c[i].level,
				  .strategy = c[i].strategy,
				  .mem_level = c[i].mem_level };

		agree_data(data, len, &o, drives_big,
			   sizeof(drives_big) / sizeof(*drives_big), 0);
		if (i == 2 || i == 9) {
			static const struct drive d7[] = { { .piece = 7 } };

			agree_data(data, len, &o, d7, 1, SIZE_MAX);
		}
		free(data);
	}
}

/* flushes of every kind, parameter changes, memLevel 1: many blocks,
 * empty ones, at odd bit offsets */
static void test_flushes(void **state)
{
	static const int flushes[] = { Z_SYNC_FLUSH, Z_FULL_FLUSH,
				       Z_PARTIAL_FLUSH, Z_BLOCK, Z_NO_FLUSH };
	static const size_t steps[] = { 1, 100, 4999, 65536 };
	size_t fi, si, n_bounds = 0;

	rng = 3;
	for (fi = 0; fi < 5; fi++) {
		for (si = 0; si < 4; si++) {
			size_t len = steps[si] == 1 ? 3000 : 300000;
			uint8_t *data = make_data(len, K_MIXED);
			int v;

			for (v = 0; v < 4; v++) {
				struct zopt o = {
					.level = v == 1 ? 0 : 6,
					.strategy = Z_DEFAULT_STRATEGY,
					.mem_level = v == 2 ? 1 : 8,
					.step = steps[si],
					.flush = flushes[fi],
					.vary = v == 3,
					.lead_flush = v & 1,
				};
				struct bytes c = { 0 };
				struct result z;

				deflate_raw(data, len, &o, &c);
				run_zlib(c.p, c.len, len + 1, &z);
				n_bounds += z.b.n;
				result_free(&z);
				bytes_free(&c);
				agree_data(data, len, &o, drives_small,
					   sizeof(drives_small) /
						   sizeof(*drives_small),
					   60000);
			}
			free(data);
		}
	}
	/* the test is about boundaries: make sure there were many */
	assert_true(n_bounds > 10000);
}

/* hand-made: empty stored, fixed and dynamic blocks in a row */
static void test_empty_blocks(void **state)
{
	struct bw w = { 0 };
	struct dyn d;
	size_t i;
	int k;

	fixed_make();
	rng = 4;
	for (k = 0; k < 5; k++)
		bw_stored(&w, false, NULL, 0, 0);
	fixed_header(&w, false);
	emit_lits(&w, &fixed_lit, "abc");
	emit(&w, &fixed_lit, 256);
	for (k = 0; k < 13; k++) { /* 10 bits each: every bit offset */
		fixed_header(&w, false);
		emit(&w, &fixed_lit, 256);
	}
	dyn_default(&d);
	dyn_header(&w, false, &d);
	emit(&w, &d.lit, 256);
	bw_stored(&w, false, NULL, 0, 0);
	fixed_header(&w, false);
	emit_lits(&w, &fixed_lit, "de");
	emit_match(&w, &fixed_lit, &fixed_dist, 7, 5);
	emit(&w, &fixed_lit, 256);
	for (k = 0; k < 3; k++) {
		dyn_default(&d);
		dyn_header(&w, false, &d);
		emit(&w, &d.lit, 256);
	}
	bw_stored(&w, true, NULL, 0, 0);
	for (i = 0; i < sizeof(drives_small) / sizeof(*drives_small); i++) {
		struct result z;

		agree_r(w.b.p, w.b.len, &drives_small[i], 1024, Z_STREAM_END,
			&z, NULL);
		assert_int_equal(z.out.len, 12);
		assert_memory_equal(z.out.p, "abcdeabcdeab", 12);
		assert_int_equal(z.b.n, 5 + 1 + 13 + 1 + 1 + 1 + 3);
		result_free(&z);
	}
	bytes_free(&w.b);
}

/* a stream of many blocks (memLevel 1 and flushes) */
static void many_blocks(struct bytes *c, uint8_t **data, size_t len)
{
	struct zopt o = { .level = 6,
			  .strategy = Z_DEFAULT_STRATEGY,
			  .mem_level = 1,
			  .step = 7777,
			  .flush = Z_BLOCK };

	*data = make_data(len, K_MIXED);
	deflate_raw(*data, len, &o, c);
}

/* stop_out: the first boundary at or after it, every one after that; and
 * the index builder's spans */
static void test_stop_out(void **state)
{
	static const uint64_t spans[] = { 1, 4096, 65536, MIB, 3 * MIB };
	size_t len = 2 * MIB, i;
	struct bytes c = { 0 };
	struct result z;
	uint8_t *data;

	rng = 5;
	many_blocks(&c, &data, len);
	run_zlib(c.p, c.len, len + 1, &z);
	assert_int_equal(z.ret, Z_STREAM_END);
	assert_true(z.b.n > 1000);
	for (i = 0; i < z.b.n; i += 1 + z.b.n / 12) {
		uint64_t at = z.b.v[i].out;
		int k;

		for (k = -1; k <= 1; k++) {
			struct drive d = { .piece = 0,
					   .stop_out = at + (uint64_t)k };

			agree(c.p, c.len, &d, len + 1, Z_STREAM_END);
		}
	}
	{
		const uint64_t stops[] = {
			1, len - 1, len, len + 1, UINT64_MAX - 1, UINT64_MAX
		};

		for (i = 0; i < sizeof(stops) / sizeof(*stops); i++) {
			struct drive d = { .piece = 0, .stop_out = stops[i] };

			agree(c.p, c.len, &d, len + 1, Z_STREAM_END);
		}
	}
	for (i = 0; i < sizeof(spans) / sizeof(*spans); i++) {
		struct drive d = { .piece = 0,
				   .stop_out = spans[i],
				   .span = spans[i] };

		agree(c.p, c.len, &d, len + 1, Z_STREAM_END);
	}
	result_free(&z);
	bytes_free(&c);
	free(data);
}

/* zlib stepped to its next boundary alongside ours */
struct lock {
	z_stream z;
	size_t n;
	uint8_t dict[WIN];
};

static bool zlib_next_bound(struct lock *l)
{
	int zr;

	for (;;) {
		zr = inflate(&l->z, Z_BLOCK);
		if (zr == Z_OK && (l->z.data_type & 128) &&
		    !(l->z.data_type & 64))
			return true;
		if (zr == Z_STREAM_END)
			return false;
		assert_int_equal(zr, Z_OK);
	}
}

static void lock_bound(void *arg, const struct lp_inflate *s,
		       const struct result *r)
{
	struct lock *l = arg;
	const uint8_t *w = NULL;
	uInt dlen = 0;
	size_t n;

	if (!zlib_next_bound(l))
		fail_msg("a boundary at in %llu, out %llu that zlib has not",
			 (unsigned long long)r->used,
			 (unsigned long long)s->out_total);
	if (l->z.total_in != r->used ||
	    (unsigned)(l->z.data_type & 7) != s->bitcnt ||
	    l->z.total_out != s->out_total)
		fail_msg("boundary %zu at in %llu, %u bits, out %llu; zlib's "
			 "at in %lu, %d bits, out %lu",
			 l->n, (unsigned long long)r->used, s->bitcnt,
			 (unsigned long long)s->out_total, l->z.total_in,
			 l->z.data_type & 7, l->z.total_out);
	assert_int_equal(inflateGetDictionary(&l->z, l->dict, &dlen), Z_OK);
	n = lp_inflate_window(s, &w);
	if (n != dlen || (n && memcmp(w, l->dict, n)))
		fail_msg("boundary %zu: window of %zu bytes differs from "
			 "zlib's %u",
			 l->n, n, dlen);
	l->n++;
}

/* the window at every boundary is zlib's dictionary there */
static void test_window_lockstep(void **state)
{
	static const enum kind kinds[] = { K_MIXED, K_FAR, K_TEXT };
	size_t len = 3 * MIB, i;

	rng = 6;
	for (i = 0; i < sizeof(kinds) / sizeof(*kinds); i++) {
		struct zopt o = { .level = 9,
				  .strategy = Z_DEFAULT_STRATEGY,
				  .mem_level = 1,
				  .step = 30011,
				  .flush = Z_BLOCK };
		uint8_t *data = make_data(len, kinds[i]);
		struct lock *l = calloc(1, sizeof(*l));
		struct drive d = { .piece = 0, .on_bound = lock_bound };
		uint8_t *zout = malloc(len + 1);
		struct bytes c = { 0 };
		struct lp_inflate s;
		struct result r;

		assert_non_null(l);
		assert_non_null(zout);
		d.arg = l;
		deflate_raw(data, len, &o, &c);
		assert_int_equal(inflateInit2(&l->z, -15), Z_OK);
		l->z.next_in = c.p;
		l->z.avail_in = (uInt)c.len;
		l->z.next_out = zout;
		l->z.avail_out = (uInt)len + 1;
		assert_int_equal(lp_inflate_init(&s), 0);
		run_ours(&s, c.p, c.len, &d, &r);
		if (r.ret != LP_INFLATE_END)
			fail_msg("returned %d: %s", r.ret, r.msg);
		if (zlib_next_bound(l))
			fail_msg("zlib's boundary at in %lu missed",
				 l->z.total_in);
		assert_true(l->n > 100);
		assert_int_equal(r.out.len, len);
		assert_memory_equal(r.out.p, data, len);
		assert_int_equal(r.used, l->z.total_in);
		lp_inflate_free(&s);
		inflateEnd(&l->z);
		result_free(&r);
		bytes_free(&c);
		free(zout);
		free(data);
		free(l);
	}
}

/* a small stream of stored, fixed and dynamic blocks */
static void mixed_stream(struct bytes *c, uint8_t **data, size_t len)
{
	struct zopt o = { .level = 9,
			  .strategy = Z_DEFAULT_STRATEGY,
			  .step = len / 5 + 1,
			  .flush = Z_BLOCK,
			  .vary = true };

	*data = make_data(len, K_MIXED);
	fill(*data, len / 3, K_TEXT);
	deflate_raw(*data, len, &o, c);
}

/* the input in pieces of every size, around the margin too */
static void test_pieces(void **state)
{
	static const size_t pieces[] = {
		1,    2,    3,	  7,	8,    100,  1000,  1021, 1023,
		1024, 1025, 1031, 2047, 2048, 4096, 65536, 0,	 0,
	};
	size_t len = 400000, i;
	struct bytes c = { 0 };
	uint8_t *data;

	rng = 7;
	mixed_stream(&c, &data, len);
	for (i = 0; i < sizeof(pieces) / sizeof(*pieces); i++) {
		struct drive d = { .piece = pieces[i] };

		agree(c.p, c.len, &d, len + 1, Z_STREAM_END);
		d.stop_out = UINT64_MAX;
		agree(c.p, c.len, &d, len + 1, Z_STREAM_END);
	}
	bytes_free(&c);
	free(data);
}

/* every prefix: an error, or (only where zlib ends there too) the same */
static void test_truncated(void **state)
{
	static const struct drive drives[] = {
		{ .piece = WHOLE },
		{ .piece = 7 },
		{ .piece = 0 },
	};
	size_t len = 6000, n, i;
	struct bytes c = { 0 };
	uint8_t *data;

	rng = 8;
	mixed_stream(&c, &data, len);
	assert_true(c.len > 1000);
	for (n = 0; n <= c.len; n++) {
		for (i = 0; i < 3; i++) {
			/* a copy of just the prefix: reading past it shows */
			uint8_t *p = malloc(n ? n : 1);

			assert_non_null(p);
			memcpy(p, c.p, n);
			agree(p, n, &drives[i], len + 1,
			      n == c.len ? Z_STREAM_END : ANY);
			free(p);
		}
	}
	bytes_free(&c);
	free(data);
}

/* bytes after the last block are not consumed */
static void test_trailing(void **state)
{
	static const size_t junk[] = { 1, 5, 100, 5000 };
	size_t len = 50000, i, k;
	struct bytes c = { 0 };
	uint8_t *data;

	rng = 9;
	mixed_stream(&c, &data, len);
	for (i = 0; i < 4; i++) {
		struct bytes t = { 0 };

		bytes_add(&t, c.p, c.len);
		for (k = 0; k < junk[i]; k++) {
			uint8_t b = (uint8_t)rnd();

			bytes_add(&t, &b, 1);
		}
		for (k = 0; k < sizeof(drives_small) / sizeof(*drives_small);
		     k++)
			agree(t.p, t.len, &drives_small[k], len + 1,
			      Z_STREAM_END);
		bytes_free(&t);
	}
	bytes_free(&c);
	free(data);
}

/* ---- hand-made streams, valid and broken ---- */

struct mk {
	const char *name;
	void (*make)(struct bw *w, int arg);
	int arg;
	int want; /* zlib's verdict */
	bool pad; /* zero bytes after it */
};

static void mk_type3(struct bw *w, int arg)
{
	if (arg)
		bw_stored(w, false, (const uint8_t *)"abc", 3, 0);
	bw_put(w, 1, 1);
	bw_put(w, 3, 2);
}

static void mk_stored(struct bw *w, int arg)
{
	static const uint16_t xors[] = { 0, 0xffff, 0x0100, 0x8000, 1 };

	bw_stored(w, true, (const uint8_t *)"hello", 5, xors[arg]);
}

static void mk_stored_short(struct bw *w, int arg)
{
	uint8_t b[100] = { 0 };

	bw_stored(w, true, b, 100, 0);
	w->b.len -= 50;
}

static void mk_nonfinal_only(struct bw *w, int arg)
{
	fixed_header(w, false);
	emit_lits(w, &fixed_lit, "abc");
	emit(w, &fixed_lit, 256);
	bw_align(w);
}

/* @arg literals, then a match at distance arg + 1 - ok (ok: 1 or 0) */
static void mk_far(struct bw *w, int arg, int ok)
{
	int i;

	fixed_header(w, true);
	for (i = 0; i < arg; i++)
		emit(w, &fixed_lit, (int)(rnd() % 256));
	emit_match(w, &fixed_lit, &fixed_dist, 258, (unsigned)(arg + 1 - ok));
	for (i = 0; i < 2000; i++)
		emit(w, &fixed_lit, (int)(rnd() % 256));
	emit(w, &fixed_lit, 256);
}

static void mk_far_bad(struct bw *w, int arg)
{
	mk_far(w, arg, 0);
}

static void mk_far_ok(struct bw *w, int arg)
{
	mk_far(w, arg, arg > 0);
}

/* a stored block of @arg bytes, then a fixed one reaching before it */
static void mk_far_blocks(struct bw *w, int arg)
{
	uint8_t b[64];

	memset(b, 'q', sizeof(b));
	bw_stored(w, false, b, 10, 0);
	fixed_header(w, true);
	emit(w, &fixed_lit, 'r');
	emit_match(w, &fixed_lit, &fixed_dist, 3, (unsigned)(11 + arg));
	emit(w, &fixed_lit, 256);
}

/* the longest distance, 32768, at out_total 32768 + @arg */
static void mk_longest(struct bw *w, int arg)
{
	int i;

	fixed_header(w, false);
	for (i = 0; i < 32768 + arg; i++)
		emit(w, &fixed_lit, (int)(rnd() % 256));
	emit(w, &fixed_lit, 256);
	fixed_header(w, true);
	emit_match(w, &fixed_lit, &fixed_dist, 258, 32768);
	emit_match(w, &fixed_lit, &fixed_dist, 3, 32768);
	emit(w, &fixed_lit, 256);
}

static void mk_fixed_badsym(struct bw *w, int arg)
{
	fixed_header(w, true);
	emit_lits(w, &fixed_lit, "abcdefgh");
	if (arg >= 30) { /* a distance code 30 or 31 */
		emit(w, &fixed_lit, 257);
		emit(w, &fixed_dist, arg);
	} else { /* a literal/length code 286 or 287 */
		emit(w, &fixed_lit, 286 + arg);
	}
	emit(w, &fixed_lit, 256);
}

/* length 258 as code 284 with 31 in its extra bits */
static void mk_284(struct bw *w, int arg)
{
	fixed_header(w, true);
	emit_lits(w, &fixed_lit, "xy");
	emit(w, &fixed_lit, 284);
	bw_put(w, 31, 5);
	emit(w, &fixed_dist, 1); /* distance 2 */
	emit(w, &fixed_lit, 256);
}

static void dyn_body(struct bw *w, struct dyn *d)
{
	emit_lits(w, &d->lit, "The quick brown fox");
	emit_match(w, &d->lit, &d->dist, 10, 4);
	emit_match(w, &d->lit, &d->dist, 258, 20);
	emit_lits(w, &d->lit, "\xff\x80");
	emit(w, &d->lit, 256);
}

static void mk_dyn(struct bw *w, int arg)
{
	struct dyn d;
	int i;

	dyn_default(&d);
	switch (arg) {
	case 0: /* valid */
		break;
	case 1: /* one distance code of 1 bit: incomplete, allowed */
		memset(d.lens + 286, 0, 30);
		d.lens[286 + 0] = 1;
		dyn_header(w, true, &d);
		emit_lits(w, &d.lit, "a");
		emit_match(w, &d.lit, &d.dist, 20, 1);
		emit(w, &d.lit, 256);
		return;
	case 2: /* no distance codes, literals only: allowed */
	case 3: /* no distance codes, a length: bad */
		d.ndist = 1;
		d.lens[286] = 0;
		dyn_header(w, true, &d);
		emit_lits(w, &d.lit, "only literals");
		if (arg == 3) {
			emit(w, &d.lit, 260);
			bw_put(w, 0, 16);
		}
		emit(w, &d.lit, 256);
		return;
	case 4: /* one literal/length code, end-of-block, of 1 bit */
		memset(d.lens, 0, 286);
		d.lens[256] = 1;
		dyn_header(w, false, &d);
		emit(w, &d.lit, 256);
		bw_stored(w, true, (const uint8_t *)"xyz", 3, 0);
		return;
	case 5: /* literal/length incomplete, longest 2 bits */
		memset(d.lens, 0, 286);
		d.lens[256] = 2;
		d.lens['a'] = 2;
		dyn_header(w, true, &d);
		emit_lits(w, &d.lit, "aaa");
		emit(w, &d.lit, 256);
		return;
	case 6: /* literal/length over-subscribed */
		d.lens['a'] = 1;
		d.lens['b'] = 1;
		break;
	case 7: /* distance over-subscribed */
		d.lens[286 + 5] = 1;
		d.lens[286 + 6] = 1;
		break;
	case 8: /* distance incomplete, longest 2 bits */
		memset(d.lens + 286, 0, 30);
		d.lens[286 + 2] = 2;
		d.lens[286 + 3] = 2;
		dyn_header(w, true, &d);
		emit_lits(w, &d.lit, "abcd");
		emit_match(w, &d.lit, &d.dist, 5, 3);
		emit(w, &d.lit, 256);
		return;
	case 9: /* code length code over-subscribed */
		for (i = 0; i < 19; i++)
			d.cl[i] = 1;
		break;
	case 10: /* code length code incomplete */
		for (i = 0; i < 16; i++)
			d.cl[i] = 5;
		break;
	case 11: /* code length code: one symbol of 1 bit */
		memset(d.cl, 0, sizeof(d.cl));
		d.cl[8] = 1;
		memset(d.lens, 8, sizeof(d.lens));
		dyn_header(w, true, &d);
		return;
	case 12: /* code length code: none at all */
		memset(d.cl, 0, sizeof(d.cl));
		d.nclen = 4;
		d.nseq = -1;
		dyn_header(w, true, &d);
		return;
	case 13: /* a repeat (16) first: the rest valid if it meant zeros */
		memset(d.lens, 0, 3);
		memset(d.lens + 226, 8, 6);
		dyn_cl_rep(&d);
		dyn_seq_plain(&d);
		memmove(d.seq[1], d.seq[3],
			sizeof(d.seq[0]) * (size_t)(d.nseq - 3));
		d.nseq -= 2;
		d.seq[0][0] = 16;
		d.seq[0][1] = 0;
		break;
	case 14: /* 16 past the last length */
	case 15: /* 17 past it */
	case 16: /* 18 past it */
		dyn_cl_rep(&d);
		dyn_seq_plain(&d);
		d.seq[d.nseq - 2][0] = (uint16_t)arg + 2;
		d.seq[d.nseq - 2][1] = arg == 16 ? 127 : 3;
		break;
	case 17: /* missing end-of-block code (the rest complete) */
		d.lens[256] = 0;
		d.lens[227] = 8;
		dyn_header(w, true, &d);
		emit_lits(w, &d.lit, "abc");
		return;
	case 18: /* HLIT 287 */
	case 19: /* HLIT 288 */
		d.nlit = 287 + (arg - 18);
		memmove(d.lens + d.nlit, d.lens + 286, 30);
		memset(d.lens + 286, 0, (size_t)(d.nlit - 286));
		break;
	case 20: /* HDIST 31 */
	case 21: /* HDIST 32 */
		d.ndist = 31 + (arg - 20);
		break;
	case 22: /* a repeat (16) past the last length, exactly to it */
		dyn_cl_rep(&d);
		dyn_seq_plain(&d);
		d.nseq -= 3;
		d.seq[d.nseq][0] = 16;
		d.seq[d.nseq][1] = 0; /* 3 times: to the last, allowed */
		d.nseq++;
		break;
	}
	dyn_header(w, true, &d);
	dyn_body(w, &d);
}

/* code length repeats that cross from literal/length into distance */
static void mk_cross(struct bw *w, int arg)
{
	struct dyn d;
	int i, n = 0;

	memset(&d, 0, sizeof(d));
	d.nlit = 286;
	d.ndist = 30;
	d.nclen = 19;
	dyn_cl_rep(&d);
	if (!arg) { /* 18: zeros from 258 to distance 9 */
		for (i = 0; i < 286; i++)
			d.lens[i] = i < 254 ? 8 : i < 258 ? 9 : 0;
		d.lens[286 + 10] = 1;
		d.lens[286 + 11] = 1;
		for (i = 0; i < 258; i++) {
			d.seq[n][0] = d.lens[i];
			d.seq[n++][1] = 0;
		}
		d.seq[n][0] = 18;
		d.seq[n++][1] = 38 - 11;
		d.seq[n][0] = 1;
		d.seq[n++][1] = 0;
		d.seq[n][0] = 1;
		d.seq[n++][1] = 0;
		d.seq[n][0] = 18;
		d.seq[n++][1] = 18 - 11;
		d.nseq = n;
		dyn_header(w, true, &d);
		for (i = 0; i < 64; i++)
			emit(w, &d.lit, (int)(rnd() % 254));
		emit_match(w, &d.lit, &d.dist, 3, 40);
		emit_match(w, &d.lit, &d.dist, 3, 64);
		emit(w, &d.lit, 256);
		return;
	}
	/* 16: fives from literal/length 271 to distance 27 */
	for (i = 0; i < 256; i++)
		d.lens[i] = 9;
	d.lens[256] = 9;
	d.lens[257] = 9;
	d.lens[258] = 8;
	d.lens[259] = 7;
	d.lens[260] = 6;
	for (i = 271; i < 286 + 28; i++)
		d.lens[i] = 5;
	d.lens[286 + 28] = 4;
	d.lens[286 + 29] = 4;
	for (i = 0; i < 272; i++) {
		d.seq[n][0] = d.lens[i];
		d.seq[n++][1] = 0;
	}
	for (i = 0; i < 7; i++) {
		d.seq[n][0] = 16;
		d.seq[n++][1] = 3;
	}
	d.seq[n][0] = 4;
	d.seq[n++][1] = 0;
	d.seq[n][0] = 4;
	d.seq[n++][1] = 0;
	d.nseq = n;
	dyn_header(w, true, &d);
	emit(w, &d.lit, 'z');
	emit_match(w, &d.lit, &d.dist, 27, 1);
	emit_match(w, &d.lit, &d.dist, 40, 2);
	emit(w, &d.lit, 256);
}

/* a stream deflated with a preset dictionary: reaches before its start */
static void mk_dict(struct bw *w, int arg)
{
	static const char dict[] = "a dictionary the stream refers to";
	z_stream z;

	memset(&z, 0, sizeof(z));
	assert_int_equal(
		deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY),
		Z_OK);
	assert_int_equal(deflateSetDictionary(&z, (const uint8_t *)dict,
					      sizeof(dict) - 1),
			 Z_OK);
	zpush(&z, &w->b, (const uint8_t *)dict, sizeof(dict) - 1, Z_FINISH);
	deflateEnd(&z);
}

static void mk_empty(struct bw *w, int arg)
{
}

static const struct mk cases[] = {
	{ "type 3", mk_type3, 0, Z_DATA_ERROR, true },
	{ "type 3 after stored", mk_type3, 1, Z_DATA_ERROR, true },
	{ "stored", mk_stored, 0, Z_STREAM_END, true },
	{ "stored NLEN = LEN", mk_stored, 1, Z_DATA_ERROR, true },
	{ "stored NLEN bit 8", mk_stored, 2, Z_DATA_ERROR, true },
	{ "stored NLEN bit 15", mk_stored, 3, Z_DATA_ERROR, true },
	{ "stored NLEN bit 0", mk_stored, 4, Z_DATA_ERROR, true },
	{ "stored cut short", mk_stored_short, 0, Z_BUF_ERROR, false },
	{ "no last block", mk_nonfinal_only, 0, Z_BUF_ERROR, false },
	{ "empty input", mk_empty, 0, Z_BUF_ERROR, false },
	{ "match first", mk_far_bad, 0, Z_DATA_ERROR, true },
	{ "distance 2 at 1", mk_far_bad, 1, Z_DATA_ERROR, true },
	{ "distance 6 at 5", mk_far_bad, 5, Z_DATA_ERROR, true },
	{ "distance 5 at 5", mk_far_ok, 5, Z_STREAM_END, true },
	{ "distance 3001 at 3000", mk_far_bad, 3000, Z_DATA_ERROR, true },
	{ "distance 3000 at 3000", mk_far_ok, 3000, Z_STREAM_END, true },
	{ "distance 32768 at 32767", mk_far_bad, 32767, Z_DATA_ERROR, true },
	{ "distance 32767 at 32767", mk_far_ok, 32767, Z_STREAM_END, true },
	{ "distance 11 at 11", mk_far_blocks, 0, Z_STREAM_END, true },
	{ "distance 12 at 11", mk_far_blocks, 1, Z_DATA_ERROR, true },
	{ "distance 32768 at 32768", mk_longest, 0, Z_STREAM_END, true },
	{ "distance 32768 at 40000", mk_longest, 7232, Z_STREAM_END, true },
	{ "fixed code 286", mk_fixed_badsym, 0, Z_DATA_ERROR, true },
	{ "fixed code 287", mk_fixed_badsym, 1, Z_DATA_ERROR, true },
	{ "fixed distance 30", mk_fixed_badsym, 30, Z_DATA_ERROR, true },
	{ "fixed distance 31", mk_fixed_badsym, 31, Z_DATA_ERROR, true },
	{ "258 as 284 + 31", mk_284, 0, ANY, true },
	{ "dynamic", mk_dyn, 0, Z_STREAM_END, true },
	{ "one distance code", mk_dyn, 1, Z_STREAM_END, true },
	{ "no distance codes", mk_dyn, 2, Z_STREAM_END, true },
	{ "no distance codes, a length", mk_dyn, 3, Z_DATA_ERROR, true },
	{ "only end-of-block", mk_dyn, 4, Z_STREAM_END, true },
	{ "lit/len incomplete", mk_dyn, 5, Z_DATA_ERROR, true },
	{ "lit/len over-subscribed", mk_dyn, 6, Z_DATA_ERROR, true },
	{ "dist over-subscribed", mk_dyn, 7, Z_DATA_ERROR, true },
	{ "dist incomplete", mk_dyn, 8, Z_DATA_ERROR, true },
	{ "code lengths over-subscribed", mk_dyn, 9, Z_DATA_ERROR, true },
	{ "code lengths incomplete", mk_dyn, 10, Z_DATA_ERROR, true },
	{ "code lengths: one code", mk_dyn, 11, Z_DATA_ERROR, true },
	{ "code lengths: none", mk_dyn, 12, Z_DATA_ERROR, true },
	{ "repeat first", mk_dyn, 13, Z_DATA_ERROR, true },
	{ "16 past the end", mk_dyn, 14, Z_DATA_ERROR, true },
	{ "17 past the end", mk_dyn, 15, Z_DATA_ERROR, true },
	{ "18 past the end", mk_dyn, 16, Z_DATA_ERROR, true },
	{ "missing end-of-block", mk_dyn, 17, Z_DATA_ERROR, true },
	{ "HLIT 287", mk_dyn, 18, Z_DATA_ERROR, true },
	{ "HLIT 288", mk_dyn, 19, Z_DATA_ERROR, true },
	{ "HDIST 31", mk_dyn, 20, Z_DATA_ERROR, true },
	{ "HDIST 32", mk_dyn, 21, Z_DATA_ERROR, true },
	{ "16 up to the end", mk_dyn, 22, Z_STREAM_END, true },
	{ "18 across lit/dist", mk_cross, 0, Z_STREAM_END, true },
	{ "16 across lit/dist", mk_cross, 1, Z_STREAM_END, true },
	{ "preset dictionary", mk_dict, 0, Z_DATA_ERROR, true },
};

static void test_crafted(void **state)
{
	static const struct drive drives[] = {
		{ .piece = WHOLE }, { .piece = 1 },   { .piece = 7 },
		{ .piece = 0 },	    { .piece = 100 },
	};
	size_t i, k;

	fixed_make();
	for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct mk *m = &cases[i];
		struct bw w = { 0 };

		rng = 100 + i;
		m->make(&w, m->arg);
		bw_align(&w);
		if (m->pad) {
			uint8_t z[64] = { 0 };

			bytes_add(&w.b, z, sizeof(z));
		}
		for (k = 0; k < sizeof(drives) / sizeof(*drives); k++) {
			struct result z, o;

			agree_r(w.b.p, w.b.len, &drives[k], MIB, m->want, &z,
				&o);
			if (z.ret != Z_STREAM_END && o.ret >= 0)
				fail_msg("%s: not refused", m->name);
			if (!k)
				print_message("%s: zlib %s%s%s, ours %d%s%s\n",
					      m->name, zname(z.ret),
					      z.msg[0] ? ": " : "", z.msg,
					      o.ret, o.msg[0] ? ": " : "",
					      o.msg);
			result_free(&z);
			result_free(&o);
		}
		bytes_free(&w.b);
	}
}

/* after lp_inflate_reset() nothing of the last stream is left: not its
 * history, output count, block or bits */
static void test_reset(void **state)
{
	struct bytes a = { 0 }, st = { 0 };
	struct bw bad = { 0 }, ok = { 0 };
	struct drive whole = { .piece = WHOLE }, rnd_d = { .piece = 0 };
	struct lp_inflate s;
	struct result r, z;
	const uint8_t *w;
	size_t len = 100000;
	uint8_t *data, *raw;
	int k;

	rng = 10;
	fixed_make();
	mixed_stream(&a, &data, len);
	raw = make_data(len, K_RANDOM);
	{
		struct zopt o = { .level = 0, .strategy = Z_DEFAULT_STRATEGY };

		deflate_raw(raw, len, &o, &st);
	}
	/* 10 literals then distance 11: too far back in a stream of its own */
	fixed_header(&bad, true);
	emit_lits(&bad, &fixed_lit, "0123456789");
	emit_match(&bad, &fixed_lit, &fixed_dist, 3, 11);
	emit(&bad, &fixed_lit, 256);
	bw_align(&bad);
	fixed_header(&ok, true);
	emit_lits(&ok, &fixed_lit, "0123456789");
	emit_match(&ok, &fixed_lit, &fixed_dist, 3, 10);
	emit(&ok, &fixed_lit, 256);
	bw_align(&ok);
	run_zlib(bad.b.p, bad.b.len, 1024, &z);
	assert_int_equal(z.ret, Z_DATA_ERROR);
	result_free(&z);

	assert_int_equal(lp_inflate_init(&s), 0);
	assert_int_equal(lp_inflate_window(&s, &w), 0);
	for (k = 0; k < 6; k++) {
		/* a whole stream first, or half of one (in a stored block, in
		 * a dynamic one, at a boundary) */
		const struct bytes *first = k % 3 == 1 ? &st : &a;
		struct drive d = { .piece = 1500 };

		if (k % 3 == 1)
			d.stop_at = LP_INFLATE_INPUT;
		else if (k % 3 == 2)
			d.stop_at = LP_INFLATE_BOUNDARY;
		run_ours(&s, first->p, first->len, k < 3 ? &d : &whole, &r);
		if (k >= 3 || !d.stop_at)
			assert_int_equal(r.ret, LP_INFLATE_END);
		else
			assert_int_equal(r.ret, d.stop_at);
		assert_true(r.out.len > 0 || k == 1);
		result_free(&r);

		lp_inflate_reset(&s);
		assert_int_equal(s.out_total, 0);
		assert_int_equal(lp_inflate_window(&s, &w), 0);
		run_ours(&s, bad.b.p, bad.b.len, k & 1 ? &rnd_d : &whole, &r);
		if (r.ret >= 0)
			fail_msg("after a reset (%d), a distance into the last "
				 "stream's history was taken (ret %d)",
				 k, r.ret);
		result_free(&r);

		lp_inflate_reset(&s);
		run_ours(&s, ok.b.p, ok.b.len, &whole, &r);
		if (r.ret != LP_INFLATE_END)
			fail_msg("after a reset: %d %s", r.ret, r.msg);
		assert_int_equal(r.out.len, 13);
		assert_memory_equal(r.out.p, "0123456789012", 13);
		assert_int_equal(r.used, ok.b.len);
		result_free(&r);

		/* and a long stream decodes as zlib has it */
		lp_inflate_reset(&s);
		run_ours(&s, a.p, a.len, &rnd_d, &r);
		assert_int_equal(r.ret, LP_INFLATE_END);
		assert_int_equal(r.out.len, len);
		assert_memory_equal(r.out.p, data, len);
		result_free(&r);
		lp_inflate_reset(&s);
	}
	lp_inflate_free(&s);
	bytes_free(&a);
	bytes_free(&st);
	bytes_free(&bad.b);
	bytes_free(&ok.b);
	free(data);
	free(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crafted),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_empty_blocks),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_flushes),
		cmocka_unit_test(test_stop_out),
		cmocka_unit_test(test_window_lockstep),
		cmocka_unit_test(test_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
