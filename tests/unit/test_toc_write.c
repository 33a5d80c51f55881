// SPDX-License-Identifier: Apache-2.0
/*
 * TOC JSON writer and footer writer tests: Go's json.MarshalIndent output for
 * records (field order, omitempty, "\t" indentation), Go's string escaping
 * (HTML characters, control characters, U+2028/2029, invalid UTF-8), xattrs
 * sorted with base64 values, the size cap, round trips through lp_toc_parse()
 * and lp_toc_write_json(), and footers that lp_footer_parse() reads back.
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
#include "lp_toc.h"

static char *write_records(const struct lp_toc_record *r, size_t n,
			   size_t limit, int *ret)
{
	struct lp_toc_writer *w = NULL;
	struct lp_buf out;
	size_t i;
	int err;

	lp_buf_init(&out, 1 << 20);
	assert_int_equal(lp_toc_writer_new(limit, &w), 0);
	for (i = 0, err = 0; err == 0 && i < n; i++)
		err = lp_toc_writer_add(w, &r[i]);
	if (err == 0)
		err = lp_toc_writer_finish(w, &out);
	lp_toc_writer_free(w);
	*ret = err;
	return (char *)out.data;
}

static void test_record_fields(void **state)
{
	static const char want[] =
		"{\n\t\"version\": 1,\n\t\"entries\": [\n"
		"\t\t{\n\t\t\t\"name\": \"./a\",\n\t\t\t\"type\": \"reg\",\n"
		"\t\t\t\"size\": 5,\n"
		"\t\t\t\"modtime\": \"2020-09-13T12:26:41Z\",\n"
		"\t\t\t\"mode\": 420,\n\t\t\t\"uid\": 7,\n"
		"\t\t\t\"userName\": \"u\",\n\t\t\t\"offset\": 99,\n"
		"\t\t\t\"xattrs\": {\n"
		"\t\t\t\t\"a.x\": \"AAEC\",\n\t\t\t\t\"b\": \"eQ==\"\n"
		"\t\t\t},\n"
		"\t\t\t\"digest\": \"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\n"
		"\t\t\t\"chunkSize\": 4\n\t\t},\n"
		"\t\t{\n\t\t\t\"name\": \"./a\",\n\t\t\t\"type\": \"chunk\",\n"
		"\t\t\t\"offset\": 120,\n\t\t\t\"chunkOffset\": 4\n\t\t},\n"
		"\t\t{\n\t\t\t\"name\": \"c\",\n\t\t\t\"type\": \"char\",\n"
		"\t\t\t\"devMajor\": 1,\n\t\t\t\"devMinor\": 3\n\t\t}\n"
		"\t]\n}";
	struct lp_toc_xattr xa[] = {
		{ "b", (const uint8_t *)"y", 1 },
		{ "a.x", (const uint8_t *)"\0\1\2", 3 },
	};
	struct lp_digest zero = { { 0 } };
	struct lp_toc_record r[3] = { { 0 } };
	char *json;
	int err;

	r[0].name = "./a";
	r[0].type = LP_TOC_REG;
	r[0].size = 5;
	r[0].has_modtime = true;
	r[0].mtime_sec = 1600000000;
	r[0].mtime_nsec = 600000000; /* rounds up */
	r[0].mode = 0644;
	r[0].uid = 7;
	r[0].user_name = "u";
	r[0].group_name = "";
	r[0].link_name = "";
	r[0].offset = 99;
	r[0].xattrs = xa;
	r[0].nr_xattrs = 2;
	r[0].digest = &zero;
	r[0].chunk_size = 4;
	r[1].name = "./a";
	r[1].type = LP_TOC_CHUNK;
	r[1].offset = 120;
	r[1].chunk_offset = 4;
	r[2].name = "c";
	r[2].type = LP_TOC_CHAR;
	r[2].dev_major = 1;
	r[2].dev_minor = 3;
	json = write_records(r, 3, 1 << 20, &err);
	assert_int_equal(err, 0);
	assert_string_equal(json, want);
	free(json);

	/* no records */
	json = write_records(NULL, 0, 1 << 20, &err);
	assert_int_equal(err, 0);
	assert_string_equal(json, "{\n\t\"version\": 1,\n\t\"entries\": []\n}");
	free(json);
	/* over the cap */
	json = write_records(r, 3, 200, &err);
	assert_int_equal(err, -EFBIG);
	free(json);
}

static void test_escaping(void **state)
{
	struct lp_toc_record r = { 0 };
	char *json;
	int err;

	r.name = "a\"b\\c<d>e&f\n\t\x01\xe2\x80\xa8g\xffh\xc3\xa9";
	r.type = LP_TOC_DIR;
	json = write_records(&r, 1, 1 << 20, &err);
	assert_int_equal(err, 0);
	assert_non_null(strstr(json, "\"name\": \"a\\\"b\\\\c\\u003cd\\u003ee"
				     "\\u0026f\\n\\t\\u0001\\u2028g\\ufffdh"
				     "\xc3\xa9\""));
	free(json);
}

static void test_roundtrip(void **state)
{
	static const char src[] =
		"{\"version\":1,\"entries\":["
		"{\"name\":\"./\",\"type\":\"dir\",\"mode\":493},"
		"{\"name\":\"./f\",\"type\":\"reg\",\"size\":8,\"offset\":10,"
		"\"chunkSize\":4,\"xattrs\":{\"user.a\":\"eA==\"}},"
		"{\"name\":\"./f\",\"type\":\"chunk\",\"offset\":20,"
		"\"chunkOffset\":4},"
		"{\"name\":\"./l\",\"type\":\"symlink\",\"linkName\":\"f\"}]}";
	struct lp_toc *t1 = NULL, *t2 = NULL;
	struct lp_buf out;
	struct lp_err err = { 0 };
	uint32_t nr;

	lp_buf_init(&out, 1 << 20);
	if (lp_toc_parse(src, sizeof(src) - 1, 1000, &t1, &err))
		fail_msg("%s", err.msg);
	assert_int_equal(lp_toc_write_json(t1, &out), 0);
	if (lp_toc_parse(out.data, out.len, 1000, &t2, &err))
		fail_msg("%s\n%s", err.msg, out.data);
	assert_int_equal(lp_toc_nr_entries(t1), lp_toc_nr_entries(t2));
	assert_int_equal(lp_toc_nr_chunks(t1), lp_toc_nr_chunks(t2));
	assert_int_equal(lp_toc_chunk(t2, 1).offset, 20);
	assert_int_equal(lp_toc_chunk(t2, 1).chunk_offset, 4);
	assert_string_equal(
		lp_toc_entry_link_name(
			t2, lp_toc_entry(t2, lp_toc_lookup_path(t2, "l"))),
		"f");
	lp_toc_entry_xattrs(t2, lp_toc_entry(t2, lp_toc_lookup_path(t2, "f")),
			    &nr);
	assert_int_equal(nr, 1);
	lp_toc_free(t1);
	lp_toc_free(t2);
	lp_buf_release(&out);
}

static void test_footers(void **state)
{
	uint8_t f[LP_FOOTER_ESTARGZ_SIZE], z[LP_FOOTER_ZSTD_SIZE];
	struct lp_footer out;

	lp_footer_write_estargz(0x59c557, f);
	assert_memory_equal(f,
			    "\x1f\x8b\x08\x04\0\0\0\0\0\xff\x1a\0SG\x16\0"
			    "000000000059c557STARGZ"
			    "\x01\0\0\xff\xff\0\0\0\0\0\0\0\0",
			    LP_FOOTER_ESTARGZ_SIZE);
	assert_int_equal(
		lp_footer_parse(f, sizeof(f), 0x59c557 + 51 + 100, &out, NULL),
		0);
	assert_int_equal(out.format, LP_FMT_ESTARGZ);
	assert_int_equal(out.toc_offset, 0x59c557);

	lp_footer_write_zstd(1000, 300, 900, z);
	assert_int_equal(lp_get_le32(z), LP_ZSTD_SKIPPABLE_MAGIC);
	assert_int_equal(lp_get_le32(z + 4), 40);
	assert_memory_equal(z + 40, LP_ZSTD_CHUNKED_MAGIC, 8);
	assert_int_equal(
		lp_footer_parse(z, sizeof(z), 1000 + 300 + 48, &out, NULL), 0);
	assert_int_equal(out.format, LP_FMT_ZSTD_CHUNKED);
	assert_int_equal(out.toc_offset, 1000);
	assert_int_equal(out.toc_size, 300);
	assert_int_equal(out.toc_uncompressed_size, 900);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_fields),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_footers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
