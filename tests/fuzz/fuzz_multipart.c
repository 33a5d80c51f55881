// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target: multipart/byteranges bodies (lp_reg_multipart_parse) with
 * the boundary "XYZ", and boundary extraction from a Content-Type. Every
 * part handed out must lie inside the input and match its Content-Range.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct span {
	const uint8_t *start, *end;
};

static int check_part(void *ctx, uint64_t off, uint64_t plen, uint64_t total,
		      const void *p, size_t len)
{
	const struct span *s = ctx;
	volatile uint8_t x = 0;
	size_t i;

	if (plen != len || (const uint8_t *)p < s->start ||
	    (const uint8_t *)p + len > s->end)
		abort();
	if (total != UINT64_MAX && off + plen > total)
		abort();
	for (i = 0; i < len; i++)
		x ^= ((const uint8_t *)p)[i];
	return x & 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span s = { data, data + size };
	char b[LP_REG_BOUNDARY_MAX + 1];
	char *ct;

	lp_reg_multipart_parse(data, size, "XYZ", check_part, &s);
	ct = malloc(size + 1);
	if (!ct)
		return 0;
	memcpy(ct, data, size);
	ct[size] = '\0';
	if (lp_reg_multipart_boundary(ct, b, sizeof(b)) == 0 &&
	    strnlen(b, sizeof(b)) >= sizeof(b))
		abort();
	free(ct);
	return 0;
}
