// SPDX-License-Identifier: Apache-2.0
/*
 * The pipeline of one chunk request, front to back: the planner says how
 * far one blob read may reach (fs/plan.c), the memory tier claims the
 * absent chunks of that range or hands out what it has (fs/chunk_cache.c,
 * single flight), the fetch fills a claim from the disk tier or the blob,
 * decoding and verifying each chunk (fs/chunk_fetch.c), and each result is
 * published here as soon as it is known. The disk-tier copy of a fetched
 * chunk is written after its publish, by a writer thread once the layer is
 * started, so no reader waits for a disk write: when the writer's queue is
 * full, an on-demand fetch leaves the copy for later (a bit in the writer's
 * `later` bitmap, nothing pinned: disk_write_deferred), which the writer
 * writes from the memory tier once its queue is empty, unless the chunk
 * left memory by then (disk_write_dropped: it is fetched again if needed),
 * while prefetch and background workers write it themselves (back
 * pressure: they must not outrun the disk). Before lp_fs_start (no thread may exist yet:
 * a caller that forks) every fetch writes its copy itself, after the
 * publish. Every caller of the read path (file reads, the scheduler)
 * comes through fs_chunk_get(); the cache and the fetch never call each
 * other.
 *
 * Lock order: writer.lock is a leaf (never held across a disk write or
 * another lock).
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_int.h"
#include "lp_log.h"

/* one claimed run on its way: what the settle callback needs */
struct pipe_run {
	struct lp_fs *fs;
	enum fs_fetch_kind kind;
};

/* write a pinned, published chunk to the disk tier, then unpin it */
static void disk_write(struct lp_fs *fs, struct fs_chunk *ch)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ch->ci);
	struct lp_digest dg;

	/* verified before publish against ch->dg, carried from the fetch;
	 * a chunk published without it (from the disk tier, then left for
	 * later) reads it */
	if (atomic_load_explicit(&ch->has_dg, memory_order_acquire))
		fs_disk_put(fs->disk, &ch->dg, ch->data, ch->len);
	else if (lp_chunk_digest(fs->toc, &c, &dg, NULL) == 0)
		fs_disk_put(fs->disk, &dg, ch->data, ch->len);
	fs_chunk_written(fs, ch);
	fs_chunk_put(fs, ch);
}

/* what writer_queue() did with a chunk */
enum queued {
	QUEUED, /* the writer has it */
	QUEUE_FULL, /* the writer runs, its queue is full */
	NO_WRITER, /* not started (or stopping) */
};

/* queue a pinned chunk for the writer; otherwise the caller keeps it: the
 * queue's bounds bound the pinned memory */
static enum queued writer_queue(struct lp_fs *fs, struct fs_chunk *ch)
{
	struct fs_writer *w = &fs->writer;
	enum queued q = NO_WRITER;

	pthread_mutex_lock(&w->lock);
	if (w->started && !w->stop) {
		q = QUEUE_FULL;
		if (w->n < FS_WRITE_QUEUE &&
		    w->bytes + ch->len <= FS_WRITE_QUEUE_BYTES) {
			w->queue[(w->head + w->n++) % FS_WRITE_QUEUE] = ch;
			w->bytes += ch->len;
			pthread_cond_signal(&w->cond);
			q = QUEUED;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return q;
}

/* leave chunk @ci's copy to the writer for later (it is in the memory
 * tier: on-demand chunks are kept); false: no room for the bitmap */
static bool writer_later(struct lp_fs *fs, uint32_t ci)
{
	struct fs_writer *w = &fs->writer;
	bool ok = true;

	pthread_mutex_lock(&w->lock);
	if (!w->later)
		w->later = calloc(lp_toc_nr_chunks(fs->toc) / 8 + 1, 1);
	if (!w->later) {
		ok = false;
	} else if (!(w->later[ci / 8] & (1u << (ci % 8)))) {
		w->later[ci / 8] |= (uint8_t)(1u << (ci % 8));
		w->nr_later++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

/* take the next chunk left for later off the bitmap; writer.lock held,
 * nr_later > 0 */
static uint32_t later_take_locked(struct lp_fs *fs)
{
	struct fs_writer *w = &fs->writer;
	const uint32_t nr = lp_toc_nr_chunks(fs->toc);
	uint32_t ci = w->later_pos < nr ? w->later_pos : 0;

	while (!(w->later[ci / 8] & (1u << (ci % 8))))
		ci = ci + 1 < nr ? ci + 1 : 0;
	w->later[ci / 8] &= (uint8_t) ~(1u << (ci % 8));
	w->nr_later--;
	w->later_pos = ci + 1;
	return ci;
}

/* write the copy of chunk @ci left for later, if memory still has it */
static void later_write(struct lp_fs *fs, uint32_t ci)
{
	struct fs_chunk *ch = fs_chunk_pin_ready(fs, ci);

	if (ch)
		disk_write(fs, ch);
	else
		atomic_fetch_add(&fs->stats.disk_write_dropped, 1);
}

static void *writer_main(void *arg)
{
	struct lp_fs *fs = arg;
	struct fs_writer *w = &fs->writer;
	struct fs_chunk *ch = NULL;
	uint32_t ci = 0;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->n && !w->nr_later && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->n) { /* the queue first: those are pinned */
			ch = w->queue[w->head];
			w->head = (w->head + 1) % FS_WRITE_QUEUE;
			w->n--;
			w->bytes -= ch->len;
		} else if (w->nr_later) {
			ch = NULL;
			ci = later_take_locked(fs);
		} else {
			break; /* stopping, nothing left */
		}
		w->writing = true;
		pthread_mutex_unlock(&w->lock);
		if (ch)
			disk_write(fs, ch);
		else
			later_write(fs, ci);
		pthread_mutex_lock(&w->lock);
		w->writing = false;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int fs_writer_start(struct lp_fs *fs)
{
	struct fs_writer *w = &fs->writer;
	int r = 0;

	if (!fs->disk)
		goto out;
	pthread_mutex_lock(&w->lock);
	r = -pthread_create(&w->thread, NULL, writer_main, fs);
	w->started = r == 0;
	pthread_mutex_unlock(&w->lock);
out:
	return r;
}

void fs_writer_stop(struct lp_fs *fs)
{
	struct fs_writer *w = &fs->writer;
	bool started;

	pthread_mutex_lock(&w->lock);
	w->stop = true;
	started = w->started;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (started)
		pthread_join(w->thread, NULL); /* it drains the queue first */
	w->started = false;
	free(w->later);
	w->later = NULL;
}

bool fs_writer_idle(struct lp_fs *fs)
{
	struct fs_writer *w = &fs->writer;
	bool idle;

	pthread_mutex_lock(&w->lock);
	idle = !w->n && !w->nr_later && !w->writing;
	pthread_mutex_unlock(&w->lock);
	return idle;
}

/* fs_fetch_run()'s callback: publish, then keep a fetched chunk on disk */
static void settle(void *arg, uint32_t ci, uint8_t *data, int res,
		   bool retryable, bool from_disk, const struct lp_digest *dg)
{
	struct pipe_run *run = arg;
	struct lp_fs *fs = run->fs;
	struct fs_chunk *pin = NULL;
	const bool keep = res == 0 && fs->disk && !from_disk;

	enum queued q;

	fs_chunk_publish(fs, ci, data, res, retryable, run->kind,
			 keep ? &pin : NULL);
	if (!pin)
		return;
	if (dg) { /* written once, then published (struct fs_chunk) */
		pin->dg = *dg;
		atomic_store_explicit(&pin->has_dg, true, memory_order_release);
	}
	q = writer_queue(fs, pin);
	if (q == QUEUED)
		return;
	if (q == QUEUE_FULL && run->kind == FS_FETCH_ONDEMAND &&
	    writer_later(fs, ci)) {
		/* a reader waits for this run: no disk write in its way */
		atomic_fetch_add(&fs->stats.disk_write_deferred, 1);
		fs_chunk_put(fs, pin);
		return;
	}
	/* prefetch and background: back pressure when the disk is the
	 * slower; before the start: nobody else would write it */
	disk_write(fs, pin);
}

/* whether the disk tier holds chunk @ci */
static bool on_disk(struct lp_fs *fs, uint32_t ci)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	struct lp_digest dg;

	return fs->disk && lp_chunk_digest(fs->toc, &c, &dg, NULL) == 0 &&
	       fs_disk_has(fs->disk, &dg);
}

int fs_chunk_get(struct lp_fs *fs, uint32_t ci, uint32_t extend_to,
		 enum fs_fetch_kind kind, struct fs_chunk **ret_chunk,
		 uint32_t *ret_next, struct lp_err *err)
{
	struct pipe_run run = { .fs = fs, .kind = kind };
	struct fs_chunk *ch = NULL;
	uint32_t end, n = 1;
	uint64_t t0 = 0;
	bool retryable = false, net = false;
	int r;

	if (kind == FS_FETCH_ONDEMAND)
		fs_sched_ondemand_read(fs, ci);
	end = fs_plan_run_end(fs->toc, ci, extend_to, fs_plan_run_bytes(kind));
	r = fs_chunk_claim(fs, ci, end, ret_chunk ? &ch : NULL, &n, &retryable);
	if (r == -ENOMEM) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (r < 0) {
		/* the fetcher's verdict reaches its waiters too */
		struct lp_err cause = { 0 };

		lp_err_set_ex(&cause, r, retryable ? LP_ERR_RETRYABLE : 0, 0,
			      "fetched by another reader, which failed");
		fs_chunk_error_from(fs, ci, r, &cause, lp_err_str(&cause, r),
				    err);
		goto out;
	}
	if (r == FS_CLAIM_READY) {
		atomic_fetch_add(&fs->stats.mem_hits, 1);
		r = 0;
		goto out;
	}
	if (r == FS_CLAIM_WAITED || r == FS_CLAIM_BUSY) {
		r = 0;
		goto out;
	}
	/* claimed: [ci, ci + n) are ours to fill */
	if (kind == FS_FETCH_ONDEMAND) {
		/* a read the disk tier serves takes nothing from the link:
		 * it is no reason for the background to narrow */
		net = !on_disk(fs, ci);
		if (net) {
			fs_sched_ondemand_miss(fs, ci, ci + n);
			fs_activity_begin(fs, true);
		}
		t0 = lp_mono_ns();
	}
	r = fs_fetch_run(fs, ci, n, settle, &run, err);
	if (kind == FS_FETCH_ONDEMAND) {
		fs_stats_ondemand(&fs->stats, lp_mono_ns() - t0);
		if (net)
			fs_activity_end(fs, true);
		if (n > 1)
			atomic_fetch_add(&fs->stats.readahead_chunks, n - 1);
	}
	if (r < 0) {
		/* our pin kept @ch alive; it was not published */
		fs_chunk_put(fs, ch);
		ch = NULL;
	}
out:
	if (r == 0 && ret_chunk)
		*ret_chunk = ch;
	if (ret_next)
		*ret_next = ci + n;
	return r;
}
