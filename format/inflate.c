// SPDX-License-Identifier: Apache-2.0
/*
 * Raw deflate decoding (RFC 1951) that stops at block boundaries: see
 * lp_inflate.h for why it exists and how it is driven.
 *
 * Tables: a code's entry is found by one lookup of its first ROOT bits
 * (read in the order they come, so the table is indexed by the code bit
 * reversed); a longer code's root entry points to a subtable indexed by
 * its remaining bits. An entry holds the bits to consume (bits 0-7), the
 * extra bits of a length or distance or a subtable's index bits (8-11),
 * the kind (12-14) and the value (16-31): a literal, a length or distance
 * base, or a subtable's offset.
 *
 * The fast loop decodes while at least FAST_IN input bytes and FAST_OUT
 * bytes of output room are left: one refill (eight bytes loaded, the
 * whole bytes that fit kept) gives 56 bits or more, enough for a length
 * and a distance with their extra bits (48); match copies go eight bytes
 * at a time and may write up to 13 bytes past their end (the buffer has
 * room). Elsewhere one symbol at a time with every bit counted: a run
 * stops between symbols only, and at the last input a code cut off is an
 * error, not zeros.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lp_inflate.h"

#define LIT_ROOT 10
#define DIST_ROOT 8
#define MAX_BITS 15
#define NR_LIT 288
#define NR_DIST 32
#define NR_CL 19
/* a subtable per code longer than the root, each of at most
 * 2^(MAX_BITS - root) entries (see build()) */
#define LIT_SIZE ((1u << LIT_ROOT) + 286u * (1u << (MAX_BITS - LIT_ROOT)))
#define DIST_SIZE ((1u << DIST_ROOT) + 30u * (1u << (MAX_BITS - DIST_ROOT)))
#define CL_ROOT 7

#define FAST_IN 32
#define MAX_MATCH 258
#define FAST_OUT (MAX_MATCH + 16)
#define BUF_SIZE (LP_INFLATE_WINDOW + LP_INFLATE_OUT + FAST_OUT)

enum kind { K_LIT, K_LEN, K_EOB, K_SUB, K_BAD };
enum state { S_HEADER, S_CODES, S_STORED, S_DONE, S_ERROR };

#define E_BITS(e) ((e)&0xff)
#define E_EXTRA(e) (((e) >> 8) & 0xf)
#define E_KIND(e) (((e) >> 12) & 0x7)
#define E_VAL(e) ((e) >> 16)
#define ENTRY(val, kind, extra, bits)                     \
	((uint32_t)(val) << 16 | (uint32_t)(kind) << 12 | \
	 (uint32_t)(extra) << 8 | (uint32_t)(bits))

struct lp_inflate_table {
	uint32_t lit[LIT_SIZE], dist[DIST_SIZE], cl[1u << CL_ROOT];
	uint32_t fixed_lit[1u << LIT_ROOT], fixed_dist[1u << DIST_ROOT];
	const uint32_t *lt, *dt; /* the block's: lit/dist or fixed_* */
	unsigned lroot, droot;
	uint8_t lens[NR_LIT + NR_DIST];
};

static const uint16_t len_base[29] = { 3,   4,	 5,   6,   7,  8,  9,  10,
				       11,  13,	 15,  17,  19, 23, 27, 31,
				       35,  43,	 51,  59,  67, 83, 99, 115,
				       131, 163, 195, 227, 258 };
static const uint8_t len_extra[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1,
				       1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
				       4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t dist_base[30] = { 1,    2,    3,	  4,	 5,	7,
					9,    13,   17,	  25,	 33,	49,
					65,   97,   129,  193,	 257,	385,
					513,  769,  1025, 1537,	 2049,	3073,
					4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t dist_extra[30] = { 0, 0, 0,  0,  1,  1,  2,  2,  3,  3,
					4, 4, 5,  5,  6,  6,  7,  7,  8,  8,
					9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
static const uint8_t cl_order[NR_CL] = { 16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
					 11, 4,	 12, 3, 13, 2, 14, 1, 15 };

enum code_kind { C_LIT, C_DIST, C_CL };

/* the entry of symbol @sym of a code of kind @k, @bits long */
static uint32_t sym_entry(enum code_kind k, unsigned sym, unsigned bits)
{
	if (k == C_CL)
		return ENTRY(sym, K_LIT, 0, bits);
	if (k == C_DIST)
		return sym < 30 ? ENTRY(dist_base[sym], K_LEN, dist_extra[sym],
					bits) :
				  ENTRY(0, K_BAD, 0, bits);
	if (sym < 256)
		return ENTRY(sym, K_LIT, 0, bits);
	if (sym == 256)
		return ENTRY(0, K_EOB, 0, bits);
	if (sym < 286)
		return ENTRY(len_base[sym - 257], K_LEN, len_extra[sym - 257],
			     bits);
	return ENTRY(0, K_BAD, 0, bits);
}

static unsigned reverse(unsigned code, unsigned len)
{
	unsigned r = 0;

	while (len--) {
		r = r << 1 | (code & 1);
		code >>= 1;
	}
	return r;
}

/*
 * The decoding table of the canonical code given by @lens[0..n) into
 * @t (@size entries), @root bits looked up at once. As zlib: an
 * over-subscribed set is refused, an incomplete one too unless it is a
 * single code of one bit (or, for distances, no code at all): the
 * entries no code reaches are K_BAD. A subtable holds the codes that
 * share a root prefix; as codes are assigned in order, they come
 * together, the longest last, and its length sizes the subtable.
 */
static int build(uint32_t *t, unsigned size, unsigned root, const uint8_t *lens,
		 unsigned n, enum code_kind k)
{
	unsigned count[MAX_BITS + 1] = { 0 }, offs[MAX_BITS + 2];
	uint16_t sorted[NR_LIT];
	uint32_t code15[NR_LIT];
	unsigned i, len, max = 0, next, used, fill;
	int left = 1;

	for (i = 0; i < n; i++)
		count[lens[i]]++;
	for (len = 1; len <= MAX_BITS; len++) {
		left = (left << 1) - (int)count[len];
		if (left < 0)
			return -1; /* over-subscribed */
		if (count[len])
			max = len;
	}
	if (left > 0 && (k == C_CL || max > 1)) {
		/* incomplete: only a lone one-bit code or no code at all */
		return -1;
	}
	if (left > 0) {
		for (i = 0; i < (1u << root); i++)
			t[i] = ENTRY(0, K_BAD, 0, 0);
		if (max == 0)
			return 0;
	}
	offs[1] = 0;
	for (len = 1; len <= MAX_BITS; len++)
		offs[len + 1] = offs[len] + count[len];
	for (i = 0; i < n; i++)
		if (lens[i])
			sorted[offs[lens[i]]++] = (uint16_t)i;
	/* canonical codes, left-aligned to MAX_BITS */
	next = 0;
	used = offs[MAX_BITS + 1];
	for (i = 0, len = 0; i < used; i++) {
		unsigned l = lens[sorted[i]];

		if (i > 0)
			next += 1u << (MAX_BITS - len);
		len = l;
		code15[i] = next;
	}
	fill = 1u << root;
	for (i = 0; i < used;) {
		unsigned sym = sorted[i], l = lens[sym];
		unsigned code = code15[i] >> (MAX_BITS - l);

		if (l <= root) {
			uint32_t e = sym_entry(k, sym, l);
			unsigned j;

			for (j = reverse(code, l); j < (1u << root);
			     j += 1u << l)
				t[j] = e;
			i++;
			continue;
		}
		/* a subtable: the codes that share this root prefix */
		{
			unsigned prefix = code15[i] >> (MAX_BITS - root);
			unsigned end = i, sub_bits, base = fill;

			while (end < used &&
			       code15[end] >> (MAX_BITS - root) == prefix)
				end++;
			sub_bits = lens[sorted[end - 1]] - root;
			if (fill + (1u << sub_bits) > size)
				return -1; /* cannot happen: LIT_SIZE */
			t[reverse(prefix, root)] =
				ENTRY(base, K_SUB, sub_bits, root);
			for (; i < end; i++) {
				unsigned s = sorted[i], sl = lens[s] - root;
				unsigned c =
					(code15[i] >> (MAX_BITS - lens[s])) &
					((1u << sl) - 1);
				uint32_t e = sym_entry(k, s, sl);
				unsigned j;

				for (j = reverse(c, sl); j < (1u << sub_bits);
				     j += 1u << sl)
					t[base + j] = e;
			}
			fill += 1u << sub_bits;
		}
	}
	return 0;
}

static void build_fixed(struct lp_inflate_table *t)
{
	uint8_t lens[NR_LIT];
	unsigned i;

	for (i = 0; i < 144; i++)
		lens[i] = 8;
	for (; i < 256; i++)
		lens[i] = 9;
	for (; i < 280; i++)
		lens[i] = 7;
	for (; i < NR_LIT; i++)
		lens[i] = 8;
	/* complete codes within the root: cannot fail */
	(void)build(t->fixed_lit, 1u << LIT_ROOT, LIT_ROOT, lens, NR_LIT,
		    C_LIT);
	for (i = 0; i < NR_DIST; i++)
		lens[i] = 5;
	(void)build(t->fixed_dist, 1u << DIST_ROOT, DIST_ROOT, lens, NR_DIST,
		    C_DIST);
}

int lp_inflate_init(struct lp_inflate *s)
{
	memset(s, 0, sizeof(*s));
	s->t = malloc(sizeof(*s->t));
	s->buf = malloc(BUF_SIZE);
	if (!s->t || !s->buf) {
		lp_inflate_free(s);
		return -ENOMEM;
	}
	build_fixed(s->t);
	s->out = s->buf + LP_INFLATE_WINDOW;
	lp_inflate_reset(s);
	return 0;
}

void lp_inflate_free(struct lp_inflate *s)
{
	free(s->t);
	free(s->buf);
	s->t = NULL;
	s->buf = NULL;
}

void lp_inflate_reset(struct lp_inflate *s)
{
	/* `out` stays: bytes before it may not have been taken yet */
	s->out_total = 0;
	s->bitbuf = 0;
	s->bitcnt = 0;
	s->state = S_HEADER;
	s->final = false;
	s->stored_left = 0;
	s->stop_out = UINT64_MAX;
}

void lp_inflate_slide(struct lp_inflate *s)
{
	memmove(s->buf, s->out - LP_INFLATE_WINDOW, LP_INFLATE_WINDOW);
	s->out = s->buf + LP_INFLATE_WINDOW;
}

size_t lp_inflate_window(const struct lp_inflate *s, const uint8_t **win)
{
	size_t n = s->out_total < LP_INFLATE_WINDOW ? (size_t)s->out_total :
						      LP_INFLATE_WINDOW;

	*win = s->out - n;
	return n;
}

/* the run's working copy of the decoder's registers */
struct run {
	const uint8_t *in, *end;
	uint64_t bb;
	unsigned bc;
	uint8_t *out, *out_end; /* out_end: FAST_OUT before the buffer's */
	uint64_t total0; /* out_total where `out` was buf + ... at entry */
	uint8_t *out0;
};

/* bytes in: whole ones, bounds checked, up to 56..63 bits held (a
 * shift by bc stays under 64); bits above bc stay zero */
static void refill_slow(struct run *r)
{
	while (r->bc < 56 && r->in < r->end) {
		r->bb |= (uint64_t)*r->in++ << r->bc;
		r->bc += 8;
	}
}

/* @n bits, or false when the input has fewer (the last input cut off,
 * or a run that broke the margin rule) */
static bool need(struct run *r, unsigned n)
{
	if (r->bc < n)
		refill_slow(r);
	return r->bc >= n;
}

static uint32_t take(struct run *r, unsigned n)
{
	uint32_t v = (uint32_t)(r->bb & ((1ull << n) - 1));

	r->bb >>= n;
	r->bc -= n;
	return v;
}

/* a symbol of table @t (root @root) with its bits counted: its entry;
 * K_BAD with value 1 when the input ends inside it, 0 for no code */
static uint32_t decode_slow(struct run *r, const uint32_t *t, unsigned root)
{
	unsigned skip = 0, looked = root;
	uint32_t e;

	refill_slow(r);
	e = t[r->bb & ((1u << root) - 1)];
	if (E_KIND(e) == K_SUB) {
		skip = root;
		looked = root + E_EXTRA(e);
		e = t[E_VAL(e) + ((r->bb >> root) & ((1u << E_EXTRA(e)) - 1))];
	}
	if (E_KIND(e) == K_BAD)
		return ENTRY(r->bc < looked, K_BAD, 0, 0);
	if (r->bc < skip + E_BITS(e))
		return ENTRY(1, K_BAD, 0, 0);
	take(r, skip + E_BITS(e));
	return e;
}

static int fail(struct lp_inflate *s, struct lp_err *err, const char *what)
{
	s->state = S_ERROR;
	return lp_err_set(err, -EINVAL, "deflate: %s", what);
}

/* the dynamic block header after its 3 bits: its tables */
static int dynamic_header(struct lp_inflate *s, struct run *r,
			  struct lp_err *err)
{
	struct lp_inflate_table *t = s->t;
	uint8_t cl_lens[NR_CL] = { 0 };
	unsigned nlen, ndist, ncl, i, n;

	if (!need(r, 14))
		return fail(s, err, "the input is cut off");
	nlen = take(r, 5) + 257;
	ndist = take(r, 5) + 1;
	ncl = take(r, 4) + 4;
	if (nlen > 286 || ndist > 30)
		return fail(s, err, "too many length or distance symbols");
	for (i = 0; i < ncl; i++) {
		if (!need(r, 3))
			return fail(s, err, "the input is cut off");
		cl_lens[cl_order[i]] = (uint8_t)take(r, 3);
	}
	if (build(t->cl, 1u << CL_ROOT, CL_ROOT, cl_lens, NR_CL, C_CL) < 0)
		return fail(s, err, "invalid code lengths set");
	for (n = 0; n < nlen + ndist;) {
		uint32_t e = decode_slow(r, t->cl, CL_ROOT);
		unsigned sym = E_VAL(e), rep, val = 0;

		if (E_KIND(e) == K_BAD)
			return fail(s, err,
				    E_VAL(e) ? "the input is cut off" :
					       "invalid code lengths set");
		if (sym < 16) {
			t->lens[n++] = (uint8_t)sym;
			continue;
		}
		if (sym == 16) {
			if (n == 0)
				return fail(s, err,
					    "invalid bit length repeat");
			val = t->lens[n - 1];
			if (!need(r, 2))
				return fail(s, err, "the input is cut off");
			rep = 3 + take(r, 2);
		} else if (sym == 17) {
			if (!need(r, 3))
				return fail(s, err, "the input is cut off");
			rep = 3 + take(r, 3);
		} else {
			if (!need(r, 7))
				return fail(s, err, "the input is cut off");
			rep = 11 + take(r, 7);
		}
		if (n + rep > nlen + ndist)
			return fail(s, err, "invalid bit length repeat");
		memset(t->lens + n, (int)val, rep);
		n += rep;
	}
	if (t->lens[256] == 0)
		return fail(s, err, "invalid code -- missing end-of-block");
	if (build(t->lit, LIT_SIZE, LIT_ROOT, t->lens, nlen, C_LIT) < 0)
		return fail(s, err, "invalid literal/lengths set");
	if (build(t->dist, DIST_SIZE, DIST_ROOT, t->lens + nlen, ndist,
		  C_DIST) < 0)
		return fail(s, err, "invalid distances set");
	t->lt = t->lit;
	t->dt = t->dist;
	return 0;
}

/* a block header: its tables, or a stored block's length */
static int header(struct lp_inflate *s, struct run *r, struct lp_err *err)
{
	unsigned type;

	if (!need(r, 3))
		return fail(s, err, "the input is cut off");
	s->final = take(r, 1);
	type = take(r, 2);
	if (type == 0) {
		uint32_t len, nlen;

		take(r, r->bc & 7); /* to the byte boundary */
		if (!need(r, 32))
			return fail(s, err, "the input is cut off");
		len = take(r, 16);
		nlen = take(r, 16);
		if (len != (~nlen & 0xffff))
			return fail(s, err, "invalid stored block lengths");
		s->stored_left = len;
		s->state = S_STORED;
		return 0;
	}
	if (type == 1) {
		s->t->lt = s->t->fixed_lit;
		s->t->dt = s->t->fixed_dist;
	} else if (type == 2) {
		int rc = dynamic_header(s, r, err);

		if (rc < 0)
			return rc;
	} else {
		return fail(s, err, "invalid block type");
	}
	s->state = S_CODES;
	return 0;
}

/* copies @len bytes from @dist back; may write up to 13 bytes past the
 * end (a 3-byte match 8 or more back writes 16; FAST_OUT leaves room) */
static inline uint8_t *copy_match(uint8_t *out, unsigned dist, unsigned len)
{
	const uint8_t *src = out - dist;
	uint8_t *end = out + len;

	if (dist >= 8) {
		uint64_t w;

		memcpy(&w, src, 8);
		memcpy(out, &w, 8);
		memcpy(&w, src + 8, 8);
		memcpy(out + 8, &w, 8);
		src += 16;
		out += 16;
		while (out < end) {
			memcpy(&w, src, 8);
			memcpy(out, &w, 8);
			src += 8;
			out += 8;
		}
	} else if (dist == 1) {
		memset(out, *src, len);
	} else {
		/* 2..7: eight bytes one by one, then words from the nearest
		 * whole number of periods 8 bytes or more back */
		unsigned step = dist * ((8 + dist - 1) / dist), i;

		for (i = 0; i < 8; i++)
			out[i] = src[i];
		for (out += 8; out < end; out += 8) {
			uint64_t w;

			memcpy(&w, out - step, 8);
			memcpy(out, &w, 8);
		}
	}
	return end;
}

#define REFILL()                         \
	do {                             \
		uint64_t w_;             \
		memcpy(&w_, in, 8);      \
		bb |= le64toh(w_) << bc; \
		in += (63 - bc) >> 3;    \
		bc |= 56;                \
	} while (0)
#define LIT_MASK ((1u << LIT_ROOT) - 1)
#define IS_LIT(e) (((e)&0x7000) == 0)

/*
 * The fast loop: symbols while FAST_IN bytes of input and FAST_OUT of
 * room are left. Returns at the end of a block (1), when either runs
 * short (0), or on bad data (< 0). After a refill the bits held (56 or
 * more) cover a length and a distance with their extra bits (48) or
 * three literals (15 each): up to three literals go per refill, each
 * next entry looked up while the last byte is stored (a refill keeps
 * the bits below the count, so an entry looked up stays valid).
 */
static int fast_codes(struct lp_inflate *s, struct run *r, struct lp_err *err)
{
	const uint32_t *lt = s->t->lt, *dt = s->t->dt;
	const uint8_t *in = r->in, *end = r->end;
	uint8_t *out = r->out, *out_lim = r->out_end;
	uint64_t bb = r->bb;
	unsigned bc = r->bc;
	int rc = 0;

	while ((size_t)(end - in) >= FAST_IN && out <= out_lim) {
		uint32_t e;
		unsigned len, dist;

		REFILL();
		e = lt[bb & LIT_MASK];
		if (IS_LIT(e)) {
			bb >>= E_BITS(e);
			bc -= E_BITS(e);
			*out++ = (uint8_t)E_VAL(e);
			e = lt[bb & LIT_MASK];
			if (IS_LIT(e)) {
				bb >>= E_BITS(e);
				bc -= E_BITS(e);
				*out++ = (uint8_t)E_VAL(e);
				e = lt[bb & LIT_MASK];
				if (IS_LIT(e)) {
					bb >>= E_BITS(e);
					bc -= E_BITS(e);
					*out++ = (uint8_t)E_VAL(e);
					continue;
				}
			}
			REFILL();
		}
		if (E_KIND(e) == K_SUB) {
			bb >>= LIT_ROOT;
			bc -= LIT_ROOT;
			e = lt[E_VAL(e) + (bb & ((1u << E_EXTRA(e)) - 1))];
		}
		bb >>= E_BITS(e);
		bc -= E_BITS(e);
		if (IS_LIT(e)) {
			*out++ = (uint8_t)E_VAL(e);
			continue;
		}
		if (E_KIND(e) != K_LEN) {
			rc = E_KIND(e) == K_EOB ?
				     1 :
				     fail(s, err,
					  "invalid literal/length code");
			break;
		}
		len = E_VAL(e) + (unsigned)(bb & ((1u << E_EXTRA(e)) - 1));
		bb >>= E_EXTRA(e);
		bc -= E_EXTRA(e);
		e = dt[bb & ((1u << DIST_ROOT) - 1)];
		if (E_KIND(e) == K_SUB) {
			bb >>= DIST_ROOT;
			bc -= DIST_ROOT;
			e = dt[E_VAL(e) + (bb & ((1u << E_EXTRA(e)) - 1))];
		}
		if (E_KIND(e) != K_LEN) {
			rc = fail(s, err, "invalid distance code");
			break;
		}
		bb >>= E_BITS(e);
		bc -= E_BITS(e);
		dist = E_VAL(e) + (unsigned)(bb & ((1u << E_EXTRA(e)) - 1));
		bb >>= E_EXTRA(e);
		bc -= E_EXTRA(e);
		if (dist > r->total0 + (uint64_t)(out - r->out0)) {
			rc = fail(s, err, "invalid distance too far back");
			break;
		}
		out = copy_match(out, dist, len);
	}
	/* whole bytes back to the input; the bits above bc cleared */
	in -= bc >> 3;
	bc &= 7;
	bb &= (1ull << bc) - 1;
	r->in = in;
	r->out = out;
	r->bb = bb;
	r->bc = bc;
	return rc;
}

/* one symbol, every bit counted: 1 at the end of the block */
static int slow_symbol(struct lp_inflate *s, struct run *r, struct lp_err *err)
{
	uint32_t e = decode_slow(r, s->t->lt, LIT_ROOT);
	unsigned len, dist;

	if (E_KIND(e) == K_BAD)
		return fail(s, err,
			    E_VAL(e) ? "the input is cut off" :
				       "invalid literal/length code");
	if (E_KIND(e) == K_LIT) {
		*r->out++ = (uint8_t)E_VAL(e);
		return 0;
	}
	if (E_KIND(e) == K_EOB)
		return 1;
	if (!need(r, E_EXTRA(e)))
		return fail(s, err, "the input is cut off");
	len = E_VAL(e) + take(r, E_EXTRA(e));
	e = decode_slow(r, s->t->dt, DIST_ROOT);
	if (E_KIND(e) == K_BAD)
		return fail(s, err,
			    E_VAL(e) ? "the input is cut off" :
				       "invalid distance code");
	if (!need(r, E_EXTRA(e)))
		return fail(s, err, "the input is cut off");
	dist = E_VAL(e) + take(r, E_EXTRA(e));
	if (dist > r->total0 + (uint64_t)(r->out - r->out0))
		return fail(s, err, "invalid distance too far back");
	r->out = copy_match(r->out, dist, len);
	return 0;
}

/* a stored block's bytes, as many as input and room allow */
static void stored_copy(struct lp_inflate *s, struct run *r)
{
	size_t n = s->stored_left, in_left, room;

	/* byte aligned here: whole bytes in the bit buffer go back */
	r->in -= r->bc >> 3;
	r->bc = 0;
	r->bb = 0;
	in_left = (size_t)(r->end - r->in);
	room = r->out < r->out_end ? (size_t)(r->out_end - r->out) : 0;
	if (n > in_left)
		n = in_left;
	if (n > room)
		n = room;
	memcpy(r->out, r->in, n);
	r->out += n;
	r->in += n;
	s->stored_left -= (uint32_t)n;
}

/* a block step's result beside enum lp_inflate_stop: the block ended */
#define BLOCK_END 0x100

/* a stored block's bytes: BLOCK_END, a stop, or an error */
static int stored(struct lp_inflate *s, struct run *r, struct lp_err *err)
{
	stored_copy(s, r);
	if (!s->stored_left)
		return BLOCK_END;
	if (r->out >= r->out_end)
		return LP_INFLATE_FULL;
	if (!s->last_in)
		return LP_INFLATE_INPUT;
	return fail(s, err, "the input is cut off");
}

/* a coded block's symbols: BLOCK_END, a stop, or an error */
static int codes(struct lp_inflate *s, struct run *r, struct lp_err *err)
{
	int rc;

	do {
		rc = fast_codes(s, r, err);
		if (rc)
			break;
		if (r->out > r->out_end)
			return LP_INFLATE_FULL;
		if (!s->last_in)
			return LP_INFLATE_INPUT; /* < FAST_IN + 8 bytes left */
		rc = slow_symbol(s, r, err);
	} while (rc == 0);
	return rc == 1 ? BLOCK_END : rc;
}

int lp_inflate_run(struct lp_inflate *s, struct lp_err *err)
{
	struct run r;
	int rc = 0;

	if (s->state == S_ERROR)
		return lp_err_set(err, -EINVAL, "deflate: decoding failed");
	if (s->state == S_DONE)
		return LP_INFLATE_END;
	r.in = s->next_in;
	r.end = s->end_in;
	r.bb = s->bitbuf;
	r.bc = s->bitcnt;
	r.out = r.out0 = s->out;
	r.out_end = s->buf + BUF_SIZE - FAST_OUT;
	r.total0 = s->out_total;
	for (;;) {
		if (s->state == S_HEADER) {
			/* with the whole bytes the bit buffer holds, as
			 * returned */
			size_t in_left = (size_t)(r.end - r.in) + (r.bc >> 3);

			if (!s->last_in && in_left < LP_INFLATE_MARGIN) {
				rc = LP_INFLATE_INPUT;
				break;
			}
			rc = header(s, &r, err);
			if (rc < 0)
				break;
			continue;
		}
		rc = s->state == S_STORED ? stored(s, &r, err) :
					    codes(s, &r, err);
		if (rc != BLOCK_END)
			break;
		/* the block has ended */
		if (s->final) {
			take(&r, r.bc & 7);
			s->state = S_DONE;
			rc = LP_INFLATE_END;
			break;
		}
		s->state = S_HEADER;
		if (r.total0 + (uint64_t)(r.out - r.out0) >= s->stop_out) {
			rc = LP_INFLATE_BOUNDARY;
			break;
		}
	}
	/* between runs: fewer than 8 bits held, the rest back to the input */
	r.in -= r.bc >> 3;
	r.bc &= 7;
	r.bb &= (1ull << r.bc) - 1;
	s->next_in = r.in;
	s->bitbuf = r.bb;
	s->bitcnt = r.bc;
	s->out_total = r.total0 + (uint64_t)(r.out - r.out0);
	s->out = r.out;
	return rc;
}
