// SPDX-License-Identifier: Apache-2.0
/*
 * The worker threads of the two gRPC servers of snapshot/ (the Snapshots
 * service, grpc_server.c, and the CRI proxy, cri_proxy.c). A worker holds
 * one call from start to finish: a Prepare that mounts a layer holds it
 * while the layer's registry answers (or does not), a PullImage for the
 * whole pull. A fixed number of workers would queue every other call, a
 * Stat or an ImageStatus, behind that many slow ones, so the pool grows
 * while calls come: when the last idle worker takes a call it starts
 * another, up to the pool's maximum (the caller registered a completion
 * queue for each before its server started, as grpc wants; a queue nobody
 * asks calls on gets none). Workers are never retired: after a burst the
 * pool keeps its threads (at most the maximum) until the server stops.
 *
 * Lock order: pool->lock is a leaf, held to start a worker and by
 * lp_grpc_pool_close() to close the door before the caller joins them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_unix.h"
#include "lp_log.h"

struct lp_grpc_pool {
	const char *name; /* for the log: "CRI proxy", "snapshots service" */
	void *(*fn)(void *);
	void **args; /* the caller's workers[max]; immutable */
	unsigned int max;
	pthread_mutex_t lock;
	pthread_t *threads; /* [0..n_started) run; protected by lock */
	unsigned int n_started; /* protected by lock */
	bool closed; /* no worker starts any more; protected by lock */
	atomic_uint idle; /* workers waiting for a call */
};

int lp_grpc_pool_new(const char *name, unsigned int max, void *(*fn)(void *),
		     void *const args[], struct lp_grpc_pool **ret_pool)
{
	struct lp_grpc_pool *p;
	int r = -ENOMEM;

	if (!max)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->args = calloc(max, sizeof(*p->args));
	p->threads = calloc(max, sizeof(*p->threads));
	if (!p->args || !p->threads)
		goto fail;
	memcpy(p->args, args, max * sizeof(*p->args));
	p->name = name;
	p->fn = fn;
	p->max = max;
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->idle, 0);
	*ret_pool = p;
	return 0;
fail:
	free(p->args);
	free(p->threads);
	free(p);
	return r;
}

/* one more worker; call with p->lock held */
static int start_one(struct lp_grpc_pool *p)
{
	int r;

	if (p->closed || p->n_started >= p->max)
		return -EAGAIN;
	/* counted idle before it runs, so that two calls taken at once do
	 * not both start one for the same gap */
	atomic_fetch_add(&p->idle, 1);
	r = lp_grpc_thread(&p->threads[p->n_started], p->fn,
			   p->args[p->n_started]);
	if (r < 0) {
		atomic_fetch_sub(&p->idle, 1);
		return r;
	}
	p->n_started++;
	return 0;
}

int lp_grpc_pool_grow(struct lp_grpc_pool *p, unsigned int n)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (n-- && r == 0)
		r = start_one(p);
	pthread_mutex_unlock(&p->lock);
	return r == -EAGAIN ? 0 : r;
}

void lp_grpc_pool_took(struct lp_grpc_pool *p)
{
	unsigned int n;
	int r;

	if (atomic_fetch_sub(&p->idle, 1) != 1)
		return;
	pthread_mutex_lock(&p->lock);
	r = start_one(p);
	n = p->n_started;
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		lp_log_info("%s: every worker busy, %u now", p->name, n);
	else if (r != -EAGAIN)
		lp_log_warn("%s: another worker: %s (%u serve)", p->name,
			    strerror(-r), n);
}

void lp_grpc_pool_back(struct lp_grpc_pool *p)
{
	atomic_fetch_add(&p->idle, 1);
}

void lp_grpc_pool_close(struct lp_grpc_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->closed = true;
	pthread_mutex_unlock(&p->lock);
}

void lp_grpc_pool_free(struct lp_grpc_pool *p)
{
	unsigned int i;

	if (!p)
		return;
	lp_grpc_pool_close(p);
	for (i = 0; i < p->n_started; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p->args);
	free(p);
}
