/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SHA-256 digests (OpenSSL libcrypto) and their "sha256:<64 hex>" form, the
 * only digest algorithm eStargz, OCI and containerd use here.
 *
 * A struct lp_sha256 is one streaming context: use it from one thread at a
 * time.
 */
#ifndef LP_DIGEST_H
#define LP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_SHA256_LEN 32
/* "sha256:" + 64 hex digits, without the terminating NUL */
#define LP_DIGEST_STR_LEN (7 + 2 * LP_SHA256_LEN)

struct lp_digest {
	uint8_t b[LP_SHA256_LEN];
};

/*
 * lp_digest_parse() - parse "sha256:<64 lowercase hex>" (exactly; nothing
 * after it). Returns 0, or -EINVAL for anything else.
 */
int lp_digest_parse(const char *s, struct lp_digest *out);

/* lp_digest_parse_n() - the same for a string of @len bytes, not NUL-ended. */
int lp_digest_parse_n(const char *s, size_t len, struct lp_digest *out);

/* lp_digest_format() - write "sha256:<hex>" and a NUL into @out. */
void lp_digest_format(const struct lp_digest *d,
		      char out[LP_DIGEST_STR_LEN + 1]);

static inline bool lp_digest_equal(const struct lp_digest *a,
				   const struct lp_digest *b)
{
	return __builtin_memcmp(a->b, b->b, LP_SHA256_LEN) == 0;
}

/* lp_sha256() - digest of one buffer. */
void lp_sha256(const void *data, size_t len, struct lp_digest *out);

struct lp_sha256;

/* lp_sha256_new() - a streaming context; free with lp_sha256_free(). */
int lp_sha256_new(struct lp_sha256 **ret_ctx);
void lp_sha256_update(struct lp_sha256 *ctx, const void *data, size_t len);
/* lp_sha256_final() - write the digest and reset @ctx for reuse. */
void lp_sha256_final(struct lp_sha256 *ctx, struct lp_digest *out);
/* lp_sha256_free() - NULL allowed. */
void lp_sha256_free(struct lp_sha256 *ctx);

#endif /* LP_DIGEST_H */
