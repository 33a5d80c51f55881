// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for the fetch planner (fs/plan.c): every policy rule of the
 * read path as a pure function over a TOC built here, with known member
 * offsets: coalescing (order, gap, size bound, run length), how far a read
 * fetches along (read-ahead on sequential reads, the following files at a
 * file's end), the prefetch range, a prefetch profile's runs (the
 * workload's order, each chunk once), the background's order (on from the
 * cursor, then what was jumped over, each chunk once) and how many
 * background reads may be in flight (optimised layers defer, on-demand
 * reads leave one stream, else full width).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs_int.h"

#define K 1024u
#define MS 1000000ull

/*
 * The test layer: files a0..a9 of 1000 bytes, one member each, every
 * member 100 KiB compressed (offsets 0, 100K, ...); then "big", 4 chunks
 * of 1 MiB whose members are 300 KiB each; then z0..z2 of 1000 bytes,
 * 50 KiB members. Chunk indexes: a0..a9 = 0..9, big = 10..13, z = 14..16.
 */
static struct lp_toc *make_toc(void)
{
	char *json = malloc(64 * K), *p = json;
	struct lp_toc *toc = NULL;
	struct lp_err err = { 0 };
	uint64_t off = 0;
	int i;

	assert_non_null(json);
	p += sprintf(p, "{\"version\":1,\"entries\":[");
	for (i = 0; i < 10; i++, off += 100 * K)
		p += sprintf(p,
			     "{\"name\":\"a%d\",\"type\":\"reg\",\"size\":1000,"
			     "\"offset\":%llu},",
			     i, (unsigned long long)off);
	for (i = 0; i < 4; i++, off += 300 * K)
		p += sprintf(p,
			     "{\"name\":\"big\",\"type\":\"%s\",%s"
			     "\"offset\":%llu,\"chunkOffset\":%d,"
			     "\"chunkSize\":1048576},",
			     i ? "chunk" : "reg", i ? "" : "\"size\":4194304,",
			     (unsigned long long)off, i * 1048576);
	for (i = 0; i < 3; i++, off += 50 * K)
		p += sprintf(p,
			     "{\"name\":\"z%d\",\"type\":\"reg\",\"size\":1000,"
			     "\"offset\":%llu}%s",
			     i, (unsigned long long)off, i < 2 ? "," : "");
	p += sprintf(p, "]}");
	assert_int_equal(
		lp_toc_parse(json, (size_t)(p - json), off, &toc, &err), 0);
	free(json);
	assert_int_equal(lp_toc_nr_chunks(toc), 17);
	return toc;
}

static uint32_t entry_of(const struct lp_toc *toc, const char *name)
{
	uint32_t i;
	char path[64];

	for (i = 0; i < lp_toc_nr_entries(toc); i++) {
		lp_toc_entry_path(toc, i, path, sizeof(path));
		if (!strcmp(path, name) ||
		    (path[0] == '/' && !strcmp(path + 1, name)))
			return i;
	}
	fail_msg("no entry %s", name);
	return 0;
}

static void test_coalesce(void **state)
{
	struct lp_toc_chunk c = { .offset = 1000, .compressed_size = 100 };

	(void)state;
	/* contiguous, inside the bound */
	assert_true(fs_plan_coalesce(&c, 0, 1000, 2000));
	/* past the bound */
	assert_false(fs_plan_coalesce(&c, 0, 1000, 1099));
	/* not in blob order */
	assert_false(fs_plan_coalesce(&c, 1001, 1200, 1 << 20));
	/* a gap read over, up to FS_PLAN_MAX_GAP, not beyond */
	c.offset = 1000 + FS_PLAN_MAX_GAP;
	assert_true(fs_plan_coalesce(&c, 0, 1000, 1 << 20));
	c.offset++;
	assert_false(fs_plan_coalesce(&c, 0, 1000, 1 << 20));
}

static void test_run_end(void **state)
{
	struct lp_toc *toc = make_toc();

	(void)state;
	/* 100 KiB members: three fit in 350 KiB, not four */
	assert_int_equal(fs_plan_run_end(toc, 0, 17, 350 * K), 3);
	/* the chunk itself always belongs, even over the bound */
	assert_int_equal(fs_plan_run_end(toc, 0, 17, 1), 1);
	/* the limit holds */
	assert_int_equal(fs_plan_run_end(toc, 2, 4, 16 * LP_MIB), 4);
	/* the whole layer is 2.35 MiB: one stream run covers it */
	assert_int_equal(
		fs_plan_run_end(toc, 0, 100,
				fs_plan_run_bytes(FS_FETCH_BACKGROUND)),
		17);
	/* past the end: nothing */
	assert_int_equal(fs_plan_run_end(toc, 17, 100, 16 * LP_MIB), 17);
	/* on demand a reader waits for the run: the big bound; the
	 * scheduler's streams are smaller pieces */
	assert_int_equal(fs_plan_run_bytes(FS_FETCH_ONDEMAND),
			 FS_PLAN_MAX_COALESCE);
	assert_int_equal(fs_plan_run_bytes(FS_FETCH_PREFETCH),
			 FS_PLAN_STREAM_RUN);
	assert_int_equal(fs_plan_run_bytes(FS_FETCH_BACKGROUND),
			 FS_PLAN_STREAM_RUN);
	assert_true(FS_PLAN_STREAM_RUN <= FS_PLAN_MAX_COALESCE);
	/* after a miss moved the cursor: small, then doubling to the full
	 * stream run, never over it */
	assert_int_equal(fs_plan_stream_bytes(0), FS_PLAN_STREAM_FIRST);
	assert_int_equal(fs_plan_stream_bytes(1), 2 * FS_PLAN_STREAM_FIRST);
	assert_true(fs_plan_stream_bytes(2) <= FS_PLAN_STREAM_RUN);
	assert_int_equal(fs_plan_stream_bytes(30), FS_PLAN_STREAM_RUN);
	assert_int_equal(fs_plan_stream_bytes(UINT32_MAX), FS_PLAN_STREAM_RUN);
	/* narrowed for on-demand reads: small whatever the streak */
	assert_int_equal(fs_plan_background_bytes(30, true), FS_PLAN_BUSY_RUN);
	assert_int_equal(fs_plan_background_bytes(0, true),
			 lp_min_u64(FS_PLAN_STREAM_FIRST, FS_PLAN_BUSY_RUN));
	assert_int_equal(fs_plan_background_bytes(30, false),
			 FS_PLAN_STREAM_RUN);
	lp_toc_free(toc);
}

static void test_uncontended(void **state)
{
	const uint64_t t = 1000000 * MS; /* "now" */
	struct fs_plan_clock idle = { .now_ns = t,
				      .last_ns = t - 60000 * MS,
				      .last_ondemand_ns = t - 60000 * MS };
	struct fs_plan_clock never = { .now_ns = t };
	struct fs_plan_clock c;
	struct fs_plan_layer l = { .quiet_ns = 1000 * MS };
	struct fs_plan_layer missed = l;

	(void)state;
	missed.missed = true;
	/* no miss in the layer and nothing on demand going on: the link is
	 * the background's, also before any on-demand read ever ended */
	assert_true(fs_plan_uncontended(&idle, &l));
	assert_true(fs_plan_uncontended(&never, &l));
	/* the workload has missed in this layer: the usual rules */
	assert_false(fs_plan_uncontended(&idle, &missed));
	/* an on-demand read (of any layer of the activity) in flight, or
	 * ended less than FS_PLAN_SHORT_QUIET_MS ago */
	c = idle;
	c.ondemand = 1;
	assert_false(fs_plan_uncontended(&c, &l));
	c = idle;
	c.last_ondemand_ns = t - (FS_PLAN_SHORT_QUIET_MS - 1) * MS;
	assert_false(fs_plan_uncontended(&c, &l));
	c.last_ondemand_ns = t - FS_PLAN_SHORT_QUIET_MS * MS;
	assert_true(fs_plan_uncontended(&c, &l));
	/* its reads grow past the first size, up to the bound, never past */
	assert_true(FS_PLAN_UNCONTENDED_RUN > FS_PLAN_STREAM_FIRST);
	assert_true(FS_PLAN_UNCONTENDED_RUN < FS_PLAN_STREAM_RUN);
	assert_int_equal(fs_plan_uncontended_bytes(fs_plan_stream_bytes(0)),
			 FS_PLAN_STREAM_FIRST);
	assert_int_equal(fs_plan_uncontended_bytes(fs_plan_stream_bytes(1)),
			 2 * FS_PLAN_STREAM_FIRST);
	assert_int_equal(fs_plan_uncontended_bytes(fs_plan_stream_bytes(30)),
			 FS_PLAN_UNCONTENDED_RUN);
}

static void test_miss_ahead(void **state)
{
	struct lp_toc *toc = make_toc();

	(void)state;
	/* at the stream's next chunk, or a little after it: ahead */
	assert_true(fs_plan_miss_ahead(toc, 3, 3));
	assert_true(fs_plan_miss_ahead(toc, 3, 16));
	/* behind the stream: a jump */
	assert_false(fs_plan_miss_ahead(toc, 3, 2));
	/* past the end, or a finished stream: a jump */
	assert_false(fs_plan_miss_ahead(toc, 3, 17));
	assert_false(fs_plan_miss_ahead(toc, 17, 16));
	lp_toc_free(toc);
}

static void test_in_order(void **state)
{
	(void)state;
	assert_true(fs_plan_in_order(5, 5));
	assert_true(fs_plan_in_order(5, 6));
	assert_true(fs_plan_in_order(5, 5 + FS_PLAN_IN_ORDER_SLACK));
	assert_false(fs_plan_in_order(5, 6 + FS_PLAN_IN_ORDER_SLACK));
	assert_false(fs_plan_in_order(5, 4));
	assert_false(fs_plan_in_order(UINT32_MAX, 0));
}

static void test_read_limit(void **state)
{
	struct lp_toc *toc = make_toc();
	uint32_t big = entry_of(toc, "big"), a0 = entry_of(toc, "a0");

	(void)state;
	/* a read in the middle of a file, not sequential: its own chunks */
	assert_int_equal(fs_plan_read_limit(toc, big, 10, false), 11);
	/* sequential: FS_PLAN_READAHEAD (4 MiB) of the file's next chunks:
	 * the rest of big, and then its end brings the neighbours */
	assert_true(FS_PLAN_READAHEAD >= 3 * LP_MIB);
	/* the end of a file: following members up to 128 KiB compressed;
	 * a1 (100 KiB) fits, a1 + a2 do not */
	assert_int_equal(fs_plan_read_limit(toc, a0, 0, false), 2);
	assert_int_equal(fs_plan_read_limit(toc, a0, 0, true), 2);
	/* big's end: z0 + z1 (100 KiB) fit, z2 would make 150 KiB */
	assert_int_equal(fs_plan_read_limit(toc, big, 13, false), 16);
	/* the last file: nothing follows */
	assert_int_equal(fs_plan_read_limit(toc, entry_of(toc, "z2"), 16, true),
			 17);
	lp_toc_free(toc);
}

static void test_prefetch_chunks(void **state)
{
	struct lp_toc *toc = make_toc();

	(void)state;
	assert_int_equal(fs_plan_prefetch_chunks(toc, 0), 0);
	assert_int_equal(fs_plan_prefetch_chunks(toc, 1), 1);
	assert_int_equal(fs_plan_prefetch_chunks(toc, 100 * K), 1);
	assert_int_equal(fs_plan_prefetch_chunks(toc, 100 * K + 1), 2);
	assert_int_equal(fs_plan_prefetch_chunks(toc, UINT64_MAX), 17);
	lp_toc_free(toc);
}

/* a profile's order: the workload's, duplicates and non-files dropped,
 * adjacent chunks of consecutive files one run, a bounded output */
static void test_profile_runs(void **state)
{
	struct lp_toc *toc = make_toc();
	uint32_t files[7];
	struct fs_plan_run runs[16];
	uint8_t listed[17 / 8 + 1];
	uint32_t n, ci;

	(void)state;
	files[0] = entry_of(toc, "z1");
	files[1] = entry_of(toc, "a3");
	files[2] = entry_of(toc, "a4");
	files[3] = entry_of(toc, "big");
	files[4] = entry_of(toc, "a3"); /* again: fetched once */
	files[5] = 0; /* the root directory: no data */
	files[6] = entry_of(toc, "z2");
	assert_int_equal(fs_plan_profile_chunks(toc, files, 7), 9);
	memset(listed, 0, sizeof(listed));
	n = fs_plan_profile_runs(toc, files, 7, listed, runs, 16, UINT64_MAX);
	assert_int_equal(n, 4);
	/* z1 first, though last in the blob: the workload opened it first */
	assert_int_equal(runs[0].ci, 15);
	assert_int_equal(runs[0].end, 16);
	/* a3 and a4 are neighbours: one run */
	assert_int_equal(runs[1].ci, 3);
	assert_int_equal(runs[1].end, 5);
	assert_int_equal(runs[2].ci, 10);
	assert_int_equal(runs[2].end, 14);
	/* z2 follows z1 in the blob but not in the profile: its own run */
	assert_int_equal(runs[3].ci, 16);
	assert_int_equal(runs[3].end, 17);
	for (ci = 0; ci < 17; ci++)
		assert_int_equal(fs_plan_listed(listed, ci),
				 ci == 3 || ci == 4 || (ci >= 10 && ci < 14) ||
					 ci == 15 || ci == 16);
	assert_false(fs_plan_listed(NULL, 3));

	/* a full output stops; what did not fit is not marked listed */
	memset(listed, 0, sizeof(listed));
	n = fs_plan_profile_runs(toc, files, 7, listed, runs, 2, UINT64_MAX);
	assert_int_equal(n, 2);
	assert_true(fs_plan_listed(listed, 15) && fs_plan_listed(listed, 4));
	assert_false(fs_plan_listed(listed, 10));
	assert_false(fs_plan_listed(listed, 16));

	/* chunks listed before (the same file twice over two calls) */
	n = fs_plan_profile_runs(toc, files + 1, 1, listed, runs, 16,
				 UINT64_MAX);
	assert_int_equal(n, 0);
	assert_int_equal(fs_plan_profile_runs(toc, files, 0, listed, runs, 16,
					      UINT64_MAX),
			 0);

	/* a byte bound: z1's chunk and a3's fit, a4's does not (nor what
	 * follows); what did not fit is not marked listed */
	memset(listed, 0, sizeof(listed));
	n = fs_plan_profile_runs(toc, files, 7, listed, runs, 16,
				 lp_toc_chunk(toc, 15).compressed_size +
					 lp_toc_chunk(toc, 3).compressed_size);
	assert_int_equal(n, 2);
	assert_int_equal(runs[0].ci, 15);
	assert_int_equal(runs[1].ci, 3);
	assert_int_equal(runs[1].end, 4);
	assert_false(fs_plan_listed(listed, 4));
	assert_false(fs_plan_listed(listed, 10));
	/* the bound: half the layer, within [8 MiB, 256 MiB] */
	assert_int_equal(fs_plan_profile_byte_cap(0),
			 FS_PLAN_PROFILE_MIN_BYTES);
	assert_int_equal(fs_plan_profile_byte_cap(100ull << 20), 50ull << 20);
	assert_int_equal(fs_plan_profile_byte_cap(10ull << 30),
			 FS_PLAN_PROFILE_MAX_BYTES);
	lp_toc_free(toc);
}

static bool skip_set(void *arg, uint32_t ci)
{
	return ((const bool *)arg)[ci];
}

static void test_next(void **state)
{
	bool skip[8] = { false };

	(void)state;
	/* from the cursor on */
	assert_int_equal(fs_plan_next(8, 3, skip_set, skip), 3);
	skip[3] = skip[4] = true;
	assert_int_equal(fs_plan_next(8, 3, skip_set, skip), 5);
	/* then what the cursor jumped over */
	skip[5] = skip[6] = skip[7] = true;
	assert_int_equal(fs_plan_next(8, 3, skip_set, skip), 0);
	skip[0] = skip[1] = true;
	assert_int_equal(fs_plan_next(8, 3, skip_set, skip), 2);
	/* a cursor at (or past) the end starts over */
	assert_int_equal(fs_plan_next(8, 8, skip_set, skip), 2);
	assert_int_equal(fs_plan_next(8, 99, skip_set, skip), 2);
	/* nothing left */
	skip[2] = true;
	assert_int_equal(fs_plan_next(8, 3, skip_set, skip), LP_TOC_NO_INDEX);
	assert_int_equal(fs_plan_next(0, 0, skip_set, skip), LP_TOC_NO_INDEX);
}

static void test_background_width(void **state)
{
	const uint64_t t = 1000000 * MS; /* "now" */
	struct fs_plan_clock idle = { .now_ns = t,
				      .last_ns = t - 60000 * MS,
				      .last_ondemand_ns = t - 60000 * MS };
	struct fs_plan_clock c;
	struct fs_plan_layer plain = { .quiet_ns = 1000 * MS };
	struct fs_plan_layer opt = { .optimised = true, .quiet_ns = 1000 * MS };
	struct fs_plan_layer l;

	(void)state;
	/* nothing else going on: full width */
	assert_int_equal(fs_plan_background_width(&idle, &plain),
			 FS_PLAN_STREAMS);
	assert_int_equal(fs_plan_background_width(&idle, &opt),
			 FS_PLAN_STREAMS);
	/* an on-demand read in flight: the background keeps one stream,
	 * it never pauses a layer without a landmark */
	c = idle;
	c.ondemand = 1;
	assert_int_equal(fs_plan_background_width(&c, &plain),
			 FS_PLAN_STREAMS_BUSY);
	assert_true(FS_PLAN_STREAMS_BUSY > 0 &&
		    FS_PLAN_STREAMS_BUSY < FS_PLAN_STREAMS);
	/* and shortly after one */
	c = idle;
	c.last_ondemand_ns = t - (FS_PLAN_SHORT_QUIET_MS - 1) * MS;
	assert_int_equal(fs_plan_background_width(&c, &plain),
			 FS_PLAN_STREAMS_BUSY);
	c.last_ondemand_ns = t - (FS_PLAN_SHORT_QUIET_MS + 1) * MS;
	assert_int_equal(fs_plan_background_width(&c, &plain), FS_PLAN_STREAMS);
	/* an optimised layer defers to prefetch and on-demand reads and
	 * waits the quiet time after them */
	c = idle;
	c.prefetch = 1;
	assert_int_equal(fs_plan_background_width(&c, &opt), 0);
	assert_int_equal(fs_plan_background_width(&c, &plain), FS_PLAN_STREAMS);
	c = idle;
	c.ondemand = 1;
	assert_int_equal(fs_plan_background_width(&c, &opt), 0);
	c = idle;
	c.last_ns = t - 999 * MS;
	assert_int_equal(fs_plan_background_width(&c, &opt), 0);
	c.last_ns = t - 1001 * MS;
	assert_int_equal(fs_plan_background_width(&c, &opt), FS_PLAN_STREAMS);
	/* ... at most FS_PLAN_MAX_DEFER quiet times in all */
	l = opt;
	l.deferred_ns = opt.quiet_ns * FS_PLAN_MAX_DEFER - 1;
	assert_true(fs_plan_defers(&l));
	l.deferred_ns++;
	assert_false(fs_plan_defers(&l));
	c = idle;
	c.ondemand = 1;
	assert_int_equal(fs_plan_background_width(&c, &l),
			 FS_PLAN_STREAMS_BUSY);
	/* ... and not once the workload misses the prefetch range often:
	 * it reads more than its prefetch list */
	l = opt;
	l.misses = FS_PLAN_RELEASE_MISSES - 1;
	assert_true(fs_plan_defers(&l));
	l.misses++;
	assert_false(fs_plan_defers(&l));
	assert_int_equal(fs_plan_background_width(&c, &l),
			 FS_PLAN_STREAMS_BUSY);
	/* ... sooner when it misses while reading past the prefetch range
	 * in blob order (a workload that reads everything): the stream is
	 * what it waits for, at full width */
	assert_true(FS_PLAN_RELEASE_MISSES_IN_ORDER < FS_PLAN_RELEASE_MISSES);
	l = opt;
	l.misses = FS_PLAN_RELEASE_MISSES_IN_ORDER;
	l.in_order = FS_PLAN_IN_ORDER_RUN - 1;
	assert_true(fs_plan_defers(&l));
	assert_int_equal(fs_plan_background_width(&c, &l), 0);
	l.in_order++;
	assert_false(fs_plan_defers(&l));
	assert_int_equal(fs_plan_background_width(&c, &l), FS_PLAN_STREAMS);
	l.misses--;
	assert_true(fs_plan_defers(&l));
	/* a workload reading the layer in blob order follows the stream:
	 * full width even while its reads miss */
	c = idle;
	c.ondemand = 1;
	l = plain;
	l.in_order = FS_PLAN_IN_ORDER_RUN - 1;
	assert_int_equal(fs_plan_background_width(&c, &l),
			 FS_PLAN_STREAMS_BUSY);
	l.in_order++;
	assert_int_equal(fs_plan_background_width(&c, &l), FS_PLAN_STREAMS);
	/* but an optimised layer's deferral stands */
	l = opt;
	l.in_order = FS_PLAN_IN_ORDER_RUN;
	assert_int_equal(fs_plan_background_width(&c, &l), 0);
	/* a quiet time of 0: no deferring at all */
	l = opt;
	l.quiet_ns = 0;
	assert_false(fs_plan_defers(&l));
	assert_false(fs_plan_defers(&plain));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coalesce),
		cmocka_unit_test(test_run_end),
		cmocka_unit_test(test_uncontended),
		cmocka_unit_test(test_miss_ahead),
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_read_limit),
		cmocka_unit_test(test_prefetch_chunks),
		cmocka_unit_test(test_profile_runs),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_background_width),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
