/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Base64 (RFC 4648), the one copy: the TOC's xattr values (format/, Go's
 * encoding of []byte: standard alphabet, padded), the registry's Basic
 * authorization header and the "auth" members of a docker config.json
 * (which tools write with or without padding, some URL-safe).
 *
 * Decoding is bounded by the output size the caller gives; nothing is
 * allocated.
 */
#ifndef LP_BASE64_H
#define LP_BASE64_H

#include <stddef.h>

#include "lp_buf.h"

/* lp_base64_len() - the padded encoding's length for @len bytes (no NUL) */
static inline size_t lp_base64_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

/*
 * lp_base64_encode() - standard padded base64 of @in[0..@len) into @out,
 * NUL-terminated. Returns 0, or -EFBIG when @size is below
 * lp_base64_len(@len) + 1 (@out untouched).
 */
int lp_base64_encode(const void *in, size_t len, char *out, size_t size);

/* lp_base64_encode_buf() - the same, appended to @b (no NUL counted). */
int lp_base64_encode_buf(struct lp_buf *b, const void *in, size_t len);

enum lp_base64_mode {
	/*
	 * Go's base64.StdEncoding: standard alphabet, length a multiple of
	 * four, '=' only as the last one or two characters. Bits past the
	 * last byte are ignored (as Go does).
	 */
	LP_BASE64_STRICT,
	/*
	 * What docker config.json "auth" members hold in the wild: padding
	 * optional (any run of trailing '=' is dropped), the standard and the
	 * URL-safe alphabet ('-' '_'), a final partial group's spare bits
	 * ignored.
	 */
	LP_BASE64_LENIENT,
};

/*
 * lp_base64_decode() - decode @s[0..@len) into @out (@size bytes; no NUL is
 * written). Sets *@ret_len to the bytes written. Returns 0, -EINVAL for a
 * character or padding @mode does not accept, -EFBIG when the result does
 * not fit in @size.
 */
int lp_base64_decode(const char *s, size_t len, enum lp_base64_mode mode,
		     void *out, size_t size, size_t *ret_len);

#endif /* LP_BASE64_H */
