// SPDX-License-Identifier: Apache-2.0
/*
 * toc_driver: the TOC benchmark's driver (tests/bench/toc-bench.sh). Reads a
 * TOC JSON file into memory, then measures lp_toc_parse() on it (the whole
 * of what a mount builds from a TOC: the fs core adds one pass over the
 * chunks, fs.c measure()), and what the parsed TOC keeps: heap bytes
 * (mallinfo2, arena + mmapped) and resident bytes (RSS, the JSON freed and
 * malloc_trim()med) per entry, and the peak RSS above the JSON while
 * parsing. As a mount does (lp_mount_layer()), the parsed TOC's digests go
 * to a file when it is big (lp_toc_spill_digests(), in TOC_BENCH_SPILL_DIR
 * or the default), before the resident bytes are measured; reading every
 * chunk's digest is timed before and after (ns per digest). Then it checks
 * the TOC: every entry's path, looked up from the root, finds that entry (a
 * wrong tree fails the run, exit 1). A benchmark helper, not an installed
 * tool.
 *
 * usage: toc_driver TOC.json PAYLOAD_END [RUNS]
 * Prints one line of key=value pairs (the best of RUNS parses).
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp_err.h"
#include "lp_toc.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* a field of /proc/self/status in kB ("VmRSS:", "VmHWM:") */
static long status_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key))) {
			v = strtol(line + strlen(key), NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* ns per chunk digest read (every chunk's, in order); -1 on an error */
static double digest_read_ns(const struct lp_toc *toc)
{
	uint32_t i, n = lp_toc_nr_chunks(toc);
	struct lp_digest d;
	double t = now();

	for (i = 0; i < n; i++) {
		struct lp_toc_chunk c = lp_toc_chunk(toc, i);

		if (lp_toc_chunk_digest(toc, &c, &d) < 0)
			return -1;
	}
	return n ? (now() - t) * 1e9 / n : 0;
}

static void reset_hwm(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (f) {
		fputs("5", f); /* reset the peak RSS */
		fclose(f);
	}
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len;
	int r = -errno;

	if (!f)
		return r;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		r = -EIO;
		goto out;
	}
	buf = malloc((size_t)len + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		r = -EIO;
		goto out;
	}
	*ret = buf;
	*ret_len = (size_t)len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	fclose(f);
	return r;
}

/* every entry's path leads back to it */
static int check_tree(const struct lp_toc *toc)
{
	char path[LP_TOC_MAX_PATH + 1];
	uint32_t i, n = lp_toc_nr_entries(toc), got;

	for (i = 0; i < n; i++) {
		if (lp_toc_entry_path(toc, i, path, sizeof(path)) < 0) {
			fprintf(stderr, "entry %u: no path\n", i);
			return -1;
		}
		got = lp_toc_lookup_path(toc, path);
		if (got != i) {
			fprintf(stderr, "entry %u \"%s\": lookup gave %u\n", i,
				path, got);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct lp_err err = { 0 };
	struct lp_toc *toc = NULL;
	char *json = NULL;
	size_t len = 0, heap0, heap1;
	long rss0, rss1, hwm;
	double best = 1e9, best_cpu = 1e9, t, cpu, tcheck, tspill, dig_mem,
	       dig_file;
	int spilled;
	unsigned long long payload_end;
	int runs, i, r;

	if (argc < 3) {
		fprintf(stderr, "usage: toc_driver TOC.json PAYLOAD_END "
				"[RUNS]\n");
		return 2;
	}
	payload_end = strtoull(argv[2], NULL, 10);
	runs = argc > 3 ? atoi(argv[3]) : 1;
	if (runs < 1)
		runs = 1;
	r = read_file(argv[1], &json, &len);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	/* the timed runs: the JSON in memory, nothing else held */
	for (i = 0; i < runs; i++) {
		t = now();
		cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		r = lp_toc_parse(json, len, payload_end, &toc, &err);
		cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
		t = now() - t;
		if (r < 0) {
			fprintf(stderr, "parse: %s\n", err.msg);
			return 1;
		}
		if (t < best)
			best = t;
		if (cpu < best_cpu)
			best_cpu = cpu;
		lp_toc_free(toc);
		toc = NULL;
	}
	/* the memory run: what stays after the JSON is gone */
	malloc_trim(0);
	rss0 = status_kb("VmRSS:");
	heap0 = heap_bytes();
	reset_hwm();
	r = lp_toc_parse(json, len, payload_end, &toc, &err);
	if (r < 0) {
		fprintf(stderr, "parse: %s\n", err.msg);
		return 1;
	}
	hwm = status_kb("VmHWM:");
	dig_mem = digest_read_ns(toc);
	tspill = now();
	spilled = lp_toc_spill_digests(toc, getenv("TOC_BENCH_SPILL_DIR"),
				       LP_TOC_SPILL_MIN, &err);
	tspill = now() - tspill;
	if (spilled < 0)
		fprintf(stderr, "spill: %s\n", err.msg);
	dig_file = digest_read_ns(toc);
	free(json);
	json = NULL;
	malloc_trim(0);
	heap1 = heap_bytes();
	rss1 = status_kb("VmRSS:");
	/* rss0 and heap0 held the JSON, which is gone now */
	heap0 -= len;
	rss0 -= (long)(len / 1024);
	tcheck = now();
	r = check_tree(toc);
	tcheck = now() - tcheck;
	printf("entries=%u chunks=%u json_bytes=%zu parse_s=%.3f parse_cpu_s=%.3f "
	       "heap_B_per_entry=%.1f rss_B_per_entry=%.1f "
	       "peak_extra_MB=%.1f lookup_all_s=%.3f digests=%s spill_s=%.3f "
	       "digest_ns_mem=%.0f digest_ns_after=%.0f check=%s\n",
	       lp_toc_nr_entries(toc), lp_toc_nr_chunks(toc), len, best,
	       best_cpu, (double)(heap1 - heap0) / lp_toc_nr_entries(toc),
	       (double)(rss1 - rss0) * 1024 / lp_toc_nr_entries(toc),
	       (double)(hwm - (rss0 + (long)(len / 1024))) / 1024, tcheck,
	       spilled > 0 ? "file" : "memory", tspill, dig_mem, dig_file,
	       r == 0 && dig_mem >= 0 && dig_file >= 0 ? "ok" : "FAILED");
	lp_toc_free(toc);
	return r == 0 ? 0 : 1;
}
