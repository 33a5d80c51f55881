// SPDX-License-Identifier: Apache-2.0
/*
 * A layer: footer + TOC read through a blob source, and verified chunk reads.
 *
 * Opening reads the last LP_FOOTER_MAX_SIZE bytes (or takes them from a tail
 * the caller already read), parses the footer, reads the (bounded) TOC range
 * that the tail does not hold, decompresses it - for eStargz a gzip member holding
 * one tar entry "stargz.index.json", for zstd:chunked a zstd frame inside a
 * skippable frame - then hashes the JSON on a second thread while this one
 * parses it (the parser takes any bytes: lp_toc_parse() bounds and checks
 * everything, and is fuzzed); a big eStargz TOC is also inflated on that
 * thread and parsed as its bytes land (struct toc_feeder,
 * lp_toc_parse_fed()). It keeps the parsed TOC only when the digest
 * matched the wanted one: a mismatch is the error reported, whatever the
 * parse said. Reading a chunk preads its compressed range,
 * decodes it and verifies it by the one digest policy of lp_chunk.h
 * (chunkDigest, else the file digest of a single-chunk file, else refused)
 * before handing the bytes out. Reading a whole file (lp_layer_read_file())
 * also accepts the chunks of a file that only its file digest vouches for,
 * and checks that digest over all of the file's bytes before it returns 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include "chunk_int.h"
#include "index_int.h"
#include "layer_probe.h"
#include "lp_layer.h"

#define TAR_BLOCK 512
#define TAR_OCTAL_DIGITS 11 /* of the 12-byte size field */
/* zstd:chunked: skippable frame header (magic, length) before the TOC */
#define ZSTD_SKIP_HDR 8
#define DEFLATE_MAX_RATIO 1032
/*
 * Compressed bytes read for a chunk whose member runs on (tar headers of
 * many following entries): more than any deflate/zstd encoding of the
 * chunk needs. Decoders stop once the chunk is out.
 */
#define COMPRESS_SLACK(n) ((n) / 128 + 64 * LP_KIB)
/*
 * What an eStargz TOC member may hold after the JSON (its tar padding and
 * the archive's two end blocks, as writers put them there) for it to be
 * inflated in one go (libdeflate) into a buffer of the member's stated
 * size; a member with more, or whose stated size is off, is inflated by
 * zlib up to the JSON's end, as before.
 */
#define GZIP_TOC_TRAILER_MAX (64 * LP_KIB)
/*
 * a TOC this large is hashed on a second thread while it is parsed; an
 * eStargz one is also inflated there, TOC_FEED_PIECE bytes at a time, and
 * parsed as its bytes come (struct toc_feeder)
 */
#define TOC_HASH_THREAD_MIN LP_MIB
#define TOC_FEED_PIECE (512 * LP_KIB)

struct lp_layer_probe lp_layer_probe;

struct lp_layer {
	struct lp_blob *blob;
	struct lp_footer footer;
	struct lp_toc *toc;
	struct lp_digest toc_digest;
	uint8_t *json;
	size_t json_len;
	uint8_t *json_mem; /* the allocation @json lies in (freed) */
	struct lp_index *ix; /* LP_FMT_GZIP_INDEX */
	lp_layer_header_check_fn check_header;
};

/*
 * A big eStargz TOC: its gzip member inflated on a second thread, a piece
 * at a time, into the JSON buffer the parse reads (handed to the parser as
 * it lands, through lp_toc_parse_fed()), and hashed there once it is all
 * in place (the parse's second thread, lp_toc_parse_split(), starts on
 * the whole JSON then; the digest is wanted after the parse). Inflating it in one go (libdeflate) and only then parsing
 * it put the whole inflate before the parse; this way the inflate and the
 * hash run beside the parse. The inflater is ISA-L's igzip, which streams
 * at libdeflate's speed (zlib takes about twice the CPU time: a 318 MB TOC
 * in 0.44 s against 0.22 s, on a second core that the parse then waits
 * for when the machine is loaded). Lock order: only @lock.
 */
struct toc_feeder {
	bool fed; /* set up: the thread's to run (feeder_run()) */
	z_stream zs; /* the tar header's inflate (this thread's) */
	bool zs_ready; /* inflateEnd() it */
	const uint8_t *src; /* the gzip member, @src_len bytes */
	size_t src_len;
	struct inflate_state *isal; /* the feeder thread's */
	uint8_t *zbuf; /* the compressed member, when read into a buffer */
	uint8_t *json;
	size_t len;
	struct lp_sha256 *sha;
	struct lp_digest digest; /* the JSON's, once the thread is joined */
	struct lp_err why; /* the inflate's error, with @err */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t avail; /* protected by lock: JSON bytes in place */
	int err; /* protected by lock: the inflate's -errno, or 0 */
	/* the parser's job for after the inflate (lp_toc_feed.lend) */
	void (*job)(void *); /* protected by lock */
	void *job_arg; /* protected by lock */
	bool job_began; /* protected by lock */
	bool inflated; /* protected by lock: past the point a job runs */
};

/* the tar header of the TOC entry: its name, type and JSON size */
static int parse_toc_tar_header(const uint8_t *h, size_t *ret_size,
				struct lp_err *err)
{
	unsigned long sum = 0, want = 0;
	uint64_t size = 0;
	size_t i, namelen = strlen(LP_TOC_NAME);
	int r = 0;

	for (i = 0; i < TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	for (i = 148; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
		want = want * 8 + (h[i] - '0');
	if (i == 148 || sum != want) {
		r = lp_err_set(err, -EINVAL, "TOC tar header: bad checksum");
		goto out;
	}
	if (memcmp(h, LP_TOC_NAME, namelen) != 0 || h[namelen] != '\0' ||
	    (h[156] != '0' && h[156] != '\0') ||
	    (memcmp(h + 257, "ustar\0", 6) == 0 && h[345] != '\0')) {
		r = lp_err_set(err, -EINVAL,
			       "TOC tar entry is not a regular file named "
			       "\"" LP_TOC_NAME "\"");
		goto out;
	}
	for (i = 124; i < 124 + TAR_OCTAL_DIGITS && h[i] == ' '; i++)
		;
	for (; i < 124 + TAR_OCTAL_DIGITS && h[i] >= '0' && h[i] <= '7'; i++)
		size = size * 8 + (uint64_t)(h[i] - '0');
	if (i < 136 && h[i] != '\0' && h[i] != ' ') {
		r = lp_err_set(err, -EINVAL, "TOC tar header: bad size field");
		goto out;
	}
	if (size > LP_TOC_MAX_JSON) {
		r = lp_err_set(err, -EFBIG,
			       "TOC of %llu bytes exceeds LP_TOC_MAX_JSON",
			       (unsigned long long)size);
		goto out;
	}
	*ret_size = (size_t)size;
out:
	return r;
}

/* inflate exactly @len bytes of output into @dst; 0 or -EBADMSG */
static int inflate_exact(z_stream *zs, void *dst, size_t len,
			 struct lp_err *err)
{
	int r = 0, zr;

	zs->next_out = dst;
	zs->avail_out = (uInt)len;
	while (zs->avail_out) {
		uInt before = zs->avail_out;

		zr = inflate(zs, Z_NO_FLUSH);
		if (zr == Z_STREAM_END && zs->avail_out)
			zr = Z_DATA_ERROR;
		if ((zr != Z_OK && zr != Z_STREAM_END) ||
		    (before == zs->avail_out && zs->avail_in == 0)) {
			r = lp_err_set(err, -EBADMSG, "TOC gzip member: %s",
				       zs->msg ? zs->msg :
						 "truncated or corrupt");
			goto out;
		}
	}
out:
	return r;
}

/*
 * the whole member at once when its gzip trailer states a size that holds
 * the header, the @json_len bytes of JSON and no more than
 * GZIP_TOC_TRAILER_MAX after them: 1 (l->json set), 0 (not so: inflate it
 * with zlib), or -errno
 */
static int inflate_whole(struct lp_layer *l, const uint8_t *src, size_t len,
			 size_t json_len)
{
	struct libdeflate_decompressor *d = NULL;
	enum libdeflate_result res;
	size_t isize, in_used = 0, out_len = 0;
	uint8_t *buf = NULL;
	int r = 0;

	if (len < 18) /* a gzip header and trailer */
		goto out;
	isize = lp_get_le32(src + len - 4);
	if (isize < TAR_BLOCK + json_len ||
	    isize - (TAR_BLOCK + json_len) > GZIP_TOC_TRAILER_MAX)
		goto out;
	d = libdeflate_alloc_decompressor();
	buf = malloc(isize + 1);
	if (!d || !buf) {
		r = -ENOMEM;
		goto out;
	}
	res = libdeflate_gzip_decompress_ex(d, src, len, buf, isize, &in_used,
					    &out_len);
	/* corrupt, or the trailer's size is off: zlib decides, as before */
	if (res != LIBDEFLATE_SUCCESS || out_len != isize)
		goto out;
	buf[TAR_BLOCK + json_len] = '\0';
	l->json_mem = buf;
	l->json = buf + TAR_BLOCK;
	l->json_len = json_len;
	buf = NULL;
	r = 1;
out:
	free(buf);
	if (d)
		libdeflate_free_decompressor(d);
	return r;
}

/*
 * eStargz: gzip member -> tar header -> JSON; a big one is left to @fd's
 * thread (fd->fed set: l->json allocated, not yet written, and @src must
 * live until the thread is joined)
 */
static int read_gzip_toc(struct lp_layer *l, const uint8_t *src, size_t len,
			 struct toc_feeder *fd, struct lp_err *err)
{
	uint8_t hdr[TAR_BLOCK];
	z_stream *zs = &fd->zs;
	size_t json_len = 0;
	int r;

	if (inflateInit2(zs, 16 + MAX_WBITS) != Z_OK) {
		r = -ENOMEM;
		goto out;
	}
	fd->zs_ready = true;
	zs->next_in = (Bytef *)src;
	zs->avail_in = (uInt)len; /* <= LP_TOC_MAX_COMPRESSED */
	r = inflate_exact(zs, hdr, sizeof(hdr), err);
	if (r < 0)
		goto out;
	r = parse_toc_tar_header(hdr, &json_len, err);
	if (r < 0)
		goto out;
	/* deflate expands at most DEFLATE_MAX_RATIO:1; don't allocate more */
	if (json_len / DEFLATE_MAX_RATIO > len) {
		r = lp_err_set(
			err, -EBADMSG,
			"TOC tar header claims %zu bytes from a %zu-byte "
			"gzip member",
			json_len, len);
		goto out;
	}
	if (json_len >= TOC_HASH_THREAD_MIN) {
		fd->isal = malloc(sizeof(*fd->isal));
		if (!fd->isal) {
			r = -ENOMEM;
			goto out;
		}
		fd->src = src;
		fd->src_len = len;
		r = lp_sha256_new(&fd->sha);
		if (r < 0)
			goto out;
		l->json_mem = l->json = malloc(json_len + 1);
		if (!l->json) {
			r = -ENOMEM;
			goto out;
		}
		l->json[json_len] = '\0';
		l->json_len = json_len;
		fd->json = l->json;
		fd->len = json_len;
		fd->fed = true;
		goto out;
	}
	r = inflate_whole(l, src, len, json_len);
	if (r != 0) {
		if (r > 0)
			atomic_fetch_add_explicit(
				&lp_layer_probe.inflated_whole, 1,
				memory_order_relaxed);
		r = r < 0 ? r : 0;
		goto out;
	}
	atomic_fetch_add_explicit(&lp_layer_probe.inflated_zlib, 1,
				  memory_order_relaxed);
	l->json_mem = l->json = malloc(json_len + 1);
	if (!l->json) {
		r = -ENOMEM;
		goto out;
	}
	r = inflate_exact(zs, l->json, json_len, err);
	if (r < 0)
		goto out;
	l->json[json_len] = '\0';
	l->json_len = json_len;
out:
	return r;
}

/* zstd:chunked: skippable frame header, then a zstd frame of JSON */
static int read_zstd_toc(struct lp_layer *l, const uint8_t *src, size_t len,
			 struct lp_err *err)
{
	size_t want = (size_t)l->footer.toc_uncompressed_size, got;
	unsigned long long fcs;
	int r;

	if (lp_get_le32(src) != LP_ZSTD_SKIPPABLE_MAGIC ||
	    lp_get_le32(src + 4) != len - ZSTD_SKIP_HDR) {
		r = lp_err_set(err, -EINVAL,
			       "zstd:chunked TOC at %llu is not in a skippable "
			       "frame of %zu bytes",
			       (unsigned long long)l->footer.toc_offset,
			       len - ZSTD_SKIP_HDR);
		goto out;
	}
	/* a frame that states its size must state the footer's size */
	fcs = ZSTD_getFrameContentSize(src + ZSTD_SKIP_HDR,
				       len - ZSTD_SKIP_HDR);
	if (fcs == ZSTD_CONTENTSIZE_ERROR ||
	    (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != want)) {
		r = lp_err_set(err, -EBADMSG,
			       "zstd:chunked TOC: frame header does not match "
			       "the footer's %zu bytes",
			       want);
		goto out;
	}
	l->json_mem = l->json = malloc(want + 1);
	if (!l->json) {
		r = -ENOMEM;
		goto out;
	}
	got = ZSTD_decompress(l->json, want, src + ZSTD_SKIP_HDR,
			      len - ZSTD_SKIP_HDR);
	if (ZSTD_isError(got) || got != want) {
		r = lp_err_set(err, -EBADMSG,
			       "zstd:chunked TOC: %s (want %zu bytes)",
			       ZSTD_isError(got) ? ZSTD_getErrorName(got) :
						   "wrong size",
			       want);
		goto out;
	}
	l->json[want] = '\0';
	l->json_len = want;
	r = 0;
out:
	return r;
}

/* the TOC digest, computed beside the parse */
struct toc_hash {
	const void *data;
	size_t len;
	struct lp_digest digest;
};

static void *toc_hash_main(void *arg)
{
	struct toc_hash *h = arg;

	lp_sha256(h->data, h->len, &h->digest);
	return NULL;
}

/* inflate exactly @len bytes of @fd's member into @dst; 0 or -EBADMSG */
static int isal_exact(struct toc_feeder *fd, uint8_t *dst, size_t len)
{
	struct inflate_state *st = fd->isal;
	int ir;

	st->next_out = dst;
	st->avail_out = (uint32_t)len;
	while (st->avail_out) {
		uint32_t before = st->avail_out, in_before = st->avail_in;

		ir = isal_inflate(st);
		if (ir != ISAL_DECOMP_OK)
			return lp_err_set(&fd->why, -EBADMSG,
					  "TOC gzip member: corrupt (igzip "
					  "error %d)",
					  ir);
		/* no byte out: the member ended or was cut short, or
		 * nothing moved at all (never a loop on a hostile member,
		 * whatever the library does with it) */
		if (before == st->avail_out &&
		    (st->avail_in == 0 ||
		     st->block_state == ISAL_BLOCK_FINISH ||
		     in_before == st->avail_in))
			return lp_err_set(&fd->why, -EBADMSG,
					  "TOC gzip member: truncated or "
					  "corrupt");
	}
	return 0;
}

/*
 * the feeder thread: inflate and hand over a piece at a time, then run the
 * parser's job if it lent one (lp_toc_feed.lend), then hash
 */
static void *feeder_main(void *arg)
{
	struct toc_feeder *fd = arg;
	uint8_t hdr[TAR_BLOCK]; /* read already: lp_layer_open's thread */
	size_t pos = 0, n;
	void (*job)(void *);
	void *job_arg;
	int r;

	isal_inflate_init(fd->isal);
	fd->isal->crc_flag = ISAL_GZIP;
	fd->isal->next_in = (uint8_t *)fd->src;
	fd->isal->avail_in = (uint32_t)fd->src_len; /* LP_TOC_MAX_COMPRESSED */
	r = isal_exact(fd, hdr, sizeof(hdr));
	while (r == 0 && pos < fd->len) {
		n = (size_t)lp_min_u64(TOC_FEED_PIECE, fd->len - pos);
		r = isal_exact(fd, fd->json + pos, n);
		if (r < 0)
			break;
		pthread_mutex_lock(&fd->lock);
		fd->avail = pos + n;
		pthread_cond_broadcast(&fd->cond);
		pthread_mutex_unlock(&fd->lock);
		pos += n;
	}
	/* the compressed member is done with: not kept through the parse */
	free(fd->zbuf);
	fd->zbuf = NULL;
	fd->src = NULL;
	/* the error first: the job waits for the bytes too */
	pthread_mutex_lock(&fd->lock);
	if (r < 0)
		fd->err = r;
	fd->inflated = true;
	job = fd->job;
	job_arg = fd->job_arg;
	fd->job_began = job != NULL;
	pthread_cond_broadcast(&fd->cond);
	pthread_mutex_unlock(&fd->lock);
	/* the parser's job (its split part), then the hash: the digest is
	   wanted only after the parse */
	if (job)
		job(job_arg);
	for (pos = 0; r == 0 && pos < fd->len; pos += n) {
		n = (size_t)lp_min_u64(TOC_FEED_PIECE, fd->len - pos);
		lp_sha256_update(fd->sha, fd->json + pos, n);
	}
	if (r == 0)
		lp_sha256_final(fd->sha, &fd->digest);
	return NULL;
}

/* lp_toc_feed.wait over @arg, a struct toc_feeder */
static ssize_t feeder_wait(void *arg, size_t want)
{
	struct toc_feeder *fd = arg;
	ssize_t n;

	pthread_mutex_lock(&fd->lock);
	while (fd->avail < want && !fd->err)
		pthread_cond_wait(&fd->cond, &fd->lock);
	n = fd->avail >= want ? (ssize_t)fd->avail : fd->err;
	pthread_mutex_unlock(&fd->lock);
	return n;
}

/* lp_toc_feed.lend over @arg, a struct toc_feeder */
static int feeder_lend(void *arg, void (*job)(void *), void *job_arg)
{
	struct toc_feeder *fd = arg;
	int r = 0;

	pthread_mutex_lock(&fd->lock);
	if (!job) { /* withdrawn */
		r = fd->job_began;
		fd->job = NULL;
	} else if (fd->inflated || fd->job) {
		r = -EBUSY;
	} else {
		fd->job = job;
		fd->job_arg = job_arg;
	}
	pthread_mutex_unlock(&fd->lock);
	return r;
}

/*
 * inflate, hash and parse @fd's TOC, the first two on a second thread
 * (here, one after the other, when there is none): 0 and l->toc set, or
 * the inflate's error; a parse error is *@pr (with @perr)
 */
static int feeder_run(struct lp_layer *l, struct toc_feeder *fd,
		      uint64_t payload_end, int *pr, struct lp_err *perr,
		      struct lp_err *err)
{
	struct lp_toc_feed feed = { feeder_wait, fd, 0, feeder_lend };
	pthread_t th;
	bool threaded;

	/* the tar header's inflate state is done with too */
	if (fd->zs_ready) {
		inflateEnd(&fd->zs);
		fd->zs_ready = false;
	}
	threaded = pthread_create(&th, NULL, feeder_main, fd) == 0;
	if (!threaded)
		feeder_main(fd);
	atomic_fetch_add_explicit(&lp_layer_probe.inflated_fed, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&lp_layer_probe.hashed_threaded, 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&lp_layer_probe.parsed, 1,
				  memory_order_relaxed);
	*pr = lp_toc_parse_fed(l->json, l->json_len, &feed, payload_end,
			       &l->toc, perr);
	if (threaded)
		pthread_join(th, NULL);
	if (fd->err)
		return lp_err_set_from(err, &fd->why, fd->err, "%s",
				       lp_err_str(&fd->why, fd->err));
	l->toc_digest = fd->digest;
	return 0;
}

static void feeder_release(struct toc_feeder *fd)
{
	if (fd->zs_ready)
		inflateEnd(&fd->zs);
	free(fd->isal);
	lp_sha256_free(fd->sha);
	free(fd->zbuf);
	pthread_mutex_destroy(&fd->lock);
	pthread_cond_destroy(&fd->cond);
}

/*
 * The TOC's bytes: from @tail (the blob's last @tail_len bytes) as far as it
 * reaches back, the rest by one pread.
 */
static int read_toc(struct lp_layer *l, const uint8_t *tail, size_t tail_len,
		    struct toc_feeder *fd, struct lp_err *err)
{
	const struct lp_footer *f = &l->footer;
	bool zstd = f->format == LP_FMT_ZSTD_CHUNKED;
	uint64_t off = zstd ? f->toc_offset - ZSTD_SKIP_HDR : f->toc_offset;
	size_t len = (size_t)f->toc_size + (zstd ? ZSTD_SKIP_HDR : 0);
	uint64_t tail_off = lp_blob_size(l->blob) - tail_len;
	const uint8_t *src;
	uint8_t *buf = NULL;
	size_t head = 0; /* bytes before the tail */
	struct lp_err why = { 0 };
	int r;

	/* the footer parser put the TOC before the footer, inside the blob */
	if (off >= tail_off) {
		src = tail + (off - tail_off);
		goto parse;
	}
	buf = malloc(len);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	head = (size_t)lp_min_u64(len, tail_off - off);
	r = lp_blob_pread(l->blob, buf, head, off, &why);
	if (r < 0) {
		r = lp_err_set_from(
			err, &why, r, "%s: reading %zu TOC bytes at %llu: %s",
			lp_blob_name(l->blob), head, (unsigned long long)off,
			lp_err_str(&why, r));
		goto out;
	}
	if (head < len)
		memcpy(buf + head, tail, len - head);
	src = buf;
parse:
	r = zstd ? read_zstd_toc(l, src, len, err) :
		   read_gzip_toc(l, src, len, fd, err);
	if (fd->fed) { /* the feeder reads @src */
		fd->zbuf = buf;
		buf = NULL;
	}
out:
	free(buf);
	return r;
}

int lp_layer_open_tail(struct lp_blob *blob, const void *tail, size_t tail_len,
		       const struct lp_digest *want_toc_digest,
		       struct lp_layer **ret_layer, struct lp_err *err)
{
	struct lp_layer *l = NULL;
	uint8_t own[LP_FOOTER_MAX_SIZE];
	uint64_t size = lp_blob_size(blob), payload_end;
	struct lp_err why = { 0 }, perr = { 0 };
	struct toc_hash hash;
	struct toc_feeder fd = { .lock = PTHREAD_MUTEX_INITIALIZER,
				 .cond = PTHREAD_COND_INITIALIZER };
	pthread_t hasher;
	bool threaded;
	size_t foot_len;
	int r, pr;

	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	l->blob = lp_blob_ref(blob);
	if (tail_len > size) {
		r = lp_err_set(
			err, -EINVAL, "%s: %zu tail bytes of a %llu-byte blob",
			lp_blob_name(blob), tail_len, (unsigned long long)size);
		goto out;
	}
	if (tail_len < sizeof(own) && tail_len < size) {
		/* too short for a footer: read it as without a tail */
		tail = own;
		tail_len = (size_t)lp_min_u64(size, sizeof(own));
		r = lp_blob_pread(blob, own, tail_len, size - tail_len, &why);
		if (r < 0) {
			r = lp_err_set_from(
				err, &why, r, "%s: reading the footer: %s",
				lp_blob_name(blob), lp_err_str(&why, r));
			goto out;
		}
	}
	foot_len = (size_t)lp_min_u64(tail_len, LP_FOOTER_MAX_SIZE);
	r = lp_footer_parse((const uint8_t *)tail + tail_len - foot_len,
			    foot_len, size, &l->footer, err);
	if (r < 0)
		goto out;
	r = read_toc(l, tail, tail_len, &fd, err);
	if (r < 0)
		goto out;
	payload_end = l->footer.format == LP_FMT_ZSTD_CHUNKED ?
			      l->footer.toc_offset - ZSTD_SKIP_HDR :
			      l->footer.toc_offset;
	if (fd.fed) {
		r = feeder_run(l, &fd, payload_end, &pr, &perr, err);
		if (r < 0)
			goto out;
		goto check;
	}
	/*
	 * A big TOC: hash and parse at once (2 cores: the hash costs no wall
	 * time), so its bytes reach the parser before their digest is known;
	 * a small one is hashed and compared first, and parsed only when it
	 * is the wanted one. Either way a TOC that is not the wanted one is
	 * that error, whatever the parse said (its result is dropped with the
	 * layer).
	 */
	hash.data = l->json;
	hash.len = l->json_len;
	threaded = l->json_len >= TOC_HASH_THREAD_MIN &&
		   pthread_create(&hasher, NULL, toc_hash_main, &hash) == 0;
	if (!threaded) {
		toc_hash_main(&hash);
		atomic_fetch_add_explicit(&lp_layer_probe.hashed_first, 1,
					  memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&lp_layer_probe.hashed_threaded, 1,
					  memory_order_relaxed);
	}
	pr = 0;
	if (threaded || !want_toc_digest ||
	    lp_digest_equal(&hash.digest, want_toc_digest)) {
		atomic_fetch_add_explicit(&lp_layer_probe.parsed, 1,
					  memory_order_relaxed);
		pr = lp_toc_parse(l->json, l->json_len, payload_end, &l->toc,
				  &perr);
	}
	if (threaded)
		pthread_join(hasher, NULL);
	l->toc_digest = hash.digest;
check:
	if (want_toc_digest &&
	    !lp_digest_equal(&l->toc_digest, want_toc_digest)) {
		char got[LP_DIGEST_STR_LEN + 1], want[LP_DIGEST_STR_LEN + 1];

		lp_digest_format(&l->toc_digest, got);
		lp_digest_format(want_toc_digest, want);
		r = lp_err_set(err, -EBADMSG, "%s: TOC digest %s, expected %s",
			       lp_blob_name(blob), got, want);
		goto out;
	}
	if (pr < 0) {
		r = lp_err_set_from(err, &perr, pr, "%s",
				    lp_err_str(&perr, pr));
		goto out;
	}
	*ret_layer = l;
	l = NULL;
out:
	feeder_release(&fd);
	lp_layer_free(l);
	return r;
}

int lp_layer_open(struct lp_blob *blob, const struct lp_digest *want_toc_digest,
		  struct lp_layer **ret_layer, struct lp_err *err)
{
	return lp_layer_open_tail(blob, NULL, 0, want_toc_digest, ret_layer,
				  err);
}

int lp_layer_open_index(struct lp_blob *blob, struct lp_index *ix,
			lp_layer_header_check_fn check_header,
			struct lp_layer **ret_layer, struct lp_err *err)
{
	struct lp_layer *l = NULL;
	int r;

	if (lp_blob_size(blob) != lp_index_blob_size(ix)) {
		r = lp_err_set(err, -EBADMSG,
			       "%s has %llu bytes, its gzip index says %llu",
			       lp_blob_name(blob),
			       (unsigned long long)lp_blob_size(blob),
			       (unsigned long long)lp_index_blob_size(ix));
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	l->ix = ix;
	ix = NULL;
	l->check_header = check_header;
	l->blob = lp_blob_ref(blob);
	l->footer.format = LP_FMT_GZIP_INDEX;
	r = lp_index_toc(l->ix, &l->toc, err);
	if (r < 0)
		goto out;
	*ret_layer = l;
	l = NULL;
out:
	lp_index_free(ix);
	lp_layer_free(l);
	return r;
}

const struct lp_index *lp_layer_index(const struct lp_layer *layer)
{
	return layer->ix;
}

int lp_layer_check_file(struct lp_layer *layer, uint32_t entry, bool to_header,
			lp_layer_read_fn read, void *read_arg,
			lp_layer_checked_fn checked, void *arg,
			struct lp_err *err)
{
	const struct lp_toc_entry *e;
	const struct lp_index_file *f;
	char path[LP_TOC_MAX_PATH + 1];
	uint64_t start, end;
	uint8_t *buf = NULL;
	size_t len, j, span, first;
	int i, r;

	if (!layer->ix)
		return 0;
	e = lp_toc_entry(layer->toc, entry);
	r = lp_toc_entry_path(layer->toc, entry, path, sizeof(path));
	if (r < 0)
		return lp_err_set(err, -EINVAL, "%s: entry %u has no path",
				  lp_blob_name(layer->blob), entry);
	if (e->flags & LP_TOC_IMPLIED)
		return 0; /* made up by the TOC, not the index's word */
	i = lp_index_lookup(layer->ix, path);
	if (i < 0 && !path[0])
		return 0; /* the root: the TOC's own */
	if (i < 0)
		return lp_err_set(err, -EBADMSG, "%s: %s not in the gzip index",
				  lp_blob_name(layer->blob), path);
	f = lp_index_file(layer->ix, (size_t)i);
	if (!layer->check_header)
		return lp_err_set(err, -EBADMSG,
				  "%s: %s: no tar header check to vouch for "
				  "the gzip index's file table",
				  lp_blob_name(layer->blob), path);
	/* its span around its header (at most LP_LAYER_CHECK_BATCH each
	 * way): the headers of the entries before and after it there come
	 * with the same span, so that their lookups need no read */
	span = lp_index_span_of(layer->ix, f->hdr_off);
	start = lp_index_checkpoint(layer->ix, span)->out;
	if (f->hdr_off - start > LP_LAYER_CHECK_BATCH)
		start = f->hdr_off - LP_LAYER_CHECK_BATCH;
	end = lp_min_u64(lp_index_span_out_end(layer->ix, span),
			 f->hdr_off + LP_LAYER_CHECK_BATCH);
	if (to_header) /* spans served as they come: see lp_layer.h */
		end = start;
	if (end < f->data_off)
		end = f->data_off; /* <= hdr_off + LP_INDEX_MAX_HEADER */
	first = (size_t)i;
	while (first > 0 &&
	       lp_index_file(layer->ix, first - 1)->hdr_off >= start)
		first--;
	len = (size_t)(end - start);
	buf = malloc(len);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	r = read(read_arg, start, buf, len, err);
	for (j = first; r == 0 && j < lp_index_nr_files(layer->ix); j++) {
		const struct lp_index_file *g = lp_index_file(layer->ix, j);
		uint32_t t;

		if (g->data_off > end)
			break;
		/* the index's order is the tar's; any header wholly inside
		 * is checked, and a lie is a lie */
		r = layer->check_header(
			layer->ix, j, buf + (g->hdr_off - start),
			(size_t)(g->data_off - g->hdr_off), err);
		if (r < 0 || !checked)
			continue;
		t = lp_layer_file_entry(layer, j);
		if (t != LP_TOC_NO_INDEX)
			checked(arg, t);
	}
out:
	free(buf);
	return r;
}

uint32_t lp_layer_file_entry(const struct lp_layer *layer, size_t k)
{
	const struct lp_index_file *g =
		layer->ix ? lp_index_file(layer->ix, k) : NULL;

	if (!g || lp_index_lookup(layer->ix, g->path) != (int)k)
		return LP_TOC_NO_INDEX; /* shadowed: not the path's entry */
	return lp_toc_lookup_path(layer->toc, g->path);
}

int lp_layer_prove(struct lp_layer *layer,
		   const struct lp_index_prove_hooks *hooks,
		   struct lp_index_stream_stats *stats, struct lp_err *err)
{
	if (!layer->ix)
		return 0;
	if (!layer->check_header)
		return lp_err_set(err, -EBADMSG,
				  "%s: no tar header check to vouch for the "
				  "gzip index's file table",
				  lp_blob_name(layer->blob));
	return lp_index_prove_with(layer->ix, layer->blob, layer->check_header,
				   hooks, stats, err);
}

void lp_layer_free(struct lp_layer *layer)
{
	if (!layer)
		return;
	lp_index_free(layer->ix);
	lp_toc_free(layer->toc);
	free(layer->json_mem);
	lp_blob_unref(layer->blob);
	free(layer);
}

enum lp_layer_format lp_layer_format(const struct lp_layer *layer)
{
	return layer->footer.format;
}

const struct lp_footer *lp_layer_footer(const struct lp_layer *layer)
{
	return &layer->footer;
}

const struct lp_toc *lp_layer_toc(const struct lp_layer *layer)
{
	return layer->toc;
}

const struct lp_digest *lp_layer_toc_digest(const struct lp_layer *layer)
{
	return &layer->toc_digest;
}

const void *lp_layer_toc_json(const struct lp_layer *layer, size_t *ret_len)
{
	*ret_len = layer->json_len;
	return layer->json;
}

void lp_layer_drop_toc_json(struct lp_layer *layer)
{
	free(layer->json_mem);
	layer->json_mem = NULL;
	layer->json = NULL;
	layer->json_len = 0;
}

int lp_layer_spill_toc_digests(struct lp_layer *layer, const char *dir,
			       struct lp_err *err)
{
	return lp_toc_spill_digests(layer->toc, dir, LP_TOC_SPILL_MIN, err);
}

struct lp_blob *lp_layer_blob(const struct lp_layer *layer)
{
	return layer->blob;
}

/*
 * read_chunk() - lp_layer_read_chunk(); with @hashing (the caller hashes
 * every byte of the file and checks the file digest over the whole file
 * before it trusts any), a chunk only the file digest vouches for
 * (LP_CHUNK_WHOLE_FILE) is decoded and returned unchecked; without it such
 * a chunk is refused, whatever the caller thought the verdict was.
 */
static int read_chunk(struct lp_layer *layer, struct lp_chunk_decoder *dec,
		      uint32_t ci, void *dst, bool hashing, struct lp_err *err)
{
	struct lp_toc_chunk c;
	struct lp_digest dg;
	char path[LP_TOC_MAX_PATH + 1];
	struct lp_err why = { 0 };
	uint8_t *buf = NULL;
	uint64_t len;
	bool whole_file;
	int r;

	if (ci >= lp_toc_nr_chunks(layer->toc)) {
		r = lp_err_set(err, -EINVAL, "%s: no chunk %u",
			       lp_blob_name(layer->blob), ci);
		goto out;
	}
	c = lp_toc_chunk(layer->toc, ci);
	if (lp_chunk_decoder_compression(dec) !=
	    lp_format_compression(layer->footer.format)) {
		r = lp_err_set(err, -EINVAL,
			       "%s: decoder of the wrong "
			       "compression",
			       lp_blob_name(layer->blob));
		goto out;
	}
	/* a chunk nothing can vouch for is not even read */
	r = lp_chunk_digest(layer->toc, &c, &dg, &why);
	if (r == LP_CHUNK_WHOLE_FILE && !hashing)
		r = -EBADMSG; /* @why says so */
	if (r < 0)
		goto fail;
	whole_file = r == LP_CHUNK_WHOLE_FILE;
	/* both bounded by the TOC parser (LP_CHUNK_MAX_*) */
	len = c.inner_offset + c.chunk_size;
	len = lp_min_u64(c.compressed_size, len + COMPRESS_SLACK(len));
	buf = malloc(len);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	r = lp_blob_pread(layer->blob, buf, len, c.offset, &why);
	if (r < 0) {
		lp_toc_entry_path(layer->toc, c.entry, path, sizeof(path));
		r = lp_err_set_from(err, &why, r,
				    "%s: reading \"%s\" chunk at file "
				    "offset %llu (blob %llu+%llu): %s",
				    lp_blob_name(layer->blob), path,
				    (unsigned long long)c.chunk_offset,
				    (unsigned long long)c.offset,
				    (unsigned long long)len,
				    lp_err_str(&why, r));
		goto out;
	}
	r = lp_chunk_decode(dec, buf, len, c.inner_offset, dst, c.chunk_size,
			    &why);
	if (r == 0 && !whole_file)
		r = lp_chunk_check(layer->toc, &c, dst, &why);
fail:
	if (r < 0) {
		lp_toc_entry_path(layer->toc, c.entry, path, sizeof(path));
		r = lp_err_set(err, r,
			       "%s: \"%s\" chunk at file offset %llu "
			       "(blob offset %llu): %s",
			       lp_blob_name(layer->blob), path,
			       (unsigned long long)c.chunk_offset,
			       (unsigned long long)c.offset,
			       lp_err_str(&why, r));
	}
out:
	free(buf);
	return r;
}

int lp_layer_read_chunk(struct lp_layer *layer, struct lp_chunk_decoder *dec,
			uint32_t ci, void *dst, struct lp_err *err)
{
	return read_chunk(layer, dec, ci, dst, false, err);
}

int lp_layer_read_file(struct lp_layer *layer, struct lp_chunk_decoder *dec,
		       uint32_t ino, lp_layer_sink_fn sink, void *opaque,
		       struct lp_digest *ret_digest, struct lp_err *err)
{
	const struct lp_toc_entry *e;
	struct lp_digest fd;
	int has_fd;
	char path[LP_TOC_MAX_PATH + 1];
	struct lp_sha256 *sha = NULL;
	struct lp_digest got;
	uint8_t *buf = NULL;
	uint64_t done = 0;
	uint32_t i, max = 0;
	bool hash;
	int r;

	if (ino >= lp_toc_nr_entries(layer->toc) ||
	    lp_toc_entry(layer->toc, ino)->type != LP_TOC_REG) {
		r = lp_err_set(err, -EINVAL, "%s: entry %u is no regular file",
			       lp_blob_name(layer->blob), ino);
		goto out;
	}
	e = lp_toc_entry(layer->toc, ino);
	hash = ret_digest != NULL;
	for (i = 0; i < e->nr_chunks; i++) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(layer->toc, e->first_chunk + i);
		struct lp_digest dg;
		struct lp_err why = { 0 };

		if (c.chunk_size > max)
			max = c.chunk_size;
		/* rule 3: only the file digest vouches for this chunk; any
		 * error (nothing vouches, the spilled table unreadable) fails
		 * the file before a byte of it is read: a later verdict must
		 * not find the file unhashed */
		r = lp_chunk_digest(layer->toc, &c, &dg, &why);
		if (r < 0) {
			lp_toc_entry_path(layer->toc, ino, path, sizeof(path));
			r = lp_err_set(err, r,
				       "%s: \"%s\" chunk at file "
				       "offset %llu: %s",
				       lp_blob_name(layer->blob), path,
				       (unsigned long long)c.chunk_offset,
				       lp_err_str(&why, r));
			goto out;
		}
		if (r == LP_CHUNK_WHOLE_FILE)
			hash = true;
	}
	if (hash) {
		r = lp_sha256_new(&sha);
		if (r < 0)
			goto out;
	}
	/* chunk sizes are bounded by the TOC parser (LP_CHUNK_MAX_SIZE) */
	buf = malloc(max ? max : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < e->nr_chunks; i++) {
		uint32_t ci = e->first_chunk + i;
		const struct lp_toc_chunk c = lp_toc_chunk(layer->toc, ci);

		r = read_chunk(layer, dec, ci, buf, sha != NULL, err);
		if (r < 0)
			goto out;
		if (sha)
			lp_sha256_update(sha, buf, c.chunk_size);
		done += c.chunk_size;
		r = sink(opaque, buf, c.chunk_size);
		if (r < 0)
			goto out;
	}
	if (sha)
		lp_sha256_final(sha, &got);
	has_fd = lp_toc_entry_digest(layer->toc, e, &fd);
	if (has_fd < 0) {
		r = lp_err_set(err, has_fd,
			       "%s: the TOC's digest table could "
			       "not be read",
			       lp_blob_name(layer->blob));
		goto out;
	}
	if (done != e->size || (sha && has_fd && !lp_digest_equal(&got, &fd))) {
		lp_toc_entry_path(layer->toc, ino, path, sizeof(path));
		r = lp_err_set(err, -EBADMSG, "%s: \"%s\": %s",
			       lp_blob_name(layer->blob), path,
			       done != e->size ?
				       "chunks do not cover the file" :
				       "file digest mismatch");
		goto out;
	}
	if (ret_digest)
		*ret_digest = got;
	r = 0;
out:
	lp_sha256_free(sha);
	free(buf);
	return r;
}
