// SPDX-License-Identifier: Apache-2.0
/*
 * Fetching a gzip index's spans, and the span cache that lets every reader
 * of one parsed index share them (docs/format.md, "mounting through a gzip
 * index"). A span is the compressed bytes between two checkpoints, the
 * unit the index vouches for with its span digest; every index reader
 * (a stream, lp_index_read(), the proving pass, the mount's chunks, the
 * header checks) gets its blob bytes here, one span at a time, so that
 * with the cache on a span is fetched once however many readers want it.
 *
 * What the cache holds is verified before it is held: a span's bytes are
 * fetched whole, their sha256 compared with the span digest, and only a
 * match is published (casync's order). Bytes that match the digest are the
 * span whatever blob they came from, so a held span needs no blob identity;
 * the readers still compare the digest again before inflating (the decode
 * path is unchanged), so a wrong byte here would be refused there too. A
 * span that fails (its read, or its digest: a lie, or the wrong blob) is
 * not held: each reader that wants it later fetches it again and gets the
 * same answer, so a lying span is -EBADMSG for every reader, never a
 * cached "good". Single flight: while one thread fetches a span, the
 * others that want it wait for it instead of fetching it too (the proving
 * pass and an on-demand stream walking the same spans share their
 * fetches), and take that fetch's result, the span or its error, from the
 * flight's record, whether the cache holds the span or not (over the
 * limit, evicted at once, failed): one fetch for all of them.
 *
 * Off (the default, lp_index_span_cache_limit() 0): every get fetches and
 * its put frees, as a reader without a cache would. On: at most the limit
 * of span bytes held, the least recently used span leaving first (a span a
 * reader still holds lives until its put); a span over the limit is never
 * held. The caller sizes the limit (fs/ gives it a share of the mount's
 * memory budget) and may charge the held spans to a budget shared with
 * other caches (lp_index_span_cache_budget(): fs/ makes each index
 * mount's span cache a member of the process's lp_fs_budget, which
 * evicts its coldest spans through lp_index_span_cache_shrink()).
 *
 * The proving pass's spans are held cold: at the oldest end, stamped 0
 * (older than anything a reader used), so that they leave first, unless
 * a reader waited for one (it goes in warm) or used it (a hit makes it the
 * newest); and when the pass ends with no reader having got a span (or
 * copied from a span decoded whole, lp_index_span_read_elsewhere()) while
 * it ran, the cold ones are dropped: a layer nobody reads holds nothing
 * once proven.
 *
 * The same lock tells readers where the proving pass is: a proven-only
 * read whose span is not proven yet waits for the pass instead of
 * streaming from the last proven checkpoint itself, when the pass is at
 * or past that checkpoint (it would inflate the same spans, behind the
 * pass or racing it, and beyond the cache's limit fetch them twice); it
 * streams itself when no pass runs, when the pass ends (done, stopped, a
 * lie found) before proving its span, or when other streams proved
 * checkpoints past the pass (its own stream is then the shorter way).
 *
 * A store under the cache (lp_index_span_cache_store(): fs/ gives a mount
 * with a cache directory a file per layer, fs/span_disk.c) is asked
 * before the blob when a span is not held, by the thread that owns the
 * span's flight: what it gives is compared with the span digest like a
 * fetch (a mismatch is a miss: fetched, then saved again), and a span
 * verified from the blob is handed to it after its waiters have it.
 *
 * Lock order: the budget's lock, then spans.lock (its shrink); nothing is
 * fetched, and the budget's reserve() and enforce() are not called, while
 * spans.lock is held (its release(), stamp() and cold() are atomics).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

#define SLOT_NONE UINT32_MAX

struct lp_index_span {
	atomic_uint refs; /* the readers' and the cache's */
	size_t i; /* checkpoint i's span */
	size_t len;
	/* while held: the budget's stamp of its last use (0: cold, only the
	 * proving pass fetched it) and whether the cache charged it to the
	 * budget; protected by spans.lock */
	uint64_t stamp;
	bool cold, charged;
	uint8_t data[]; /* blob bytes lp_index_span_range(i) */
};

/* one fetch of a span and the threads waiting for it: they take its
 * result, held or not (a span over the limit, an error); freed by the
 * last of them (the fetcher when nobody waits); protected by spans.lock */
struct span_flight {
	unsigned int waiters;
	bool done;
	int r;
	struct lp_index_span *sp; /* with r 0: a reference for the waiters */
	struct lp_err err; /* with r < 0 */
};

struct span_slot {
	struct lp_index_span *held; /* the cache's reference, or NULL */
	uint32_t newer, older; /* LRU links among held spans */
	struct span_flight *flight; /* one thread fetches it, or NULL */
};

struct lp_index_spans {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a fetch ended */
	size_t nr; /* checkpoints */
	struct span_slot *slots; /* [nr] once a limit was set; protected by
				    lock */
	size_t max_bytes; /* 0: off; protected by lock */
	size_t held_bytes; /* protected by lock */
	/* the process's memory budget the held spans are charged to (set
	 * before other threads use the index), or none */
	struct lp_index_span_budget budget;
	bool budgeted;
	uint32_t newest, oldest; /* protected by lock */
	struct lp_index_span_cache_stats stats; /* protected by lock */
	/* proving passes running (lp_index_prove()), the span the last one
	 * to move is at, and readers waiting for a checkpoint it will prove
	 * (cond also signals a checkpoint proven); protected by lock */
	unsigned int provers;
	size_t prover_at;
	/* gets by readers (not the pass) and their reads elsewhere
	 * (lp_index_span_read_elsewhere), and their count when the last pass
	 * began: none since, the layer is unread; protected by lock */
	uint64_t reader_gets, reader_gets_at_pass;
	unsigned int proven_waiters;
	/* set before other threads use the index */
	struct lp_index_span_store store;
	bool stored;
};

int lp_index_spans_new(size_t nr_checkpoints, struct lp_index_spans **ret)
{
	struct lp_index_spans *sc = calloc(1, sizeof(*sc));

	if (!sc)
		return -ENOMEM;
	pthread_mutex_init(&sc->lock, NULL);
	pthread_cond_init(&sc->cond, NULL);
	sc->nr = nr_checkpoints;
	sc->newest = sc->oldest = SLOT_NONE;
	*ret = sc;
	return 0;
}

void lp_index_span_put(struct lp_index_span *sp)
{
	if (sp && atomic_fetch_sub(&sp->refs, 1) == 1)
		free(sp);
}

/* take span @i out of the LRU list (it is held); with sc->lock */
static void lru_unlink(struct lp_index_spans *sc, uint32_t i)
{
	struct span_slot *s = &sc->slots[i];

	if (s->newer != SLOT_NONE)
		sc->slots[s->newer].older = s->older;
	else
		sc->newest = s->older;
	if (s->older != SLOT_NONE)
		sc->slots[s->older].newer = s->newer;
	else
		sc->oldest = s->newer;
	s->newer = s->older = SLOT_NONE;
}

/* put span @i at the newest end; with sc->lock */
static void lru_push(struct lp_index_spans *sc, uint32_t i)
{
	struct span_slot *s = &sc->slots[i];

	s->older = sc->newest;
	s->newer = SLOT_NONE;
	if (sc->newest != SLOT_NONE)
		sc->slots[sc->newest].newer = i;
	sc->newest = i;
	if (sc->oldest == SLOT_NONE)
		sc->oldest = i;
}

/* put span @i at the oldest end (a span only the proving pass wants goes
 * first); with sc->lock */
static void lru_push_cold(struct lp_index_spans *sc, uint32_t i)
{
	struct span_slot *s = &sc->slots[i];

	s->newer = sc->oldest;
	s->older = SLOT_NONE;
	if (sc->oldest != SLOT_NONE)
		sc->slots[sc->oldest].older = i;
	sc->oldest = i;
	if (sc->newest == SLOT_NONE)
		sc->newest = i;
}

/* tell the budget the stamp of the coldest span held; with sc->lock */
static void note_cold(struct lp_index_spans *sc)
{
	if (sc->budgeted)
		sc->budget.cold(sc->budget.arg,
				sc->oldest == SLOT_NONE ?
					UINT64_MAX :
					sc->slots[sc->oldest].held->stamp);
}

/* drop held span @i; returns the bytes the budget was charged for it
 * (the caller uncharges them); with sc->lock (a reader holding it keeps
 * it alive until its put) */
static size_t drop(struct lp_index_spans *sc, uint32_t i)
{
	struct lp_index_span *sp = sc->slots[i].held;
	size_t charged = sp->charged ? sp->len : 0;

	lru_unlink(sc, i);
	sc->slots[i].held = NULL;
	sc->held_bytes -= sp->len;
	sc->stats.evictions++;
	lp_index_span_put(sp);
	return charged;
}

/* drop the oldest held spans until at most sc->max_bytes are held,
 * uncharging them; with sc->lock */
static void evict(struct lp_index_spans *sc)
{
	size_t charged = 0;

	while (sc->held_bytes > sc->max_bytes && sc->oldest != SLOT_NONE)
		charged += drop(sc, sc->oldest);
	if (charged)
		sc->budget.release(sc->budget.arg, charged);
	note_cold(sc);
}

void lp_index_spans_free(struct lp_index_spans *sc)
{
	if (!sc)
		return;
	if (sc->slots) {
		sc->max_bytes = 0;
		evict(sc);
		free(sc->slots);
	}
	pthread_cond_destroy(&sc->cond);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

int lp_index_span_cache_limit(const struct lp_index *ix, size_t max_bytes)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	struct span_slot *slots = NULL;
	size_t i;
	int r = 0;

	pthread_mutex_lock(&sc->lock);
	if (max_bytes && !sc->slots) {
		slots = calloc(sc->nr, sizeof(*slots));
		if (!slots) {
			r = -ENOMEM;
			goto out;
		}
		for (i = 0; i < sc->nr; i++)
			slots[i].newer = slots[i].older = SLOT_NONE;
		sc->slots = slots;
	}
	sc->max_bytes = max_bytes;
	if (sc->slots)
		evict(sc);
out:
	pthread_mutex_unlock(&sc->lock);
	return r;
}

void lp_index_span_cache_stats(const struct lp_index *ix,
			       struct lp_index_span_cache_stats *ret)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	*ret = sc->stats;
	ret->held_bytes = sc->held_bytes;
	pthread_mutex_unlock(&sc->lock);
}

int lp_index_blob_read(struct lp_blob *blob, void *buf, size_t len,
		       uint64_t off, struct lp_err *err)
{
	int r = lp_blob_pread(blob, buf, len, off, err);

	return r == -EBADMSG || r == -ERANGE ? -EIO : r;
}

/* where fetch_span() found a span */
enum span_from { FROM_BLOB, FROM_STORE, FROM_BLOB_STORE_BAD };

/* span @i from the store, if it has it and its digest matches: true */
static bool load_span(struct lp_index_spans *sc, const struct lp_index *ix,
		      struct lp_index_span *sp, uint64_t start,
		      enum span_from *from)
{
	struct lp_digest d;

	if (!sc->stored || !sc->store.has(sc->store.arg, sp->i))
		return false;
	if (sc->store.load(sc->store.arg, sp->i, start, sp->data, sp->len) < 0)
		return false;
	lp_sha256(sp->data, sp->len, &d);
	if (lp_digest_equal(&d, &lp_index_checkpoint(ix, sp->i)->span)) {
		*from = FROM_STORE;
		return true;
	}
	/* torn or corrupted on disk, or saved for another index's spans:
	 * a miss, refetched (and saved again) */
	*from = FROM_BLOB_STORE_BAD;
	return false;
}

/*
 * A streamed fetch (lp_index_span_get_stream()): each grain of the span
 * (lp_index_grain()) is compared with its digest as soon as all of it
 * has come, and only then handed on. A grain that does not match stops
 * the fetch with -EBADMSG; its bytes are never handed on.
 */
struct span_progress {
	lp_index_span_progress_fn fn;
	void *arg;
	const struct lp_index *ix;
	size_t i;
	const uint8_t *data;
	size_t len, verified; /* the span's bytes, those compared */
	bool lied; /* a grain did not match */
	struct lp_err *err;
};

int lp_index_grains_check(const struct lp_index *ix, size_t i,
			  const uint8_t *data, size_t len, size_t done,
			  size_t *verified, struct lp_err *err)
{
	const size_t g_size = lp_index_grain_size(ix);

	while (g_size && *verified < len) {
		size_t g = *verified / g_size;
		size_t n = (size_t)lp_min_u64(g_size, len - *verified);
		const struct lp_digest *want = lp_index_grain(ix, i, g);
		struct lp_digest d;

		if (*verified + n > done)
			break;
		lp_sha256(data + *verified, n, &d);
		if (!want || !lp_digest_equal(&d, want))
			return lp_err_set(err, -EBADMSG,
					  "gzip index span #%zu: grain %zu "
					  "(bytes %zu+%zu) digest mismatch "
					  "(the blob is not the one indexed, "
					  "or the index lies)",
					  i, g, *verified, n);
		*verified += n;
	}
	return 0;
}

static int span_progress(void *arg, size_t done)
{
	struct span_progress *p = arg;
	size_t before = p->verified;
	int r;

	r = lp_index_grains_check(p->ix, p->i, p->data, p->len, done,
				  &p->verified, p->err);
	p->lied = r < 0;
	if (r < 0 || p->verified == before)
		return r;
	return p->fn(p->arg, p->data, p->verified);
}

/* span @i from the store (lp_index_span_cache_store()) when it has it, else
 * fetched from @blob, its digest compared either way: a new span (one
 * reference, the caller's) or -errno; the bytes read from the blob
 * counted in @st, where they came from in *@from; with @prog (NULL:
 * none) streamed from the blob, its grains compared as they come */
static int fetch_span(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		      struct span_progress *prog, struct lp_index_span **ret_sp,
		      struct lp_index_stream_stats *st, enum span_from *from,
		      struct lp_err *err)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	const struct lp_index_checkpoint *c = lp_index_checkpoint(ix, i);
	struct lp_index_span *sp = NULL;
	struct lp_digest d;
	uint64_t start, end;
	size_t len;
	int r;

	lp_index_span_range(ix, i, &start, &end);
	if (end <= start || end - start > LP_INDEX_MAX_SPAN_IN)
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu [%llu, %llu): over "
				  "%u bytes or empty",
				  i, (unsigned long long)start,
				  (unsigned long long)end,
				  (unsigned)LP_INDEX_MAX_SPAN_IN);
	len = (size_t)(end - start);
	sp = malloc(sizeof(*sp) + len);
	if (!sp)
		return -ENOMEM;
	atomic_init(&sp->refs, 1);
	sp->i = i;
	sp->len = len;
	sp->stamp = 0;
	sp->cold = sp->charged = false;
	*from = FROM_BLOB;
	if (load_span(sc, ix, sp, start, from)) {
		*ret_sp = sp;
		return 0;
	}
	if (prog) {
		prog->data = sp->data;
		prog->len = len;
		prog->err = err;
		r = lp_blob_pread_stream(blob, sp->data, len, start,
					 span_progress, prog, err);
		if (prog->lied) { /* whatever the source made of it */
			r = -EBADMSG; /* @err says which grain */
			goto out;
		}
		/* from the blob, as from lp_index_blob_read(): a source
		 * that fails */
		if (r == -EBADMSG || r == -ERANGE)
			r = -EIO;
	} else {
		r = lp_index_blob_read(blob, sp->data, len, start, err);
	}
	if (r < 0) {
		r = lp_err_set(err, r,
			       "gzip index span #%zu [%llu, %llu): read "
			       "failed",
			       i, (unsigned long long)start,
			       (unsigned long long)end);
		goto out;
	}
	if (st) {
		st->bytes_fetched += len;
		st->spans++;
	}
	lp_sha256(sp->data, len, &d);
	if (!lp_digest_equal(&d, &c->span)) {
		r = lp_err_set(err, -EBADMSG,
			       "gzip index span #%zu [%llu, %llu) of %s: "
			       "digest mismatch (the blob is not the one "
			       "indexed, or the index lies)",
			       i, (unsigned long long)start,
			       (unsigned long long)end, lp_blob_name(blob));
		goto out;
	}
	*ret_sp = sp;
	sp = NULL;
out:
	free(sp);
	return r;
}

/* hand verified span @sp to the store (no lock held): its own reference */
static void store_save(struct lp_index_spans *sc, const struct lp_index *ix,
		       struct lp_index_span *sp)
{
	uint64_t start, end;

	if (!sc->stored)
		return;
	lp_index_span_range(ix, sp->i, &start, &end);
	atomic_fetch_add(&sp->refs, 1);
	sc->store.save(sc->store.arg, sp, start);
}

/* a use of held span @i now (not the proving pass's): the newest; with
 * sc->lock */
static void touch(struct lp_index_spans *sc, uint32_t i)
{
	struct lp_index_span *sp = sc->slots[i].held;

	sp->cold = false;
	sp->stamp = sc->budgeted ? sc->budget.stamp(sc->budget.arg) : 0;
	lru_unlink(sc, i);
	lru_push(sc, i);
	note_cold(sc);
}

/* a waiter leaves flight @fl (with sc->lock): the last one frees it */
static void flight_leave(struct span_flight *fl)
{
	if (--fl->waiters || !fl->done)
		return;
	lp_index_span_put(fl->sp);
	free(fl);
}

/*
 * The end of flight @fl (NULL: the cache was off) of span @i: its result
 * @r, with @sp (the caller's reference, kept) or @ferr, to the cache (held
 * when it fits; the proving pass's spans cold unless a reader waits), to
 * the flight's waiters, then to the store (a span from the blob). Takes
 * and drops sc->lock; charges the budget before.
 */
static void land(struct lp_index_spans *sc, const struct lp_index *ix, size_t i,
		 struct span_flight *fl, struct lp_index_span *sp, int r,
		 const struct lp_err *ferr, bool prover, enum span_from from)
{
	bool charged = false;

	/* charged to the budget (which may evict any layer's spans or
	 * chunks to make room) before it is held, with no lock held */
	if (fl && r == 0 && sc->budgeted && sp->len <= sc->max_bytes) {
		sc->budget.reserve(sc->budget.arg, sp->len);
		charged = true;
	}

	pthread_mutex_lock(&sc->lock);
	if (r == 0 && from == FROM_STORE) {
		sc->stats.disk_hits++;
	} else if (r == 0) {
		sc->stats.fetches++;
		sc->stats.fetched_bytes += sp->len;
	}
	if (from == FROM_BLOB_STORE_BAD)
		sc->stats.disk_bad++;
	if (fl) {
		struct span_slot *s = &sc->slots[i];

		s->flight = NULL;
		/* held only while the cache is on and the span fits it; a
		 * failed span is never held. The proving pass's own spans go
		 * in cold (first to leave, dropped when the pass ends) unless
		 * a reader waits for them */
		if (r == 0 && sp->len <= sc->max_bytes) {
			atomic_fetch_add(&sp->refs, 1);
			sp->charged = charged;
			charged = false;
			s->held = sp;
			sc->held_bytes += sp->len;
			if (prover && !fl->waiters) {
				sp->cold = true;
				sp->stamp = 0;
				lru_push_cold(sc, (uint32_t)i);
			} else {
				sp->stamp = sc->budgeted ?
						    sc->budget.stamp(
							    sc->budget.arg) :
						    0;
				lru_push(sc, (uint32_t)i);
			}
			evict(sc);
		}
		/* the result for the waiters */
		fl->done = true;
		fl->r = r;
		fl->err = *ferr;
		if (fl->waiters) {
			if (r == 0) {
				atomic_fetch_add(&sp->refs, 1);
				fl->sp = sp;
			}
			pthread_cond_broadcast(&sc->cond);
		} else {
			free(fl);
		}
	}
	pthread_mutex_unlock(&sc->lock);
	if (charged) /* the cache went off meanwhile */
		sc->budget.release(sc->budget.arg, sp->len);
	else if (sp && sp->charged)
		sc->budget.enforce(sc->budget.arg);
	/* to the store once every waiter has it (it queues the write) */
	if (r == 0 && from != FROM_STORE)
		store_save(sc, ix, sp);
}

/* with @claimed, the caller claimed span @i's flight
 * (lp_index_span_claim()): it is fetched and landed there */
static int span_get(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		    bool prover, bool claimed, struct span_progress *prog,
		    struct lp_index_span **ret_sp,
		    struct lp_index_stream_stats *st, struct lp_err *err)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	struct lp_index_span *sp = NULL;
	struct span_flight *fl = NULL;
	struct lp_err ferr = { 0 };
	enum span_from from = FROM_BLOB;
	int r;

	if (i >= lp_index_nr_checkpoints(ix))
		return lp_err_set(err, -ERANGE, "gzip index has no span #%zu",
				  i);
	pthread_mutex_lock(&sc->lock);
	if (!prover)
		sc->reader_gets++;
	if (claimed) {
		fl = sc->slots[i].flight;
	} else if (sc->max_bytes) {
		struct span_slot *s = &sc->slots[i];

		if (s->held) {
			sp = s->held;
			atomic_fetch_add(&sp->refs, 1);
			if (!prover)
				touch(sc, (uint32_t)i);
			sc->stats.hits++;
			pthread_mutex_unlock(&sc->lock);
			*ret_sp = sp;
			return 0;
		}
		if (s->flight) {
			/* another thread fetches it: its result, held or
			 * not, is ours (the cond also wakes us for other
			 * spans and proven checkpoints) */
			fl = s->flight;
			sc->stats.waits++;
			fl->waiters++;
			while (!fl->done)
				pthread_cond_wait(&sc->cond, &sc->lock);
			r = fl->r;
			if (r == 0) {
				sp = fl->sp;
				atomic_fetch_add(&sp->refs, 1);
				sc->stats.hits++;
				*ret_sp = sp;
			} else if (err && !err->msg[0]) {
				*err = fl->err; /* the first message wins */
			}
			flight_leave(fl);
			pthread_mutex_unlock(&sc->lock);
			return r;
		}
		fl = calloc(1, sizeof(*fl));
		if (!fl) {
			pthread_mutex_unlock(&sc->lock);
			return lp_err_set(err, -ENOMEM,
					  "gzip index span #%zu: out of memory",
					  i);
		}
		s->flight = fl;
	}
	pthread_mutex_unlock(&sc->lock);

	r = fetch_span(ix, blob, i, prog, &sp, st, &from, &ferr);
	land(sc, ix, i, fl, sp, r, &ferr, prover, from);
	if (r == 0)
		*ret_sp = sp;
	else if (err && !err->msg[0])
		*err = ferr; /* the first message wins */
	return r;
}

int lp_index_span_get_as(const struct lp_index *ix, struct lp_blob *blob,
			 size_t i, bool prover, struct lp_index_span **ret_sp,
			 struct lp_index_stream_stats *st, struct lp_err *err)
{
	return span_get(ix, blob, i, prover, false, NULL, ret_sp, st, err);
}

int lp_index_span_get_stream(const struct lp_index *ix, struct lp_blob *blob,
			     size_t i, lp_index_span_progress_fn fn, void *arg,
			     struct lp_index_span **ret_sp,
			     struct lp_index_stream_stats *st,
			     struct lp_err *err)
{
	struct span_progress prog = { .fn = fn, .arg = arg, .ix = ix, .i = i };

	return span_get(ix, blob, i, false, false,
			lp_index_grain_size(ix) ? &prog : NULL, ret_sp, st,
			err);
}

int lp_index_span_reserve(const struct lp_index *ix, size_t i)
{
	int r = i < lp_index_nr_checkpoints(ix) ? lp_index_span_claim(ix, i) :
						  -ERANGE;

	return r == 1 ? 1 : r < 0 ? r : -ENOENT;
}

void lp_index_span_unreserve(const struct lp_index *ix, size_t i, int r,
			     const struct lp_err *err)
{
	struct lp_err given = { 0 };

	if (!err || !err->msg[0]) { /* its waiters are told why */
		lp_err_set(&given, r,
			   "gzip index span #%zu: its reserved fetch was "
			   "given up",
			   i);
		err = &given;
	}
	lp_index_span_settle(ix, i, true, NULL, r, err);
}

int lp_index_span_get_claimed_stream(const struct lp_index *ix,
				     struct lp_blob *blob, size_t i,
				     lp_index_span_progress_fn fn, void *arg,
				     struct lp_index_span **ret_sp,
				     struct lp_index_stream_stats *st,
				     struct lp_err *err)
{
	struct span_progress prog = { .fn = fn, .arg = arg, .ix = ix, .i = i };

	/* fetched for the pass (no reader's get: a layer nobody reads
	 * holds nothing once proven), held warm only when a reader waits */
	return span_get(ix, blob, i, true, true,
			lp_index_grain_size(ix) ? &prog : NULL, ret_sp, st,
			err);
}

int lp_index_span_get(const struct lp_index *ix, struct lp_blob *blob, size_t i,
		      struct lp_index_span **ret_sp,
		      struct lp_index_stream_stats *st, struct lp_err *err)
{
	return lp_index_span_get_as(ix, blob, i, false, ret_sp, st, err);
}

int lp_index_span_cache_budget(const struct lp_index *ix,
			       const struct lp_index_span_budget *b)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	size_t max;
	int r;

	pthread_mutex_lock(&sc->lock);
	max = sc->max_bytes;
	pthread_mutex_unlock(&sc->lock);
	/* off: every span held leaves, uncharged through the old budget */
	r = lp_index_span_cache_limit(ix, 0);
	if (r < 0)
		return r;
	pthread_mutex_lock(&sc->lock);
	sc->budgeted = b != NULL;
	if (b)
		sc->budget = *b;
	pthread_mutex_unlock(&sc->lock);
	return lp_index_span_cache_limit(ix, b ? max : 0);
}

size_t lp_index_span_cache_shrink(const struct lp_index *ix, uint64_t upto,
				  size_t want, bool pinned)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	size_t freed = 0;
	uint32_t i, newer;

	pthread_mutex_lock(&sc->lock);
	for (i = sc->oldest; i != SLOT_NONE && freed < want; i = newer) {
		struct lp_index_span *sp = sc->slots[i].held;

		newer = sc->slots[i].newer;
		if (freed && sp->stamp > upto)
			break; /* another member's memory is older now */
		if (pinned || atomic_load(&sp->refs) == 1)
			freed += drop(sc, i);
	}
	note_cold(sc);
	pthread_mutex_unlock(&sc->lock);
	return freed;
}

void lp_index_prover_begin(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	sc->provers++;
	sc->prover_at = 0;
	sc->reader_gets_at_pass = sc->reader_gets;
	pthread_mutex_unlock(&sc->lock);
}

void lp_index_prover_at(const struct lp_index *ix, size_t i)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	sc->prover_at = i;
	pthread_mutex_unlock(&sc->lock);
}

void lp_index_span_read_elsewhere(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	sc->reader_gets++;
	pthread_mutex_unlock(&sc->lock);
}

void lp_index_prover_end(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	size_t charged = 0;
	uint32_t i, newer;

	pthread_mutex_lock(&sc->lock);
	sc->provers--;
	/* a layer nobody read while the pass ran holds nothing once proven:
	 * the spans only the pass wanted leave with it. When readers are at
	 * work they stay, cold (the first to leave when the budget needs
	 * room): a reader going through the layer behind the pass, or in
	 * another order, would fetch them again */
	for (i = sc->oldest;
	     !sc->provers && sc->reader_gets == sc->reader_gets_at_pass &&
	     i != SLOT_NONE;
	     i = newer) {
		newer = sc->slots[i].newer;
		if (sc->slots[i].held->cold)
			charged += drop(sc, i);
	}
	note_cold(sc);
	pthread_cond_broadcast(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
	if (charged)
		sc->budget.release(sc->budget.arg, charged);
}

void lp_index_proven_notify(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	if (sc->proven_waiters)
		pthread_cond_broadcast(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
}

bool lp_index_wait_prover(const struct lp_index *ix, size_t i)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	bool counted = false, proven;

	pthread_mutex_lock(&sc->lock);
	/* checkpoints are proven without this lock, but every stream that
	 * proves one takes it afterwards to notify: no wake-up is lost */
	while (!lp_index_checkpoint_verified(ix, i) && sc->provers &&
	       sc->prover_at >= lp_index_last_verified(ix, i)) {
		if (!counted)
			sc->stats.pass_waits++;
		counted = true;
		sc->proven_waiters++;
		pthread_cond_wait(&sc->cond, &sc->lock);
		sc->proven_waiters--;
	}
	proven = lp_index_checkpoint_verified(ix, i);
	pthread_mutex_unlock(&sc->lock);
	return proven;
}

unsigned int lp_index_prover_waiters(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	unsigned int n;

	pthread_mutex_lock(&sc->lock);
	n = sc->proven_waiters;
	pthread_mutex_unlock(&sc->lock);
	return n;
}

const uint8_t *lp_index_span_data(const struct lp_index_span *sp)
{
	return sp->data;
}

size_t lp_index_span_len(const struct lp_index_span *sp)
{
	return sp->len;
}

size_t lp_index_span_nr(const struct lp_index_span *sp)
{
	return sp->i;
}

void lp_index_span_cache_store(const struct lp_index *ix,
			       const struct lp_index_span_store *s)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	sc->stored = s != NULL;
	if (s)
		sc->store = *s;
	pthread_mutex_unlock(&sc->lock);
}

bool lp_index_span_uncached(const struct lp_index *ix, size_t i)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	bool on;

	pthread_mutex_lock(&sc->lock);
	on = sc->max_bytes > 0;
	pthread_mutex_unlock(&sc->lock);
	return on && i < lp_index_nr_checkpoints(ix) &&
	       !lp_index_span_cached(ix, i);
}

bool lp_index_span_cached(const struct lp_index *ix, size_t i)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	bool held;

	pthread_mutex_lock(&sc->lock);
	held = sc->slots && sc->slots[i].held;
	pthread_mutex_unlock(&sc->lock);
	return held || (sc->stored && sc->store.has(sc->store.arg, i));
}

int lp_index_span_from(const struct lp_index *ix, size_t i, const void *src,
		       size_t len, struct lp_index_span **ret_sp,
		       struct lp_err *err)
{
	struct lp_index_span *sp = NULL;
	struct lp_digest d;

	lp_sha256(src, len, &d);
	if (!lp_digest_equal(&d, &lp_index_checkpoint(ix, i)->span))
		return lp_err_set(err, -EBADMSG,
				  "gzip index span #%zu: digest mismatch", i);
	sp = malloc(sizeof(*sp) + len);
	if (!sp)
		return -ENOMEM;
	atomic_init(&sp->refs, 1);
	sp->i = i;
	sp->len = len;
	sp->stamp = 0;
	sp->cold = sp->charged = false;
	memcpy(sp->data, src, len);
	*ret_sp = sp;
	return 0;
}

int lp_index_span_claim(const struct lp_index *ix, size_t i)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	int r = 0;

	pthread_mutex_lock(&sc->lock);
	if (sc->max_bytes) {
		struct span_slot *s = &sc->slots[i];

		if (s->held || s->flight) {
			r = -EEXIST;
		} else {
			s->flight = calloc(1, sizeof(*s->flight));
			r = s->flight ? 1 : -ENOMEM;
		}
	}
	pthread_mutex_unlock(&sc->lock);
	return r;
}

void lp_index_span_settle(const struct lp_index *ix, size_t i, bool claimed,
			  struct lp_index_span *sp, int r,
			  const struct lp_err *ferr)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	struct span_flight *fl = NULL;

	if (claimed) {
		pthread_mutex_lock(&sc->lock);
		fl = sc->slots[i].flight;
		pthread_mutex_unlock(&sc->lock);
	}
	land(sc, ix, i, fl, sp, r, ferr, true, FROM_BLOB);
}

size_t lp_index_span_cache_max(const struct lp_index *ix)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);
	size_t max;

	pthread_mutex_lock(&sc->lock);
	max = sc->max_bytes;
	pthread_mutex_unlock(&sc->lock);
	return max;
}

void lp_index_pass_note(const struct lp_index *ix, uint64_t requests,
			uint64_t spans)
{
	struct lp_index_spans *sc = lp_index_spans_of(ix);

	pthread_mutex_lock(&sc->lock);
	sc->stats.pass_requests += requests;
	sc->stats.pass_spans += spans;
	pthread_mutex_unlock(&sc->lock);
}
