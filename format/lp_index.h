/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seekable index of an unconverted gzip layer (docs/format.md, "gzip
 * index"): zran-style checkpoints (where the deflate stream can be resumed:
 * compressed and uncompressed offset, bit offset, the 32 KiB window stored
 * compressed) with the sha256 of every compressed span between two
 * checkpoints, and the layer tar's file table (path, type, mode, owners,
 * xattrs, link target, where each entry's header and data lie in the
 * uncompressed stream). With it, any byte range of the layer's tar can be
 * read by fetching and inflating one or a few spans instead of the blob.
 *
 * This file: the format (parse with every count and size bounded, since an
 * index comes from the network; serialise), lookups, and the span stream
 * that decodes uncompressed bytes from a blob source, verifying each span's
 * digest before inflating it. Checking a file's tar header in the stream
 * against the file table needs a tar parser and lives with it in converter/
 * (lp_indexer.h). No I/O of its own beyond the blob source given.
 *
 * Which checkpoints a read may start at: only proven ones. Checkpoint 0
 * (the blob's first byte) is; any other becomes so when a stream that
 * started at a proven one reaches it and finds inflate standing exactly
 * where the record says (same uncompressed offset, a block boundary with
 * the same bit offset, or a member start; the same 32 KiB window). A
 * stream starts at the last proven checkpoint at or before its offset, so
 * the first read deep into a layer inflates from further back; later ones
 * are cheap. Random-access reads (lp_index_span_decode(), lp_index_read())
 * may start at an unproven checkpoint under the window rule: only bytes
 * that do not depend on its window are served from there. The proving pass
 * (lp_index_prove()) reads the layer once from its first byte and checks
 * every claim of the index, the blob's digest last.
 *
 * Threads: a struct lp_index is immutable after lp_index_parse() except for
 * its set of proven checkpoints, which only grows and is updated atomically,
 * and its span cache (lp_index_span_get(), format/index_spans.c), which has
 * a lock of its own: one index may be read through from any number of
 * threads. A struct lp_index_stream is used by one thread.
 */
#ifndef LP_INDEX_H
#define LP_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_blob.h"
#include "lp_buf.h"
#include "lp_common.h"
#include "lp_digest.h"
#include "lp_err.h"
#include "lp_format.h"

#define LP_INDEX_MAGIC "LPGZIDX\n" /* 8 bytes */
#define LP_INDEX_VERSION 1
#define LP_INDEX_HEADER_SIZE 96
#define LP_INDEX_CP_SIZE 64 /* one checkpoint record */
#define LP_INDEX_FILE_SIZE 72 /* one file record */
#define LP_INDEX_WINDOW 32768 /* the deflate window */
#define LP_INDEX_NONE UINT32_MAX /* no string / no xattrs */

/* Bounds on what an index may claim (house rule 8). */
#define LP_INDEX_MAX_SIZE (512 * LP_MIB) /* a whole index */
#define LP_INDEX_MAX_CHECKPOINTS (1u << 18)
#define LP_INDEX_MAX_FILES LP_TOC_MAX_ENTRIES
#define LP_INDEX_MAX_STRINGS (256 * LP_MIB)
#define LP_INDEX_MAX_XATTRS_TOTAL (4u * 1024 * 1024) /* in the whole index */
#define LP_INDEX_MAX_SPAN_IN (64 * LP_MIB) /* compressed bytes of a span */
#define LP_INDEX_MAX_SPAN_OUT (256 * LP_MIB) /* uncompressed bytes */
#define LP_INDEX_MAX_HEADER (2 * LP_MIB) /* tar header blocks of 1 entry */
#define LP_INDEX_MIN_SPAN_SIZE (64 * LP_KIB) /* builder's span target */
#define LP_INDEX_MAX_SPAN_SIZE (64 * LP_MIB)
#define LP_INDEX_DEFAULT_SPAN_SIZE (2 * LP_MIB)
/* grain digests (header flag LP_INDEX_FLAG_GRAINS): the sha256 of every
 * grain-size piece of each span's compressed bytes, so that a span can be
 * verified piece by piece as it arrives; the grain size is a power of two
 * in these bounds */
#define LP_INDEX_GRAIN_DEFAULT (64 * 1024)
#define LP_INDEX_GRAIN_MIN (4 * 1024)
#define LP_INDEX_GRAIN_MAX (1024 * 1024)
#define LP_INDEX_FLAG_GRAINS 1u /* header flags: grain digests present */
/* lp_index_grain_size_ok() - @g is a grain size an index may have */
static inline bool lp_index_grain_size_ok(uint32_t g)
{
	return g >= LP_INDEX_GRAIN_MIN && g <= LP_INDEX_GRAIN_MAX &&
	       !(g & (g - 1));
}
/* lp_index_read(): how far before the offset (uncompressed) its first step
 * back starts, doubling each step; past the last, a stream from the last
 * proven checkpoint; and the compressed bytes it holds at once */
#define LP_INDEX_READ_BACK_FIRST (1 * LP_MIB)
#define LP_INDEX_READ_BACK_MAX (16 * LP_MIB)
#define LP_INDEX_READ_MAX_IN (64 * LP_MIB)
/* lp_index_read()s holding compressed bytes at once in a process (memory:
 * each may hold up to LP_INDEX_READ_MAX_IN and its decodes; the others
 * wait). A read that streams from the last proven checkpoint holds a few
 * windows only and takes no slot: it may take minutes. */
#define LP_INDEX_READ_MAX_CONCURRENT 2

/* OCI media types of the index blob and of the artifact that carries it */
#define LP_INDEX_MEDIA_TYPE "application/vnd.lazypull.gzip-index.v1"
#define LP_INDEX_ARTIFACT_TYPE LP_INDEX_MEDIA_TYPE
/*
 * The same index, one gzip member of its bytes (docs/format.md "gzip index
 * transport"): 40 % fewer bytes on the way (the windows are compressed
 * already, the file table and strings are not). The index is still the
 * uncompressed bytes: its digest (what a signature names, what a node keeps
 * it by) is theirs; the layer's digest and size only check the transfer.
 * Level 9: python3's 1,977,438-byte index gives 1,181,642 bytes (59.8 %),
 * level 6 1,185,090, level 1 1,202,575; 9 costs the push 172 ms of CPU
 * against 55 (6), and inflates no slower (4-6 ms).
 */
#define LP_INDEX_MEDIA_TYPE_GZIP LP_INDEX_MEDIA_TYPE "+gzip"
#define LP_INDEX_GZIP_LEVEL 9

enum lp_index_transport {
	LP_INDEX_TRANSPORT_PLAIN = 0, /* LP_INDEX_MEDIA_TYPE */
	LP_INDEX_TRANSPORT_GZIP = 1, /* LP_INDEX_MEDIA_TYPE_GZIP */
};

/*
 * lp_index_transport_of() - how an artifact layer of @media_type (NULL
 * allowed) carries an index: enum lp_index_transport, or -EOPNOTSUPP when
 * it is no index layer.
 */
int lp_index_transport_of(const char *media_type);

/*
 * lp_index_transport_encode() - @len bytes of index @data as an artifact
 * layer of transport @t (for LP_INDEX_TRANSPORT_GZIP one gzip member, level
 * LP_INDEX_GZIP_LEVEL, no name, no time: the same index gives the same
 * bytes) appended to @out. Returns 0, -EFBIG (@out's limit), -ENOMEM,
 * -EINVAL (zlib refused its parameters).
 */
int lp_index_transport_encode(enum lp_index_transport t, const void *data,
			      size_t len, struct lp_buf *out);

/*
 * lp_index_transport_decode() - the index an artifact layer of transport @t
 * carries (@data, @len bytes, from outside: its digest checked by whoever
 * fetched it) into *@ret_data (malloc'ed, the caller frees), at most @max
 * bytes: plain, a copy; gzip, exactly one gzip member inflated, never more
 * than @max + 1 bytes held (a gzip bomb stops there). Returns 0, or -EFBIG
 * (it inflates to more than @max), -EBADMSG (not one whole gzip member,
 * bytes after it), -ENOMEM, with @err saying which.
 */
int lp_index_transport_decode(enum lp_index_transport t, const void *data,
			      size_t len, size_t max, uint8_t **ret_data,
			      size_t *ret_len, struct lp_err *err);
/* annotation on the index blob's descriptor: the layer it indexes */
#define LP_INDEX_ANN_LAYER "dev.lazypull.gzip-index.layer"

enum lp_index_cp_kind {
	LP_INDEX_CP_DEFLATE = 0, /* inside a deflate stream: window + bits */
	LP_INDEX_CP_MEMBER = 1, /* a gzip member header starts here */
};

struct lp_index_checkpoint {
	uint64_t in; /* blob offset of the first whole unread byte */
	uint64_t out; /* uncompressed offset */
	uint8_t bits; /* bits of byte in-1 still to read (0..7) */
	uint8_t kind; /* enum lp_index_cp_kind */
	uint16_t window_raw; /* uncompressed window length (<= 32768) */
	uint32_t window_off,
		window_len; /* compressed, in the windows section */
	struct lp_digest span; /* sha256 of blob [span_start, next.in) */
};

struct lp_index_xattr {
	const char *name; /* NUL-terminated, borrowed from the index */
	const uint8_t *value;
	uint32_t len;
};

/* One tar entry; strings are borrowed from the index. */
struct lp_index_file {
	const char *path; /* normalised: no "./", no leading or trailing '/' */
	const char *link; /* link target ("" when none) */
	char type; /* tar typeflag: '0' '1' '2' '3' '4' '5' '6' */
	uint32_t mode; /* & 07777 */
	uint32_t uid, gid, dev_major, dev_minor;
	int64_t mtime;
	uint64_t hdr_off; /* uncompressed offset of its first header block */
	uint64_t data_off; /* of its payload (= end of its header blocks) */
	uint64_t size; /* payload bytes (regular files) */
	const struct lp_index_xattr *xattrs;
	uint32_t nr_xattrs;
};

struct lp_index;

/*
 * lp_index_parse() - parse and validate @len bytes of an index (copied).
 * Every count, offset and size is checked against the LP_INDEX_MAX_* bounds
 * and against each other (checkpoints strictly increasing and inside the
 * blob, spans within their bounds, files in stream order, inside the
 * uncompressed size and not overlapping, paths normalised and not too deep,
 * string references inside the strings section). Returns 0; -EBADMSG for a
 * malformed index, -EFBIG over a bound, -EOPNOTSUPP for another version
 * or a flag other than LP_INDEX_FLAG_GRAINS; @err says what and where. With
 * grain digests: the grain size within its bounds, and exactly one digest
 * per grain of every span (lp_index_grain()). Free with lp_index_free().
 */
int lp_index_parse(const void *data, size_t len, struct lp_index **ret_ix,
		   struct lp_err *err);
void lp_index_free(struct lp_index *ix); /* NULL allowed */

/* lp_index_serialise() - append the index's bytes, as parsed, to @out
 * (its grain digests included). */
int lp_index_serialise(const struct lp_index *ix, struct lp_buf *out);

uint64_t lp_index_blob_size(const struct lp_index *ix);
uint64_t lp_index_uncompressed_size(const struct lp_index *ix);
const struct lp_digest *lp_index_blob_digest(const struct lp_index *ix);
uint32_t lp_index_span_size(const struct lp_index *ix);
size_t lp_index_nr_checkpoints(const struct lp_index *ix);
const struct lp_index_checkpoint *lp_index_checkpoint(const struct lp_index *ix,
						      size_t i);
size_t lp_index_nr_files(const struct lp_index *ix);
const struct lp_index_file *lp_index_file(const struct lp_index *ix, size_t i);

/*
 * lp_index_lookup() - the file table entry for @path (normalised or with
 * "./" or "/" in front); the last one when the tar holds the path several
 * times, as extraction would leave it. Returns its index or -ENOENT.
 */
int lp_index_lookup(const struct lp_index *ix, const char *path);

/*
 * lp_index_checkpoint_verified() - whether a stream has proven checkpoint
 * @i a sound place to resume inflating (see the top of this file); reads
 * start only at such checkpoints. False for @i out of range.
 */
bool lp_index_checkpoint_verified(const struct lp_index *ix, size_t i);

/*
 * lp_index_trust() - the index is TRUSTED from now on (never undone): its
 * signature verified against a key the node trusts (lp_index_sig.h), so
 * every checkpoint is a place a read may start at, with one decode, as if
 * proven (lp_index_checkpoint_startable()); a mount (fs/inode.c
 * attrs_trusted()) also answers the attributes of its directories,
 * non-empty files and symlinks from the file table before their tar
 * headers are checked (docs/format.md, "What trusted changes"). Nothing
 * else changes: span digests are compared on every span, tar headers
 * against the file table before a file's bytes or a symlink's target, and
 * the proving pass (lp_index_prove()) still checks every claim. A
 * checkpoint is still *proven* only by a stream that reached it
 * (lp_index_checkpoint_verified()). Any thread; call before the index's
 * readers start for the whole mount to use it.
 */
void lp_index_trust(const struct lp_index *ix);
bool lp_index_trusted(const struct lp_index *ix);
/*
 * lp_index_checkpoint_startable() - whether a read may start at checkpoint
 * @i with one decode: proven, or the index trusted. False out of range.
 */
bool lp_index_checkpoint_startable(const struct lp_index *ix, size_t i);
/* lp_index_trusted_reads() - decodes of a trusted index that started at a
 * checkpoint no stream had proven then (stats and tests) */
uint64_t lp_index_trusted_reads(const struct lp_index *ix);

/* lp_index_span_of() - the span holding uncompressed offset @off: the last
 * checkpoint at or before it (offsets past the end: the last span) */
size_t lp_index_span_of(const struct lp_index *ix, uint64_t off);
/* lp_index_span_out_end() - the uncompressed offset where span @i ends */
uint64_t lp_index_span_out_end(const struct lp_index *ix, size_t i);

/*
 * lp_index_span_range() - the blob range [*ret_start, *ret_end) checkpoint
 * @i's span digest covers (what must be read to inflate from checkpoint i
 * to checkpoint i+1, or to the end of the blob).
 */
void lp_index_span_range(const struct lp_index *ix, size_t i,
			 uint64_t *ret_start, uint64_t *ret_end);

/*
 * Grain digests (docs/format.md): with grain size G, span @i's compressed
 * bytes (lp_index_span_range(): [start, end), the shared byte included)
 * are ceil((end - start) / G) grains, grain g being the span's bytes
 * [g * G, min((g + 1) * G, end - start)) counted from start; its digest is
 * their sha256. The parser checked that the index holds exactly one digest
 * per grain. Lookups are O(1); the digests are borrowed from the index.
 */
/* grain size of @ix's grain digests, 0 when it has none */
uint32_t lp_index_grain_size(const struct lp_index *ix);
/* grains of span @i (0 when the index has none or there is no span @i) */
size_t lp_index_nr_grains(const struct lp_index *ix, size_t i);
/* the digest of grain @g of span @i, NULL when there is none */
const struct lp_digest *lp_index_grain(const struct lp_index *ix, size_t i,
				       size_t g);

/* ---- the index as a TOC (the mount, format/index_toc.c) ----------- */

struct lp_toc;

/*
 * lp_index_toc() - a TOC (lp_toc.h) of @ix's file table, for mounting the
 * layer through the index: one entry per path (the last the tar holds),
 * and per regular file one chunk per span its data overlaps, whose blob
 * offset is the span's first byte (lp_index_span_range()) and whose inner
 * offset is where the file's piece starts in the span's output. The TOC
 * has no digests: the span digests vouch for the chunks (lp_chunk.h's
 * policy, lp_index_span_decode()). Refuses an index in which two spans
 * start at one byte, and one with a hardlink whose target path the tar
 * holds again after the link (or not before it): the TOC resolves links by
 * path, to the last entry, where extraction links the earlier one. Returns 0, -EBADMSG, -EFBIG (a bound of the TOC or a
 * span over a chunk's bounds), -ENOMEM; free with lp_toc_free().
 */
int lp_index_toc(const struct lp_index *ix, struct lp_toc **ret_toc,
		 struct lp_err *err);

/*
 * lp_index_span_at() - the span whose first compressed byte is at blob
 * offset @blob_off (a chunk of lp_index_toc()'s TOC names its span so), or
 * -ENOENT.
 */
int lp_index_span_at(const struct lp_index *ix, uint64_t blob_off);

/* ---- writing (the builder, converter/index_build.c) ---------------- */

struct lp_index_writer;

/*
 * lp_index_writer_new() - collect an index for a blob being read with
 * span target @span_size and grain digests of @grain_size bytes (0: none;
 * else a power of two in LP_INDEX_GRAIN_MIN..LP_INDEX_GRAIN_MAX, or
 * -EINVAL). Records are appended in stream order; nothing else is
 * validated until lp_index_writer_finish(), which parses its own output.
 */
int lp_index_writer_new(uint32_t span_size, uint32_t grain_size,
			struct lp_index_writer **ret_w);
void lp_index_writer_free(struct lp_index_writer *w); /* NULL allowed */
/* lp_index_writer_add_checkpoint() - @window (@window_raw bytes) is
 * compressed here; @cp's window fields are filled in. 0, -EFBIG, -ENOMEM. */
int lp_index_writer_add_checkpoint(struct lp_index_writer *w,
				   const struct lp_index_checkpoint *cp,
				   const uint8_t *window);
/* lp_index_writer_set_span() - the span digest of the last checkpoint. */
void lp_index_writer_set_span(struct lp_index_writer *w,
			      const struct lp_digest *d);
/* lp_index_writer_add_grain() - the digest of the next grain, in order:
 * span 0's grains, then span 1's, ... (the grain size given to _new()).
 * 0, -EFBIG, -ENOMEM. */
int lp_index_writer_add_grain(struct lp_index_writer *w,
			      const struct lp_digest *d);
/* lp_index_writer_add_file() - @f's strings and xattrs are copied. */
int lp_index_writer_add_file(struct lp_index_writer *w,
			     const struct lp_index_file *f);
/*
 * lp_index_writer_finish() - the serialised index for a blob of @blob_size
 * bytes with digest @blob_digest and @usize uncompressed bytes, into @out
 * (appended). Returns 0 or -errno with @err set.
 */
int lp_index_writer_finish(struct lp_index_writer *w, uint64_t blob_size,
			   const struct lp_digest *blob_digest, uint64_t usize,
			   struct lp_buf *out, struct lp_err *err);

/* ---- reading through the index ------------------------------------- */

struct lp_index_stream;

/* what a stream fetched and inflated (for stats and tests) */
struct lp_index_stream_stats {
	uint64_t bytes_fetched; /* compressed bytes read from the blob */
	uint64_t spans; /* spans fetched and verified */
	uint64_t bytes_inflated; /* uncompressed bytes produced */
	/* lp_index_read(): reads that had to look further back than their
	 * own span (the window rule) */
	uint64_t window_rereads;
};

/*
 * lp_index_stream_open() - a stream of the layer's uncompressed bytes from
 * @off, reading @blob (which must be the blob @ix indexes: its size is
 * checked; its identity is the caller's to check against
 * lp_index_blob_digest()). It starts at the last proven checkpoint at or
 * before @off (lp_index_checkpoint_verified()) and inflates from there,
 * proving every checkpoint it passes; never more than the layer. Takes a
 * reference on @blob. Returns 0, -ERANGE (@off past the end),
 * -EBADMSG, or -errno.
 */
int lp_index_stream_open(const struct lp_index *ix, struct lp_blob *blob,
			 uint64_t off, struct lp_index_stream **ret_s,
			 struct lp_err *err);
/*
 * lp_index_stream_read() - the next @len uncompressed bytes into @buf. Each
 * span is fetched whole and its sha256 compared with the index before a
 * byte of it is inflated; at the end of a span inflate must stand exactly
 * where the next checkpoint says (offset, bit offset or member start,
 * window), and that checkpoint is then proven; anything else is refused. Returns 0, -ERANGE (past the end), -EBADMSG
 * (digest mismatch, corrupt deflate data), or the blob's -errno.
 */
int lp_index_stream_read(struct lp_index_stream *s, void *buf, size_t len,
			 struct lp_err *err);
/* lp_index_stream_skip() - drop the next @len bytes (inflated, verified). */
int lp_index_stream_skip(struct lp_index_stream *s, uint64_t len,
			 struct lp_err *err);
uint64_t lp_index_stream_pos(const struct lp_index_stream *s);
void lp_index_stream_stats(const struct lp_index_stream *s,
			   struct lp_index_stream_stats *ret);
void lp_index_stream_free(struct lp_index_stream *s); /* NULL allowed */

/*
 * lp_index_span_decode() - the span decoder of random-access readers (the
 * mount: one chunk is one file's piece of one span). @src must be exactly
 * span @i's compressed bytes (lp_index_span_range(): two neighbouring spans
 * share a byte when a checkpoint falls inside one). Their sha256 is
 * compared with the span digest before a byte is inflated (the digest
 * policy's span rule, lp_chunk.h); then inflating starts at checkpoint @i
 * (its bit offset and window, or a gzip member header), discards @skip
 * bytes and writes the next @dst_len to @dst. The same decode path as the
 * stream above.
 *
 * The window rule: checkpoint @i's window comes from the index alone until
 * a stream from a proven checkpoint has reached @i and compared it
 * (lp_index_checkpoint_verified()). Until then the piece is decoded twice,
 * with the index's window and with every byte of it flipped, and served
 * only when both agree: then no byte of it depends on the window (inflate
 * copies window bytes unchanged, so a byte that derives from one comes out
 * flipped). Otherwise -EAGAIN: read it with lp_index_read().
 *
 * Returns 0; -EAGAIN (the piece depends on a window not proven; @dst
 * zeroed); -ERANGE when @skip + @dst_len passes the span's end or there is
 * no span @i; -EBADMSG (wrong length, digest mismatch, corrupt deflate
 * data, a window that does not decompress); -ENOMEM.
 */
int lp_index_span_decode(const struct lp_index *ix, size_t i, const void *src,
			 size_t src_len, uint64_t skip, void *dst,
			 size_t dst_len, struct lp_err *err);

/*
 * lp_index_span_inflater_*() - span @i inflated as its compressed bytes
 * come (lp_index_span_get_stream()), for a reader that may start at its
 * checkpoint (proven, or the index trusted: lp_index_checkpoint_startable()
 * says so; _new() refuses others with -EAGAIN). feed() takes the span's
 * next bytes, verified (from its first, lp_index_span_range()) and
 * appends what they inflate to (at most @cap - *@done bytes: the span's
 * output ends there) to @out + *@done. _end() says whether the span's
 * bytes, all fed, inflated to exactly @cap bytes (-EBADMSG otherwise).
 * feed() returns 0, -EBADMSG (corrupt deflate data: the index lies about
 * the checkpoint, as the span's bytes were verified), -ENOMEM, -EINVAL.
 */
struct lp_index_span_inflater;
int lp_index_span_inflater_new(const struct lp_index *ix, size_t i,
			       struct lp_index_span_inflater **ret,
			       struct lp_err *err);
int lp_index_span_inflater_feed(struct lp_index_span_inflater *f,
				const uint8_t *src, size_t len, uint8_t *out,
				size_t cap, size_t *done, struct lp_err *err);
int lp_index_span_inflater_end(struct lp_index_span_inflater *f, size_t done,
			       size_t cap, struct lp_err *err);
void lp_index_span_inflater_free(struct lp_index_span_inflater *f);

/*
 * lp_index_read() - the layer's uncompressed bytes [@off, @off + @len) into
 * @buf from @blob (the blob @ix indexes), as cheaply as the window rule
 * allows: from the span holding @off (lp_index_span_decode()'s check), and
 * where those bytes depend on an unproven window, from a checkpoint
 * LP_INDEX_READ_BACK_FIRST bytes before @off (at least a span back), then
 * twice as far, and so on up to LP_INDEX_READ_BACK_MAX (each step fetches
 * the spans in between and inflates twice), or to a proven checkpoint,
 * where one decode is enough and proves every checkpoint it passes. Past
 * that bound, a stream from the last proven checkpoint
 * (lp_index_stream_open()). Why not stream at once: a small cold read deep
 * in a layer would fetch the layer up to it, and bytes a few MiB on seldom
 * depend on any window. @span_src (@span_len bytes, NULL for none) may be the caller's
 * copy of the span holding @off, read already. @proven_only: no read from
 * an unproven checkpoint at all (the stream at once, unless the span
 * holding @off is proven; while a proving pass, lp_index_prove(), runs at
 * or past where that stream would start, it waits for the pass to prove
 * the span instead, and streams itself if the pass ends first). Every
 * span is read through the span cache. A trusted index (lp_index_trust())
 * reads from the span holding @off with one decode, proven or not, and
 * never waits for the pass. @stats (NULL allowed) is added to. Returns 0, -ERANGE past the end, -EBADMSG (a span digest, a
 * checkpoint or the data disagree), -ENOMEM, or the blob's -errno.
 */
int lp_index_read(const struct lp_index *ix, struct lp_blob *blob, uint64_t off,
		  void *buf, size_t len, const void *span_src, size_t span_len,
		  bool proven_only, struct lp_index_stream_stats *stats,
		  struct lp_err *err);

/* ---- spans, and the span cache (format/index_spans.c) ------------- */

/* one span's compressed bytes, verified against its span digest */
struct lp_index_span;

/*
 * lp_index_span_get() - span @i's exact compressed bytes
 * (lp_index_span_range(): the byte it shares with the span before it
 * included), fetched from @blob (the blob @ix indexes) and their sha256
 * compared with the span digest: a span that does not match is -EBADMSG,
 * never handed out and never cached. With the span cache on
 * (lp_index_span_cache_limit()) a span held there is handed out without a
 * fetch, and while one thread fetches a span the others that want it wait
 * for that fetch and take its result, the span or the error, held or not
 * (single flight). Every index reader fetches through here.
 * The bytes fetched (not the hits) are added to @st (NULL allowed).
 * Returns 0 with a pinned span (drop it with lp_index_span_put()), -ERANGE
 * (no span @i), -EBADMSG, -ENOMEM, or the blob's -errno (-EBADMSG and
 * -ERANGE from the blob become -EIO: a source that fails is no lie of the
 * index).
 */
int lp_index_span_get(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		      struct lp_index_span **ret_sp,
		      struct lp_index_stream_stats *st, struct lp_err *err);
/*
 * lp_index_span_get_stream() - lp_index_span_get() that, when this call
 * fetches the span from the blob and the index has grain digests
 * (lp_index_grain_size()), calls @fn(@arg, data, verified) each time the
 * span's verified prefix data[0, verified) grows: each grain is compared
 * with its digest as soon as all of it has come (one request for the
 * whole span), so that a reader can use the span's first bytes while the
 * rest is on its way. A grain that does not match stops the fetch with
 * -EBADMSG and is never reported. The whole span's digest is compared at
 * the end as by lp_index_span_get(), and the span lands in the cache the
 * same way. No call of @fn at all when the span came from the cache, the
 * store or another thread's fetch, or the index has no grains: the span
 * is then whole on return. @fn returns 0 to go on, or -errno to stop the
 * fetch (which then fails with it).
 */
typedef int (*lp_index_span_progress_fn)(void *arg, const uint8_t *data,
					 size_t verified);
int lp_index_span_get_stream(const struct lp_index *ix, struct lp_blob *blob,
			     size_t i, lp_index_span_progress_fn fn, void *arg,
			     struct lp_index_span **ret_sp,
			     struct lp_index_stream_stats *st,
			     struct lp_err *err);
/*
 * lp_index_span_reserve() - the caller will fetch span @i: every other
 * fetch of it (a reader's, the pass's and its read-ahead's) waits for the
 * caller's (single flight) from now on, before the caller's fetch begins.
 * Returns 1 (reserved: fetch it with lp_index_span_get_claimed_stream(),
 * or give it up with lp_index_span_unreserve()), or -errno, not reserved
 * (-ENOENT the cache is off, -EEXIST the span is held or a fetch of it
 * runs, -ENOMEM).
 * lp_index_span_unreserve() - give up reserved span @i unfetched, before
 * anyone can wait for it (its waiters would get @r, with @err or a
 * message saying it was given up, as from a failed fetch).
 * lp_index_span_get_claimed_stream() - lp_index_span_get_stream() of
 * reserved span @i: fetched (or read from the store) and landed in the
 * cache, its waiters told, in every case.
 */
int lp_index_span_reserve(const struct lp_index *ix, size_t i);
void lp_index_span_unreserve(const struct lp_index *ix, size_t i, int r,
			     const struct lp_err *err);
int lp_index_span_get_claimed_stream(const struct lp_index *ix,
				     struct lp_blob *blob, size_t i,
				     lp_index_span_progress_fn fn, void *arg,
				     struct lp_index_span **ret_sp,
				     struct lp_index_stream_stats *st,
				     struct lp_err *err);
/*
 * lp_index_span_uncached() - the span cache of @ix is on and holds span
 * @i neither in memory nor in its store: a get would fetch it (a hint).
 */
bool lp_index_span_uncached(const struct lp_index *ix, size_t i);
/* lp_index_span_put() - drop a span from lp_index_span_get() (NULL allowed) */
void lp_index_span_put(struct lp_index_span *sp);
/*
 * lp_index_span_read_elsewhere() - a reader (not the pass) got bytes of
 * the layer without a lp_index_span_get() (from a span decoded whole that
 * its owner keeps): the layer is being read, so the pass's spans stay when
 * it ends, as they do after a reader's get (lp_index_prove()).
 */
void lp_index_span_read_elsewhere(const struct lp_index *ix);
/* the span's bytes (valid until its put) and their count */
const uint8_t *lp_index_span_data(const struct lp_index_span *sp);
size_t lp_index_span_len(const struct lp_index_span *sp);

/*
 * lp_index_span_cache_limit() - turn the span cache of @ix on with room for
 * @max_bytes of spans (the least recently used leaves first; a span larger
 * than that is never held), or off with 0 (the default: every get
 * fetches). Any thread; the index's readers see the change at their next
 * get. Returns 0 or -ENOMEM.
 */
int lp_index_span_cache_limit(const struct lp_index *ix, size_t max_bytes);

/*
 * lp_index_span_cache_budget() - charge the spans the cache of @ix holds to
 * a memory budget shared with other caches (fs/ joins each index mount's
 * span cache to the process's lp_fs_budget), or to none with NULL. Every
 * span held is dropped first. Call when no other thread uses @ix (before
 * its mount starts, after it stops). The hooks:
 * - reserve(): charge @bytes before a span is held, making room (it may
 *   call lp_index_span_cache_shrink() of this or any index); called with
 *   no lock of the cache held;
 * - enforce(): after a charged span went in, evict while over (no lock);
 * - release(): uncharge @bytes the cache dropped by itself (its limit, the
 *   proving pass's end, the cache turned off); may be called with the
 *   cache's lock held: must take no lock that is held around a shrink;
 * - stamp(): the budget's clock, a use now (with the cache's lock held);
 * - cold(): the stamp of the coldest span held now, UINT64_MAX for none
 *   (with the cache's lock held; a store).
 * The limit set with lp_index_span_cache_limit() still bounds this cache.
 * Returns 0 or -ENOMEM.
 */
struct lp_index_span_budget {
	void *arg;
	void (*reserve)(void *arg, size_t bytes);
	void (*enforce)(void *arg);
	void (*release)(void *arg, size_t bytes);
	uint64_t (*stamp)(void *arg);
	void (*cold)(void *arg, uint64_t stamp);
};
int lp_index_span_cache_budget(const struct lp_index *ix,
			       const struct lp_index_span_budget *b);

/*
 * lp_index_span_cache_shrink() - for the budget: drop the least recently
 * used spans of @ix (those only the proving pass used first) until @want
 * bytes are freed, after the first no span used later than @upto; spans a
 * reader holds only if @pinned (their memory goes with the reader's put).
 * Returns the bytes dropped, which the caller uncharges (not release()).
 */
size_t lp_index_span_cache_shrink(const struct lp_index *ix, uint64_t upto,
				  size_t want, bool pinned);

/*
 * lp_index_span_cache_store() - a persistent tier under the span cache of
 * @ix (fs/ gives each index mount with a cache directory one: a file per
 * layer, fs/span_disk.c), or none with NULL. Call when no other thread
 * uses @ix. A span not held in memory is looked for there before the
 * blob: has() says whether span @i may be there (a hint, no I/O), load()
 * reads its exact bytes (blob range [@off, @off + @len)) into @buf, 0 or
 * -errno; what load() gives is compared with the span digest again, and a
 * mismatch is a miss (fetched from the blob, saved again), never a byte
 * served. save() is handed a reference on a span just verified from the
 * blob (the hook drops it with lp_index_span_put()), after the span was
 * published to every reader waiting for it; it must not block on I/O (it
 * queues). None of them is called with the cache's lock held.
 */
struct lp_index_span_store {
	void *arg;
	bool (*has)(void *arg, size_t i);
	int (*load)(void *arg, size_t i, uint64_t off, void *buf, size_t len);
	void (*save)(void *arg, struct lp_index_span *sp, uint64_t off);
};
void lp_index_span_cache_store(const struct lp_index *ix,
			       const struct lp_index_span_store *s);
/* lp_index_span_nr() - which span @sp is (its checkpoint's index) */
size_t lp_index_span_nr(const struct lp_index_span *sp);

struct lp_index_span_cache_stats {
	uint64_t hits; /* gets answered from the cache */
	/* spans read back from the store (lp_index_span_cache_store()) and
	 * matching their digest, and those that did not (then fetched) */
	uint64_t disk_hits, disk_bad;
	/* the proving pass's read-ahead (lp_index_prove()): blob requests,
	 * and the spans they brought */
	uint64_t pass_requests, pass_spans;
	uint64_t fetches, fetched_bytes; /* spans fetched and verified */
	uint64_t waits; /* gets that waited for another's fetch */
	uint64_t evictions; /* spans dropped to stay within the limit */
	/* proven-only reads that waited for the proving pass to prove their
	 * span instead of streaming there themselves */
	uint64_t pass_waits;
	uint64_t held_bytes; /* span bytes held now */
};
void lp_index_span_cache_stats(const struct lp_index *ix,
			       struct lp_index_span_cache_stats *ret);

/* ---- the proving pass (format/index_prove.c) ----------------------- */

/* The proving pass's read-ahead (format/index_pass_fetch.c): blob requests
 * of up to LP_INDEX_PASS_REQ_MAX bytes (whole spans, as many as fit, at
 * least one), LP_INDEX_PASS_REQUESTS of them in flight, and at most
 * LP_INDEX_PASS_AHEAD_MAX bytes fetched ahead of the pass (in flight or
 * not yet taken), or the span cache's limit when that is smaller: the pass
 * runs at the link's rate instead of one round trip per span. */
#define LP_INDEX_PASS_REQ_MAX (2 * LP_MIB)
#define LP_INDEX_PASS_REQUESTS 2
#define LP_INDEX_PASS_AHEAD_MAX (16 * LP_MIB)

/* checks file table entry @i against its tar header blocks (@len bytes at
 * @hdr): lp_index_check_header() in converter/, which has the tar reader */
typedef int (*lp_index_header_check_fn)(const struct lp_index *ix, size_t i,
					const uint8_t *hdr, size_t len,
					struct lp_err *err);
/* true: stop the pass (asked between steps of at most a few MiB) */
typedef bool (*lp_index_stop_fn)(void *arg);

/*
 * lp_index_prove() - read the whole layer from @blob once, in order from
 * its first byte, and check all the index says against it: every
 * checkpoint (which becomes proven as the stream passes it), every span
 * digest, the file table (each entry's header blocks with @check; the
 * entries back to back, with nothing between them but root entries that
 * are not directories, which the builder leaves out, and nothing after
 * the last but zeros), and the sha256 of the whole blob against
 * lp_index_blob_digest(). @stop (NULL: never) is asked between steps.
 * Proven-only lp_index_read()s of @ix may wait for it meanwhile, and the
 * spans it reads go through the span cache, for them: held cold (the first
 * to leave) unless a reader waits for or uses one, and dropped when the
 * pass ends if no reader got a span while it ran, so a layer nobody reads
 * holds no span after its pass.
 * @stats (NULL allowed) is added to. Returns 0 (the index is true of this
 * blob); -EBADMSG (a lie, @err says which); -ECANCELED (stopped); -ENOMEM;
 * or the blob's -errno (nothing known about the index).
 */
int lp_index_prove(const struct lp_index *ix, struct lp_blob *blob,
		   lp_index_header_check_fn check, lp_index_stop_fn stop,
		   void *arg, struct lp_index_stream_stats *stats,
		   struct lp_err *err);

/*
 * What the proving pass tells its caller as it goes (lp_index_prove_with()),
 * so that readers need not do its work again. Each hook runs on the pass's
 * thread; @arg is theirs. NULL hooks are not called.
 */
struct lp_index_prove_hooks {
	lp_index_stop_fn stop; /* as lp_index_prove()'s @stop */
	/* file table entry @i's header blocks were checked (@check) and
	 * found true, in the stream from the blob's first byte */
	void (*checked)(void *arg, size_t i);
	/* span @i's whole output (uncompressed [checkpoint i's out, the next
	 * one's)), @len bytes at @out (borrowed for the call), inflated by
	 * the pass from the blob's first byte through spans whose digests
	 * matched: the layer's bytes there, as a decode from proven
	 * checkpoint @i gives them. Not told for spans whose output is over
	 * @decoded_max bytes. */
	void (*decoded)(void *arg, size_t i, const uint8_t *out, size_t len);
	size_t decoded_max;
	void *arg;
};

/*
 * lp_index_wait_prover() - for a proven-only read of span @i (or, with @i
 * the checkpoint after a span, for that span's whole output, which the
 * pass tells lp_index_prove_hooks.decoded before it proves @i): while a
 * pass runs, stands at or past the last proven checkpoint before @i (so it
 * will reach @i no later than a stream of the reader's own) and @i is not
 * proven, wait. Returns whether @i is proven (else: stream yourself).
 */
bool lp_index_wait_prover(const struct lp_index *ix, size_t i);
/* lp_index_prover_waiters() - the readers waiting in lp_index_wait_prover()
 * now (a proving pass that would wait for readers should not). */
unsigned int lp_index_prover_waiters(const struct lp_index *ix);

/* lp_index_prove_with() - lp_index_prove() telling @hooks (NULL: none) */
int lp_index_prove_with(const struct lp_index *ix, struct lp_blob *blob,
			lp_index_header_check_fn check,
			const struct lp_index_prove_hooks *hooks,
			struct lp_index_stream_stats *stats,
			struct lp_err *err);

#endif /* LP_INDEX_H */
