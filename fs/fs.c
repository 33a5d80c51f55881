// SPDX-License-Identifier: Apache-2.0
/*
 * The filesystem object: ties a layer to its chunk cache tiers, decoder
 * pool, statistics, fetch scheduler and disk writer, and answers statfs.
 * The read path itself lives one hop per file: file_read.c (file range ->
 * chunks), plan.c (what to fetch together), pipeline.c (claim, fetch,
 * publish, write to disk), chunk_cache.c (single flight, memory tier),
 * chunk_fetch.c (blob read, decode, verify), disk_cache.c (persistent
 * tier), scheduler.c (prefetch and background fetch).
 *
 * Lock order: see fs_int.h (fetch.lock, then cache.lock; the rest leaves).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_int.h"

void lp_fs_options_init(struct lp_fs_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->mem_cache_bytes = LP_FS_DEFAULT_MEM_CACHE;
	opts->disk_cache_bytes = LP_FS_DEFAULT_DISK_CACHE;
	opts->prefetch = true;
	opts->background_fetch = true;
	opts->background_quiet_ms = LP_FS_DEFAULT_BACKGROUND_QUIET_MS;
}

struct lp_fs_activity *lp_fs_activity_new(void)
{
	return calloc(1, sizeof(struct lp_fs_activity));
}

void lp_fs_activity_free(struct lp_fs_activity *a)
{
	free(a);
}

/* sizes of the layer: compressed bytes covered by chunks, and uncompressed */
static void measure(struct lp_fs *fs)
{
	uint32_t i, nr = lp_toc_nr_chunks(fs->toc);
	uint64_t covered_to = 0;

	for (i = 0; i < nr; i++) {
		const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, i);
		uint64_t start = lp_max_u64(c.offset, covered_to);
		uint64_t end = c.offset + c.compressed_size;

		if (end > start)
			fs->total_compressed += end - start;
		covered_to = lp_max_u64(covered_to, end);
		fs->total_uncompressed += c.chunk_size;
	}
}

int lp_fs_new(struct lp_layer *layer, const struct lp_fs_options *opts,
	      struct lp_fs **ret_fs, struct lp_err *err)
{
	struct lp_fs *fs = NULL;
	pthread_condattr_t ca;
	int r;

	if (opts->background_quiet_ms > LP_FS_MAX_BACKGROUND_QUIET_MS) {
		r = lp_err_set(err, -EINVAL,
			       "background quiet time %u ms over %u ms",
			       opts->background_quiet_ms,
			       LP_FS_MAX_BACKGROUND_QUIET_MS);
		goto out;
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fs->layer = layer;
	layer = NULL;
	fs->toc = lp_layer_toc(fs->layer);
	fs->blob = lp_layer_blob(fs->layer);
	fs->comp = lp_format_compression(lp_layer_format(fs->layer));
	fs->ix = lp_layer_index(fs->layer);
	if (fs->ix) {
		fs->hdr_checked = calloc(lp_toc_nr_entries(fs->toc),
					 sizeof(*fs->hdr_checked));
		if (!fs->hdr_checked) {
			r = lp_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	fs->opts = *opts;
	if (fs->ix && fs->opts.background_fetch) {
		/* a gzip index layer's background fetch is its proving pass
		 * (index_proof.c), which reads the whole blob once: chunk by
		 * chunk as well would read it twice, for a memory tier that
		 * holds a budget's worth (index chunks stay off the disk
		 * tier) */
		fs->proof.wanted = true;
		fs->opts.background_fetch = false;
	}
	if (fs->ix) {
		size_t budget = opts->mem_budget ?
					lp_fs_budget_bytes(opts->mem_budget) :
				opts->mem_cache_bytes ? opts->mem_cache_bytes :
							LP_FS_DEFAULT_MEM_CACHE;

		r = lp_index_span_cache_limit(
			fs->ix, lp_min_u64(FS_INDEX_SPAN_CACHE_MAX,
					   budget / FS_INDEX_SPAN_CACHE_SHARE));
		if (r < 0) {
			lp_err_set(err, r, "out of memory for the span cache");
			goto out;
		}
	}
	fs->act = opts->activity ? opts->activity : &fs->own_activity;
	if (!fs->opts.mem_cache_bytes)
		fs->opts.mem_cache_bytes = LP_FS_DEFAULT_MEM_CACHE;
	if (!fs->opts.disk_cache_bytes)
		fs->opts.disk_cache_bytes = LP_FS_DEFAULT_DISK_CACHE;
	fs->ctl_dir_ino = (uint64_t)lp_toc_nr_entries(fs->toc) + 1;
	fs->stats_ino = fs->ctl_dir_ino + 1;
	fs->prefetch_end = lp_toc_prefetch_end(fs->toc);
	fs->prefetch_chunks =
		fs_plan_prefetch_chunks(fs->toc, fs->prefetch_end);
	measure(fs);
	r = fs_sched_plan_prefetch(fs, opts, err);
	/* the paths were borrowed for the planning only */
	fs->opts.prefetch_files = NULL;
	fs->opts.n_prefetch_files = 0;
	if (r < 0)
		goto out;

	pthread_mutex_init(&fs->decoders.lock, NULL);
	pthread_mutex_init(&fs->record.lock, NULL);
	pthread_mutex_init(&fs->stats_file.lock, NULL);
	pthread_mutex_init(&fs->fetch.lock, NULL);
	pthread_mutex_init(&fs->writer.lock, NULL);
	pthread_cond_init(&fs->writer.cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->fetch.cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->fetch.prefetch = fs->opts.prefetch && fs->fetch.pf_nr_runs ?
				     FS_JOB_PENDING :
				     FS_JOB_OFF;
	fs->fetch.background =
		fs->opts.background_fetch ? FS_JOB_PENDING : FS_JOB_OFF;

	if (!opts->mem_budget) {
		r = lp_fs_budget_new(fs->opts.mem_cache_bytes, &fs->own_budget);
		if (r < 0) {
			lp_err_set(err, r, "out of memory");
			goto out;
		}
	}
	r = fs_cache_init(&fs->cache, lp_toc_nr_chunks(fs->toc),
			  opts->mem_budget ? opts->mem_budget : fs->own_budget,
			  !opts->cache_dir);
	if (r < 0) {
		lp_err_set(err, r, "out of memory for the chunk table");
		goto out;
	}
	if (fs->ix) {
		/* the spans count in the same budget as the chunks */
		r = fs_index_spans_join(fs, opts->mem_budget ?
						    opts->mem_budget :
						    fs->own_budget);
		if (r < 0) {
			lp_err_set(err, r, "out of memory for the span cache");
			goto out;
		}
	}
	if (opts->cache_dir) {
		fs->cache_dir = strdup(opts->cache_dir);
		if (!fs->cache_dir) {
			r = lp_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		fs->opts.cache_dir = fs->cache_dir;
		/* shared with the other layers caching there */
		r = fs_disk_open(fs->cache_dir, fs->opts.disk_cache_bytes,
				 &fs->disk, err);
		if (r < 0)
			goto out;
		/* an index layer's spans have a disk tier of their own */
		r = fs_index_disk_join(fs, err);
		if (r < 0)
			goto out;
	}
	*ret_fs = fs;
	fs = NULL;
	r = 0;
out:
	lp_layer_free(layer);
	lp_fs_free(fs);
	return r;
}

int lp_fs_start(struct lp_fs *fs)
{
	int r;

	/* a layer being mounted: a workload is starting */
	atomic_store(&fs->act->last_ns, lp_mono_ns());
	r = fs_writer_start(fs);
	if (r == 0)
		r = fs_fetcher_start(fs);
	if (r == 0)
		r = fs_proof_start(fs);
	return r;
}

void lp_fs_free(struct lp_fs *fs)
{
	if (!fs)
		return;
	fs_index_streams_stop(fs); /* the pass may wait for one */
	fs_proof_stop(fs);
	fs_fetcher_stop(fs);
	fs_writer_stop(fs); /* after the fetchers, who queue; before the
			       cache, whose chunks it holds */
	fs_index_streams_wait(fs); /* streamed spans land in the tiers */
	fs_index_disk_leave(fs); /* no reader of the index is left */
	fs_index_spans_leave(fs); /* before the budget goes */
	fs_cache_destroy(&fs->cache);
	lp_fs_budget_free(fs->own_budget); /* after the tier left it */
	fs_disk_unref(fs->disk);
	fs_decoders_destroy(&fs->decoders);
	fs_record_destroy(&fs->record);
	fs_stats_file_destroy(&fs->stats_file);
	pthread_cond_destroy(&fs->fetch.cond);
	pthread_mutex_destroy(&fs->fetch.lock);
	pthread_cond_destroy(&fs->writer.cond);
	pthread_mutex_destroy(&fs->writer.lock);
	free(fs->cache_dir);
	free(fs->hdr_checked);
	free(fs->pf_listed); /* after the fetchers; no request comes now */
	lp_layer_free(fs->layer);
	free(fs);
}

struct lp_layer *lp_fs_layer(const struct lp_fs *fs)
{
	return fs->layer;
}

void lp_fs_statfs(struct lp_fs *fs, struct statvfs *st)
{
	memset(st, 0, sizeof(*st));
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_blocks = (fsblkcnt_t)((fs->total_uncompressed + 4095) / 4096);
	st->f_files = lp_toc_nr_entries(fs->toc);
	st->f_namemax = LP_TOC_MAX_NAME;
}
