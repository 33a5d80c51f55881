// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for format/'s prefetch profiles (lp_profile.h): one layer's
 * share of a profile in the profile's order, lines of other layers left
 * out, a line without a layer digest refusing the whole profile, the
 * profile's own size bound (tighter than a prioritised list's) and the
 * per-layer cap.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lp_buf.h"
#include "lp_profile.h"

#define DA \
	"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB \
	"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int layer_of(const char *text, const char *layer, struct lp_prio_list *l,
		    struct lp_err *err)
{
	struct lp_digest d;

	assert_int_equal(lp_digest_parse(layer, &d), 0);
	lp_err_clear(err);
	return lp_profile_layer(text, strlen(text), "profile", &d, l, err);
}

static void test_profile_layer(void **state)
{
	static const char text[] =
		"{\"path\":\"bin/sh\",\"layer_digest\":\"" DA "\"}\n"
		"{\"path\":\"etc/a.conf\",\"layer_digest\":\"" DB
		"\",\"layer_index\":2}\n"
		"# a comment\n"
		"{\"path\":\"bin/busybox\",\"layer_digest\":\"" DA "\"}\n"
		"{\"path\":\"data/b.txt\",\"layer_digest\":\"" DB "\"}\n";
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };

	(void)state;
	/* each layer's own, in the profile's order */
	assert_int_equal(layer_of(text, DA, &l, &err), 2);
	assert_string_equal(l.items[0].path, "bin/sh");
	assert_string_equal(l.items[1].path, "bin/busybox");
	lp_prio_release(&l);
	assert_int_equal(layer_of(text, DB, &l, &err), 2);
	assert_string_equal(l.items[0].path, "etc/a.conf");
	assert_string_equal(l.items[1].path, "data/b.txt");
	assert_int_equal(l.items[0].layer_index, 2);
	lp_prio_release(&l);
	/* a layer it does not name: none, not an error */
	assert_int_equal(
		layer_of(text,
			 "sha256:cccccccccccccccccccccccccccccccccccccccc"
			 "cccccccccccccccccccccccc",
			 &l, &err),
		0);
	assert_int_equal(l.n, 0);
	lp_prio_release(&l);
}

static void test_profile_refused(void **state)
{
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	struct lp_digest d;
	char *big;
	size_t i, n;

	(void)state;
	/* a line without a layer digest spoils the whole profile */
	assert_int_equal(layer_of("{\"path\":\"a\",\"layer_digest\":\"" DA
				  "\"}\n{\"path\":\"b\",\"layer_index\":0}\n",
				  DA, &l, &err),
			 -EINVAL);
	assert_int_equal(l.n, 0);
	assert_non_null(strstr(lp_err_str(&err, -EINVAL), "layer_digest"));
	/* refused when the digest-less line is read, before the lines
	 * after it are parsed (each would be an item otherwise) */
	assert_int_equal(layer_of("a\n{\"path\":\n", DA, &l, &err), -EINVAL);
	assert_non_null(strstr(lp_err_str(&err, -EINVAL), "layer_digest"));
	assert_non_null(strstr(lp_err_str(&err, -EINVAL), "line 1"));
	/* a plain path line names no layer either */
	assert_int_equal(layer_of("bin/sh\n", DA, &l, &err), -EINVAL);
	/* malformed JSON, a bad digest: the list reader's refusals */
	assert_int_equal(layer_of("{\"path\":\"a\",\"layer_digest\":\"sha256:"
				  "zz\"}\n",
				  DA, &l, &err),
			 -EINVAL);
	assert_int_equal(layer_of("{\"path\":\n", DA, &l, &err), -EINVAL);
	/* over LP_PROFILE_MAX_SIZE: refused before it is parsed */
	n = LP_PROFILE_MAX_SIZE + 1;
	big = malloc(n);
	assert_non_null(big);
	memset(big, '\n', n);
	assert_int_equal(lp_digest_parse(DA, &d), 0);
	assert_int_equal(lp_profile_layer(big, n, "big", &d, &l, &err), -EFBIG);
	assert_int_equal(l.n, 0);
	/* exactly at the bound: taken (blank lines, nothing listed) */
	assert_int_equal(lp_profile_layer(big, n - 1, "big", &d, &l, &err), 0);
	/* 2 MiB of plain lines: refused at the first (was: a million
	 * items built first, ~95 MB) */
	memset(big, 'a', n - 1);
	for (i = 1; i < n - 1; i += 2)
		big[i] = '\n';
	assert_int_equal(lp_profile_layer(big, n - 1, "big", &d, &l, &err),
			 -EINVAL);
	assert_non_null(strstr(lp_err_str(&err, -EINVAL), "line 1"));
	/* the bound is what a slow link fetches in the profile deadline */
	assert_true(LP_PROFILE_MAX_SIZE <= 2 * LP_MIB);
	free(big);
}

static void test_profile_cap(void **state)
{
	const size_t total = LP_PROFILE_MAX_PER_LAYER + 10;
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	struct lp_buf b;
	struct lp_digest d;
	char last[32];
	size_t i;

	(void)state;
	lp_buf_init(&b, LP_PROFILE_MAX_SIZE);
	for (i = 0; i < total; i++)
		assert_int_equal(lp_buf_printf(&b,
					       "{\"path\":\"f%zu\",\"layer_"
					       "digest\":\"" DA "\"}\n",
					       i),
				 0);
	assert_int_equal(lp_digest_parse(DA, &d), 0);
	/* the first LP_PROFILE_MAX_PER_LAYER, the rest dropped */
	assert_int_equal(lp_profile_layer(b.data, b.len, "many", &d, &l, &err),
			 LP_PROFILE_MAX_PER_LAYER);
	assert_string_equal(l.items[0].path, "f0");
	snprintf(last, sizeof(last), "f%d", LP_PROFILE_MAX_PER_LAYER - 1);
	assert_string_equal(l.items[LP_PROFILE_MAX_PER_LAYER - 1].path, last);
	lp_prio_release(&l);
	lp_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_layer),
		cmocka_unit_test(test_profile_refused),
		cmocka_unit_test(test_profile_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
