// SPDX-License-Identifier: Apache-2.0
/*
 * The proving pass's read-ahead (docs/format.md, "the proving pass keeps
 * the link full"). The pass (index_prove.c) reads the layer span by span
 * in order; fetched one span per request, each waiting for the one before,
 * it ran at one round trip per span (82 round trips for a 65 MB layer of
 * 2 MiB spans, far below the link's rate). Here threads fetch the spans
 * ahead of it in big requests: consecutive spans, whole, up to
 * LP_INDEX_PASS_REQ_MAX bytes a request, LP_INDEX_PASS_REQUESTS requests in
 * flight, at most LP_INDEX_PASS_AHEAD_MAX bytes (or the span cache's
 * limit, when smaller) fetched and not yet taken by the pass. Each span of
 * a request has its digest compared before it goes anywhere, and then goes
 * to the span cache (held cold, as the pass's) and its store (the disk
 * tier) at once, and to the pass when it gets there.
 *
 * It skips spans the cache holds or the store has (a remounted layer's
 * pass reads its spans back from disk, fetching nothing), and anything the
 * pass has gone past. The spans of a request are claimed in the span cache
 * (lp_index_span_claim()) and handed out as their bytes arrive
 * (lp_blob_pread_stream()), so an on-demand reader whose span is in a
 * request in flight waits for that span's bytes only, like any reader of
 * a span another fetches (single flight: each span fetched once); one
 * whose span is not claimed yet fetches it at once by itself, never
 * behind the pass's queue. A request that fails tells its spans' waiters
 * and the pass -EIO (as their own fetch would: the pass stops there), and
 * no request follows it; a span whose digest does not match is -EBADMSG
 * for its waiters and the pass (a lie found).
 *
 * Memory: the spans fetched ahead are the pass's, outside the span cache's
 * limit while the pass has not taken them, bounded as above (a request's
 * bytes are held twice while they are cut into spans).
 *
 * Lock order: ahead.lock, then the span cache's (lp_index_span_cached());
 * no I/O and no budget call under ahead.lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"

enum ahead_state {
	A_NONE = 0, /* not planned */
	A_FLIGHT, /* in a request in flight */
	A_READY, /* fetched, verified, waiting for the pass */
	A_SKIP, /* the pass fetches it itself */
	A_FAILED, /* its request failed, or its digest: the pass's error */
};

struct lp_index_ahead {
	const struct lp_index *ix;
	struct lp_blob *blob; /* a reference */
	size_t nr; /* spans */
	size_t max_bytes, req_bytes; /* immutable */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a request ended, the pass took a span, stop */
	uint8_t *state; /* [nr] enum ahead_state; protected by lock */
	uint8_t *claimed; /* [nr] claimed in the span cache; lock */
	struct lp_index_span **ready; /* [nr]; protected by lock */
	size_t next; /* the next span to plan; protected by lock */
	size_t taken; /* spans before it the pass is done with; lock */
	size_t out_bytes; /* fetched or in flight, not taken; lock */
	bool stop, failed; /* protected by lock */
	int *fail_r; /* [nr] a failed span's error; protected by lock */
	struct lp_err fail_err; /* the first failure's; protected by lock */
	uint64_t requests, spans, bytes; /* protected by lock */
	/* the first request, planned before the pass starts (else the pass
	 * would fetch its first spans itself while the threads start);
	 * protected by lock */
	struct planned {
		bool have;
		size_t first, end_i;
		uint64_t base, end;
	} pending;
	pthread_t threads[LP_INDEX_PASS_REQUESTS];
	unsigned int nr_threads;
};

/* claim span @i for a request (with a->lock): false when it is not to be
 * fetched ahead (held, on disk, another fetch has it) */
static bool take_on(struct lp_index_ahead *a, size_t i)
{
	int c;

	if (lp_index_span_cached(a->ix, i))
		return false;
	c = lp_index_span_claim(a->ix, i);
	if (c < 0)
		return false;
	a->claimed[i] = c == 1;
	a->state[i] = A_FLIGHT;
	return true;
}

/* plan the next request: spans [*first, *end_i) covering blob bytes
 * [*base, *end), claimed in the span cache (readers that want one wait for
 * it, single flight); false when there is none to make (with a->lock) */
static bool plan(struct lp_index_ahead *a, size_t *first, size_t *end_i,
		 uint64_t *base, uint64_t *end)
{
	uint64_t s0, s1;

	if (a->next < a->taken)
		a->next = a->taken;
	while (a->next < a->nr && !take_on(a, a->next))
		a->state[a->next++] = A_SKIP;
	if (a->next >= a->nr)
		return false;
	*first = a->next++;
	lp_index_span_range(a->ix, *first, base, end);
	while (a->next < a->nr) {
		lp_index_span_range(a->ix, a->next, &s0, &s1);
		if (s1 - *base > a->req_bytes ||
		    a->out_bytes + (s1 - *base) > a->max_bytes ||
		    !take_on(a, a->next))
			break;
		*end = s1;
		a->next++;
	}
	*end_i = a->next;
	return true;
}

/* one request in flight: its spans are handed out as their bytes arrive */
struct request {
	struct lp_index_ahead *a;
	size_t next, end_i; /* the next span to hand out */
	uint64_t base;
	const uint8_t *buf;
	uint64_t got; /* spans verified */
};

/* span @i of request @q: verified from its bytes (@r 0) or failed with
 * @r, to the span cache (its waiters, the store) and to the pass */
static void hand_out(struct request *q, size_t i, int r,
		     const struct lp_err *why)
{
	struct lp_index_ahead *a = q->a;
	struct lp_index_span *sp = NULL;
	struct lp_err err = { 0 };
	uint64_t s0, s1;
	bool claimed;

	lp_index_span_range(a->ix, i, &s0, &s1);
	if (r == 0) {
		r = lp_index_span_from(a->ix, i, q->buf + (s0 - q->base),
				       (size_t)(s1 - s0), &sp, &err);
		if (r == -EBADMSG)
			lp_err_set(&err, r,
				   "gzip index span #%zu [%llu, %llu) of %s: "
				   "digest mismatch (the blob is not the one "
				   "indexed, or the index lies)",
				   i, (unsigned long long)s0,
				   (unsigned long long)s1,
				   lp_blob_name(a->blob));
	} else if (why) {
		err = *why;
	}
	pthread_mutex_lock(&a->lock);
	claimed = a->claimed[i];
	pthread_mutex_unlock(&a->lock);
	/* the readers waiting for it first, then the pass */
	lp_index_span_settle(a->ix, i, claimed, sp, r, &err);
	if (sp)
		q->got++;
	pthread_mutex_lock(&a->lock);
	if (sp && i >= a->taken && !a->stop) {
		a->ready[i] = sp;
		a->state[i] = A_READY;
		a->out_bytes += (size_t)(s1 - s0);
		sp = NULL;
	} else if (!sp) {
		/* the pass fails here as it would have fetching it itself
		 * (a source's error stops it; a lie is found) */
		a->state[i] = A_FAILED;
		a->fail_r[i] = r;
		if (!a->fail_err.msg[0])
			a->fail_err = err;
	} else {
		a->state[i] = A_SKIP;
	}
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	lp_index_span_put(sp);
}

/* lp_blob_pread_stream()'s progress: the spans whose bytes are all in */
static int arrived(void *arg, size_t done)
{
	struct request *q = arg;
	uint64_t s0, s1;

	while (q->next < q->end_i) {
		lp_index_span_range(q->a->ix, q->next, &s0, &s1);
		if (s1 - q->base > done)
			break;
		hand_out(q, q->next++, 0, NULL);
	}
	return 0;
}

/* fetch spans [first, end_i) in one request, handing each out as it
 * arrives; no lock held */
static void fetch(struct lp_index_ahead *a, size_t first, size_t end_i,
		  uint64_t base, uint64_t end)
{
	const size_t len = (size_t)(end - base);
	struct request q = {
		.a = a, .next = first, .end_i = end_i, .base = base
	};
	struct lp_err err = { 0 };
	uint8_t *buf = malloc(len ? len : 1);
	int r;

	q.buf = buf;
	r = buf ? lp_blob_pread_stream(a->blob, buf, len, base, arrived, &q,
				       &err) :
		  lp_err_set(&err, -ENOMEM, "out of memory");
	/* a source that fails is no lie of the index (lp_index_blob_read) */
	if (r == -EBADMSG || r == -ERANGE)
		r = -EIO;
	if (r == 0)
		arrived(&q, len);
	while (q.next < end_i) /* what did not come: its readers are told */
		hand_out(&q, q.next++, r ? r : -EIO, &err);
	free(buf);
	pthread_mutex_lock(&a->lock);
	a->out_bytes -= len;
	a->requests++;
	a->spans += q.got;
	if (r == 0)
		a->bytes += len;
	else
		a->failed = true; /* no more: the pass stops there */
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	lp_index_pass_note(a->ix, 1, q.got);
}

static void *ahead_main(void *arg)
{
	struct lp_index_ahead *a = arg;
	size_t first, end_i;
	uint64_t base, end;

	pthread_mutex_lock(&a->lock);
	/* the pending request is made whatever comes: its spans are claimed
	 * (readers may wait for them) */
	while ((!a->stop && !a->failed) || a->pending.have) {
		if (!a->pending.have && a->out_bytes &&
		    a->out_bytes >= a->max_bytes) {
			pthread_cond_wait(&a->cond, &a->lock);
			continue;
		}
		if (a->pending.have) {
			a->pending.have = false;
			first = a->pending.first;
			end_i = a->pending.end_i;
			base = a->pending.base;
			end = a->pending.end;
		} else if (!plan(a, &first, &end_i, &base, &end)) {
			break;
		} else {
			a->out_bytes += (size_t)(end - base);
		}
		pthread_mutex_unlock(&a->lock);
		fetch(a, first, end_i, base, end);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int lp_index_ahead_new(const struct lp_index *ix, struct lp_blob *blob,
		       struct lp_index_ahead **ret)
{
	struct lp_index_ahead *a = calloc(1, sizeof(*a));
	size_t max = lp_index_span_cache_max(ix);
	unsigned int k;
	int r = 0;

	if (!a)
		return -ENOMEM;
	a->ix = ix;
	a->blob = lp_blob_ref(blob);
	a->nr = lp_index_nr_checkpoints(ix);
	a->max_bytes = max && max < LP_INDEX_PASS_AHEAD_MAX ?
			       max :
			       LP_INDEX_PASS_AHEAD_MAX;
	a->req_bytes = a->max_bytes / LP_INDEX_PASS_REQUESTS;
	if (a->req_bytes > LP_INDEX_PASS_REQ_MAX)
		a->req_bytes = LP_INDEX_PASS_REQ_MAX;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->state = calloc(a->nr ? a->nr : 1, sizeof(*a->state));
	a->ready = calloc(a->nr ? a->nr : 1, sizeof(*a->ready));
	a->claimed = calloc(a->nr ? a->nr : 1, sizeof(*a->claimed));
	a->fail_r = calloc(a->nr ? a->nr : 1, sizeof(*a->fail_r));
	if (!a->state || !a->ready || !a->claimed || !a->fail_r) {
		r = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&a->lock);
	a->pending.have = plan(a, &a->pending.first, &a->pending.end_i,
			       &a->pending.base, &a->pending.end);
	if (a->pending.have)
		a->out_bytes += (size_t)(a->pending.end - a->pending.base);
	pthread_mutex_unlock(&a->lock);
	for (k = 0; k < LP_INDEX_PASS_REQUESTS; k++) {
		r = -pthread_create(&a->threads[k], NULL, ahead_main, a);
		if (r < 0)
			break;
		a->nr_threads++;
	}
	if (a->nr_threads)
		r = 0; /* fewer threads: fewer requests in flight */
out:
	if (r < 0) {
		lp_index_ahead_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

void lp_index_ahead_free(struct lp_index_ahead *a)
{
	size_t i;
	unsigned int k;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (k = 0; k < a->nr_threads; k++)
		pthread_join(a->threads[k], NULL);
	if (a->pending.have) {
		/* no thread started: its claimed spans still have to come */
		a->pending.have = false;
		fetch(a, a->pending.first, a->pending.end_i, a->pending.base,
		      a->pending.end);
	}
	for (i = 0; a->ready && i < a->nr; i++)
		lp_index_span_put(a->ready[i]);
	free(a->ready);
	free(a->claimed);
	free(a->fail_r);
	free(a->state);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	lp_blob_unref(a->blob);
	free(a);
}

int lp_index_ahead_take(struct lp_index_ahead *a, size_t i,
			struct lp_index_span **ret_sp, struct lp_err *err)
{
	int r = -ENOENT;
	size_t k;

	if (!a || i >= a->nr)
		return -ENOENT;
	pthread_mutex_lock(&a->lock);
	/* the pass goes in order: what it went past is of no use now */
	for (k = a->taken; k < i; k++) {
		if (a->ready[k]) {
			a->out_bytes -= lp_index_span_len(a->ready[k]);
			lp_index_span_put(a->ready[k]); /* takes no lock */
			a->ready[k] = NULL;
		}
	}
	if (a->taken < i)
		a->taken = i;
	while (a->state[i] == A_FLIGHT && !a->stop)
		pthread_cond_wait(&a->cond, &a->lock);
	if (a->state[i] == A_READY) {
		*ret_sp = a->ready[i];
		a->ready[i] = NULL;
		a->state[i] = A_SKIP;
		a->out_bytes -= lp_index_span_len(*ret_sp);
		r = 0;
	} else if (a->state[i] == A_FAILED) {
		r = a->fail_r[i];
		if (err && !err->msg[0])
			*err = a->fail_err;
	}
	if (a->taken < i + 1)
		a->taken = i + 1;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return r;
}

void lp_index_ahead_stats(const struct lp_index_ahead *a,
			  struct lp_index_stream_stats *st)
{
	struct lp_index_ahead *m = (struct lp_index_ahead *)a;

	if (!a)
		return;
	pthread_mutex_lock(&m->lock);
	st->bytes_fetched += m->bytes;
	st->spans += m->spans;
	pthread_mutex_unlock(&m->lock);
}
