// SPDX-License-Identifier: Apache-2.0
/*
 * The gzip index builder's two SHA-256 streams over the same compressed
 * bytes: the digest of the span being read (restarted at every checkpoint)
 * and the blob's. One SHA-256 stream is a chain of dependent rounds: with
 * the x86 SHA extensions (SHA-NI) its speed is bound by the rounds'
 * latency, not by the unit's throughput, so the two streams' blocks are
 * computed interleaved, group of rounds by group of rounds, and take about
 * the time of one (together they were ~11% of a build through OpenSSL's
 * EVP, which uses SHA-NI one stream at a time). Without SHA-NI (or off
 * x86-64) both streams go through OpenSSL (lp_sha256).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI_BUILD 1
#endif

#include "convert_int.h"

#define BLOCK 64
#define LANES 2 /* lane 0: the span; lane 1: the blob */

struct lane {
	uint32_t h[8];
	uint8_t buf[BLOCK];
	size_t buf_len; /* < BLOCK */
	uint64_t total; /* bytes hashed since the lane's start */
};

struct lp_cv_sha_pair {
	unsigned int nr; /* lanes in use: 1 (the span) or 2 */
	bool ni; /* SHA-NI lanes; else evp[] */
	struct lane lane[LANES];
	struct lp_sha256 *evp[LANES];
};

static const uint32_t IV[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
};

#ifdef HAVE_SHA_NI_BUILD
static const uint32_t K[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define NI __attribute__((target("sha,sse4.1,ssse3")))
#define NI_INLINE static inline __attribute__((always_inline)) NI

/* one lane's state while it hashes a block: ABEF and CDGH (the order the
 * SHA-NI rounds want), the message schedule, the state the block began at */
struct ni_lane {
	__m128i s0, s1, msg[4], save0, save1;
};

NI_INLINE void ni_load_state(struct ni_lane *l, const uint32_t h[8])
{
	__m128i t = _mm_loadu_si128((const __m128i *)&h[0]);

	l->s1 = _mm_loadu_si128((const __m128i *)&h[4]);
	t = _mm_shuffle_epi32(t, 0xB1); /* CDAB */
	l->s1 = _mm_shuffle_epi32(l->s1, 0x1B); /* EFGH */
	l->s0 = _mm_alignr_epi8(t, l->s1, 8); /* ABEF */
	l->s1 = _mm_blend_epi16(l->s1, t, 0xF0); /* CDGH */
}

NI_INLINE void ni_store_state(const struct ni_lane *l, uint32_t h[8])
{
	__m128i t = _mm_shuffle_epi32(l->s0, 0x1B); /* FEBA */
	__m128i s1 = _mm_shuffle_epi32(l->s1, 0xB1); /* DCHG */

	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, s1, 0xF0));
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(s1, t, 8));
}

NI_INLINE void ni_begin(struct ni_lane *l, const uint8_t *p)
{
	const __m128i bswap =
		_mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	int i;

	l->save0 = l->s0;
	l->save1 = l->s1;
	for (i = 0; i < 4; i++)
		l->msg[i] = _mm_shuffle_epi8(
			_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
}

/* rounds 4g .. 4g + 3 and the schedule's next steps (Intel's SHA-NI
 * sequence, the loop form of its unrolled code) */
NI_INLINE void ni_group(struct ni_lane *l, int g)
{
	__m128i m = _mm_add_epi32(l->msg[g & 3],
				  _mm_load_si128((const __m128i *)&K[4 * g]));

	l->s1 = _mm_sha256rnds2_epu32(l->s1, l->s0, m);
	if (g >= 3 && g <= 14) {
		__m128i t =
			_mm_alignr_epi8(l->msg[g & 3], l->msg[(g - 1) & 3], 4);

		l->msg[(g + 1) & 3] = _mm_add_epi32(l->msg[(g + 1) & 3], t);
		l->msg[(g + 1) & 3] = _mm_sha256msg2_epu32(l->msg[(g + 1) & 3],
							   l->msg[g & 3]);
	}
	m = _mm_shuffle_epi32(m, 0x0E);
	l->s0 = _mm_sha256rnds2_epu32(l->s0, l->s1, m);
	if (g >= 1 && g <= 12)
		l->msg[(g - 1) & 3] = _mm_sha256msg1_epu32(l->msg[(g - 1) & 3],
							   l->msg[g & 3]);
}

NI_INLINE void ni_end(struct ni_lane *l)
{
	l->s0 = _mm_add_epi32(l->s0, l->save0);
	l->s1 = _mm_add_epi32(l->s1, l->save1);
}

/* @n blocks at @p into @h */
static NI void ni_blocks1(uint32_t h[8], const uint8_t *p, size_t n)
{
	struct ni_lane a;
	int g;

	ni_load_state(&a, h);
	for (; n; n--, p += BLOCK) {
		ni_begin(&a, p);
#pragma GCC unroll 16
		for (g = 0; g < 16; g++)
			ni_group(&a, g);
		ni_end(&a);
	}
	ni_store_state(&a, h);
}

/* @n blocks at @pa into @ha and @n at @pb into @hb, interleaved */
static NI void ni_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8],
			  const uint8_t *pb, size_t n)
{
	struct ni_lane a, b;
	int g;

	ni_load_state(&a, ha);
	ni_load_state(&b, hb);
	for (; n; n--, pa += BLOCK, pb += BLOCK) {
		ni_begin(&a, pa);
		ni_begin(&b, pb);
#pragma GCC unroll 16
		for (g = 0; g < 16; g++) {
			ni_group(&a, g);
			ni_group(&b, g);
		}
		ni_end(&a);
		ni_end(&b);
	}
	ni_store_state(&a, ha);
	ni_store_state(&b, hb);
}

static bool cpu_has_sha_ni(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) ||
	    !(c & bit_SSSE3))
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (b & bit_SHA) != 0;
}
#else
static void ni_blocks1(uint32_t h[8], const uint8_t *p, size_t n)
{
	(void)h;
	(void)p;
	(void)n;
}

static void ni_blocks2(uint32_t ha[8], const uint8_t *pa, uint32_t hb[8],
		       const uint8_t *pb, size_t n)
{
	(void)ha;
	(void)pa;
	(void)hb;
	(void)pb;
	(void)n;
}

static bool cpu_has_sha_ni(void)
{
	return false;
}
#endif

static void lane_reset(struct lane *l)
{
	memcpy(l->h, IV, sizeof(IV));
	l->buf_len = 0;
	l->total = 0;
}

bool lp_cv_sha_pair_accelerated(void)
{
	return cpu_has_sha_ni();
}

int lp_cv_sha_pair_new(bool blob, struct lp_cv_sha_pair **ret)
{
	struct lp_cv_sha_pair *p = calloc(1, sizeof(*p));
	unsigned int i;
	int r = 0;

	if (!p)
		return -ENOMEM;
	p->nr = blob ? 2 : 1;
	p->ni = cpu_has_sha_ni();
	for (i = 0; i < p->nr; i++) {
		lane_reset(&p->lane[i]);
		if (!p->ni && r == 0)
			r = lp_sha256_new(&p->evp[i]);
	}
	if (r < 0) {
		lp_cv_sha_pair_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void lp_cv_sha_pair_free(struct lp_cv_sha_pair *p)
{
	unsigned int i;

	if (!p)
		return;
	for (i = 0; i < LANES; i++)
		lp_sha256_free(p->evp[i]);
	free(p);
}

/* @n bytes at @d into lanes 0 .. @nr - 1 */
static void update(struct lp_cv_sha_pair *p, unsigned int nr, const uint8_t *d,
		   size_t n)
{
	const uint8_t *at[LANES];
	size_t left[LANES], k, both;
	unsigned int i;

	if (!p->ni) {
		for (i = 0; i < nr; i++)
			lp_sha256_update(p->evp[i], d, n);
		return;
	}
	for (i = 0; i < nr; i++) {
		struct lane *l = &p->lane[i];

		at[i] = d;
		left[i] = n;
		l->total += n;
		if (!l->buf_len)
			continue;
		k = lp_min_u64(BLOCK - l->buf_len, n);
		memcpy(l->buf + l->buf_len, d, k);
		l->buf_len += k;
		at[i] += k;
		left[i] -= k;
		if (l->buf_len == BLOCK) {
			ni_blocks1(l->h, l->buf, 1);
			l->buf_len = 0;
		}
	}
	if (nr == 2) {
		both = lp_min_u64(left[0], left[1]) / BLOCK;
		ni_blocks2(p->lane[0].h, at[0], p->lane[1].h, at[1], both);
		for (i = 0; i < 2; i++) {
			at[i] += both * BLOCK;
			left[i] -= both * BLOCK;
		}
	}
	for (i = 0; i < nr; i++) {
		struct lane *l = &p->lane[i];

		k = left[i] / BLOCK;
		ni_blocks1(l->h, at[i], k);
		at[i] += k * BLOCK;
		left[i] -= k * BLOCK;
		/* a lane with bytes buffered took all of @d or emptied it */
		memcpy(l->buf + l->buf_len, at[i], left[i]);
		l->buf_len += left[i];
	}
}

void lp_cv_sha_pair_update(struct lp_cv_sha_pair *p, const void *d, size_t n)
{
	update(p, p->nr, d, n);
}

void lp_cv_sha_pair_update_span(struct lp_cv_sha_pair *p, const void *d,
				size_t n)
{
	update(p, 1, d, n);
}

/* lane @i's digest into @out; the lane starts again */
static void lane_final(struct lp_cv_sha_pair *p, unsigned int i,
		       struct lp_digest *out)
{
	struct lane *l = &p->lane[i];
	uint64_t bits = l->total * 8;
	unsigned int k;

	if (!p->ni) {
		lp_sha256_final(p->evp[i], out); /* restarts it */
		return;
	}
	l->buf[l->buf_len++] = 0x80;
	if (l->buf_len > BLOCK - 8) {
		memset(l->buf + l->buf_len, 0, BLOCK - l->buf_len);
		ni_blocks1(l->h, l->buf, 1);
		l->buf_len = 0;
	}
	memset(l->buf + l->buf_len, 0, BLOCK - 8 - l->buf_len);
	for (k = 0; k < 8; k++)
		l->buf[BLOCK - 1 - k] = (uint8_t)(bits >> (8 * k));
	ni_blocks1(l->h, l->buf, 1);
	for (k = 0; k < 8; k++) {
		out->b[4 * k] = (uint8_t)(l->h[k] >> 24);
		out->b[4 * k + 1] = (uint8_t)(l->h[k] >> 16);
		out->b[4 * k + 2] = (uint8_t)(l->h[k] >> 8);
		out->b[4 * k + 3] = (uint8_t)l->h[k];
	}
	lane_reset(l);
}

void lp_cv_sha_pair_final_span(struct lp_cv_sha_pair *p, struct lp_digest *out)
{
	lane_final(p, 0, out);
}

void lp_cv_sha_pair_final_blob(struct lp_cv_sha_pair *p, struct lp_digest *out)
{
	if (p->nr == 2)
		lane_final(p, 1, out);
}
