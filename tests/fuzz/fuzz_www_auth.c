// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: WWW-Authenticate challenge parsing (lp_reg_www_auth_parse)
 * and, on the same bytes, Content-Range parsing. A parsed challenge's
 * fields must be NUL-terminated within their arrays.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_reg_challenge ch;
	uint64_t a, b, t;

	if (lp_reg_www_auth_parse((const char *)data, size, &ch) == 0) {
		if (strnlen(ch.realm, sizeof(ch.realm)) >= sizeof(ch.realm) ||
		    strnlen(ch.scope, sizeof(ch.scope)) >= sizeof(ch.scope) ||
		    strnlen(ch.service, sizeof(ch.service)) >=
			    sizeof(ch.service))
			abort();
		if (ch.scheme == LP_REG_AUTH_BEARER && !ch.realm[0])
			abort();
	}
	if (lp_reg_content_range_parse((const char *)data, size, &a, &b, &t) ==
		    0 &&
	    (b < a || (t != UINT64_MAX && b >= t)))
		abort();
	return 0;
}
