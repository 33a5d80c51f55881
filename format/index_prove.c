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
	lp_index_stop_fn stop;
	void *arg;
	uint8_t *buf; /* LP_INDEX_MAX_HEADER bytes */
	struct lp_err *err;
};

static uint64_t round_block(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* read and drop the stream's next @len bytes, or with @zeros check that
 * they are all zero; a stop request ends it with -ECANCELED */
static int pass(struct prove *p, uint64_t len, bool zeros)
{
	while (len) {
		size_t n = (size_t)lp_min_u64(len, LP_INDEX_MAX_HEADER), k;
		int r;

		if (p->stop && p->stop(p->arg))
			return -ECANCELED;
		r = lp_index_stream_read(p->s, p->buf, n, p->err);
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
		r = lp_index_stream_read(p->s, p->buf, TAR_BLOCK, p->err);
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
	struct prove p = { .ix = ix, .stop = stop, .arg = arg, .err = err };
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
	if (stop && stop(arg)) {
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
			r = lp_index_stream_read(p.s, p.buf, len, err);
		if (r == 0)
			r = check(ix, k, p.buf, len, err);
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
	return r;
}
