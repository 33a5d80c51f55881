// SPDX-License-Identifier: Apache-2.0
/*
 * Footer parser tests: hand-built eStargz, legacy stargz and zstd:chunked
 * footers, the vectors' real footers, and malformed ones (bad magic, TOC
 * offsets past the end, sizes over the bounds, short tails).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lp_footer.h"

static void estargz_footer(uint8_t out[51], const char *hex16)
{
	static const uint8_t head[] = { 0x1f, 0x8b, 0x08, 0x04, 0,    0,
					0,    0,    0,	  0xff, 0x1a, 0x00,
					'S',  'G',  0x16, 0 };
	static const uint8_t tail[] = { 0x01, 0, 0, 0xff, 0xff, 0, 0,
					0,    0, 0, 0,	  0,	0 };

	memcpy(out, head, sizeof(head));
	memcpy(out + 16, hex16, 16);
	memcpy(out + 32, "STARGZ", 6);
	memcpy(out + 38, tail, sizeof(tail));
}

static void legacy_footer(uint8_t out[47], const char *hex16)
{
	static const uint8_t head[] = { 0x1f, 0x8b, 0x08, 0x04, 0,    0,
					0,    0,    0,	  0xff, 0x16, 0x00 };
	static const uint8_t tail[] = { 0x01, 0, 0, 0xff, 0xff, 0, 0,
					0,    0, 0, 0,	  0,	0 };

	memcpy(out, head, sizeof(head));
	memcpy(out + 12, hex16, 16);
	memcpy(out + 28, "STARGZ", 6);
	memcpy(out + 34, tail, sizeof(tail));
}

static void zstd_footer(uint8_t out[48], uint64_t off, uint64_t clen,
			uint64_t ulen, uint64_t type)
{
	lp_put_le32(out, LP_ZSTD_SKIPPABLE_MAGIC);
	lp_put_le32(out + 4, 40);
	lp_put_le64(out + 8, off);
	lp_put_le64(out + 16, clen);
	lp_put_le64(out + 24, ulen);
	lp_put_le64(out + 32, type);
	memcpy(out + 40, LP_ZSTD_CHUNKED_MAGIC, 8);
}

static void test_estargz(void **state)
{
	uint8_t f[51];
	struct lp_footer out;
	struct lp_err err = { 0 };

	estargz_footer(f, "00000000000003e8");
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, &err), 0);
	assert_int_equal(out.format, LP_FMT_ESTARGZ);
	assert_int_equal(out.footer_size, 51);
	assert_int_equal(out.toc_offset, 1000);
	assert_int_equal(out.toc_size, 2000 - 51 - 1000);
	assert_int_equal(out.toc_uncompressed_size, 0);

	/* uppercase hex is what Go's ParseInt takes too */
	estargz_footer(f, "00000000000003E8");
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, &err), 0);
	assert_int_equal(out.toc_offset, 1000);

	/* TOC offset at or past the footer */
	estargz_footer(f, "00000000000007cd");
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "TOC offset 1997"));
	lp_err_clear(&err);
	estargz_footer(f, "ffffffffffffffff");
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, &err), -EINVAL);

	/* TOC larger than the bound */
	lp_err_clear(&err);
	estargz_footer(f, "0000000000000000");
	assert_int_equal(
		lp_footer_parse(f, 51, LP_TOC_MAX_COMPRESSED + 100, &out, &err),
		-EFBIG);
	assert_non_null(strstr(err.msg, "LP_TOC_MAX_COMPRESSED"));

	/* not hex, wrong magic, wrong subfield, wrong tail */
	estargz_footer(f, "00000000000003g8");
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, NULL), -EINVAL);
	estargz_footer(f, "00000000000003e8");
	f[37] = 'X';
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, NULL), -EINVAL);
	estargz_footer(f, "00000000000003e8");
	f[12] = 'E';
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, NULL), -EINVAL);
	estargz_footer(f, "00000000000003e8");
	f[50] = 1;
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, NULL), -EINVAL);
	estargz_footer(f, "00000000000003e8");
	f[0] = 0;
	assert_int_equal(lp_footer_parse(f, 51, 2000, &out, NULL), -EINVAL);
}

static void test_legacy(void **state)
{
	uint8_t buf[51] = { 0 }, *f = buf + 4;
	struct lp_footer out;
	struct lp_err err = { 0 };

	legacy_footer(f, "0000000000000010");
	assert_int_equal(lp_footer_parse(buf, 51, 100, &out, &err), 0);
	assert_int_equal(out.format, LP_FMT_STARGZ_LEGACY);
	assert_int_equal(out.footer_size, 47);
	assert_int_equal(out.toc_offset, 16);
	assert_int_equal(out.toc_size, 100 - 47 - 16);
	/* a 47-byte blob tail is enough */
	assert_int_equal(lp_footer_parse(f, 47, 100, &out, &err), 0);
	f[20] = 'z';
	assert_int_equal(lp_footer_parse(f, 47, 100, &out, NULL), -EINVAL);
}

static void test_zstd(void **state)
{
	uint8_t buf[51] = { 0 }, *f = buf + 3;
	struct lp_footer out;
	struct lp_err err = { 0 };

	zstd_footer(f, 1008, 500, 4000, 1);
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, &err), 0);
	assert_int_equal(out.format, LP_FMT_ZSTD_CHUNKED);
	assert_int_equal(out.footer_size, 48);
	assert_int_equal(out.toc_offset, 1008);
	assert_int_equal(out.toc_size, 500);
	assert_int_equal(out.toc_uncompressed_size, 4000);

	zstd_footer(f, 1008, 500, 4000, 2);
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "manifest type"));
	zstd_footer(f, 1500, 500, 4000, 1); /* runs into the footer */
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EINVAL);
	zstd_footer(f, UINT64_MAX - 10, 500, 4000, 1);
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EINVAL);
	zstd_footer(f, 4, 500, 4000, 1); /* no room for the frame header */
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EINVAL);
	zstd_footer(f, 8, 0, 4000, 1);
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EINVAL);
	zstd_footer(f, 8, 500, (uint64_t)LP_TOC_MAX_JSON + 1, 1);
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EFBIG);
	zstd_footer(f, 8, (uint64_t)LP_TOC_MAX_COMPRESSED + 1, 4000, 1);
	assert_int_equal(lp_footer_parse(buf, 51, UINT64_MAX / 2, &out, NULL),
			 -EFBIG);
	zstd_footer(f, 1008, 500, 4000, 1);
	f[47] = 'y'; /* magic */
	assert_int_equal(lp_footer_parse(buf, 51, 2000, &out, NULL), -EINVAL);
}

static void test_short(void **state)
{
	uint8_t f[51];
	struct lp_footer out;
	struct lp_err err = { 0 };

	estargz_footer(f, "0000000000000000");
	assert_int_equal(lp_footer_parse(f, 0, 0, &out, &err), -EINVAL);
	assert_int_equal(lp_footer_parse(f + 10, 41, 41, &out, NULL), -EINVAL);
	/* a footer alone leaves no room for a TOC */
	assert_int_equal(lp_footer_parse(f, 51, 51, &out, NULL), -EINVAL);
	/* more tail than blob */
	assert_int_equal(lp_footer_parse(f, 51, 50, &out, NULL), -EINVAL);
}

static void test_vectors(void **state)
{
	static const struct {
		const char *name;
		enum lp_layer_format fmt;
	} v[] = {
		{ "v1-default", LP_FMT_ESTARGZ },
		{ "v1-zstd", LP_FMT_ZSTD_CHUNKED },
	};
	size_t i;

	for (i = 0; i < LP_ARRAY_SIZE(v); i++) {
		char path[4096];
		uint8_t tail[LP_FOOTER_MAX_SIZE];
		struct lp_footer out;
		struct lp_err err = { 0 };
		FILE *fp;
		long size;

		snprintf(path, sizeof(path), "%s/%s.esgz", LP_VECTORS_DIR,
			 v[i].name);
		fp = fopen(path, "rb");
		assert_non_null(fp);
		fseek(fp, 0, SEEK_END);
		size = ftell(fp);
		fseek(fp, size - (long)sizeof(tail), SEEK_SET);
		assert_int_equal(fread(tail, 1, sizeof(tail), fp),
				 sizeof(tail));
		fclose(fp);
		assert_int_equal(lp_footer_parse(tail, sizeof(tail),
						 (uint64_t)size, &out, &err),
				 0);
		assert_int_equal(out.format, v[i].fmt);
		assert_true(out.toc_offset + out.toc_size <=
			    (uint64_t)size - out.footer_size);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_estargz), cmocka_unit_test(test_legacy),
		cmocka_unit_test(test_zstd),	cmocka_unit_test(test_short),
		cmocka_unit_test(test_vectors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
