// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC parse split over two threads (format/toc_split.c) against the
 * parse on one: TOCs made here, parsed with the split forced at every byte
 * (small ones) or at spread-out bytes and by default (big ones), must give
 * the same struct lp_toc, array by array, or the same error code and
 * message. The TOCs put the split's hard cases next to many possible
 * split points: a file's chunk entries after it, hardlinks to files far
 * before, owner names given once and carried forward, the same name given
 * again, xattrs, the prefetch landmark, files before their directory and
 * implied directories, and strings and nested arrays that hold what looks
 * like an entry boundary ("},{" inside a name, an unknown field holding
 * an array of objects). The probe counters show that parts were joined
 * and that the wrong guesses were dropped, so the join is tested, not
 * only the fallback. Fed by a thread that lends itself for the second
 * part (lp_toc_feed.lend, as format/layer.c's inflating thread does),
 * the same, and a parse that fails before the split withdraws the job.
 * The split parses also pack with the chunk steps on a second thread
 * (toc_finish(), forced for small TOCs), against the serial parse's one
 * thread; TOCs whose chunks are wrong give the same error so.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "lp_digest.h"
#include "lp_toc.h"
#include "toc_int.h"

struct gen {
	char *p;
	size_t len, cap;
	uint64_t off;
	bool indent; /* as json.MarshalIndent writes it: newlines, tabs */
};

static void put(struct gen *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct gen *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (g->cap - g->len < 1024) {
		g->cap = g->cap ? g->cap * 2 : 1 << 16;
		g->p = realloc(g->p, g->cap);
		assert_non_null(g->p);
	}
	va_start(ap, fmt);
	n = vsnprintf(g->p + g->len, g->cap - g->len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < g->cap - g->len);
	g->len += (size_t)n;
}

/* the separator between an entry's fields, and before/after an entry */
static const char *sep(const struct gen *g)
{
	return g->indent ? ",\n\t\t\t" : ",";
}

static void ent_open(struct gen *g, bool first)
{
	put(g, "%s%s{%s", first ? "" : ",", g->indent ? "\n\t\t" : "",
	    g->indent ? "\n\t\t\t" : "");
}

static void ent_close(struct gen *g)
{
	put(g, "%s}", g->indent ? "\n\t\t" : "");
}

/* entry @i of directory @d (of @nd); @bad: make entry @i the error kind */
static void put_entry(struct gen *g, unsigned int d, unsigned int i)
{
	unsigned int k = (d * 31 + i) % 17;
	const char *s = sep(g);

	/* a file before its directory (k 11, the next entry) */
	put(g, "\"name\":\"d%03u/e%04u", d, k == 10 ? i + 1 : i);
	switch (k) {
	case 0: /* a string holding "},{" and an escaped quote */
		put(g, "\\\"},{\\\"name\\\":\\\"x\"%s\"type\":\"reg\"", s);
		break;
	case 1: /* a file of three chunks */
		put(g,
		    "\"%s\"type\":\"reg\"%s\"size\":30%s\"offset\":%llu%s"
		    "\"chunkSize\":10",
		    s, s, s, (unsigned long long)g->off, s);
		g->off += 10;
		for (int c = 1; c < 3; c++) {
			ent_close(g);
			ent_open(g, false);
			put(g,
			    "\"name\":\"d%03u/e%04u\"%s\"type\":\"chunk\"%s"
			    "\"offset\":%llu%s\"chunkOffset\":%d%s"
			    "\"chunkSize\":10%s\"chunkDigest\":\"sha256:%056x"
			    "%08x\"",
			    d, i, s, s, (unsigned long long)g->off, s, c * 10,
			    s, s, c, d * 10000 + i);
			g->off += 10;
		}
		return;
	case 2: /* a hardlink to a file in the first directory */
		put(g, "\"%s\"type\":\"hardlink\"%s\"linkName\":\"d000/e0003\"",
		    s, s);
		break;
	case 3: /* a plain file with digests and its owner's name */
		put(g,
		    "\"%s\"type\":\"reg\"%s\"size\":5%s\"offset\":%llu%s"
		    "\"uid\":%u%s\"userName\":\"u%u\"%s\"gid\":7%s"
		    "\"groupName\":\"g7\"%s\"digest\":\"sha256:%056x%08x\"%s"
		    "\"chunkDigest\":\"sha256:%056x%08x\"%s"
		    "\"modtime\":\"2024-01-0%uT10:00:00Z\"",
		    s, s, s, (unsigned long long)g->off, s, d % 5, s, d % 5, s,
		    s, s, 1, d * 10000 + i, s, 1, d * 10000 + i, s, 1 + d % 9);
		g->off += 5;
		break;
	case 4: /* owners carried forward: uid only */
		put(g, "\"%s\"type\":\"reg\"%s\"uid\":%u%s\"gid\":7", s, s,
		    d % 5, s);
		break;
	case 5: /* an owner never named */
		put(g, "\"%s\"type\":\"fifo\"%s\"uid\":99", s, s);
		break;
	case 6: /* a new name for an id named before */
		put(g, "\"%s\"type\":\"reg\"%s\"uid\":%u%s\"userName\":\"v%u\"",
		    s, s, d % 5, s, i % 3);
		break;
	case 7:
		put(g, "\"%s\"type\":\"symlink\"%s\"linkName\":\"../t%u\"", s,
		    s, i);
		break;
	case 8: /* xattrs */
		put(g,
		    "\"%s\"type\":\"dir\"%s\"xattrs\":{\"user.a\":\"eA==\"%s"
		    "\"user.b\":\"\"}",
		    s, s, s);
		break;
	case 9: /* an unknown field holding an array of objects */
		put(g,
		    "\"%s\"type\":\"reg\"%s\"x-list\":[%s{\"a\":1}%s{\"b\":"
		    "[{}]}%s]",
		    s, s, g->indent ? "\n\t\t\t\t" : "", s,
		    g->indent ? "\n\t\t\t" : "");
		break;
	case 10: /* a file inside a directory named only next */
		put(g, "/f\"%s\"type\":\"reg\"", s);
		break;
	case 11: /* ... which is this one */
		put(g, "\"%s\"type\":\"dir\"%s\"mode\":448", s, s);
		break;
	case 12: /* a file in a directory never named (implied) */
		put(g, "/impl/f\"%s\"type\":\"reg\"", s);
		break;
	case 13: /* a hardlink to an entry of this directory before it */
		put(g,
		    "\"%s\"type\":\"hardlink\"%s\"linkName\":\"d%03u/e%04u\"",
		    s, s, i >= 10 ? d : 0, i >= 10 ? i - 10 : 3);
		break;
	default:
		put(g, "\"%s\"type\":\"reg\"%s\"mode\":%u", s, s, 0600 + k);
		break;
	}
}

/* error kinds written as the entry after @bad_at */
enum bad {
	BAD_NONE,
	BAD_TYPE, /* an unknown type */
	BAD_DUP, /* a path named in the first directory */
	BAD_CHUNK, /* a chunk after a directory */
	BAD_SYNTAX, /* a missing ':' */
	BAD_ROOT, /* a root that is not a directory */
	BAD_LINK, /* a hardlink to nothing */
	BAD_DIGEST, /* a digest that is not one */
	BAD_NR,
};

static void put_bad(struct gen *g, enum bad bad)
{
	const char *s = sep(g);

	switch (bad) {
	case BAD_TYPE:
		put(g, "\"name\":\"zz\"%s\"type\":\"socket\"", s);
		break;
	case BAD_DUP:
		put(g, "\"name\":\"./d000/e0004\"%s\"type\":\"reg\"", s);
		break;
	case BAD_CHUNK:
		put(g, "\"name\":\"d000\"%s\"type\":\"chunk\"%s\"offset\":1", s,
		    s);
		break;
	case BAD_SYNTAX:
		put(g, "\"name\" \"zz\"%s\"type\":\"reg\"", s);
		break;
	case BAD_ROOT:
		put(g, "\"name\":\"./\"%s\"type\":\"reg\"", s);
		break;
	case BAD_LINK:
		put(g,
		    "\"name\":\"zz\"%s\"type\":\"hardlink\"%s"
		    "\"linkName\":\"nowhere\"",
		    s, s);
		break;
	case BAD_DIGEST:
		put(g,
		    "\"name\":\"zz\"%s\"type\":\"reg\"%s\"digest\":\"md5:1\"",
		    s, s);
		break;
	default:
		break;
	}
}

/*
 * a TOC of @nd directories of @ne entries each, the first directory
 * named after the others' entries begin (so its children come before and
 * after any split); @bad written after directory @bad_at
 */
static char *make_toc(unsigned int nd, unsigned int ne, bool indent,
		      enum bad bad, unsigned int bad_at, size_t *ret_len,
		      uint64_t *ret_end)
{
	struct gen g = { .indent = indent };
	bool first = true;

	put(&g, "{%s\"version\": 1,%s\"entries\": [", indent ? "\n\t" : "",
	    indent ? "\n\t" : "");
	for (unsigned int d = 0; d < nd; d++) {
		ent_open(&g, first);
		first = false;
		put(&g,
		    "\"name\":\"d%03u/\"%s\"type\":\"dir\"%s\"uid\":%u%s"
		    "\"userName\":\"u%u\"",
		    d, sep(&g), sep(&g), d % 5, sep(&g), d % 5);
		ent_close(&g);
		if (d == 0) { /* the root, named (a part with it is dropped) */
			ent_open(&g, false);
			put(&g,
			    "\"name\":\"./\"%s\"type\":\"dir\"%s\"mode\":448",
			    sep(&g), sep(&g));
			ent_close(&g);
		}
		if (d == 1) { /* the landmark: its offset is prefetch_end */
			ent_open(&g, false);
			put(&g,
			    "\"name\":\".prefetch.landmark\"%s\"type\":\"reg\""
			    "%s\"size\":1%s\"offset\":%llu",
			    sep(&g), sep(&g), sep(&g),
			    (unsigned long long)g.off);
			g.off += 1;
			ent_close(&g);
		}
		for (unsigned int i = 0; i < ne; i++) {
			ent_open(&g, false);
			put_entry(&g, d, i);
			ent_close(&g);
		}
		if (bad != BAD_NONE && d == bad_at) {
			ent_open(&g, false);
			put_bad(&g, bad);
			ent_close(&g);
		}
	}
	put(&g, "%s]%s}", indent ? "\n\t" : "", indent ? "\n" : "");
	*ret_len = g.len;
	*ret_end = g.off + 100;
	return g.p;
}

/* the @n 32-bit words at @a and @b are the same (both NULL when n is 0) */
static void same_mem(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return;
	assert_non_null(a);
	assert_non_null(b);
	assert_memory_equal(a, b, n);
}

/* the offset of @p in @t's pool (NULL: -1) */
static intptr_t pool_rel(const struct lp_toc *t, const void *p)
{
	return p ? (const char *)p - t->pool : -1;
}

static void same_col(const struct toc_col *a, const struct toc_col *b,
		     uint32_t nr_chunks, bool vals)
{
	size_t words = (nr_chunks + 63) / 64;
	uint32_t set = 0;

	for (uint32_t i = 0; i < nr_chunks; i++) {
		assert_int_equal(toc_col_has(a, i), toc_col_has(b, i));
		if (toc_col_has(a, i)) {
			assert_int_equal(toc_col_rank(a, i),
					 toc_col_rank(b, i));
			set++;
		}
	}
	if (words) {
		same_mem(a->bits, b->bits, words * sizeof(*a->bits));
		same_mem(a->rank, b->rank, words * sizeof(*a->rank));
	}
	if (vals)
		same_mem(a->vals, b->vals, set * sizeof(*a->vals));
}

/* @a and @b hold the same TOC, array by array */
static void same_toc(const struct lp_toc *a, const struct lp_toc *b)
{
	uint32_t i, nrank = 0;
	char pa[LP_TOC_MAX_PATH + 1], pb[LP_TOC_MAX_PATH + 1];

	assert_int_equal(a->nr_entries, b->nr_entries);
	assert_int_equal(a->nr_chunks, b->nr_chunks);
	assert_int_equal(a->nr_xattrs, b->nr_xattrs);
	assert_int_equal(a->nr_children, b->nr_children);
	assert_int_equal(a->nr_digests, b->nr_digests);
	assert_int_equal(a->nr_rare, b->nr_rare);
	assert_int_equal(a->nr_owners, b->nr_owners);
	assert_int_equal(a->nr_chunk_offs, b->nr_chunk_offs);
	assert_int_equal(a->nr_mtimes, b->nr_mtimes);
	assert_int_equal(a->nr_one, b->nr_one);
	assert_int_equal(a->prefetch_end, b->prefetch_end);
	assert_int_equal(a->payload_end, b->payload_end);
	same_mem(a->entries, b->entries, a->nr_entries * sizeof(*a->entries));
	same_mem(a->chunks, b->chunks, a->nr_chunks * sizeof(*a->chunks));
	same_mem(a->chunk_offs, b->chunk_offs,
		 a->nr_chunk_offs * sizeof(*a->chunk_offs));
	same_mem(a->children, b->children,
		 a->nr_children * sizeof(*a->children));
	same_mem(a->rare_ent, b->rare_ent, a->nr_rare * sizeof(*a->rare_ent));
	same_mem(a->one_ent, b->one_ent, a->nr_one * sizeof(*a->one_ent));
	same_mem(a->one_val, b->one_val, a->nr_one * sizeof(*a->one_val));
	same_mem(a->mtimes, b->mtimes, a->nr_mtimes * sizeof(*a->mtimes));
	assert_true(a->dig_fd < 0 && b->dig_fd < 0);
	same_mem(a->digests, b->digests, a->nr_digests * sizeof(*a->digests));
	same_mem(a->chunk_base, b->chunk_base,
		 (a->nr_chunks + TOC_CHUNK_BLOCK - 1) / TOC_CHUNK_BLOCK *
			 sizeof(*a->chunk_base));
	same_col(&a->dig_col, &b->dig_col, a->nr_chunks, false);
	same_col(&a->csize_col, &b->csize_col, a->nr_chunks, true);
	same_col(&a->inner_col, &b->inner_col, a->nr_chunks, true);
	same_col(&a->off_col, &b->off_col, a->nr_chunks, false);
	for (i = 0; i < a->nr_chunks; i++)
		if (toc_col_has(&a->off_col, i))
			nrank++;
	same_mem(a->off_vals, b->off_vals, nrank * sizeof(*a->off_vals));
	for (i = 0; i < a->nr_rare; i++) {
		const struct toc_rare *x = &a->rare[i], *y = &b->rare[i];

		assert_int_equal(pool_rel(a, x->link_name),
				 pool_rel(b, y->link_name));
		assert_int_equal(x->dev_major, y->dev_major);
		assert_int_equal(x->dev_minor, y->dev_minor);
		assert_int_equal(x->first_xattr, y->first_xattr);
		assert_int_equal(x->nr_xattrs, y->nr_xattrs);
		assert_int_equal(x->digest_idx, y->digest_idx);
		assert_int_equal(x->first_off, y->first_off);
		assert_int_equal(x->ino, y->ino);
		assert_int_equal(x->nlink, y->nlink);
	}
	for (i = 0; i < a->nr_owners; i++) {
		assert_int_equal(pool_rel(a, a->owners[i].user),
				 pool_rel(b, b->owners[i].user));
		assert_int_equal(pool_rel(a, a->owners[i].group),
				 pool_rel(b, b->owners[i].group));
		assert_string_equal(a->owners[i].user, b->owners[i].user);
		assert_string_equal(a->owners[i].group, b->owners[i].group);
		assert_int_equal(a->owners[i].uid, b->owners[i].uid);
		assert_int_equal(a->owners[i].gid, b->owners[i].gid);
	}
	for (i = 0; i < a->nr_xattrs; i++) {
		assert_int_equal(pool_rel(a, a->xattrs[i].name),
				 pool_rel(b, b->xattrs[i].name));
		assert_int_equal(pool_rel(a, a->xattrs[i].value),
				 pool_rel(b, b->xattrs[i].value));
		assert_int_equal(a->xattrs[i].len, b->xattrs[i].len);
	}
	/* and through the API: paths, names, links, owners */
	for (i = 0; i < a->nr_entries; i++) {
		const struct lp_toc_entry *e = lp_toc_entry(a, i);

		assert_int_equal(lp_toc_entry_path(a, i, pa, sizeof(pa)),
				 lp_toc_entry_path(b, i, pb, sizeof(pb)));
		assert_string_equal(pa, pb);
		assert_string_equal(lp_toc_entry_name(a, e),
				    lp_toc_entry_name(b, lp_toc_entry(b, i)));
	}
}

static int parse(const char *json, size_t len, uint64_t end, size_t split,
		 struct lp_toc **ret, struct lp_err *err)
{
	memset(err, 0, sizeof(*err));
	*ret = NULL;
	return lp_toc_parse_split(json, len, NULL, split, end, ret, err);
}

/* the parse split at byte @split is the serial one (@r0, @e0, @t0) */
static void check_split(const char *json, size_t len, uint64_t end,
			size_t split, int r0, const struct lp_err *e0,
			const struct lp_toc *t0)
{
	struct lp_toc *t = NULL;
	struct lp_err e;
	int r;

	/* and the chunk steps of the packing beside the names */
	toc_finish_thread_min = 0;
	r = parse(json, len, end, split, &t, &e);
	toc_finish_thread_min = TOC_FINISH_THREAD_MIN;
	if (r != r0 || strcmp(e.msg, e0->msg) != 0)
		fail_msg("split at %zu: %d \"%s\", serially %d \"%s\"", split,
			 r, e.msg, r0, e0->msg);
	if (r == 0)
		same_toc(t0, t);
	lp_toc_free(t);
}

static unsigned int probe_joined(void)
{
	return atomic_load(&toc_split_probe.joined);
}

static unsigned int probe_dropped(void)
{
	return atomic_load(&toc_split_probe.dropped);
}

/* a small TOC split at every byte, compact and indented */
static void test_every_byte(void **state)
{
	(void)state;
	for (int indent = 0; indent < 2; indent++) {
		size_t len, split;
		uint64_t end;
		char *json = make_toc(4, 17, indent, BAD_NONE, 0, &len, &end);
		struct lp_toc *t0 = NULL;
		struct lp_err e0;
		unsigned int j0 = probe_joined(), d0 = probe_dropped();
		int r0 = parse(json, len, end, LP_TOC_SPLIT_NONE, &t0, &e0);

		assert_int_equal(r0, 0);
		/* the tree the TOC says (a sanity check of the generator) */
		assert_true(lp_toc_nr_entries(t0) > 4 * 17);
		assert_int_not_equal(t0->prefetch_end, 0);
		for (split = 1; split < len; split++)
			check_split(json, len, end, split, r0, &e0, t0);
		/* most splits land on an entry and are joined; those in a
		   string, a nested array or before a chunk are not */
		assert_true(probe_joined() - j0 > 60);
		assert_true(probe_dropped() - d0 > 0);
		lp_toc_free(t0);
		free(json);
	}
}

/* a TOC with an error in it, split at every byte: the same error */
static void test_errors(void **state)
{
	(void)state;
	for (int bad = BAD_NONE + 1; bad < BAD_NR; bad++) {
		size_t len, split;
		uint64_t end;
		char *json =
			make_toc(3, 17, bad % 2, (enum bad)bad, 1, &len, &end);
		struct lp_toc *t0 = NULL;
		struct lp_err e0;
		int r0 = parse(json, len, end, LP_TOC_SPLIT_NONE, &t0, &e0);

		assert_true(r0 < 0);
		assert_true(e0.msg[0] != '\0');
		for (split = 1; split < len; split++)
			check_split(json, len, end, split, r0, &e0, NULL);
		free(json);
	}
}

/* a TOC past LP_TOC_SPLIT_MIN: split by default, and at spread-out bytes */
static void test_big(void **state)
{
	size_t len;
	uint64_t end;
	char *json = make_toc(100, 500, true, BAD_NONE, 0, &len, &end);
	struct lp_toc *t0 = NULL;
	struct lp_err e0;
	unsigned int j0 = probe_joined(), d0 = probe_dropped();
	int r0;

	(void)state;
	assert_true(len >= LP_TOC_SPLIT_MIN);
	r0 = parse(json, len, end, LP_TOC_SPLIT_NONE, &t0, &e0);
	assert_int_equal(r0, 0);
	/* the default: the thread chooses where (and may find the serial
	   scan past it on a loaded machine: then it is dropped) */
	check_split(json, len, end, 0, r0, &e0, t0);
	assert_int_equal(probe_joined() - j0 + probe_dropped() - d0, 1);
	j0 = probe_joined();
	for (int k = 1; k < 10; k++)
		check_split(json, len, end,
			    len / 10 * (size_t)k + (size_t)k * 7, r0, &e0, t0);
	assert_true(probe_joined() - j0 >= 8);
	lp_toc_free(t0);
	free(json);
}

static unsigned int probe_beside(void)
{
	return atomic_load(&toc_split_probe.finished_beside);
}

/* a TOC of @ents ("{...},{...}") with a payload end of @end */
struct small_toc {
	const char *ents;
	uint64_t end;
	const char *why; /* part of the error, or NULL: parses */
};

#define REGC(name, size, csize)                                   \
	"{\"name\":\"" name "\",\"type\":\"reg\",\"size\":" #size \
	",\"offset\":0,\"chunkSize\":" #csize "}"

#define DIGEST1 \
	"sha256:0000000000000000000000000000000000000000000000000000000000000001"

static const struct small_toc small_tocs[] = {
	{ REGC("d/a", 10, 6) ",{\"name\":\"d/a\",\"type\":\"chunk\","
			     "\"offset\":10,\"chunkOffset\":6,"
			     "\"chunkDigest\":\"" DIGEST1 "\"},"
			     "{\"name\":\"d/l\",\"type\":\"hardlink\","
			     "\"linkName\":\"d/a\"},"
			     "{\"name\":\"s\",\"type\":\"symlink\","
			     "\"linkName\":\"d\"}",
	  1000, NULL },
	{ REGC("a", 10, 6) ",{\"name\":\"a\",\"type\":\"chunk\","
			   "\"offset\":10,\"chunkOffset\":4}",
	  1000, "overlaps the previous one" },
	{ REGC("a", 10, 4) ",{\"name\":\"a\",\"type\":\"chunk\","
			   "\"offset\":10,\"chunkOffset\":6}",
	  1000, "leaves a gap" },
	{ REGC("a", 10, 4), 1000, "chunks cover 4 of 10" },
	{ REGC("a", 10, 40), 1000, "runs past the file size" },
	{ REGC("a", 10, 4) ",{\"name\":\"a\",\"type\":\"chunk\","
			   "\"offset\":10,\"chunkOffset\":4,\"chunkSize\":6},"
			   "{\"name\":\"a\",\"type\":\"chunk\",\"offset\":20,"
			   "\"chunkOffset\":10}",
	  1000, "is past the file size" },
	{ REGC("a", 99999999, 0), 1000, "exceeds LP_CHUNK_MAX_SIZE" },
	{ REGC("b", 10, 0), (uint64_t)1 << 33, "(over 4 GiB)" },
	/* a hardlink's error (before the packing) and a chunk's */
	{ REGC("a", 10, 4) ",{\"name\":\"l\",\"type\":\"hardlink\","
			   "\"linkName\":\"nowhere\"}",
	  1000, "hardlink to a missing" },
};

/*
 * toc_finish() with the chunk steps on a second thread: the TOC, or the
 * error and its message, of the packing on one
 */
static void test_finish_beside(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(small_tocs) / sizeof(small_tocs[0]);
	     k++) {
		const struct small_toc *st = &small_tocs[k];
		char json[2048];
		struct lp_toc *t0 = NULL, *t = NULL;
		struct lp_err e0, e;
		unsigned int b0;
		int n, r0, r;

		n = snprintf(json, sizeof(json),
			     "{\"version\":1,\"entries\":[%s]}", st->ents);
		assert_true(n > 0 && (size_t)n < sizeof(json));
		toc_finish_thread_min = SIZE_MAX;
		r0 = parse(json, (size_t)n, st->end, LP_TOC_SPLIT_NONE, &t0,
			   &e0);
		toc_finish_thread_min = 0;
		b0 = probe_beside();
		r = parse(json, (size_t)n, st->end, LP_TOC_SPLIT_NONE, &t, &e);
		toc_finish_thread_min = TOC_FINISH_THREAD_MIN;
		if (st->why) {
			assert_true(r0 < 0);
			if (!strstr(e0.msg, st->why))
				fail_msg("toc %zu: \"%s\"", k, e0.msg);
		} else {
			assert_int_equal(r0, 0);
		}
		/* the resolve steps fail before the packing is reached */
		if (k + 1 < sizeof(small_tocs) / sizeof(small_tocs[0]))
			assert_int_equal(probe_beside() - b0, 1);
		assert_int_equal(r, r0);
		assert_string_equal(e.msg, e0.msg);
		if (r0 == 0)
			same_toc(t0, t);
		lp_toc_free(t0);
		lp_toc_free(t);
	}
}

/*
 * A feeding thread as format/layer.c's: copies the JSON in pieces, then
 * runs the job lent to it, if any.
 */
struct thread_feed {
	const char *src;
	char *dst;
	size_t len;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t avail; /* protected by lock */
	void (*job)(void *); /* protected by lock */
	void *job_arg; /* protected by lock */
	bool began, done; /* protected by lock */
	bool asked; /* protected by lock: the parser called wait() */
	unsigned int lent, withdrawn, ran; /* protected by lock */
};

static void *feed_main(void *arg)
{
	struct thread_feed *f = arg;
	void (*job)(void *);

	/* not done before the parser could lend the job (as a real
	   inflate of a big TOC never is) */
	pthread_mutex_lock(&f->lock);
	while (!f->lent && !f->asked)
		pthread_cond_wait(&f->cond, &f->lock);
	pthread_mutex_unlock(&f->lock);
	for (size_t pos = 0; pos < f->len;) {
		size_t n = f->len - pos < 4096 ? f->len - pos : 4096;

		memcpy(f->dst + pos, f->src + pos, n);
		pos += n;
		pthread_mutex_lock(&f->lock);
		f->avail = pos;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
	}
	pthread_mutex_lock(&f->lock);
	f->done = true;
	job = f->job;
	f->began = job != NULL;
	pthread_mutex_unlock(&f->lock);
	if (job) {
		job(f->job_arg);
		pthread_mutex_lock(&f->lock);
		f->ran++;
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

static ssize_t thread_wait(void *arg, size_t want)
{
	struct thread_feed *f = arg;
	size_t n;

	pthread_mutex_lock(&f->lock);
	f->asked = true;
	pthread_cond_broadcast(&f->cond);
	while (f->avail < want)
		pthread_cond_wait(&f->cond, &f->lock);
	n = f->avail;
	pthread_mutex_unlock(&f->lock);
	return (ssize_t)n;
}

static int thread_lend(void *arg, void (*job)(void *), void *job_arg)
{
	struct thread_feed *f = arg;
	int r = 0;

	pthread_mutex_lock(&f->lock);
	if (!job) {
		r = f->began;
		f->job = NULL;
		f->withdrawn++;
	} else if (f->done || f->job) {
		r = -EBUSY;
	} else {
		f->job = job;
		f->job_arg = job_arg;
		f->lent++;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* parse @json fed by a feeding thread that lends itself, split at @split */
static int parse_lent(const char *json, size_t len, uint64_t end, size_t split,
		      struct lp_toc **ret, struct lp_err *err,
		      struct thread_feed *f)
{
	struct lp_toc_feed feed = { thread_wait, f, 0, thread_lend };
	pthread_t th;
	int r;

	memset(f, 0, sizeof(*f));
	f->src = json;
	f->len = len;
	f->dst = malloc(len);
	assert_non_null(f->dst);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	memset(err, 0, sizeof(*err));
	*ret = NULL;
	assert_int_equal(pthread_create(&th, NULL, feed_main, f), 0);
	r = lp_toc_parse_split(f->dst, len, &feed, split, end, ret, err);
	pthread_join(th, NULL);
	free(f->dst);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	return r;
}

static void test_lent(void **state)
{
	size_t len;
	uint64_t end;
	char *json = make_toc(100, 500, true, BAD_NONE, 0, &len, &end);
	struct lp_toc *t0 = NULL, *t = NULL;
	struct lp_err e0, e;
	struct thread_feed f;
	unsigned int j0;
	int r0, r;

	(void)state;
	r0 = parse(json, len, end, LP_TOC_SPLIT_NONE, &t0, &e0);
	assert_int_equal(r0, 0);
	for (int k = 0; k < 4; k++) {
		/* 0: the default; else forced */
		size_t split = k ? len / 4 * (size_t)k : 0;

		j0 = probe_joined();
		r = parse_lent(json, len, end, split, &t, &e, &f);
		assert_int_equal(r, 0);
		assert_int_equal(f.lent, 1);
		/* it ran, or was withdrawn before it began (the scan got to
		   the split before the feeder had fed it all and lent
		   itself: on a loaded machine, under ASan) */
		assert_int_equal(f.ran + (f.withdrawn && !f.ran), 1);
		/* a forced part that ran and was not withdrawn (its point
		   not an entry's start: dropped) was waited for and joined;
		   the default's join depends on the load (part_behind()) */
		if (k && f.ran && !f.withdrawn)
			assert_int_equal(probe_joined() - j0, 1);
		same_toc(t0, t);
		lp_toc_free(t);
	}
	lp_toc_free(t0);
	free(json);

	/* an error before the split: the job is withdrawn or waited for */
	json = make_toc(100, 500, true, BAD_TYPE, 0, &len, &end);
	r0 = parse(json, len, end, LP_TOC_SPLIT_NONE, &t0, &e0);
	assert_true(r0 < 0);
	r = parse_lent(json, len, end, len / 2, &t, &e, &f);
	assert_int_equal(r, r0);
	assert_string_equal(e.msg, e0.msg);
	assert_int_equal(f.withdrawn, 1);
	assert_null(t);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_big),
		cmocka_unit_test(test_lent),
		cmocka_unit_test(test_finish_beside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
