// SPDX-License-Identifier: Apache-2.0
/*
 * The fetch scheduler: prefetch and background fetch of one layer, on
 * FS_PLAN_STREAMS low-priority workers that keep the link full. Each worker
 * takes the next run (at most FS_PLAN_STREAM_RUN compressed bytes, one
 * streamed blob read: fs_chunk_get publishes each chunk as its bytes
 * arrive) and fetches it while the process-wide stream count allows:
 *   1. prefetch: the files of the layer's prefetch profile
 *      (opts.prefetch_files), in the profile's order, then the prefetch
 *      range [0, prefetch landmark), in blob order, at full width; the
 *      runs are planned once at lp_fs_new() (fs_sched_plan_prefetch,
 *      fs_plan_profile_runs); when all are handed out and in, one worker
 *      checks that every chunk of them is in the cache and wakes
 *      lp_fs_wait_prefetch();
 *   2. the rest, in the order the planner gives (fs_plan_next): on from
 *      where the last on-demand miss ended (the workload's neighbourhood,
 *      and for a workload that reads everything in order, the stream it
 *      follows), then what was jumped over, each chunk once; done when
 *      every chunk was handed out and the disk writer has written what
 *      was queued (a layer whose background is done needs no source).
 * How many background reads may be in flight is the planner's
 * (fs_plan_background_width): on-demand reads never wait for a slot and
 * never stop the background; while they are in flight it keeps one stream
 * going. A layer with a prefetch landmark or a profile (an optimised one)
 * defers its
 * background fetch until opts.background_quiet_ms without prioritised
 * fetching (prefetch and on-demand reads, in every layer sharing the fs's
 * activity, and the fs's start), so it does not take CPU and disk from a
 * starting workload, at most FS_PLAN_MAX_DEFER times that, and no longer
 * once the workload missed the prefetch range FS_PLAN_RELEASE_MISSES times.
 * Background chunks enter the memory tier cold, so they never push out hot
 * data. Without a disk tier the background stops once the memory budget is
 * full (the process's: every layer's tiers together, fit_budget): there is
 * nowhere to keep the rest.
 *
 * What a failed fetch means is read from its error, as decided where it
 * arose (lp_err_retryable: the registry marks a 5xx, a 429, a timeout or a
 * refused connection): such an outage makes the run's worker wait, backing
 * off up to FS_BACKGROUND_BACKOFF_MAX_MS, and the run's chunks are handed
 * out again, so an outage costs time, not coverage; until a read succeeds
 * again (and at the start) one read at a time probes the source. A chunk
 * whose bytes are
 * wrong (-EBADMSG) or over a bound (-EFBIG) is skipped. Any other permanent
 * error (the source refuses the blob: 404, 403, 410, a broken protocol)
 * stops the background fetch: every further chunk would get the same
 * answer. Each decision is logged once: the start of an outage (not every
 * retry), its end, a skipped chunk, the stop.
 *
 * Lock order: fetch.lock, then (inside fs_chunk_is_present) cache.lock or
 * (inside fs_writer_idle) writer.lock; fetch.lock is never held across a
 * fetch or a disk-tier lookup (the budget's usage is read from its
 * atomics).
 */
#include <errno.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <time.h>
#include <unistd.h>

#include "fs_int.h"
#include "lp_log.h"

#define FS_SCHED_POLL_MS 10 /* worker 0 re-reads the clock this often */
#define FS_SCHED_POLL_OTHERS_MS 40 /* the other workers */
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

/* with fetch.lock held */
static void set_state_locked(struct lp_fs *fs, bool prefetch,
			     enum fs_job_state st, int error)
{
	if (prefetch) {
		fs->fetch.prefetch = st;
		fs->fetch.prefetch_error = error;
	} else {
		fs->fetch.background = st;
		fs->fetch.background_error = error;
	}
	pthread_cond_broadcast(&fs->fetch.cond);
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

/* wait on fetch.cond (held) for at most @ms */
static void wait_locked(struct lp_fs *fs, unsigned int ms)
{
	struct timespec ts;

	deadline_in(&ts, ms);
	pthread_cond_timedwait(&fs->fetch.cond, &fs->fetch.lock, &ts);
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

/* chunk @ci is one prefetch fetches: in the range, or the profile's */
static bool in_prefetch(const struct lp_fs *fs, uint32_t ci)
{
	return ci < fs->prefetch_chunks || fs_plan_listed(fs->pf_listed, ci);
}

void fs_sched_ondemand_miss(struct lp_fs *fs, uint32_t ci, uint32_t end)
{
	uint64_t h = atomic_load(&fs->fetch.hint);

	/* racing misses: either one will do */
	atomic_store(&fs->fetch.hint_ci, ci);
	atomic_store(&fs->fetch.hint, (((h >> 32) + 1) << 32) | end);
	if ((fs->prefetch_end || fs->pf_listed) && !in_prefetch(fs, ci))
		atomic_fetch_add(&fs->fetch.misses, 1);
}

void fs_sched_ondemand_read(struct lp_fs *fs, uint32_t ci)
{
	uint64_t o = atomic_load(&fs->fetch.order);
	uint32_t last = (uint32_t)(o >> 32), run = (uint32_t)o;

	/* the prefetch range and the profile are read in their own order
	 * (an optimised workload's): it says nothing about the rest */
	if (in_prefetch(fs, ci))
		return;
	if (ci == last)
		return;
	run = fs_plan_in_order(last, ci) ? run + (run < UINT32_MAX) : 0;
	/* racing readers: either one's view will do */
	atomic_store(&fs->fetch.order, ((uint64_t)ci << 32) | run);
}

/* take one of the activity's stream slots if fewer than @limit are taken */
static bool slot_take(struct lp_fs_activity *a, unsigned int limit)
{
	unsigned int v = atomic_load(&a->streams);

	while (v < limit)
		if (atomic_compare_exchange_weak(&a->streams, &v, v + 1))
			return true;
	return false;
}

static void slot_give(struct lp_fs_activity *a)
{
	atomic_fetch_sub(&a->streams, 1);
}

static bool tried(const struct fs_fetcher *f, uint32_t ci)
{
	return f->bg_tried[ci / 8] & (1u << (ci % 8));
}

static void mark_tried(struct fs_fetcher *f, uint32_t ci, uint32_t end, bool on)
{
	for (; ci < end; ci++) {
		if (on)
			f->bg_tried[ci / 8] |= (uint8_t)(1u << (ci % 8));
		else
			f->bg_tried[ci / 8] &= (uint8_t) ~(1u << (ci % 8));
	}
}

/* whether chunk @ci is in memory or on disk: a disk lookup, so called with
 * no lock held (run_background) */
static bool have_chunk(struct lp_fs *fs, uint32_t ci)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	struct lp_digest dg;

	return fs_chunk_is_present(fs, ci) ||
	       (fs->disk && lp_chunk_digest(fs->toc, &c, &dg, NULL) == 0 &&
		fs_disk_has(fs->disk, &dg));
}

/*
 * fs_plan_next()'s predicate, called with fetch.lock held for chunk after
 * chunk: handed out already (the bitmap), or in memory. Never the disk
 * tier (a lookup per chunk under the lock): a chunk on disk is handed out
 * in a run, which finds it there unlocked and passes it by, and stays
 * marked in the bitmap, so a jump of the cursor does not look again.
 */
static bool skip_chunk(void *arg, uint32_t ci)
{
	struct lp_fs *fs = arg;

	return tried(&fs->fetch, ci) || fs_chunk_is_present(fs, ci);
}

/*
 * Without a disk tier background chunks have nowhere to go but the memory
 * budget, which every layer of the process shares: the end of run [ci, end)
 * cut to the room the budget has left (the process's total, not this
 * layer's tier: chunks of another layer count as much), @ci when not even
 * chunk @ci fits. A run past it would only evict background chunks, its
 * own or another layer's, kept cold, to make room for more of them.
 */
static uint32_t fit_budget(struct lp_fs *fs, uint32_t ci, uint32_t end)
{
	const size_t limit = lp_fs_budget_bytes(fs->cache.mem);
	size_t used, peak, room, need = 0;

	lp_fs_budget_usage(fs->cache.mem, &used, &peak);
	room = used < limit ? limit - used : 0;
	for (; ci < end; ci++) {
		/* what publish charges: the bytes and the record */
		need += lp_toc_chunk(fs->toc, ci).chunk_size +
			sizeof(struct fs_chunk);
		if (need > room)
			break;
	}
	return ci;
}

/* compressed bytes from chunk @ci's start to chunk @end - 1's end */
static uint64_t span(struct lp_fs *fs, uint32_t ci, uint32_t end)
{
	const struct lp_toc_chunk a = lp_toc_chunk(fs->toc, ci);
	const struct lp_toc_chunk b = lp_toc_chunk(fs->toc, end - 1);
	uint64_t e = b.offset + b.compressed_size;

	return e > a.offset ? e - a.offset : 0;
}

enum job {
	JOB_EXIT,
	JOB_PREFETCH, /* fetch [ci, end) of the prefetch range */
	JOB_PREFETCH_CHECK, /* every prefetch chunk in? then done */
	JOB_BACKGROUND, /* fetch [ci, end) */
};

/* what next_background() found when it hands out no run */
enum bg_wait {
	BG_NOTHING, /* off, done, stopped or failed: nothing to wait for */
	BG_WAIT, /* wait and ask again */
	BG_WAITED, /* it waited itself: ask again */
};

/* the background's share of next_job(), fetch.lock held: JOB_BACKGROUND,
 * or JOB_EXIT with *@ret_wait saying why */
static enum job next_background(struct lp_fs *fs, unsigned int self,
				uint32_t *ret_ci, uint32_t *ret_end,
				enum bg_wait *ret_wait)
{
	struct fs_fetcher *f = &fs->fetch;
	const uint32_t nr = lp_toc_nr_chunks(fs->toc);
	struct fs_plan_layer l = {
		.optimised = fs->prefetch_end != 0 || fs->pf_listed != NULL,
		.quiet_ns = (uint64_t)fs->opts.background_quiet_ms * 1000000,
		.deferred_ns = f->bg_deferred_ns,
		.misses = atomic_load(&f->misses),
		.in_order = (uint32_t)atomic_load(&f->order),
	};
	struct fs_plan_clock c = {
		.now_ns = lp_mono_ns(),
		.ondemand = atomic_load(&fs->act->ondemand),
		.prefetch = atomic_load(&fs->act->prefetch),
		.last_ns = atomic_load(&fs->act->last_ns),
		.last_ondemand_ns = atomic_load(&fs->act->last_ondemand_ns),
	};
	unsigned int width;
	uint64_t h, bytes;
	uint32_t ci;
	bool busy, quiet;

	*ret_wait = BG_WAIT;
	if (f->background != FS_JOB_PENDING &&
	    f->background != FS_JOB_RUNNING) {
		*ret_wait = BG_NOTHING;
		return JOB_EXIT;
	}
	if (c.now_ns < f->retry_at_ns)
		return JOB_EXIT; /* backing off: the source is away */
	width = fs_plan_background_width(&c, &l);
	if (!width) {
		if (self == 0) { /* one worker keeps the account */
			wait_locked(fs, FS_SCHED_POLL_MS);
			f->bg_deferred_ns += lp_mono_ns() - c.now_ns;
			*ret_wait = BG_WAITED;
		}
		return JOB_EXIT;
	}
	f->background = FS_JOB_RUNNING;
	h = atomic_load(&f->hint);
	if (h >> 32 != f->hint_seen) {
		/* the workload missed: stream on from where that read ended;
		 * small reads again after a jump, and after its first miss
		 * (what the reads grew to before is no sign it reads in
		 * order) */
		if (!f->hint_seen ||
		    !fs_plan_miss_ahead(fs->toc, f->bg_cursor,
					atomic_load(&f->hint_ci)))
			f->streak = 0;
		f->hint_seen = h >> 32;
		f->bg_cursor = (uint32_t)h;
	}
	ci = fs_plan_next(nr, f->bg_cursor, skip_chunk, fs);
	if (ci == LP_TOC_NO_INDEX) {
		if (f->bg_running)
			return JOB_EXIT; /* a failed run may give work back */
		/* "done": the disk tier has it all, not the writer's queue */
		if (!fs_writer_idle(fs))
			return JOB_EXIT;
		set_state_locked(fs, false,
				 f->bg_last_err ? FS_JOB_FAILED : FS_JOB_DONE,
				 f->bg_last_err);
		*ret_wait = BG_NOTHING;
		return JOB_EXIT;
	}
	if (!fs->disk && fit_budget(fs, ci, ci + 1) == ci) {
		/* the process's budget is full: nowhere to keep the rest.
		 * Runs still on their way are not charged yet: the last of
		 * them to end says "stopped", when the memory holds them */
		if (f->bg_running)
			return JOB_EXIT;
		set_state_locked(fs, false, FS_JOB_STOPPED, f->bg_last_err);
		*ret_wait = BG_NOTHING;
		return JOB_EXIT;
	}
	/* one read probes the source before the fan-out: a blob the
	 * registry refuses costs one request, not one per worker */
	if (!f->proven && f->bg_running)
		return JOB_EXIT;
	if (!slot_take(fs->act, width))
		return JOB_EXIT;
	*ret_ci = ci;
	/* the reads grow while the workload reads in blob order, and a
	 * little while the link is the background's alone */
	busy = width < FS_PLAN_STREAMS;
	l.missed = atomic_load(&f->hint) >> 32 != 0;
	quiet = fs_plan_uncontended(&c, &l);
	if (l.in_order >= FS_PLAN_IN_ORDER_RUN || quiet)
		f->streak++;
	bytes = fs_plan_background_bytes(f->streak, busy);
	if (quiet && l.in_order < FS_PLAN_IN_ORDER_RUN)
		bytes = fs_plan_uncontended_bytes(bytes);
	*ret_end = fs_plan_run_end(fs->toc, ci, nr, bytes);
	if (!fs->disk) /* chunk @ci fitted a moment ago: it goes */
		*ret_end = (uint32_t)lp_max_u64(fit_budget(fs, ci, *ret_end),
						ci + 1);
	mark_tried(f, ci, *ret_end, true);
	f->bg_cursor = *ret_end;
	f->bg_running++;
	return JOB_BACKGROUND;
}

/* the next job of worker @self; fetch.lock held, may wait */
static enum job next_job(struct lp_fs *fs, unsigned int self, uint32_t *ret_ci,
			 uint32_t *ret_end)
{
	struct fs_fetcher *f = &fs->fetch;
	enum bg_wait wait;
	enum job job;

	for (;;) {
		if (f->stop)
			return JOB_EXIT;
		if (f->prefetch == FS_JOB_RUNNING) {
			/* past the end of a run: the next one */
			while (f->pf_run < f->pf_nr_runs &&
			       f->pf_next >= f->pf_runs[f->pf_run].end)
				if (++f->pf_run < f->pf_nr_runs)
					f->pf_next = f->pf_runs[f->pf_run].ci;
			if (f->pf_run < f->pf_nr_runs &&
			    slot_take(fs->act, FS_PLAN_STREAMS)) {
				*ret_ci = f->pf_next;
				*ret_end = fs_plan_run_end(
					fs->toc, f->pf_next,
					f->pf_runs[f->pf_run].end,
					fs_plan_run_bytes(FS_FETCH_PREFETCH));
				f->pf_next = *ret_end;
				f->pf_running++;
				return JOB_PREFETCH;
			}
			if (f->pf_run >= f->pf_nr_runs && !f->pf_running &&
			    !f->pf_finishing) {
				f->pf_finishing = true;
				return JOB_PREFETCH_CHECK;
			}
		}
		job = next_background(fs, self, ret_ci, ret_end, &wait);
		if (job != JOB_EXIT)
			return job;
		if (wait == BG_NOTHING && f->prefetch != FS_JOB_RUNNING)
			return JOB_EXIT; /* all done */
		if (wait != BG_WAITED)
			wait_locked(fs, self == 0 ? FS_SCHED_POLL_MS :
						    FS_SCHED_POLL_OTHERS_MS);
	}
}

static void run_prefetch(struct lp_fs *fs, uint32_t ci, uint32_t end)
{
	struct fs_fetcher *f = &fs->fetch;
	struct lp_err err = { 0 };
	uint32_t c, next;
	int r = 0;

	fs_activity_begin(fs, false);
	for (c = ci; c < end && r == 0 && !stopping(fs); c = next)
		r = fs_chunk_get(fs, c, end, FS_FETCH_PREFETCH, NULL, &next,
				 &err);
	fs_activity_end(fs, false);
	slot_give(fs->act);
	if (r == 0)
		atomic_fetch_add(&fs->stats.prefetch_done_bytes,
				 span(fs, ci, end));
	pthread_mutex_lock(&f->lock);
	f->pf_running--;
	if (r < 0 && !f->prefetch_error) {
		/* the one place this failure is reported */
		lp_log_warn("prefetch stopped: %s", lp_err_str(&err, r));
		f->prefetch_error = r;
		f->pf_run = f->pf_nr_runs; /* hand out no more */
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* the prefetch range is handed out and its runs are over: "done" means
 * every chunk of it is in the cache (pinned gets wait for chunks others
 * are loading, and fetch what a failed or evicted run left out) */
static void check_prefetch(struct lp_fs *fs)
{
	struct fs_fetcher *f = &fs->fetch;
	struct lp_err err = { 0 };
	uint32_t ci, next, k;
	int r;

	pthread_mutex_lock(&f->lock);
	r = f->prefetch_error;
	pthread_mutex_unlock(&f->lock);
	fs_activity_begin(fs, false);
	for (k = 0; k < f->pf_nr_runs && r == 0; k++) {
		const struct fs_plan_run run = f->pf_runs[k];

		for (ci = run.ci; ci < run.end && r == 0; ci = next) {
			struct fs_chunk *ch = NULL;

			if (stopping(fs))
				break;
			r = fs_chunk_get(fs, ci, run.end, FS_FETCH_PREFETCH,
					 &ch, &next, &err);
			fs_chunk_put(fs, ch);
		}
	}
	fs_activity_end(fs, false);
	pthread_mutex_lock(&f->lock);
	if (r < 0 && !f->prefetch_error)
		lp_log_warn("prefetch stopped: %s", lp_err_str(&err, r));
	if (f->stop && r == 0)
		set_state_locked(fs, true, FS_JOB_STOPPED, 0);
	else
		set_state_locked(fs, true, r < 0 ? FS_JOB_FAILED : FS_JOB_DONE,
				 r);
	pthread_mutex_unlock(&f->lock);
}

/* what the background fetch does after a failed fetch */
enum bg_verdict {
	BG_RETRY, /* the source is away for now: back off, same chunks */
	BG_SKIP, /* this chunk is bad: go on with the next */
	BG_STOP, /* the source refuses: every chunk would fail */
};

/*
 * The source's own verdict decides: marked retryable where it arose (or out
 * of memory here, which passes too) -> wait; -EIO -> every chunk would
 * fail: either the source answered and refused (the blob source's -EIO
 * carries the permanent HTTP error, e.g. 404, 403) or the TOC's spilled
 * digest table cannot be read (a local read error, counted in
 * digest_table_errors; @err's message says which, and is what the stop is
 * logged with); anything else is this chunk's own fault (a digest that
 * does not match, a bound, a bad member) -> the next one.
 */
static enum bg_verdict bg_verdict(int r, const struct lp_err *err)
{
	if (lp_err_retryable(err, r) || r == -ENOMEM)
		return BG_RETRY;
	if (r == -EIO)
		return BG_STOP;
	return BG_SKIP;
}

static void run_background(struct lp_fs *fs, uint32_t ci, uint32_t end)
{
	struct fs_fetcher *f = &fs->fetch;
	struct lp_err err = { 0 };
	enum bg_verdict v = BG_SKIP;
	uint32_t c, next;
	int r = 0;

	for (c = ci; c < end && !stopping(fs); c = next) {
		next = c + 1;
		if (have_chunk(fs, c))
			continue;
		lp_err_clear(&err);
		r = fs_chunk_get(fs, c, end, FS_FETCH_BACKGROUND, NULL, &next,
				 &err);
		if (r == 0)
			continue;
		v = bg_verdict(r, &err);
		if (v != BG_SKIP)
			break;
		lp_log_warn("background fetch skips a chunk: %s",
			    lp_err_str(&err, r));
		pthread_mutex_lock(&f->lock);
		f->bg_last_err = r; /* keep going: others may do */
		pthread_mutex_unlock(&f->lock);
	}
	slot_give(fs->act);
	if (c > ci)
		atomic_fetch_add(&fs->stats.background_done_bytes,
				 span(fs, ci, lp_min_u64(c, end)));
	pthread_mutex_lock(&f->lock);
	f->bg_running--;
	if (r == 0 || v == BG_SKIP) {
		f->proven = true;
		if (f->backoff_ms) /* as loud as the warning that began it */
			lp_log_warn("layer %s: background fetch resumed",
				    lp_blob_name(fs->blob));
		f->backoff_ms = 0;
	} else if (v == BG_RETRY) {
		/* the source is away: hand the rest out again after a wait;
		 * no worker starts a run before then */
		if (!f->backoff_ms)
			lp_log_warn("background fetch waits for the source: %s",
				    lp_err_str(&err, r));
		f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 :
						FS_BACKGROUND_BACKOFF_MS;
		if (f->backoff_ms > FS_BACKGROUND_BACKOFF_MAX_MS)
			f->backoff_ms = FS_BACKGROUND_BACKOFF_MAX_MS;
		f->retry_at_ns =
			lp_mono_ns() + (uint64_t)f->backoff_ms * 1000000;
		mark_tried(f, c, end, false);
		f->bg_cursor = c;
		f->proven = false;
		atomic_fetch_add(&fs->stats.background_retries, 1);
	} else if (f->background == FS_JOB_RUNNING) {
		lp_log_err("background fetch stopped: %s", lp_err_str(&err, r));
		set_state_locked(fs, false, FS_JOB_FAILED, r);
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

struct worker {
	struct lp_fs *fs;
	unsigned int self;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct lp_fs *fs = w->fs;
	struct fs_fetcher *f = &fs->fetch;
	uint32_t ci = 0, end = 0;
	enum job job;

	/*
	 * Not niced (the fetch thread was, at 10): a workload that follows a
	 * stream waits for these threads' decoding, and on a busy machine a
	 * niced stream makes it wait for everyone else's work (a priority
	 * inversion). The CPU is spared instead
	 * by the planner's rules: optimised layers defer, and the streams
	 * narrow while on-demand reads run.
	 */
	pthread_mutex_lock(&f->lock);
	while ((job = next_job(fs, w->self, &ci, &end)) != JOB_EXIT) {
		pthread_mutex_unlock(&f->lock);
		if (job == JOB_PREFETCH)
			run_prefetch(fs, ci, end);
		else if (job == JOB_PREFETCH_CHECK)
			check_prefetch(fs);
		else
			run_background(fs, ci, end);
		pthread_mutex_lock(&f->lock);
	}
	if (f->stop) {
		if (f->prefetch == FS_JOB_RUNNING && !f->pf_finishing)
			set_state_locked(fs, true, FS_JOB_STOPPED, 0);
		if (f->background == FS_JOB_PENDING ||
		    f->background == FS_JOB_RUNNING)
			set_state_locked(fs, false, FS_JOB_STOPPED,
					 f->bg_last_err);
	}
	pthread_mutex_unlock(&f->lock);
	free(w);
#if defined(__GLIBC__) && !defined(LP_SANITIZED)
	/*
	 * The workers' transient buffers (streamed runs, decoded chunks
	 * handed on) came from the process's arenas from several threads at
	 * once; a layer whose fetching is over gives the free pages back
	 * (malloc_trim also releases free pages inside the heaps), so the
	 * daemon at rest holds its budgets, not its fetch history. Not under
	 * a sanitizer: its allocator replaces glibc's, so glibc's arenas are
	 * first set up by this call, from two workers at once (not thread-
	 * safe): CI's ASan stage saw test_fs abort in
	 * __malloc_arena_thread_freeres (a->attached_threads > 0) as such a
	 * worker exited, and a SIGSEGV there before.
	 */
	malloc_trim(0);
#endif
	return NULL;
}

/* the profile's paths as inode entries into @files; how many were found */
static size_t resolve_profile(struct lp_fs *fs,
			      const struct lp_fs_options *opts, uint32_t *files)
{
	size_t i, n = 0, want = opts->n_prefetch_files;
	const struct lp_toc_entry *e;
	uint32_t idx;

	if (want > LP_FS_PREFETCH_FILES_MAX)
		want = LP_FS_PREFETCH_FILES_MAX;
	for (i = 0; i < want; i++) {
		idx = opts->prefetch_files[i] ?
			      lp_toc_lookup_path(fs->toc,
						 opts->prefetch_files[i]) :
			      LP_TOC_NO_INDEX;
		if (idx != LP_TOC_NO_INDEX)
			idx = lp_toc_entry_ino(fs->toc,
					       lp_toc_entry(fs->toc, idx));
		e = idx != LP_TOC_NO_INDEX ? lp_toc_entry(fs->toc, idx) : NULL;
		/* a symlink the workload read: its target is in the TOC, no
		 * data to fetch; neither counts as missing */
		if (e && e->type != LP_TOC_REG)
			continue;
		if (!e || !e->nr_chunks) {
			fs->pf_missing += e ? 0 : 1;
			continue;
		}
		files[n++] = idx;
	}
	return n;
}

int fs_sched_plan_prefetch(struct lp_fs *fs, const struct lp_fs_options *opts,
			   struct lp_err *err)
{
	const uint32_t nr = lp_toc_nr_chunks(fs->toc);
	struct fs_fetcher *f = &fs->fetch;
	uint32_t *files = NULL, k, ci;
	uint64_t cap = 0;
	size_t n = 0;
	int r = 0;

	if (!opts->prefetch)
		return 0;
	if (opts->n_prefetch_files && nr) {
		files = calloc(lp_min_u64(opts->n_prefetch_files,
					  LP_FS_PREFETCH_FILES_MAX),
			       sizeof(*files));
		fs->pf_listed = calloc(nr / 8 + 1, 1);
		if (files && fs->pf_listed) {
			n = resolve_profile(fs, opts, files);
			fs->pf_files = (uint32_t)n;
			/* each chunk makes at most one run: a file listed
			 * over and over costs no more than the layer's
			 * chunks */
			cap = lp_min_u64(
				fs_plan_profile_chunks(fs->toc, files, n), nr);
			/* the profile's runs, then the prefetch range */
			f->pf_runs = calloc(cap + 1, sizeof(*f->pf_runs));
		}
		if (!f->pf_runs) {
			/* a profile is a hint: without the memory to plan
			 * it, the layer mounts with its landmark range */
			lp_log_warn("out of memory for the prefetch profile's "
				    "plan (%zu files): prefetching without it",
				    opts->n_prefetch_files);
			free(fs->pf_listed);
			fs->pf_listed = NULL;
			fs->pf_files = 0;
			n = 0;
		}
	}
	if (!f->pf_runs)
		f->pf_runs = calloc(1, sizeof(*f->pf_runs));
	if (!f->pf_runs)
		goto nomem;
	if (n)
		f->pf_nr_runs = fs_plan_profile_runs(
			fs->toc, files, n, fs->pf_listed, f->pf_runs,
			(uint32_t)cap,
			fs_plan_profile_byte_cap(lp_blob_size(fs->blob)));
	for (k = 0; k < f->pf_nr_runs; k++) {
		for (ci = f->pf_runs[k].ci; ci < f->pf_runs[k].end; ci++)
			fs->pf_bytes +=
				lp_toc_chunk(fs->toc, ci).compressed_size;
		fs->pf_chunks += f->pf_runs[k].end - f->pf_runs[k].ci;
	}
	if (!fs->pf_chunks) { /* nothing of it in this layer */
		free(fs->pf_listed);
		fs->pf_listed = NULL;
	}
	if (fs->prefetch_chunks)
		f->pf_runs[f->pf_nr_runs++] =
			(struct fs_plan_run){ 0, fs->prefetch_chunks };
	goto out;
nomem:
	r = lp_err_set(err, -ENOMEM, "out of memory for the prefetch plan");
out:
	free(files);
	return r;
}

int fs_fetcher_start(struct lp_fs *fs)
{
	struct fs_fetcher *f = &fs->fetch;
	const bool pf = fs->opts.prefetch && fs->fetch.pf_nr_runs;
	unsigned int i;
	int r = 0;

	if (!pf && !fs->opts.background_fetch)
		goto out;
	if (fs->opts.background_fetch) {
		f->bg_tried = calloc(lp_toc_nr_chunks(fs->toc) / 8 + 1, 1);
		if (!f->bg_tried) {
			r = -ENOMEM;
			goto out;
		}
	}
	pthread_mutex_lock(&f->lock);
	f->pf_run = 0;
	f->pf_next = pf ? f->pf_runs[0].ci : 0;
	if (pf)
		f->prefetch = FS_JOB_RUNNING;
	for (i = 0; i < FS_PLAN_STREAMS; i++) {
		struct worker *w = malloc(sizeof(*w));

		if (!w) {
			r = -ENOMEM;
			break;
		}
		*w = (struct worker){ .fs = fs, .self = i };
		r = -pthread_create(&f->threads[i], NULL, worker_main, w);
		if (r < 0) {
			free(w);
			break;
		}
		f->nr_threads++;
	}
	if (f->nr_threads)
		r = 0; /* fewer workers still do it all */
	pthread_mutex_unlock(&f->lock);
out:
	return r;
}

void fs_fetcher_stop(struct lp_fs *fs)
{
	struct fs_fetcher *f = &fs->fetch;
	unsigned int i, n;

	pthread_mutex_lock(&f->lock);
	f->stop = true;
	n = f->nr_threads;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	for (i = 0; i < n; i++)
		pthread_join(f->threads[i], NULL);
	free(f->bg_tried);
	f->bg_tried = NULL;
	free(f->pf_runs);
	f->pf_runs = NULL;
	f->pf_nr_runs = 0;
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
