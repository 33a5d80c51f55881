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
#include "lp_toc.h"

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

/*
 * The digest policy, the same for every reader (the mount's read path,
 * `layer extract`, `layer verify`): a chunk's bytes are handed out only
 * after they matched
 *   1. its `chunkDigest`, when the TOC gives one;
 *   2. else its file's `digest`, when the chunk is the whole file;
 *   3. else nothing can vouch for them, and the chunk is refused.
 * A file of several chunks without chunkDigests is refused even when it
 * has a file digest: its chunks are read (and served) one at a time, and
 * no reader may hand out bytes before they are verified.
 */

/*
 * lp_chunk_digest() - the digest chunk @c of @toc is verified against
 * (borrowed from @toc) into *@ret_digest. Returns 0, or -EBADMSG with
 * *@ret_digest NULL and @err saying why none applies.
 */
int lp_chunk_digest(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		    const struct lp_digest **ret_digest, struct lp_err *err);

/*
 * lp_chunk_check() - verify @data (the decoded chunk, c->chunk_size bytes)
 * by the policy above. Returns 0, or -EBADMSG with @err naming the digest
 * that did not match (or that there is none).
 */
int lp_chunk_check(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		   const void *data, struct lp_err *err);

#endif /* LP_CHUNK_H */
