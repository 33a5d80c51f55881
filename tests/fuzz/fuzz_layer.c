// SPDX-License-Identifier: Apache-2.0
/*
 * Fuzz target for lp_layer_open() and lp_layer_read_chunk(): the input is a
 * whole blob. When it opens, every chunk (up to a bound) is read, decoded and
 * verified; failures must come with a message.
 */
#include <stdlib.h>

#include "lp_layer.h"

#define MAX_CHUNKS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lp_blob *blob = NULL;
	struct lp_layer *l = NULL;
	struct lp_chunk_decoder *dec = NULL;
	struct lp_err err = { 0 };
	const struct lp_toc *toc;
	uint32_t i;

	if (lp_blob_new_mem(data, size, "fuzz", &blob) < 0)
		return 0;
	if (lp_layer_open(blob, NULL, &l, &err) < 0) {
		if (!err.msg[0])
			abort();
		goto out;
	}
	toc = lp_layer_toc(l);
	if (lp_chunk_decoder_new(lp_format_compression(lp_layer_format(l)),
				 &dec) < 0)
		goto out;
	for (i = 0; i < lp_toc_nr_chunks(toc) && i < MAX_CHUNKS; i++) {
		const struct lp_toc_chunk *c = lp_toc_chunk(toc, i);
		uint8_t *dst = malloc(c->chunk_size);

		if (!dst)
			break;
		lp_err_clear(&err);
		if (lp_layer_read_chunk(l, dec, i, dst, &err) < 0 &&
		    !err.msg[0])
			abort();
		free(dst);
	}
out:
	lp_chunk_decoder_free(dec);
	lp_layer_free(l);
	lp_blob_unref(blob);
	return 0;
}
