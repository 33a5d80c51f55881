// SPDX-License-Identifier: Apache-2.0
/*
 * Base64 encoding and decoding: see lp_base64.h.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lp_base64.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* the four characters for @in[0..n), n in 1..3, padded */
static void encode_group(const uint8_t *in, size_t n, char q[4])
{
	uint32_t x = (uint32_t)in[0] << 16;

	if (n > 1)
		x |= (uint32_t)in[1] << 8;
	if (n > 2)
		x |= in[2];
	q[0] = b64_alphabet[x >> 18 & 63];
	q[1] = b64_alphabet[x >> 12 & 63];
	q[2] = n > 1 ? b64_alphabet[x >> 6 & 63] : '=';
	q[3] = n > 2 ? b64_alphabet[x & 63] : '=';
}

int lp_base64_encode(const void *in, size_t len, char *out, size_t size)
{
	const uint8_t *p = in;
	size_t i, o = 0;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || lp_base64_len(len) >= size)
		return -EFBIG;
	for (i = 0; i < len; i += 3, o += 4)
		encode_group(p + i, len - i < 3 ? len - i : 3, out + o);
	out[o] = '\0';
	return 0;
}

int lp_base64_encode_buf(struct lp_buf *b, const void *in, size_t len)
{
	const uint8_t *p = in;
	size_t i;
	char q[4];
	int r;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2)
		return -EFBIG;
	r = lp_buf_reserve(b, lp_base64_len(len));
	for (i = 0; r == 0 && i < len; i += 3) {
		encode_group(p + i, len - i < 3 ? len - i : 3, q);
		r = lp_buf_append(b, q, 4);
	}
	return r;
}

/* the value of character @c, or -1 when @mode does not accept it */
static int decode_char(char c, enum lp_base64_mode mode)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || (c == '-' && mode == LP_BASE64_LENIENT))
		return 62;
	if (c == '/' || (c == '_' && mode == LP_BASE64_LENIENT))
		return 63;
	return -1;
}

/* @len after the padding @mode allows is dropped; -EINVAL when misplaced */
static int strip_padding(const char *s, size_t *len, enum lp_base64_mode mode)
{
	size_t n = *len;

	if (mode == LP_BASE64_STRICT) {
		if (n % 4)
			return -EINVAL;
		if (n && s[n - 1] == '=')
			n--;
		if (n && s[n - 1] == '=' && n % 4 == 3)
			n--;
		/* a group of one character ("A===") is not valid */
		if (n % 4 == 1)
			return -EINVAL;
	} else {
		while (n && s[n - 1] == '=')
			n--;
	}
	*len = n;
	return 0;
}

int lp_base64_decode(const char *s, size_t len, enum lp_base64_mode mode,
		     void *out, size_t size, size_t *ret_len)
{
	uint8_t *o = out;
	uint32_t acc = 0;
	size_t i, n = 0;
	int bits = 0, r;

	r = strip_padding(s, &len, mode);
	if (r < 0)
		return r;
	for (i = 0; i < len; i++) {
		int v = decode_char(s[i], mode);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= size)
				return -EFBIG;
			o[n++] = (uint8_t)(acc >> bits);
		}
	}
	*ret_len = n;
	return 0;
}
