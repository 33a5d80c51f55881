// SPDX-License-Identifier: Apache-2.0
/*
 * The disk tier's bound on open pack descriptors, white box: fs/disk_cache.c
 * is compiled here with DISK_MAX_FDS 1, so that one pack with I/O in flight
 * fills the bound, and its static functions are called directly to hold
 * that I/O (a read in flight cannot be held from outside). A pack opened
 * again while every other descriptor is in use must keep its descriptor
 * (over the bound until the I/O ends) and give its use back: the first
 * version's trim closed the descriptor just opened, the read missed and the
 * pack kept its use count for good (review of the pack files).
 */
#define DISK_MAX_FDS 1
#include "../../fs/disk_cache.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lp_digest.h"

static void fill(uint8_t *buf, size_t len, unsigned int seed,
		 struct lp_digest *dg)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7);
	lp_sha256(buf, len, dg);
}

static void test_reopen_while_full(void **state)
{
	char dir[] = "/tmp/lp-test-disk-fds.XXXXXX";
	uint8_t x[4096], y[4096], got[4096];
	struct lp_digest dx, dy;
	struct fs_disk *d = NULL;
	struct lp_err err = { 0 };
	struct pack *a = NULL, *b;
	char cmd[64];
	uint32_t i;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	fill(x, sizeof(x), 1, &dx);
	fill(y, sizeof(y), 2, &dy);
	/* pack A: X, written by a first object, found by the second */
	assert_int_equal(fs_disk_open(dir, 1ull << 30, &d, &err), 0);
	assert_int_equal(fs_disk_put(d, &dx, x, sizeof(x)), 0);
	fs_disk_unref(d);
	assert_int_equal(fs_disk_open(dir, 1ull << 30, &d, &err), 0);
	/* pack B: Y, the second object's own */
	assert_int_equal(fs_disk_put(d, &dy, y, sizeof(y)), 0);
	b = d->active;
	assert_non_null(b);
	for (i = 0; i < d->npacks; i++)
		if (d->packs[i] && d->packs[i] != b)
			a = d->packs[i];
	assert_non_null(a);
	/* B's descriptor held as by a read in flight: the bound is full */
	fd = pack_fd_get(d, b);
	assert_true(fd >= 0);
	assert_int_equal(a->fd, -1); /* trimmed when B's was installed */
	/* X needs A opened again: over the bound, not a miss */
	assert_int_equal(fs_disk_get(d, &dx, got, sizeof(got)), 0);
	assert_memory_equal(got, x, sizeof(x));
	assert_int_equal(a->fd_users, 0); /* its use given back */
	pack_fd_put(d, b);
	/* and once B's I/O is over, the next open trims back to the bound */
	assert_int_equal(fs_disk_get(d, &dy, got, sizeof(got)), 0);
	assert_memory_equal(got, y, sizeof(y));
	assert_true(d->nfds <= 2);
	assert_int_equal(a->fd_users + b->fd_users, 0);
	fs_disk_unref(d);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reopen_while_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
