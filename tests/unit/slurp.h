/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For unit tests that read a whole file (a test vector, a converter's
 * output): one reader instead of a copy per test file. Include after
 * cmocka.h.
 */
#ifndef LP_SLURP_H
#define LP_SLURP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the whole of @path in a new buffer (free()), NUL-terminated one byte
 * past *@ret_len; the test fails, naming @path, when it cannot be read */
static uint8_t *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

#endif
