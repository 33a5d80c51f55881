// SPDX-License-Identifier: Apache-2.0
/*
 * Chunk decoder tests: gzip members (through libdeflate, zlib and the
 * automatic choice) and zstd frames with inner offsets and trailing output,
 * short, truncated and corrupt members, the size bounds, and digest
 * verification. With LP_BENCH=1 in the environment, also measures decode
 * speed of each gzip path and zstd over the vectors' chunks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "chunk_int.h"
#include "lp_layer.h"

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		/* half-compressible */
		p[i] = (i & 64) ? (uint8_t)(seed >> 16) : (uint8_t)(i / 7);
	}
	return p;
}

static uint8_t *gzip_member(const uint8_t *data, size_t len, size_t *ret_len)
{
	z_stream zs = { 0 };
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY),
			 Z_OK);
	zs.next_in = (Bytef *)data;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*ret_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static uint8_t *zstd_frame(const uint8_t *data, size_t len, size_t *ret_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	*ret_len = ZSTD_compress(out, cap, data, len, 3);
	assert_false(ZSTD_isError(*ret_len));
	return out;
}

struct dec_case {
	enum lp_compression comp;
	enum lp_gzip_impl impl;
};

static const struct dec_case cases[] = {
	{ LP_COMP_GZIP, LP_GZIP_AUTO },
	{ LP_COMP_GZIP, LP_GZIP_LIBDEFLATE },
	{ LP_COMP_GZIP, LP_GZIP_ZLIB },
	{ LP_COMP_ZSTD, LP_GZIP_AUTO },
};

static struct lp_chunk_decoder *decoder(const struct dec_case *c)
{
	struct lp_chunk_decoder *dec = NULL;

	assert_int_equal(lp_chunk_decoder_new(c->comp, &dec), 0);
	lp_chunk_decoder_set_gzip_impl(dec, c->impl);
	return dec;
}

static uint8_t *member(const struct dec_case *c, const uint8_t *data,
		       size_t len, size_t *ret_len)
{
	return c->comp == LP_COMP_GZIP ? gzip_member(data, len, ret_len) :
					 zstd_frame(data, len, ret_len);
}

/* member = [inner bytes][chunk][trailer]; decode the chunk */
static void test_inner_and_trailer(void **state)
{
	const size_t inner[] = { 0, 1, 700, 70000 };
	const size_t chunk[] = { 1, 511, 65536, 300001 };
	const size_t trail[] = { 0, 512, 5000 };
	size_t ci, i, k, t;

	for (ci = 0; ci < LP_ARRAY_SIZE(cases); ci++) {
		struct lp_chunk_decoder *dec = decoder(&cases[ci]);

		for (i = 0; i < LP_ARRAY_SIZE(inner); i++)
			for (k = 0; k < LP_ARRAY_SIZE(chunk); k++)
				for (t = 0; t < LP_ARRAY_SIZE(trail); t++) {
					size_t total = inner[i] + chunk[k] +
						       trail[t],
					       mlen;
					uint8_t *data = pattern(total, 7);
					uint8_t *m = member(&cases[ci], data,
							    total, &mlen);
					uint8_t *dst = malloc(chunk[k]);
					struct lp_err err = { 0 };

					/* junk after the member is ignored */
					uint8_t *mm = realloc(m, mlen + 3);

					assert_non_null(mm);
					m = mm;
					memcpy(m + mlen, "\x1f\x8b\x08", 3);
					assert_int_equal(
						lp_chunk_decode(dec, m,
								mlen + 3,
								inner[i], dst,
								chunk[k], &err),
						0);
					assert_memory_equal(
						dst, data + inner[i], chunk[k]);
					free(dst);
					free(m);
					free(data);
				}
		lp_chunk_decoder_free(dec);
	}
	lp_chunk_decoder_free(NULL);
}

static void test_bad_members(void **state)
{
	size_t ci;

	for (ci = 0; ci < LP_ARRAY_SIZE(cases); ci++) {
		struct lp_chunk_decoder *dec = decoder(&cases[ci]);
		uint8_t *data = pattern(100000, 3), *m, dst[100];
		size_t mlen;
		struct lp_err err = { 0 };
		uint8_t *big = malloc(100000);

		m = member(&cases[ci], data, 100000, &mlen);
		/* asks for more than the member holds */
		assert_int_equal(
			lp_chunk_decode(dec, m, mlen, 99950, dst, 100, &err),
			-EBADMSG);
		assert_true(err.msg[0]);
		/* truncated input */
		lp_err_clear(&err);
		assert_int_equal(
			lp_chunk_decode(dec, m, mlen / 2, 0, big, 100000, &err),
			-EBADMSG);
		/* empty input */
		assert_int_equal(lp_chunk_decode(dec, m, 0, 0, dst, 1, NULL),
				 -EBADMSG);
		/* corrupt header */
		m[0] ^= 0xff;
		assert_int_equal(
			lp_chunk_decode(dec, m, mlen, 0, dst, 100, NULL),
			-EBADMSG);
		m[0] ^= 0xff;
		/* still fine after errors */
		assert_int_equal(
			lp_chunk_decode(dec, m, mlen, 10, dst, 100, NULL), 0);
		assert_memory_equal(dst, data + 10, 100);
		/* bounds */
		assert_int_equal(lp_chunk_decode(dec, m, mlen,
						 LP_CHUNK_MAX_INNER_OFFSET + 1,
						 dst, 1, NULL),
				 -EFBIG);
		assert_int_equal(lp_chunk_decode(dec, m, mlen, 0, dst,
						 LP_CHUNK_MAX_SIZE + 1, NULL),
				 -EFBIG);
		assert_int_equal(lp_chunk_decode(dec, m, mlen, 0, dst, 0, NULL),
				 0);
		free(big);
		free(m);
		free(data);
		lp_chunk_decoder_free(dec);
	}
}

/* a flipped bit inside the needed output is caught by the digest at worst */
static void test_corrupt_body(void **state)
{
	size_t ci, pos;

	for (ci = 0; ci < LP_ARRAY_SIZE(cases); ci++) {
		struct lp_chunk_decoder *dec = decoder(&cases[ci]);
		uint8_t *data = pattern(50000, 9), *m, *dst = malloc(50000);
		struct lp_digest d;
		size_t mlen;

		lp_sha256(data, 50000, &d);
		m = member(&cases[ci], data, 50000, &mlen);
		for (pos = 20; pos < mlen - 10; pos += mlen / 13) {
			int r;

			m[pos] ^= 0x10;
			r = lp_chunk_decode(dec, m, mlen, 0, dst, 50000, NULL);
			if (r == 0)
				r = lp_chunk_verify(dst, 50000, &d);
			assert_int_equal(r, -EBADMSG);
			m[pos] ^= 0x10;
		}
		free(m);
		free(dst);
		free(data);
		lp_chunk_decoder_free(dec);
	}
}

/* trailer larger than LP_MEMBER_MAX_TRAILER: auto falls back to zlib */
static void test_huge_trailer(void **state)
{
	size_t total = 100 + 2 * LP_MIB, mlen;
	uint8_t *data = pattern(total, 5), *m, dst[100];
	struct lp_chunk_decoder *dec = NULL;
	struct dec_case c = { LP_COMP_GZIP, LP_GZIP_AUTO };

	m = gzip_member(data, total, &mlen);
	dec = decoder(&c);
	assert_int_equal(lp_chunk_decode(dec, m, mlen, 0, dst, 100, NULL), 0);
	assert_memory_equal(dst, data, 100);
	/* and with only the member's first bytes (a cut-off trailer) */
	assert_int_equal(lp_chunk_decode(dec, m, 1000, 0, dst, 100, NULL), 0);
	assert_memory_equal(dst, data, 100);
	lp_chunk_decoder_set_gzip_impl(dec, LP_GZIP_LIBDEFLATE);
	assert_int_equal(lp_chunk_decode(dec, m, mlen, 0, dst, 100, NULL),
			 -EFBIG);
	lp_chunk_decoder_free(dec);
	free(m);
	free(data);
}

static void test_verify_and_new(void **state)
{
	struct lp_digest d;
	struct lp_chunk_decoder *dec = NULL;

	lp_sha256("abc", 3, &d);
	assert_int_equal(lp_chunk_verify("abc", 3, &d), 0);
	assert_int_equal(lp_chunk_verify("abd", 3, &d), -EBADMSG);
	assert_int_equal(lp_chunk_decoder_new((enum lp_compression)99, &dec),
			 -EOPNOTSUPP);
	assert_null(dec);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* decode every chunk of a vector @rounds times; MB/s of output */
static double bench_vector(const char *name, enum lp_gzip_impl impl,
			   bool small_only, int rounds)
{
	char path[4096];
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	const struct lp_toc *toc;
	uint8_t **src, *dst = malloc(LP_DEFAULT_CHUNK_SIZE);
	uint32_t i, n;
	double t0, bytes = 0;
	int k;

	snprintf(path, sizeof(path), "%s/%s.esgz", LP_VECTORS_DIR, name);
	assert_int_equal(lp_blob_open_file(path, &blob), 0);
	assert_int_equal(lp_layer_open(blob, NULL, &l, NULL), 0);
	toc = lp_layer_toc(l);
	n = lp_toc_nr_chunks(toc);
	assert_int_equal(
		lp_chunk_decoder_new(lp_format_compression(lp_layer_format(l)),
				     &dec),
		0);
	lp_chunk_decoder_set_gzip_impl(dec, impl);
	src = calloc(n, sizeof(*src));
	for (i = 0; i < n; i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(toc, i);

		src[i] = malloc(c.compressed_size);
		assert_int_equal(lp_blob_pread(blob, src[i], c.compressed_size,
					       c.offset, NULL),
				 0);
	}
	t0 = now();
	for (k = 0; k < rounds; k++)
		for (i = 0; i < n; i++) {
			const struct lp_toc_chunk c = lp_toc_chunk(toc, i);

			if (small_only && c.chunk_size > 64 * LP_KIB)
				continue;
			assert_int_equal(lp_chunk_decode(dec, src[i],
							 c.compressed_size,
							 c.inner_offset, dst,
							 c.chunk_size, NULL),
					 0);
			bytes += (double)c.chunk_size;
		}
	t0 = now() - t0;
	for (i = 0; i < n; i++)
		free(src[i]);
	free(src);
	free(dst);
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	lp_blob_unref(blob);
	return bytes / 1e6 / t0;
}

static void test_bench(void **state)
{
	static const char *const impl_names[] = { "auto", "libdeflate",
						  "zlib" };
	int impl;

	for (impl = LP_GZIP_AUTO; impl <= LP_GZIP_ZLIB; impl++) {
		print_message("gzip %-10s v1-default all chunks: %7.1f MB/s, "
			      "small (<=64K) chunks: %7.1f MB/s, "
			      "v1-chunk64k: %7.1f MB/s\n",
			      impl_names[impl],
			      bench_vector("v1-default", impl, false, 10),
			      bench_vector("v1-default", impl, true, 100),
			      bench_vector("v1-chunk64k", impl, false, 10));
	}
	print_message("zstd            v1-zstd all chunks:    %7.1f MB/s, "
		      "small (<=64K) chunks: %7.1f MB/s\n",
		      bench_vector("v1-zstd", LP_GZIP_AUTO, false, 10),
		      bench_vector("v1-zstd", LP_GZIP_AUTO, true, 100));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inner_and_trailer),
		cmocka_unit_test(test_bad_members),
		cmocka_unit_test(test_corrupt_body),
		cmocka_unit_test(test_huge_trailer),
		cmocka_unit_test(test_verify_and_new),
	};
	/* a benchmark, not a check: run when asked, else not registered (a
	 * skipped test must not count towards a passing binary) */
	const struct CMUnitTest bench[] = {
		cmocka_unit_test(test_bench),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	if (!failed && getenv("LP_BENCH"))
		failed = cmocka_run_group_tests(bench, NULL, NULL);
	return failed;
}
