// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for the gzip transport of a gzip index
 * (lp_index_transport_decode(), format/index_transport.c): the artifact
 * layer a registry hands over, inflated under a bound. The first three
 * bytes pick the bound (0..16 MiB), the rest is the layer. Aborts when a decode
 * succeeds with more bytes than the bound, fails with a code it does not
 * document, or leaves output behind on failure; and when what it gives
 * does not encode and decode back to itself.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lp_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_err err = { 0 };
	struct lp_buf wire;
	uint8_t *out = NULL, *again = NULL;
	size_t max, out_len = 0, again_len = 0;
	int r;

	if (size < 3)
		return 0;
	/* up to 16 MiB: past the decoder's first allocation, so that its
	 * growth is reached too */
	max = (size_t)data[0] << 16 | (size_t)data[1] << 8 | data[2];
	r = lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP, data + 3,
				      size - 3, max, &out, &out_len, &err);
	if (r < 0) {
		if ((r != -EFBIG && r != -EBADMSG && r != -ENOMEM) || out ||
		    out_len)
			abort();
		return 0;
	}
	if (out_len > max)
		abort();
	lp_buf_init(&wire, 2 * out_len + 1024);
	if (lp_index_transport_encode(LP_INDEX_TRANSPORT_GZIP, out, out_len,
				      &wire) < 0 ||
	    lp_index_transport_decode(LP_INDEX_TRANSPORT_GZIP, wire.data,
				      wire.len, out_len, &again, &again_len,
				      &err) < 0 ||
	    again_len != out_len || memcmp(again, out, out_len))
		abort();
	lp_buf_release(&wire);
	free(again);
	free(out);
	return 0;
}
