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

#include "lp_base64.h"
#include "lp_blob.h"
#include "lp_buf.h"
#include "lp_common.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_hashmap.h"
#include "lp_io.h"
#include "lp_json.h"

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

/*
 * ---- base64 and the JSON helpers ----
 *
 * base64: the edge cases of each copy lp_base64.h replaced (the TOC's
 * strict decoder, docker config's lenient one, the two encoders).
 */

static void test_base64_encode(void **state)
{
	/* RFC 4648 section 10 */
	static const char *const want[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"
	};
	struct lp_buf b;
	char out[16];
	size_t i;

	(void)state;
	for (i = 0; i < LP_ARRAY_SIZE(want); i++) {
		assert_int_equal(lp_base64_len(i), strlen(want[i]));
		assert_int_equal(
			lp_base64_encode("foobar", i, out, sizeof(out)), 0);
		assert_string_equal(out, want[i]);
		lp_buf_init(&b, 64);
		assert_int_equal(lp_base64_encode_buf(&b, "foobar", i), 0);
		assert_int_equal(b.len, strlen(want[i]));
		assert_memory_equal(b.data ? (char *)b.data : "", want[i],
				    b.len);
		lp_buf_release(&b);
	}
	/* all 64 characters: decode the alphabet, encode it back */
	{
		static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
					  "ghijklmnopqrstuvwxyz0123456789+/";
		uint8_t raw[48];
		char enc[65];
		size_t n;

		assert_int_equal(lp_base64_decode(abc, 64, LP_BASE64_STRICT,
						  raw, sizeof(raw), &n),
				 0);
		assert_int_equal(n, 48);
		assert_int_equal(raw[0], 0x00);
		assert_int_equal(raw[47], 0xbf);
		assert_int_equal(lp_base64_encode(raw, n, enc, sizeof(enc)), 0);
		assert_string_equal(enc, abc);
	}
	/* the output must hold the NUL too; untouched when it does not fit */
	memset(out, 'x', sizeof(out));
	assert_int_equal(lp_base64_encode("foo", 3, out, 4), -EFBIG);
	assert_int_equal(out[0], 'x');
	assert_int_equal(lp_base64_encode("foo", 3, out, 5), 0);
	assert_string_equal(out, "Zm9v");
	/* the buffer's cap holds */
	lp_buf_init(&b, 7);
	assert_int_equal(lp_base64_encode_buf(&b, "foobar", 6), -EFBIG);
	lp_buf_release(&b);
}

static void test_base64_alphabet_roundtrip(void **state)
{
	uint8_t in[256], dec[256];
	char enc[400];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(255 - i);
	for (i = 0; i <= sizeof(in); i += 1 + i / 8) {
		assert_int_equal(lp_base64_encode(in, i, enc, sizeof(enc)), 0);
		assert_int_equal(lp_base64_decode(enc, strlen(enc),
						  LP_BASE64_STRICT, dec,
						  sizeof(dec), &n),
				 0);
		assert_int_equal(n, i);
		assert_memory_equal(dec, in, i);
		assert_int_equal(lp_base64_decode(enc, strlen(enc),
						  LP_BASE64_LENIENT, dec,
						  sizeof(dec), &n),
				 0);
		assert_int_equal(n, i);
		assert_memory_equal(dec, in, i);
	}
}

struct b64_case {
	const char *in;
	int strict; /* 0 or -errno */
	int lenient;
	const char *out; /* when it decodes */
	size_t out_len;
};

static void test_base64_decode_edges(void **state)
{
	static const struct b64_case cases[] = {
		{ "", 0, 0, "", 0 },
		{ "Zg==", 0, 0, "f", 1 },
		{ "Zm8=", 0, 0, "fo", 2 },
		{ "Zm9v", 0, 0, "foo", 3 },
		/* padding: strict wants it, lenient takes any amount */
		{ "Zg", -EINVAL, 0, "f", 1 },
		{ "Zm8", -EINVAL, 0, "fo", 2 },
		{ "Zg=", -EINVAL, 0, "f", 1 },
		{ "Zg===", -EINVAL, 0, "f", 1 },
		{ "Zm9v====", -EINVAL, 0, "foo", 3 },
		/* '=' anywhere but the end */
		{ "Z=g=", -EINVAL, -EINVAL, NULL, 0 },
		{ "Zg==Zg==", -EINVAL, -EINVAL, NULL, 0 },
		{ "=Zm9", -EINVAL, -EINVAL, NULL, 0 },
		{ "====", -EINVAL, 0, "", 0 },
		{ "Z===", -EINVAL, 0, "", 0 },
		/* a lone character: no whole byte (lenient), invalid (strict) */
		{ "Z", -EINVAL, 0, "", 0 },
		/* spare bits past the last byte are ignored, as Go does */
		{ "Zh==", 0, 0, "f", 1 },
		/* URL-safe alphabet: lenient only */
		{ "-_-_", -EINVAL, 0, "\xfb\xff\xbf", 3 },
		{ "+/+/", 0, 0, "\xfb\xff\xbf", 3 },
		/* characters of neither alphabet, white space included */
		{ "Zm9v\n", -EINVAL, -EINVAL, NULL, 0 },
		{ "Zm 9", -EINVAL, -EINVAL, NULL, 0 },
		{ "Zm.9", -EINVAL, -EINVAL, NULL, 0 },
		{ "Zm\x80v", -EINVAL, -EINVAL, NULL, 0 },
	};
	uint8_t out[16];
	size_t i, n;
	int r;

	(void)state;
	for (i = 0; i < LP_ARRAY_SIZE(cases); i++) {
		const struct b64_case *c = &cases[i];

		r = lp_base64_decode(c->in, strlen(c->in), LP_BASE64_STRICT,
				     out, sizeof(out), &n);
		if (r != c->strict)
			fail_msg("strict \"%s\": %d, want %d", c->in, r,
				 c->strict);
		if (r == 0) {
			assert_int_equal(n, c->out_len);
			assert_memory_equal(out, c->out, n);
		}
		r = lp_base64_decode(c->in, strlen(c->in), LP_BASE64_LENIENT,
				     out, sizeof(out), &n);
		if (r != c->lenient)
			fail_msg("lenient \"%s\": %d, want %d", c->in, r,
				 c->lenient);
		if (r == 0) {
			assert_int_equal(n, c->out_len);
			assert_memory_equal(out, c->out, n);
		}
	}
	/* an embedded NUL is a bad character, not an end */
	assert_int_equal(lp_base64_decode("Zm\0v", 4, LP_BASE64_STRICT, out,
					  sizeof(out), &n),
			 -EINVAL);
	/* the output bound: exactly enough, one short */
	assert_int_equal(
		lp_base64_decode("Zm9vYmFy", 8, LP_BASE64_STRICT, out, 6, &n),
		0);
	assert_int_equal(n, 6);
	assert_int_equal(
		lp_base64_decode("Zm9vYmFy", 8, LP_BASE64_STRICT, out, 5, &n),
		-EFBIG);
	assert_int_equal(
		lp_base64_decode("Zm9vYmFy", 8, LP_BASE64_LENIENT, out, 5, &n),
		-EFBIG);
	assert_int_equal(
		lp_base64_decode("Zg==", 4, LP_BASE64_STRICT, out, 0, &n),
		-EFBIG);
	assert_int_equal(lp_base64_decode("", 0, LP_BASE64_STRICT, out, 0, &n),
			 0);
	assert_int_equal(n, 0);
}

/* ---- JSON helpers ---- */

static void test_json_parse(void **state)
{
	static const char deep[] = "{\"a\":{\"b\":{\"c\":{}}}}";
	json_object *o = NULL;

	(void)state;
	assert_int_equal(lp_json_parse("{\"a\":1}", 7, 4, json_type_object, &o),
			 0);
	assert_true(json_object_is_type(o, json_type_object));
	json_object_put(o);
	/* white space around is fine, text after is not */
	assert_int_equal(
		lp_json_parse(" {}\r\n\t ", 7, 4, json_type_object, &o), 0);
	json_object_put(o);
	o = NULL;
	assert_int_equal(lp_json_parse("{} x", 4, 4, json_type_object, &o),
			 -EINVAL);
	assert_int_equal(lp_json_parse("{}{}", 4, 4, json_type_object, &o),
			 -EINVAL);
	assert_null(o);
	/* truncated, empty, malformed */
	assert_int_equal(lp_json_parse("{\"a\":1", 6, 4, json_type_null, &o),
			 -EINVAL);
	assert_int_equal(lp_json_parse("", 0, 4, json_type_null, &o), -EINVAL);
	assert_int_equal(lp_json_parse("{a:1}", 5, 4, json_type_null, &o),
			 -EINVAL);
	/* a bare number ends at the end of the input */
	assert_int_equal(lp_json_parse("12", 2, 4, json_type_int, &o), 0);
	assert_int_equal(json_object_get_int(o), 12);
	json_object_put(o);
	/* the type asked for */
	assert_int_equal(lp_json_parse("[1]", 3, 4, json_type_object, &o),
			 -EINVAL);
	assert_int_equal(lp_json_parse("[1]", 3, 4, json_type_null, &o), 0);
	json_object_put(o);
	/* NUL bytes, also after the value, are refused */
	assert_int_equal(lp_json_parse("{}\0", 3, 4, json_type_object, &o),
			 -EINVAL);
	assert_int_equal(lp_json_parse("{\"a\0\":1}", 8, 4, json_type_null, &o),
			 -EINVAL);
	/* the nesting bound */
	assert_int_equal(
		lp_json_parse(deep, strlen(deep), 4, json_type_object, &o), 0);
	json_object_put(o);
	assert_int_equal(
		lp_json_parse(deep, strlen(deep), 3, json_type_object, &o),
		-EINVAL);
	/* the length bound, checked before anything is read */
	assert_int_equal(
		lp_json_parse("{}", LP_JSON_MAX_LEN + 1, 4, json_type_null, &o),
		-EFBIG);
}

static void test_json_str(void **state)
{
	json_object *o = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(
		lp_json_parse("{\"s\":\"x\",\"n\":1,\"z\":\"a\\u0000b\","
			      "\"e\":\"\",\"o\":{\"s\":\"in\"},\"nul\":null}",
			      63, 4, json_type_object, &o),
		0);
	assert_string_equal(lp_json_str(o, "s"), "x");
	assert_string_equal(lp_json_str(o, "e"), "");
	assert_null(lp_json_str(o, "n"));
	assert_null(lp_json_str(o, "o"));
	assert_null(lp_json_str(o, "nul"));
	assert_null(lp_json_str(o, "missing"));
	/* nested members are not searched */
	assert_null(lp_json_str(o, "in"));
	/* the length counts an escaped NUL */
	assert_non_null(lp_json_str_len(o, "z", &len));
	assert_int_equal(len, 3);
	/* not an object: NULL, no crash */
	assert_null(lp_json_str(json_object_object_get(o, "s"), "s"));
	assert_null(lp_json_str(NULL, "s"));
	json_object_put(o);
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
		cmocka_unit_test(test_base64_encode),
		cmocka_unit_test(test_base64_alphabet_roundtrip),
		cmocka_unit_test(test_base64_decode_edges),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_json_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
