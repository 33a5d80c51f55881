// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for format/'s prioritised-file list reader (lp_prio.h), the
 * one that replaced the layer converter's and image/'s copies: the cases
 * each copy handled (plain and JSON lines, comments, blanks, CRLF, a last
 * line without newline, camelCase layer members, layer member checks, the
 * line/path/count/file bounds, line numbers in messages) and what neither
 * checked before (NUL bytes, text after the JSON object, an escaped NUL in
 * a path).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_prio.h"

static int parse(const char *text, struct lp_prio_list *l, struct lp_err *err)
{
	lp_err_clear(err);
	return lp_prio_parse(text, strlen(text), "list", l, err);
}

static void test_prio_lines(void **state)
{
	static const char dg[] = "sha256:0123456789abcdef0123456789abcdef"
				 "0123456789abcdef0123456789abcdef";
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	struct lp_digest d;
	char text[1024];

	(void)state;
	assert_int_equal(lp_digest_parse(dg, &d), 0);
	snprintf(text, sizeof(text),
		 "# comment\n"
		 "\n"
		 "./usr/bin/tool\r\n"
		 "  \t\n"
		 "\t# indented comment\n"
		 "  padded path \t\n"
		 "{\"path\":\"./etc/a.conf\",\"atime\":12,\"x\":[1,{}]}\n"
		 "{\"path\":\"lib/y\",\"layer_digest\":\"%s\"}\n"
		 "{\"path\":\"lib/z\",\"layerIndex\":3}\n"
		 "  {\"path\":\" w \",\"layerDigest\":\"%s\","
		 "\"layer_index\":0} \r\n"
		 "a #not a comment\n"
		 "last-without-newline",
		 dg, dg);
	assert_int_equal(parse(text, &l, &err), 8);
	assert_int_equal(l.n, 8);
	assert_string_equal(l.items[0].path, "./usr/bin/tool");
	assert_false(l.items[0].has_digest);
	assert_int_equal(l.items[0].layer_index, -1);
	/* blanks around a plain path are not part of it */
	assert_string_equal(l.items[1].path, "padded path");
	/* other members ignored */
	assert_string_equal(l.items[2].path, "./etc/a.conf");
	assert_int_equal(l.items[2].layer_index, -1);
	assert_string_equal(l.items[3].path, "lib/y");
	assert_true(l.items[3].has_digest);
	assert_true(lp_digest_equal(&l.items[3].layer_digest, &d));
	assert_string_equal(l.items[4].path, "lib/z");
	assert_false(l.items[4].has_digest);
	assert_int_equal(l.items[4].layer_index, 3);
	/* a JSON path keeps its blanks */
	assert_string_equal(l.items[5].path, " w ");
	assert_true(l.items[5].has_digest);
	assert_int_equal(l.items[5].layer_index, 0);
	assert_string_equal(l.items[6].path, "a #not a comment");
	assert_string_equal(l.items[7].path, "last-without-newline");
	lp_prio_release(&l);
	assert_null(l.items);
	assert_int_equal(l.n, 0);
	lp_prio_release(&l);
	lp_prio_release(NULL);
	/* empty and comment-only lists */
	assert_int_equal(parse("", &l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(parse("#\n\n \n", &l, &err), 0);
	lp_prio_release(&l);
}

static void test_prio_malformed(void **state)
{
	static const char *const bad[] = {
		"{\"path\":\"a\"",
		"{\"nopath\":\"a\"}",
		"{\"path\":\"\"}",
		"{\"path\":7}",
		"{\"path\":null}",
		"{\"path\":\"a\\u0000b\"}",
		"{\"path\":\"a\"} trailing",
		"{\"path\":\"a\"}{}",
		"{\"path\":\"a\",\"layer_digest\":\"sha256:abc\"}",
		"{\"path\":\"a\",\"layer_digest\":\"md5:0123\"}",
		"{\"path\":\"a\",\"layer_digest\":12}",
		"{\"path\":\"a\",\"layerDigest\":\"\"}",
		"{\"path\":\"a\",\"layer_index\":-1}",
		"{\"path\":\"a\",\"layer_index\":\"1\"}",
		"{\"path\":\"a\",\"layer_index\":1.5}",
		"{\"path\":\"a\",\"layer_index\":99999999999999999999}",
		"{\"path\":\"a\",\"layerIndex\":1024}",
		"{not json}",
		"{",
		/* nested deeper than LP_TOC_MAX_JSON_NESTING */
		"{\"path\":\"a\",\"x\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}",
	};
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	char text[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "ok/one\n# c\n%s\nok/two\n",
			 bad[i]);
		assert_int_equal(parse(text, &l, &err), -EINVAL);
		if (!strstr(err.msg, "list:3:"))
			fail_msg("'%s': no line number in '%s'", bad[i],
				 err.msg);
		assert_int_equal(l.n, 0);
		assert_null(l.items);
	}
	/* a NUL byte in a plain line */
	lp_err_clear(&err);
	assert_int_equal(lp_prio_parse("a\nb\0c\n", 6, "list", &l, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "list:2:"));
	assert_int_equal(l.n, 0);
}

static void test_prio_bounds(void **state)
{
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	size_t n = LP_PRIO_MAX_PATHS + 1, i;
	char *big;
	int r;

	(void)state;
	/* a line of exactly LP_PRIO_MAX_LINE bytes (newline included), one
	   over; a path of LP_PRIO_MAX_PATH bytes, one over */
	big = malloc(2 * LP_PRIO_MAX_LINE);
	assert_non_null(big);
	memset(big, 'a', LP_PRIO_MAX_PATH);
	big[LP_PRIO_MAX_PATH] = '\0';
	assert_int_equal(parse(big, &l, &err), 1);
	assert_int_equal(strlen(l.items[0].path), LP_PRIO_MAX_PATH);
	lp_prio_release(&l);
	big[LP_PRIO_MAX_PATH] = 'a';
	big[LP_PRIO_MAX_PATH + 1] = '\0';
	assert_int_equal(parse(big, &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "LP_PRIO_MAX_PATH"));
	memset(big, ' ', LP_PRIO_MAX_LINE - 2);
	big[LP_PRIO_MAX_LINE - 2] = 'a';
	big[LP_PRIO_MAX_LINE - 1] = '\n';
	big[LP_PRIO_MAX_LINE] = '\0';
	assert_int_equal(parse(big, &l, &err), 1);
	lp_prio_release(&l);
	big[LP_PRIO_MAX_LINE - 1] = ' ';
	big[LP_PRIO_MAX_LINE] = '\n';
	big[LP_PRIO_MAX_LINE + 1] = '\0';
	assert_int_equal(parse(big, &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "list:1:"));
	assert_non_null(strstr(err.msg, "LP_PRIO_MAX_LINE"));
	free(big);

	/* LP_PRIO_MAX_PATHS paths, then one more */
	big = malloc(2 * n + 1);
	assert_non_null(big);
	for (i = 0; i < n; i++) {
		big[2 * i] = 'p';
		big[2 * i + 1] = '\n';
	}
	r = lp_prio_parse(big, 2 * (n - 1), "list", &l, &err);
	assert_int_equal(r, LP_PRIO_MAX_PATHS);
	lp_prio_release(&l);
	lp_err_clear(&err);
	assert_int_equal(lp_prio_parse(big, 2 * n, "list", &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "LP_PRIO_MAX_PATHS"));
	assert_int_equal(l.n, 0);
	free(big);
}

static void test_prio_load(void **state)
{
	char dir[] = "/tmp/lp-test-prio.XXXXXX", path[PATH_MAX];
	struct lp_prio_list l = { 0 };
	struct lp_err err = { 0 };
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/list", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a\n{\"nopath\":1}\n", 15), 15);
	/* the messages name the file */
	assert_int_equal(lp_prio_load(path, &l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ":2:"));
	assert_non_null(strstr(err.msg, path));
	lp_err_clear(&err);
	/* a file of exactly LP_PRIO_MAX_FILE bytes is read and parsed, one
	   byte more is refused before parsing */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(write(fd, "a\n", 2), 2);
	assert_int_equal(ftruncate(fd, LP_PRIO_MAX_FILE), 0);
	/* the zero bytes after "a\n" are one long line 2 */
	assert_int_equal(lp_prio_load(path, &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, ":2: line over LP_PRIO_MAX_LINE"));
	lp_err_clear(&err);
	assert_int_equal(ftruncate(fd, LP_PRIO_MAX_FILE + 1), 0);
	assert_int_equal(lp_prio_load(path, &l, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "LP_PRIO_MAX_FILE"));
	lp_err_clear(&err);
	close(fd);
	unlink(path);
	/* missing file; a directory */
	assert_int_equal(lp_prio_load(path, &l, &err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	assert_true(lp_prio_load(dir, &l, &err) < 0);
	assert_int_equal(l.n, 0);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prio_lines),
		cmocka_unit_test(test_prio_malformed),
		cmocka_unit_test(test_prio_bounds),
		cmocka_unit_test(test_prio_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
