// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_chunk_decode(): byte 0 picks the compression and gzip
 * path, bytes 1-2 the inner offset, bytes 3-5 the wanted length (bounded so
 * that runs stay fast); the rest is the member.
 */
#include <stdlib.h>

#include "chunk_int.h"

#define HDR 6
#define MAX_DST (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_chunk_decoder *dec = NULL;
	struct lp_err err = { 0 };
	enum lp_compression comp;
	uint64_t inner;
	size_t dst_len;
	uint8_t *dst;
	int r;

	if (size < HDR)
		return 0;
	comp = (data[0] & 1) ? LP_COMP_ZSTD : LP_COMP_GZIP;
	inner = (uint64_t)data[1] | (uint64_t)data[2] << 8;
	dst_len = ((size_t)data[3] | (size_t)data[4] << 8 |
		   (size_t)data[5] << 16) %
		  MAX_DST;
	dst = malloc(dst_len + 1);
	if (!dst || lp_chunk_decoder_new(comp, &dec) < 0)
		goto out;
	lp_chunk_decoder_set_gzip_impl(
		dec, (enum lp_gzip_impl)(data[0] >> 1 & 3) % 3);
	r = lp_chunk_decode(dec, data + HDR, size - HDR, inner, dst, dst_len,
			    &err);
	if (r < 0 && !err.msg[0])
		abort(); /* every failure says why */
out:
	lp_chunk_decoder_free(dec);
	free(dst);
	return 0;
}
