// SPDX-License-Identifier: Apache-2.0
/*
 * Warm connections (lp_reg_warm()). The client's requests share one
 * connection cache, but a request finds an idle connection there only when
 * one is idle: two requests started together, or one started while
 * another holds the only connection, each open their own, and a new
 * connection costs a round trip before the request goes out (two or three
 * over TLS). A lazy mount's requests come in bursts: an image's referrers
 * asked by API and by tag at once, the proving pass's two read-ahead
 * requests with the first on-demand reads beside them. So when a lookup
 * of an image begins, the client opens a few more connections to the host
 * its requests go to, in parallel with its first request: each a GET of
 * the API root (`/v2/`, the registry's ping: 200 or 401, no auth flow
 * here, one attempt, body dropped), on a thread of its own, whose
 * connection stays in the cache for the requests that follow. At most once
 * per LP_REG_WARM_EVERY_MS per host; a failure is only logged at debug
 * level (the requests that follow open their own connections, as before).
 * A ping is bounded by its own LP_REG_WARM_TIMEOUT_MS, whatever the
 * client's timeouts: nothing waits for these threads (each holds a
 * reference on the client), so a stalled host holds one that long at
 * most, also past the client's lp_reg_free() or the process's exit path.
 * The warm-up helps requests that start after its ping has answered (one
 * round trip after the connection is made): those that go out at the same
 * moment as the ping open their own connections, as without it.
 */
#define LP_REG_WARM_TIMEOUT_MS 2000
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "lp_common.h"
#include "lp_hosts.h"
#include "lp_log.h"
#include "reg_int.h"

struct warm_job {
	struct lp_reg *reg; /* a reference */
	const struct reg_endpoints *eps; /* a reference */
	size_t ep;
	struct lp_reg_ref ref;
	char url[LP_REG_URL_MAX];
};

static void *warm_main(void *arg)
{
	struct warm_job *j = arg;
	const struct lp_reg_req req = {
		.ep = &j->eps->v[j->ep],
		.attempts = 1,
		.ref = &j->ref,
		.url = j->url,
		.external = true, /* a ping: no auth flow */
		.small = true,
		.timeout_ms = LP_REG_WARM_TIMEOUT_MS,
		.what = "connection warm-up",
	};
	struct lp_reg_resp resp;
	struct lp_err err = { 0 };
	int r;

	r = lp_reg_do(j->reg, &req, &resp, &err);
	if (r < 0)
		lp_log_debug("registry %s: %s", j->ref.host,
			     lp_err_str(&err, r));
	reg_endpoints_put(j->reg, j->eps);
	lp_reg_unref_client(j->reg);
	free(j);
	return NULL;
}

/* start one warm-up of endpoint @ep of @eps (its reference taken here) */
static int warm_one(struct lp_reg *reg, const struct reg_endpoints *eps,
		    size_t ep, const struct lp_reg_ref *ref)
{
	const struct reg_endpoint *e = &eps->v[ep];
	struct warm_job *j = calloc(1, sizeof(*j));
	pthread_attr_t at;
	sigset_t all, old;
	pthread_t t;
	int n, r;

	if (!j)
		return -ENOMEM;
	n = snprintf(j->url, sizeof(j->url), "%s://%s%s/", e->scheme, e->host,
		     e->path);
	if (n < 0 || (size_t)n >= sizeof(j->url)) {
		free(j);
		return -ENAMETOOLONG;
	}
	j->reg = lp_reg_ref_client(reg);
	j->eps = reg_endpoints_hold(reg, eps);
	j->ep = ep;
	j->ref = *ref;
	j->ref.auth = NULL; /* a ping never authenticates; not held */
	r = pthread_attr_init(&at);
	if (r == 0) {
		r = pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		/* the process's signals go to its own threads */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (r == 0)
			r = pthread_create(&t, &at, warm_main, j);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&at);
	}
	if (r != 0) {
		reg_endpoints_put(reg, j->eps);
		lp_reg_unref_client(reg);
		free(j);
		return -r;
	}
	return 0;
}

int lp_reg_warm(struct lp_reg *reg, const struct lp_reg_ref *ref,
		unsigned int n)
{
	const struct reg_endpoints *eps = NULL;
	struct lp_err err = { 0 };
	long now = (long)lp_mono_ms(), at;
	struct reg_endpoint *e;
	bool started = false;
	size_t ep;
	int r;

	if (!n)
		return 0;
	r = reg_endpoints(reg, ref, &eps, &err);
	if (r < 0)
		return r;
	/* the host the image's requests go to first */
	ep = reg_ep_next(eps, LP_HOST_CAP_PULL, 0, NULL);
	if (ep >= eps->n)
		goto out;
	e = &((struct reg_endpoints *)eps)->v[ep];
	at = atomic_load(&e->warmed_ms);
	if ((at && now - at < LP_REG_WARM_EVERY_MS) ||
	    !atomic_compare_exchange_strong(&e->warmed_ms, &at, now))
		goto out; /* warmed lately, or another caller warms it now */
	for (; n; n--) {
		r = warm_one(reg, eps, ep, ref);
		if (r < 0)
			break;
		started = true;
	}
	if (started)
		r = 0; /* fewer than asked for */
out:
	reg_endpoints_put(reg, eps);
	return r;
}
