// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for common/: digests, the capped buffer, the error buffer and
 * the blob sources (file and memory).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_blob.h"
#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_err.h"

static void test_digest_known(void **state)
{
	char s[LP_DIGEST_STR_LEN + 1];
	struct lp_digest d, e;
	struct lp_sha256 *ctx = NULL;

	lp_sha256("", 0, &d);
	lp_digest_format(&d, s);
	assert_string_equal(
		s,
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	lp_sha256("abc", 3, &d);
	lp_digest_format(&d, s);
	assert_string_equal(
		s,
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	/* streaming equals one-shot, and final resets the context */
	assert_int_equal(lp_sha256_new(&ctx), 0);
	lp_sha256_update(ctx, "a", 1);
	lp_sha256_update(ctx, "bc", 2);
	lp_sha256_final(ctx, &e);
	assert_true(lp_digest_equal(&d, &e));
	lp_sha256_update(ctx, "abc", 3);
	lp_sha256_final(ctx, &e);
	assert_true(lp_digest_equal(&d, &e));
	lp_sha256_free(ctx);
	lp_sha256_free(NULL);
}

static void test_digest_parse(void **state)
{
	const char *good =
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	char s[LP_DIGEST_STR_LEN + 1];
	struct lp_digest d;

	assert_int_equal(lp_digest_parse(good, &d), 0);
	lp_digest_format(&d, s);
	assert_string_equal(s, good);

	assert_int_equal(lp_digest_parse("", &d), -EINVAL);
	assert_int_equal(lp_digest_parse("sha256:", &d), -EINVAL);
	assert_int_equal(
		lp_digest_parse(
			"sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			&d),
		-EINVAL);
	/* uppercase hex, a trailing byte, a short digest */
	assert_int_equal(
		lp_digest_parse(
			"sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			&d),
		-EINVAL);
	assert_int_equal(
		lp_digest_parse(
			"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
			&d),
		-EINVAL);
	assert_int_equal(lp_digest_parse("sha256:ba78", &d), -EINVAL);
	assert_int_equal(lp_digest_parse_n(good, strlen(good) - 1, &d),
			 -EINVAL);
}

static void test_buf_cap(void **state)
{
	struct lp_buf b;
	uint8_t *p;
	size_t len;

	lp_buf_init(&b, 10);
	assert_int_equal(lp_buf_append(&b, "hello", 5), 0);
	assert_int_equal(lp_buf_printf(&b, "%d", 1234), 0);
	assert_int_equal(b.len, 9);
	assert_string_equal((char *)b.data, "hello1234");
	assert_int_equal(lp_buf_append(&b, "xy", 2), -EFBIG);
	assert_int_equal(lp_buf_printf(&b, "%s", "xy"), -EFBIG);
	assert_int_equal(b.len, 9); /* a failed append changes nothing */
	assert_int_equal(lp_buf_append(&b, "x", 1), 0);
	assert_int_equal(b.len, 10);
	p = lp_buf_steal(&b, &len);
	assert_int_equal(len, 10);
	assert_memory_equal(p, "hello1234x", 11);
	free(p);
	assert_null(b.data);
	lp_buf_release(&b);

	/* growth across many appends keeps content */
	lp_buf_init(&b, 1 << 20);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(lp_buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.len, 100000);
	assert_memory_equal(b.data + 99990, "0123456789", 10);
	lp_buf_reset(&b);
	assert_int_equal(b.len, 0);
	lp_buf_release(&b);
}

static void test_err(void **state)
{
	struct lp_err err = { 0 };

	assert_int_equal(lp_err_set(&err, -EBADMSG, "first %d", 1), -EBADMSG);
	/* the root cause is kept */
	assert_int_equal(lp_err_set(&err, -EIO, "second"), -EIO);
	assert_string_equal(lp_err_str(&err, -EIO), "first 1");
	assert_int_equal(err.code, -EBADMSG);
	lp_err_clear(&err);
	assert_string_equal(lp_err_str(&err, -ENOENT), strerror(ENOENT));
	assert_int_equal(lp_err_set(NULL, -EINVAL, "dropped"), -EINVAL);
	lp_err_clear(NULL);
}

static void test_blob_mem(void **state)
{
	struct lp_blob *b = NULL, *r;
	char buf[8];

	assert_int_equal(lp_blob_new_mem("abcdefgh", 8, "m", &b), 0);
	assert_int_equal(lp_blob_size(b), 8);
	assert_string_equal(lp_blob_name(b), "m");
	assert_int_equal(lp_blob_pread(b, buf, 3, 5), 0);
	assert_memory_equal(buf, "fgh", 3);
	assert_int_equal(lp_blob_pread(b, buf, 4, 5), -ERANGE);
	assert_int_equal(lp_blob_pread(b, buf, 1, UINT64_MAX), -ERANGE);
	assert_int_equal(lp_blob_pread(b, buf, 0, 8), 0);
	r = lp_blob_ref(b);
	lp_blob_unref(b);
	assert_int_equal(lp_blob_pread(r, buf, 8, 0), 0);
	assert_memory_equal(buf, "abcdefgh", 8);
	lp_blob_unref(r);
	lp_blob_unref(NULL);
}

static void test_blob_file(void **state)
{
	char path[] = "/tmp/lp-test-blob.XXXXXX";
	struct lp_blob *b = NULL;
	char buf[16];
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_int_equal(lp_blob_open_file(path, &b), 0);
	assert_int_equal(lp_blob_size(b), 10);
	assert_int_equal(lp_blob_pread(b, buf, 4, 6), 0);
	assert_memory_equal(buf, "6789", 4);
	assert_int_equal(lp_blob_pread(b, buf, 11, 0), -ERANGE);
	/* the file shrinking under the blob is an I/O error, not short data */
	assert_int_equal(truncate(path, 5), 0);
	assert_int_equal(lp_blob_pread(b, buf, 4, 6), -EIO);
	lp_blob_unref(b);
	unlink(path);

	assert_int_equal(lp_blob_open_file("/nonexistent/x", &b), -ENOENT);
	assert_int_equal(lp_blob_open_file("/tmp", &b), -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_known),
		cmocka_unit_test(test_digest_parse),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_err),
		cmocka_unit_test(test_blob_mem),
		cmocka_unit_test(test_blob_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
