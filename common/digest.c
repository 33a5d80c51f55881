// SPDX-License-Identifier: Apache-2.0
/*
 * SHA-256 through OpenSSL's EVP interface, and the "sha256:hex" text form.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lp_digest.h"

struct lp_sha256 {
	EVP_MD_CTX *md;
};

/* lowercase hex digit values + 1, 0 for any other byte (a table: digests
   are most of a TOC's bytes, and a branch per digit mispredicts on them) */
static const uint8_t hexval_tab[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,
	['6'] = 7,  ['7'] = 8,	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
	['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* the value of hex digit @c, or -1 */
static int hexval(char c)
{
	return (int)hexval_tab[(unsigned char)c] - 1;
}

int lp_digest_parse_n(const char *s, size_t len, struct lp_digest *out)
{
	size_t i;
	int bad = 0;

	if (len != LP_DIGEST_STR_LEN || memcmp(s, "sha256:", 7) != 0)
		return -EINVAL;
	s += 7;

	for (i = 0; i < LP_SHA256_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		bad |= hi | lo; /* negative when either is not a digit */
		out->b[i] = (uint8_t)((unsigned int)hi << 4 | (unsigned int)lo);
	}
	return bad < 0 ? -EINVAL : 0;
}

int lp_digest_parse(const char *s, struct lp_digest *out)
{
	return lp_digest_parse_n(s, strlen(s), out);
}

void lp_digest_format(const struct lp_digest *d,
		      char out[LP_DIGEST_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	memcpy(out, "sha256:", 7);
	for (i = 0; i < LP_SHA256_LEN; i++) {
		out[7 + 2 * i] = hex[d->b[i] >> 4];
		out[8 + 2 * i] = hex[d->b[i] & 15];
	}
	out[LP_DIGEST_STR_LEN] = '\0';
}

void lp_sha256(const void *data, size_t len, struct lp_digest *out)
{
	unsigned int n = 0;

	/* EVP_Digest only fails on allocation failure or a broken provider */
	if (!EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL))
		abort();
}

int lp_sha256_new(struct lp_sha256 **ret_ctx)
{
	struct lp_sha256 *ctx;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->md = EVP_MD_CTX_new();
	if (!ctx->md || !EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL)) {
		lp_sha256_free(ctx);
		return -ENOMEM;
	}
	*ret_ctx = ctx;
	return 0;
}

void lp_sha256_update(struct lp_sha256 *ctx, const void *data, size_t len)
{
	if (!EVP_DigestUpdate(ctx->md, data, len))
		abort();
}

void lp_sha256_final(struct lp_sha256 *ctx, struct lp_digest *out)
{
	unsigned int n = 0;

	if (!EVP_DigestFinal_ex(ctx->md, out->b, &n) ||
	    !EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL))
		abort();
}

void lp_sha256_free(struct lp_sha256 *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}
