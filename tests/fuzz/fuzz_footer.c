// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_footer_parse(): the input is the end of a blob. It is
 * parsed as the whole blob and, when longer, as a tail of a larger blob whose
 * size comes from its first 8 bytes. On success the TOC range must lie inside
 * the blob before the footer.
 */
#include <stdlib.h>

#include "lp_footer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *tail, size_t len, uint64_t blob_size)
{
	struct lp_footer f;
	struct lp_err err = { 0 };
	uint64_t end;

	if (lp_footer_parse(tail, len, blob_size, &f, &err) < 0)
		return;
	end = blob_size - f.footer_size;
	if (f.footer_size > len || f.toc_size == 0 || f.toc_offset >= end ||
	    f.toc_size > end - f.toc_offset)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t tail;

	check(data, size, size);
	if (size > 8) {
		tail = size - 8 < LP_FOOTER_MAX_SIZE ? size - 8 :
						       LP_FOOTER_MAX_SIZE;
		check(data + size - tail, tail,
		      lp_get_le64(data) % ((uint64_t)1 << 48) + tail);
	}
	return 0;
}
