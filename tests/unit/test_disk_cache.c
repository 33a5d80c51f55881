// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of the disk tier (fs/disk_cache.c) on its own, through its
 * fs-internal interface: a chunk this process wrote is served back without
 * hashing it again (its voucher), while a file changed on disk after the
 * write (in place, or replaced by another file), or one this process did
 * not write (a previous process's: the object opened anew), is hashed
 * again: served when right (and vouched for from then on), dropped when
 * wrong, never served wrong. The hash count is the tier's own counter
 * (fs_disk_counts()), which counts every lp_chunk_verify() of a read.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs_int.h"

#define CHUNK_LEN 20000

struct fixture {
	char dir[64];
	struct fs_disk *disk;
	uint8_t data[CHUNK_LEN], buf[CHUNK_LEN];
	struct lp_digest dg;
};

static void path_of(const struct fixture *fx, const struct lp_digest *dg,
		    char *path, size_t size)
{
	char s[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(dg, s);
	snprintf(path, size, "%s/chunks/%.2s/%s", fx->dir, s + 7, s + 7);
}

static void disk_open(struct fixture *fx)
{
	struct lp_err err = { 0 };

	assert_int_equal(fs_disk_open(fx->dir, 64 * LP_MIB, &fx->disk, &err),
			 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	size_t i;

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/lp-test-disk-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	for (i = 0; i < CHUNK_LEN; i++)
		fx->data[i] = (uint8_t)(i * 7 + i / 251);
	lp_sha256(fx->data, CHUNK_LEN, &fx->dg);
	disk_open(fx);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	fs_disk_unref(fx->disk);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void counts(struct fixture *fx, uint64_t *rehashed, uint64_t *vouched)
{
	fs_disk_counts(fx->disk, rehashed, vouched);
}

/* get the chunk; 0 and the right bytes, or -ENOENT */
static int get(struct fixture *fx)
{
	int r;

	memset(fx->buf, 0, CHUNK_LEN);
	r = fs_disk_get(fx->disk, &fx->dg, fx->buf, CHUNK_LEN);
	if (r == 0)
		assert_memory_equal(fx->buf, fx->data, CHUNK_LEN);
	return r;
}

/* written by this process: every read back is served without a hash */
static void test_own_write_not_rehashed(void **state)
{
	struct fixture *fx = *state;
	uint64_t rehashed, vouched;
	int i;

	assert_int_equal(fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN),
			 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(get(fx), 0);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 0);
	assert_int_equal(vouched, 3);
}

/* a file from before (the object opened anew: another process's view) is
 * hashed on its first read, then vouched for */
static void test_previous_process_rehashed(void **state)
{
	struct fixture *fx = *state;
	uint64_t rehashed, vouched;

	assert_int_equal(fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN),
			 0);
	fs_disk_unref(fx->disk); /* the last reference: the vouchers go */
	fx->disk = NULL;
	disk_open(fx);
	assert_int_equal(get(fx), 0);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 1);
	assert_int_equal(vouched, 0);
	/* verified by this process now: the next read needs no hash */
	assert_int_equal(get(fx), 0);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 1);
	assert_int_equal(vouched, 1);
}

/* a previous process's tampered file: hashed, dropped, never served */
static void test_previous_process_tampered(void **state)
{
	struct fixture *fx = *state;
	char path[256];
	uint64_t rehashed, vouched;
	int fd;

	assert_int_equal(fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN),
			 0);
	fs_disk_unref(fx->disk);
	fx->disk = NULL;
	path_of(fx, &fx->dg, path, sizeof(path));
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 100), 1);
	close(fd);
	disk_open(fx);
	assert_int_equal(get(fx), -ENOENT);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 1);
	assert_int_equal(access(path, F_OK), -1); /* dropped */
}

/* written by this process, then changed in place: the voucher no longer
 * holds (ctime), the bytes are hashed and the file dropped */
static void test_own_write_tampered_in_place(void **state)
{
	struct fixture *fx = *state;
	char path[256];
	uint64_t rehashed, vouched;
	int fd;

	assert_int_equal(fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN),
			 0);
	assert_int_equal(get(fx), 0); /* vouched */
	path_of(fx, &fx->dg, path, sizeof(path));
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, CHUNK_LEN / 2), 1);
	close(fd);
	assert_int_equal(get(fx), -ENOENT);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 1);
	assert_int_equal(vouched, 1);
	assert_int_equal(access(path, F_OK), -1);
	/* written again, it is vouched for again */
	assert_int_equal(fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN),
			 0);
	assert_int_equal(get(fx), 0);
	counts(fx, &rehashed, &vouched);
	assert_int_equal(rehashed, 1);
	assert_int_equal(vouched, 2);
}

/* written by this process, then replaced by another file (another inode)
 * under its name: hashed; wrong bytes are dropped, right ones served */
static void test_own_write_replaced(void **state)
{
	struct fixture *fx = *state;
	char path[256], tmp[300];
	uint64_t rehashed, vouched;
	uint8_t bad[CHUNK_LEN];
	int fd, round;

	path_of(fx, &fx->dg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	for (round = 0; round < 2; round++) {
		/* round 0: wrong bytes of the right size; 1: the right ones */
		memcpy(bad, fx->data, CHUNK_LEN);
		if (round == 0)
			bad[CHUNK_LEN - 1] ^= 1;
		assert_int_equal(
			fs_disk_put(fx->disk, &fx->dg, fx->data, CHUNK_LEN), 0);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad, CHUNK_LEN), CHUNK_LEN);
		close(fd);
		assert_int_equal(rename(tmp, path), 0);
		assert_int_equal(get(fx), round == 0 ? -ENOENT : 0);
		counts(fx, &rehashed, &vouched);
		assert_int_equal(rehashed, (uint64_t)round + 1);
		assert_int_equal(vouched, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_own_write_not_rehashed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_previous_process_rehashed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_previous_process_tampered,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_own_write_tampered_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_write_replaced, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
