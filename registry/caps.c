// SPDX-License-Identifier: Apache-2.0
/*
 * What each registry host can do, learnt from its replies and remembered by
 * the client (struct lp_reg) for the life of the process: whether it honours
 * a Range request (206) or answers it with the whole blob (200), whether it
 * answers several ranges in one request (multipart/byteranges) or refuses
 * them (400, 501, 200), whether it redirects blobs to other storage, and
 * whether it has the OCI referrers API. This file owns the decisions that
 * follow from them: read ranges from the host, or take each of its blobs
 * once into a spool (spool.c), whether a multi-range request is worth
 * sending, and whether the referrers tag is asked beside the API (push.c). Each thing learnt is logged once
 * per host, when it is first seen or changes.
 *
 * The latest ranged reply decides: a host whose last answer to a range was
 * the whole blob is range-less (a blob of it that has no word of its own
 * goes straight to a spool: one whole blob, where reading it by ranges
 * would cost one whole blob per range), one whose last answer was a 206 is
 * read by ranges. Not sticky, because Debian's docker-registry as a
 * pull-through cache is both: 200 and the whole blob while a blob is not
 * yet in its cache, 206 once it is. A blob's own replies outrank its
 * host's (blob.c: a blob whose tail came back 206 is read by ranges; one
 * whose reply was the whole blob is read from its spool).
 *
 * Learnt once: while nothing is known of a host's ranges, one ranged read
 * at a time goes to it (reg_caps_gate); the others wait for its answer,
 * so that a dozen first reads of a range-less host do not each start a
 * whole blob.
 *
 * LAZYPULL_NO_SPOOL=1 in the environment (read when the client is made)
 * turns the spool off: ranges from a range-less host are then sliced out of
 * one whole-blob reply each, as before this file existed. It is there so
 * that a test can show what the spool saves; nothing else should set it.
 *
 * Lock order: lock is a leaf.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lp_log.h"
#include "reg_int.h"

#define REG_CAPS_HOSTS_MAX 256 /* hosts remembered; later ones unknown */

enum tri { TRI_UNKNOWN = 0, TRI_YES, TRI_NO };

struct host_caps {
	char host[LP_REG_HOST_MAX];
	enum tri ranges; /* 206 to a single range */
	enum tri multi; /* multipart/byteranges to several */
	bool redirects; /* sent a blob elsewhere */
	/* its last answer to the referrers API: an index (YES) or not */
	enum tri referrers_api;
	bool probing; /* a ranged request is finding out about ranges */
	struct host_caps *next;
};

struct reg_caps {
	bool no_spool; /* LAZYPULL_NO_SPOOL: immutable after new */
	pthread_mutex_t lock;
	pthread_cond_t
		cond; /* a host's answer to ranges is known, a probe ended */
	struct host_caps *hosts; /* protected by lock */
	unsigned int n_hosts; /* protected by lock */
};

int reg_caps_new(struct reg_caps **ret_caps)
{
	struct reg_caps *c = calloc(1, sizeof(*c));
	const char *e = getenv("LAZYPULL_NO_SPOOL");

	if (!c)
		return -ENOMEM;
	c->no_spool = e && !strcmp(e, "1");
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	*ret_caps = c;
	return 0;
}

void reg_caps_free(struct reg_caps *c)
{
	struct host_caps *h, *hn;

	if (!c)
		return;
	for (h = c->hosts; h; h = hn) {
		hn = h->next;
		free(h);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* @host's entry, made when @make; NULL when absent or over the bound */
static struct host_caps *find(struct reg_caps *c, const char *host, bool make)
{
	struct host_caps *h;

	for (h = c->hosts; h; h = h->next)
		if (!strcmp(h->host, host))
			return h;
	if (!make || c->n_hosts >= REG_CAPS_HOSTS_MAX ||
	    strlen(host) >= sizeof(h->host))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	memcpy(h->host, host, strlen(host) + 1);
	h->next = c->hosts;
	c->hosts = h;
	c->n_hosts++;
	return h;
}

void reg_caps_note(struct reg_caps *c, const char *host,
		   enum reg_caps_seen seen, long status)
{
	struct host_caps *h;
	const char *say = NULL;

	pthread_mutex_lock(&c->lock);
	h = find(c, host, true);
	if (!h)
		goto out;
	switch (seen) {
	case REG_SEEN_RANGE:
		if (h->ranges != TRI_YES) {
			say = h->ranges == TRI_NO ?
				      "honours Range requests again (206)" :
				      "honours Range requests (206)";
			h->ranges = TRI_YES;
		}
		break;
	case REG_SEEN_WHOLE:
		if (h->ranges != TRI_NO) {
			h->ranges = TRI_NO;
			say = c->no_spool ?
				      "answers a Range request with the whole "
				      "blob (200); spool off (LAZYPULL_NO_SPOOL)" :
				      "answers a Range request with the whole "
				      "blob (200): each blob is taken once, "
				      "into a spool";
		}
		break;
	case REG_SEEN_MULTI:
		if (h->multi != TRI_YES) {
			h->multi = TRI_YES;
			say = "answers several ranges in one request";
		}
		break;
	case REG_SEEN_MULTI_REFUSED:
		if (h->multi != TRI_NO) {
			h->multi = TRI_NO;
			say = "refuses several ranges in one request: one "
			      "range per request";
		}
		break;
	case REG_SEEN_REDIRECT:
		if (!h->redirects) {
			h->redirects = true;
			say = "redirects blobs to other storage";
		}
		break;
	case REG_SEEN_REFERRERS_API:
		if (h->referrers_api != TRI_YES) {
			h->referrers_api = TRI_YES;
			say = "has the referrers API";
		}
		break;
	case REG_SEEN_NO_REFERRERS_API:
		if (h->referrers_api != TRI_NO) {
			h->referrers_api = TRI_NO;
			say = "has no referrers API: the referrers tag is "
			      "asked beside it";
		}
		break;
	}
	/* a range-less host costs bandwidth: say so where it is seen */
	if (seen == REG_SEEN_RANGE || seen == REG_SEEN_WHOLE)
		pthread_cond_broadcast(&c->cond); /* the gate's waiters */
	if (say)
		lp_log(seen == REG_SEEN_WHOLE ? LP_LOG_WARN : LP_LOG_INFO,
		       "registry %s %s (learnt from HTTP %ld)", host, say,
		       status);
out:
	pthread_mutex_unlock(&c->lock);
}

bool reg_caps_spool(struct reg_caps *c, const char *host)
{
	struct host_caps *h;
	bool r;

	if (c->no_spool)
		return false;
	pthread_mutex_lock(&c->lock);
	h = find(c, host, false);
	r = h && h->ranges == TRI_NO;
	pthread_mutex_unlock(&c->lock);
	return r;
}

bool reg_caps_multi(struct reg_caps *c, const char *host)
{
	struct host_caps *h;
	bool r;

	pthread_mutex_lock(&c->lock);
	h = find(c, host, false);
	r = !h || (h->multi != TRI_NO && h->ranges != TRI_NO);
	pthread_mutex_unlock(&c->lock);
	return r;
}

bool reg_caps_referrers_api(struct reg_caps *c, const char *host)
{
	struct host_caps *h;
	bool r;

	pthread_mutex_lock(&c->lock);
	h = find(c, host, false);
	r = h && h->referrers_api == TRI_YES;
	pthread_mutex_unlock(&c->lock);
	return r;
}

bool reg_caps_spool_allowed(const struct reg_caps *c)
{
	return !c->no_spool;
}

bool reg_caps_gate(struct reg_caps *c, const char *host)
{
	struct host_caps *h;
	bool probe = false;

	pthread_mutex_lock(&c->lock);
	h = find(c, host, true);
	if (!h)
		goto out; /* over the bound: not remembered, not gated */
	while (h->ranges == TRI_UNKNOWN && h->probing)
		pthread_cond_wait(&c->cond, &c->lock);
	if (h->ranges == TRI_UNKNOWN) {
		h->probing = true;
		probe = true;
	}
out:
	pthread_mutex_unlock(&c->lock);
	return probe;
}

void reg_caps_gate_end(struct reg_caps *c, const char *host)
{
	struct host_caps *h;

	pthread_mutex_lock(&c->lock);
	h = find(c, host, false);
	if (h)
		h->probing = false;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}
