/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A raw deflate decoder (RFC 1951) that can stop at block boundaries.
 *
 * The gzip index build (converter/index_build.c) inflates a whole layer
 * and records a checkpoint at the first block boundary past every span:
 * that needs a decoder that stops there and tells where it stands (byte,
 * bit, 32 KiB window). zlib does (Z_BLOCK) but is the build's floor
 * (docs/benchmarks.md); libdeflate and ISA-L decode faster but cannot
 * stop at a block boundary; zlib-ng is not in Debian 12. This one decodes
 * as libdeflate does (a 64-bit bit buffer refilled without branches,
 * one-lookup tables with subtables, word-at-a-time match copies) and
 * stops where it is asked to. It is a parser of input from the network:
 * every code, length and distance is checked, and tests/fuzz/
 * fuzz_inflate.c checks it against zlib byte for byte.
 *
 * The caller owns the input; the decoder owns its output buffer: 32 KiB
 * of history and LP_INFLATE_OUT bytes of room. It stops only between
 * symbols, so the input needs no state of its own: a run asks for more
 * input (LP_INFLATE_INPUT) while fewer than LP_INFLATE_MARGIN bytes are
 * left, unless they are marked the last. Between runs the bit buffer
 * holds fewer than 8 bits: those of the last byte consumed, which
 * `next_in` has passed.
 */
#ifndef LP_INFLATE_H
#define LP_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_err.h"

#define LP_INFLATE_WINDOW 32768
#define LP_INFLATE_OUT (256 * 1024)
/* input a run wants before a block header or a symbol, unless the input
 * is the last: the longest dynamic header is about 286 bytes (14 bits,
 * 19 3-bit lengths, 316 codes of up to 7 bits) */
#define LP_INFLATE_MARGIN 1024

enum lp_inflate_stop {
	LP_INFLATE_INPUT = 1, /* wants more input than is left */
	LP_INFLATE_FULL, /* the output buffer is full: lp_inflate_slide() */
	LP_INFLATE_BOUNDARY, /* at a block boundary past stop_out */
	LP_INFLATE_END, /* the last block has ended */
};

struct lp_inflate_table; /* the decoding tables (inflate.c) */

struct lp_inflate {
	/* the caller's: the input, and whether it is the last */
	const uint8_t *next_in, *end_in;
	bool last_in;
	/* stop at the first block boundary (not after the last block) once
	 * out_total >= stop_out; UINT64_MAX: never */
	uint64_t stop_out;
	/* the output: out_total bytes since the stream's start, written up
	 * to `out` in buf; the history (up to LP_INFLATE_WINDOW bytes of
	 * this stream) before `out` */
	uint64_t out_total;
	uint8_t *buf, *out;
	/* the bits not consumed of the last byte read (0..7) */
	uint64_t bitbuf;
	unsigned bitcnt;
	/* the decoder's own */
	int state;
	bool final; /* the block being decoded is the last */
	uint32_t stored_left;
	struct lp_inflate_table *t;
};

/* a decoder at the start of a stream; free with lp_inflate_free() */
int lp_inflate_init(struct lp_inflate *s);
void lp_inflate_free(struct lp_inflate *s);
/* back to the start of a new stream (the history is forgotten) */
void lp_inflate_reset(struct lp_inflate *s);

/*
 * Decodes from next_in until one of enum lp_inflate_stop (> 0) or an
 * error (< 0, @err set: bad data, or the last input cut off). Bytes
 * written are those from `out` before the call to `out` after it.
 */
int lp_inflate_run(struct lp_inflate *s, struct lp_err *err);

/* makes room after LP_INFLATE_FULL: keeps the history, moves `out` */
void lp_inflate_slide(struct lp_inflate *s);

/* the history: the last min(out_total, LP_INFLATE_WINDOW) bytes */
size_t lp_inflate_window(const struct lp_inflate *s, const uint8_t **win);

#endif
