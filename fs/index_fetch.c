// SPDX-License-Identifier: Apache-2.0
/*
 * Filling claimed chunks of a layer mounted through its gzip index
 * (docs/format.md, "mounting through a gzip index"), and the header
 * checks' reads of its bytes (fs_index_read(): the same path, span by
 * span, so that a check's span decoded whole serves the file reads after
 * it). A chunk is one file's
 * piece of one span; its bytes come from the index's span cache
 * (lp_index_span_get(), format/index_spans.c), which fetches each span
 * once, compares its digest, and shares it with every other reader of the
 * layer: the chunks of other files in the same span, the header checks,
 * the streams that prove checkpoints, and the proving pass. A piece is
 * then inflated from its span's checkpoint when it is proven; else (the
 * default) by lp_index_read()'s stream from the last proven checkpoint,
 * whose spans come through the same cache; with the window rule (opt-in)
 * from the span itself when no byte of it depends on the unproven window.
 * A lie found (a span digest, a decode, a checkpoint) poisons the mount;
 * a source that fails poisons nothing. The chunks have no disk tier
 * (there is no chunk digest to key them by); the spans do, with a cache
 * directory: fs/span_disk.c, under the span cache (fs_index_disk_join()).
 *
 * A piece from a proven checkpoint (or any of a trusted index's, which is
 * decoded once from its checkpoint all the same) is copied from its span
 * decoded whole
 * (struct fs_span_outs: the last FS_INDEX_OUTS spans decoded, each at most
 * FS_INDEX_OUT_MAX bytes, charged to the memory budget while held, a
 * member of it that gives them up under pressure, outs_shrink(); the
 * pass's outputs nobody read are dropped when it ends): a span
 * holds the pieces of many files, and decoding each piece from the
 * checkpoint inflated half a span per piece on average (readall of the
 * python3 image: 6,610 pieces at 3.9 ms each, 26 s of one core). The
 * proving pass's thread decodes spans whole too, and hands them over
 * (fs_index_span_decoded(): the pass's own output; fs_index_decode_ahead():
 * after the pass, the span after the readers'), so that readers that
 * follow it copy and do not inflate the layer a second time; a read of the
 * span the pass is in waits for its output (read_span_piece()), one of the span
 * decoded ahead for that decode (docs/format.md, "Decoded once").
 *
 * Lock order: the budget's lock, then outs.lock (outs_shrink()); no
 * decode and no budget call but fs_budget_stamp() (an atomic) under
 * outs.lock (outs.cond is waited on with it), with one exception that is
 * safe only as written: outs_shrink() drops an output's last reference
 * under outs.lock after swapping its charge out first, so that
 * out_unref() makes no budget call there (a release of the budget under
 * outs.lock would deadlock against a shrink holding the budget's lock);
 * the span cache's lock is a leaf inside format/.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "fs_int.h"
#include "lp_log.h"

/*
 * Spans kept decoded whole, a layer: at most FS_INDEX_OUTS, and at most
 * 1/FS_INDEX_OUTS_SHARE of the memory budget (32 MiB of the default 64;
 * FS_INDEX_SPAN_CACHE_MAX at most), which takes them back under pressure
 * like any member; spans a little over 2 MiB run out of bytes first (15
 * of them in 32 MiB). The python3 import touches ~23-30 of its 82 spans in no
 * order, revisiting them as modules import modules: with 4 spans (8 MiB)
 * it decoded them 73-86 times, with 16 (32 MiB) 36-39.
 */
#define FS_INDEX_OUTS 16
#define FS_INDEX_OUTS_SHARE 2
#define FS_INDEX_OUT_MAX (4 * LP_MIB) /* a span's output decoded whole */

/* one span decoded whole; freed by its last unref */
struct span_out {
	atomic_uint refs;
	size_t i, len;
	bool from_pass; /* the proving pass's output (fs_index_span_decoded) */
	/* len is charged to the budget (until its last unref, or the
	 * budget's eviction takes it out: outs_shrink) */
	atomic_bool charged;
	/* data[0, ready) is final: all of it but for a span being streamed
	 * (stream_start()) until its stream ends; err when that failed
	 * (its waiters then read the span another way) */
	atomic_size_t ready;
	atomic_int err;
	uint8_t data[];
};

struct fs_span_outs {
	pthread_mutex_t lock;
	struct span_out *slot[FS_INDEX_OUTS]; /* protected by lock */
	uint64_t used[FS_INDEX_OUTS], clock; /* LRU; protected by lock */
	/* the budget's stamp of each slot's last use (0: cold, no reader
	 * used it); protected by lock */
	uint64_t stamp[FS_INDEX_OUTS];
	/* in the budget, which takes outputs out under pressure
	 * (outs_shrink) like the span cache's spans */
	struct fs_mem_member member;
	size_t held; /* bytes in slot[]; protected by lock */
	/* at most this many bytes held (1/FS_INDEX_OUTS_SHARE of the
	 * budget, which takes them back coldest first when it needs room);
	 * immutable */
	size_t max_bytes;
	struct lp_fs_budget *budget; /* charged while held, or NULL */
	/* for the pass's pacing (fs_index_outs_behind): when a reader last
	 * got a piece from a span decoded whole (0: never) and that span,
	 * the last span the pass handed over, and readers waiting for the
	 * pass (read_span_piece) */
	atomic_uint_fast64_t reader_ns;
	atomic_size_t reader_span, pass_span;
	atomic_uint pass_waiters;
	/* the span fs_index_decode_ahead() decodes now (SIZE_MAX: none):
	 * readers of it wait for that decode (cond) instead of making their
	 * own; protected by lock */
	size_t ahead;
	pthread_cond_t cond;
	/* stream_start()'s threads running, and whether they are to stop
	 * (fs_index_streams_wait()); streams changes under lock and is
	 * waited for on cond */
	atomic_uint streams;
	atomic_bool stopping;
};

static void out_unref(struct fs_span_outs *o, struct span_out *so)
{
	if (!so || atomic_fetch_sub(&so->refs, 1) != 1)
		return;
	if (o->budget && atomic_exchange(&so->charged, false))
		fs_budget_release(o->budget, so->len);
	free(so);
}

/* a new output of span @i, @len bytes (one reference, the caller's),
 * all of them final unless @streamed; NULL without memory */
static struct span_out *out_new(size_t i, size_t len, bool from_pass,
				bool streamed)
{
	struct span_out *so = malloc(sizeof(*so) + (len ? len : 1));

	if (!so)
		return NULL;
	atomic_init(&so->refs, 1);
	atomic_init(&so->charged, false);
	so->i = i;
	so->len = len;
	so->from_pass = from_pass;
	atomic_init(&so->ready, streamed ? 0 : len);
	atomic_init(&so->err, 0);
	return so;
}

/* @so is a span being streamed (its stream has not ended) */
static bool out_streaming(const struct span_out *so)
{
	return atomic_load(&so->ready) < so->len && !atomic_load(&so->err);
}

/* the budget's view of the oldest slot (with o->lock held) */
static void note_cold(struct fs_span_outs *o)
{
	uint64_t cold = UINT64_MAX;
	unsigned int k;

	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->stamp[k] < cold)
			cold = o->stamp[k];
	atomic_store(&o->member.cold, cold);
}

/* a stamp from @o's budget (0 without one) */
static uint64_t out_stamp(struct fs_span_outs *o)
{
	return o->budget ? fs_budget_stamp(o->budget) : 0;
}

/* the uncompressed bytes span @i inflates to */
static uint64_t span_out_len(const struct lp_index *ix, size_t i)
{
	return lp_index_span_out_end(ix, i) - lp_index_checkpoint(ix, i)->out;
}

/*
 * The slot to empty for a new output (with o->lock held; FS_INDEX_OUTS:
 * none held). Slots a reader used (used[k] > 0) go least recently used
 * first; the pass's outputs no reader has used yet (used 0, "cold") are
 * kept for the readers behind it, who get there in blob order: a reader's
 * decode takes a cold slot only when no other is left or the cold ones are
 * half the slots or half of max_bytes (readers elsewhere in the
 * layer keep the other half; with spans of 2 MiB the bytes run out before
 * the slots). The
 * pass's own next output (@cold) replaces its oldest unread one, if any:
 * that is the one the readers, lagging further than the slots reach, would
 * have missed.
 */
static unsigned int victim_of(const struct fs_span_outs *o, bool cold)
{
	unsigned int k, hot = FS_INDEX_OUTS, old = FS_INDEX_OUTS, nr_cold = 0;
	size_t cold_bytes = 0;

	for (k = 0; k < FS_INDEX_OUTS; k++) {
		/* a span being streamed stays until its stream ends: its
		 * readers wait on it, and another reader would stream it
		 * again */
		if (!o->slot[k] || out_streaming(o->slot[k]))
			continue;
		nr_cold += !o->used[k];
		cold_bytes += o->used[k] ? 0 : o->slot[k]->len;
		if (o->used[k]) {
			if (hot == FS_INDEX_OUTS || o->used[k] < o->used[hot])
				hot = k;
		} else if (old == FS_INDEX_OUTS ||
			   o->slot[k]->i < o->slot[old]->i) {
			old = k;
		}
	}
	if (old < FS_INDEX_OUTS && (cold || nr_cold >= FS_INDEX_OUTS / 2 ||
				    cold_bytes >= o->max_bytes / 2))
		return old;
	return hot < FS_INDEX_OUTS ? hot : old;
}

/*
 * Keep @so (our reference stays the caller's) among the last spans
 * decoded, charged to the budget from now until it is freed, unless a
 * slot holds its span already (then it is uncharged at its last unref).
 * @cold: the proving pass's output, no reader has used it yet (victim_of()
 * says which slots leave first).
 */
static bool outs_keep(struct fs_span_outs *o, struct span_out *so, bool cold)
{
	struct span_out *old = NULL;
	unsigned int k, victim = 0;
	bool kept = false;

	if (o->budget) {
		fs_budget_reserve(o->budget, so->len);
		atomic_store(&so->charged, true);
	}
	pthread_mutex_lock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->slot[k]->i == so->i)
			victim = FS_INDEX_OUTS; /* another decoded it too */
	while (victim < FS_INDEX_OUTS) {
		for (victim = 0; victim < FS_INDEX_OUTS; victim++)
			if (!o->slot[victim])
				break;
		if (victim < FS_INDEX_OUTS && o->held + so->len <= o->max_bytes)
			break; /* a free slot, and the bytes fit */
		victim = victim_of(o, cold);
		if (victim == FS_INDEX_OUTS)
			break; /* none held: not kept (cannot be) */
		o->held -= o->slot[victim]->len;
		old = o->slot[victim];
		o->slot[victim] = NULL;
		note_cold(o);
		pthread_mutex_unlock(&o->lock);
		out_unref(o, old);
		old = NULL;
		pthread_mutex_lock(&o->lock);
	}
	if (victim < FS_INDEX_OUTS) {
		atomic_fetch_add(&so->refs, 1); /* the cache's */
		o->slot[victim] = so;
		o->used[victim] = cold ? 0 : ++o->clock;
		o->stamp[victim] = cold ? 0 : out_stamp(o);
		o->held += so->len;
		note_cold(o);
		kept = true;
	}
	pthread_mutex_unlock(&o->lock);
	/* charged once, here; uncharged when it is freed (at once when
	 * another thread's decode of the span got in first) */
	if (o->budget)
		fs_budget_enforce(o->budget);
	return kept;
}

/*
 * Chunk piece [@skip, @skip + @len) of proven span @i (its bytes @sp) into
 * @dst: copied from the span decoded whole, decoding it first when it is
 * not among the last decoded (@sp NULL: -ENOENT then). -ENOENT when the
 * span's output is over FS_INDEX_OUT_MAX (decode the piece alone), else as
 * lp_index_span_decode().
 */
static int piece_from_out(struct lp_fs *fs, size_t i,
			  const struct lp_index_span *sp, uint64_t skip,
			  void *dst, size_t len, struct lp_err *derr)
{
	struct fs_span_outs *o = fs->span_outs;
	const uint64_t out_len = span_out_len(fs->ix, i);
	struct span_out *so = NULL;
	unsigned int k;
	int r;

	if (!o || out_len > FS_INDEX_OUT_MAX || out_len > o->max_bytes ||
	    skip + len > out_len)
		return -ENOENT;
	pthread_mutex_lock(&o->lock);
	while (o->ahead == i) /* being decoded ahead: that one will do */
		pthread_cond_wait(&o->cond, &o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->slot[k]->i == i) {
			so = o->slot[k];
			atomic_fetch_add(&so->refs, 1);
			o->used[k] = ++o->clock;
			o->stamp[k] = out_stamp(o);
			note_cold(o);
			break;
		}
	/* a span being streamed: wait for the piece's bytes */
	while (so && atomic_load(&so->ready) < skip + len &&
	       !atomic_load(&so->err))
		pthread_cond_wait(&o->cond, &o->lock);
	pthread_mutex_unlock(&o->lock);
	if (so && atomic_load(&so->ready) < skip + len) {
		out_unref(o, so); /* its stream failed */
		so = NULL;
		if (!sp)
			return -ENOENT;
	}
	if (so && atomic_load(&so->ready) < so->len)
		atomic_fetch_add(&fs->stats.index_early_reads, 1);
	if (so) {
		atomic_fetch_add(&fs->stats.index_decoded_hits, 1);
		goto copy;
	}
	if (!sp)
		return -ENOENT; /* asked for a held output only */
	so = out_new(i, (size_t)out_len, false, false);
	if (!so)
		return -ENOENT; /* the piece alone needs less */
	r = lp_index_span_decode(fs->ix, i, lp_index_span_data(sp),
				 lp_index_span_len(sp), 0, so->data, so->len,
				 derr);
	if (r < 0) {
		free(so);
		return r;
	}
	atomic_fetch_add(&fs->stats.index_span_decodes, 1);
	outs_keep(o, so, false);
copy:
	atomic_store(&o->reader_ns, lp_mono_ns());
	if (atomic_exchange(&o->reader_span, i) != i) {
		/* the readers moved on: fs_index_outs_wait_reader() */
		pthread_mutex_lock(&o->lock);
		pthread_cond_broadcast(&o->cond);
		pthread_mutex_unlock(&o->lock);
	}
	memcpy(dst, so->data + skip, len);
	out_unref(o, so);
	return 0;
}

/*
 * The budget's eviction (with budget.lock; takes o->lock): slots leave
 * oldest stamp first (the cold ones, no reader used, before any), down to
 * @upto once something is freed, until @want bytes are; with !@pinned
 * only those no reader holds. A slot's bytes are uncharged here (the
 * budget subtracts what this returns), its memory freed by its last
 * unref.
 */
static size_t outs_shrink(struct fs_mem_member *m, uint64_t upto, size_t want,
			  bool pinned)
{
	struct fs_span_outs *o =
		(struct fs_span_outs *)((char *)m -
					offsetof(struct fs_span_outs, member));
	bool tried[FS_INDEX_OUTS] = { false };
	size_t freed = 0;

	pthread_mutex_lock(&o->lock);
	while (freed < want) {
		unsigned int k, best = FS_INDEX_OUTS;
		struct span_out *so;

		for (k = 0; k < FS_INDEX_OUTS; k++)
			if (o->slot[k] && !tried[k] &&
			    !out_streaming(o->slot[k]) &&
			    (best == FS_INDEX_OUTS ||
			     o->stamp[k] < o->stamp[best]))
				best = k;
		if (best == FS_INDEX_OUTS || (freed && o->stamp[best] > upto))
			break; /* none left, or another member's is older */
		tried[best] = true;
		so = o->slot[best];
		if (!pinned && atomic_load(&so->refs) > 1)
			continue; /* a reader copies from it now */
		o->slot[best] = NULL;
		o->held -= so->len;
		if (atomic_exchange(&so->charged, false))
			freed += so->len;
		out_unref(o, so); /* uncharged: no budget call */
	}
	note_cold(o);
	pthread_mutex_unlock(&o->lock);
	return freed;
}

static int outs_new(struct lp_fs *fs)
{
	struct fs_span_outs *o = calloc(1, sizeof(*o));
	pthread_condattr_t ca;

	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	/* timed waits (fs_index_outs_wait_reader()) on the monotonic clock:
	 * a wall-clock step back must not stretch them */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	o->ahead = SIZE_MAX;
	o->budget = fs->span_budget;
	o->max_bytes =
		lp_min_u64(FS_INDEX_SPAN_CACHE_MAX,
			   lp_fs_budget_bytes(o->budget) / FS_INDEX_OUTS_SHARE);
	if (o->budget) {
		o->member.shrink = outs_shrink;
		fs_budget_join(o->budget, &o->member);
	}
	fs->span_outs = o;
	return 0;
}

void fs_index_streams_stop(struct lp_fs *fs)
{
	if (fs->span_outs)
		atomic_store(&fs->span_outs->stopping, true);
}

void fs_index_streams_wait(struct lp_fs *fs)
{
	struct fs_span_outs *o = fs->span_outs;

	if (!o)
		return;
	/* a stream stalled in its source must not hold the unmount up */
	fs_index_streams_stop(fs);
	pthread_mutex_lock(&o->lock);
	while (atomic_load(&o->streams))
		pthread_cond_wait(&o->cond, &o->lock);
	pthread_mutex_unlock(&o->lock);
}

static void outs_free(struct lp_fs *fs)
{
	struct fs_span_outs *o = fs->span_outs;
	unsigned int k;

	if (!o)
		return;
	fs_index_streams_wait(fs);
	if (o->budget) /* then no evictor takes its slots */
		fs_budget_leave(o->budget, &o->member);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		out_unref(o, o->slot[k]);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o);
	fs->span_outs = NULL;
}

void fs_index_outs_drop_cold(struct lp_fs *fs)
{
	struct fs_span_outs *o = fs->span_outs;
	struct span_out *gone[FS_INDEX_OUTS] = { NULL };
	unsigned int k;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->slot[k]->from_pass && !o->used[k]) {
			gone[k] = o->slot[k];
			o->slot[k] = NULL;
			o->held -= gone[k]->len;
		}
	note_cold(o);
	pthread_mutex_unlock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		out_unref(o, gone[k]); /* uncharged */
}

size_t fs_index_out_max(const struct lp_fs *fs)
{
	const struct fs_span_outs *o = fs->span_outs;

	return o ? lp_min_u64(FS_INDEX_OUT_MAX, o->max_bytes) : 0;
}

size_t fs_index_outs_reader(struct lp_fs *fs, uint64_t *ret_ns)
{
	struct fs_span_outs *o = fs->span_outs;

	*ret_ns = o ? atomic_load(&o->reader_ns) : 0;
	return o ? atomic_load(&o->reader_span) : 0;
}

void fs_index_outs_wait_reader(struct lp_fs *fs, size_t at, uint64_t max_ns)
{
	struct fs_span_outs *o = fs->span_outs;
	struct timespec ts;
	int r = 0;

	if (!o)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(max_ns / 1000000000);
	ts.tv_nsec += (long)(max_ns % 1000000000);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&o->lock);
	while (r != ETIMEDOUT && atomic_load(&o->reader_span) == at &&
	       !atomic_load(&fs->proof.stop))
		r = pthread_cond_timedwait(&o->cond, &o->lock, &ts);
	pthread_mutex_unlock(&o->lock);
}

void fs_index_outs_wake(struct lp_fs *fs)
{
	struct fs_span_outs *o = fs->span_outs;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

/* fs_index_decode_ahead()'s decode of span @i into @o */
static int ahead_decode(struct lp_fs *fs, struct fs_span_outs *o, size_t i)
{
	struct lp_index_stream_stats st = { 0 };
	struct lp_index_span *sp = NULL;
	struct lp_err err = { 0 };
	struct span_out *so;
	int r;

	r = lp_index_span_get(fs->ix, fs->blob, i, &sp, &st, &err);
	atomic_fetch_add(&fs->stats.fetched_bytes, st.bytes_fetched);
	atomic_fetch_add(&fs->stats.blob_reads, st.spans);
	if (r < 0)
		return r; /* a reader's own get finds out what it means */
	so = out_new(i, (size_t)span_out_len(fs->ix, i), true, false);
	if (!so) {
		lp_index_span_put(sp);
		return -ENOMEM;
	}
	/* one decode from its checkpoint (proven, or the index trusted),
	 * as piece_from_out() does */
	r = lp_index_span_decode(fs->ix, i, lp_index_span_data(sp),
				 lp_index_span_len(sp), 0, so->data, so->len,
				 &err);
	lp_index_span_put(sp);
	if (r < 0) {
		free(so);
		return r; /* the same: a reader's decode poisons if it lies */
	}
	outs_keep(o, so, true);
	atomic_fetch_add(&fs->stats.index_ahead_decodes, 1);
	out_unref(o, so);
	return 0;
}

int fs_index_decode_ahead(struct lp_fs *fs, size_t i)
{
	struct fs_span_outs *o = fs->span_outs;
	unsigned int k;
	bool have = false;
	int r;

	if (!o || i >= lp_index_nr_checkpoints(fs->ix) ||
	    span_out_len(fs->ix, i) > fs_index_out_max(fs) ||
	    !lp_index_checkpoint_startable(fs->ix, i))
		return -ENOENT;
	pthread_mutex_lock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->slot[k]->i == i)
			have = true;
	if (!have)
		o->ahead = i;
	pthread_mutex_unlock(&o->lock);
	if (have)
		return 0;
	r = ahead_decode(fs, o, i);
	pthread_mutex_lock(&o->lock);
	o->ahead = SIZE_MAX;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return r;
}

unsigned int fs_index_pass_waiters(struct lp_fs *fs)
{
	return fs->span_outs ? atomic_load(&fs->span_outs->pass_waiters) : 0;
}

bool fs_index_outs_behind(struct lp_fs *fs, uint64_t follow_ns,
			  size_t follow_spans)
{
	struct fs_span_outs *o = fs->span_outs;
	unsigned int k, unread = 0;
	size_t at, last;
	uint64_t t;

	/* readers waiting for the pass: read_span_piece()'s (chunks and
	 * header checks), and any proven-only stream (lp_index_read()) */
	if (!o || atomic_load(&o->pass_waiters) ||
	    lp_index_prover_waiters(fs->ix))
		return false;
	t = atomic_load(&o->reader_ns);
	at = atomic_load(&o->reader_span);
	last = atomic_load(&o->pass_span);
	if (!t || lp_mono_ns() - t > follow_ns || at > last ||
	    last - at > follow_spans)
		return false; /* nobody reads right behind the pass */
	pthread_mutex_lock(&o->lock);
	/* outputs in front of the readers: those behind them, of files
	 * nobody read, never will be (an in-order workload that reads a
	 * subset of the files) */
	for (k = 0; k < FS_INDEX_OUTS; k++)
		unread += o->slot[k] && o->slot[k]->from_pass && !o->used[k] &&
			  o->slot[k]->i > at;
	pthread_mutex_unlock(&o->lock);
	return unread > 0;
}

void fs_index_span_decoded(struct lp_fs *fs, size_t i, const uint8_t *out,
			   size_t len)
{
	struct fs_span_outs *o = fs->span_outs;
	struct span_out *so;
	unsigned int k;
	bool have = false;

	if (!o || len > fs_index_out_max(fs) || len != span_out_len(fs->ix, i))
		return;
	pthread_mutex_lock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] && o->slot[k]->i == i)
			have = true; /* a reader decoded it already */
	pthread_mutex_unlock(&o->lock);
	if (have)
		return;
	so = out_new(i, len, true, false);
	if (!so)
		return; /* readers decode it themselves */
	memcpy(so->data, out, len);
	outs_keep(o, so, true);
	atomic_store(&o->pass_span, i);
	atomic_fetch_add(&fs->stats.index_pass_outs, 1);
	out_unref(o, so);
}

static void span_reserve(void *arg, size_t bytes)
{
	struct lp_fs *fs = arg;

	fs_budget_reserve(fs->span_budget, bytes);
}

static void span_enforce(void *arg)
{
	struct lp_fs *fs = arg;

	fs_budget_enforce(fs->span_budget);
}

static void span_release(void *arg, size_t bytes)
{
	struct lp_fs *fs = arg;

	fs_budget_release(fs->span_budget, bytes);
}

static uint64_t span_stamp(void *arg)
{
	struct lp_fs *fs = arg;

	return fs_budget_stamp(fs->span_budget);
}

static void span_cold(void *arg, uint64_t stamp)
{
	struct lp_fs *fs = arg;

	atomic_store(&fs->span_member.cold, stamp);
}

/* the budget's eviction (with budget.lock; takes the span cache's) */
static size_t span_shrink(struct fs_mem_member *m, uint64_t upto, size_t want,
			  bool pinned)
{
	struct lp_fs *fs = (struct lp_fs *)((char *)m - offsetof(struct lp_fs,
								 span_member));

	return lp_index_span_cache_shrink(fs->ix, upto, want, pinned);
}

int fs_index_spans_join(struct lp_fs *fs, struct lp_fs_budget *b)
{
	const struct lp_index_span_budget hooks = {
		.arg = fs,
		.reserve = span_reserve,
		.enforce = span_enforce,
		.release = span_release,
		.stamp = span_stamp,
		.cold = span_cold,
	};
	int r;

	fs->span_budget = b;
	fs->span_member.shrink = span_shrink;
	fs_budget_join(b, &fs->span_member);
	r = lp_index_span_cache_budget(fs->ix, &hooks);
	if (r == 0)
		r = outs_new(fs);
	if (r < 0) {
		lp_index_span_cache_budget(fs->ix, NULL);
		fs_budget_leave(b, &fs->span_member);
		fs->span_budget = NULL;
	}
	return r;
}

int fs_index_disk_join(struct lp_fs *fs, struct lp_err *err)
{
	struct lp_index_span_store st;
	int r;

	if (!fs->ix || !fs->cache_dir)
		return 0;
	r = fs_span_disk_open(fs->cache_dir, fs->ix, fs->opts.disk_cache_bytes,
			      &fs->span_disk, err);
	if (r < 0) {
		/* an optimisation: the mount goes on without it */
		lp_log_warn("layer %s: no disk tier for its spans: %s",
			    lp_blob_name(fs->blob), lp_err_str(err, r));
		lp_err_clear(err);
		fs->span_disk = NULL;
		return 0;
	}
	fs_span_disk_store(fs->span_disk, &st);
	lp_index_span_cache_store(fs->ix, &st);
	return 0;
}

void fs_index_disk_leave(struct lp_fs *fs)
{
	if (!fs->span_disk)
		return;
	lp_index_span_cache_store(fs->ix, NULL);
	fs_span_disk_close(fs->span_disk);
	fs->span_disk = NULL;
}

void fs_index_spans_leave(struct lp_fs *fs)
{
	outs_free(fs); /* uncharged, before the budget goes */
	if (!fs->span_budget)
		return;
	/* every span held leaves, uncharged; then no evictor calls us */
	lp_index_span_cache_budget(fs->ix, NULL);
	fs_budget_leave(fs->span_budget, &fs->span_member);
	fs->span_budget = NULL;
}

static void add_stream_stats(struct lp_fs *fs,
			     const struct lp_index_stream_stats *st);

/*
 * A span decoded as its bytes come (docs/format.md, "Streamed spans"): a
 * read of a span nobody holds, of a trusted index with grain digests,
 * puts an output in the slots with nothing ready and starts a thread that
 * fetches the span in one request (lp_index_span_get_stream(): each grain
 * compared with its digest as it comes) and inflates each verified piece
 * into the output at once; readers of the span wait in piece_from_out()
 * only for the bytes they need, not for the whole span. Only for a
 * trusted index: a stream starts at its span's checkpoint, which only a
 * trusted index lets any read do, and its grains are then the signer's
 * word or were checked by the pass that proved it.
 */
struct stream_job {
	struct lp_fs *fs;
	struct span_out *so; /* our reference */
	struct lp_index_span_inflater *inf;
	size_t fed, done; /* span bytes fed, output bytes made */
	bool reserved; /* the span's flight is ours (fs_index_stream_first) */
	int r; /* the first decode error (the rest is then not fed) */
	struct lp_err err;
};

static void stream_publish(struct fs_span_outs *o, struct span_out *so,
			   size_t ready, int err)
{
	pthread_mutex_lock(&o->lock);
	atomic_store(&so->ready, ready);
	if (err)
		atomic_store(&so->err, err);
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

/* lp_index_span_get_stream()'s progress: data[0, verified) verified. A
 * decode error stops the decode, not the fetch (the span still lands in
 * the cache; stream_main() poisons the mount: a lie) */
static int stream_progress(void *arg, const uint8_t *data, size_t verified)
{
	struct stream_job *j = arg;
	size_t before = j->done;

	if (atomic_load(&j->fs->span_outs->stopping))
		return -ECANCELED; /* the unmount: a source that fails */
	if (j->r < 0 || verified <= j->fed)
		return 0;
	j->r = lp_index_span_inflater_feed(j->inf, data + j->fed,
					   verified - j->fed, j->so->data,
					   j->so->len, &j->done, &j->err);
	j->fed = verified;
	if (j->r == 0 && j->done != before)
		stream_publish(j->fs->span_outs, j->so, j->done, 0);
	return 0;
}

/* a stream's thread ended, or never started: fs_index_streams_wait() */
static void stream_done(struct fs_span_outs *o)
{
	pthread_mutex_lock(&o->lock);
	atomic_fetch_sub(&o->streams, 1);
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

/* drop @so from the slots, if it is there (a stream that failed) */
static void outs_forget(struct fs_span_outs *o, struct span_out *so)
{
	struct span_out *gone = NULL;
	unsigned int k;

	pthread_mutex_lock(&o->lock);
	for (k = 0; k < FS_INDEX_OUTS; k++)
		if (o->slot[k] == so) {
			gone = so;
			o->slot[k] = NULL;
			o->held -= so->len;
		}
	note_cold(o);
	pthread_mutex_unlock(&o->lock);
	out_unref(o, gone);
}

static void *stream_main(void *arg)
{
	struct stream_job *j = arg;
	struct lp_fs *fs = j->fs;
	struct fs_span_outs *o = fs->span_outs;
	struct span_out *so = j->so;
	struct lp_index_stream_stats st = { 0 };
	struct lp_index_span *sp = NULL;
	struct lp_err err = { 0 };
	int r;

	/* the inflater was made by stream_start_as() */
	if (j->reserved)
		r = lp_index_span_get_claimed_stream(fs->ix, fs->blob, so->i,
						     stream_progress, j, &sp,
						     &st, &err);
	else
		r = lp_index_span_get_stream(fs->ix, fs->blob, so->i,
					     stream_progress, j, &sp, &st,
					     &err);
	if (r == 0 && j->fed == 0) /* not fetched by us: decode it whole */
		r = lp_index_span_decode(fs->ix, so->i, lp_index_span_data(sp),
					 lp_index_span_len(sp), 0, so->data,
					 so->len, &err);
	else if (r == 0)
		r = j->r < 0 ? j->r :
			       lp_index_span_inflater_end(j->inf, j->done,
							  so->len, &j->err);
	add_stream_stats(fs, &st);
	if (r == -EBADMSG) {
		uint64_t s0, s1;

		/* a lie found (a grain, the span, its decode from a
		 * checkpoint the signer vouched for), as fill_piece() */
		atomic_fetch_add(&fs->stats.verify_failures, 1);
		fs_poison(fs, -EBADMSG, err.msg[0] ? &err : &j->err);
		lp_index_span_range(fs->ix, so->i, &s0, &s1);
		lp_blob_reject(fs->blob, s0, s1 - s0);
	}
	/* any failure releases the readers waiting on the output: they
	 * read the span another way (from the cache, or fetching it) */
	if (r == 0) {
		stream_publish(o, so, so->len, 0);
	} else {
		stream_publish(o, so, atomic_load(&so->ready), r);
		outs_forget(o, so);
	}
	lp_index_span_put(sp);
	lp_index_span_inflater_free(j->inf);
	free(j);
	out_unref(o, so);
	stream_done(o);
	return NULL;
}

bool fs_index_streamed(struct lp_fs *fs)
{
	return fs->ix && fs->span_outs && lp_index_trusted(fs->ix) &&
	       lp_index_grain_size(fs->ix) &&
	       lp_index_span_size(fs->ix) < fs_index_out_max(fs);
}

/* whether a read of span @i, held nowhere, is streamed (above) */
static bool stream_span(struct lp_fs *fs, size_t i)
{
	return fs_index_streamed(fs) && lp_index_span_uncached(fs->ix, i);
}

/* start streaming span @i into the slots: 0 (started, or another
 * reader's output of it is there), else -errno (read it another way).
 * With @reserved the caller reserved the span's flight
 * (lp_index_span_reserve()): the stream fetches it there, or it is given
 * up here */
static int stream_start_as(struct lp_fs *fs, size_t i, bool reserved)
{
	struct fs_span_outs *o = fs->span_outs;
	const uint64_t out_len = span_out_len(fs->ix, i);
	struct stream_job *j;
	struct span_out *so;
	pthread_attr_t at;
	pthread_t t;
	int r;

	if (out_len > FS_INDEX_OUT_MAX || out_len > o->max_bytes) {
		r = -ENOENT;
		goto given_up;
	}
	so = out_new(i, (size_t)out_len, false, true);
	j = calloc(1, sizeof(*j));
	if (!so || !j) {
		free(so);
		free(j);
		r = -ENOMEM;
		goto given_up;
	}
	/* here, not on the thread: a reserved span is given up before
	 * anyone (the pass) can wait for it */
	r = lp_index_span_inflater_new(fs->ix, i, &j->inf, &j->err);
	if (r < 0) {
		free(so);
		free(j);
		goto given_up;
	}
	/* a reserved span's output is the pass's until a reader uses it
	 * (cold: fs_index_outs_drop_cold() drops it if nobody did) */
	if (!outs_keep(o, so, reserved)) {
		/* another reader's output of the span got in first (read
		 * from it), or no room (read as before) */
		out_unref(o, so);
		lp_index_span_inflater_free(j->inf);
		free(j);
		r = 0;
		goto given_up;
	}
	j->fs = fs;
	j->reserved = reserved;
	j->so = so; /* our reference */
	atomic_fetch_add(&o->streams, 1);
	r = pthread_attr_init(&at);
	if (r == 0) {
		r = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (r == 0)
			r = pthread_create(&t, &at, stream_main, j);
		pthread_attr_destroy(&at);
	}
	if (r != 0) {
		stream_publish(o, so, 0, -EAGAIN); /* its waiters read it */
		outs_forget(o, so);
		out_unref(o, so);
		lp_index_span_inflater_free(j->inf);
		free(j);
		stream_done(o);
		r = -EAGAIN;
		goto given_up;
	}
	atomic_fetch_add(&fs->stats.index_span_decodes, 1);
	atomic_fetch_add(&fs->stats.index_span_streams, 1);
	return 0;
given_up:
	if (reserved) /* nobody waits yet: the pass fetches it itself */
		lp_index_span_unreserve(fs->ix, i, -EAGAIN, NULL);
	return r;
}

static int stream_start(struct lp_fs *fs, size_t i)
{
	return stream_start_as(fs, i, false);
}

void fs_index_stream_first(struct lp_fs *fs)
{
	if (stream_span(fs, 0) && lp_index_span_reserve(fs->ix, 0) == 1)
		(void)stream_start_as(fs, 0, true);
}

/*
 * Bytes [@skip, @skip + @len) of span @i's output into @dst; what it
 * fetched is added to @st. *@keep (NULL: none) is the span read last by
 * the caller (span *@keep_i), pinned: used again when it is span @i (a
 * span over the cache's limit is not held there, and would be fetched
 * again for each piece), else replaced. When the piece must be streamed
 * from the last proven checkpoint (lp_index_read()), the stream reads on
 * to @avail bytes (>= @len; @dst has room for them): the spans after it
 * are then read by the same stream, not each by a stream of its own that
 * inflates the ones before it again. Returns the bytes read into @dst
 * (@len, or @avail when streamed), or -errno with @derr saying why.
 */
static ssize_t read_span_piece(struct lp_fs *fs, size_t i, uint64_t skip,
			       uint8_t *dst, size_t len, size_t avail,
			       struct lp_index_span **keep, size_t *keep_i,
			       struct lp_index_stream_stats *st,
			       struct lp_err *derr)
{
	struct lp_index_span *sp = NULL;
	bool window_rule = fs->opts.index_window_rule;
	int r;

	/* a trusted index's span held decoded, or being streamed (span 0
	 * from the mount on, fs_index_stream_first(), the pass waiting for
	 * that same fetch): its output, not the pass's */
	if (lp_index_trusted(fs->ix) &&
	    piece_from_out(fs, i, NULL, skip, dst, len, derr) == 0) {
		lp_index_span_read_elsewhere(fs->ix);
		return (ssize_t)len;
	}
	/* the proving pass on its way to span i (proven-only), or in it (it
	 * proved checkpoint i and waits for the span's bytes, or inflates
	 * them): it decodes the span whole and hands it over
	 * (fs_index_span_decoded) before it proves the checkpoint after it;
	 * wait for that, then copy, instead of decoding it a second time
	 * (lp_index_wait_prover() waits only when the pass gets there no
	 * later than a stream of ours; a trusted read never waits for a pass
	 * behind it) */
	if (!window_rule && fs->span_outs &&
	    i + 1 < lp_index_nr_checkpoints(fs->ix) &&
	    !lp_index_checkpoint_verified(fs->ix, i + 1) &&
	    (lp_index_checkpoint_verified(fs->ix, i) ||
	     !lp_index_trusted(fs->ix))) {
		atomic_fetch_add(&fs->span_outs->pass_waiters, 1);
		(void)lp_index_wait_prover(fs->ix, i + 1);
		atomic_fetch_sub(&fs->span_outs->pass_waiters, 1);
	}
	/* a span held decoded (the pass's output, or a reader's): no need
	 * for its compressed bytes */
	if (lp_index_checkpoint_startable(fs->ix, i) &&
	    piece_from_out(fs, i, NULL, skip, dst, len, derr) == 0) {
		/* the layer is read: the pass's spans stay at its end */
		lp_index_span_read_elsewhere(fs->ix);
		return (ssize_t)len;
	}
	if (!window_rule && !lp_index_checkpoint_startable(fs->ix, i)) {
		/* no unproven start at all: lp_index_read() streams from the
		 * last proven checkpoint (its spans from the cache too) */
		r = -EAGAIN;
	} else {
		/* not held anywhere: streamed, when it can be (above) */
		if (!(*keep && *keep_i == i) && stream_span(fs, i) &&
		    stream_start(fs, i) == 0 &&
		    piece_from_out(fs, i, NULL, skip, dst, len, derr) == 0) {
			lp_index_span_read_elsewhere(fs->ix);
			return (ssize_t)len;
		}
		if (*keep && *keep_i == i) {
			sp = *keep;
			*keep = NULL;
			r = 0;
		} else {
			r = lp_index_span_get(fs->ix, fs->blob, i, &sp, st,
					      derr);
		}
		/* a proven span's pieces, or a trusted index's (one decode
		 * from its checkpoint either way): from the span decoded
		 * whole */
		if (r == 0 && lp_index_checkpoint_startable(fs->ix, i))
			r = piece_from_out(fs, i, sp, skip, dst, len, derr);
		else if (r == 0)
			r = -ENOENT;
		if (r == -ENOENT)
			r = lp_index_span_decode(
				fs->ix, i, lp_index_span_data(sp),
				lp_index_span_len(sp), skip, dst, len, derr);
	}
	if (r == -EAGAIN) {
		/* the piece depends on a window nobody has proven */
		lp_err_clear(derr);
		len = avail;
		r = lp_index_read(fs->ix, fs->blob,
				  lp_index_checkpoint(fs->ix, i)->out + skip,
				  dst, len, sp ? lp_index_span_data(sp) : NULL,
				  sp ? lp_index_span_len(sp) : 0, !window_rule,
				  st, derr);
	}
	if (sp) {
		/* kept for the next piece */
		lp_index_span_put(*keep);
		*keep = sp;
		*keep_i = i;
	}
	return r < 0 ? r : (ssize_t)len;
}

static void add_stream_stats(struct lp_fs *fs,
			     const struct lp_index_stream_stats *st)
{
	atomic_fetch_add(&fs->stats.fetched_bytes, st->bytes_fetched);
	atomic_fetch_add(&fs->stats.blob_reads, st->spans);
	atomic_fetch_add(&fs->stats.index_window_rereads, st->window_rereads);
}

/* chunk @ci into @dst (its chunk_size bytes): read_span_piece() of its
 * span, counted in the mount's stats */
static int fill_piece(struct lp_fs *fs, uint32_t ci, uint8_t *dst,
		      struct lp_index_span **keep, size_t *keep_i,
		      struct lp_err *derr)
{
	const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
	struct lp_index_stream_stats st = { 0 };
	int at = lp_index_span_at(fs->ix, c.offset);
	ssize_t r;

	if (at < 0)
		return lp_err_set(derr, -EBADMSG,
				  "no gzip index span starts at blob offset "
				  "%llu",
				  (unsigned long long)c.offset);
	r = read_span_piece(fs, (size_t)at, c.inner_offset, dst, c.chunk_size,
			    c.chunk_size, keep, keep_i, &st, derr);
	add_stream_stats(fs, &st);
	return r < 0 ? (int)r : 0;
}

int fs_index_read(struct lp_fs *fs, uint64_t off, void *buf, size_t len,
		  struct lp_err *err)
{
	struct lp_index_stream_stats st = { 0 };
	struct lp_index_span *keep = NULL;
	uint8_t *dst = buf;
	size_t keep_i = 0;
	ssize_t r = 0;

	if (off > lp_index_uncompressed_size(fs->ix) ||
	    len > lp_index_uncompressed_size(fs->ix) - off)
		return lp_err_set(err, -ERANGE,
				  "layer %s: read past its uncompressed end",
				  lp_blob_name(fs->blob));
	while (r >= 0 && len) {
		size_t i = lp_index_span_of(fs->ix, off);
		uint64_t start = lp_index_checkpoint(fs->ix, i)->out;
		size_t n = (size_t)lp_min_u64(
			len, lp_index_span_out_end(fs->ix, i) - off);

		r = read_span_piece(fs, i, off - start, dst, n, len, &keep,
				    &keep_i, &st, err);
		if (r < 0)
			break;
		dst += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	lp_index_span_put(keep);
	add_stream_stats(fs, &st);
	return r < 0 ? (int)r : 0;
}

int fs_index_fetch_run(struct lp_fs *fs, uint32_t first, uint32_t n,
		       fs_settle_fn settle, void *arg, struct lp_err *err)
{
	struct lp_index_span *keep = NULL;
	size_t keep_i = 0;
	int first_r = 0;
	uint32_t k;

	for (k = 0; k < n; k++) {
		const uint32_t ci = first + k;
		const struct lp_toc_chunk c = lp_toc_chunk(fs->toc, ci);
		struct lp_err *e = k == 0 ? err : NULL;
		struct lp_err derr = { 0 };
		uint8_t *data = NULL;
		bool retryable = false;
		int r;

		if (c.chunk_size > LP_CHUNK_MAX_SIZE) {
			r = fs_chunk_error(fs, ci, -EFBIG,
					   "chunk over the size bound", e);
			goto settle;
		}
		data = malloc(c.chunk_size ? c.chunk_size : 1);
		if (!data) {
			r = fs_chunk_error(fs, ci, -ENOMEM, "out of memory", e);
			goto settle;
		}
		r = fill_piece(fs, ci, data, &keep, &keep_i, &derr);
		if (r == 0) {
			atomic_fetch_add(&fs->stats.fetched_chunks, 1);
		} else if (r == -EBADMSG || r == -ERANGE) {
			uint64_t s0, s1;

			/* a lie found: the index's, or a blob that is not
			 * the layer (the next read of the span goes to
			 * another host) */
			atomic_fetch_add(&fs->stats.verify_failures, 1);
			fs_poison(fs, -EBADMSG, &derr);
			fs_chunk_range(fs, &c, &s0, &s1);
			lp_blob_reject(fs->blob, s0, s1 - s0);
			r = fs_chunk_error(fs, ci, -EBADMSG,
					   lp_err_str(&derr, r), e);
		} else {
			/* -ENOMEM, or the source's error */
			atomic_fetch_add(&fs->stats.fetch_errors, 1);
			retryable = lp_err_retryable(&derr, r);
			r = fs_chunk_error_from(fs, ci, r, &derr,
						lp_err_str(&derr, r), e);
		}
settle:
		if (r < 0) {
			free(data);
			data = NULL;
		}
		if (k == 0)
			first_r = r;
		/* data passes to the callback */
		settle(arg, ci, data, r, retryable, false, NULL);
	}
	lp_index_span_put(keep);
	return first_r;
}
