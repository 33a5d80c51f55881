// SPDX-License-Identifier: Apache-2.0
/*
 * TOC parser tests: every TOCEntry field of a hand-written TOC (name
 * normalisation, implied parents, hardlinks, carried-forward owner names,
 * chunk continuations, inner offsets, xattrs, devices, modtimes, mode bits),
 * the lookups, and a table of hostile TOCs that must be rejected with the
 * right code and a message naming the entry.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "toc_test_digest.h"
#include "lp_chunk.h"
#include "lp_toc.h"
#include "deleted_fd.h"

/* sha256 of nothing: an empty file's digest */
#define DE \
	"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D1 \
	"sha256:0000000000000000000000000000000000000000000000000000000000000001"
#define D2 \
	"sha256:0000000000000000000000000000000000000000000000000000000000000002"

static const char good_toc[] =
	"{\"version\":1,\"entries\":["
	"{\"name\":\"./\",\"type\":\"dir\",\"mode\":16877,"
	" \"modtime\":\"2021-03-04T05:06:07Z\"},"
	"{\"name\":\"./etc/\",\"type\":\"dir\",\"mode\":493,\"uid\":1000,"
	" \"gid\":1001,\"userName\":\"alice\",\"groupName\":\"staff\"},"
	"{\"name\":\"./etc/passwd\",\"type\":\"reg\",\"size\":10,"
	" \"offset\":100,\"mode\":33188,\"uid\":1000,\"gid\":1001,"
	" \"digest\":\"" D1 "\",\"chunkDigest\":\"" D1 "\","
	" \"modtime\":\"2021-03-04T05:06:07.5+01:00\",\"futureField\":[1,2]},"
	"{\"name\":\"etc/packed\",\"type\":\"reg\",\"size\":5,\"offset\":100,"
	" \"innerOffset\":1024},"
	"{\"name\":\"/usr/lib/big\",\"type\":\"reg\",\"size\":25,"
	" \"offset\":200,\"chunkSize\":10,\"chunkDigest\":\"" D2 "\"},"
	"{\"name\":\"usr/lib/big\",\"type\":\"chunk\",\"offset\":300,"
	" \"chunkOffset\":10,\"chunkSize\":10},"
	"{\"name\":\"usr/lib/big\",\"type\":\"chunk\",\"offset\":400,"
	" \"chunkOffset\":20},"
	"{\"name\":\"usr/lib/link\",\"type\":\"hardlink\","
	" \"linkName\":\"./usr/lib/big\"},"
	"{\"name\":\"usr/lib/link2\",\"type\":\"hardlink\","
	" \"linkName\":\"usr/lib/link\"},"
	"{\"name\":\"usr/lib/sym\",\"type\":\"symlink\",\"linkName\":\"big\"},"
	"{\"name\":\"dev/null\",\"type\":\"char\",\"devMajor\":1,"
	" \"devMinor\":3,\"uid\":1000},"
	"{\"name\":\"dev/fifo\",\"type\":\"fifo\"},"
	"{\"name\":\"dev/blk\",\"type\":\"block\",\"devMajor\":7},"
	"{\"name\":\"x\",\"type\":\"dir\",\"xattrs\":{\"user.a\":\"aGk=\","
	" \"trusted.overlay.opaque\":\"eQ==\",\"user.empty\":\"\"}},"
	"{\"name\":\".prefetch.landmark\",\"type\":\"reg\",\"size\":1,"
	" \"offset\":500},"
	"{\"name\":\"empty\",\"type\":\"reg\",\"gid\":1001}"
	"]}";

static struct lp_toc *parse_ok(const char *json, uint64_t payload_end)
{
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	int r = lp_toc_parse(json, strlen(json), payload_end, &toc, &err);

	if (r < 0)
		print_message("parse: %s\n", lp_err_str(&err, r));
	assert_int_equal(r, 0);
	return toc;
}

static const struct lp_toc_entry *at(const struct lp_toc *toc, const char *path)
{
	uint32_t i = lp_toc_lookup_path(toc, path);

	assert_int_not_equal(i, LP_TOC_NO_INDEX);
	return lp_toc_entry(toc, i);
}

static void test_fields(void **state)
{
	struct lp_toc *toc = parse_ok(good_toc, 1000);
	const struct lp_toc_entry *e, *root;
	struct lp_toc_chunk c;
	char buf[LP_TOC_MAX_PATH + 1];
	const struct lp_toc_xattr *x;
	uint32_t nr, maj, min, nsec;
	int64_t sec;

	root = lp_toc_entry(toc, 0);
	assert_string_equal(lp_toc_entry_name(toc, root), "");
	assert_int_equal(lp_toc_entry_path(toc, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(root->type, LP_TOC_DIR);
	assert_int_equal(root->flags & LP_TOC_IMPLIED, 0);
	assert_int_equal(root->mode, 0755); /* S_IFDIR masked off */
	lp_toc_entry_mtime(toc, root, &sec, &nsec);
	assert_int_equal(sec, 1614834367);
	assert_int_equal(nsec, 0);
	/* root, etc, usr, usr/lib (implied), dev (implied), x: 2 + 4 subdirs */
	assert_int_equal(lp_toc_entry_nlink(toc, root), 2 + 4);

	e = at(toc, "etc/passwd");
	assert_string_equal(lp_toc_entry_name(toc, e), "passwd");
	assert_int_equal(
		lp_toc_entry_path(toc, lp_toc_lookup_path(toc, "etc/passwd"),
				  buf, sizeof(buf)),
		10);
	assert_string_equal(buf, "etc/passwd");
	assert_int_equal(
		lp_toc_entry_path(toc, lp_toc_lookup_path(toc, "etc/passwd"),
				  buf, 10),
		-ENAMETOOLONG);
	assert_int_equal(lp_toc_entry_path(toc, lp_toc_nr_entries(toc), buf,
					   sizeof(buf)),
			 -ENOENT);
	assert_non_null(edig(toc, e));
	assert_int_equal(e->mode, 0644);
	assert_int_equal(e->size, 10);
	assert_int_equal(lp_toc_chunk(toc, e->first_chunk).offset, 100);
	assert_true(e->flags & LP_TOC_HAS_DIGEST);
	assert_true(e->flags & LP_TOC_HAS_MODTIME);
	lp_toc_entry_mtime(toc, e, &sec, &nsec);
	assert_int_equal(sec, 1614834367 - 3600);
	assert_int_equal(nsec, 500000000);
	assert_string_equal(lp_toc_entry_user_name(toc, e),
			    "alice"); /* carried forward */
	assert_string_equal(lp_toc_entry_group_name(toc, e), "staff");
	assert_int_equal(e->nr_chunks, 1);
	c = lp_toc_chunk(toc, e->first_chunk);
	assert_int_equal(c.chunk_size, 10);
	assert_non_null(cdig(toc, &c));
	/* shares its member with etc/packed: ends at the next offset */
	assert_int_equal(c.compressed_size, 100);

	e = at(toc, "etc/packed");
	c = lp_toc_chunk(toc, e->first_chunk);
	assert_int_equal(c.inner_offset, 1024);
	assert_int_equal(c.compressed_size, 100);
	assert_null(cdig(toc, &c));
	assert_string_equal(lp_toc_entry_user_name(toc, e),
			    ""); /* uid 0 never named */

	e = at(toc, "usr/lib/big");
	assert_int_equal(e->nr_chunks, 3);
	assert_int_equal(lp_toc_entry_nlink(toc, e), 3);
	c = lp_toc_chunk(toc, e->first_chunk + 2);
	assert_int_equal(c.chunk_offset, 20);
	assert_int_equal(c.chunk_size, 5); /* 0: to the end */
	assert_int_equal(c.compressed_size, 100);
	assert_int_equal(lp_toc_find_chunk(toc, lp_toc_entry_ino(toc, e), 0),
			 e->first_chunk);
	assert_int_equal(lp_toc_find_chunk(toc, lp_toc_entry_ino(toc, e), 9),
			 e->first_chunk);
	assert_int_equal(lp_toc_find_chunk(toc, lp_toc_entry_ino(toc, e), 10),
			 e->first_chunk + 1);
	assert_int_equal(lp_toc_find_chunk(toc, lp_toc_entry_ino(toc, e), 24),
			 e->first_chunk + 2);
	assert_int_equal(lp_toc_find_chunk(toc, lp_toc_entry_ino(toc, e), 25),
			 LP_TOC_NO_INDEX);

	e = at(toc, "usr/lib/link2");
	assert_int_equal(e->type, LP_TOC_HARDLINK);
	assert_int_equal(lp_toc_entry_ino(toc, e),
			 lp_toc_lookup_path(toc, "usr/lib/big"));
	assert_int_equal(lp_toc_entry_nlink(toc, e), 3);
	assert_string_equal(
		lp_toc_entry_link_name(toc, at(toc, "usr/lib/link")),
		"usr/lib/big");
	assert_string_equal(lp_toc_entry_link_name(toc, at(toc, "usr/lib/sym")),
			    "big");

	e = at(toc, "usr/lib");
	assert_true(e->flags & LP_TOC_IMPLIED);
	assert_int_equal(e->mode, 0755);
	assert_int_equal(e->nr_children, 4);
	assert_string_equal(
		lp_toc_entry_name(
			toc,
			lp_toc_entry(toc, lp_toc_child(toc, e->first_child))),
		"big");

	e = at(toc, "dev/null");
	assert_int_equal(e->type, LP_TOC_CHAR);
	lp_toc_entry_dev(toc, e, &maj, &min);
	assert_int_equal(maj, 1);
	assert_int_equal(min, 3);
	assert_string_equal(lp_toc_entry_user_name(toc, e), "alice");
	assert_int_equal(at(toc, "dev/blk")->type, LP_TOC_BLOCK);
	assert_int_equal(at(toc, "dev/fifo")->type, LP_TOC_FIFO);
	assert_string_equal(lp_toc_entry_group_name(toc, at(toc, "empty")),
			    "staff");
	assert_int_equal(at(toc, "empty")->nr_chunks, 0);

	e = at(toc, "x");
	x = lp_toc_entry_xattrs(toc, e, &nr);
	assert_int_equal(nr, 3);
	assert_string_equal(x->name, "user.a");
	assert_int_equal(x->len, 2);
	assert_memory_equal(x->value, "hi", 2);
	assert_int_equal(x[2].len, 0);
	/* an entry without any: NULL, 0 */
	assert_null(lp_toc_entry_xattrs(toc, at(toc, "empty"), &nr));
	assert_int_equal(nr, 0);
	lp_toc_entry_dev(toc, at(toc, "empty"), &maj, &min);
	assert_int_equal(maj, 0);
	assert_int_equal(min, 0);
	assert_string_equal(lp_toc_entry_link_name(toc, at(toc, "empty")), "");

	assert_int_equal(lp_toc_prefetch_end(toc), 500);
	lp_toc_free(toc);
	lp_toc_free(NULL);
}

static void test_lookup(void **state)
{
	struct lp_toc *toc = parse_ok(good_toc, 1000);
	uint32_t root_kids = lp_toc_entry(toc, 0)->nr_children, i;
	const char *prev = NULL;

	assert_int_equal(lp_toc_lookup_path(toc, ""), 0);
	assert_int_equal(lp_toc_lookup_path(toc, "/"), 0);
	assert_int_equal(lp_toc_lookup_path(toc, "./"), 0);
	assert_int_equal(lp_toc_lookup_path(toc, "./usr//lib/./big"),
			 lp_toc_lookup_path(toc, "usr/lib/big"));
	assert_int_equal(lp_toc_lookup_path(toc, "usr/lib/../lib"),
			 LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_lookup_path(toc, "usr/lib/big/x"),
			 LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_lookup_path(toc, "nope"), LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_lookup(toc, 0, "etcX", 3),
			 lp_toc_lookup_path(toc, "etc"));
	assert_int_equal(lp_toc_lookup(toc, 0, "et", 2), LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_lookup(toc, 12345, "etc", 3), LP_TOC_NO_INDEX);
	for (i = 0; i < root_kids; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(
			toc,
			lp_toc_child(toc,
				     lp_toc_entry(toc, 0)->first_child + i));

		assert_int_equal(e->parent, 0);
		if (prev)
			assert_true(strcmp(prev, lp_toc_entry_name(toc, e)) <
				    0);
		prev = lp_toc_entry_name(toc, e);
	}
	lp_toc_free(toc);
}

/* escaped keys name the same members as plain ones (json-c decodes them) */
static void test_escaped_keys(void **state)
{
	struct lp_toc *toc =
		parse_ok("{\"v\\u0065rsion\":1,\"entr\\u0069es\":["
			 "{\"name\":\"a\",\"type\":\"dir\"},"
			 "{\"n\\u0061me\":\"a/b\",\"t\\u0079pe\":\"reg\"}]}",
			 10);

	(void)state;
	assert_int_equal(lp_toc_nr_entries(toc), 3);
	assert_int_equal(
		lp_toc_entry(toc, lp_toc_lookup_path(toc, "a/b"))->type,
		LP_TOC_REG);
	lp_toc_free(toc);
}

static void test_empty_and_carry(void **state)
{
	struct lp_toc *toc = parse_ok("{\"entries\":[]}", 0);

	assert_int_equal(lp_toc_nr_entries(toc), 1);
	assert_true(lp_toc_entry(toc, 0)->flags & LP_TOC_IMPLIED);
	lp_toc_free(toc);
	toc = parse_ok(" { } ", 0);
	assert_int_equal(lp_toc_nr_entries(toc), 1);
	lp_toc_free(toc);
	/* the name is carried per uid: uid 2 keeps "b" after uid 1 changes */
	toc = parse_ok("{\"entries\":["
		       "{\"name\":\"a\",\"type\":\"dir\",\"uid\":1,"
		       "\"userName\":\"a\"},"
		       "{\"name\":\"b\",\"type\":\"dir\",\"uid\":2,"
		       "\"userName\":\"b\"},"
		       "{\"name\":\"c\",\"type\":\"dir\",\"uid\":1,"
		       "\"userName\":\"a2\"},"
		       "{\"name\":\"d\",\"type\":\"dir\",\"uid\":2},"
		       "{\"name\":\"e\",\"type\":\"dir\",\"uid\":1}]}",
		       0);
	assert_string_equal(lp_toc_entry_user_name(toc, at(toc, "d")), "b");
	assert_string_equal(lp_toc_entry_user_name(toc, at(toc, "e")), "a2");
	assert_int_equal(lp_toc_entry_uid(toc, at(toc, "d")), 2);
	assert_int_equal(lp_toc_entry_uid(toc, at(toc, "e")), 1);
	assert_int_equal(lp_toc_entry_uid(toc, at(toc, "a")), 1);
	assert_string_equal(lp_toc_entry_user_name(toc, at(toc, "a")), "a");
	lp_toc_free(toc);
}

struct bad {
	const char *json;
	int code;
	const char *msg; /* substring of the error message */
};

#define E(x) "{\"version\":1,\"entries\":[" x "]}"
#define REG(name, size, off)                                      \
	"{\"name\":\"" name "\",\"type\":\"reg\",\"size\":" #size \
	",\"offset\":" #off "}"

static const struct bad bad_tocs[] = {
	{ E("{\"name\":\"../etc/passwd\",\"type\":\"reg\"}"), -EINVAL,
	  "../etc/passwd\": path has a \"..\"" },
	{ E("{\"name\":\"a/../../b\",\"type\":\"dir\"}"), -EINVAL, "\"..\"" },
	{ E("{\"name\":\"a\",\"type\":\"dir\"},{\"name\":\"./a/\","
	    "\"type\":\"dir\"}"),
	  -EINVAL, "TOC entry 1 \"./a/\": duplicate name" },
	{ E("{\"name\":\"./\",\"type\":\"dir\"},{\"name\":\"/\","
	    "\"type\":\"dir\"}"),
	  -EINVAL, "duplicate root" },
	{ E("{\"name\":\"./\",\"type\":\"reg\"}"), -EINVAL, "root is not" },
	{ E("{\"name\":\"a\",\"type\":\"socket\"}"), -EINVAL,
	  "unknown type \"socket\"" },
	{ E("{\"name\":\"a\"}"), -EINVAL, "unknown type" },
	{ E(REG("a", 10, 1000)), -EINVAL, "\"a\": offset 1000 is outside" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":10,\"offset\":0,"
	    "\"chunkSize\":6},"
	    "{\"name\":\"a\",\"type\":\"chunk\",\"offset\":10,"
	    "\"chunkOffset\":4}"),
	  -EINVAL, "\"a\": chunk at file offset 4 overlaps" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":10,\"offset\":0,"
	    "\"chunkSize\":4},"
	    "{\"name\":\"a\",\"type\":\"chunk\",\"offset\":10,"
	    "\"chunkOffset\":6}"),
	  -EINVAL, "leaves a gap" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":10,\"offset\":0,"
	    "\"chunkSize\":4}"),
	  -EINVAL, "chunks cover 4 of 10" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":10,\"offset\":0,"
	    "\"chunkSize\":40}"),
	  -EINVAL, "runs past the file size" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":10,\"offset\":0,"
	    "\"chunkOffset\":3}"),
	  -EINVAL, "leaves a gap" },
	{ E("{\"name\":\"a\",\"type\":\"reg\"},{\"name\":\"a\","
	    "\"type\":\"chunk\",\"offset\":1,\"chunkSize\":1}"),
	  -EINVAL, "past the file size" },
	{ E("{\"name\":\"a\",\"type\":\"chunk\",\"offset\":1}"), -EINVAL,
	  "chunk does not follow" },
	{ E(REG("a", 10, 0) ",{\"name\":\"b\",\"type\":\"chunk\","
			    "\"offset\":1,\"chunkOffset\":5}"),
	  -EINVAL, "other than" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"digest\":\"sha256:xyz\"}"),
	  -EINVAL, "\"a\": bad digest" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":1,\"offset\":0,"
	    "\"chunkDigest\":\"md5:00\"}"),
	  -EINVAL, "bad chunkDigest" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":9223372036854775807,"
	    "\"offset\":0}"),
	  -EFBIG, "LP_FILE_MAX_SIZE" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":99999999999999999999,"
	    "\"offset\":0}"),
	  -EFBIG, "LP_FILE_MAX_SIZE" },
	{ E(REG("a", 134217728, 0)), -EFBIG, "LP_CHUNK_MAX_SIZE" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":1,\"offset\":0,"
	    "\"innerOffset\":999999999999}"),
	  -EFBIG, "LP_CHUNK_MAX_INNER_OFFSET" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":-1}"), -EINVAL,
	  "\"size\" is negative" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":1.5}"), -EINVAL,
	  "not an integer" },
	{ E("{\"name\":\"a\",\"type\":\"reg\",\"size\":\"1\"}"), -EINVAL,
	  "not an integer" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"uid\":4294967296}"), -EINVAL,
	  "\"uid\" out of range" },
	{ E("{\"name\":5,\"type\":\"dir\"}"), -EINVAL, "not a string" },
	{ E("{\"name\":\"a\\u0000b\",\"type\":\"dir\"}"), -EINVAL, "NUL" },
	{ E("{\"name\":\"h\",\"type\":\"hardlink\",\"linkName\":\"nope\"}"),
	  -EINVAL, "\"h\": hardlink to a missing" },
	{ E("{\"name\":\"d\",\"type\":\"dir\"},{\"name\":\"h\","
	    "\"type\":\"hardlink\",\"linkName\":\"d\"}"),
	  -EINVAL, "non-regular" },
	{ E("{\"name\":\"h1\",\"type\":\"hardlink\",\"linkName\":\"h2\"},"
	    "{\"name\":\"h2\",\"type\":\"hardlink\",\"linkName\":\"h1\"}"),
	  -EINVAL, "cycle" },
	{ E("{\"name\":\"s\",\"type\":\"symlink\"}"), -EINVAL,
	  "bad symlink target" },
	{ E("{\"name\":\"f\",\"type\":\"fifo\"},{\"name\":\"f/x\","
	    "\"type\":\"dir\"}"),
	  -EINVAL, "\"f/x\": parent is not a directory" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"xattrs\":{\"user.x\":\"!!\"}}"),
	  -EINVAL, "bad base64" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"xattrs\":{\"user.x\":\"QQ=\"}}"),
	  -EINVAL, "bad base64" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"xattrs\":{\"user.x\":1}}"),
	  -EINVAL, "not a string" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"xattrs\":[]}"), -EINVAL,
	  "not an object" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"modtime\":\"yesterday\"}"),
	  -EINVAL, "bad modtime" },
	{ E("{\"name\":\"a\",\"type\":\"dir\","
	    "\"modtime\":\"2021-02-30T00:00:00Z\"}"),
	  -EINVAL, "bad modtime" },
	{ E("{\"name\":\"a\",\"type\":\"dir\","
	    "\"modtime\":\"2021-02-03T00:00:00\"}"),
	  -EINVAL, "bad modtime" },
	{ E("{\"name\":\"a\",\"type\":\"dir\",\"x\":[[[[[[[[[[[[[[[[[[]]]]]]]"
	    "]]]]]]]]]]]}"),
	  -EINVAL, "nested deeper" },
	{ "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", -EINVAL, "expected '{'" },
	{ "{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", -EINVAL,
	  "nested deeper" },
	{ E("\"a\""), -EINVAL, "not a JSON object" },
	{ E("{\"name\":\"a\",\"type\":\"dir\"}") "x", -EINVAL, "trailing" },
	{ "{\"version\":1,\"entries\":[{\"name\":\"a\"", -EINVAL, "truncated" },
	{ "{\"version\":2,\"entries\":[]}", -EINVAL, "unsupported version" },
	{ "{\"entries\":[],\"entries\":[]}", -EINVAL, "two \"entries\"" },
	/* top-level keys are decoded, as json-c and the Go reference do */
	{ "{\"vers\\u0069on\":2,\"entries\":[]}", -EINVAL,
	  "unsupported version" },
	{ "{\"\\u0065ntries\":[],\"entries\":[]}", -EINVAL, "two \"entries\"" },
	{ "{\"entries\":[{\"name\":\"a\",\"type\":\"dir\",}]}", -EINVAL,
	  "TOC JSON at byte" },
	{ "{\"entries\":[] \"x\":1}", -EINVAL, "expected '}'" },
	{ "{\"entries\":[],\"x\":tru}", -EINVAL, "TOC JSON at byte" },
	{ "{\"entries\":{}}", -EINVAL, "expected '['" },
	{ "", -EINVAL, "expected '{'" },
};

static void test_bad(void **state)
{
	size_t i;

	for (i = 0; i < LP_ARRAY_SIZE(bad_tocs); i++) {
		const struct bad *b = &bad_tocs[i];
		struct lp_toc *toc = NULL;
		struct lp_err err = { 0 };
		int r = lp_toc_parse(b->json, strlen(b->json), 100, &toc, &err);

		if (r != b->code || !strstr(err.msg, b->msg))
			print_message("case %zu: %s\n  got %d \"%s\"\n", i,
				      b->json, r, err.msg);
		assert_int_equal(r, b->code);
		assert_non_null(strstr(err.msg, b->msg));
		assert_null(toc);
	}
}

/*
 * lp_toc_parse_fed(): fed a few bytes at a time (windows of 1..@max bytes,
 * steps of what is asked plus 0..3), the parse reads what it reads whole:
 * the good TOC entry for entry, each bad one with the same code and
 * message; a feed that stops is the parse's error.
 */
struct step_feed {
	size_t len, avail, extra, calls;
	size_t fail_at; /* past this many bytes: -EIO (0: never) */
};

static ssize_t step_wait(void *arg, size_t want)
{
	struct step_feed *f = arg;

	assert_true(want <= f->len);
	assert_true(want > f->avail); /* asks only for what is not there */
	f->calls++;
	if (f->fail_at && want > f->fail_at)
		return -EIO;
	f->avail = want + f->extra++ % 4;
	if (f->avail > f->len)
		f->avail = f->len;
	return (ssize_t)f->avail;
}

static int parse_fed(const char *json, uint64_t payload_end, size_t window,
		     struct step_feed *sf, struct lp_toc **ret_toc,
		     struct lp_err *err)
{
	struct lp_toc_feed feed = { step_wait, sf, window, NULL };

	memset(sf, 0, sizeof(*sf));
	sf->len = strlen(json);
	return lp_toc_parse_fed(json, sf->len, &feed, payload_end, ret_toc,
				err);
}

static void test_fed(void **state)
{
	struct lp_toc *whole = parse_ok(good_toc, 1000), *toc = NULL;
	char p1[LP_TOC_MAX_PATH + 1], p2[LP_TOC_MAX_PATH + 1];
	struct step_feed sf;
	struct lp_err err = { 0 }, werr;
	size_t window, i;
	uint32_t k;
	int r;

	(void)state;
	for (window = 1; window <= 64; window++) {
		r = parse_fed(good_toc, 1000, window, &sf, &toc, &err);
		assert_int_equal(r, 0);
		assert_true(sf.calls > 1); /* it was fed, not handed all */
		assert_int_equal(lp_toc_nr_entries(toc),
				 lp_toc_nr_entries(whole));
		assert_int_equal(lp_toc_nr_chunks(toc),
				 lp_toc_nr_chunks(whole));
		for (k = 0; k < lp_toc_nr_entries(whole); k++) {
			assert_memory_equal(lp_toc_entry(toc, k),
					    lp_toc_entry(whole, k),
					    sizeof(struct lp_toc_entry));
			assert_int_equal(
				lp_toc_entry_path(whole, k, p1, sizeof(p1)),
				lp_toc_entry_path(toc, k, p2, sizeof(p2)));
			assert_string_equal(p1, p2);
		}
		lp_toc_free(toc);
		toc = NULL;
		for (i = 0; i < LP_ARRAY_SIZE(bad_tocs); i++) {
			memset(&err, 0, sizeof(err));
			memset(&werr, 0, sizeof(werr));
			assert_int_equal(lp_toc_parse(bad_tocs[i].json,
						      strlen(bad_tocs[i].json),
						      100, &toc, &werr),
					 bad_tocs[i].code);
			r = parse_fed(bad_tocs[i].json, 100, window, &sf, &toc,
				      &err);
			assert_int_equal(r, bad_tocs[i].code);
			assert_string_equal(err.msg, werr.msg);
			assert_null(toc);
		}
	}
	/* the bytes stop coming: the feed's error, not a JSON one */
	memset(&err, 0, sizeof(err));
	memset(&sf, 0, sizeof(sf));
	{
		struct lp_toc_feed feed = { step_wait, &sf, 16, NULL };

		sf.len = strlen(good_toc);
		sf.fail_at = sf.len / 2;
		r = lp_toc_parse_fed(good_toc, sf.len, &feed, 1000, &toc, &err);
	}
	assert_int_equal(r, -EIO);
	assert_non_null(strstr(err.msg, "arrived"));
	assert_null(toc);
	lp_toc_free(whole);
}

/* path bounds: component, depth and total length */
static void test_bounds(void **state)
{
	char *json = malloc(64 * 1024), *p;
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	int i;

	assert_non_null(json);
	p = json + sprintf(json, "{\"entries\":[{\"name\":\"");
	memset(p, 'n', LP_TOC_MAX_NAME + 1);
	strcpy(p + LP_TOC_MAX_NAME + 1, "\",\"type\":\"dir\"}]}");
	assert_int_equal(lp_toc_parse(json, strlen(json), 0, &toc, &err),
			 -EFBIG);
	assert_non_null(strstr(err.msg, "LP_TOC_MAX_NAME"));

	lp_err_clear(&err);
	p = json + sprintf(json, "{\"entries\":[{\"name\":\"");
	for (i = 0; i <= LP_TOC_MAX_DEPTH; i++)
		p += sprintf(p, "d/");
	strcpy(p, "\",\"type\":\"dir\"}]}");
	assert_int_equal(lp_toc_parse(json, strlen(json), 0, &toc, &err),
			 -EFBIG);
	assert_non_null(strstr(err.msg, "LP_TOC_MAX_DEPTH"));

	lp_err_clear(&err);
	p = json + sprintf(json, "{\"entries\":[{\"name\":\"");
	for (i = 0; i < 20; i++) {
		memset(p, 'a' + i, 250);
		p[250] = '/';
		p += 251;
	}
	strcpy(p, "\",\"type\":\"dir\"}]}");
	assert_int_equal(lp_toc_parse(json, strlen(json), 0, &toc, &err),
			 -EFBIG);
	assert_non_null(strstr(err.msg, "LP_TOC_MAX_PATH"));

	/* depth exactly at the bound is fine, and implies its parents */
	p = json + sprintf(json, "{\"entries\":[{\"name\":\"");
	for (i = 0; i < LP_TOC_MAX_DEPTH; i++)
		p += sprintf(p, "d/");
	strcpy(p, "\",\"type\":\"dir\"}]}");
	assert_int_equal(lp_toc_parse(json, strlen(json), 0, &toc, &err), 0);
	assert_int_equal(lp_toc_nr_entries(toc), 1 + LP_TOC_MAX_DEPTH);
	lp_toc_free(toc);
	free(json);
}

/*
 * A chunk's compressed span (to the next member or the TOC) is kept in 32
 * bits: a member over 4 GiB is refused, naming the entry; 4 GiB - 1 is fine.
 */
static void test_compressed_span(void **state)
{
	static const char json[] = E(REG("big/f", 1, 0));
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };

	assert_int_equal(
		lp_toc_parse(json, strlen(json), (uint64_t)1 << 32, &toc, &err),
		-EFBIG);
	assert_non_null(strstr(err.msg, "\"big/f\": chunk at file offset 0"));
	assert_non_null(strstr(err.msg, "4294967296 compressed bytes"));
	assert_null(toc);
	assert_int_equal(
		lp_toc_parse(json, strlen(json), UINT32_MAX, &toc, &err), 0);
	assert_int_equal(lp_toc_chunk(toc, 0).compressed_size, UINT32_MAX);
	lp_toc_free(toc);
}

/* side tables: owners shared, rare fields only where given */
static void test_side_tables(void **state)
{
	struct lp_toc *toc =
		parse_ok(E("{\"name\":\"a\",\"type\":\"dir\",\"uid\":5,"
			   "\"userName\":\"u\",\"gid\":6,\"groupName\":\"g\"},"
			   "{\"name\":\"a/s\",\"type\":\"symlink\",\"uid\":5,"
			   "\"gid\":6,\"linkName\":\"t\"},"
			   "{\"name\":\"a/c\",\"type\":\"char\",\"devMajor\":4,"
			   "\"devMinor\":0},"
			   "{\"name\":\"a/f\",\"type\":\"reg\",\"uid\":5,"
			   "\"gid\":6,\"xattrs\":{\"user.k\":\"dg==\"}}"),
			 0);
	const struct lp_toc_entry *s = at(toc, "a/s"), *c = at(toc, "a/c");
	const struct lp_toc_entry *f = at(toc, "a/f"), *d = at(toc, "a");
	const struct lp_toc_xattr *x;
	uint32_t nr, maj, min;

	assert_string_equal(lp_toc_entry_link_name(toc, s), "t");
	assert_string_equal(lp_toc_entry_user_name(toc, s), "u");
	assert_string_equal(lp_toc_entry_group_name(toc, f), "g");
	assert_ptr_equal(lp_toc_entry_user_name(toc, s),
			 lp_toc_entry_user_name(toc, d));
	assert_string_equal(lp_toc_entry_user_name(toc, c), "");
	assert_int_equal(lp_toc_entry_uid(toc, s), 5);
	assert_int_equal(lp_toc_entry_gid(toc, s), 6);
	assert_int_equal(lp_toc_entry_uid(toc, c), 0);
	assert_int_equal(lp_toc_entry_gid(toc, c), 0);
	lp_toc_entry_dev(toc, c, &maj, &min);
	assert_int_equal(maj, 4);
	assert_int_equal(min, 0);
	lp_toc_entry_dev(toc, s, &maj, &min);
	assert_int_equal(maj, 0);
	x = lp_toc_entry_xattrs(toc, f, &nr);
	assert_int_equal(nr, 1);
	assert_string_equal(x->name, "user.k");
	assert_memory_equal(x->value, "v", 1);
	assert_null(lp_toc_entry_xattrs(toc, s, &nr));
	assert_int_equal(nr, 0);
	assert_string_equal(lp_toc_entry_link_name(toc, f), "");
	/* a directory's children are not chunks */
	assert_int_equal(d->nr_children, 3);
	assert_int_equal(
		lp_toc_find_chunk(toc, lp_toc_lookup_path(toc, "a"), 0),
		LP_TOC_NO_INDEX);
	lp_toc_free(toc);
}

/*
 * A file's digest is kept once: as its first chunk's when they are equal,
 * on the side otherwise (several chunks, an empty file, another or no
 * chunkDigest); each reads back as written.
 */

/* the chunkDigest of @e's first chunk, NULL when it has none */
static const struct lp_digest *first_chunk_digest(const struct lp_toc *toc,
						  const struct lp_toc_entry *e)
{
	struct lp_toc_chunk c = lp_toc_chunk(toc, e->first_chunk);

	return cdig(toc, &c);
}
static void test_file_digests(void **state)
{
	struct lp_toc *toc = parse_ok(
		E("{\"name\":\"one\",\"type\":\"reg\",\"size\":4,"
		  "\"offset\":0,\"digest\":\"" D1 "\",\"chunkDigest\":\"" D1
		  "\"},"
		  "{\"name\":\"two\",\"type\":\"reg\",\"size\":8,"
		  "\"offset\":10,\"chunkSize\":4,\"digest\":\"" D1
		  "\",\"chunkDigest\":\"" D2 "\"},"
		  "{\"name\":\"two\",\"type\":\"chunk\",\"offset\":20,"
		  "\"chunkOffset\":4,\"chunkDigest\":\"" D1 "\"},"
		  "{\"name\":\"empty\",\"type\":\"reg\",\"digest\":\"" D2 "\"},"
		  "{\"name\":\"bare\",\"type\":\"reg\",\"size\":1,"
		  "\"offset\":30,\"digest\":\"" D2 "\"},"
		  "{\"name\":\"none\",\"type\":\"reg\",\"size\":1,"
		  "\"offset\":40,\"chunkDigest\":\"" D2 "\"},"
		  "{\"name\":\"nil\",\"type\":\"reg\",\"digest\":\"" DE "\"},"
		  "{\"name\":\"nilx\",\"type\":\"reg\",\"digest\":\"" DE
		  "\",\"xattrs\":{\"user.x\":\"eQ==\"}},"
		  "{\"name\":\"emptyx\",\"type\":\"reg\",\"digest\":\"" D2
		  "\",\"xattrs\":{\"user.x\":\"eQ==\"}},"
		  "{\"name\":\"onex\",\"type\":\"reg\",\"size\":4,"
		  "\"offset\":50,\"digest\":\"" D1 "\",\"chunkDigest\":\"" D1
		  "\",\"xattrs\":{\"user.x\":\"eQ==\"}}"),
		100);
	struct lp_digest d1, d2, de;
	const struct lp_toc_entry *e;

	assert_int_equal(lp_digest_parse(D1, &d1), 0);
	assert_int_equal(lp_digest_parse(D2, &d2), 0);
	assert_true(lp_digest_equal(edig(toc, at(toc, "one")), &d1));
	e = at(toc, "two");
	assert_true(lp_digest_equal(edig(toc, e), &d1));
	assert_true(lp_digest_equal(first_chunk_digest(toc, e), &d2));
	assert_true(lp_digest_equal(edig(toc, at(toc, "empty")), &d2));
	e = at(toc, "bare");
	assert_true(lp_digest_equal(edig(toc, e), &d2));
	assert_null(first_chunk_digest(toc, e));
	e = at(toc, "none");
	assert_null(edig(toc, e));
	assert_true(lp_digest_equal(first_chunk_digest(toc, e), &d2));
	assert_null(edig(toc, lp_toc_entry(toc, 0)));
	/* empty files with the empty digest (what lazypull convert writes for
	 * every empty file), with and without xattrs (a side record), and the
	 * same cases with another digest or a chunk */
	assert_int_equal(lp_digest_parse(DE, &de), 0);
	assert_true(lp_digest_equal(edig(toc, at(toc, "nil")), &de));
	assert_true(lp_digest_equal(edig(toc, at(toc, "nilx")), &de));
	assert_true(lp_digest_equal(edig(toc, at(toc, "emptyx")), &d2));
	assert_true(lp_digest_equal(edig(toc, at(toc, "onex")), &d1));
	lp_toc_free(toc);
}

/* many entries: the hash and arrays grow; children stay sorted */
static void test_many(void **state)
{
	size_t cap = 8 * 1024 * 1024, n = 0;
	char *json = malloc(cap);
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	int i;

	assert_non_null(json);
	n += (size_t)sprintf(json, "{\"entries\":[");
	for (i = 0; i < 50000; i++)
		n += (size_t)sprintf(json + n,
				     "%s{\"name\":\"d%d/f%d\",\"type\":\"reg\","
				     "\"size\":1,\"offset\":%d,\"uid\":%d,"
				     "\"userName\":\"u%d\"}",
				     i ? "," : "", i % 100, i, i, i % 7, i % 7);
	strcpy(json + n, "]}");
	assert_int_equal(lp_toc_parse(json, strlen(json), 50000, &toc, &err),
			 0);
	assert_int_equal(lp_toc_nr_entries(toc), 1 + 50000 + 100);
	assert_int_equal(lp_toc_nr_chunks(toc), 50000);
	assert_int_equal(lp_toc_lookup_path(toc, "d42/f4242"), 1 + 4242);
	assert_string_equal(lp_toc_entry_user_name(toc, at(toc, "d42/f4242")),
			    "u0");
	assert_int_equal(lp_toc_chunk(toc, 49999).compressed_size, 1);
	lp_toc_free(toc);
	free(json);
}

/*
 * lp_toc_spill_digests(): every digest reads back the same from the file,
 * the file is an unlinked one in the directory given (an fd to it, nothing
 * named left behind), the digest policy verifies chunks against it, a table
 * under the minimum or in a memory-backed directory stays in memory, and a
 * directory that cannot take it leaves the TOC as it was.
 */

/* how many of this process's fds are a deleted file under @dir */
static int deleted_files_in(const char *dir)
{
	char fdp[64], target[4096];
	int fd, n = 0;
	ssize_t len;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(fdp, sizeof(fdp), "/proc/self/fd/%d", fd);
		len = readlink(fdp, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (!strncmp(target, dir, strlen(dir)) &&
		    strstr(target, "(deleted)"))
			n++;
	}
	return n;
}

static void test_spill_digests(void **state)
{
	char tmpl[] = "lp-test-spill.XXXXXX", dir[4096], hex[2][80], *json;
	struct lp_digest want[2], e_before[8], c_before[8], got;
	static const char data[2][5] = { "abcd", "efgh" };
	struct lp_err err = { 0 };
	struct lp_toc *toc;
	struct lp_toc_chunk c;
	uint32_t i, n;
	uint8_t bad[4] = { 'a', 'b', 'c', 'e' };
	DIR *d;

	struct statfs dfs;
	uint8_t byte, zeros[5 * sizeof(struct lp_digest)];
	off_t at_byte;
	int fd;

	(void)state;
	/* in the build's directory (the test's working directory): a disk
	 * where /var/tmp may be a tmpfs, which keeps the table in memory */
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, dir));
	for (i = 0; i < 2; i++) {
		lp_sha256(data[i], 4, &want[i]);
		lp_digest_format(&want[i], hex[i]);
	}
	assert_true(asprintf(&json,
			     "{\"version\":1,\"entries\":["
			     "{\"name\":\"a\",\"type\":\"reg\",\"size\":4,"
			     "\"offset\":0,\"digest\":\"%s\","
			     "\"chunkDigest\":\"%s\"},"
			     "{\"name\":\"b\",\"type\":\"reg\",\"size\":8,"
			     "\"offset\":10,\"chunkSize\":4,\"digest\":\"" D1
			     "\",\"chunkDigest\":\"%s\"},"
			     "{\"name\":\"b\",\"type\":\"chunk\",\"offset\":20,"
			     "\"chunkOffset\":4,\"chunkDigest\":\"%s\"},"
			     "{\"name\":\"e\",\"type\":\"reg\",\"digest\":"
			     "\"" D2 "\"},"
			     "{\"name\":\"z\",\"type\":\"reg\",\"size\":0}]}",
			     hex[0], hex[0], hex[1], hex[0]) > 0);
	toc = parse_ok(json, 100);
	n = lp_toc_nr_entries(toc);
	assert_true(n <= 8 && lp_toc_nr_chunks(toc) <= 8);
	for (i = 0; i < n; i++)
		memset(&e_before[i], i, sizeof(e_before[i]));
	/* under the minimum: a table of 5 digests (160 bytes) stays */
	assert_int_equal(lp_toc_spill_digests(toc, dir, 161, &err), 0);
	assert_int_equal(deleted_files_in(dir), 0);
	/* a directory that is not there: an error, the TOC as it was */
	assert_true(lp_toc_spill_digests(toc, "/nonexistent/lp-spill", 0,
					 &err) < 0);
	for (i = 0; i < n; i++) {
		const struct lp_digest *x = edig(toc, lp_toc_entry(toc, i));

		if (x)
			e_before[i] = *x;
	}
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		c = lp_toc_chunk(toc, i);
		assert_non_null(cdig(toc, &c));
		c_before[i] = *cdig(toc, &c);
	}
	/* tmpfs would hold the same bytes in memory: kept */
	if ((d = opendir("/dev/shm"))) {
		struct statfs fs;

		closedir(d);
		if (statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC)
			assert_int_equal(
				lp_toc_spill_digests(toc, "/dev/shm", 0, &err),
				0);
	}
	assert_int_equal(statfs(dir, &dfs), 0);
	if (dfs.f_type == TMPFS_MAGIC || dfs.f_type == RAMFS_MAGIC) {
		print_message("%s is memory-backed: the table stays in memory "
			      "there; the spill itself is not tested\n",
			      dir);
		assert_int_equal(lp_toc_spill_digests(toc, dir, 160, &err), 0);
		assert_int_equal(rmdir(dir), 0);
		lp_toc_free(toc);
		free(json);
		return;
	}
	assert_int_equal(lp_toc_spill_digests(toc, dir, 160, &err), 1);
	assert_int_equal(deleted_files_in(dir), 1);
	/* nothing named in the directory */
	assert_int_equal(rmdir(dir), 0);
	/* once spilled, there is nothing left in memory to spill */
	assert_int_equal(lp_toc_spill_digests(toc, "/var/tmp", 0, &err), 0);
	for (i = 0; i < n; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);
		const struct lp_digest *x = edig(toc, e);

		if (x)
			assert_true(lp_digest_equal(x, &e_before[i]));
		else
			assert_false(e->flags & LP_TOC_HAS_DIGEST);
	}
	assert_true(lp_digest_equal(edig(toc, at(toc, "a")), &want[0]));
	assert_non_null(edig(toc, at(toc, "e")));
	assert_null(edig(toc, at(toc, "z")));
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		c = lp_toc_chunk(toc, i);
		assert_true(lp_digest_equal(cdig(toc, &c), &c_before[i]));
	}
	/* the policy reads the file: b's two chunks, a's one */
	c = lp_toc_chunk(toc, at(toc, "b")->first_chunk + 1);
	assert_int_equal(lp_chunk_digest(toc, &c, &got, NULL), 0);
	assert_true(lp_digest_equal(&got, &want[0]));
	assert_int_equal(lp_chunk_check(toc, &c, data[0], &err), 0);
	assert_int_equal(lp_chunk_check(toc, &c, bad, &err), -EBADMSG);
	c = lp_toc_chunk(toc, at(toc, "b")->first_chunk);
	assert_int_equal(lp_chunk_check(toc, &c, data[1], &err), 0);
	assert_int_equal(lp_chunk_check(toc, &c, data[0], &err), -EBADMSG);
	c = lp_toc_chunk(toc, at(toc, "a")->first_chunk);
	assert_int_equal(lp_chunk_check(toc, &c, data[0], &err), 0);
	/* what comes back is checked (a page's CRC): a byte changed in the
	 * file, or the table read back as zeros (a lost writeback), is a
	 * read error, never a digest to compare against */
	fd = deleted_fd_in(dir);
	at_byte = (off_t)c.digest_idx * (off_t)sizeof(got) + 7;
	assert_int_equal(pread(fd, &byte, 1, at_byte), 1);
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, at_byte), 1);
	assert_int_equal(lp_toc_chunk_digest(toc, &c, &got), -EIO);
	memset(&err, 0, sizeof(err));
	assert_int_equal(lp_chunk_check(toc, &c, data[0], &err), -EIO);
	assert_non_null(strstr(err.msg, "digest table"));
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, at_byte), 1);
	assert_int_equal(lp_toc_chunk_digest(toc, &c, &got), 1);
	assert_true(lp_digest_equal(&got, &want[0]));
	memset(zeros, 0, sizeof(zeros));
	assert_int_equal(pwrite(fd, zeros, 5 * sizeof(got), 0),
			 (ssize_t)(5 * sizeof(got)));
	for (i = 0; i < lp_toc_nr_chunks(toc); i++) {
		c = lp_toc_chunk(toc, i);
		assert_int_equal(lp_toc_chunk_digest(toc, &c, &got), -EIO);
	}
	assert_int_equal(lp_toc_entry_digest(toc, at(toc, "e"), &got), -EIO);
	lp_toc_free(toc);
	assert_int_equal(deleted_files_in(dir), 0);
	free(json);
}

/*
 * The compact chunk record (offset and entry) and its columns: a compressed
 * size is the distance to the next chunk's member unless stated (a member
 * shared with the next chunk, offsets out of order, the last chunk short of
 * the payload's end), an inner offset only where one is given, a
 * chunkDigest's slot its rank among the chunks that have one (equal digests
 * in a row each keep theirs). Every field reads back as the TOC said.
 */
static void test_chunk_columns(void **state)
{
	struct lp_toc *toc = parse_ok(
		E("{\"name\":\"a\",\"type\":\"reg\",\"size\":4,\"offset\":0,"
		  "\"chunkDigest\":\"" D1 "\"},"
		  "{\"name\":\"b\",\"type\":\"reg\",\"size\":4,\"offset\":100,"
		  "\"chunkDigest\":\"" D1 "\"},"
		  "{\"name\":\"c\",\"type\":\"reg\",\"size\":4,\"offset\":100,"
		  "\"innerOffset\":512,\"digest\":\"" D2 "\"},"
		  "{\"name\":\"d\",\"type\":\"reg\",\"size\":8,\"offset\":300,"
		  "\"chunkSize\":4},"
		  "{\"name\":\"d\",\"type\":\"chunk\",\"offset\":350,"
		  "\"chunkOffset\":4,\"chunkDigest\":\"" D2 "\"},"
		  "{\"name\":\"e\",\"type\":\"reg\",\"size\":4,\"offset\":50,"
		  "\"innerOffset\":7,\"chunkDigest\":\"" D2 "\"}"),
		400);
	static const struct {
		const char *path;
		uint32_t k; /* chunk of the file */
		uint64_t offset;
		uint32_t csize, inner;
		const char *digest; /* chunkDigest or NULL */
	} want[] = {
		{ "a", 0, 0, 50, 0, D1 }, /* next distinct: e's 50 */
		{ "b", 0, 100, 200, 0, D1 }, /* shares its member with c */
		{ "c", 0, 100, 200, 512, NULL }, { "d", 0, 300, 50, 0, NULL },
		{ "d", 1, 350, 50, 0, D2 }, /* next in the array: e's 50 */
		{ "e", 0, 50, 50, 7, D2 }, /* the last, not to the end */
	};
	struct lp_digest d;
	struct lp_toc_chunk c;
	size_t i;

	(void)state;
	assert_int_equal(lp_toc_nr_chunks(toc), 6);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct lp_toc_entry *e = at(toc, want[i].path);
		const struct lp_digest *got;

		c = lp_toc_chunk(toc, e->first_chunk + want[i].k);
		assert_int_equal(c.entry,
				 lp_toc_lookup_path(toc, want[i].path));
		assert_int_equal(c.offset, want[i].offset);
		assert_int_equal(c.compressed_size, want[i].csize);
		assert_int_equal(c.inner_offset, want[i].inner);
		got = cdig(toc, &c);
		if (!want[i].digest) {
			assert_null(got);
			continue;
		}
		assert_int_equal(lp_digest_parse(want[i].digest, &d), 0);
		assert_non_null(got);
		assert_true(lp_digest_equal(got, &d));
	}
	/* c's file digest on the side, a's its chunk's */
	assert_int_equal(lp_digest_parse(D2, &d), 0);
	assert_true(lp_digest_equal(edig(toc, at(toc, "c")), &d));
	assert_null(edig(toc, at(toc, "a")));
	c = lp_toc_chunk(toc, 6);
	assert_int_equal(c.entry, LP_TOC_NO_INDEX);
	lp_toc_free(toc);

	/* offsets 4 GiB or more above their block's smallest, kept in full */
	toc = parse_ok(E("{\"name\":\"a\",\"type\":\"reg\",\"size\":1,"
			 "\"offset\":0},"
			 "{\"name\":\"b\",\"type\":\"reg\",\"size\":1,"
			 "\"offset\":3221225472},"
			 "{\"name\":\"c\",\"type\":\"reg\",\"size\":1,"
			 "\"offset\":6442450944},"
			 "{\"name\":\"d\",\"type\":\"reg\",\"size\":1,"
			 "\"offset\":1073741824},"
			 "{\"name\":\"e\",\"type\":\"reg\",\"size\":1,"
			 "\"offset\":7516192768}"),
		       (uint64_t)8 << 30);
	for (i = 0; i < 5; i++) {
		static const uint64_t off[] = { 0, 3, 6, 1, 7 },
				      cs[] = { 1, 3, 1, 2, 1 };

		c = lp_toc_chunk(toc, (uint32_t)i);
		assert_int_equal(c.offset, off[i] << 30);
		assert_int_equal(c.compressed_size, cs[i] << 30);
	}
	lp_toc_free(toc);
}

/*
 * Nesting as json-c counts it (json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING)
 * takes one level less): the top object and 14 arrays parse, 15 do not
 * (fuzz_toc found the scanner taking one level more than json-c).
 */
static void test_nesting(void **state)
{
	char json[256];
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	int n, levels, p;

	(void)state;
	for (levels = LP_TOC_MAX_JSON_NESTING - 2;
	     levels <= LP_TOC_MAX_JSON_NESTING + 1; levels++) {
		p = snprintf(json, sizeof(json), "{\"entries\":[],\"x\":");
		for (n = 1; n < levels; n++)
			json[p++] = '[';
		json[p++] = '1';
		for (n = 1; n < levels; n++)
			json[p++] = ']';
		json[p++] = '}';
		json[p] = '\0';
		memset(&err, 0, sizeof(err));
		if (levels < LP_TOC_MAX_JSON_NESTING) {
			toc = parse_ok(json, 100);
			lp_toc_free(toc);
			toc = NULL;
		} else {
			assert_int_equal(lp_toc_parse(json, strlen(json), 100,
						      &toc, &err),
					 -EINVAL);
			assert_non_null(strstr(err.msg, "nested"));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_escaped_keys),
		cmocka_unit_test(test_empty_and_carry),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_fed),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_compressed_span),
		cmocka_unit_test(test_side_tables),
		cmocka_unit_test(test_file_digests),
		cmocka_unit_test(test_spill_digests),
		cmocka_unit_test(test_chunk_columns),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
