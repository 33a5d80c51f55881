/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Chunk decoding: decompress one gzip member or zstd frame (the compressed
 * range of a struct lp_toc_chunk), skip its inner offset, and verify the
 * result against the chunk digest. No I/O: the caller brings the compressed
 * bytes. Decoders hold per-thread state (libdeflate/zlib/zstd contexts): one
 * struct lp_chunk_decoder per thread.
 */
#ifndef LP_CHUNK_H
#define LP_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"

struct lp_chunk_decoder;

/* lp_chunk_decoder_new() - a decoder for @comp; free with _free (NULL ok). */
int lp_chunk_decoder_new(enum lp_compression comp,
			 struct lp_chunk_decoder **ret_dec);
void lp_chunk_decoder_free(struct lp_chunk_decoder *dec);

/*
 * lp_chunk_decode() - decompress the member in [src, src+src_len) (which must
 * start at a member boundary; trailing bytes after the needed output are
 * allowed and ignored), discard the first @inner_offset output bytes, and
 * write exactly @dst_len following bytes to @dst. Output the member holds
 * beyond that (tar headers of following entries) is ignored.
 * Returns 0; -EBADMSG for corrupt data or a member shorter than
 * inner_offset + dst_len; -EFBIG when sizes exceed LP_CHUNK_MAX_*.
 */
int lp_chunk_decode(struct lp_chunk_decoder *dec, const void *src,
		    size_t src_len, uint64_t inner_offset, void *dst,
		    size_t dst_len, struct lp_err *err);

/*
 * lp_chunk_verify() - 0 when sha256(@data) equals @want, else -EBADMSG.
 */
int lp_chunk_verify(const void *data, size_t len, const struct lp_digest *want);

#endif /* LP_CHUNK_H */
