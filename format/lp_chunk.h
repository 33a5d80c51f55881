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
 * lp_chunk_decoder_trim() - give back what @dec keeps between decodes beyond
 * its fixed state: an output scratch over LP_CHUNK_IDLE_SCRATCH_MAX (it
 * grows to the largest member decoded, 4 MiB chunks need ~5 MiB). For a
 * decoder going idle: a pool of them per mounted layer kept that much each.
 */
#define LP_CHUNK_IDLE_SCRATCH_MAX (256 * 1024)
void lp_chunk_decoder_trim(struct lp_chunk_decoder *dec);

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
 *   3. else, for a file of several chunks with a file `digest`: that digest
 *      over the whole file. Only a whole-file reader (lp_layer_read_file(),
 *      used by `layer extract` and `layer verify`) can check this, and it
 *      publishes nothing of the file before it did; a random-access reader
 *      (the mount, one chunk at a time) refuses such a chunk;
 *   4. else nothing can vouch for them, and the chunk is refused.
 * An unconverted gzip layer read through its gzip index (lp_index.h) has no
 * chunk or file digests: there a chunk is a file's piece of one span, and
 * the span's sha256 over its compressed bytes vouches for it, checked
 * before a byte is inflated (lp_index_span_decode(), the one span decoder,
 * which the index's stream shares). Its tar header is checked against the
 * file table before the file is served (lp_index_check_header()).
 */

/* lp_chunk_digest() verdict: only the file digest over the whole file */
#define LP_CHUNK_WHOLE_FILE 1

/*
 * lp_chunk_digest() - the digest chunk @c of @toc is verified against, into
 * *@ret_digest (a copy: a big TOC keeps its digests in a file, see
 * lp_toc_spill_digests()). Returns
 *   0                    *@ret_digest vouches for the chunk (rule 1 or 2);
 *   LP_CHUNK_WHOLE_FILE  *@ret_digest is the file digest, which vouches
 *                        only for the whole file (rule 3); @err says why a
 *                        random-access reader refuses the chunk;
 *   -EBADMSG             *@ret_digest zeroed, @err says why none applies;
 *   -errno               *@ret_digest zeroed, the TOC's spilled digest
 *                        table could not be read (the read's error, or
 *                        -EIO when it came back short): a local read
 *                        error, not the chunk's fault nor its source's;
 *                        nothing is served.
 */
int lp_chunk_digest(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		    struct lp_digest *ret_digest, struct lp_err *err);

/*
 * lp_chunk_check() - verify @data (the decoded chunk, c->chunk_size bytes)
 * by the policy above, for a random-access reader. Returns 0, -EBADMSG
 * with @err naming the digest that did not match, or saying that nothing
 * vouches for the chunk alone (rules 3 and 4), or lp_chunk_digest()'s
 * -errno when the spilled digest table could not be read (no verdict on
 * the chunk: its reader must not count it as a verify failure nor blame
 * the chunk's source).
 */
int lp_chunk_check(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		   const void *data, struct lp_err *err);

/*
 * lp_chunk_check_digest() - lp_chunk_check()'s comparison alone: @data (the
 * decoded chunk, c->chunk_size bytes) against @want, the digest
 * lp_chunk_digest() returned 0 with for @c, for a reader that read it once
 * and carries it (the mount's fetch: also the disk tier's key). Reads no
 * digest table. Returns 0, or -EBADMSG with @err naming the digest.
 */
int lp_chunk_check_digest(const struct lp_toc_chunk *c, const void *data,
			  const struct lp_digest *want, struct lp_err *err);

#endif /* LP_CHUNK_H */
