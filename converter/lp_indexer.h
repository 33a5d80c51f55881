/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Building a gzip layer's seekable index (format/lp_index.h) in one
 * streaming pass, and reading a file of the layer through an index with the
 * checks that make a forged index harmless: span digests and resuming only
 * at proven checkpoints (the stream, lp_index.h), and the file's own tar
 * header in the stream compared with the file table before a byte of the
 * file is served. Both need the tar reader, which is why they live in
 * converter/ rather than format/.
 *
 * Threads: every function may be called from any thread; a struct lp_index
 * is only read (but for its atomic set of proven checkpoints).
 */
#ifndef LP_INDEXER_H
#define LP_INDEXER_H

#include <stddef.h>
#include <stdint.h>

#include "lp_blob.h"
#include "lp_buf.h"
#include "lp_err.h"
#include "lp_index.h"

struct lp_index_build_result {
	uint64_t blob_size, usize;
	struct lp_digest blob_digest;
	size_t nr_checkpoints, nr_files;
	uint64_t index_size;
	double seconds; /* wall clock */
	double cpu_seconds; /* of the calling thread: the one core it used */
};

/*
 * lp_index_build() - read the tar.gz blob from @fd (sequentially, from its
 * current position to its end) and append its index to @out, a checkpoint
 * at the first deflate block boundary after every @span_size uncompressed
 * bytes (LP_INDEX_MIN_SPAN_SIZE..LP_INDEX_MAX_SPAN_SIZE), and the sha256 of
 * every @grain_size piece of each span's compressed bytes (grain digests,
 * lp_index_grain(): 0 for none, else a power of two in
 * LP_INDEX_GRAIN_MIN..LP_INDEX_GRAIN_MAX; LP_INDEX_GRAIN_DEFAULT). @verified (may be
 * NULL) is the blob's digest when the caller has already checked the bytes
 * against it (a registry fetch does): it is recorded as it is, and the
 * blob's sha256 is not computed again. The gzip checks (each member's
 * CRC32 and ISIZE, a header's CRC16) are made either way: they check the
 * decoder (format/lp_inflate.h) as well as the bytes. @res (may be NULL)
 * gets sizes and timing. Returns 0;
 * -EINVAL for input that is not a gzip'ed tar (err says what), -EOPNOTSUPP
 * for a sparse file in the tar, -EFBIG over an index bound, or an I/O
 * -errno.
 */
int lp_index_build(int fd, uint64_t span_size, uint32_t grain_size,
		   const struct lp_digest *verified, struct lp_buf *out,
		   struct lp_index_build_result *res, struct lp_err *err);

/*
 * lp_index_check_header() - file table entry @i against the tar header
 * blocks @hdr (@len = data_off - hdr_off bytes, read from the layer): the
 * header must parse as one tar entry whose blocks end exactly at the
 * entry's data, with the entry's path, type, size, link target, mode,
 * owners, mtime, device numbers and xattrs. Returns 0 or -EBADMSG with @err saying what differs.
 */
int lp_index_check_header(const struct lp_index *ix, size_t i,
			  const uint8_t *hdr, size_t len, struct lp_err *err);

/*
 * lp_index_read_file() - read @len bytes at @off of file table entry @i
 * (a regular file) from @blob through @ix into @buf: the stream starts at
 * the last proven checkpoint before the entry's header, which is checked
 * (lp_index_check_header) before its data is read; every span is verified.
 * @stats (may be NULL) is added to. Returns 0; -ERANGE past the end of the
 * file; -EINVAL not a regular file; -EBADMSG; or the blob's -errno.
 */
int lp_index_read_file(const struct lp_index *ix, struct lp_blob *blob,
		       size_t i, void *buf, size_t len, uint64_t off,
		       struct lp_index_stream_stats *stats, struct lp_err *err);

#endif /* LP_INDEXER_H */
