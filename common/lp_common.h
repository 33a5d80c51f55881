/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers every module uses: array sizes, min/max, overflow-checked
 * arithmetic, unaligned little-endian access and a monotonic clock.
 * Header-only.
 */
#ifndef LP_COMMON_H
#define LP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define LP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LP_KIB ((uint64_t)1024)
#define LP_MIB (LP_KIB * 1024)
#define LP_GIB (LP_MIB * 1024)

/* CLOCK_MONOTONIC in ns: for durations and "how long ago" */
static inline uint64_t lp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in ms */
static inline uint64_t lp_mono_ms(void)
{
	return lp_mono_ns() / 1000000u;
}

/* the value of hex digit @c (either case), or -1 */
static inline int lp_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline uint64_t lp_min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t lp_max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* true when a + b overflows; *sum is set either way */
static inline bool lp_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
	return __builtin_add_overflow(a, b, sum);
}

static inline uint32_t lp_get_le32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline uint64_t lp_get_le64(const void *p)
{
	const uint8_t *b = p;

	return (uint64_t)lp_get_le32(b) | (uint64_t)lp_get_le32(b + 4) << 32;
}

static inline void lp_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = v;
	b[1] = v >> 8;
	b[2] = v >> 16;
	b[3] = v >> 24;
}

static inline void lp_put_le64(void *p, uint64_t v)
{
	lp_put_le32(p, (uint32_t)v);
	lp_put_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

#endif /* LP_COMMON_H */
