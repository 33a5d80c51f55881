// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: a token server's JSON reply (lp_reg_token_reply_parse) and,
 * on the same bytes, RFC 3339 time stamps (lp_reg_rfc3339_parse). A parsed
 * token must be a non-empty, header-safe string within its array, and the
 * lifetime derived from it positive and no longer than expires_in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_reg_token_reply *t = malloc(sizeof(*t));
	int64_t e, life;

	if (!t)
		return 0;
	if (lp_reg_token_reply_parse((const char *)data, size, t) == 0) {
		size_t n = strnlen(t->token, sizeof(t->token));

		if (!n || n >= sizeof(t->token) || strpbrk(t->token, "\r\n"))
			abort();
		if (t->expires_in_s < 0 ||
		    t->expires_in_s > LP_REG_TOKEN_TTL_MAX)
			abort();
		life = lp_reg_token_lifetime_ms(t, 1796576400123);
		if (life <= 0 ||
		    life > 1000 * (t->expires_in_s ?
					   t->expires_in_s :
					   LP_REG_TOKEN_DEFAULT_TTL_S))
			abort();
	}
	(void)lp_reg_rfc3339_parse((const char *)data, size, &e);
	free(t);
	return 0;
}
