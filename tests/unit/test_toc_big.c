// SPDX-License-Identifier: Apache-2.0
/*
 * A TOC of a million entries, made here: parsed, then every entry looked up
 * by path and checked against what was written (type, size, chunks, file
 * offsets, digests, hardlink inodes, symlink targets, names with JSON
 * escapes), every directory's children sorted and complete. A tenth of the
 * tree is written out of order (files before their directory, in
 * descending name order) and one top directory is only implied, so both
 * the converter's order and a hostile one go through the same checks.
 * Also the modification times kept beside the 36-byte entries, the empty
 * file digest, a long chain of hardlinks, and paths built to collide in
 * an unkeyed (or merely seeded) multiply-xor path hash.
 * Correctness only: the parse's speed is benchmarked
 * (tests/bench/toc-bench.sh), not timed here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "toc_test_digest.h"
#include "lp_digest.h"
#include "lp_toc.h"
#include "toc_int.h"

#define NR_TOP 100
#define NR_SUB 10
#define NR_FILES 999 /* per sub directory: 1 + 10 * 1000 entries per top */
#define CHUNK (4u << 20)
#define IMPLIED_TOP 99 /* never named: implied */

struct gen {
	char *p;
	size_t len, cap;
	uint64_t offset; /* next payload offset */
};

static void put(struct gen *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct gen *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (g->cap - g->len < 512) {
		g->cap = g->cap ? g->cap * 2 : 1 << 20;
		g->p = realloc(g->p, g->cap);
		assert_non_null(g->p);
	}
	va_start(ap, fmt);
	n = vsnprintf(g->p + g->len, g->cap - g->len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < g->cap - g->len);
	g->len += (size_t)n;
}

/* what file @f of directory (@t, @s) is */
enum kind { K_EMPTY, K_SYMLINK, K_HARDLINK, K_CHUNKED, K_REG };

static enum kind kind_of(unsigned int t, unsigned int s, unsigned int f)
{
	if (f % 10 == 0)
		return K_EMPTY;
	if (f % 10 == 1)
		return K_SYMLINK;
	if (f % 50 == 2)
		return K_HARDLINK; /* to f0003 of its directory */
	if (f == 5 && s == 0 && t % 7 == 0)
		return K_CHUNKED;
	return K_REG;
}

static uint64_t size_of(unsigned int t, unsigned int s, unsigned int f)
{
	switch (kind_of(t, s, f)) {
	case K_REG:
		return 1 + (t * 7919u + s * 104729u + f * 31u) % 5000;
	case K_CHUNKED:
		return 2 * (uint64_t)CHUNK + 1000;
	default:
		return 0;
	}
}

/* a file name; every 100th has an é written as a JSON escape */
static void file_name(char *buf, size_t size, unsigned int f, bool json)
{
	if (f % 100 == 7)
		snprintf(buf, size, "f%04u%s", f,
			 json ? "\\u00e9" : "\xc3\xa9");
	else
		snprintf(buf, size, "f%04u", f);
}

/* the digest of file (@t, @s, @f): its number in the last four bytes */
static uint32_t file_id(unsigned int t, unsigned int s, unsigned int f)
{
	return (t * NR_SUB + s) * 1000u + f;
}

static void put_file(struct gen *g, unsigned int t, unsigned int s,
		     unsigned int f)
{
	char name[32];
	uint64_t size = size_of(t, s, f);
	uint32_t id = file_id(t, s, f);

	file_name(name, sizeof(name), f, true);
	put(g, "{\"name\":\"t%03u/s%02u/%s\",", t, s, name);
	switch (kind_of(t, s, f)) {
	case K_EMPTY:
		put(g, "\"type\":\"reg\",\"mode\":420},");
		break;
	case K_SYMLINK:
		put(g, "\"type\":\"symlink\",\"linkName\":\"../x%u\"},", id);
		break;
	case K_HARDLINK:
		put(g,
		    "\"type\":\"hardlink\",\"linkName\":\"t%03u/s%02u/f0003\"},",
		    t, s);
		break;
	case K_CHUNKED:
		put(g,
		    "\"type\":\"reg\",\"size\":%llu,\"offset\":%llu,"
		    "\"chunkSize\":%u},",
		    (unsigned long long)size, (unsigned long long)g->offset,
		    CHUNK);
		g->offset += 1000;
		put(g,
		    "{\"name\":\"t%03u/s%02u/%s\",\"type\":\"chunk\","
		    "\"offset\":%llu,\"chunkOffset\":%u,\"chunkSize\":%u},",
		    t, s, name, (unsigned long long)g->offset, CHUNK, CHUNK);
		g->offset += 1000;
		put(g,
		    "{\"name\":\"t%03u/s%02u/%s\",\"type\":\"chunk\","
		    "\"offset\":%llu,\"chunkOffset\":%u},",
		    t, s, name, (unsigned long long)g->offset, 2 * CHUNK);
		g->offset += 1000;
		break;
	case K_REG:
		put(g, "\"type\":\"reg\",\"size\":%llu,\"offset\":%llu",
		    (unsigned long long)size, (unsigned long long)g->offset);
		g->offset += 100;
		if (f % 10 == 3) /* a digest on some: the TOC stays small */
			put(g,
			    ",\"digest\":\"sha256:%056x%08x\","
			    "\"chunkDigest\":\"sha256:%056x%08x\"",
			    0, id, 0, id);
		put(g, "},");
		break;
	}
}

static void put_sub(struct gen *g, unsigned int t, unsigned int s)
{
	unsigned int f;

	if (t % 10 != 9) { /* the converter's order */
		put(g, "{\"name\":\"t%03u/s%02u/\",\"type\":\"dir\"},", t, s);
		for (f = 0; f < NR_FILES; f++)
			put_file(g, t, s, f);
		return;
	}
	/* files first, in descending order, then their directory */
	for (f = NR_FILES; f-- > 0;)
		put_file(g, t, s, f);
	put(g, "{\"name\":\"./t%03u/s%02u\",\"type\":\"dir\",\"mode\":448},", t,
	    s);
}

static char *make_toc(size_t *ret_len, uint64_t *ret_payload_end)
{
	struct gen g = { 0 };
	unsigned int t, s;

	put(&g, "{\"version\":1,\"entries\":[");
	for (t = 0; t < NR_TOP; t++) {
		if (t != IMPLIED_TOP)
			put(&g, "{\"name\":\"t%03u/\",\"type\":\"dir\"},", t);
		for (s = 0; s < NR_SUB; s++)
			put_sub(&g, t, s);
	}
	g.len--; /* the last ',' */
	put(&g, "]}");
	*ret_len = g.len;
	*ret_payload_end = g.offset + 100;
	return g.p;
}

static void check_children_sorted(const struct lp_toc *toc, uint32_t dir,
				  uint32_t want)
{
	const struct lp_toc_entry *d = lp_toc_entry(toc, dir);
	uint32_t k;

	assert_int_equal(d->type, LP_TOC_DIR);
	assert_int_equal(d->nr_children, want);
	for (k = 0; k < d->nr_children; k++) {
		uint32_t c = lp_toc_child(toc, d->first_child + k);

		assert_int_equal(lp_toc_entry(toc, c)->parent, dir);
		if (k)
			assert_true(
				strcmp(lp_toc_entry_name(
					       toc,
					       lp_toc_entry(
						       toc,
						       lp_toc_child(
							       toc,
							       d->first_child +
								       k - 1))),
				       lp_toc_entry_name(
					       toc, lp_toc_entry(toc, c))) < 0);
	}
}

static void check_file(const struct lp_toc *toc, unsigned int t, unsigned int s,
		       unsigned int f, uint32_t dir)
{
	char name[32], path[64], target[64];
	uint32_t i, id = file_id(t, s, f), k;
	const struct lp_toc_entry *e;
	const struct lp_digest *d;

	file_name(name, sizeof(name), f, false);
	snprintf(path, sizeof(path), "t%03u/s%02u/%s", t, s, name);
	i = lp_toc_lookup(toc, dir, name, strlen(name));
	assert_int_not_equal(i, LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_lookup_path(toc, path), i);
	e = lp_toc_entry(toc, i);
	assert_string_equal(lp_toc_entry_name(toc, e), name);
	assert_int_equal(e->parent, dir);
	switch (kind_of(t, s, f)) {
	case K_EMPTY:
		assert_int_equal(e->type, LP_TOC_REG);
		assert_int_equal(e->size, 0);
		assert_int_equal(e->nr_chunks, 0);
		assert_int_equal(e->mode, 0644);
		break;
	case K_SYMLINK:
		assert_int_equal(e->type, LP_TOC_SYMLINK);
		snprintf(target, sizeof(target), "../x%u", id);
		assert_string_equal(lp_toc_entry_link_name(toc, e), target);
		break;
	case K_HARDLINK:
		assert_int_equal(e->type, LP_TOC_HARDLINK);
		assert_int_equal(lp_toc_entry_ino(toc, e),
				 lp_toc_lookup(toc, dir, "f0003", 5));
		/* f0003 and the hardlinks of its directory's 20 f..2 */
		assert_int_equal(lp_toc_entry_nlink(toc, e), 1 + 20);
		break;
	case K_CHUNKED:
		assert_int_equal(e->type, LP_TOC_REG);
		assert_int_equal(e->size, size_of(t, s, f));
		assert_int_equal(e->nr_chunks, 3);
		for (k = 0; k < 3; k++) {
			struct lp_toc_chunk c =
				lp_toc_chunk(toc, e->first_chunk + k);

			assert_int_equal(c.entry, i);
			assert_int_equal(c.chunk_offset, (uint64_t)k * CHUNK);
			assert_int_equal(c.chunk_size, k < 2 ? CHUNK : 1000);
			assert_int_equal(c.compressed_size, 1000);
			assert_int_equal(
				lp_toc_find_chunk(toc, i,
						  (uint64_t)k * CHUNK + 5),
				e->first_chunk + k);
		}
		break;
	case K_REG:
		assert_int_equal(e->type, LP_TOC_REG);
		assert_int_equal(e->size, size_of(t, s, f));
		assert_int_equal(e->nr_chunks, 1);
		if (f % 10 == 3) {
			d = edig(toc, e);
			assert_non_null(d);
			assert_int_equal(((uint32_t)d->b[28] << 24) |
						 ((uint32_t)d->b[29] << 16) |
						 ((uint32_t)d->b[30] << 8) |
						 d->b[31],
					 id);
		} else {
			assert_null(edig(toc, e));
		}
		break;
	}
}

static void test_million(void **state)
{
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	uint64_t payload_end;
	size_t len;
	char *json = make_toc(&len, &payload_end);
	unsigned int t, s, f;
	int r;

	(void)state;
	r = lp_toc_parse(json, len, payload_end, &toc, &err);
	free(json);
	if (r < 0)
		print_message("parse: %s\n", err.msg);
	assert_int_equal(r, 0);
	/* the root, 100 top directories, 1000 subdirectories, their files */
	assert_int_equal(lp_toc_nr_entries(toc),
			 1 + NR_TOP * (1 + NR_SUB * (1 + NR_FILES)));
	check_children_sorted(toc, 0, NR_TOP);
	for (t = 0; t < NR_TOP; t++) {
		char top[8];
		uint32_t ti, si;

		snprintf(top, sizeof(top), "t%03u", t);
		ti = lp_toc_lookup(toc, 0, top, strlen(top));
		assert_int_not_equal(ti, LP_TOC_NO_INDEX);
		assert_int_equal(lp_toc_entry(toc, ti)->flags & LP_TOC_IMPLIED,
				 t == IMPLIED_TOP ? LP_TOC_IMPLIED : 0);
		/* 2 + its subdirectories */
		assert_int_equal(lp_toc_entry_nlink(toc, lp_toc_entry(toc, ti)),
				 2 + NR_SUB);
		check_children_sorted(toc, ti, NR_SUB);
		for (s = 0; s < NR_SUB; s++) {
			char sub[8];

			snprintf(sub, sizeof(sub), "s%02u", s);
			si = lp_toc_lookup(toc, ti, sub, strlen(sub));
			assert_int_not_equal(si, LP_TOC_NO_INDEX);
			assert_int_equal(lp_toc_entry(toc, si)->mode,
					 t % 10 == 9 ? 0700 : 0);
			check_children_sorted(toc, si, NR_FILES);
			for (f = 0; f < NR_FILES; f++)
				check_file(toc, t, s, f, si);
		}
	}
	assert_int_equal(lp_toc_lookup_path(toc, "t000/s00/f9999"),
			 LP_TOC_NO_INDEX);
	lp_toc_free(toc);
}

/*
 * modification times the 32-bit field cannot hold (before 1970, after
 * 2106, with nanoseconds) come back from the side table, next to entries
 * whose time fits
 */
static void test_mtime_side(void **state)
{
	static const char json[] = "{\"entries\":["
				   "{\"name\":\"a\",\"type\":\"dir\","
				   "\"modtime\":\"1960-01-01T00:00:00Z\"},"
				   "{\"name\":\"b\",\"type\":\"dir\","
				   "\"modtime\":\"2021-03-04T05:06:07Z\"},"
				   "{\"name\":\"c\",\"type\":\"dir\","
				   "\"modtime\":\"2200-01-01T00:00:00Z\"},"
				   "{\"name\":\"d\",\"type\":\"dir\","
				   "\"modtime\":\"2021-03-04T05:06:07.25Z\"},"
				   "{\"name\":\"e\",\"type\":\"dir\","
				   "\"modtime\":\"2106-02-07T06:28:15Z\"},"
				   "{\"name\":\"f\",\"type\":\"dir\","
				   "\"modtime\":\"2106-02-07T06:28:16Z\"},"
				   "{\"name\":\"g\",\"type\":\"dir\"}"
				   "]}";
	static const struct {
		const char *name;
		int64_t sec;
		uint32_t nsec;
	} want[] = {
		{ "a", -315619200, 0 }, { "b", 1614834367, 0 },
		{ "c", 7258118400, 0 }, { "d", 1614834367, 250000000 },
		{ "e", 4294967295, 0 }, { "f", 4294967296, 0 },
		{ "g", 0, 0 },
	};
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	size_t k;

	(void)state;
	assert_int_equal(lp_toc_parse(json, strlen(json), 10, &toc, &err), 0);
	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		uint32_t i = lp_toc_lookup_path(toc, want[k].name), nsec;
		int64_t sec;

		assert_int_not_equal(i, LP_TOC_NO_INDEX);
		lp_toc_entry_mtime(toc, lp_toc_entry(toc, i), &sec, &nsec);
		assert_int_equal(sec, want[k].sec);
		assert_int_equal(nsec, want[k].nsec);
	}
	lp_toc_free(toc);
}

/*
 * What an entry keeps on the side: a directory's link count and a
 * symlink's target as one value (TOC_F_ONE), a hardlink, a symlink with
 * xattrs and a file of several chunks as a side record (TOC_F_RARE), a
 * plain file nothing; each reads back the same.
 */
static void test_side_values(void **state)
{
	static const char json[] =
		"{\"entries\":["
		"{\"name\":\"d\",\"type\":\"dir\"},"
		"{\"name\":\"d/e\",\"type\":\"dir\"},"
		"{\"name\":\"d/f\",\"type\":\"reg\",\"size\":1,\"offset\":0},"
		"{\"name\":\"d/s\",\"type\":\"symlink\",\"linkName\":\"f\"},"
		"{\"name\":\"d/x\",\"type\":\"symlink\",\"linkName\":\"../y\","
		"\"xattrs\":{\"user.a\":\"aGk=\"}},"
		"{\"name\":\"d/h\",\"type\":\"hardlink\",\"linkName\":\"d/f\"},"
		"{\"name\":\"d/m\",\"type\":\"reg\",\"size\":2,\"offset\":2,"
		"\"chunkSize\":1},"
		"{\"name\":\"d/m\",\"type\":\"chunk\",\"offset\":4,"
		"\"chunkOffset\":1},"
		"{\"name\":\"d/p\",\"type\":\"reg\",\"size\":1,\"offset\":6}"
		"]}";
	static const struct {
		const char *name;
		uint8_t side; /* TOC_F_ONE, TOC_F_RARE or 0 */
		uint32_t nlink;
		const char *link;
	} want[] = {
		{ "d", TOC_F_ONE, 3, "" },
		{ "d/e", TOC_F_ONE, 2, "" },
		{ "d/f", TOC_F_ONE, 2, "" }, /* a hardlink's target */
		{ "d/s", TOC_F_ONE, 1, "f" },
		{ "d/x", TOC_F_RARE, 1, "../y" },
		{ "d/h", TOC_F_RARE, 2, "d/f" },
		{ "d/m", TOC_F_RARE, 1, "" },
		{ "d/p", 0, 1, "" },
	};
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	size_t k;

	(void)state;
	assert_int_equal(lp_toc_parse(json, strlen(json), 10, &toc, &err), 0);
	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		uint32_t i = lp_toc_lookup_path(toc, want[k].name);
		const struct lp_toc_entry *e = lp_toc_entry(toc, i);

		assert_int_not_equal(i, LP_TOC_NO_INDEX);
		assert_int_equal(e->flags & (TOC_F_ONE | TOC_F_RARE),
				 want[k].side);
		assert_int_equal(lp_toc_entry_nlink(toc, e), want[k].nlink);
		assert_string_equal(lp_toc_entry_link_name(toc, e),
				    want[k].link);
	}
	lp_toc_free(toc);
}

/*
 * an empty file's digest (what converters write) is kept as a flag and
 * given back; any other digest on an empty file is kept as it is
 */
static void test_empty_file_digest(void **state)
{
	static const char json[] =
		"{\"entries\":["
		"{\"name\":\"e\",\"type\":\"reg\",\"digest\":\"sha256:"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"},"
		"{\"name\":\"l\",\"type\":\"reg\",\"digest\":\"sha256:"
		"00000000000000000000000000000000000000000000000000000000000000ff\"},"
		"{\"name\":\"n\",\"type\":\"reg\"}"
		"]}";
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	struct lp_digest empty, lie = { { 0 } };
	const struct lp_digest *d;

	(void)state;
	lp_sha256("", 0, &empty);
	lie.b[31] = 0xff;
	assert_int_equal(lp_toc_parse(json, strlen(json), 10, &toc, &err), 0);
	d = edig(toc, lp_toc_entry(toc, lp_toc_lookup_path(toc, "e")));
	assert_non_null(d);
	assert_memory_equal(d->b, empty.b, sizeof(empty.b));
	d = edig(toc, lp_toc_entry(toc, lp_toc_lookup_path(toc, "l")));
	assert_non_null(d);
	assert_memory_equal(d->b, lie.b, sizeof(lie.b));
	assert_null(edig(toc, lp_toc_entry(toc, lp_toc_lookup_path(toc, "n"))));
	lp_toc_free(toc);
}

/*
 * a chain of 100k hardlinks, each to the next one written after it (the
 * longest walk first): every link is the file's inode, nlink counts them
 * all, and the chain is resolved once, not once per link (which took
 * minutes: a hostile TOC's cost)
 */
#define CHAIN 100000

static void test_hardlink_chain(void **state)
{
	struct gen g = { 0 };
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	uint32_t f, k, i;
	char name[16];

	(void)state;
	put(&g, "{\"entries\":[");
	for (k = CHAIN; k-- > 1;)
		put(&g,
		    "{\"name\":\"h%u\",\"type\":\"hardlink\","
		    "\"linkName\":\"h%u\"},",
		    k, k - 1);
	put(&g, "{\"name\":\"h0\",\"type\":\"hardlink\","
		"\"linkName\":\"f\"},"
		"{\"name\":\"f\",\"type\":\"reg\"}]}");
	assert_int_equal(lp_toc_parse(g.p, g.len, 10, &toc, &err), 0);
	free(g.p);
	f = lp_toc_lookup_path(toc, "f");
	assert_int_not_equal(f, LP_TOC_NO_INDEX);
	assert_int_equal(lp_toc_entry_nlink(toc, lp_toc_entry(toc, f)),
			 CHAIN + 1);
	for (k = 0; k < CHAIN; k++) {
		snprintf(name, sizeof(name), "h%u", k);
		i = lp_toc_lookup_path(toc, name);
		assert_int_not_equal(i, LP_TOC_NO_INDEX);
		assert_int_equal(lp_toc_entry_ino(toc, lp_toc_entry(toc, i)),
				 f);
		assert_int_equal(lp_toc_entry_nlink(toc, lp_toc_entry(toc, i)),
				 CHAIN + 1);
	}
	lp_toc_free(toc);
}

/* SipHash-1-3, key 00..0f, message 00..len-1 (the reference vectors) */
static void test_siphash13_vectors(void **state)
{
	static const struct {
		size_t len;
		uint64_t h;
	} v[] = {
		{ 0, 0xabac0158050fc4dcull },  { 1, 0xc9f49bf37d57ca93ull },
		{ 7, 0xd3927d989bb11140ull },  { 8, 0x369095118d299a8eull },
		{ 15, 0xd320d86d2a519956ull }, { 16, 0xcc4fdd1a7d908b66ull },
		{ 63, 0x9d199062b7bbb3a8ull },
	};
	const uint64_t key[2] = { 0x0706050403020100ull,
				  0x0f0e0d0c0b0a0908ull };
	unsigned char msg[64];

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_true(toc_siphash13(key, msg, v[i].len) == v[i].h);
}

#define COLL_BITS 16 /* 2^16 paths */
#define COLL_LEN (16 * COLL_BITS)

/*
 * path @k of the colliding set: for each bit j of @k set, bytes 7 of
 * 8-byte block 2j and 3 and 7 of block 2j+1 flipped by 0x80, which gives
 * every path the same state in h = (h ^ w) * K; h ^= h >> 32 whatever the
 * start state; '/' every 16 bytes makes them nested directories
 */
static void coll_path(char *p, uint32_t k)
{
	memset(p, 'a', COLL_LEN);
	for (int j = 0; j < COLL_BITS; j++) {
		if (k >> j & 1) {
			p[16 * j + 7] ^= (char)0x80;
			p[16 * j + 8 + 3] ^= (char)0x80;
			p[16 * j + 8 + 7] ^= (char)0x80;
		}
		if (j)
			p[16 * j + 12] = '/';
	}
}

/*
 * Hostile paths: the set that collides in the old seeded hash for every
 * seed spreads under the keyed path hash, for several keys: linear probing
 * of all of them into a table at the parser's load (half full) never
 * walks TOC_PROBE_MAX slots (the old hash walked 2^16); then the TOC of
 * those paths parses (the old hash with the probe bound refuses it).
 */
static void test_hash_collisions(void **state)
{
	const uint64_t keys[][2] = {
		{ 0, 0 },
		{ 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull },
		{ 0x9e3779b97f4a7c15ull, 0xc4ceb9fe1a85ec53ull },
		{ ~0ull, 1 },
	};
	const size_t n = (size_t)1 << COLL_BITS, cap = 2 * n;
	struct builder *b = calloc(1, sizeof(*b));
	uint32_t *tab = calloc(cap, sizeof(*tab)); /* hash + 1; 0 = empty */
	char *paths = malloc(n * COLL_LEN);
	struct gen g = { 0 };
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	char path[COLL_LEN + 1];

	(void)state;
	assert_non_null(b);
	assert_non_null(tab);
	assert_non_null(paths);
	for (size_t k = 0; k < n; k++)
		coll_path(paths + k * COLL_LEN, (uint32_t)k);
	for (size_t t = 0; t < sizeof(keys) / sizeof(keys[0]); t++) {
		size_t max_probe = 0;

		memcpy(b->hash_key, keys[t], sizeof(b->hash_key));
		memset(tab, 0, cap * sizeof(*tab));
		for (size_t k = 0; k < n; k++) {
			uint32_t h = toc_path_hash(b, paths + k * COLL_LEN,
						   COLL_LEN);
			size_t i = h & (cap - 1), probe = 0;

			while (tab[i]) {
				i = (i + 1) & (cap - 1);
				probe++;
			}
			tab[i] = 1;
			if (probe > max_probe)
				max_probe = probe;
		}
		print_message("key %zu: longest probe %zu of 2^%d paths\n", t,
			      max_probe, COLL_BITS);
		assert_true(max_probe < TOC_PROBE_MAX);
	}

	put(&g, "{\"version\":1,\"entries\":[");
	for (size_t k = 0; k < n; k++) {
		memcpy(path, paths + k * COLL_LEN, COLL_LEN);
		path[COLL_LEN] = '\0';
		put(&g, "%s{\"name\":\"%s\",\"type\":\"dir\"}", k ? "," : "",
		    path);
	}
	put(&g, "]}");
	assert_int_equal(lp_toc_parse(g.p, g.len, 0, &toc, &err), 0);
	for (uint32_t k = 0; k < n; k += 4099) {
		memcpy(path, paths + (size_t)k * COLL_LEN, COLL_LEN);
		path[COLL_LEN] = '\0';
		assert_int_not_equal(lp_toc_lookup_path(toc, path),
				     LP_TOC_NO_INDEX);
	}
	lp_toc_free(toc);
	free(g.p);
	free(paths);
	free(tab);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_million),
		cmocka_unit_test(test_mtime_side),
		cmocka_unit_test(test_side_values),
		cmocka_unit_test(test_empty_file_digest),
		cmocka_unit_test(test_hardlink_chain),
		cmocka_unit_test(test_siphash13_vectors),
		cmocka_unit_test(test_hash_collisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
