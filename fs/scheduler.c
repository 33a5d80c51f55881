// SPDX-License-Identifier: Apache-2.0
/*
 * Prefetch and background fetch, on one low-priority thread. Prefetch reads
 * the prioritised range [0, prefetch landmark) in bulk, coalesced into blob
 * reads of up to LP_FS_MAX_COALESCE bytes, and wakes lp_fs_wait_prefetch().
 * Those reads stream (fs_fetch_run): each chunk is readable as soon as its
 * bytes are in, so a workload started early runs alongside the transfer.
 * Background fetch then walks every chunk in blob order and fetches what
 * neither tier holds, in smaller runs. In a layer with a prefetch landmark
 * (an optimised one) it starts, and resumes, only after
 * opts.background_quiet_ms without prioritised fetching (prefetch and
 * on-demand reads, in every layer sharing the fs's activity, and the fs's
 * start), so it does not take CPU and disk from a starting workload; once it
 * has waited FS_BACKGROUND_MAX_DEFER times that in all, it only stands aside
 * while on-demand reads are in flight and FS_BACKGROUND_QUIET_MS after the
 * last one, so a busy workload cannot starve it; in a layer without a
 * landmark only that short rule applies from the start (what such a
 * workload reads is unknown, and the rest fetched early spares it round
 * trips). Its chunks enter the memory
 * tier cold, so they never push out hot data.
 * Without a disk tier it stops once the memory budget is full: there is
 * nowhere to keep the rest. What a failed fetch means is read from its
 * error, as decided where it arose (lp_err_retryable: the registry marks a
 * 5xx, a 429, a timeout or a refused connection): such an outage makes it
 * wait, backing off up to FS_BACKGROUND_BACKOFF_MAX_MS, and retry the same
 * chunks rather than skip them, so an outage costs time, not coverage.
 * A chunk whose bytes are wrong (-EBADMSG) or over a bound (-EFBIG) is
 * skipped. Any other permanent error (the source refuses the blob: 404,
 * 403, 410, a broken protocol) stops the background fetch: every further
 * chunk would get the same answer. Each decision is logged once: the start
 * of an outage (not every retry), its end, a skipped chunk, the stop.
 *
 * Lock order: fetch.lock, then (inside fs_chunk_get) cache.lock; in practice
 * fetch.lock is never held across a fetch.
 */
#include <errno.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fs_int.h"
#include "lp_log.h"

#define FS_FETCH_NICE 10
#define FS_BACKGROUND_POLL_MS 10
#define FS_BACKGROUND_BACKOFF_MS 500 /* first wait after a failed fetch */
#define FS_BACKGROUND_BACKOFF_MAX_MS 30000

static bool stopping(struct lp_fs *fs)
{
	bool stop;

	pthread_mutex_lock(&fs->fetch.lock);
	stop = fs->fetch.stop;
	pthread_mutex_unlock(&fs->fetch.lock);
	return stop;
}

static void set_state(struct lp_fs *fs, bool prefetch, enum fs_job_state st,
		      int error)
{
	pthread_mutex_lock(&fs->fetch.lock);
	if (prefetch) {
		fs->fetch.prefetch = st;
		fs->fetch.prefetch_error = error;
	} else {
		fs->fetch.background = st;
		fs->fetch.background_error = error;
	}
	pthread_cond_broadcast(&fs->fetch.cond);
	pthread_mutex_unlock(&fs->fetch.lock);
}

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void fs_activity_begin(struct lp_fs *fs, bool ondemand)
{
	atomic_fetch_add(ondemand ? &fs->act->ondemand : &fs->act->prefetch, 1);
}

void fs_activity_end(struct lp_fs *fs, bool ondemand)
{
	uint64_t now = lp_mono_ns();

	atomic_store(&fs->act->last_ns, now);
	if (ondemand)
		atomic_store(&fs->act->last_ondemand_ns, now);
	atomic_fetch_sub(ondemand ? &fs->act->ondemand : &fs->act->prefetch, 1);
}

static void prefetch(struct lp_fs *fs)
{
	uint32_t nr = lp_toc_nr_chunks(fs->toc), end = 0, ci, next;
	struct lp_err err = { 0 };
	int r = 0;

	while (end < nr && lp_toc_chunk(fs->toc, end).offset < fs->prefetch_end)
		end++;
	set_state(fs, true, FS_JOB_RUNNING, 0);
	fs_activity_begin(fs, false);
	for (ci = 0; ci < end && r == 0; ci = next) {
		struct lp_toc_chunk c;
		struct fs_chunk *ch;

		if (stopping(fs)) {
			fs_activity_end(fs, false);
			set_state(fs, true, FS_JOB_STOPPED, 0);
			return;
		}
		/* pinned, so a chunk someone else is loading is waited for:
		 * "done" means the range is really in the cache */
		ch = NULL;
		r = fs_chunk_get(fs, ci, end, FS_FETCH_PREFETCH, &ch, &next,
				 &err);
		fs_chunk_put(fs, ch);
		c = lp_toc_chunk(fs->toc, next - 1);
		atomic_store(&fs->stats.prefetch_done_bytes,
			     c.offset + c.compressed_size);
	}
	fs_activity_end(fs, false);
	if (r < 0) /* the one place this failure is reported */
		lp_log_warn("prefetch stopped: %s", lp_err_str(&err, r));
	set_state(fs, true, r < 0 ? FS_JOB_FAILED : FS_JOB_DONE, r);
}

/* ns from @t to @now; 0 when @t was stamped after @now was read */
static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

/* is prioritised fetching going on, or did it end less than @quiet ns ago? */
static bool busy(struct lp_fs_activity *a, uint64_t quiet, bool any)
{
	const uint64_t short_quiet = (uint64_t)FS_BACKGROUND_QUIET_MS * 1000000;
	const uint64_t now = lp_mono_ns();

	if (atomic_load(&a->ondemand) ||
	    since(now, atomic_load(&a->last_ondemand_ns)) < short_quiet)
		return true;
	return any && (atomic_load(&a->prefetch) ||
		       since(now, atomic_load(&a->last_ns)) < quiet);
}

/*
 * wait until prioritised fetching has been quiet for a while; after
 * @deferred_ns in all (updated) only on-demand fetches are waited for.
 * false when stopping.
 */
static bool wait_quiet(struct lp_fs *fs, uint64_t *deferred_ns)
{
	/*
	 * Only a layer with a prefetch landmark (optimised for a workload)
	 * defers to prioritised fetching: its workload's files are in, the
	 * rest is unlikely to be wanted soon. Without one, what the workload
	 * reads is unknown, and the rest of the layer fetched at once is
	 * what spares its next reads a round trip each.
	 */
	const uint64_t quiet =
		fs->prefetch_end ?
			(uint64_t)fs->opts.background_quiet_ms * 1000000 :
			0;
	const uint64_t max_defer = quiet * FS_BACKGROUND_MAX_DEFER;
	struct timespec ts;
	uint64_t t0 = lp_mono_ns();
	bool stop;

	pthread_mutex_lock(&fs->fetch.lock);
	while (!fs->fetch.stop &&
	       busy(fs->act, quiet,
		    *deferred_ns + (lp_mono_ns() - t0) < max_defer)) {
		deadline_in(&ts, FS_BACKGROUND_POLL_MS);
		pthread_cond_timedwait(&fs->fetch.cond, &fs->fetch.lock, &ts);
	}
	stop = fs->fetch.stop;
	pthread_mutex_unlock(&fs->fetch.lock);
	if (*deferred_ns < max_defer)
		*deferred_ns += lp_mono_ns() - t0;
	return !stop;
}

/* sleep @ms unless stopped first; false when stopping */
static bool wait_ms(struct lp_fs *fs, unsigned int ms)
{
	struct timespec ts;
	bool stop;

	deadline_in(&ts, ms);
	pthread_mutex_lock(&fs->fetch.lock);
	while (!fs->fetch.stop &&
	       pthread_cond_timedwait(&fs->fetch.cond, &fs->fetch.lock, &ts) !=
		       ETIMEDOUT)
		;
	stop = fs->fetch.stop;
	pthread_mutex_unlock(&fs->fetch.lock);
	return !stop;
}

/* what the background fetch does after a failed fetch */
enum bg_verdict {
	BG_RETRY, /* the source is away for now: back off, same chunk */
	BG_SKIP, /* this chunk is bad: go on with the next */
	BG_STOP, /* the source refuses: every chunk would fail */
};

/*
 * The source's own verdict decides: marked retryable where it arose (or out
 * of memory here, which passes too) -> wait; the source answered and refused
 * (the blob source's -EIO carries the permanent HTTP error, e.g. 404, 403)
 * -> every chunk would fail; anything else is this chunk's own fault (a
 * digest that does not match, a bound, a bad member) -> the next one.
 */
static enum bg_verdict bg_verdict(int r, const struct lp_err *err)
{
	if (lp_err_retryable(err, r) || r == -ENOMEM)
		return BG_RETRY;
	if (r == -EIO)
		return BG_STOP;
	return BG_SKIP;
}

static bool have_chunk(struct lp_fs *fs, uint32_t ci)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	const struct lp_digest *dg;

	return fs_chunk_is_cached(fs, ci) ||
	       (fs->disk && lp_chunk_digest(fs->toc, &c, &dg, NULL) == 0 &&
		fs_disk_has(fs->disk, dg));
}

static void background(struct lp_fs *fs)
{
	uint32_t nr = lp_toc_nr_chunks(fs->toc), ci, next;
	unsigned int backoff = 0;
	uint64_t deferred = 0;
	int r, last_err = 0;

	set_state(fs, false, FS_JOB_RUNNING, 0);
	for (ci = 0; ci < nr; ci = next) {
		struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
		struct lp_err err = { 0 };
		size_t used, peak;

		next = ci + 1;
		if (!wait_quiet(fs, &deferred)) {
			set_state(fs, false, FS_JOB_STOPPED, last_err);
			return;
		}
		fs_cache_usage(fs, &used, &peak);
		if (!fs->disk && used + c.chunk_size > fs->cache.budget) {
			set_state(fs, false, FS_JOB_STOPPED, last_err);
			return;
		}
		if (!have_chunk(fs, ci)) {
			r = fs_chunk_get(fs, ci, nr, FS_FETCH_BACKGROUND, NULL,
					 &next, &err);
			if (r == 0 && backoff) {
				/* as loud as the warning that began it */
				lp_log_warn("layer %s: background fetch "
					    "resumed",
					    lp_blob_name(fs->blob));
				backoff = 0;
			}
			if (r < 0 && bg_verdict(r, &err) == BG_RETRY) {
				/* the source is away: wait, then retry */
				if (!backoff)
					lp_log_warn("background fetch waits "
						    "for the source: %s",
						    lp_err_str(&err, r));
				backoff = backoff ? backoff * 2 :
						    FS_BACKGROUND_BACKOFF_MS;
				if (backoff > FS_BACKGROUND_BACKOFF_MAX_MS)
					backoff = FS_BACKGROUND_BACKOFF_MAX_MS;
				atomic_fetch_add(&fs->stats.background_retries,
						 1);
				if (!wait_ms(fs, backoff)) {
					set_state(fs, false, FS_JOB_STOPPED, r);
					return;
				}
				next = ci;
				continue;
			}
			if (r < 0 && bg_verdict(r, &err) == BG_STOP) {
				lp_log_err("background fetch stopped: %s",
					   lp_err_str(&err, r));
				set_state(fs, false, FS_JOB_FAILED, r);
				return;
			}
			if (r < 0) {
				lp_log_warn("background fetch skips a chunk: "
					    "%s",
					    lp_err_str(&err, r));
				last_err = r; /* keep going: others may do */
			}
		}
		c = lp_toc_chunk(fs->toc, next - 1);
		atomic_store(&fs->stats.background_done_bytes,
			     c.offset + c.compressed_size);
	}
	set_state(fs, false, last_err ? FS_JOB_FAILED : FS_JOB_DONE, last_err);
}

static void *fetch_main(void *arg)
{
	struct lp_fs *fs = arg;

	/* best effort: on-demand readers come first for the CPU too */
	setpriority(PRIO_PROCESS, (id_t)gettid(), FS_FETCH_NICE);
	if (fs->opts.prefetch && fs->prefetch_end)
		prefetch(fs);
	if (fs->opts.background_fetch)
		background(fs);
	return NULL;
}

int fs_fetcher_start(struct lp_fs *fs)
{
	int r = 0;

	if (!(fs->opts.prefetch && fs->prefetch_end) &&
	    !fs->opts.background_fetch)
		goto out;
	r = -pthread_create(&fs->fetch.thread, NULL, fetch_main, fs);
	if (r == 0) {
		pthread_mutex_lock(&fs->fetch.lock);
		fs->fetch.started = true;
		pthread_mutex_unlock(&fs->fetch.lock);
	}
out:
	return r;
}

void fs_fetcher_stop(struct lp_fs *fs)
{
	bool started;

	pthread_mutex_lock(&fs->fetch.lock);
	fs->fetch.stop = true;
	started = fs->fetch.started;
	pthread_cond_broadcast(&fs->fetch.cond);
	pthread_mutex_unlock(&fs->fetch.lock);
	if (started)
		pthread_join(fs->fetch.thread, NULL);
}

int lp_fs_wait_prefetch(struct lp_fs *fs, unsigned int timeout_ms)
{
	struct timespec ts;
	int r = 0;

	deadline_in(&ts, timeout_ms);
	pthread_mutex_lock(&fs->fetch.lock);
	while (fs->fetch.prefetch == FS_JOB_PENDING ||
	       fs->fetch.prefetch == FS_JOB_RUNNING) {
		if (pthread_cond_timedwait(&fs->fetch.cond, &fs->fetch.lock,
					   &ts) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (fs->fetch.prefetch == FS_JOB_FAILED)
		r = fs->fetch.prefetch_error;
	pthread_mutex_unlock(&fs->fetch.lock);
	return r;
}
