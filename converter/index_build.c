// SPDX-License-Identifier: Apache-2.0
/*
 * Building a gzip layer's seekable index in one streaming pass (zran's
 * technique, zlib's examples/zran.c): at the first deflate block boundary
 * after each span_size uncompressed bytes record a checkpoint (compressed
 * offset, the bits of the last byte not yet read, uncompressed offset, the
 * 32 KiB window); hash every compressed byte into the digest of the span
 * it belongs to (a byte split between two spans into both). The inflated
 * bytes feed the converter's tar reader through a callback, so the file
 * table's offsets are the tar reader's own positions. Concatenated gzip
 * members are followed (a checkpoint at a member start needs no window);
 * zero padding after the last member is accepted, other trailing bytes
 * are not.
 *
 * Speed (the build is one core's work, docs/benchmarks.md): a member's
 * header is zlib's to read (and its CRC16, FHCRC, to check); its deflate
 * data is lp_inflate's (format/lp_inflate.h), which decodes about twice
 * as fast as zlib and stops at the first block boundary past the span,
 * where zlib had to stop at every boundary near it (Z_BLOCK); the tar
 * reader reads the decoder's own buffer. The gzip CRC32 is ISA-L's
 * (carry-less multiply) over the output, checked with the length against
 * each member's trailer. The span's and the blob's sha256 are two OpenSSL
 * streams (lp_sha256), after a vzeroupper (upper_clear()); the grain
 * digests (lp_index_grain()) a third, finalised at every grain-size
 * boundary counted from the span's first byte (the shared byte included)
 * and at the span's end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <isa-l/crc.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "convert_int.h"
#include "lp_indexer.h"
#include "lp_inflate.h"

#define IN_BUF (1024 * 1024)
#define GZIP_TRAILER 8

struct builder {
	int fd;
	uint64_t span_size;
	z_stream z; /* reads the members' headers */
	bool z_live;
	struct lp_inflate d; /* decodes the members' deflate data */
	bool d_live;
	uint8_t *in; /* IN_BUF: unread input from in_next to in_end */
	const uint8_t *in_next, *in_end;
	/* the decoder's output from `mark` to d.out is not yet the tar
	 * reader's; slide: the decoder's buffer is full */
	uint8_t *mark;
	bool slide;
	bool eof; /* the fd is read to its end */
	bool done; /* every input byte consumed */
	bool in_member; /* inside a gzip member (else between members) */
	bool zero_tail; /* zero padding after the last member seen */
	bool in_header; /* the member's gzip header is being read */
	bool in_trailer; /* its deflate data ended: the trailer is next */
	bool avx; /* the CPU has AVX: see upper_clear() */
	uint32_t crc, isize; /* of the member's output so far */
	uint8_t tail[GZIP_TRAILER]; /* the last bytes consumed */
	uint64_t totin, totout;
	uint64_t member_out; /* totout at the member's start */
	uint64_t last_cp_out;
	uint8_t last_byte;
	struct lp_sha256 *blob_sha, *span_sha; /* blob_sha: no verified */
	/* the grain being hashed (NULL: no grain digests) and its bytes so
	 * far, < grain_size */
	struct lp_sha256 *grain_sha;
	uint32_t grain_size, grain_fill;
	struct lp_index_writer *w;
	int error; /* first error from the read callback */
	struct lp_err *err;
};

/* the grain being hashed is complete (full, or its span ends) */
static int grain_end(struct builder *b)
{
	struct lp_digest d;
	int r;

	lp_sha256_final(b->grain_sha, &d);
	b->grain_fill = 0;
	r = lp_index_writer_add_grain(b->w, &d);
	if (r < 0)
		return lp_err_set(b->err, r,
				  "gzip index: grain digests over %llu bytes",
				  (unsigned long long)LP_INDEX_MAX_SIZE);
	return 0;
}

/* @n bytes of the span at @p into its grains */
static int grain_feed(struct builder *b, const uint8_t *p, size_t n)
{
	int r = 0;

	while (n && r == 0) {
		size_t take = b->grain_size - b->grain_fill;

		if (take > n)
			take = n;
		lp_sha256_update(b->grain_sha, p, take);
		b->grain_fill += (uint32_t)take;
		p += take;
		n -= take;
		if (b->grain_fill == b->grain_size)
			r = grain_end(b);
	}
	return r;
}

/* the span ends: its last grain, unless it ended on a grain boundary */
static int grain_span_end(struct builder *b)
{
	return b->grain_sha && b->grain_fill ? grain_end(b) : 0;
}

static int consumed(struct builder *b, const uint8_t *p, size_t n)
{
	if (!n)
		return 0;
	if (b->blob_sha)
		lp_sha256_update(b->blob_sha, p, n);
	lp_sha256_update(b->span_sha, p, n);
	b->totin += n;
	b->last_byte = p[n - 1];
	/* a member's trailer is the last 8 bytes inflate consumed when it
	 * ends: it consumes no byte it does not need */
	if (n >= GZIP_TRAILER) {
		memcpy(b->tail, p + n - GZIP_TRAILER, GZIP_TRAILER);
	} else {
		memmove(b->tail, b->tail + n, GZIP_TRAILER - n);
		memcpy(b->tail + GZIP_TRAILER - n, p, n);
	}
	return b->grain_sha ? grain_feed(b, p, n) : 0;
}

#if defined(__x86_64__)
__attribute__((target("avx"))) static void avx_zeroupper(void)
{
	_mm256_zeroupper();
}
#endif

/*
 * After ISA-L's CRC: it leaves the upper halves of the vector registers
 * dirty (AVX-512 without a vzeroupper), and until they are cleared every
 * legacy SSE instruction pays for them: OpenSSL's sha256 (its SHA-NI
 * code, which has no VEX form) took 107 against 82 ms per build of the
 * python3 layer without and with this (docs/benchmarks.md).
 */
static void upper_clear(const struct builder *b)
{
#if defined(__x86_64__)
	if (b->avx)
		avx_zeroupper();
#else
	(void)b;
#endif
}

/* the layer's bytes are not gzip: @why, at byte @at */
static int not_gzip(struct builder *b, uint64_t at, const char *why)
{
	return lp_err_set(b->err, -EINVAL,
			  "the layer is not valid gzip (at byte %llu): %s",
			  (unsigned long long)at, why);
}

/* the input ended inside a member */
static int cut_off(struct builder *b)
{
	return lp_err_set(b->err, -EINVAL,
			  "the layer's gzip stream is cut off at byte %llu",
			  (unsigned long long)b->totin);
}

/* the trailer of the member that just ended against its output */
static int check_trailer(struct builder *b)
{
	if (lp_get_le32(b->tail) != b->crc)
		return not_gzip(b, b->totin - 4, "incorrect data check");
	if (lp_get_le32(b->tail + 4) != b->isize)
		return not_gzip(b, b->totin, "incorrect length check");
	return 0;
}

/* a new member's header follows */
static void member_start(struct builder *b)
{
	b->in_header = true;
	b->crc = 0;
	b->isize = 0;
}

static int add_checkpoint(struct builder *b, uint8_t kind, uint8_t bits)
{
	struct lp_index_checkpoint cp = { 0 };
	const uint8_t *window = NULL;
	size_t wlen = 0;
	struct lp_digest d;
	int r;

	if (kind == LP_INDEX_CP_DEFLATE) {
		wlen = lp_inflate_window(&b->d, &window);
		if (wlen == 0)
			return 0; /* nothing to resume from: no checkpoint */
	}
	lp_sha256_final(b->span_sha, &d);
	lp_index_writer_set_span(b->w, &d);
	r = grain_span_end(b);
	if (r < 0)
		return r;
	cp.in = b->totin;
	cp.out = b->totout;
	cp.bits = bits;
	cp.kind = kind;
	cp.window_raw = (uint16_t)wlen;
	r = lp_index_writer_add_checkpoint(b->w, &cp, window);
	if (r < 0)
		return lp_err_set(b->err, r,
				  "gzip index: too many checkpoints (over %u)",
				  LP_INDEX_MAX_CHECKPOINTS);
	b->last_cp_out = b->totout;
	if (!bits)
		return 0;
	/* the byte split between the spans is the next one's first */
	lp_sha256_update(b->span_sha, &b->last_byte, 1);
	return b->grain_sha ? grain_feed(b, &b->last_byte, 1) : 0;
}

static bool span_due(const struct builder *b)
{
	return b->totout - b->last_cp_out >= b->span_size;
}

/* where the decoder is to stop next: the first boundary that is due */
static void set_stop(struct builder *b)
{
	uint64_t due = b->last_cp_out + b->span_size;

	b->d.stop_out = due > b->member_out ? due - b->member_out : 0;
}

/* more input behind what is left (under LP_INFLATE_MARGIN bytes, or a
 * trailer's 8: the read always has room); eof at the file's end */
static int read_more(struct builder *b)
{
	size_t left = (size_t)(b->in_end - b->in_next);
	ssize_t n;

	memmove(b->in, b->in_next, left);
	b->in_next = b->in;
	b->in_end = b->in + left;
	n = read(b->fd, b->in + left, IN_BUF - left);
	if (n < 0)
		return lp_err_set(b->err, -errno, "reading the layer");
	if (n == 0)
		b->eof = true;
	b->in_end += n;
	return 0;
}

/* @n input bytes from in_next are consumed */
static int advance(struct builder *b, size_t n)
{
	const uint8_t *p = b->in_next;

	b->in_next += n;
	return consumed(b, p, n);
}

/* between members: zero padding, or the next member's start */
static int between(struct builder *b)
{
	int r;

	if (b->in_next[0] == 0 || b->zero_tail) {
		size_t n = 0, left = (size_t)(b->in_end - b->in_next);

		while (n < left && b->in_next[n] == 0)
			n++;
		if (n == 0)
			return lp_err_set(b->err, -EINVAL,
					  "the layer has bytes after its gzip "
					  "data (at %llu)",
					  (unsigned long long)b->totin);
		b->zero_tail = true;
		return advance(b, n);
	}
	if (b->totin > 0) {
		if (inflateReset(&b->z) != Z_OK)
			return lp_err_set(b->err, -EINVAL,
					  "gzip member at byte %llu: cannot "
					  "reset inflate",
					  (unsigned long long)b->totin);
		if (span_due(b) && b->totout > b->last_cp_out) {
			r = add_checkpoint(b, LP_INDEX_CP_MEMBER, 0);
			if (r < 0)
				return r;
		}
	}
	b->in_member = true;
	member_start(b);
	return 0;
}

/* the member's gzip header, by zlib: it stops where the deflate data
 * starts (Z_BLOCK), where the decoder takes over */
static int header(struct builder *b)
{
	uint8_t none;
	uInt left = (uInt)(b->in_end - b->in_next);
	int zr;

	b->z.next_in = (Bytef *)b->in_next;
	b->z.avail_in = left;
	b->z.next_out = &none;
	b->z.avail_out = 0;
	zr = inflate(&b->z, Z_BLOCK);
	if (zr != Z_OK && zr != Z_BUF_ERROR)
		return not_gzip(b, b->totin,
				b->z.msg ? b->z.msg : "bad member header");
	if (b->z.data_type & 128) {
		b->in_header = false;
		lp_inflate_reset(&b->d);
		b->member_out = b->totout;
		set_stop(b);
	}
	return advance(b, left - b->z.avail_in);
}

/* the member's 8-byte trailer, once it is all in */
static int trailer(struct builder *b)
{
	int r;

	if (b->in_end - b->in_next < GZIP_TRAILER)
		return b->eof ? cut_off(b) : read_more(b);
	r = advance(b, GZIP_TRAILER);
	if (r < 0)
		return r;
	b->in_trailer = false;
	b->in_member = false;
	return check_trailer(b);
}

/* the member's deflate data, up to a stop of the decoder */
static int body(struct builder *b)
{
	struct lp_err derr = { 0 };
	uint8_t *out = b->d.out;
	size_t got;
	int rc, r;

	b->d.next_in = b->in_next;
	b->d.end_in = b->in_end;
	b->d.last_in = b->eof;
	rc = lp_inflate_run(&b->d, &derr);
	r = advance(b, (size_t)(b->d.next_in - b->in_next));
	if (rc < 0)
		return not_gzip(b, b->totin, derr.msg);
	if (r < 0)
		return r;
	got = (size_t)(b->d.out - out);
	b->totout += got;
	if (got) {
		b->crc = crc32_gzip_refl(b->crc, out, got);
		upper_clear(b);
		b->isize += (uint32_t)got;
	}
	switch (rc) {
	case LP_INFLATE_INPUT:
		r = read_more(b);
		break;
	case LP_INFLATE_FULL:
		b->slide = true;
		break;
	case LP_INFLATE_BOUNDARY:
		/* due (set_stop()); no window yet: at the next one */
		r = add_checkpoint(b, LP_INDEX_CP_DEFLATE,
				   (uint8_t)b->d.bitcnt);
		set_stop(b);
		break;
	case LP_INFLATE_END:
		b->in_trailer = true;
		break;
	}
	if (r < 0)
		return r;
	if (b->totout - b->last_cp_out > LP_INDEX_MAX_SPAN_OUT)
		return lp_err_set(b->err, -EFBIG,
				  "the layer has no deflate block boundary "
				  "within %llu bytes: cannot index it",
				  (unsigned long long)LP_INDEX_MAX_SPAN_OUT);
	return 0;
}

/* one step: read input when needed, then the part of the stream due */
static int step(struct builder *b)
{
	if (b->in_next == b->in_end) {
		int r = b->eof ? 0 : read_more(b);

		if (r < 0)
			return r;
		if (b->in_next == b->in_end) {
			if (b->eof && (b->in_member || b->totin == 0))
				return cut_off(b);
			if (b->eof)
				b->done = true;
			return 0;
		}
	}
	if (!b->in_member)
		return between(b);
	if (b->in_header)
		return header(b);
	if (b->in_trailer)
		return trailer(b);
	return body(b);
}

/* output the tar reader has not had, at @p (n > 0), or none at the end */
static int produce(struct builder *b, const uint8_t **p, size_t *n)
{
	int r = 0;

	while (b->mark == b->d.out && !b->done && r == 0) {
		if (b->slide) {
			lp_inflate_slide(&b->d);
			b->mark = b->d.out;
			b->slide = false;
		}
		r = step(b);
	}
	*p = b->mark;
	*n = (size_t)(b->d.out - b->mark);
	b->mark = b->d.out;
	return r;
}

static ssize_t tar_read(void *ctx, const void **buf)
{
	struct builder *b = ctx;
	const uint8_t *p;
	size_t n = 0;
	int r;

	r = produce(b, &p, &n);
	if (r < 0) {
		b->error = r;
		return r;
	}
	*buf = p;
	return (ssize_t)n;
}

static int add_entry(struct builder *b, struct lp_cv_reader *rd,
		     const struct lp_cv_entry *e)
{
	struct lp_index_file f = { 0 };
	struct lp_index_xattr *xs = NULL;
	char *path = NULL, *link = NULL;
	uint32_t k;
	int r;

	r = lp_cv_reader_offsets(rd, &f.hdr_off, &f.data_off);
	if (r < 0)
		return lp_err_set(
			b->err, r, "%s: %s: a gzip index cannot describe it",
			e->name,
			r == -EOPNOTSUPP ? "sparse file" : "no stream offset");
	path = lp_cv_clean_name(e->name);
	link = e->typeflag == '1' ? lp_cv_clean_name(e->link_name) :
				    strdup(e->link_name);
	xs = calloc(e->nr_xattrs ? e->nr_xattrs : 1, sizeof(*xs));
	if (!path || !link || !xs) {
		r = -ENOMEM;
		goto out;
	}
	if (!path[0]) {
		/* the layer's root directory ("./"): its owner, mode and
		 * mtime go to the mount point; anything else at the root is
		 * not an entry */
		if (e->typeflag != '5')
			goto out;
		free(path);
		path = strdup(".");
		if (!path) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (k = 0; k < e->nr_xattrs; k++) {
		xs[k].name = e->xattrs[k].name;
		xs[k].value = e->xattrs[k].value;
		xs[k].len = (uint32_t)e->xattrs[k].len;
	}
	f.path = path;
	f.link = link;
	f.type = e->typeflag;
	f.mode = (uint32_t)e->mode;
	f.uid = (uint32_t)e->uid;
	f.gid = (uint32_t)e->gid;
	f.dev_major = (uint32_t)e->dev_major;
	f.dev_minor = (uint32_t)e->dev_minor;
	f.mtime = e->mtime;
	f.size = (uint64_t)e->size;
	f.xattrs = xs;
	f.nr_xattrs = e->nr_xattrs;
	r = lp_index_writer_add_file(b->w, &f);
	if (r < 0)
		r = lp_err_set(b->err, r, "%s: gzip index file table full",
			       e->name);
out:
	free(path);
	free(link);
	free(xs);
	return r;
}

int lp_index_build(int fd, uint64_t span_size, uint32_t grain_size,
		   const struct lp_digest *verified, struct lp_buf *out,
		   struct lp_index_build_result *res, struct lp_err *err)
{
	struct builder b = { 0 };
	struct lp_cv_reader *rd = NULL;
	struct lp_cv_entry e = { 0 };
	struct lp_index_checkpoint cp0 = { 0 };
	struct lp_digest blob_d, span_d;
	struct timespec t0, t1, c0, c1;
	size_t start = out->len, n;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	if (span_size < LP_INDEX_MIN_SPAN_SIZE ||
	    span_size > LP_INDEX_MAX_SPAN_SIZE)
		return lp_err_set(err, -EINVAL,
				  "span size %llu outside %llu..%llu",
				  (unsigned long long)span_size,
				  (unsigned long long)LP_INDEX_MIN_SPAN_SIZE,
				  (unsigned long long)LP_INDEX_MAX_SPAN_SIZE);
	if (grain_size && !lp_index_grain_size_ok(grain_size))
		return lp_err_set(err, -EINVAL,
				  "grain size %u is not 0 or a power of two "
				  "in %u..%u",
				  grain_size, LP_INDEX_GRAIN_MIN,
				  LP_INDEX_GRAIN_MAX);
	b.fd = fd;
	b.grain_size = grain_size;
	b.span_size = span_size;
	b.err = err;
	b.in = malloc(IN_BUF);
	if (!b.in) {
		r = -ENOMEM;
		goto out;
	}
	b.in_next = b.in_end = b.in;
	r = verified ? 0 : lp_sha256_new(&b.blob_sha);
	if (r == 0)
		r = lp_sha256_new(&b.span_sha);
	if (r == 0 && grain_size)
		r = lp_sha256_new(&b.grain_sha);
	if (r == 0)
		r = lp_index_writer_new((uint32_t)span_size, grain_size, &b.w);
	if (r < 0)
		goto out;
	if (inflateInit2(&b.z, 31) != Z_OK) {
		r = -ENOMEM;
		goto out;
	}
	b.z_live = true;
	r = lp_inflate_init(&b.d);
	if (r < 0)
		goto out;
	b.d_live = true;
	b.mark = b.d.out;
	/* the trailers' CRC32s are checked here even when the blob digest
	 * was verified: they check the decoder too; zlib checks a header's
	 * CRC16 (its default, kept by inflateReset) */
#if defined(__x86_64__)
	b.avx = __builtin_cpu_supports("avx");
#endif
	cp0.kind = LP_INDEX_CP_MEMBER;
	r = lp_index_writer_add_checkpoint(b.w, &cp0, NULL);
	if (r < 0)
		goto out;
	r = lp_cv_reader_new_cb(tar_read, &b, &rd, err);
	while (r == 0) {
		r = lp_cv_reader_next(rd, &e, err);
		if (r <= 0)
			break;
		r = add_entry(&b, rd, &e);
	}
	if (b.error)
		r = b.error;
	if (r < 0)
		goto out;
	/* the tar's end: inflate the rest (padding, trailer, members) */
	while (!b.done) {
		const uint8_t *p;

		r = produce(&b, &p, &n);
		if (r < 0)
			goto out;
	}
	lp_sha256_final(b.span_sha, &span_d);
	lp_index_writer_set_span(b.w, &span_d);
	r = grain_span_end(&b);
	if (r < 0)
		goto out;
	if (verified)
		blob_d = *verified;
	else
		lp_sha256_final(b.blob_sha, &blob_d);
	r = lp_index_writer_finish(b.w, b.totin, &blob_d, b.totout, out, err);
	if (r < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	if (res) {
		memset(res, 0, sizeof(*res));
		res->blob_size = b.totin;
		res->usize = b.totout;
		res->blob_digest = blob_d;
		res->index_size = out->len - start;
		res->seconds = (double)(t1.tv_sec - t0.tv_sec) +
			       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		res->cpu_seconds = (double)(c1.tv_sec - c0.tv_sec) +
				   (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
		{
			struct lp_index *ix = NULL;

			if (lp_index_parse(out->data + start, out->len - start,
					   &ix, NULL) == 0) {
				res->nr_checkpoints =
					lp_index_nr_checkpoints(ix);
				res->nr_files = lp_index_nr_files(ix);
			}
			lp_index_free(ix);
		}
	}
out:
	lp_cv_entry_clear(&e);
	lp_cv_reader_free(rd);
	if (b.z_live)
		inflateEnd(&b.z);
	if (b.d_live)
		lp_inflate_free(&b.d);
	lp_sha256_free(b.blob_sha);
	lp_sha256_free(b.span_sha);
	lp_sha256_free(b.grain_sha);
	lp_index_writer_free(b.w);
	free(b.in);
	return r;
}
