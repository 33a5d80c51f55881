// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for the CRI proxy's pieces that need no sockets: the
 * PullImageRequest decoder (protobuf bytes written here by hand with the
 * runtime.v1 field numbers) and the credential store (put, replace,
 * forget, lookup by repository then by registry, applied to a registry
 * client). The proxy itself is covered by integration/test_cri.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cri_int.h"
#include "lp_registry.h"
#include "reg_int.h"

struct pb {
	uint8_t b[4096];
	size_t n;
};

static void pb_varint(struct pb *p, uint64_t v)
{
	do {
		uint8_t c = v & 0x7f;

		v >>= 7;
		p->b[p->n++] = c | (v ? 0x80 : 0);
	} while (v);
}

static void pb_bytes(struct pb *p, uint32_t num, const void *d, size_t len)
{
	pb_varint(p, (uint64_t)num << 3 | 2);
	pb_varint(p, len);
	memcpy(p->b + p->n, d, len);
	p->n += len;
}

static void pb_str(struct pb *p, uint32_t num, const char *s)
{
	pb_bytes(p, num, s, strlen(s));
}

/* PullImageRequest{image{image}, auth{username, password, auth}} */
static void pull_msg(struct pb *out, const char *image, const char *user,
		     const char *pw, const char *auth)
{
	struct pb spec = { .n = 0 }, ac = { .n = 0 }, sb = { .n = 0 };

	pb_str(&spec, 1, image);
	pb_str(&spec, 2, "\x0a\x01k\x12\x01v"); /* an annotations entry */
	if (user)
		pb_str(&ac, 1, user);
	if (pw)
		pb_str(&ac, 2, pw);
	if (auth)
		pb_str(&ac, 3, auth);
	pb_str(&ac, 4, "127.0.0.1:5000");
	pb_str(&sb, 1, "metadata");
	out->n = 0;
	pb_bytes(out, 1, spec.b, spec.n);
	if (user || pw || auth)
		pb_bytes(out, 2, ac.b, ac.n);
	pb_bytes(out, 3, sb.b, sb.n);
}

static struct lp_cri_pull pull;

static void test_decode(void **state)
{
	struct pb m;

	(void)state;
	pull_msg(&m, "127.0.0.1:5000/lp/app:v1", "alice", "s3cret", NULL);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_string_equal(pull.image, "127.0.0.1:5000/lp/app:v1");
	assert_true(pull.has_auth);
	assert_string_equal(pull.username, "alice");
	assert_string_equal(pull.password, "s3cret");
	assert_string_equal(pull.server_address, "127.0.0.1:5000");
	pull_msg(&m, "busybox", NULL, NULL, NULL);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_string_equal(pull.image, "busybox");
	assert_false(pull.has_auth);
	/* every proper prefix is refused (truncated), and wiped */
	pull_msg(&m, "127.0.0.1:5000/lp/app:v1", "alice", "s3cret", NULL);
	for (size_t n = 1; n < m.n; n++) {
		int r = lp_cri_pull_decode(m.b, n, &pull);

		if (r == 0)
			continue; /* ends on a field boundary: valid */
		assert_int_equal(r, -EPROTO);
		assert_int_equal(pull.image[0] | pull.username[0], 0);
	}
	/* a string over its bound */
	{
		static char big[LP_CRI_CRED_MAX + 1];

		memset(big, 'u', sizeof(big) - 1);
		pull_msg(&m, "x.io/a", big, "p", NULL);
		assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), -EFBIG);
	}
	/* image as a varint: wrong wire type */
	m.n = 0;
	pb_varint(&m, 1 << 3 | 0);
	pb_varint(&m, 5);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), -EPROTO);
}

static void test_store(void **state)
{
	struct lp_cri_creds *s;
	struct lp_reg_auth *auth = NULL;
	struct lp_reg_cred cred;
	struct lp_reg *reg;
	struct lp_reg_ref ref;
	struct pb m;

	(void)state;
	assert_int_equal(lp_cri_creds_new(&s), 0);
	assert_int_equal(lp_reg_new(NULL, &reg), 0);
	pull_msg(&m, "127.0.0.1:5000/lp/app:v1", "alice", "s3cret", NULL);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_int_equal(lp_cri_creds_put(s, &pull), 1);
	/* base64 auth, same repository by digest: replaces */
	pull_msg(&m,
		 "127.0.0.1:5000/lp/app@sha256:"
		 "0123456789abcdef0123456789abcdef"
		 "0123456789abcdef0123456789abcdef",
		 NULL, NULL, "Ym9iOnBhOnNz" /* bob:pa:ss */);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_int_equal(lp_cri_creds_put(s, &pull), 1);
	assert_int_equal(lp_cri_creds_count(s), 1);
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/lp/app:v2", &ref), 0);
	assert_int_equal(lp_cri_creds_get(s, &ref, &auth), 1);
	assert_non_null(auth);
	/* what a request for that reference sends: the handle's (bob), not
	 * what was set last on the shared client (mallory) */
	assert_int_equal(lp_reg_set_credentials(reg, "127.0.0.1:5000",
						"mallory", "other"),
			 0);
	ref.auth = auth;
	assert_int_equal(reg_req_cred(reg, &ref, &cred), 1);
	assert_string_equal(cred.user, "bob");
	assert_string_equal(cred.secret, "pa:ss");
	/* the store forgets it: the reference's handle lives on */
	pull_msg(&m, "127.0.0.1:5000/lp/app:v1", "carol", "c", NULL);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_int_equal(lp_cri_creds_put(s, &pull), 1);
	assert_int_equal(reg_req_cred(reg, &ref, &cred), 1);
	assert_string_equal(cred.user, "bob");
	/* a mirror of the registry is not sent the handle's credentials */
	snprintf(ref.host, sizeof(ref.host), "mirror.example:5000");
	assert_int_equal(
		lp_reg_set_credentials(reg, "mirror.example:5000", "m", "mp"),
		0);
	assert_int_equal(reg_req_cred(reg, &ref, &cred), 1);
	assert_string_equal(cred.user, "m");
	lp_reg_auth_unref(auth);
	/* without a handle: the client's */
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/lp/app:v2", &ref), 0);
	assert_null(ref.auth);
	assert_int_equal(reg_req_cred(reg, &ref, &cred), 1);
	assert_string_equal(cred.user, "mallory");
	/* another repository of the same registry gets none */
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/other:v1", &ref), 0);
	assert_int_equal(lp_cri_creds_get(s, &ref, &auth), 0);
	assert_null(auth);
	assert_int_equal(lp_reg_ref_parse("127.0.0.2:5000/lp/app:v1", &ref), 0);
	assert_int_equal(lp_cri_creds_get(s, &ref, &auth), 0);
	/* auth that is not user:password */
	pull_msg(&m, "x.io/a:b", NULL, NULL, "bm9jb2xvbg==");
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_int_equal(lp_cri_creds_put(s, &pull), -EINVAL);
	/* a pull without credentials forgets the repository's */
	pull_msg(&m, "127.0.0.1:5000/lp/app:v1", NULL, NULL, NULL);
	assert_int_equal(lp_cri_pull_decode(m.b, m.n, &pull), 0);
	assert_int_equal(lp_cri_creds_put(s, &pull), 0);
	assert_int_equal(lp_cri_creds_count(s), 0);
	assert_int_equal(lp_reg_ref_parse("127.0.0.1:5000/lp/app:v1", &ref), 0);
	assert_int_equal(lp_cri_creds_get(s, &ref, &auth), 0);
	lp_reg_free(reg);
	lp_cri_creds_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
