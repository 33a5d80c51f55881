// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests for the chunk cache's disk tier (fs/disk_cache.c), through its
 * own interface over real directories: chunks land in a few pack files, not
 * one file each; the table is rebuilt from the packs by the next open (a
 * restart keeps the cache); one object per directory; every read checks
 * the record again, so a tampered payload, a torn header or a pack cut
 * mid-record (a crash mid-append) is a miss, never a wrong byte; packs
 * deleted behind its back are misses; the budget holds and evicts the
 * coldest packs first, down to 90%; the old one-file-per-chunk layout is
 * cleared at open (set aside in O(1), deleted by a thread after, also what
 * a crash left); many packs under a low RLIMIT_NOFILE (descriptors
 * bounded, every pack counted); the number of packs bounded; a failed
 * write's pack no longer appended to; a crafted pack of colliding digests;
 * FIFOs and symlinks named *.pack ignored; a grown foreign pack as warm as
 * its mtime; writers and readers in several threads at once;
 * another process sharing the directory (this binary run again). The
 * record parser's contract (fs_disk_record_parse) is checked field by
 * field; tests/fuzz/fuzz_disk_record.c fuzzes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs_int.h"

#define BIG (1024ull * 1024 * 1024)
#define CHUNK 16384

struct chunk {
	uint8_t data[CHUNK];
	size_t len;
	struct lp_digest dg;
};

/* chunk @seed: its bytes and digest, of length @len */
static void make_chunk(struct chunk *c, unsigned int seed, size_t len)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	assert_true(len <= CHUNK);
	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		c->data[i] = (uint8_t)(x >> 16);
	}
	c->len = len;
	lp_sha256(c->data, len, &c->dg);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void make_dir(char *dir)
{
	assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* the pack files in DIR/chunks, their names in @names (when not NULL) */
static size_t packs_of(const char *dir, char names[][300], size_t max)
{
	char path[200];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/chunks", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l < 5 || strcmp(de->d_name + l - 5, ".pack"))
			continue;
		if (names && n < max)
			snprintf(names[n], 300, "%s/%.64s", path, de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* the header offsets of @path's records, in order (the parser's walk) */
static size_t records_of(const char *path, uint64_t *offs, size_t max)
{
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct fs_disk_record rec;
	uint64_t off = 0, size = (uint64_t)file_size(path);
	size_t n = 0;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	while (off < size && n < max &&
	       pread(fd, hdr, sizeof(hdr), (off_t)off) == sizeof(hdr) &&
	       fs_disk_record_parse(hdr, sizeof(hdr), size - off, &rec) == 0) {
		offs[n++] = off;
		off += FS_DISK_RECORD_HDR + rec.len;
	}
	close(fd);
	return n;
}

static void patch(const char *path, uint64_t off, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* 0 when @c is in @d with its own bytes, else what fs_disk_get said */
static int check_get(struct fs_disk *d, const struct chunk *c)
{
	uint8_t *buf = malloc(c->len ? c->len : 1);
	int r;

	assert_non_null(buf);
	memset(buf, 0xa5, c->len);
	r = fs_disk_get(d, &c->dg, buf, c->len);
	if (r == 0)
		assert_memory_equal(buf, c->data, c->len);
	free(buf);
	return r;
}

static void test_record_parse(void **state)
{
	uint8_t hdr[FS_DISK_RECORD_HDR], bad[FS_DISK_RECORD_HDR];
	struct fs_disk_record rec;
	struct lp_digest dg;

	(void)state;
	lp_sha256("x", 1, &dg);
	fs_disk_record_header(&dg, 1000, hdr);
	assert_int_equal(fs_disk_record_parse(hdr, sizeof(hdr), 1048, &rec), 0);
	assert_int_equal(rec.len, 1000);
	assert_true(lp_digest_equal(&rec.dg, &dg));
	/* the payload must fit in what is left of the pack */
	assert_int_equal(fs_disk_record_parse(hdr, sizeof(hdr), 1047, &rec),
			 -ENODATA);
	assert_int_equal(fs_disk_record_parse(hdr, sizeof(hdr), 47, &rec),
			 -ENODATA);
	assert_int_equal(fs_disk_record_parse(hdr, 47, 1048, &rec), -ENODATA);
	/* every header byte is covered: magic, version, length, digest */
	for (size_t i = 0; i < sizeof(hdr); i++) {
		memcpy(bad, hdr, sizeof(hdr));
		bad[i] ^= 0x40;
		assert_int_equal(
			fs_disk_record_parse(bad, sizeof(bad), 1048, &rec),
			-EBADMSG);
	}
	/* a good CRC over a length past the bound, or another version */
	fs_disk_record_header(&dg, LP_CHUNK_MAX_SIZE + 1, bad);
	assert_int_equal(
		fs_disk_record_parse(bad, sizeof(bad), UINT64_MAX, &rec),
		-EFBIG);
	fs_disk_record_header(&dg, LP_CHUNK_MAX_SIZE, bad);
	assert_int_equal(
		fs_disk_record_parse(bad, sizeof(bad), UINT64_MAX, &rec), 0);
	memset(bad, 0, sizeof(bad)); /* a hole: an append that never was */
	assert_int_equal(fs_disk_record_parse(bad, sizeof(bad), 1048, &rec),
			 -EBADMSG);
}

/* many chunks, a few files; a second open (a restart) finds them all */
static void test_packs_survive_reopen(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX";
	struct chunk *c = malloc(200 * sizeof(*c));
	struct lp_err err = { 0 };
	struct fs_disk *d, *d2;
	uint64_t used;
	unsigned int i;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	for (i = 0; i < 200; i++) {
		make_chunk(&c[i], i, 1 + (i * 997) % CHUNK);
		assert_false(fs_disk_has(d, &c[i].dg));
		assert_int_equal(fs_disk_put(d, &c[i].dg, c[i].data, c[i].len),
				 0);
		assert_true(fs_disk_has(d, &c[i].dg));
	}
	/* a second put of a chunk it has adds nothing */
	used = fs_disk_used(d);
	assert_int_equal(fs_disk_put(d, &c[7].dg, c[7].data, c[7].len), 0);
	assert_int_equal(fs_disk_used(d), used);
	for (i = 0; i < 200; i++)
		assert_int_equal(check_get(d, &c[i]), 0);
	/* one pack for all of them: no file per chunk */
	assert_int_equal(packs_of(dir, NULL, 0), 1);
	/* the same directory, however spelled: the same object */
	{
		char alt[300];

		snprintf(alt, sizeof(alt), "%s/chunks/..", dir);
		assert_int_equal(fs_disk_open(alt, BIG, &d2, &err), 0);
		assert_ptr_equal(d, d2);
		fs_disk_unref(d2);
	}
	/* a wrong length is a miss, not a short copy */
	{
		uint8_t buf[CHUNK];

		assert_int_equal(fs_disk_get(d, &c[3].dg, buf, c[3].len - 1),
				 -ENOENT);
	}
	fs_disk_unref(d);

	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(fs_disk_used(d), used);
	for (i = 0; i < 200; i++) {
		assert_true(fs_disk_has(d, &c[i].dg));
		assert_int_equal(check_get(d, &c[i]), 0);
	}
	/* new writes go to a new pack: an old one is never appended to */
	make_chunk(&c[0], 1000, 100);
	assert_int_equal(fs_disk_put(d, &c[0].dg, c[0].data, c[0].len), 0);
	assert_int_equal(packs_of(dir, NULL, 0), 2);
	assert_int_equal(check_get(d, &c[0]), 0);
	fs_disk_unref(d);
	remove_dir(dir);
	free(c);
}

/* a tampered payload, a torn header, a pack cut mid-record: misses */
static void test_damage_is_a_miss(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", pack[1][300];
	struct chunk *c = malloc(20 * sizeof(*c));
	uint8_t zero[FS_DISK_RECORD_HDR] = { 0 }, x = 0x5a;
	struct lp_err err = { 0 };
	struct fs_disk *d;
	uint64_t offs[32];
	unsigned int i;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	for (i = 0; i < 20; i++) {
		make_chunk(&c[i], 100 + i, 4096 + i);
		assert_int_equal(fs_disk_put(d, &c[i].dg, c[i].data, c[i].len),
				 0);
	}
	assert_int_equal(packs_of(dir, pack, 1), 1);
	assert_int_equal(records_of(pack[0], offs, 32), 20);

	/* record 2's payload changed under an open tier: a miss, then out */
	patch(pack[0], offs[2] + FS_DISK_RECORD_HDR + 100, &x, 1);
	assert_int_equal(check_get(d, &c[2]), -ENOENT);
	assert_false(fs_disk_has(d, &c[2].dg));
	assert_int_equal(check_get(d, &c[1]), 0);
	assert_int_equal(check_get(d, &c[3]), 0);
	/* stored again, it is served again (a new record) */
	assert_int_equal(fs_disk_put(d, &c[2].dg, c[2].data, c[2].len), 0);
	assert_int_equal(check_get(d, &c[2]), 0);
	fs_disk_unref(d);

	/* after a restart: record 4's payload bad (header good), record
	 * 10's header zeroed (an append torn by a crash: the scan ends
	 * there), the pack cut inside record 18 */
	patch(pack[0], offs[4] + FS_DISK_RECORD_HDR + 7, &x, 1);
	patch(pack[0], offs[10], zero, sizeof(zero));
	assert_int_equal(truncate(pack[0], (off_t)offs[18] + 60), 0);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	for (i = 0; i < 20; i++) {
		/* 2: record 2 bad, its copy (appended to the same pack at
		 * the end) cut off */
		int want = (i == 2 || i == 4 || i >= 10) ? -ENOENT : 0;

		assert_int_equal(check_get(d, &c[i]), want);
	}
	assert_false(fs_disk_has(d, &c[4].dg));
	assert_false(fs_disk_has(d, &c[12].dg));
	fs_disk_unref(d);

	/* a pack of garbage: nothing from it, and no crash */
	{
		char path[300];
		uint8_t junk[4096];
		int fd;

		for (i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(i * 31 + 7);
		memcpy(junk, "LPCR", 4);
		snprintf(path, sizeof(path), "%s/chunks/junk.pack", dir);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
		close(fd);
	}
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(check_get(d, &c[0]), 0);
	fs_disk_unref(d);
	remove_dir(dir);
	free(c);
}

/* packs deleted by someone else (a test emptying DIR/chunks): misses */
static void test_deleted_packs(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", cmd[400];
	struct chunk c;
	struct lp_err err = { 0 };
	struct fs_disk *d;

	(void)state;
	make_dir(dir);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	make_chunk(&c, 5, 3000);
	assert_int_equal(fs_disk_put(d, &c.dg, c.data, c.len), 0);
	assert_true(fs_disk_has(d, &c.dg));
	snprintf(cmd, sizeof(cmd), "rm -rf %s/chunks/*", dir);
	assert_int_equal(system(cmd), 0);
	assert_false(fs_disk_has(d, &c.dg));
	assert_int_equal(check_get(d, &c), -ENOENT);
	assert_int_equal(fs_disk_used(d), 0);
	/* and it goes on: a new pack */
	assert_int_equal(fs_disk_put(d, &c.dg, c.data, c.len), 0);
	assert_int_equal(check_get(d, &c), 0);
	assert_int_equal(packs_of(dir, NULL, 0), 1);
	/* emptied again, and no lookup finds out: a write a second later
	 * does, and goes to a new pack, not on into the deleted one */
	assert_int_equal(system(cmd), 0);
	sleep_ms(1100);
	make_chunk(&c, 6, 3000);
	assert_int_equal(fs_disk_put(d, &c.dg, c.data, c.len), 0);
	assert_int_equal(packs_of(dir, NULL, 0), 1);
	assert_int_equal(check_get(d, &c), 0);
	fs_disk_unref(d);
	remove_dir(dir);
}

/* the budget: coldest packs out first, down to 90% */
static void test_budget_coldest_first(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", names[256][300];
	const uint64_t budget = 1024 * 1024;
	struct chunk *c = malloc(200 * sizeof(*c));
	struct lp_err err = { 0 };
	struct fs_disk *d;
	uint64_t total = 0;
	size_t n, i;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	assert_int_equal(fs_disk_open(dir, budget, &d, &err), 0);
	for (i = 0; i < 200; i++) {
		make_chunk(&c[i], 300 + (unsigned int)i, CHUNK);
		assert_int_equal(fs_disk_put(d, &c[i].dg, c[i].data, c[i].len),
				 0);
		/* chunk 0 is read all along: warm */
		if (i % 8 == 0)
			assert_int_equal(check_get(d, &c[0]), 0);
		assert_true(fs_disk_used(d) <= budget);
	}
	n = packs_of(dir, names, 256);
	for (i = 0; i < n && i < 256; i++)
		total += (uint64_t)file_size(names[i]);
	/* several packs (a 64th of the budget at most, 64 KiB at least),
	 * the count is what the files hold, within the budget and not
	 * emptied: at 90% less one pack at most */
	assert_true(n > 4);
	assert_int_equal(fs_disk_used(d), total);
	assert_true(total <= budget);
	assert_true(total >= budget / 10 * 9 - 64 * 1024);
	assert_int_equal(check_get(d, &c[0]), 0); /* warm: kept */
	assert_int_equal(check_get(d, &c[5]), -ENOENT); /* cold: gone */
	assert_int_equal(check_get(d, &c[199]), 0); /* the newest */
	fs_disk_unref(d);

	/* reopened with half the budget: evicted at open, same rule */
	assert_int_equal(fs_disk_open(dir, budget / 2, &d, &err), 0);
	assert_true(fs_disk_used(d) <= budget / 2);
	assert_true(fs_disk_used(d) >= budget / 2 / 10 * 9 - 64 * 1024);
	fs_disk_unref(d);
	remove_dir(dir);
	free(c);
}

/* the earlier layout's files (DIR/chunks/ab/<hex>) are cleared at open */
/* DIR/old-* directories (the old layout set aside) in @dir */
static size_t olds_of(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	assert_non_null(d);
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, "old-", 4);
	closedir(d);
	return n;
}

/* the reaper thread deletes them all, within @secs */
static void wait_olds_gone(const char *dir, unsigned int secs)
{
	unsigned int i;

	for (i = 0; i < secs * 10 && olds_of(dir); i++)
		sleep_ms(100);
	assert_int_equal(olds_of(dir), 0);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void test_legacy_layout_cleared(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400];
	struct lp_err err = { 0 };
	struct fs_disk *d;
	struct stat st;
	int fd;

	(void)state;
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/chunks/ab", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/chunks/ab/ab%062d", dir, 0);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/chunks/ab", dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(fs_disk_used(d), 0);
	fs_disk_unref(d);
	wait_olds_gone(dir, 60);
	remove_dir(dir);
}

/*
 * An upgrade from the old layout with many files (a full 8 GiB cache had
 * ~330k): the open sets the old directories aside in O(1) each and
 * returns (it took 8.9 s for 20,000 files when it deleted them itself);
 * a thread deletes them after. A set-aside directory a crash left half
 * deleted (DIR/old-*) is deleted by the next open's thread.
 */
#define LEGACY_DIRS 100
#define LEGACY_FILES 20000u
#define LEGACY_OPEN_MAX_NS 500000000ll /* 1.5 s before, 1.3 ms after */
static void test_legacy_upgrade_off_open_path(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400];
	struct lp_err err = { 0 };
	struct fs_disk *d;
	struct stat st;
	int64_t t0, took;
	unsigned int i;
	int fd;

	(void)state;
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < LEGACY_DIRS; i++) {
		snprintf(path, sizeof(path), "%s/chunks/%02x", dir, i);
		assert_int_equal(mkdir(path, 0700), 0);
	}
	for (i = 0; i < LEGACY_FILES; i++) {
		snprintf(path, sizeof(path), "%s/chunks/%02x/%02x%062u", dir,
			 i % LEGACY_DIRS, i % LEGACY_DIRS, i);
		fd = open(path, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	/* the old layout's temporary files, and a crash's leftover */
	snprintf(path, sizeof(path), "%s/tmp", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tmp/x", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/old-1-crashed", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/old-1-crashed/ab", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/old-1-crashed/ab/ab%062d", dir, 0);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);

	t0 = mono_ns();
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	took = mono_ns() - t0;
	printf("# open with %u old files: %.1f ms\n", LEGACY_FILES,
	       (double)took / 1e6);
	assert_true(took < LEGACY_OPEN_MAX_NS);
	for (i = 0; i < LEGACY_DIRS; i++) {
		snprintf(path, sizeof(path), "%s/chunks/%02x", dir, i);
		assert_int_equal(stat(path, &st), -1);
	}
	assert_int_equal(fs_disk_used(d), 0);
	fs_disk_unref(d);
	wait_olds_gone(dir, 120);
	snprintf(path, sizeof(path), "%s/tmp", dir);
	assert_int_equal(stat(path, &st), -1);
	remove_dir(dir);
}

/*
 * A write that fails (the file size limit here, ENOSPC or EIO in life)
 * leaves a torn header in its pack, which ends that pack's scan at the
 * next open: the next write goes to a new pack, so what it writes is
 * still found after a restart.
 */
static void test_write_error_new_pack(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", names[4][300];
	struct lp_err err = { 0 };
	struct chunk *c = malloc(3 * sizeof(*c));
	struct rlimit old, lim;
	struct fs_disk *d;
	void (*old_sig)(int);

	(void)state;
	assert_non_null(c);
	make_chunk(&c[0], 11, CHUNK);
	make_chunk(&c[1], 12, CHUNK);
	make_chunk(&c[2], 13, CHUNK);
	make_dir(dir);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(fs_disk_put(d, &c[0].dg, c[0].data, c[0].len), 0);
	assert_int_equal(packs_of(dir, names, 4), 1);

	/* the next header gets 10 bytes in */
	old_sig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)file_size(names[0]) + 10;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_true(fs_disk_put(d, &c[1].dg, c[1].data, c[1].len) < 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_sig);

	assert_int_equal(fs_disk_put(d, &c[2].dg, c[2].data, c[2].len), 0);
	assert_int_equal(packs_of(dir, NULL, 0), 2);
	fs_disk_unref(d);

	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(check_get(d, &c[0]), 0);
	assert_int_equal(check_get(d, &c[1]), -ENOENT);
	assert_int_equal(check_get(d, &c[2]), 0);
	fs_disk_unref(d);
	free(c);
	remove_dir(dir);
}

/*
 * A crafted pack whose 40,000 headers (unchecked until a read) hold
 * digests alike in their first 8 bytes, which were the table's hash: the
 * open took 4.18 s (quadratic); with a keyed hash of every byte it is the
 * scan's time (tens of milliseconds).
 */
#define CRAFTED_RECORDS 40000u
#define CRAFTED_OPEN_MAX_NS 1000000000ll
static void test_crafted_collisions(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400];
	const size_t size = (size_t)CRAFTED_RECORDS * FS_DISK_RECORD_HDR;
	uint8_t *buf = malloc(size);
	struct lp_err err = { 0 };
	struct lp_digest dg;
	struct fs_disk *d;
	int64_t t0, took;
	uint32_t i;
	int fd;

	(void)state;
	assert_non_null(buf);
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	memset(&dg, 0x5a, sizeof(dg));
	for (i = 0; i < CRAFTED_RECORDS; i++) {
		memcpy(dg.b + 8, &i, sizeof(i)); /* bytes 0-7 the same */
		fs_disk_record_header(&dg, 0,
				      buf + (size_t)i * FS_DISK_RECORD_HDR);
	}
	snprintf(path, sizeof(path), "%s/chunks/crafted.pack", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);

	t0 = mono_ns();
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	took = mono_ns() - t0;
	printf("# open of %u colliding records: %.1f ms\n", CRAFTED_RECORDS,
	       (double)took / 1e6);
	assert_true(took < CRAFTED_OPEN_MAX_NS);
	assert_int_equal(fs_disk_used(d), size);
	fs_disk_unref(d);
	free(buf);
	remove_dir(dir);
}

/* the descriptors this process has open */
static unsigned int open_fds(void)
{
	struct dirent *de;
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* opendir's own */
}

/* a pack of one record, @c, as DIR/chunks/@name; its size */
static uint64_t write_pack(const char *dir, const char *name,
			   const struct chunk *c)
{
	uint8_t hdr[FS_DISK_RECORD_HDR];
	char path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/chunks/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	fs_disk_record_header(&c->dg, (uint32_t)c->len, hdr);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, c->data, c->len), (ssize_t)c->len);
	close(fd);
	return sizeof(hdr) + c->len;
}

/*
 * Many packs (every process that writes leaves one), more than the
 * descriptors the process may open: the tier holds a bounded number of
 * them open (64 in disk_cache.c, DISK_MAX_FDS), counts every pack's bytes,
 * finds every record and still writes.
 */
static struct rlimit saved_nofile;

/* the limit back, also when the test failed before it put it back */
static int restore_nofile(void **state)
{
	(void)state;
	return setrlimit(RLIMIT_NOFILE, &saved_nofile);
}

#define MANY_PACKS 600
#define FD_LIMIT 200
#define FDS_HELD_MAX (64 + 8) /* DISK_MAX_FDS, the directories, slack */
static void test_many_packs_few_fds(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400], name[64];
	struct lp_err err = { 0 };
	struct chunk *c = malloc(sizeof(*c));
	struct rlimit old, low;
	struct fs_disk *d;
	uint64_t bytes = 0;
	unsigned int i, before;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < MANY_PACKS; i++) {
		make_chunk(c, 7000 + i, 100 + i);
		snprintf(name, sizeof(name), "%016x-1-%u.pack", i, i);
		bytes += write_pack(dir, name, c);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	saved_nofile = old;
	low = old;
	low.rlim_cur = FD_LIMIT;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	before = open_fds();
	assert_true(before < FD_LIMIT - FDS_HELD_MAX);

	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_true(open_fds() <= before + FDS_HELD_MAX);
	assert_int_equal(fs_disk_used(d), bytes); /* every pack counted */
	for (i = 0; i < MANY_PACKS; i++) {
		make_chunk(c, 7000 + i, 100 + i);
		assert_int_equal(check_get(d, c), 0);
	}
	assert_true(open_fds() <= before + FDS_HELD_MAX);
	make_chunk(c, 1, CHUNK);
	assert_int_equal(fs_disk_put(d, &c->dg, c->data, c->len), 0);
	assert_int_equal(check_get(d, c), 0);
	assert_true(open_fds() <= before + FDS_HELD_MAX);
	fs_disk_unref(d);
	assert_int_equal(open_fds(), before);

	/* and the next open finds all of them again */
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(check_get(d, c), 0);
	make_chunk(c, 7000, 100);
	assert_int_equal(check_get(d, c), 0);
	fs_disk_unref(d);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	free(c);
	remove_dir(dir);
}

/*
 * Not a regular file though named *.pack: a FIFO (opening it for reading
 * would block the first open forever) and a symlink to a pack elsewhere
 * (it would be read, counted and have its mtime set) are both ignored.
 */
static void test_odd_pack_files(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX",
	     out[] = "/tmp/lp-test-disk-XXXXXX";
	char path[400], target[400];
	struct timespec old_times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	struct lp_err err = { 0 };
	struct chunk *c = malloc(sizeof(*c));
	struct fs_disk *d;
	struct stat st;

	(void)state;
	assert_non_null(c);
	make_chunk(c, 21, 1000);
	make_dir(dir);
	make_dir(out);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/chunks/fifo.pack", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(target, sizeof(target), "%s/chunks", out);
	assert_int_equal(mkdir(target, 0700), 0);
	write_pack(out, "x.pack", c);
	snprintf(target, sizeof(target), "%s/chunks/x.pack", out);
	assert_int_equal(utimensat(AT_FDCWD, target, old_times, 0), 0);
	snprintf(path, sizeof(path), "%s/chunks/link.pack", dir);
	assert_int_equal(symlink(target, path), 0);

	alarm(60); /* a FIFO opened blocking: killed, not hung */
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	alarm(0);
	assert_int_equal(fs_disk_used(d), 0);
	assert_int_equal(check_get(d, c), -ENOENT);
	fs_disk_unref(d);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	free(c);
	remove_dir(dir);
	remove_dir(out);
}

/* set @dir/chunks/@name's mtime to @sec */
static void set_mtime(const char *dir, const char *name, time_t sec)
{
	struct timespec t[2] = { { sec, 0 }, { sec, 0 } };
	char path[400];

	snprintf(path, sizeof(path), "%s/chunks/%s", dir, name);
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

/*
 * Another process's pack that grows is as warm as its latest write (its
 * mtime), not as cold as when it was first seen: the eviction takes the
 * pack nobody wrote to or read since instead.
 */
static void test_grown_pack_is_warm(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400];
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct lp_err err = { 0 };
	struct chunk *c = malloc(4 * sizeof(*c));
	struct fs_disk *d, *d2;
	uint64_t used;
	int fd;

	(void)state;
	assert_non_null(c);
	make_chunk(&c[0], 31, 1000); /* in A, seen at open */
	make_chunk(&c[1], 32, 1000); /* appended to A after */
	make_chunk(&c[2], 33, 1000); /* in B */
	make_chunk(&c[3], 34, 100); /* ours */
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_pack(dir, "A.pack", &c[0]);
	write_pack(dir, "B.pack", &c[2]);
	set_mtime(dir, "A.pack", 1000000000); /* A the colder at open */
	set_mtime(dir, "B.pack", 1100000000);
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);

	/* the other process appends to A; this one looks a second later */
	snprintf(path, sizeof(path), "%s/chunks/A.pack", dir);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	fs_disk_record_header(&c[1].dg, (uint32_t)c[1].len, hdr);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, c[1].data, c[1].len), (ssize_t)c[1].len);
	close(fd);
	sleep_ms(1100);
	assert_int_equal(fs_disk_put(d, &c[3].dg, c[3].data, c[3].len), 0);
	used = 4 * FS_DISK_RECORD_HDR + 3000 + 100;
	assert_int_equal(fs_disk_used(d), used);

	/* just over: one pack goes, the coldest: B */
	assert_int_equal(fs_disk_open(dir, used - 1, &d2, &err), 0);
	assert_ptr_equal(d2, d);
	assert_int_equal(check_get(d, &c[2]), -ENOENT);
	assert_int_equal(check_get(d, &c[0]), 0);
	assert_int_equal(check_get(d, &c[1]), 0);
	assert_int_equal(check_get(d, &c[3]), 0);
	fs_disk_unref(d2);
	fs_disk_unref(d);
	free(c);
	remove_dir(dir);
}

/*
 * Every process that writes leaves a pack of its own: past 4096 packs
 * (DISK_PACKS_HIGH) the coldest go, down to 3681 (DISK_PACKS_LOW), however
 * far under the byte budget the tier is.
 */
#define COUNT_PACKS 4200
#define COUNT_PACKS_LOW 3681
static void test_pack_count_bounded(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", path[400], name[64];
	struct lp_err err = { 0 };
	struct chunk *c = malloc(sizeof(*c));
	struct fs_disk *d;
	unsigned int i;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	snprintf(path, sizeof(path), "%s/chunks", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (i = 0; i < COUNT_PACKS; i++) {
		make_chunk(c, 9000 + i, 64);
		snprintf(name, sizeof(name), "%u.pack", i);
		write_pack(dir, name, c);
		set_mtime(dir, name,
			  1000000000 + i); /* the first the coldest */
	}
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	assert_int_equal(packs_of(dir, NULL, 0), COUNT_PACKS_LOW);
	make_chunk(c, 9000, 64);
	assert_int_equal(check_get(d, c), -ENOENT);
	make_chunk(c, 9000 + COUNT_PACKS - COUNT_PACKS_LOW - 1, 64);
	assert_int_equal(check_get(d, c), -ENOENT);
	make_chunk(c, 9000 + COUNT_PACKS - COUNT_PACKS_LOW, 64);
	assert_int_equal(check_get(d, c), 0);
	make_chunk(c, 9000 + COUNT_PACKS - 1, 64);
	assert_int_equal(check_get(d, c), 0);
	assert_int_equal(fs_disk_used(d),
			 (uint64_t)COUNT_PACKS_LOW * (FS_DISK_RECORD_HDR + 64));
	fs_disk_unref(d);
	free(c);
	remove_dir(dir);
}

struct worker {
	struct fs_disk *d;
	struct chunk *c;
	unsigned int first, n;
	int r;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned int round, i;

	for (round = 0; round < 3 && w->r == 0; round++) {
		for (i = 0; i < w->n && w->r == 0; i++) {
			const struct chunk *c = &w->c[w->first + i];
			uint8_t *buf = malloc(c->len);

			w->r = fs_disk_put(w->d, &c->dg, c->data, c->len);
			if (w->r == 0 && buf &&
			    (fs_disk_get(w->d, &c->dg, buf, c->len) != 0 ||
			     memcmp(buf, c->data, c->len)))
				w->r = -EBADMSG;
			free(buf);
		}
	}
	return NULL;
}

/* four writers and readers at once, overlapping chunks, small packs */
static void test_concurrent(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX";
	struct chunk *c = malloc(160 * sizeof(*c));
	struct lp_err err = { 0 };
	struct worker w[4];
	pthread_t t[4];
	struct fs_disk *d;
	unsigned int i;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	for (i = 0; i < 160; i++)
		make_chunk(&c[i], 700 + i, 512 + (i * 131) % (CHUNK - 512));
	/* a budget whose packs hold a few chunks each, never reached */
	assert_int_equal(fs_disk_open(dir, 64 * 64 * 1024, &d, &err), 0);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){
			.d = d, .c = c, .first = i * 30, .n = 70
		};
		assert_int_equal(
			pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 4; i++)
		assert_int_equal(w[i].r, 0);
	for (i = 0; i < 160; i++)
		assert_int_equal(check_get(d, &c[i]), 0);
	assert_true(packs_of(dir, NULL, 0) > 4);
	fs_disk_unref(d);
	/* and all of it again after a restart */
	assert_int_equal(fs_disk_open(dir, 64 * 64 * 1024, &d, &err), 0);
	for (i = 0; i < 160; i++)
		assert_int_equal(check_get(d, &c[i]), 0);
	fs_disk_unref(d);
	remove_dir(dir);
	free(c);
}

/* the other process of test_other_process: it sees the parent's chunk
 * and adds ten of its own; 0 when all went well */
static int child_put(const char *dir)
{
	struct lp_err err = { 0 };
	struct fs_disk *d;
	struct chunk c;
	unsigned int i;
	uint8_t buf[CHUNK];
	int r = 0;

	if (fs_disk_open(dir, BIG, &d, &err) < 0)
		return 1;
	make_chunk(&c, 1, 5000);
	if (fs_disk_get(d, &c.dg, buf, c.len) < 0)
		r = 2;
	for (i = 0; i < 10 && r == 0; i++) {
		make_chunk(&c, 2000 + i, 3000 + i);
		if (fs_disk_put(d, &c.dg, c.data, c.len) < 0)
			r = 3;
	}
	fs_disk_unref(d);
	return r;
}

/*
 * Another process sharing the directory: it sees what this one wrote
 * before it started; what it writes, and what it appends to a pack this
 * one has seen, this one sees by its next write at most a second later.
 */
static void test_other_process(void **state)
{
	char dir[] = "/tmp/lp-test-disk-XXXXXX", self[256], cmd[600],
	     names[4][300];
	struct chunk *c = malloc(12 * sizeof(*c));
	uint8_t hdr[FS_DISK_RECORD_HDR];
	struct lp_err err = { 0 };
	struct fs_disk *d;
	uint64_t total = 0;
	ssize_t n;
	size_t np, i;
	int fd;

	(void)state;
	assert_non_null(c);
	make_dir(dir);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	assert_int_equal(fs_disk_open(dir, BIG, &d, &err), 0);
	make_chunk(&c[0], 1, 5000);
	assert_int_equal(fs_disk_put(d, &c[0].dg, c[0].data, c[0].len), 0);
	snprintf(cmd, sizeof(cmd), "'%s' --child-put %s", self, dir);
	assert_int_equal(system(cmd), 0);
	for (i = 0; i < 10; i++)
		make_chunk(&c[1 + i], 2000 + (unsigned int)i,
			   3000 + (unsigned int)i);
	assert_false(fs_disk_has(d, &c[1].dg)); /* not looked yet */
	/* a pack the child made, one more record appended to it */
	np = packs_of(dir, names, 4);
	assert_int_equal(np, 2);
	make_chunk(&c[11], 3000, 7000);
	fs_disk_record_header(&c[11].dg, (uint32_t)c[11].len, hdr);
	for (i = 0; i < np; i++) {
		if (records_of(names[i], (uint64_t[16]){ 0 }, 16) != 10)
			continue;
		fd = open(names[i], O_WRONLY | O_APPEND);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
		assert_int_equal(write(fd, c[11].data, c[11].len),
				 (ssize_t)c[11].len);
		close(fd);
	}
	/* a write a second after the open looks at the directory again */
	sleep_ms(1100);
	make_chunk(&c[0], 4000, 100);
	assert_int_equal(fs_disk_put(d, &c[0].dg, c[0].data, c[0].len), 0);
	for (i = 1; i < 12; i++) {
		assert_true(fs_disk_has(d, &c[i].dg));
		assert_int_equal(check_get(d, &c[i]), 0);
	}
	np = packs_of(dir, names, 4);
	for (i = 0; i < np; i++)
		total += (uint64_t)file_size(names[i]);
	assert_int_equal(fs_disk_used(d), total);
	fs_disk_unref(d);
	remove_dir(dir);
	free(c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_packs_survive_reopen),
		cmocka_unit_test(test_damage_is_a_miss),
		cmocka_unit_test(test_deleted_packs),
		cmocka_unit_test(test_budget_coldest_first),
		cmocka_unit_test(test_legacy_layout_cleared),
		cmocka_unit_test_teardown(test_many_packs_few_fds,
					  restore_nofile),
		cmocka_unit_test(test_legacy_upgrade_off_open_path),
		cmocka_unit_test(test_write_error_new_pack),
		cmocka_unit_test(test_crafted_collisions),
		cmocka_unit_test(test_odd_pack_files),
		cmocka_unit_test(test_grown_pack_is_warm),
		cmocka_unit_test(test_pack_count_bounded),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_other_process),
	};

	if (argc == 3 && !strcmp(argv[1], "--child-put"))
		return child_put(argv[2]);

	return cmocka_run_group_tests(tests, NULL, NULL);
}
