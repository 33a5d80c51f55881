// SPDX-License-Identifier: Apache-2.0
/*
 * Filling claimed chunks: the disk tier first, then the blob. Neighbouring
 * chunks that missed both tiers are read with one blob pread of their
 * compressed range (coalescing); when disk-tier hits split a claimed run
 * into several such ranges they go out as one multi-range read (one round
 * trip to a registry that supports it). Then each is decompressed and verified
 * by the format's digest policy for random-access readers (lp_chunk_check();
 * `layer extract` and `layer verify` share the policy and, reading whole
 * files, also accept files only the file digest vouches for) before
 * anything is handed back for publishing (verify then publish, as casync).
 * Results go back through the caller's settle callback: this file neither
 * publishes to the memory tier nor writes the disk tier (fs/pipeline.c
 * does both, the disk write after the publish). Decoders are per thread by
 * construction: a fetch borrows one from a small pool for the length of a
 * run. A layer mounted through a gzip index fills its chunks from the
 * index's spans instead (fs/index_fetch.c).
 *
 * Lock order: decoders.lock is a leaf, held only to push or pop the pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "lp_log.h"

#define FS_PENDING 1 /* res[] value: not filled yet */

int fs_chunk_error_from(struct lp_fs *fs, uint32_t ci, int code,
			const struct lp_err *cause, const char *why,
			struct lp_err *err)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	char path[LP_TOC_MAX_PATH + 1];

	if (!err || err->msg[0])
		return code; /* the first message stands */
	lp_toc_entry_path(fs->toc, c.entry, path, sizeof(path));
	return lp_err_set_from(err, cause, code,
			       "layer %s: file %s: chunk at offset %llu "
			       "(blob offset %llu+%llu): %s",
			       lp_blob_name(fs->blob), path,
			       (unsigned long long)c.chunk_offset,
			       (unsigned long long)c.offset,
			       (unsigned long long)c.compressed_size, why);
}

void fs_chunk_range(const struct lp_fs *fs, const struct lp_toc_chunk *c,
		    uint64_t *ret_start, uint64_t *ret_end)
{
	int sp = fs->ix ? lp_index_span_at(fs->ix, c->offset) : -ENOENT;

	if (sp >= 0) {
		lp_index_span_range(fs->ix, (size_t)sp, ret_start, ret_end);
		return;
	}
	*ret_start = c->offset;
	*ret_end = c->offset + c->compressed_size;
}

int fs_chunk_error(struct lp_fs *fs, uint32_t ci, int code, const char *why,
		   struct lp_err *err)
{
	return fs_chunk_error_from(fs, ci, code, NULL, why, err);
}

static int decoder_get(struct lp_fs *fs, struct lp_chunk_decoder **ret_dec)
{
	struct fs_decoders *d = &fs->decoders;
	struct lp_chunk_decoder *dec = NULL;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	if (d->nr_idle)
		dec = d->idle[--d->nr_idle];
	pthread_mutex_unlock(&d->lock);
	if (!dec)
		r = lp_chunk_decoder_new(fs->comp, &dec);
	if (r == 0)
		*ret_dec = dec;
	return r;
}

static void decoder_put(struct lp_fs *fs, struct lp_chunk_decoder *dec)
{
	struct fs_decoders *d = &fs->decoders;

	lp_chunk_decoder_trim(dec); /* idle: no multi-MiB scratch (budget) */
	pthread_mutex_lock(&d->lock);
	if (d->nr_idle < FS_MAX_IDLE_DECODERS) {
		d->idle[d->nr_idle++] = dec;
		dec = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	lp_chunk_decoder_free(dec);
}

void fs_decoders_destroy(struct fs_decoders *d)
{
	while (d->nr_idle)
		lp_chunk_decoder_free(d->idle[--d->nr_idle]);
	pthread_mutex_destroy(&d->lock);
}

/*
 * chunk @ci's digest could not be read from the TOC's spilled digest table
 * (lp_chunk_digest()'s @code, @why): a local read error, neither the
 * chunk's fault nor its source's, so no verify failure is counted and no
 * host is blamed (no lp_blob_reject()). Logged once per layer, naming it;
 * the reader gets EIO. Returns -EIO, with @err set as fs_chunk_error().
 */
static int digest_table_error(struct lp_fs *fs, uint32_t ci, int code,
			      const struct lp_err *why, struct lp_err *err)
{
	struct lp_err first = { 0 };

	if (atomic_fetch_add(&fs->stats.digest_table_errors, 1) == 0) {
		fs_chunk_error(fs, ci, -EIO, lp_err_str(why, code), &first);
		lp_log_err("%s (a local read error, not the source's: every "
			   "chunk whose digest cannot be read is refused with "
			   "EIO; logged once)",
			   first.msg);
	}
	return fs_chunk_error(fs, ci, -EIO, lp_err_str(why, code), err);
}

/* decode and verify one chunk of a group whose bytes from @start are @src */
static int decode_one(struct lp_fs *fs, struct lp_chunk_decoder *dec,
		      uint32_t ci, const uint8_t *src, uint64_t start,
		      uint8_t *dst, const struct lp_digest *want,
		      struct lp_err *err)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	struct lp_err derr = { 0 };
	char why[LP_ERR_MSG_MAX];
	int r;

	r = lp_chunk_decode(dec, src + (c.offset - start), c.compressed_size,
			    c.inner_offset, dst, c.chunk_size, &derr);
	if (r < 0) {
		atomic_fetch_add(&fs->stats.verify_failures, 1);
		snprintf(why, sizeof(why), "bad compressed data: %s",
			 lp_err_str(&derr, r));
		r = fs_chunk_error(fs, ci, r == -EFBIG ? -EFBIG : -EBADMSG, why,
				   err);
		goto out;
	}
	/* against the digest fs_fetch_run() read for it: no second read */
	r = lp_chunk_check_digest(&c, dst, want, &derr);
	if (r < 0) {
		atomic_fetch_add(&fs->stats.verify_failures, 1);
		r = fs_chunk_error(fs, ci, r, lp_err_str(&derr, r), err);
	}
out:
	if (r == -EBADMSG) /* the next read of it goes to another host */
		lp_blob_reject(fs->blob, c.offset, c.compressed_size);
	return r;
}

/* one claimed run being filled; each chunk is handed to the cache (settled)
 * as soon as its result is known */
struct fetch_run {
	struct lp_fs *fs;
	uint32_t first, n;
	fs_settle_fn settle;
	void *settle_arg;
	uint8_t **data; /* [n]; owned until settled */
	/* [n]: each chunk's digest, read once (lp_chunk_digest()) for the
	 * disk-tier lookup, the verify and the disk-tier write */
	struct lp_digest *want;
	int *res; /* [n]; FS_PENDING until settled */
	struct lp_err *err; /* the first chunk's message */
};

/* hand chunk @i's result @r on: data[i] passes to the callback (or is
 * freed) */
static void settle_ex(struct fetch_run *run, uint32_t i, int r, bool retryable,
		      bool from_disk)
{
	run->res[i] = r;
	if (r < 0) {
		free(run->data[i]);
		run->data[i] = NULL;
	}
	run->settle(run->settle_arg, run->first + i, run->data[i], r, retryable,
		    from_disk, r == 0 ? &run->want[i] : NULL);
	run->data[i] = NULL;
}

/* settle_ex() for a fetched result that nobody marked retryable */
static void settle(struct fetch_run *run, uint32_t i, int r)
{
	settle_ex(run, i, r, false, false);
}

/* pending chunks [first + i, first + j): one contiguous blob range */
struct fetch_group {
	struct fetch_run *run;
	uint32_t i, j;
	uint64_t start, end;
	uint8_t *src; /* the compressed bytes [start, end) */
	uint32_t next; /* streaming: the first chunk not settled yet */
	struct lp_chunk_decoder *dec;
};

/* the blob read for chunks [from, j) failed with @r, @cause saying why */
static void group_fail(struct fetch_group *g, uint32_t from, int r,
		       const struct lp_err *cause)
{
	struct fetch_run *run = g->run;
	uint32_t k;

	for (k = from; k < g->j; k++)
		settle_ex(run, k,
			  fs_chunk_error_from(run->fs, run->first + k, r, cause,
					      lp_err_str(cause, r),
					      k == 0 ? run->err : NULL),
			  lp_err_retryable(cause, r), false);
}

/* decode, verify and settle chunk @k of a group whose bytes are in */
static void group_decode_one(struct fetch_group *g, uint32_t k)
{
	struct fetch_run *run = g->run;
	struct lp_fs *fs = run->fs;
	int r;

	r = decode_one(fs, g->dec, run->first + k, g->src, g->start,
		       run->data[k], &run->want[k], k == 0 ? run->err : NULL);
	if (r == 0)
		atomic_fetch_add(&fs->stats.fetched_chunks, 1);
	settle(run, k, r);
}

/*
 * Streaming progress: settle every chunk, in run order, whose compressed
 * bytes lie inside the @done bytes that arrived, while the rest of the
 * read is still on its way.
 */
static int group_progress(void *arg, size_t done)
{
	struct fetch_group *g = arg;
	const struct lp_toc *toc = g->run->fs->toc;

	while (g->next < g->j) {
		const struct lp_toc_chunk c =
			lp_toc_chunk(toc, g->run->first + g->next);

		uint64_t s0, s1;

		fs_chunk_range(g->run->fs, &c, &s0, &s1);
		if (s1 > g->start + done)
			break;
		group_decode_one(g, g->next++);
	}
	return 0;
}

static bool ranges_disjoint(const struct lp_blob_range *ranges, uint32_t n)
{
	uint32_t g;

	for (g = 1; g < n; g++)
		if (ranges[g].off < ranges[g - 1].off + ranges[g - 1].len)
			return false;
	return true;
}

/*
 * One group: one streamed read, each chunk settled as soon as its bytes
 * are in (a reader waiting for the first chunks of a long prefetch run
 * goes on while the rest arrives). On a failure mid-way the chunks already
 * settled stand and the rest fail.
 */
static int fetch_stream(struct fetch_run *run, struct fetch_group *g)
{
	struct lp_fs *fs = run->fs;
	struct lp_err why = { 0 };
	int r;

	g->next = g->i;
	r = lp_blob_pread_stream(fs->blob, g->src, g->end - g->start, g->start,
				 group_progress, g, &why);
	atomic_fetch_add(&fs->stats.blob_reads, 1);
	if (r == 0) {
		atomic_fetch_add(&fs->stats.fetched_bytes, g->end - g->start);
		group_progress(g, g->end - g->start); /* settles all */
	} else {
		atomic_fetch_add(&fs->stats.fetch_errors, 1);
		group_fail(g, g->next, r, &why);
	}
	return r;
}

/*
 * Several groups (chunks the disk tier had split the claimed run): one
 * multi-range read, all or nothing (the source may answer them in one
 * round trip), then decode each.
 */
static void fetch_multi(struct fetch_run *run, struct fetch_group *groups,
			uint32_t n)
{
	struct lp_fs *fs = run->fs;
	struct lp_blob_range *ranges = NULL;
	struct lp_err why = { 0 };
	uint64_t bytes = 0;
	uint32_t g, k;
	int r = 0;

	ranges = calloc(n, sizeof(*ranges));
	if (!ranges) {
		r = lp_err_set(&why, -ENOMEM, "out of memory");
		goto out;
	}
	for (g = 0; g < n; g++) {
		ranges[g].off = groups[g].start;
		ranges[g].len = groups[g].end - groups[g].start;
		ranges[g].buf = groups[g].src;
		bytes += ranges[g].len;
	}
	if (ranges_disjoint(ranges, n)) {
		r = lp_blob_pread_multi(fs->blob, ranges, n, &why);
		atomic_fetch_add(&fs->stats.blob_reads, 1);
		atomic_fetch_add(&fs->stats.multi_range_reads, 1);
	} else {
		/* chunks out of blob order: one read each */
		for (g = 0; g < n && r == 0; g++) {
			r = lp_blob_pread(fs->blob, ranges[g].buf,
					  ranges[g].len, ranges[g].off, &why);
			atomic_fetch_add(&fs->stats.blob_reads, 1);
		}
	}
	if (r == 0)
		atomic_fetch_add(&fs->stats.fetched_bytes, bytes);
out:
	if (r < 0)
		atomic_fetch_add(&fs->stats.fetch_errors, 1);
	for (g = 0; g < n; g++) {
		if (r < 0) {
			group_fail(&groups[g], groups[g].i, r, &why);
			continue;
		}
		for (k = groups[g].i; k < groups[g].j; k++)
			group_decode_one(&groups[g], k);
	}
	free(ranges);
}

/*
 * Read the @n groups' compressed bytes and settle their chunks. The groups
 * lie inside one claimed run, so together they are bounded by what the
 * planner let that run cover (fs_plan_run_bytes).
 */
static void fetch_groups(struct fetch_run *run, struct fetch_group *groups,
			 uint32_t n)
{
	struct lp_fs *fs = run->fs;
	struct lp_chunk_decoder *dec = NULL;
	uint32_t g;
	int r;

	r = decoder_get(fs, &dec);
	for (g = 0; g < n && r == 0; g++) {
		groups[g].run = run;
		groups[g].dec = dec;
		groups[g].src = malloc(groups[g].end - groups[g].start);
		if (!groups[g].src)
			r = -ENOMEM;
	}
	if (r < 0) {
		struct lp_err why = { 0 };

		lp_err_set(&why, r, "setting up the blob read: %s",
			   strerror(-r));
		atomic_fetch_add(&fs->stats.fetch_errors, 1);
		for (g = 0; g < n; g++) {
			groups[g].run = run;
			group_fail(&groups[g], groups[g].i, r, &why);
		}
	} else if (n == 1) {
		fetch_stream(run, &groups[0]);
	} else {
		fetch_multi(run, groups, n);
	}
	for (g = 0; g < n; g++) {
		free(groups[g].src);
		groups[g].src = NULL;
	}
	if (dec)
		decoder_put(fs, dec);
}

int fs_fetch_run(struct lp_fs *fs, uint32_t first, uint32_t n,
		 fs_settle_fn settle_fn, void *arg, struct lp_err *err)
{
	struct fetch_run run = { .fs = fs,
				 .first = first,
				 .n = n,
				 .settle = settle_fn,
				 .settle_arg = arg,
				 .err = err };
	struct fetch_group *groups = NULL;
	uint32_t i, j, k, nr_groups = 0;
	int r;

	if (fs->ix) /* a gzip index layer: its spans (index_fetch.c) */
		return fs_index_fetch_run(fs, first, n, settle_fn, arg, err);
	run.data = calloc(n, sizeof(*run.data));
	run.res = calloc(n, sizeof(*run.res));
	run.want = calloc(n, sizeof(*run.want));
	groups = calloc(n, sizeof(*groups));
	if (!run.data || !run.res || !run.want || !groups) {
		for (i = 0; i < n; i++)
			settle_fn(arg, first + i, NULL, -ENOMEM, false, false,
				  NULL);
		r = lp_err_set(err, -ENOMEM, "out of memory for a chunk run");
		goto out;
	}
	/* the disk tier, and a buffer for every chunk that missed it */
	for (i = 0; i < n; i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, first + i);
		struct lp_err *e = i == 0 ? err : NULL;
		struct lp_err why = { 0 };
		/* the one read of the chunk's digest in this fetch */
		int pr = lp_chunk_digest(fs->toc, &c, &run.want[i], &why);
		const struct lp_digest *key = &run.want[i];

		run.res[i] = FS_PENDING;
		/* a random-access reader: LP_CHUNK_WHOLE_FILE is refused too */
		if (pr == LP_CHUNK_WHOLE_FILE)
			pr = -EBADMSG;
		if (pr == -EBADMSG) {
			/* the policy refuses it: not worth a blob read */
			settle(&run, i,
			       fs_chunk_error(fs, first + i, pr,
					      lp_err_str(&why, pr), e));
		} else if (pr < 0) {
			settle(&run, i,
			       digest_table_error(fs, first + i, pr, &why, e));
		} else if (c.chunk_size > LP_CHUNK_MAX_SIZE ||
			   c.compressed_size > FS_MAX_COMPRESSED_CHUNK) {
			settle(&run, i,
			       fs_chunk_error(fs, first + i, -EFBIG,
					      "chunk over the size bound", e));
		} else if (!(run.data[i] =
				     malloc(c.chunk_size ? c.chunk_size : 1))) {
			settle(&run, i,
			       fs_chunk_error(fs, first + i, -ENOMEM,
					      "out of memory", e));
		} else if (fs->disk && key &&
			   fs_disk_get(fs->disk, key, run.data[i],
				       c.chunk_size) == 0) {
			atomic_fetch_add(&fs->stats.disk_hits, 1);
			settle_ex(&run, i, 0, false, true);
		}
	}
	/* the blob: the contiguous groups of pending chunks, in one go */
	for (i = 0; i < n; i = j) {
		if (run.res[i] != FS_PENDING) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < n && run.res[j] == FS_PENDING; j++)
			;
		groups[nr_groups] = (struct fetch_group){
			.i = i,
			.j = j,
			.start = UINT64_MAX,
		};
		for (k = i; k < j; k++) {
			const struct lp_toc_chunk c =
				lp_toc_chunk(fs->toc, first + k);
			struct fetch_group *gr = &groups[nr_groups];
			uint64_t s0, s1;

			fs_chunk_range(fs, &c, &s0, &s1);
			gr->start = lp_min_u64(gr->start, s0);
			gr->end = lp_max_u64(gr->end, s1);
		}
		nr_groups++;
	}
	if (nr_groups)
		fetch_groups(&run, groups, nr_groups);
	r = run.res[0];
out:
	free(groups);
	free(run.data);
	free(run.res);
	free(run.want);
	return r;
}
