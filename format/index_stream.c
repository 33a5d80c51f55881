// SPDX-License-Identifier: Apache-2.0
/*
 * Reading a gzip layer's uncompressed stream at any offset through its
 * index, zran style: start at a checkpoint at or before the offset (a gzip
 * member header, or a deflate block boundary whose 32 KiB window and bit
 * offset the index holds), then feed inflate one span at a time. Each span
 * (the compressed bytes between two checkpoints) is fetched whole and its
 * sha256 compared with the index before a byte of it is inflated, and when
 * the span's bytes run out inflate must stand exactly where the next
 * checkpoint says: at its uncompressed offset, and at a deflate block
 * boundary with its bit offset and its window, or at a member start. A blob
 * or an index that disagree with each other stop the read with -EBADMSG.
 *
 * The index is the network's, so a checkpoint's resume state is only
 * believed once proven: a stream starts at the last checkpoint at or before
 * the offset that is proven (checkpoint 0, the blob's first byte, always
 * is), and every checkpoint it passes and finds as described becomes proven
 * for later streams on the same index (lp_index_checkpoint_verified). By
 * induction a stream's inflate state is always the one inflating the blob
 * from its first byte would have, so it serves only the layer's bytes.
 * Inflate runs with Z_BLOCK, which stops it at every block boundary, so the
 * boundary and bit offset where a span's bytes run out can be read from
 * data_type before anything past them is decoded.
 *
 * Random access (lp_index_span_decode(), lp_index_read()) may also start at
 * a checkpoint nobody has proven, under the window rule: the bytes are
 * decoded twice, with the index's window and with its every byte flipped,
 * and served only when both agree (they then do not depend on the window);
 * else the read starts further back (twice as far each time, up to
 * LP_INDEX_READ_BACK_MAX bytes), and past that streams from the last proven
 * checkpoint. A stream started at an
 * unproven checkpoint checks the checkpoints it passes but proves none.
 * A trusted index (signed by a key the node trusts, lp_index_trust()):
 * random access starts at the checkpoint of its own span with one decode,
 * as if proven (counted, lp_index_trusted_reads()), and proves nothing by
 * it; streams and the proving pass are unchanged.
 * The proving pass (index_prove.c) streams from the blob's first byte,
 * hashing the blob as it goes (lp_index_prove_open(), _finish()).
 *
 * Memory: one lp_index_read() may hold up to LP_INDEX_READ_MAX_IN
 * compressed bytes and their decodes; at most LP_INDEX_READ_MAX_CONCURRENT
 * run at once in the process (read_slots; the others wait), so FUSE
 * threads times that cannot pile up. Lock order: read_slots.lock is a leaf.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "index_int.h"

#define SKIP_BUF (64 * 1024)
#define GZIP_TRAILER 8
#define READ_SLICE (256 * 1024 * 1024)

struct lp_index_stream {
	const struct lp_index *ix; /* borrowed: outlives the stream */
	struct lp_blob *blob; /* our reference; NULL: bytes given */
	/* without a blob: the blob's bytes [given_base, given_base +
	 * given_len), the spans from s->first on (lp_index_span_decode(),
	 * lp_index_read()) */
	const uint8_t *given;
	size_t given_len;
	uint64_t given_base;
	/* started at a checkpoint that is not proven: the checkpoints it
	 * passes are checked but proven by nothing (it proves none) */
	bool unproven;
	/* the twin of a window-independence check: its start window is the
	 * index's with every byte flipped (so it compares no window) */
	bool perturb;
	bool no_digest; /* the twin: its bytes' digests were checked */
	/* the proving pass: the sha256 of every blob byte fed, in order */
	struct lp_sha256 *hash;
	uint64_t hashed_to;
	z_stream z;
	bool z_live;
	bool raw; /* inflating raw deflate (from a window), not gzip */
	unsigned int trailer; /* gzip trailer bytes still to drop (raw) */
	/* the span's bytes ran out at a deflate block boundary, boundary_bits
	 * bits of the last byte unread: only the next span can go on */
	bool boundary;
	uint8_t boundary_bits;
	bool member_start; /* inflate is reset and has read nothing since */
	size_t span; /* the span being fed; SIZE_MAX before the first */
	size_t first; /* the checkpoint the stream started at */
	/* with a blob: the span being fed, pinned (index_spans.c) */
	struct lp_index_span *cur;
	/* the proving pass's read-ahead (index_pass_fetch.c), or NULL */
	struct lp_index_ahead *ahead;
	uint64_t pos; /* uncompressed offset of the next byte out */
	struct lp_index_stream_stats stats;
};

static const char *src_name(const struct lp_index_stream *s)
{
	return s->blob ? lp_blob_name(s->blob) : "(span)";
}

/* fetch span @i, check its digest, and point inflate at its new bytes */
static int load_span(struct lp_index_stream *s, size_t i, struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(s->ix, i);
	const uint8_t *src;
	struct lp_digest d;
	uint64_t start, end;
	size_t len, skip;
	int r;

	lp_index_span_range(s->ix, i, &start, &end);
	len = (size_t)(end - start);
	if (!s->blob) {
		/* only the spans given, from s->first on */
		if (i < s->first || start < s->given_base ||
		    end - s->given_base > s->given_len)
			return lp_err_set(err, -EBADMSG,
					  "gzip index span #%zu [%llu, %llu): "
					  "not in the %zu bytes given from "
					  "%llu (a span's exact bytes are "
					  "needed)",
					  i, (unsigned long long)start,
					  (unsigned long long)end, s->given_len,
					  (unsigned long long)s->given_base);
		src = s->given + (start - s->given_base);
		goto verify;
	}
	/* through the span cache: fetched once, its digest compared there
	 * (and again below, as for bytes given) */
	lp_index_span_put(s->cur);
	s->cur = NULL;
	r = lp_index_ahead_take(s->ahead, i, &s->cur, err);
	if (r == -ENOENT) /* not fetched ahead: through the cache */
		r = lp_index_span_get_as(s->ix, s->blob, i, s->hash != NULL,
					 &s->cur, &s->stats, err);
	if (r < 0)
		return r;
	src = lp_index_span_data(s->cur);
	if (lp_index_span_len(s->cur) != len)
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu: %zu bytes, not %zu", i,
				  lp_index_span_len(s->cur), len);
	if (s->hash && end > s->hashed_to) {
		/* spans are fetched in blob order from byte 0 */
		lp_sha256_update(s->hash, src + (s->hashed_to - start),
				 (size_t)(end - s->hashed_to));
		s->hashed_to = end;
	}
verify:
	if (!s->no_digest)
		lp_sha256(src, len, &d);
	if (!s->no_digest && !lp_digest_equal(&d, &c->span))
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu [%llu, %llu) of %s: "
				  "digest mismatch (the blob is not the one "
				  "indexed, or the index lies)",
				  i, (unsigned long long)start,
				  (unsigned long long)end, src_name(s));
	/* the proving pass checks the grains too, so that a proven index
	 * (trusted on this node from then on: "Proven once") vouches for
	 * its grains as a signed one does (streamed reads, fs/) */
	if (s->hash) {
		size_t verified = 0;
		int r2 = lp_index_grains_check(s->ix, i, src, len, len,
					       &verified, err);

		if (r2 < 0)
			return r2;
	}
	/* the first span starts inflating at c->in (its partial byte was
	 * primed); a later one continues after the byte it shares with the
	 * span before it */
	skip = (size_t)(c->in - start);
	s->z.next_in = (Bytef *)src + skip;
	s->z.avail_in = (uInt)(len - skip);
	s->span = i;
	return 0;
}

/*
 * Checkpoint @i's window as the index has it, uncompressed into @window
 * (LP_INDEX_WINDOW bytes). Returns its length or -EBADMSG.
 */
static int window_of(const struct lp_index *ix, size_t i, uint8_t *window,
		     struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(ix, i);
	uLongf wlen = LP_INDEX_WINDOW;

	if (uncompress(window, &wlen, lp_index_window_data(ix, c),
		       c->window_len) != Z_OK ||
	    wlen != c->window_raw)
		return lp_err_set(err, -EBADMSG,
				  "gzip index checkpoint #%zu: its window "
				  "does not decompress to %u bytes",
				  i, c->window_raw);
	return (int)wlen;
}

/* start inflating at checkpoint @i */
static int start_at(struct lp_index_stream *s, size_t i, struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(s->ix, i);
	uint8_t window[LP_INDEX_WINDOW];
	int r, wlen;

	s->raw = c->kind == LP_INDEX_CP_DEFLATE;
	if (inflateInit2(&s->z, s->raw ? -15 : 31) != Z_OK)
		return -ENOMEM;
	s->z_live = true;
	/* spans are verified by sha256: the gzip CRC adds nothing */
	if (inflateValidate(&s->z, 0) != Z_OK)
		return -EINVAL;
	s->first = i;
	r = load_span(s, i, err);
	if (r < 0)
		return r;
	if (s->raw) {
		wlen = window_of(s->ix, i, window, err);
		if (wlen < 0)
			return wlen;
		if (s->perturb)
			for (r = 0; r < wlen; r++)
				window[r] ^= 0xff;
		if (c->bits &&
		    inflatePrime(&s->z, c->bits,
				 s->z.next_in[-1] >> (8 - c->bits)) != Z_OK)
			return -EINVAL;
		if (inflateSetDictionary(&s->z, window, (uInt)wlen) != Z_OK)
			return -EINVAL;
	}
	s->member_start = !s->raw;
	s->pos = c->out;
	return 0;
}

static int next_span(struct lp_index_stream *s, struct lp_err *err);

/*
 * A span inflated as its verified bytes come (lp_index.h): from its
 * checkpoint as start_at() does, with Z_NO_FLUSH (no checkpoint to find
 * on the way: its end is checked by count, _end()), the gzip trailers
 * between members dropped as read_some() does.
 */
struct lp_index_span_inflater {
	const struct lp_index *ix;
	size_t i;
	z_stream z;
	bool raw, primed;
	unsigned int trailer; /* gzip trailer bytes still to drop (raw) */
	uint8_t window[LP_INDEX_WINDOW];
	int wlen;
};

int lp_index_span_inflater_new(const struct lp_index *ix, size_t i,
			       struct lp_index_span_inflater **ret,
			       struct lp_err *err)
{
	const struct lp_index_checkpoint *c;
	struct lp_index_span_inflater *f;

	if (!lp_index_checkpoint_startable(ix, i))
		return lp_err_set(err, -EAGAIN,
				  "gzip index checkpoint #%zu: not a place "
				  "to start (not proven, index not trusted)",
				  i);
	c = lp_index_checkpoint(ix, i);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->ix = ix;
	f->i = i;
	f->raw = c->kind == LP_INDEX_CP_DEFLATE;
	if (inflateInit2(&f->z, f->raw ? -15 : 31) != Z_OK) {
		free(f);
		return -ENOMEM;
	}
	(void)inflateValidate(&f->z, 0);
	if (f->raw) {
		f->wlen = window_of(ix, i, f->window, err);
		if (f->wlen < 0) {
			int r = f->wlen;

			lp_index_span_inflater_free(f);
			return r;
		}
	} else {
		f->primed = true;
	}
	if (!lp_index_checkpoint_verified(ix, i)) /* trusted: counted */
		lp_index_count_trusted_read(ix);
	*ret = f;
	return 0;
}

int lp_index_span_inflater_feed(struct lp_index_span_inflater *f,
				const uint8_t *src, size_t len, uint8_t *out,
				size_t cap, size_t *done, struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(f->ix, f->i);

	if (!f->primed && len) {
		if (c->bits) {
			if (inflatePrime(&f->z, c->bits,
					 src[0] >> (8 - c->bits)) != Z_OK)
				return -EINVAL;
			src++;
			len--;
		}
		if (inflateSetDictionary(&f->z, f->window, (uInt)f->wlen) !=
		    Z_OK)
			return -EINVAL;
		f->primed = true;
	}
	f->z.next_in = (Bytef *)src;
	f->z.avail_in = (uInt)len;
	while (f->z.avail_in > 0) {
		int zr;

		if (f->trailer) {
			uInt n = f->trailer < f->z.avail_in ? f->trailer :
							      f->z.avail_in;

			f->z.next_in += n;
			f->z.avail_in -= n;
			f->trailer -= n;
			if (!f->trailer) {
				if (inflateReset2(&f->z, 31) != Z_OK)
					return -EINVAL;
				(void)inflateValidate(&f->z, 0);
				f->raw = false;
			}
			continue;
		}
		if (*done >= cap)
			break; /* the span's end: the rest is the next's */
		f->z.next_out = out + *done;
		f->z.avail_out = (uInt)(cap - *done);
		zr = inflate(&f->z, Z_NO_FLUSH);
		*done = cap - f->z.avail_out;
		if (zr == Z_STREAM_END) {
			if (f->raw) {
				f->trailer = GZIP_TRAILER;
			} else if (inflateReset(&f->z) != Z_OK) {
				return -EINVAL;
			}
			continue;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return lp_err_set(err, -EBADMSG,
					  "gzip index span #%zu: corrupt "
					  "deflate data",
					  f->i);
		if (zr == Z_BUF_ERROR && f->z.avail_out)
			break;
	}
	return 0;
}

int lp_index_span_inflater_end(struct lp_index_span_inflater *f, size_t done,
			       size_t cap, struct lp_err *err)
{
	if (done != cap || f->trailer)
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu inflates to %zu "
				  "bytes, its checkpoints say %zu",
				  f->i, done, cap);
	return 0;
}

void lp_index_span_inflater_free(struct lp_index_span_inflater *f)
{
	if (!f)
		return;
	inflateEnd(&f->z);
	free(f);
}

/* @blob is the size @ix says its layer is: -EBADMSG otherwise */
static int check_blob(const struct lp_index *ix, struct lp_blob *blob,
		      struct lp_err *err)
{
	if (lp_blob_size(blob) != lp_index_blob_size(ix))
		return lp_err_set(err, -EBADMSG,
				  "%s has %llu bytes, its gzip index says %llu",
				  lp_blob_name(blob),
				  (unsigned long long)lp_blob_size(blob),
				  (unsigned long long)lp_index_blob_size(ix));
	return 0;
}

static int stream_open(const struct lp_index *ix, struct lp_blob *blob,
		       uint64_t off, bool hash, struct lp_index_ahead *ahead,
		       struct lp_index_stream **ret_s, struct lp_err *err)
{
	struct lp_index_stream *s = NULL;
	size_t start;
	int r;

	r = check_blob(ix, blob, err);
	if (r < 0)
		return r;
	if (off > lp_index_uncompressed_size(ix))
		return lp_err_set(
			err, -ERANGE, "offset %llu past the layer's %llu bytes",
			(unsigned long long)off,
			(unsigned long long)lp_index_uncompressed_size(ix));
	/* the last proven checkpoint at or before @off's span (a lying window
	 * or offset must never be where inflating starts) */
	start = lp_index_last_verified(ix, lp_index_span_of(ix, off));
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ix = ix;
	s->blob = lp_blob_ref(blob);
	s->span = SIZE_MAX;
	s->ahead = ahead;
	r = hash ? lp_sha256_new(&s->hash) : 0;
	if (r == 0)
		r = start_at(s, start, err);
	if (r == 0)
		r = lp_index_stream_skip(s, off - s->pos, err);
	/* at a checkpoint: go on to its span now, as a stream started there
	 * would have (its digest is checked at open) */
	if (r == 0 && s->boundary)
		r = next_span(s, err);
	if (r < 0) {
		lp_index_stream_free(s);
		return r;
	}
	*ret_s = s;
	return 0;
}

int lp_index_stream_open(const struct lp_index *ix, struct lp_blob *blob,
			 uint64_t off, struct lp_index_stream **ret_s,
			 struct lp_err *err)
{
	return stream_open(ix, blob, off, false, NULL, ret_s, err);
}

int lp_index_prove_open(const struct lp_index *ix, struct lp_blob *blob,
			struct lp_index_ahead *ahead,
			struct lp_index_stream **ret_s, struct lp_err *err)
{
	return stream_open(ix, blob, 0, true, ahead, ret_s, err);
}

/*
 * A stream that inflated its way to checkpoint @i knows the true window
 * there: compare the index's (a lying window would make reads that start
 * at @i serve other bytes than the layer holds).
 */
static int check_window(struct lp_index_stream *s, size_t i, struct lp_err *err)
{
	uint8_t *mine = NULL, *theirs = NULL;
	uInt n = 0;
	int r;

	mine = malloc(LP_INDEX_WINDOW);
	theirs = malloc(LP_INDEX_WINDOW);
	if (!mine || !theirs) {
		r = -ENOMEM;
		goto out;
	}
	r = window_of(s->ix, i, theirs, err);
	if (r < 0)
		goto out;
	if (inflateGetDictionary(&s->z, mine, &n) != Z_OK || n != (uInt)r ||
	    memcmp(mine, theirs, n)) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip index checkpoint #%zu: its window is not "
			       "the layer's (the index lies)",
			       i);
		goto out;
	}
	r = 0;
out:
	free(mine);
	free(theirs);
	return r;
}

/*
 * Inflate at checkpoint @i (reached from a proven one) stands where @i's
 * record says: a deflate block boundary with its bit offset and window, or
 * a member start. Then @i is proven.
 */
static int check_checkpoint(struct lp_index_stream *s, size_t i,
			    struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(s->ix, i);
	int r;

	if (c->kind == LP_INDEX_CP_DEFLATE) {
		/* the twin's window is its own (the primary compares) */
		r = s->perturb ? 0 : check_window(s, i, err);
		if (r < 0)
			return r;
		if (!s->boundary || s->boundary_bits != c->bits)
			return lp_err_set(
				err, -EBADMSG,
				"gzip index checkpoint #%zu: the "
				"layer has no deflate block boundary "
				"at byte %llu bit %u (the index lies)",
				i, (unsigned long long)c->in,
				(unsigned)c->bits);
	} else if (!s->member_start) {
		return lp_err_set(err, -EBADMSG,
				  "gzip index checkpoint #%zu: no gzip member "
				  "of the layer starts at byte %llu (the index "
				  "lies)",
				  i, (unsigned long long)c->in);
	}
	if (s->unproven)
		return 0;
	if (s->hash) /* the proving pass: where it is, for its waiters */
		lp_index_prover_at(s->ix, i);
	lp_index_checkpoint_mark_verified(s->ix, i);
	lp_index_proven_notify(s->ix);
	return 0;
}

/* the span's bytes are used up and inflate has given all it can */
static int next_span(struct lp_index_stream *s, struct lp_err *err)
{
	uint64_t want = lp_index_span_out_end(s->ix, s->span);
	int r;

	if (s->pos != want)
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu inflates to offset "
				  "%llu, its checkpoints say %llu",
				  s->span, (unsigned long long)s->pos,
				  (unsigned long long)want);
	if (s->span + 1 >= lp_index_nr_checkpoints(s->ix))
		return lp_err_set(err, -EBADMSG,
				  "gzip layer %s ends before offset %llu",
				  src_name(s), (unsigned long long)s->pos);
	r = check_checkpoint(s, s->span + 1, err);
	if (r < 0)
		return r;
	s->boundary = false;
	return load_span(s, s->span + 1, err);
}

static int read_some(struct lp_index_stream *s, void *buf, size_t len,
		     struct lp_err *err);

int lp_index_stream_read(struct lp_index_stream *s, void *buf, size_t len,
			 struct lp_err *err)
{
	uint8_t *p = buf;
	int r = 0;

	/* inflate's counts are 32-bit */
	while (len && r == 0) {
		size_t n = len < READ_SLICE ? len : READ_SLICE;

		r = read_some(s, p, n, err);
		p += n;
		len -= n;
	}
	return r;
}

static int read_some(struct lp_index_stream *s, void *buf, size_t len,
		     struct lp_err *err)
{
	uint64_t end;
	int r = 0;

	if (len > lp_index_uncompressed_size(s->ix) - s->pos)
		return lp_err_set(
			err, -ERANGE,
			"read of %zu bytes at %llu past the layer's "
			"%llu bytes",
			len, (unsigned long long)s->pos,
			(unsigned long long)lp_index_uncompressed_size(s->ix));
	s->z.next_out = buf;
	s->z.avail_out = (uInt)len;
	while (s->z.avail_out > 0) {
		uInt in0 = s->z.avail_in, out0 = s->z.avail_out;
		int zr;

		if (s->boundary) {
			/* inflating on would decode the next block's header
			 * from the bits it holds: check the checkpoint first */
			r = next_span(s, err);
			if (r < 0)
				return r;
			continue;
		}
		if (s->trailer) {
			uInt n = s->trailer < in0 ? s->trailer : in0;

			if (n == 0) {
				r = next_span(s, err);
				if (r < 0)
					return r;
				continue;
			}
			s->z.next_in += n;
			s->z.avail_in -= n;
			s->trailer -= n;
			if (!s->trailer) {
				if (inflateReset2(&s->z, 31) != Z_OK ||
				    inflateValidate(&s->z, 0) != Z_OK)
					return -EINVAL;
				s->raw = false;
				s->member_start = true;
			}
			continue;
		}
		/* Z_BLOCK: stop at every block boundary (see the top) */
		zr = inflate(&s->z, Z_BLOCK);
		if (s->z.avail_in != in0)
			s->member_start = false;
		if (s->z.avail_in == 0 && (s->z.data_type & 128) &&
		    !(s->z.data_type & 64)) {
			s->boundary = true;
			s->boundary_bits = (uint8_t)(s->z.data_type & 7);
		}
		s->pos += out0 - s->z.avail_out;
		s->stats.bytes_inflated += out0 - s->z.avail_out;
		end = lp_index_span_out_end(s->ix, s->span);
		if (s->pos > end)
			return lp_err_set(err, -EBADMSG,
					  "gzip index span #%zu inflates past "
					  "offset %llu, where its checkpoints "
					  "end it",
					  s->span, (unsigned long long)end);
		if (zr == Z_STREAM_END) {
			if (s->raw) {
				s->trailer = GZIP_TRAILER;
			} else {
				if (inflateReset(&s->z) != Z_OK)
					return -EINVAL;
				s->member_start = true;
			}
			continue;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return lp_err_set(err, -EBADMSG,
					  "gzip layer %s: corrupt deflate data "
					  "in span #%zu (near offset %llu): %s",
					  src_name(s), s->span,
					  (unsigned long long)s->pos,
					  s->z.msg ? s->z.msg : "inflate");
		if (s->z.avail_in == 0 && s->z.avail_out == out0 && in0 == 0) {
			r = next_span(s, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int lp_index_stream_skip(struct lp_index_stream *s, uint64_t len,
			 struct lp_err *err)
{
	uint8_t *tmp = NULL;
	int r = 0;

	if (!len)
		return 0;
	tmp = malloc(SKIP_BUF);
	if (!tmp)
		return -ENOMEM;
	while (len && r == 0) {
		size_t n = (size_t)lp_min_u64(len, SKIP_BUF);

		r = lp_index_stream_read(s, tmp, n, err);
		len -= n;
	}
	free(tmp);
	return r;
}

/*
 * Inflate the layer's [@off, @off + @len) into @dst from checkpoint @first,
 * reading the @src_len blob bytes at @src (blob offset @base: spans @first
 * on). @twin: the window-independence check's second decode (its window
 * flipped, digests and windows already compared by the first).
 */
static int decode_given(const struct lp_index *ix, size_t first,
			const uint8_t *src, size_t src_len, uint64_t base,
			uint64_t off, void *dst, size_t len, bool twin,
			struct lp_err *err)
{
	struct lp_index_stream s = { .ix = ix,
				     .span = SIZE_MAX,
				     .given = src,
				     .given_len = src_len,
				     .given_base = base,
				     .perturb = twin,
				     .no_digest = twin };
	int r;

	/* the twin compares no window: it proves nothing, whatever became
	 * proven meanwhile */
	s.unproven = twin || !lp_index_checkpoint_verified(ix, first);
	r = start_at(&s, first, err);
	if (r == 0)
		r = lp_index_stream_skip(&s, off - s.pos, err);
	if (r == 0)
		r = lp_index_stream_read(&s, dst, len, err);
	if (s.z_live)
		inflateEnd(&s.z);
	return r;
}

/*
 * decode_given() with the window rule: from a proven checkpoint or a
 * member start, one decode. From a deflate checkpoint nobody has proven,
 * the bytes are decoded twice, with the index's window and with every
 * byte of it flipped. Inflate's output is literals (from the verified
 * compressed bytes) and copies of earlier output or of the window, so a
 * byte that derives from the window comes out flipped in the twin and one
 * that does not comes out the same: equal outputs are the layer's bytes
 * whatever the window (given the checkpoint's position), and anything else
 * is refused with -EAGAIN (@dst zeroed) for the caller to read another way.
 */
static int decode_checked(const struct lp_index *ix, size_t first,
			  const uint8_t *src, size_t src_len, uint64_t base,
			  uint64_t off, void *dst, size_t len,
			  struct lp_err *err)
{
	const struct lp_index_checkpoint *c = lp_index_checkpoint(ix, first);
	uint8_t *twin = NULL;
	int r;

	r = decode_given(ix, first, src, src_len, base, off, dst, len, false,
			 err);
	if (r < 0 || lp_index_checkpoint_verified(ix, first))
		return r;
	if (lp_index_trusted(ix)) { /* signed: believed as if proven */
		lp_index_count_trusted_read(ix);
		return r;
	}
	if (c->kind != LP_INDEX_CP_DEFLATE)
		return r;
	twin = malloc(len ? len : 1);
	if (!twin)
		return -ENOMEM;
	r = decode_given(ix, first, src, src_len, base, off, twin, len, true,
			 NULL);
	if (r < 0 || memcmp(dst, twin, len)) {
		memset(dst, 0, len);
		r = lp_err_set(err, -EAGAIN,
			       "gzip index: bytes %llu+%zu depend on the "
			       "window of checkpoint #%zu, which no stream "
			       "has proven yet",
			       (unsigned long long)off, len, first);
	}
	free(twin);
	return r;
}

int lp_index_span_decode(const struct lp_index *ix, size_t i, const void *src,
			 size_t src_len, uint64_t skip, void *dst,
			 size_t dst_len, struct lp_err *err)
{
	uint64_t out, end, start, stop;

	if (i >= lp_index_nr_checkpoints(ix))
		return lp_err_set(err, -ERANGE, "gzip index has no span #%zu",
				  i);
	out = lp_index_checkpoint(ix, i)->out;
	end = lp_index_span_out_end(ix, i);
	if (skip > end - out || dst_len > end - out - skip)
		return lp_err_set(err, -ERANGE,
				  "%llu + %zu bytes past the end of gzip index "
				  "span #%zu (%llu bytes)",
				  (unsigned long long)skip, dst_len, i,
				  (unsigned long long)(end - out));
	lp_index_span_range(ix, i, &start, &stop);
	if (src_len != stop - start)
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu [%llu, %llu): %zu "
				  "bytes given (a span's exact bytes are "
				  "needed)",
				  i, (unsigned long long)start,
				  (unsigned long long)stop, src_len);
	return decode_checked(ix, i, src, src_len, start, out + skip, dst,
			      dst_len, err);
}

/* the last checkpoint at or before uncompressed offset @off */
static void add_stats(struct lp_index_stream_stats *to,
		      const struct lp_index_stream_stats *st)
{
	if (!to)
		return;
	to->bytes_fetched += st->bytes_fetched;
	to->spans += st->spans;
	to->bytes_inflated += st->bytes_inflated;
	to->window_rereads += st->window_rereads;
}

/* lp_index_read()s running at once in the process (see the top) */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int busy; /* protected by lock */
} read_slots = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void read_slot_get(void)
{
	pthread_mutex_lock(&read_slots.lock);
	while (read_slots.busy >= LP_INDEX_READ_MAX_CONCURRENT)
		pthread_cond_wait(&read_slots.cond, &read_slots.lock);
	read_slots.busy++;
	pthread_mutex_unlock(&read_slots.lock);
}

static void read_slot_put(void)
{
	pthread_mutex_lock(&read_slots.lock);
	read_slots.busy--;
	pthread_cond_signal(&read_slots.cond);
	pthread_mutex_unlock(&read_slots.lock);
}

/*
 * The blob's [@start, @end) into @dst, from the spans @i on (span @i holds
 * @start), each through the span cache (lp_index_span_get(): fetched once,
 * its digest compared); the bytes fetched counted in @st.
 */
static int gather(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		  uint64_t start, uint64_t end, uint8_t *dst,
		  struct lp_index_stream_stats *st, struct lp_err *err)
{
	struct lp_index_span *sp = NULL;
	uint64_t at = start, s0, s1, n;
	int r = 0;

	for (; at < end; i++) {
		if (i >= lp_index_nr_checkpoints(ix))
			return lp_err_set(err, -ERANGE,
					  "gzip index: no span holds blob "
					  "byte %llu",
					  (unsigned long long)at);
		lp_index_span_range(ix, i, &s0, &s1);
		if (s0 > at || s1 <= at)
			return lp_err_set(err, -EBADMSG,
					  "gzip index span #%zu [%llu, %llu) "
					  "does not hold blob byte %llu",
					  i, (unsigned long long)s0,
					  (unsigned long long)s1,
					  (unsigned long long)at);
		r = lp_index_span_get(ix, blob, i, &sp, st, err);
		if (r < 0)
			return r;
		n = lp_min_u64(s1, end) - at;
		memcpy(dst + (at - start), lp_index_span_data(sp) + (at - s0),
		       (size_t)n);
		lp_index_span_put(sp);
		at += n;
	}
	return 0;
}

/* the blob's [@start, @end) (from span @i on) onto the front of *@src
 * (which holds [@end, ...), *@src_len bytes), grown in place (no second
 * copy of the bytes held); counted in @st */
static int prepend(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		   uint64_t start, uint64_t end, uint8_t **src, size_t *src_len,
		   struct lp_index_stream_stats *st, struct lp_err *err)
{
	size_t n = (size_t)(end - start);
	uint8_t *p = realloc(*src, n + *src_len);
	int r;

	if (!p)
		return -ENOMEM;
	*src = p;
	memmove(p + n, p, *src_len);
	r = gather(ix, blob, i, start, end, p, st, err);
	if (r < 0) {
		/* *src holds garbage now: the caller frees it */
		return r;
	}
	*src_len += n;
	return 0;
}

int lp_index_read(const struct lp_index *ix, struct lp_blob *blob, uint64_t off,
		  void *buf, size_t len, const void *span_src, size_t span_len,
		  bool proven_only, struct lp_index_stream_stats *stats,
		  struct lp_err *err)
{
	struct lp_index_stream_stats st = { 0 };
	struct lp_index_stream *s = NULL;
	struct lp_err why = { 0 };
	uint64_t base, end, s0, s1, dist;
	size_t i, j, k, p, tries = 0, src_len = 0;
	uint8_t *src = NULL;
	bool slot = false;
	int r;

	r = check_blob(ix, blob, err);
	if (r < 0)
		return r;
	if (off > lp_index_uncompressed_size(ix) ||
	    len > lp_index_uncompressed_size(ix) - off)
		return lp_err_set(
			err, -ERANGE,
			"%zu bytes at %llu past the layer's %llu bytes", len,
			(unsigned long long)off,
			(unsigned long long)lp_index_uncompressed_size(ix));
	i = lp_index_span_of(ix, off);
	k = len ? lp_index_span_of(ix, off + len - 1) : i;
	p = lp_index_last_verified(ix, i);
	/* a trusted index (lp_index_trust()): every checkpoint is a start */
	if (lp_index_trusted(ix))
		p = i;
	/* proven-only, span i unproven: a proving pass on its way there
	 * proves it no later than a stream of our own would, and without
	 * inflating (or, beyond the span cache's limit, fetching) the same
	 * spans twice */
	if (proven_only && p != i && lp_index_wait_prover(ix, i))
		p = i;
	lp_index_span_range(ix, i, &base, &s1);
	lp_index_span_range(ix, k, &s0, &end);
	if (end - base > LP_INDEX_READ_MAX_IN || (proven_only && p != i))
		goto stream; /* a long read, or no unproven start: a stream */
	/* the slot bounds the src buffers below (up to LP_INDEX_READ_MAX_IN
	 * each); a stream holds a few windows only and may take minutes:
	 * it never holds a slot, or two slow streams would stall every
	 * index read of the process */
	read_slot_get();
	slot = true;
	src_len = (size_t)(end - base);
	src = malloc(src_len);
	if (!src) {
		r = -ENOMEM;
		goto out;
	}
	if (span_src && k == i && span_len == src_len) {
		memcpy(src, span_src, src_len); /* the caller has span i */
	} else {
		r = gather(ix, blob, i, base, end, src, &st, err);
		if (r < 0)
			goto out;
	}
	/*
	 * From span i back: the first start the bytes do not depend on the
	 * window of, or a proven one. Each try starts twice as far before
	 * @off as the one before (at least a span further): one deflate copy
	 * reaches 32 KiB back, but chains of copies carry a window's bytes
	 * megabytes on in text (python sources: one 2 MiB span back mostly
	 * does, four 256 KiB spans often did not), and doubling keeps the
	 * inflating to about twice the distance finally needed.
	 */
	for (j = i, dist = LP_INDEX_READ_BACK_FIRST;; dist *= 2) {
		size_t nj;

		memset(&why, 0, sizeof(why));
		r = decode_checked(ix, j, src, src_len, base, off, buf, len,
				   &why);
		if (r != -EAGAIN || j == p || dist > LP_INDEX_READ_BACK_MAX)
			break;
		nj = lp_index_span_of(ix, off > dist ? off - dist : 0);
		if (nj >= j)
			nj = j - 1;
		if (nj < p)
			nj = p;
		lp_index_span_range(ix, nj, &s0, &s1);
		if (end - s0 > LP_INDEX_READ_MAX_IN)
			break;
		r = prepend(ix, blob, nj, s0, base, &src, &src_len, &st, err);
		if (r < 0)
			goto out;
		base = s0;
		j = nj;
		tries++;
	}
	if (tries)
		st.window_rereads++;
	if (r != -EAGAIN) {
		if (r < 0)
			lp_err_set(err, r, "%s", why.msg);
		goto out;
	}
	if (!tries)
		st.window_rereads++;
stream:
	/* window-dependent as far back as we look: inflate from the last
	 * proven checkpoint, proving every one on the way */
	free(src);
	src = NULL;
	if (slot)
		read_slot_put();
	slot = false;
	r = lp_index_stream_open(ix, blob, off, &s, err);
	if (r == 0)
		r = lp_index_stream_read(s, buf, len, err);
	if (s) {
		struct lp_index_stream_stats sst;

		lp_index_stream_stats(s, &sst);
		add_stats(&st, &sst);
	}
out:
	add_stats(stats, &st);
	lp_index_stream_free(s);
	free(src);
	if (slot)
		read_slot_put();
	return r;
}

int lp_index_prove_finish(struct lp_index_stream *s, struct lp_err *err)
{
	const size_t n = lp_index_nr_checkpoints(s->ix);
	struct lp_digest d;
	uint8_t one;
	int r, zr;

	if (s->pos != lp_index_uncompressed_size(s->ix) || !s->hash || s->raw)
		return lp_err_set(err, -EINVAL,
				  "gzip index: no proving "
				  "stream at the layer's end");
	/* what is left of the blob must inflate to nothing: the end of the
	 * last deflate stream, its trailer, empty members */
	for (;;) {
		uInt in0 = s->z.avail_in;

		if (s->boundary) {
			if (s->span + 1 >= n)
				break; /* truncated: no member start */
			r = next_span(s, err);
			if (r < 0)
				return r;
			continue;
		}
		s->z.next_out = &one;
		s->z.avail_out = 1;
		zr = inflate(&s->z, Z_BLOCK);
		if (s->z.avail_out == 0)
			return lp_err_set(err, -EBADMSG,
					  "gzip layer %s holds more than the "
					  "%llu bytes its index says",
					  src_name(s),
					  (unsigned long long)s->pos);
		if (s->z.avail_in != in0)
			s->member_start = false;
		if (s->z.avail_in == 0 && (s->z.data_type & 128) &&
		    !(s->z.data_type & 64)) {
			s->boundary = true;
			s->boundary_bits = (uint8_t)(s->z.data_type & 7);
		}
		if (zr == Z_STREAM_END) {
			if (inflateReset(&s->z) != Z_OK)
				return -EINVAL;
			s->member_start = true;
			s->boundary = false;
			continue;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return lp_err_set(err, -EBADMSG,
					  "gzip layer %s: corrupt data after "
					  "its last byte (span #%zu): %s",
					  src_name(s), s->span,
					  s->z.msg ? s->z.msg : "inflate");
		if (s->z.avail_in == 0 && in0 == 0 && !s->boundary) {
			if (s->span + 1 >= n)
				break;
			r = next_span(s, err);
			if (r < 0)
				return r;
		}
	}
	if (!s->member_start)
		return lp_err_set(err, -EBADMSG,
				  "gzip layer %s ends inside a gzip member",
				  src_name(s));
	if (s->hashed_to != lp_index_blob_size(s->ix))
		return lp_err_set(
			err, -EBADMSG,
			"gzip index: its spans cover %llu of the "
			"blob's %llu bytes",
			(unsigned long long)s->hashed_to,
			(unsigned long long)lp_index_blob_size(s->ix));
	lp_sha256_final(s->hash, &d);
	if (!lp_digest_equal(&d, lp_index_blob_digest(s->ix)))
		return lp_err_set(err, -EBADMSG,
				  "gzip layer %s: its sha256 is not the "
				  "digest its index names (the blob is not "
				  "the layer indexed)",
				  src_name(s));
	return 0;
}

uint64_t lp_index_stream_pos(const struct lp_index_stream *s)
{
	return s->pos;
}

void lp_index_stream_stats(const struct lp_index_stream *s,
			   struct lp_index_stream_stats *ret)
{
	*ret = s->stats;
}

void lp_index_stream_free(struct lp_index_stream *s)
{
	if (!s)
		return;
	if (s->z_live)
		inflateEnd(&s->z);
	lp_blob_unref(s->blob);
	lp_sha256_free(s->hash);
	lp_index_span_put(s->cur);
	free(s);
}
