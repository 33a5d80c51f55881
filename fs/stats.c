// SPDX-License-Identifier: Apache-2.0
/*
 * Per-layer statistics: lock-free counters bumped on the read path (and by
 * the FUSE adapter, one per request), a fixed-bucket histogram of on-demand
 * fetch latency (one bucket counter per fetch, made cumulative when read),
 * their numeric form (lp_fs_stats_get) and their JSON form served by the
 * hidden control file /.lazypull/stats.
 *
 * The JSON served without an open handle is a snapshot made on each lookup
 * of the file (fs_stats_refresh), its size and a growing mtime shown as the
 * file's attributes: the kernel keeps it in its page cache (no handle, no
 * direct I/O) and drops it when a lookup reports a new mtime.
 *
 * Lock order: only fetch.lock, briefly, to read the job states; then
 * cache.lock (in fs_cache_usage), never both at once; stats_file.lock only
 * once the JSON is made, to swap it in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_int.h"

/* upper bounds of the on-demand latency buckets: a disk or LAN hit is well
 * under a millisecond, a registry across the world takes a second or more */
static const uint64_t latency_bounds_ns[LP_FS_LATENCY_BUCKETS] = {
	100000,	    250000,	500000,	    1000000,	 2500000,   5000000,
	10000000,   25000000,	50000000,   100000000,	 250000000, 500000000,
	1000000000, 2500000000, 5000000000, 10000000000,
};

static const char *const op_names[LP_FS_OP_COUNT] = {
	[LP_FS_OP_LOOKUP] = "lookup",
	[LP_FS_OP_GETATTR] = "getattr",
	[LP_FS_OP_READLINK] = "readlink",
	[LP_FS_OP_OPENDIR] = "opendir",
	[LP_FS_OP_READDIR] = "readdir",
	[LP_FS_OP_READDIRPLUS] = "readdirplus",
	[LP_FS_OP_OPEN] = "open",
	[LP_FS_OP_READ] = "read",
	[LP_FS_OP_RELEASE] = "release",
	[LP_FS_OP_GETXATTR] = "getxattr",
	[LP_FS_OP_LISTXATTR] = "listxattr",
	[LP_FS_OP_STATFS] = "statfs",
};

uint64_t lp_fs_latency_bound_ns(unsigned int i)
{
	return i < LP_FS_LATENCY_BUCKETS ? latency_bounds_ns[i] : UINT64_MAX;
}

const char *lp_fs_op_name(enum lp_fs_op op)
{
	return (unsigned int)op < LP_FS_OP_COUNT ? op_names[op] : "unknown";
}

void lp_fs_count_op(struct lp_fs *fs, enum lp_fs_op op)
{
	if ((unsigned int)op < LP_FS_OP_COUNT)
		atomic_fetch_add_explicit(&fs->stats.ops[op], 1,
					  memory_order_relaxed);
}

void fs_stats_ondemand(struct fs_stats *s, uint64_t ns)
{
	uint_fast64_t max = atomic_load(&s->ondemand_ns_max);
	unsigned int b = 0;

	while (b < LP_FS_LATENCY_BUCKETS && ns > latency_bounds_ns[b])
		b++;
	atomic_fetch_add(&s->ondemand_hist[b], 1);
	atomic_fetch_add(&s->ondemand_fetches, 1);
	atomic_fetch_add(&s->ondemand_ns_total, ns);
	while (ns > max &&
	       !atomic_compare_exchange_weak(&s->ondemand_ns_max, &max, ns))
		;
}

const char *fs_job_state_name(enum fs_job_state s)
{
	switch (s) {
	case FS_JOB_OFF:
		return "off";
	case FS_JOB_PENDING:
		return "pending";
	case FS_JOB_RUNNING:
		return "running";
	case FS_JOB_DONE:
		return "done";
	case FS_JOB_FAILED:
		return "failed";
	case FS_JOB_STOPPED:
		return "stopped";
	}
	return "unknown";
}

static uint64_t ld(atomic_uint_fast64_t *v)
{
	return (uint64_t)atomic_load(v);
}

void lp_fs_stats_get(struct lp_fs *fs, struct lp_fs_stats *ret)
{
	struct fs_stats *s = &fs->stats;
	uint64_t cum = 0;
	unsigned int i;

	memset(ret, 0, sizeof(*ret));
	ret->fetched_bytes = ld(&s->fetched_bytes);
	ret->fetched_chunks = ld(&s->fetched_chunks);
	ret->mem_hits = ld(&s->mem_hits);
	ret->disk_hits = ld(&s->disk_hits);
	ret->ondemand_fetches = ld(&s->ondemand_fetches);
	ret->ondemand_ns_total = ld(&s->ondemand_ns_total);
	ret->ondemand_ns_max = ld(&s->ondemand_ns_max);
	for (i = 0; i <= LP_FS_LATENCY_BUCKETS; i++) {
		cum += ld(&s->ondemand_hist[i]);
		ret->ondemand_le[i] = cum;
	}
	for (i = 0; i < LP_FS_OP_COUNT; i++)
		ret->ops[i] = ld(&s->ops[i]);
}

/* the histogram and the FUSE op counts, appended to the JSON object */
static int histogram_json(const struct lp_fs_stats *st, struct lp_buf *out)
{
	unsigned int i;
	int r;

	r = lp_buf_printf(out, "\"latency_le_ns\": [");
	for (i = 0; i < LP_FS_LATENCY_BUCKETS && r == 0; i++)
		r = lp_buf_printf(out, "%s%llu", i ? ", " : "",
				  (unsigned long long)latency_bounds_ns[i]);
	if (r == 0)
		r = lp_buf_printf(out, "], \"latency_cumulative\": [");
	for (i = 0; i <= LP_FS_LATENCY_BUCKETS && r == 0; i++)
		r = lp_buf_printf(out, "%s%llu", i ? ", " : "",
				  (unsigned long long)st->ondemand_le[i]);
	if (r == 0)
		r = lp_buf_printf(out, "]");
	return r;
}

static int ops_json(const struct lp_fs_stats *st, struct lp_buf *out)
{
	unsigned int i;
	int r;

	r = lp_buf_printf(out, "  \"fuse_ops\": {");
	for (i = 0; i < LP_FS_OP_COUNT && r == 0; i++)
		r = lp_buf_printf(out, "%s\"%s\": %llu", i ? ", " : "",
				  op_names[i], (unsigned long long)st->ops[i]);
	if (r == 0)
		r = lp_buf_printf(out, "}\n}\n");
	return r;
}

int lp_fs_stats_json(struct lp_fs *fs, struct lp_buf *out)
{
	char toc_digest[LP_DIGEST_STR_LEN + 1];
	enum fs_job_state pre, bg;
	int pre_err, bg_err;
	struct fs_stats *s = &fs->stats;
	uint64_t n = ld(&s->ondemand_fetches), ns = ld(&s->ondemand_ns_total);
	struct lp_fs_stats st;
	size_t mem_used, mem_peak, proc_used, proc_peak;
	int r;

	pthread_mutex_lock(&fs->fetch.lock);
	pre = fs->fetch.prefetch;
	pre_err = fs->fetch.prefetch_error;
	bg = fs->fetch.background;
	bg_err = fs->fetch.background_error;
	pthread_mutex_unlock(&fs->fetch.lock);
	fs_cache_usage(fs, &mem_used, &mem_peak);
	lp_fs_budget_usage(fs->cache.mem, &proc_used, &proc_peak);
	lp_fs_stats_get(fs, &st);
	lp_digest_format(lp_layer_toc_digest(fs->layer), toc_digest);

	/* the blob name is a path or a digest: no JSON escaping needed but
	 * quotes and backslashes, which %s would pass through; skip them */
	r = lp_buf_printf(out, "{\n  \"layer\": \"");
	for (const char *p = lp_blob_name(fs->blob); r == 0 && *p; p++) {
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			continue;
		r = lp_buf_append(out, p, 1);
	}
	if (r < 0)
		goto out;
	r = lp_buf_printf(
		out,
		"\",\n  \"toc_digest\": \"%s\",\n"
		"  \"format\": \"%s\",\n"
		"  \"blob_bytes\": %llu,\n"
		"  \"total_bytes\": %llu,\n"
		"  \"uncompressed_bytes\": %llu,\n"
		"  \"fetched_bytes\": %llu,\n"
		"  \"fetched_chunks\": %llu,\n"
		"  \"total_chunks\": %u,\n"
		"  \"blob_reads\": %llu,\n"
		"  \"multi_range_reads\": %llu,\n"
		"  \"prefetch\": {\"state\": \"%s\", \"error\": %d, "
		"\"end\": %llu, \"done_bytes\": %llu, \"profile\": "
		"{\"files\": %u, \"missing\": %u, \"chunks\": %u, "
		"\"bytes\": %llu}},\n"
		"  \"background\": {\"state\": \"%s\", \"error\": %d, "
		"\"done_bytes\": %llu, \"retries\": %llu},\n"
		"  \"on_demand\": {\"fetches\": %llu, \"latency_ns_total\": "
		"%llu, \"latency_ns_avg\": %llu, \"latency_ns_max\": %llu, "
		"\"readahead_chunks\": %llu, ",
		toc_digest, lp_format_name(lp_layer_format(fs->layer)),
		(unsigned long long)lp_blob_size(fs->blob),
		(unsigned long long)fs->total_compressed,
		(unsigned long long)fs->total_uncompressed,
		(unsigned long long)ld(&s->fetched_bytes),
		(unsigned long long)ld(&s->fetched_chunks),
		lp_toc_nr_chunks(fs->toc),
		(unsigned long long)ld(&s->blob_reads),
		(unsigned long long)ld(&s->multi_range_reads),
		fs_job_state_name(pre), pre_err,
		(unsigned long long)fs->prefetch_end,
		(unsigned long long)ld(&s->prefetch_done_bytes), fs->pf_files,
		fs->pf_missing, fs->pf_chunks, (unsigned long long)fs->pf_bytes,
		fs_job_state_name(bg), bg_err,
		(unsigned long long)ld(&s->background_done_bytes),
		(unsigned long long)ld(&s->background_retries),
		(unsigned long long)n, (unsigned long long)ns,
		(unsigned long long)(n ? ns / n : 0),
		(unsigned long long)ld(&s->ondemand_ns_max),
		(unsigned long long)ld(&s->readahead_chunks));
	if (r == 0)
		r = histogram_json(&st, out);
	if (r == 0)
		r = lp_buf_printf(
			out,
			"},\n"
			"  \"cache\": {\"memory_hits\": %llu, \"disk_hits\": "
			"%llu, \"memory_bytes\": %zu, \"memory_peak_bytes\": "
			"%zu, \"memory_budget_bytes\": %zu, "
			"\"process_memory_bytes\": %zu, "
			"\"process_memory_peak_bytes\": %zu, \"disk_bytes\": "
			"%llu, \"disk_write_deferred\": %llu, "
			"\"disk_write_dropped\": %llu},\n"
			"  \"errors\": {\"verify_failures\": %llu, "
			"\"fetch_errors\": %llu, \"digest_table_errors\": "
			"%llu},\n",
			(unsigned long long)st.mem_hits,
			(unsigned long long)st.disk_hits, mem_used, mem_peak,
			fs->cache.budget, proc_used, proc_peak,
			(unsigned long long)(fs->disk ? fs_disk_used(fs->disk) :
							0),
			(unsigned long long)ld(&s->disk_write_deferred),
			(unsigned long long)ld(&s->disk_write_dropped),
			(unsigned long long)ld(&s->verify_failures),
			(unsigned long long)ld(&s->fetch_errors),
			(unsigned long long)ld(&s->digest_table_errors));
	if (r == 0 && fs->ix) {
		size_t k, proven = 0, ncp = lp_index_nr_checkpoints(fs->ix);
		struct lp_index_span_cache_stats sc;
		struct fs_span_disk_stats ds;

		fs_span_disk_stats(fs->span_disk, &ds);
		for (k = 0; k < ncp; k++)
			proven += lp_index_checkpoint_verified(fs->ix, k);
		lp_index_span_cache_stats(fs->ix, &sc);
		r = lp_buf_printf(
			out,
			"  \"gzip_index\": {\"checkpoints\": %zu, "
			"\"proven\": %zu, \"trusted\": %s, "
			"\"trusted_reads\": %llu, \"proof\": \"%s\", "
			"\"poisoned\": %s, \"window_rereads\": %llu, "
			"\"span_decodes\": %llu, \"decoded_hits\": %llu, "
			"\"span_streams\": %llu, \"early_reads\": %llu, "
			"\"pass_outs\": %llu, \"pass_checked\": %llu, "
			"\"ahead_decodes\": %llu, "
			"\"header_checks\": %llu, "
			"\"span_cache\": "
			"{\"hits\": %llu, \"fetches\": %llu, \"waits\": "
			"%llu, \"pass_waits\": %llu, \"evictions\": %llu, "
			"\"held_bytes\": %llu, \"disk_hits\": %llu, "
			"\"disk_bad\": %llu, \"disk_writes\": %llu, "
			"\"disk_evicted_files\": %llu, \"pass_requests\": "
			"%llu}},\n",
			ncp, proven,
			lp_index_trusted(fs->ix) ? "true" : "false",
			(unsigned long long)lp_index_trusted_reads(fs->ix),
			fs_job_state_name((enum fs_job_state)atomic_load(
				&fs->proof.state)),
			atomic_load(&fs->proof.poisoned) ? "true" : "false",
			(unsigned long long)ld(&s->index_window_rereads),
			(unsigned long long)ld(&s->index_span_decodes),
			(unsigned long long)ld(&s->index_decoded_hits),
			(unsigned long long)ld(&s->index_span_streams),
			(unsigned long long)ld(&s->index_early_reads),
			(unsigned long long)ld(&s->index_pass_outs),
			(unsigned long long)ld(&s->index_pass_checked),
			(unsigned long long)ld(&s->index_ahead_decodes),
			(unsigned long long)ld(&s->index_header_checks),
			(unsigned long long)sc.hits,
			(unsigned long long)sc.fetches,
			(unsigned long long)sc.waits,
			(unsigned long long)sc.pass_waits,
			(unsigned long long)sc.evictions,
			(unsigned long long)sc.held_bytes,
			(unsigned long long)sc.disk_hits,
			(unsigned long long)sc.disk_bad,
			(unsigned long long)ds.writes,
			(unsigned long long)ds.evicted_files,
			(unsigned long long)sc.pass_requests);
	}
	if (r == 0)
		r = ops_json(&st, out);
out:
	return r;
}

bool lp_fs_volatile(const struct lp_fs *fs, uint64_t ino)
{
	return ino == fs->stats_ino;
}

int fs_stats_refresh(struct lp_fs *fs)
{
	struct fs_stats_file *sf = &fs->stats_file;
	struct timespec ts;
	struct lp_buf b;
	uint8_t *data;
	uint64_t now;
	size_t len;
	int r;

	lp_buf_init(&b, LP_FS_STATS_MAX);
	r = lp_fs_stats_json(fs, &b);
	if (r < 0)
		goto out;
	data = lp_buf_steal(&b, &len);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	pthread_mutex_lock(&sf->lock);
	/* a new mtime each time, even within a clock tick: the kernel
	 * compares it to decide whether its cached pages are stale */
	sf->mtime_ns = now > sf->mtime_ns ? now : sf->mtime_ns + 1;
	free(sf->data);
	sf->data = data;
	sf->len = len;
	pthread_mutex_unlock(&sf->lock);
out:
	lp_buf_release(&b);
	return r;
}

void fs_stats_file_attr(struct lp_fs *fs, struct stat *st)
{
	struct fs_stats_file *sf = &fs->stats_file;

	pthread_mutex_lock(&sf->lock);
	st->st_size = (off_t)sf->len;
	if (sf->mtime_ns) {
		st->st_mtim.tv_sec = (time_t)(sf->mtime_ns / 1000000000u);
		st->st_mtim.tv_nsec = (long)(sf->mtime_ns % 1000000000u);
		st->st_ctim = st->st_mtim;
	}
	pthread_mutex_unlock(&sf->lock);
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
}

size_t fs_stats_file_read(struct lp_fs *fs, void *buf, size_t size,
			  uint64_t off)
{
	struct fs_stats_file *sf = &fs->stats_file;
	size_t n = 0;

	pthread_mutex_lock(&sf->lock);
	if (off < sf->len) {
		n = lp_min_u64(size, sf->len - off);
		memcpy(buf, sf->data + off, n);
	}
	pthread_mutex_unlock(&sf->lock);
	return n;
}

int fs_stats_file_copy(struct lp_fs *fs, uint8_t **ret_data, size_t *ret_len)
{
	struct fs_stats_file *sf = &fs->stats_file;
	uint8_t *copy = NULL;
	int r = 0;

	pthread_mutex_lock(&sf->lock);
	if (!sf->data) {
		/* opened without a lookup (a tool holding the inode) */
		pthread_mutex_unlock(&sf->lock);
		r = fs_stats_refresh(fs);
		if (r < 0)
			return r;
		pthread_mutex_lock(&sf->lock);
	}
	copy = malloc(sf->len ? sf->len : 1);
	if (!copy) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(copy, sf->data, sf->len);
	*ret_data = copy;
	*ret_len = sf->len;
out:
	pthread_mutex_unlock(&sf->lock);
	return r;
}

void fs_stats_file_destroy(struct fs_stats_file *sf)
{
	free(sf->data);
	pthread_mutex_destroy(&sf->lock);
}
