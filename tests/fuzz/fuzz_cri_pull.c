// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: the CRI proxy's PullImageRequest decoder
 * (lp_cri_pull_decode) and, for what it accepts, the credential store's
 * handling of it (lp_cri_creds_put: image reference parsing, base64
 * "auth"). Decoded strings must be NUL-terminated within their arrays and
 * free of NULs; a refused message must leave the result wiped.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cri_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t size)
{
	if (strnlen(s, size) >= size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_cri_pull *p = malloc(sizeof(*p));
	struct lp_cri_creds *s = NULL;
	size_t i;

	if (!p)
		return 0;
	if (lp_cri_pull_decode(data, size, p) == 0) {
		check_str(p->image, sizeof(p->image));
		check_str(p->username, sizeof(p->username));
		check_str(p->password, sizeof(p->password));
		check_str(p->auth, sizeof(p->auth));
		check_str(p->server_address, sizeof(p->server_address));
		check_str(p->identity_token, sizeof(p->identity_token));
		check_str(p->registry_token, sizeof(p->registry_token));
		if (lp_cri_creds_new(&s) == 0) {
			int r = lp_cri_creds_put(s, p);

			if (r > 0 && lp_cri_creds_count(s) != 1)
				abort();
			if (r <= 0 && lp_cri_creds_count(s) != 0)
				abort();
			lp_cri_creds_free(s);
		}
	} else {
		for (i = 0; i < sizeof(*p); i++)
			if (((const uint8_t *)p)[i])
				abort();
	}
	free(p);
	return 0;
}
