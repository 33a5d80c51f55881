// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for common/: digests, the capped buffer, the error buffer (its
 * retryable mark and HTTP status), the blob sources (file and memory) and
 * the hash maps.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lp_blob.h"
#include "lp_buf.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_hashmap.h"
#include "lp_io.h"

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

/* retryability is marked where an error arises and travels with it */
static void test_err_retryable(void **state)
{
	struct lp_err cause = { 0 }, err = { 0 }, other = { 0 };

	(void)state;
	/* nobody decided: permanent */
	assert_false(lp_err_retryable(NULL, -EIO));
	assert_false(lp_err_retryable(&err, -EIO));
	lp_err_set(&err, -EIO, "plain");
	assert_false(lp_err_retryable(&err, -EIO));
	assert_int_equal(err.http_status, 0);
	lp_err_clear(&err);

	assert_int_equal(lp_err_set_ex(&cause, -EIO, LP_ERR_RETRYABLE, 503,
				       "HTTP %d", 503),
			 -EIO);
	assert_true(lp_err_retryable(&cause, -EIO));
	/* another code than the one marked: not this error's mark */
	assert_false(lp_err_retryable(&cause, -EBADMSG));
	assert_int_equal(cause.http_status, 503);
	/* context added on the way up keeps the mark and the status */
	assert_int_equal(lp_err_set_from(&err, &cause, -EIO, "chunk: %s",
					 lp_err_str(&cause, -EIO)),
			 -EIO);
	assert_string_equal(err.msg, "chunk: HTTP 503");
	assert_true(lp_err_retryable(&err, -EIO));
	assert_int_equal(err.http_status, 503);
	/* first message wins, marks included */
	lp_err_set_ex(&err, -EIO, 0, 404, "later");
	assert_true(lp_err_retryable(&err, -EIO));
	assert_int_equal(err.http_status, 503);
	/* a permanent cause stays permanent; no cause: permanent */
	lp_err_clear(&cause);
	lp_err_set_ex(&cause, -EIO, 0, 404, "HTTP 404");
	lp_err_set_from(&other, &cause, -EIO, "wrapped");
	assert_false(lp_err_retryable(&other, -EIO));
	assert_int_equal(other.http_status, 404);
	lp_err_clear(&other);
	lp_err_set_from(&other, NULL, -EIO, "no cause");
	assert_false(lp_err_retryable(&other, -EIO));
	lp_err_clear(&other);
	assert_int_equal(other.http_status, 0);
	assert_false(other.retryable);
}

static void test_blob_mem(void **state)
{
	struct lp_blob *b = NULL, *r;
	char buf[8];

	assert_int_equal(lp_blob_new_mem("abcdefgh", 8, "m", &b), 0);
	assert_int_equal(lp_blob_size(b), 8);
	assert_string_equal(lp_blob_name(b), "m");
	assert_int_equal(lp_blob_pread(b, buf, 3, 5, NULL), 0);
	assert_memory_equal(buf, "fgh", 3);
	assert_int_equal(lp_blob_pread(b, buf, 4, 5, NULL), -ERANGE);
	assert_int_equal(lp_blob_pread(b, buf, 1, UINT64_MAX, NULL), -ERANGE);
	assert_int_equal(lp_blob_pread(b, buf, 0, 8, NULL), 0);
	r = lp_blob_ref(b);
	lp_blob_unref(b);
	assert_int_equal(lp_blob_pread(r, buf, 8, 0, NULL), 0);
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
	assert_int_equal(lp_blob_pread(b, buf, 4, 6, NULL), 0);
	assert_memory_equal(buf, "6789", 4);
	assert_int_equal(lp_blob_pread(b, buf, 11, 0, NULL), -ERANGE);
	/* the file shrinking under the blob is an I/O error, not short data */
	assert_int_equal(truncate(path, 5), 0);
	assert_int_equal(lp_blob_pread(b, buf, 4, 6, NULL), -EIO);
	lp_blob_unref(b);
	unlink(path);

	assert_int_equal(lp_blob_open_file("/nonexistent/x", &b), -ENOENT);
	assert_int_equal(lp_blob_open_file("/tmp", &b), -EISDIR);
}

/* streamed reads: the filled prefix grows, piece by piece for a file */
struct progress {
	size_t last;
	unsigned int calls, bad, stop_after;
};

static int on_progress(void *arg, size_t done)
{
	struct progress *p = arg;

	if (done <= p->last)
		p->bad++;
	p->last = done;
	if (++p->calls == p->stop_after)
		return -ECANCELED;
	return 0;
}

static void test_blob_stream(void **state)
{
	char path[] = "/tmp/lp-test-blob.XXXXXX";
	const size_t len = 1000000;
	struct lp_blob *b = NULL;
	struct progress p = { 0 };
	uint8_t *data = malloc(len), *buf = malloc(len);
	size_t i;
	int fd;

	assert_non_null(data);
	assert_non_null(buf);
	for (i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(lp_blob_open_file(path, &b), 0);
	assert_int_equal(lp_blob_pread_stream(b, buf, len - 10, 10, on_progress,
					      &p, NULL),
			 0);
	assert_memory_equal(buf, data + 10, len - 10);
	assert_true(p.calls >= 3); /* in pieces, as they are read */
	assert_int_equal(p.bad, 0);
	assert_int_equal(p.last, len - 10);
	/* the callback's error stops the read and is returned */
	p = (struct progress){ .stop_after = 2 };
	assert_int_equal(
		lp_blob_pread_stream(b, buf, len, 0, on_progress, &p, NULL),
		-ECANCELED);
	assert_int_equal(p.calls, 2);
	assert_int_equal(
		lp_blob_pread_stream(b, buf, 1, len, on_progress, &p, NULL),
		-ERANGE);
	/* the file shrinks: the prefix reported stays, then -EIO */
	assert_int_equal(truncate(path, 600000), 0);
	p = (struct progress){ 0 };
	assert_int_equal(
		lp_blob_pread_stream(b, buf, len, 0, on_progress, &p, NULL),
		-EIO);
	assert_true(p.last > 0 && p.last <= 600000);
	assert_memory_equal(buf, data, p.last);
	lp_blob_unref(b);
	unlink(path);

	/* a source without a streaming op: one read, one report */
	assert_int_equal(lp_blob_new_mem(data, 1000, "m", &b), 0);
	p = (struct progress){ 0 };
	assert_int_equal(
		lp_blob_pread_stream(b, buf, 900, 100, on_progress, &p, NULL),
		0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.last, 900);
	assert_memory_equal(buf, data + 100, 900);
	lp_blob_unref(b);
	free(data);
	free(buf);
}

/* arrays double from 16; a failed grow leaves the array as it was */
static void test_grow_array(void **state)
{
	uint32_t *a = NULL;
	size_t cap = 0, i;

	assert_int_equal(lp_grow_array((void **)&a, &cap, 0, sizeof(*a)), 0);
	assert_null(a);
	assert_int_equal(cap, 0);
	assert_int_equal(lp_grow_array((void **)&a, &cap, 1, sizeof(*a)), 0);
	assert_int_equal(cap, 16);
	a[0] = 7;
	assert_int_equal(lp_grow_array((void **)&a, &cap, 16, sizeof(*a)), 0);
	assert_int_equal(cap, 16);
	assert_int_equal(lp_grow_array((void **)&a, &cap, 17, sizeof(*a)), 0);
	assert_int_equal(cap, 32);
	assert_int_equal(lp_grow_array((void **)&a, &cap, 1000, sizeof(*a)), 0);
	assert_int_equal(cap, 1024);
	for (i = 1; i < 1000; i++)
		a[i] = (uint32_t)i;
	assert_int_equal(a[0], 7);
	assert_int_equal(
		lp_grow_array((void **)&a, &cap, SIZE_MAX / 2, sizeof(*a)),
		-ENOMEM);
	assert_int_equal(lp_grow_array((void **)&a, &cap, SIZE_MAX, 1),
			 -ENOMEM);
	assert_int_equal(cap, 1024);
	assert_int_equal(a[999], 999);
	free(a);
}

/* a zero map is empty; get never finds, release is harmless (NULL too) */
static void test_hashmap_empty(void **state)
{
	struct lp_hashmap m = { 0 };
	struct lp_strmap sm = { 0 };
	uint64_t v = 7, k;
	size_t pos = 0;

	assert_int_equal(lp_hashmap_get(&m, 0, &v), -ENOENT);
	assert_int_equal(v, 7);
	assert_int_equal(lp_hashmap_next(&m, &pos, &k, &v), 0);
	assert_int_equal(lp_strmap_get(&sm, "", &v), -ENOENT);
	lp_hashmap_release(&m);
	lp_hashmap_release(NULL);
	lp_strmap_release(&sm);
	lp_strmap_release(NULL);
}

/* set, replace, missing keys; 0 and UINT64_MAX are ordinary keys */
static void test_hashmap_basic(void **state)
{
	struct lp_hashmap m = { 0 };
	uint64_t v;

	assert_int_equal(lp_hashmap_put(&m, 0, 10), 0);
	assert_int_equal(lp_hashmap_put(&m, UINT64_MAX, 20), 0);
	assert_int_equal(lp_hashmap_put(&m, 5, 30), 0);
	assert_int_equal(m.nr, 3);
	assert_int_equal(lp_hashmap_get(&m, 0, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(lp_hashmap_get(&m, UINT64_MAX, &v), 0);
	assert_int_equal(v, 20);
	assert_int_equal(lp_hashmap_get(&m, 5, NULL), 0);
	assert_int_equal(lp_hashmap_get(&m, 1, &v), -ENOENT);
	assert_int_equal(lp_hashmap_get(&m, UINT64_MAX - 1, &v), -ENOENT);
	assert_int_equal(lp_hashmap_put(&m, 5, 31), 0);
	assert_int_equal(m.nr, 3);
	assert_int_equal(lp_hashmap_get(&m, 5, &v), 0);
	assert_int_equal(v, 31);
	lp_hashmap_release(&m);
	assert_int_equal(m.nr, 0);
	assert_int_equal(lp_hashmap_get(&m, 5, &v), -ENOENT);
}

/*
 * Many keys through many doublings, some sharing a slot: keys differing only
 * above bit 32 and multiples of a large power of two. Every key and value
 * survives, the table stays at most half full, the walk visits each once.
 */
static void test_hashmap_many(void **state)
{
	const uint64_t n = 200000;
	struct lp_hashmap m = { 0 };
	uint64_t i, k, v, sum = 0, seen = 0;
	size_t pos = 0;

	for (i = 0; i < n; i++) {
		k = i % 2 ? i << 40 : i * 0x9e3779b97f4a7c15ull;
		assert_int_equal(lp_hashmap_put(&m, k, ~k), 0);
		assert_true(m.nr * 2 <= m.cap);
	}
	assert_int_equal(m.nr, n);
	for (i = 0; i < n; i++) {
		k = i % 2 ? i << 40 : i * 0x9e3779b97f4a7c15ull;
		assert_int_equal(lp_hashmap_get(&m, k, &v), 0);
		assert_true(v == ~k);
		assert_int_equal(lp_hashmap_get(&m, k + 1, &v), -ENOENT);
	}
	while (lp_hashmap_next(&m, &pos, &k, &v)) {
		assert_true(v == ~k);
		seen++;
	}
	assert_int_equal(seen, n);
	assert_int_equal(lp_hashmap_next(&m, &pos, &k, &v), 0);

	/* sequential ids (uids) */
	lp_hashmap_release(&m);
	for (i = 0; i < 1000; i++)
		assert_int_equal(lp_hashmap_put(&m, i, i * 3), 0);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(lp_hashmap_get(&m, i, &v), 0);
		sum += v;
	}
	assert_int_equal(sum, 3 * 999 * 1000 / 2);
	assert_int_equal(lp_hashmap_get(&m, 1000, &v), -ENOENT);
	lp_hashmap_release(&m);
}

static void test_strmap(void **state)
{
	struct lp_strmap m = { 0 };
	char key[32];
	uint64_t v;
	int i;

	assert_int_equal(lp_strmap_put(&m, "", 1), 0);
	assert_int_equal(lp_strmap_put(&m, "usr/bin", 2), 0);
	assert_int_equal(lp_strmap_get(&m, "", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(lp_strmap_get(&m, "usr/bin", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(lp_strmap_get(&m, "usr/bi", &v), -ENOENT);
	assert_int_equal(lp_strmap_get(&m, "usr/bin/", &v), -ENOENT);
	assert_int_equal(lp_strmap_put(&m, "usr/bin", 3), 0);
	assert_int_equal(lp_strmap_get(&m, "usr/bin", &v), 0);
	assert_int_equal(v, 3);

	/* the key is copied */
	strcpy(key, "tmp");
	assert_int_equal(lp_strmap_put(&m, key, 4), 0);
	strcpy(key, "xyz");
	assert_int_equal(lp_strmap_get(&m, "tmp", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(lp_strmap_get(&m, "xyz", &v), -ENOENT);

	/* growth */
	for (i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "d%d/f%d", i % 100, i);
		assert_int_equal(lp_strmap_put(&m, key, (uint64_t)i), 0);
	}
	for (i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "d%d/f%d", i % 100, i);
		assert_int_equal(lp_strmap_get(&m, key, &v), 0);
		assert_int_equal(v, i);
	}
	assert_int_equal(lp_strmap_get(&m, "d0/f1", &v), -ENOENT);
	lp_strmap_release(&m);
	assert_int_equal(lp_strmap_get(&m, "tmp", &v), -ENOENT);
}

/* strings sharing one 64-bit hash are still different keys */
static void test_strmap_same_hash(void **state)
{
	struct lp_strmap m = { 0 };
	uint64_t v;

	assert_int_equal(lp_strmap_put_hashed(&m, "a", 42, 1), 0);
	assert_int_equal(lp_strmap_put_hashed(&m, "b", 42, 2), 0);
	assert_int_equal(lp_strmap_put_hashed(&m, "c", 42, 3), 0);
	assert_int_equal(lp_strmap_put_hashed(&m, "b", 42, 20), 0);
	assert_int_equal(lp_strmap_put_hashed(&m, "d", 43, 4), 0);
	assert_int_equal(m.map.nr, 2);
	assert_int_equal(lp_strmap_get_hashed(&m, "a", 42, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(lp_strmap_get_hashed(&m, "b", 42, &v), 0);
	assert_int_equal(v, 20);
	assert_int_equal(lp_strmap_get_hashed(&m, "c", 42, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(lp_strmap_get_hashed(&m, "d", 43, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(lp_strmap_get_hashed(&m, "e", 42, &v), -ENOENT);
	assert_int_equal(lp_strmap_get_hashed(&m, "d", 42, &v), -ENOENT);
	lp_strmap_release(&m); /* frees every string of the chain (ASan) */
}

static void test_hash_bytes(void **state)
{
	/* FNV-1a 64 test vectors */
	assert_true(lp_hash_bytes("", 0) == 0xcbf29ce484222325ull);
	assert_true(lp_hash_bytes("a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(lp_hash_bytes("foobar", 6) == 0x85944171f73967e8ull);
	assert_true(lp_hash_bytes("foobarX", 6) == lp_hash_bytes("foobar", 6));
}

static void test_mkdir_p(void **state)
{
	char dir[] = "/tmp/lp-mkdir-p.XXXXXX", path[256], file[256];
	struct stat st;
	mode_t old = umask(0);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(lp_mkdir_p(path, 0755, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/a/b", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* existing directories are fine and left as they are */
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(lp_mkdir_p(path, 0700, 0711), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* a file in the way is an error */
	snprintf(file, sizeof(file), "%s/f", dir);
	fclose(fopen(file, "w"));
	snprintf(path, sizeof(path), "%s/f/x", dir);
	assert_int_equal(lp_mkdir_p(path, 0755, 0755), -ENOTDIR);
	umask(old);
	unlink(file);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_known),
		cmocka_unit_test(test_digest_parse),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_err),
		cmocka_unit_test(test_err_retryable),
		cmocka_unit_test(test_blob_mem),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_blob_file),
		cmocka_unit_test(test_blob_stream),
		cmocka_unit_test(test_grow_array),
		cmocka_unit_test(test_hashmap_empty),
		cmocka_unit_test(test_hashmap_basic),
		cmocka_unit_test(test_hashmap_many),
		cmocka_unit_test(test_strmap),
		cmocka_unit_test(test_strmap_same_hash),
		cmocka_unit_test(test_hash_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
