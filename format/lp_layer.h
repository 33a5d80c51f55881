/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A layer: a blob source plus its footer and parsed TOC. Opening a layer reads
 * the footer and the TOC through the blob (so it works the same over a local
 * file or a registry), detects the format, and computes the TOC digest
 * (sha256 of the uncompressed TOC JSON bytes, the value of the
 * `containerd.io/snapshot/stargz/toc.digest` annotation).
 *
 * Thread rules: after lp_layer_open() a layer is immutable; any number of
 * threads may call lp_layer_read_chunk() at once, each with its own decoder.
 */
#ifndef LP_LAYER_H
#define LP_LAYER_H

#include "lp_blob.h"
#include "lp_chunk.h"
#include "lp_footer.h"
#include "lp_index.h"
#include "lp_toc.h"

struct lp_layer;

/*
 * lp_layer_open() - read footer and TOC of @blob. When @want_toc_digest is not
 * NULL the TOC digest must equal it (-EBADMSG otherwise, before the TOC is
 * parsed). Takes its own reference on @blob. Returns 0, -EINVAL (not an
 * eStargz/zstd:chunked blob, malformed TOC), -EBADMSG, -EFBIG, or the blob's
 * read error; @err says which and where.
 */
int lp_layer_open(struct lp_blob *blob, const struct lp_digest *want_toc_digest,
		  struct lp_layer **ret_layer, struct lp_err *err);

/*
 * lp_layer_open_tail() - lp_layer_open() for a caller that already holds the
 * last @tail_len bytes of @blob in @tail (borrowed for the call; one suffix
 * range from a registry): footer and as much of the TOC as the tail covers
 * come from it, only the rest of the TOC is read through @blob (one pread).
 * @tail_len 0 is lp_layer_open(). Returns as lp_layer_open(); -EINVAL when
 * @tail_len exceeds the blob's size.
 */
int lp_layer_open_tail(struct lp_blob *blob, const void *tail, size_t tail_len,
		       const struct lp_digest *want_toc_digest,
		       struct lp_layer **ret_layer, struct lp_err *err);

/*
 * Checks the tar header blocks of file table entry @i (@len bytes at @hdr)
 * against the table: lp_index_check_header() (converter/, with the one tar
 * reader), passed in so that format/ and fs/ need no tar parser.
 */
typedef lp_index_header_check_fn lp_layer_header_check_fn;

/*
 * lp_layer_open_index() - the plain gzip layer in @blob seen through its
 * gzip index @ix (taken over: freed with the layer, also on failure): its
 * TOC is lp_index_toc()'s, its format LP_FMT_GZIP_INDEX (no footer, no TOC
 * digest). The blob's size must be the index's; that the blob is the one
 * indexed is the span digests' to show, read by read. Takes its own
 * reference on @blob. Returns 0, -EBADMSG, -EFBIG, -ENOMEM.
 */
int lp_layer_open_index(struct lp_blob *blob, struct lp_index *ix,
			lp_layer_header_check_fn check_header,
			struct lp_layer **ret_layer, struct lp_err *err);

/* lp_layer_index() - the gzip index of a LP_FMT_GZIP_INDEX layer, else NULL */
const struct lp_index *lp_layer_index(const struct lp_layer *layer);

/* uncompressed bytes one lp_layer_check_file() reads before and after the
 * header */
#define LP_LAYER_CHECK_BATCH (1 * LP_MIB)
/* told each TOC entry whose own tar header a check found true */
typedef void (*lp_layer_checked_fn)(void *arg, uint32_t entry);
/* reads the layer's uncompressed bytes [@off, @off + @len) into @buf from
 * verified spans: 0, or -errno with @err saying why */
typedef int (*lp_layer_read_fn)(void *arg, uint64_t off, void *buf, size_t len,
				struct lp_err *err);

/*
 * lp_layer_check_file() - for a LP_FMT_GZIP_INDEX layer: read entry
 * @entry's own tar header blocks (any entry the index names; for a
 * hardlink its own, not its target's) with @read (the caller's: the
 * mount's, fs_index_read(), shares its decoded spans) and check them
 * against the file table (the check given at open: path, type, size, link
 * target, mode, owners, mtime, devices, xattrs), so that a table pointing a path at another file's
 * bytes, or lying about its metadata, is caught before it is served. The
 * read covers the header's span (at most LP_LAYER_CHECK_BATCH before and
 * after the header; with @to_header only up to the header's own end: the
 * caller's @read serves a span's bytes as they come, and would otherwise
 * wait for the span's end) and checks every header wholly inside it too;
 * @checked (NULL: none) is told each TOC entry whose header was found
 * true, @entry's included. An entry the TOC made up (LP_TOC_IMPLIED) has
 * nothing to check. 0 for any other layer. Returns 0, -EBADMSG (a lie), or
 * @read's error.
 */
int lp_layer_check_file(struct lp_layer *layer, uint32_t entry, bool to_header,
			lp_layer_read_fn read, void *read_arg,
			lp_layer_checked_fn checked, void *arg,
			struct lp_err *err);

/*
 * lp_layer_prove() - for a LP_FMT_GZIP_INDEX layer, the proving pass
 * (lp_index_prove_with() with the header check given at open and @hooks,
 * NULL for none: its checked() is told file records, which
 * lp_layer_file_entry() maps to TOC entries): the whole layer read in
 * order and every claim of the index checked against it. 0 for any other
 * layer. Returns 0, -EBADMSG (the index lies), -ECANCELED (@hooks' stop),
 * or the blob's -errno.
 */
int lp_layer_prove(struct lp_layer *layer,
		   const struct lp_index_prove_hooks *hooks,
		   struct lp_index_stream_stats *stats, struct lp_err *err);

/*
 * lp_layer_file_entry() - the TOC entry whose tar header is file record @k
 * of a LP_FMT_GZIP_INDEX layer's index, or LP_TOC_NO_INDEX (a record a
 * later one of the same path shadows, or another layer).
 */
uint32_t lp_layer_file_entry(const struct lp_layer *layer, size_t k);

/* lp_layer_free() - NULL allowed; drops the blob reference. */
void lp_layer_free(struct lp_layer *layer);

enum lp_layer_format lp_layer_format(const struct lp_layer *layer);
const struct lp_footer *lp_layer_footer(const struct lp_layer *layer);
const struct lp_toc *lp_layer_toc(const struct lp_layer *layer);
const struct lp_digest *lp_layer_toc_digest(const struct lp_layer *layer);
/*
 * lp_layer_toc_json() - the uncompressed TOC JSON bytes as stored, or NULL
 * (*ret_len 0) after lp_layer_drop_toc_json().
 */
const void *lp_layer_toc_json(const struct lp_layer *layer, size_t *ret_len);

/*
 * lp_layer_drop_toc_json() - free the TOC JSON bytes (about as large as the
 * parsed TOC itself) when the caller will not ask for them: long-lived
 * mounted layers. Call it before sharing the layer between threads.
 */
void lp_layer_drop_toc_json(struct lp_layer *layer);

/*
 * lp_layer_spill_toc_digests() - lp_toc_spill_digests() for the layer's TOC
 * when it is big (LP_TOC_SPILL_MIN): its digests move to an unlinked file in
 * @dir (NULL: the default there), for long-lived mounted layers. Call it
 * before sharing the layer between threads. Returns as
 * lp_toc_spill_digests(); on an error the digests stay in memory.
 */
int lp_layer_spill_toc_digests(struct lp_layer *layer, const char *dir,
			       struct lp_err *err);
struct lp_blob *lp_layer_blob(const struct lp_layer *layer); /* borrowed */

/*
 * lp_layer_read_chunk() - read chunk @ci's compressed range from the blob,
 * decode it with @dec (which must match the layer's compression) into @dst
 * (chunk_size bytes) and verify it by the digest policy of lp_chunk.h
 * for a random-access reader (chunkDigest, else the file digest of a
 * single-chunk file; any other chunk is refused before it is read).
 * Returns 0, -EBADMSG (corrupt, digest mismatch, or nothing that vouches
 * for this chunk alone), or the blob's error.
 */
int lp_layer_read_chunk(struct lp_layer *layer, struct lp_chunk_decoder *dec,
			uint32_t ci, void *dst, struct lp_err *err);

/* receives a file's bytes in order; 0 or -errno (which stops the read) */
typedef int (*lp_layer_sink_fn)(void *opaque, const void *data, size_t len);

/*
 * lp_layer_read_file() - the whole-file reader: read every chunk of regular
 * file entry @ino in order, each as lp_layer_read_chunk() does, and hand
 * its bytes to @sink. The chunks of a file of several chunks without
 * chunkDigests (rule 3 of lp_chunk.h: only the file digest vouches for
 * them) are handed over before they can be checked, so @sink must not
 * publish any byte of the file before this returned 0: then every chunk
 * was verified as lp_layer_read_chunk() does, and the sha256 of all the
 * bytes matched the file digest when rule 3 applied to any chunk. With
 * @ret_digest (NULL allowed) that sha256 is computed, written there and
 * checked against the file digest (when the TOC gives one) in any case.
 * Returns 0, -EINVAL (@ino is no regular file), -EBADMSG (as
 * lp_layer_read_chunk(), "file digest mismatch", or chunks that do not
 * cover the file), -EIO (the TOC's spilled digest table could not be read:
 * the file fails before @sink got a byte of it), -ENOMEM, the blob's
 * error, or @sink's.
 */
int lp_layer_read_file(struct lp_layer *layer, struct lp_chunk_decoder *dec,
		       uint32_t ino, lp_layer_sink_fn sink, void *opaque,
		       struct lp_digest *ret_digest, struct lp_err *err);

#endif /* LP_LAYER_H */
