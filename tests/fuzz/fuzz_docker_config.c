// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: docker config.json credentials (lp_reg_docker_config_lookup:
 * JSON, base64 "auth" members in common/'s lenient mode, host matching) and
 * a credential helper's reply (lp_reg_helper_parse). The first byte picks
 * the registry host looked up. On success every string must be terminated
 * within its field; a result other than 1, 0, -EPROTO, -EFBIG, -ENOMEM
 * aborts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int r, const struct lp_reg_cred *c)
{
	if (r != 1 && r != 0 && r != -EPROTO && r != -EFBIG && r != -ENOMEM)
		abort();
	if (r == 1 && (!memchr(c->user, '\0', sizeof(c->user)) ||
		       !memchr(c->secret, '\0', sizeof(c->secret)) ||
		       !memchr(c->helper, '\0', sizeof(c->helper))))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = {
		"registry-1.docker.io",
		"localhost:5000",
		"ghcr.io",
		"example.com",
	};
	struct lp_reg_cred c;
	int r;

	if (size < 1)
		return 0;
	memset(&c, 0, sizeof(c));
	r = lp_reg_docker_config_lookup((const char *)data + 1, size - 1,
					hosts[data[0] % 4], &c);
	check(r, &c);
	memset(&c, 0, sizeof(c));
	r = lp_reg_helper_parse((const char *)data + 1, size - 1, &c);
	check(r, &c);
	return 0;
}
