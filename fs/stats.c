// SPDX-License-Identifier: Apache-2.0
/*
 * Per-layer statistics: lock-free counters bumped on the read path, and
 * their JSON form served by the hidden control file /.lazypull/stats.
 *
 * Lock order: only fetch.lock, briefly, to read the job states; then
 * cache.lock (in fs_cache_usage), never both at once.
 */
#include <errno.h>
#include <string.h>

#include "fs_int.h"

void fs_stats_ondemand(struct fs_stats *s, uint64_t ns)
{
	uint_fast64_t max = atomic_load(&s->ondemand_ns_max);

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

int lp_fs_stats_json(struct lp_fs *fs, struct lp_buf *out)
{
	char toc_digest[LP_DIGEST_STR_LEN + 1];
	enum fs_job_state pre, bg;
	int pre_err, bg_err;
	struct fs_stats *s = &fs->stats;
	uint64_t n = ld(&s->ondemand_fetches), ns = ld(&s->ondemand_ns_total);
	size_t mem_used, mem_peak;
	int r;

	pthread_mutex_lock(&fs->fetch.lock);
	pre = fs->fetch.prefetch;
	pre_err = fs->fetch.prefetch_error;
	bg = fs->fetch.background;
	bg_err = fs->fetch.background_error;
	pthread_mutex_unlock(&fs->fetch.lock);
	fs_cache_usage(fs, &mem_used, &mem_peak);
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
		"\"end\": %llu, \"done_bytes\": %llu},\n"
		"  \"background\": {\"state\": \"%s\", \"error\": %d, "
		"\"done_bytes\": %llu, \"retries\": %llu},\n"
		"  \"on_demand\": {\"fetches\": %llu, \"latency_ns_total\": "
		"%llu, \"latency_ns_avg\": %llu, \"latency_ns_max\": %llu, "
		"\"readahead_chunks\": %llu},\n"
		"  \"cache\": {\"memory_hits\": %llu, \"disk_hits\": %llu, "
		"\"memory_bytes\": %zu, \"memory_peak_bytes\": %zu, "
		"\"memory_budget_bytes\": %zu, \"disk_bytes\": %llu},\n"
		"  \"errors\": {\"verify_failures\": %llu, \"fetch_errors\": "
		"%llu}\n}\n",
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
		(unsigned long long)ld(&s->prefetch_done_bytes),
		fs_job_state_name(bg), bg_err,
		(unsigned long long)ld(&s->background_done_bytes),
		(unsigned long long)ld(&s->background_retries),
		(unsigned long long)n, (unsigned long long)ns,
		(unsigned long long)(n ? ns / n : 0),
		(unsigned long long)ld(&s->ondemand_ns_max),
		(unsigned long long)ld(&s->readahead_chunks),
		(unsigned long long)ld(&s->mem_hits),
		(unsigned long long)ld(&s->disk_hits), mem_used, mem_peak,
		fs->cache.budget,
		(unsigned long long)(fs->disk ? fs_disk_used(fs->disk) : 0),
		(unsigned long long)ld(&s->verify_failures),
		(unsigned long long)ld(&s->fetch_errors));
out:
	return r;
}
