// SPDX-License-Identifier: Apache-2.0
/*
 * Chunk decoding: one gzip member or zstd frame in, exactly the wanted bytes
 * out. A member may hold more than the chunk (newer writers pack small files
 * behind an inner offset; tar headers of the following entries sit at its
 * end), so decoders skip @inner_offset bytes and ignore whatever follows the
 * chunk.
 *
 * gzip has two paths. libdeflate is the fast one, but it only decodes whole
 * members into a buffer large enough for all their output: we give it a
 * per-decoder scratch of inner_offset + dst_len + LP_MEMBER_MAX_TRAILER bytes
 * and copy the chunk out. When a member has more trailing output than that,
 * we fall back to zlib, which streams and stops as soon as the chunk is out.
 * zstd always streams (ZSTD_decompressStream) and stops the same way.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include "chunk_int.h"

/* output of skipped inner bytes goes here, a piece at a time */
#define SKIP_BUF_SIZE (64 * 1024)
/* a scratch larger than this is freed after use, not kept per thread */
#define SCRATCH_KEEP_MAX (16 * LP_MIB)
/* zlib counts in uInt: feed it at most this much at once */
#define ZLIB_MAX_STEP ((size_t)1 << 30)

struct lp_chunk_decoder {
	enum lp_compression comp;
	enum lp_gzip_impl gzip_impl;
	struct libdeflate_decompressor *ld;
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zd;
	uint8_t *scratch; /* libdeflate output */
	size_t scratch_len;
	uint8_t *skip; /* SKIP_BUF_SIZE, for streaming skips */
};

int lp_chunk_decoder_new(enum lp_compression comp,
			 struct lp_chunk_decoder **ret_dec)
{
	struct lp_chunk_decoder *dec = NULL;
	int r = -ENOMEM;

	if (comp != LP_COMP_GZIP && comp != LP_COMP_ZSTD) {
		r = -EOPNOTSUPP;
		goto out;
	}
	dec = calloc(1, sizeof(*dec));
	if (!dec)
		goto out;
	dec->comp = comp;
	dec->skip = malloc(SKIP_BUF_SIZE);
	if (!dec->skip)
		goto out;
	if (comp == LP_COMP_GZIP) {
		dec->ld = libdeflate_alloc_decompressor();
		if (!dec->ld)
			goto out;
		/* 16 + 15: gzip wrapper, largest window */
		if (inflateInit2(&dec->zs, 16 + MAX_WBITS) != Z_OK)
			goto out;
		dec->zs_ready = true;
	} else {
		dec->zd = ZSTD_createDCtx();
		if (!dec->zd)
			goto out;
	}
	*ret_dec = dec;
	dec = NULL;
	r = 0;
out:
	lp_chunk_decoder_free(dec);
	return r;
}

void lp_chunk_decoder_free(struct lp_chunk_decoder *dec)
{
	if (!dec)
		return;
	if (dec->ld)
		libdeflate_free_decompressor(dec->ld);
	if (dec->zs_ready)
		inflateEnd(&dec->zs);
	ZSTD_freeDCtx(dec->zd);
	free(dec->scratch);
	free(dec->skip);
	free(dec);
}

void lp_chunk_decoder_trim(struct lp_chunk_decoder *dec)
{
	if (dec->scratch_len > LP_CHUNK_IDLE_SCRATCH_MAX) {
		free(dec->scratch);
		dec->scratch = NULL;
		dec->scratch_len = 0;
	}
}

void lp_chunk_decoder_set_gzip_impl(struct lp_chunk_decoder *dec,
				    enum lp_gzip_impl impl)
{
	dec->gzip_impl = impl;
}

enum lp_compression
lp_chunk_decoder_compression(const struct lp_chunk_decoder *dec)
{
	return dec->comp;
}

static void drop_big_scratch(struct lp_chunk_decoder *dec)
{
	if (dec->scratch_len > SCRATCH_KEEP_MAX) {
		free(dec->scratch);
		dec->scratch = NULL;
		dec->scratch_len = 0;
	}
}

/*
 * libdeflate: decode the whole member into the scratch. Returns 0, -EBADMSG,
 * -ENOMEM, or -ENOSPC when the member holds more output than the scratch
 * (the caller then streams with zlib).
 */
static int gzip_libdeflate(struct lp_chunk_decoder *dec, const uint8_t *src,
			   size_t src_len, size_t inner, uint8_t *dst,
			   size_t dst_len, struct lp_err *err)
{
	size_t need = inner + dst_len + LP_MEMBER_MAX_TRAILER, got = 0, used;
	enum libdeflate_result res;
	int r;

	if (dec->scratch_len < need) {
		free(dec->scratch);
		dec->scratch_len = 0;
		dec->scratch = malloc(need);
		if (!dec->scratch) {
			r = -ENOMEM;
			goto out;
		}
		dec->scratch_len = need;
	}
	res = libdeflate_gzip_decompress_ex(dec->ld, src, src_len, dec->scratch,
					    dec->scratch_len, &used, &got);
	if (res == LIBDEFLATE_INSUFFICIENT_SPACE) {
		r = -ENOSPC;
		goto out;
	}
	if (res != LIBDEFLATE_SUCCESS) {
		r = lp_err_set(err, -EBADMSG, "corrupt gzip member (%zu bytes)",
			       src_len);
		goto out;
	}
	if (got < inner + dst_len) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip member holds %zu bytes, need %zu + %zu",
			       got, inner, dst_len);
		goto out;
	}
	memcpy(dst, dec->scratch + inner, dst_len);
	r = 0;
out:
	drop_big_scratch(dec);
	return r;
}

/* zlib: stream into the skip buffer, then into @dst, stop when it is full */
static int gzip_zlib(struct lp_chunk_decoder *dec, const uint8_t *src,
		     size_t src_len, size_t inner, uint8_t *dst, size_t dst_len,
		     struct lp_err *err)
{
	z_stream *zs = &dec->zs;
	size_t in_left = src_len, skip_left = inner, out_done = 0;
	int r, zr;

	if (inflateReset(zs) != Z_OK) {
		r = lp_err_set(err, -EINVAL, "zlib: inflateReset failed");
		goto out;
	}
	zs->next_in = (Bytef *)src;
	zs->avail_in = 0;
	while (out_done < dst_len) {
		if (zs->avail_in == 0) {
			size_t step = in_left < ZLIB_MAX_STEP ? in_left :
								ZLIB_MAX_STEP;

			zs->avail_in = (uInt)step;
			in_left -= step;
		}
		if (skip_left) {
			size_t n = skip_left < SKIP_BUF_SIZE ? skip_left :
							       SKIP_BUF_SIZE;

			zs->next_out = dec->skip;
			zs->avail_out = (uInt)n;
			zr = inflate(zs, Z_NO_FLUSH);
			skip_left -= n - zs->avail_out;
		} else {
			size_t n = dst_len - out_done;

			if (n > ZLIB_MAX_STEP)
				n = ZLIB_MAX_STEP;
			zs->next_out = dst + out_done;
			zs->avail_out = (uInt)n;
			zr = inflate(zs, Z_NO_FLUSH);
			out_done += n - zs->avail_out;
		}
		if (zr == Z_STREAM_END && (skip_left || out_done < dst_len)) {
			r = lp_err_set(err, -EBADMSG,
				       "gzip member ends before %zu + %zu "
				       "bytes",
				       inner, dst_len);
			goto out;
		}
		if (zr == Z_BUF_ERROR && zs->avail_in == 0 && in_left == 0) {
			r = lp_err_set(err, -EBADMSG,
				       "gzip member truncated at %zu bytes",
				       src_len);
			goto out;
		}
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			r = lp_err_set(err, -EBADMSG, "corrupt gzip member: %s",
				       zs->msg ? zs->msg : "inflate error");
			goto out;
		}
	}
	r = 0;
out:
	return r;
}

static int zstd_stream(struct lp_chunk_decoder *dec, const uint8_t *src,
		       size_t src_len, size_t inner, uint8_t *dst,
		       size_t dst_len, struct lp_err *err)
{
	ZSTD_inBuffer in = { src, src_len, 0 };
	size_t skip_left = inner, out_done = 0, zr;
	int r;

	ZSTD_DCtx_reset(dec->zd, ZSTD_reset_session_only);
	while (out_done < dst_len) {
		ZSTD_outBuffer out;
		size_t before_in = in.pos;

		if (skip_left) {
			out.dst = dec->skip;
			out.size = skip_left < SKIP_BUF_SIZE ? skip_left :
							       SKIP_BUF_SIZE;
		} else {
			out.dst = dst + out_done;
			out.size = dst_len - out_done;
		}
		out.pos = 0;
		zr = ZSTD_decompressStream(dec->zd, &out, &in);
		if (ZSTD_isError(zr)) {
			r = lp_err_set(err, -EBADMSG, "corrupt zstd frame: %s",
				       ZSTD_getErrorName(zr));
			goto out;
		}
		if (skip_left)
			skip_left -= out.pos;
		else
			out_done += out.pos;
		if (zr == 0 && (skip_left || out_done < dst_len)) {
			r = lp_err_set(err, -EBADMSG,
				       "zstd frame ends before %zu + %zu bytes",
				       inner, dst_len);
			goto out;
		}
		if (out.pos == 0 && in.pos == before_in && in.pos == in.size) {
			r = lp_err_set(err, -EBADMSG,
				       "zstd frame truncated at %zu bytes",
				       src_len);
			goto out;
		}
	}
	r = 0;
out:
	return r;
}

int lp_chunk_decode(struct lp_chunk_decoder *dec, const void *src,
		    size_t src_len, uint64_t inner_offset, void *dst,
		    size_t dst_len, struct lp_err *err)
{
	int r;

	if (inner_offset > LP_CHUNK_MAX_INNER_OFFSET) {
		r = lp_err_set(err, -EFBIG,
			       "inner offset %llu exceeds "
			       "LP_CHUNK_MAX_INNER_OFFSET",
			       (unsigned long long)inner_offset);
		goto out;
	}
	if (dst_len > LP_CHUNK_MAX_SIZE) {
		r = lp_err_set(err, -EFBIG,
			       "chunk of %zu bytes exceeds LP_CHUNK_MAX_SIZE",
			       dst_len);
		goto out;
	}
	if (dst_len == 0) {
		r = 0;
		goto out;
	}
	if (dec->comp == LP_COMP_ZSTD) {
		r = zstd_stream(dec, src, src_len, (size_t)inner_offset, dst,
				dst_len, err);
		goto out;
	}
	if (dec->gzip_impl != LP_GZIP_ZLIB) {
		struct lp_err ld_err = { 0 };

		/*
		 * Any libdeflate failure gets a second try with zlib: the
		 * member may have more trailing output than the scratch holds,
		 * or the caller may have passed only the member's first bytes
		 * (a truncated trailer). Corruption inside the needed output
		 * fails in zlib as well.
		 */
		r = gzip_libdeflate(dec, src, src_len, (size_t)inner_offset,
				    dst, dst_len, &ld_err);
		if (r == 0 || r == -ENOMEM)
			goto out;
		if (dec->gzip_impl == LP_GZIP_LIBDEFLATE && r != -ENOSPC) {
			r = lp_err_set(err, r, "%s", ld_err.msg);
			goto out;
		}
		if (dec->gzip_impl == LP_GZIP_LIBDEFLATE) {
			r = lp_err_set(err, -EFBIG,
				       "gzip member holds more than %zu + %zu "
				       "+ LP_MEMBER_MAX_TRAILER bytes",
				       (size_t)inner_offset, dst_len);
			goto out;
		}
	}
	r = gzip_zlib(dec, src, src_len, (size_t)inner_offset, dst, dst_len,
		      err);
out:
	return r;
}

int lp_chunk_verify(const void *data, size_t len, const struct lp_digest *want)
{
	struct lp_digest got;

	lp_sha256(data, len, &got);
	return lp_digest_equal(&got, want) ? 0 : -EBADMSG;
}

int lp_chunk_digest(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		    struct lp_digest *ret_digest, struct lp_err *err)
{
	const struct lp_toc_entry *e = lp_toc_entry(toc, c->entry);
	bool whole = c->chunk_offset == 0 && c->chunk_size == e->size;
	int r, has_fd;

	r = lp_toc_chunk_digest(toc, c, ret_digest);
	if (r > 0) {
		r = 0;
		goto out;
	}
	has_fd = r < 0 ? r : lp_toc_entry_digest(toc, e, ret_digest);
	if (has_fd < 0) {
		if (r < 0)
			r = lp_err_set(err, has_fd,
				       "the TOC's spilled digest table could "
				       "not be read (entry %u's chunk digest, "
				       "slot %u): %s",
				       c->entry, c->digest_idx,
				       strerror(-has_fd));
		else
			r = lp_err_set(err, has_fd,
				       "the TOC's spilled digest table could "
				       "not be read (entry %u's file digest): "
				       "%s",
				       c->entry, strerror(-has_fd));
		goto out;
	}
	if (whole && has_fd) {
		r = 0;
		goto out;
	}
	if (has_fd) {
		/* the message goes with the error a chunk reader returns */
		lp_err_set(err, -EBADMSG,
			   "no chunkDigest to verify against (a file of "
			   "%u chunks: its file digest vouches only for "
			   "the whole file, read in one go)",
			   e->nr_chunks);
		r = LP_CHUNK_WHOLE_FILE;
	} else if (whole) {
		r = lp_err_set(err, -EBADMSG,
			       "no chunkDigest and no file digest to verify "
			       "against");
	} else {
		r = lp_err_set(err, -EBADMSG,
			       "no chunkDigest and no file digest to verify "
			       "against (a file of %u chunks)",
			       e->nr_chunks);
	}
out:
	if (r < 0)
		memset(ret_digest, 0, sizeof(*ret_digest));
	return r;
}

int lp_chunk_check_digest(const struct lp_toc_chunk *c, const void *data,
			  const struct lp_digest *want, struct lp_err *err)
{
	int r = lp_chunk_verify(data, c->chunk_size, want);

	/* which digest it was: whether the chunk has a chunkDigest slot (no
	 * read of the table for the message) */
	if (r < 0)
		lp_err_set(err, r,
			   c->digest_idx != LP_TOC_NO_INDEX ?
				   "chunk digest mismatch (chunkDigest)" :
				   "file digest mismatch (a single-chunk file "
				   "without chunkDigest)");
	return r;
}

int lp_chunk_check(const struct lp_toc *toc, const struct lp_toc_chunk *c,
		   const void *data, struct lp_err *err)
{
	struct lp_digest want;
	int r;

	r = lp_chunk_digest(toc, c, &want, err);
	if (r == LP_CHUNK_WHOLE_FILE)
		r = -EBADMSG; /* @err says why */
	if (r < 0)
		goto out;
	r = lp_chunk_check_digest(c, data, &want, err);
out:
	return r;
}
