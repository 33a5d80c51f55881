/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format/-private hooks into the chunk decoder, for the unit tests and the
 * decode benchmark: pick the gzip implementation explicitly so that both
 * paths are tested and measured. Not for use outside format/ and its tests.
 */
#ifndef LP_CHUNK_INT_H
#define LP_CHUNK_INT_H

#include "lp_chunk.h"

enum lp_gzip_impl {
	LP_GZIP_AUTO = 0, /* libdeflate, zlib when the member is larger */
	LP_GZIP_LIBDEFLATE, /* libdeflate only (fails on huge trailers) */
	LP_GZIP_ZLIB, /* zlib streaming, stops once enough output */
};

/* lp_chunk_decoder_set_gzip_impl() - choose the gzip path of @dec. */
void lp_chunk_decoder_set_gzip_impl(struct lp_chunk_decoder *dec,
				    enum lp_gzip_impl impl);

/* lp_chunk_decoder_compression() - what @dec decodes. */
enum lp_compression
lp_chunk_decoder_compression(const struct lp_chunk_decoder *dec);

#endif /* LP_CHUNK_INT_H */
