// SPDX-License-Identifier: Apache-2.0
/*
 * The proving pass of a layer mounted through its gzip index (docs/format.md,
 * "mounting through a gzip index"): the index comes from the network and
 * the layer's digest is the only trust anchor, so a mount reads the whole
 * layer once, in order, from its first byte, and checks everything the
 * index claims against it: every checkpoint (offset, bit offset or member
 * start, window: the stream proves each one it passes, index_stream.c),
 * every span digest, the file table against the tar (each entry's header
 * blocks against its record with the one tar reader the caller passes;
 * the entries one after another with nothing between them but what the
 * builder leaves out: a root entry that is not a directory; nothing after
 * the last but end-of-archive zeros), and the sha256 of the whole blob
 * against the digest the index names. Any difference is a lie, reported
 * with -EBADMSG; the caller (fs/) then refuses every read of the mount.
 * As it goes it tells its caller (lp_index_prove_hooks) each file record
 * whose header it found true and each span's whole output, so that
 * readers need neither check nor inflate again what it did.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

#define TAR_BLOCK 512
#define PROVE_STEP (1024 * 1024) /* bytes inflated between stop checks */

struct prove {
	const struct lp_index *ix;
	struct lp_index_stream *s;
	const struct lp_index_prove_hooks *h; /* never NULL */
	uint8_t *buf; /* LP_INDEX_MAX_HEADER bytes */
	struct lp_err *err;
	/* the output of span out_i so far (h->decoded): out_have of its
	 * out_len bytes; out_skip: not told (too big, or begun before the
	 * pass); out NULL until the first span to keep */
	uint8_t *out;
	size_t out_i;
	uint64_t out_len, out_have;
	bool out_skip;
};

static uint64_t round_block(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

static bool stopped(struct prove *p)
{
	return p->h->stop && p->h->stop(p->h->arg);
}

/* @n bytes the stream gave at uncompressed offset @at: to the output of
 * their spans, each told to h->decoded once it is whole */
static void keep_output(struct prove *p, uint64_t at, const uint8_t *b,
			size_t n)
{
	while (n) {
		size_t k;

		if (p->out_have == p->out_len) {
			/* the span holding @at begins (the pass reads on
			 * from byte 0, so at its first byte) */
			const size_t i = lp_index_span_of(p->ix, at);
			const uint64_t base =
				lp_index_checkpoint(p->ix, i)->out;

			p->out_i = i;
			p->out_len = lp_index_span_out_end(p->ix, i) - base;
			p->out_have = at - base;
			p->out_skip =
				p->out_have || p->out_len > p->h->decoded_max;
			if (!p->out_len || p->out_have >= p->out_len)
				return; /* cannot be: checkpoints increase */
			if (!p->out_skip && !p->out) {
				p->out = malloc(p->h->decoded_max);
				if (!p->out) {
					/* an optimisation: the pass goes on */
					p->out_skip = true;
				}
			}
		}
		k = (size_t)lp_min_u64(n, p->out_len - p->out_have);
		if (!p->out_skip)
			memcpy(p->out + p->out_have, b, k);
		p->out_have += k;
		at += k;
		b += k;
		n -= k;
		if (p->out_have == p->out_len && !p->out_skip)
			p->h->decoded(p->h->arg, p->out_i, p->out,
				      (size_t)p->out_len);
	}
}

/*
 * The stream's next @n bytes into @buf (kept for h->decoded). With
 * h->decoded, read in pieces that end at span ends: a read that crosses
 * into span i + 1 proves checkpoint i + 1 (and loads the span, a fetch
 * perhaps) before it returns, and span i's output is told first, so that
 * readers waiting for the pass to prove i + 1 (fs/index_fetch.c,
 * read_span_piece()) find it.
 */
static int take(struct prove *p, uint8_t *buf, size_t n)
{
	while (n) {
		const uint64_t at = lp_index_stream_pos(p->s);
		size_t k = n;
		int r;

		if (p->h->decoded) {
			const uint64_t end = lp_index_span_out_end(
				p->ix, lp_index_span_of(p->ix, at));

			if (end > at && end - at < k)
				k = (size_t)(end - at);
		}
		r = lp_index_stream_read(p->s, buf, k, p->err);
		if (r < 0)
			return r;
		if (p->h->decoded)
			keep_output(p, at, buf, k);
		buf += k;
		n -= k;
	}
	return 0;
}

/* read and drop the stream's next @len bytes, or with @zeros check that
 * they are all zero; a stop request ends it with -ECANCELED */
static int pass(struct prove *p, uint64_t len, bool zeros)
{
	while (len) {
		size_t n = (size_t)lp_min_u64(len, LP_INDEX_MAX_HEADER), k;
		int r;

		if (stopped(p))
			return -ECANCELED;
		r = take(p, p->buf, n);
		if (r < 0)
			return r;
		for (k = 0; zeros && k < n; k++)
			if (p->buf[k])
				return lp_err_set(
					p->err, -EBADMSG,
					"gzip index: the layer's tar has "
					"bytes at offset %llu after the last "
					"entry of the file table (the index "
					"leaves something out)",
					(unsigned long long)(lp_index_stream_pos(
								     p->s) -
							     n + k));
		len -= n;
	}
	return 0;
}

/* an octal tar number field, or -1 (base-256 and junk refused) */
static int64_t octal(const uint8_t *f, size_t len)
{
	int64_t v = 0;
	size_t i = 0;

	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++)
		v = v * 8 + (f[i] - '0');
	if (i < len && f[i] != ' ' && f[i] != 0)
		return -1;
	return v;
}

/*
 * The tar bytes [@from, @to) between two entries of the file table: only
 * what the builder leaves out may be there, entries of the root ("./")
 * that are not directories; anything else is an entry the table hides
 * (a table that skips an archive member could point a path at a header
 * inside that member's data).
 */
static int check_gap(struct prove *p, uint64_t from, uint64_t to)
{
	while (from < to) {
		const char *name = (const char *)p->buf;
		int64_t size;
		int r;

		if (to - from < TAR_BLOCK)
			goto bad;
		r = take(p, p->buf, TAR_BLOCK);
		if (r < 0)
			return r;
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		while (name[0] == '/')
			name++;
		size = octal(p->buf + 124, 12);
		if (memchr(p->buf, 0, 100) == NULL ||
		    (name[0] && strcmp(name, ".")) || p->buf[345] ||
		    strchr("5xgLKXA", p->buf[156]) || size < 0 ||
		    (uint64_t)size > to - from - TAR_BLOCK)
			goto bad;
		from += TAR_BLOCK + round_block((uint64_t)size);
		if (from > to)
			goto bad;
		r = pass(p, round_block((uint64_t)size), false);
		if (r < 0)
			return r;
	}
	return 0;
bad:
	return lp_err_set(p->err, -EBADMSG,
			  "gzip index: the layer's tar has an entry at "
			  "offset %llu that its file table leaves out",
			  (unsigned long long)from);
}

int lp_index_prove(const struct lp_index *ix, struct lp_blob *blob,
		   lp_index_header_check_fn check, lp_index_stop_fn stop,
		   void *arg, struct lp_index_stream_stats *stats,
		   struct lp_err *err)
{
	const struct lp_index_prove_hooks h = { .stop = stop, .arg = arg };

	return lp_index_prove_with(ix, blob, check, &h, stats, err);
}

int lp_index_prove_with(const struct lp_index *ix, struct lp_blob *blob,
			lp_index_header_check_fn check,
			const struct lp_index_prove_hooks *hooks,
			struct lp_index_stream_stats *stats, struct lp_err *err)
{
	static const struct lp_index_prove_hooks none;
	struct prove p = { .ix = ix, .h = hooks ? hooks : &none, .err = err };
	const uint64_t usize = lp_index_uncompressed_size(ix);
	struct lp_index_ahead *ahead = NULL;
	uint64_t cur = 0;
	bool prover = false;
	size_t k;
	int r;

	p.buf = malloc(LP_INDEX_MAX_HEADER);
	if (!p.buf) {
		r = -ENOMEM;
		goto out;
	}
	/* asked before a byte is fetched: a caller that puts the pass off
	 * (fs/index_proof.c: a trusted index's pass yields to on-demand
	 * reads) would otherwise have the read-ahead's first requests
	 * compete with those reads for the link */
	if (stopped(&p)) {
		r = -ECANCELED;
		goto out;
	}
	lp_index_prover_begin(ix); /* readers may wait for the pass */
	prover = true;
	/* big requests ahead of the pass (index_pass_fetch.c); without it
	 * (no memory for its threads) the pass fetches span by span */
	if (lp_index_ahead_new(ix, blob, &ahead) < 0)
		ahead = NULL;
	r = lp_index_prove_open(ix, blob, ahead, &p.s, err);
	for (k = 0; r == 0 && k < lp_index_nr_files(ix); k++) {
		const struct lp_index_file *f = lp_index_file(ix, k);
		size_t len = (size_t)(f->data_off - f->hdr_off);
		uint64_t end = f->data_off + round_block(f->size);

		if (f->hdr_off < cur || end > usize) {
			r = lp_err_set(err, -EBADMSG,
				       "gzip index: file table entry #%zu "
				       "(%s) overlaps the one before or runs "
				       "past the layer's end",
				       k, f->path);
			break;
		}
		r = check_gap(&p, cur, f->hdr_off);
		if (r == 0)
			r = take(&p, p.buf, len);
		if (r == 0)
			r = check(ix, k, p.buf, len, err);
		if (r == 0 && p.h->checked)
			p.h->checked(p.h->arg, k);
		if (r == 0)
			r = pass(&p, end - f->data_off, false);
		cur = end;
	}
	if (r == 0)
		r = pass(&p, usize - cur, true); /* end of archive */
	if (r == 0)
		r = lp_index_prove_finish(p.s, err);
out:
	if (p.s && stats) {
		struct lp_index_stream_stats st;

		lp_index_stream_stats(p.s, &st);
		lp_index_ahead_stats(ahead, &st);
		stats->bytes_fetched += st.bytes_fetched;
		stats->spans += st.spans;
		stats->bytes_inflated += st.bytes_inflated;
	}
	lp_index_stream_free(p.s);
	lp_index_ahead_free(ahead); /* waits for its requests in flight */
	if (prover) /* its waiters stream themselves if it is not through */
		lp_index_prover_end(ix);
	free(p.buf);
	free(p.out);
	return r;
}
