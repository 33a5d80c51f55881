// SPDX-License-Identifier: Apache-2.0
/*
 * A registry blob read by HTTP Range requests: the blob source fs/ reads
 * layers through. Every reply is checked so that only the bytes asked for
 * reach the caller: a 206 must carry exactly the requested Content-Range, a
 * 200 (a registry ignoring Range) is sliced while streaming and then cut
 * off, a multipart/byteranges reply is matched part by part by the offsets
 * in its own headers. A single-range reply cut short is resumed: the retry
 * asks for the missing tail only, so what was written stays and a streamed
 * read (lp_blob_pread_stream) reports an ever-growing prefix. Redirects to
 * blob storage are remembered per blob and dropped when the storage refuses
 * (403, expiry) or after a while.
 *
 * Which host a read goes to is chosen per blob and per read: the
 * registry's hosts in order (endpoints.c), passing over those that are
 * down and those that failed this blob a moment ago (a 404: a mirror that
 * does not have it; bytes that did not verify, lp_reg_blob_reject()). A
 * host that fails in the middle of a read hands the rest of that read to
 * the next host, so reads of an open blob go on when a mirror dies. Which
 * host sent which bytes of a recent read is remembered (per host for a
 * read that moved on the way; the hosts that fed the spool for a read
 * from it), so that a reject blames the host that sent those bytes.
 *
 * What a reply shows about the host that sent it (206, a whole blob for a range,
 * multi-range answered or refused, a redirect) is told to caps.c, which
 * decides how the host is read from then on. From a host that answers
 * ranges with the whole blob, each blob is taken once into a spool
 * (spool.c) and read from there: the reply that taught it is diverted into
 * the spool (the request's sink switches to the spool's, "feed" below).
 *
 * Errors are not logged here: they go back in the struct lp_err, with the
 * HTTP status and whether a retry may help (decided in http.c, where the
 * reply is classified), to the caller that decides what to do.
 *
 * Lock order: lock is a leaf (held to copy the cached redirect and the
 * per-host state, to make the spool; spool.c's lock is never taken under
 * it).
 */
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lp_buf.h"
#include "lp_common.h"
#include "lp_hosts.h"
#include "lp_log.h"
#include "reg_int.h"

#define REG_SERVED_MAX 32 /* recent reads (or parts) remembered, for a reject */

/* hosts are kept as bits of a uint64_t: those that fed a spool, sent a
 * read's bytes */
_Static_assert(LP_HOSTS_MAX <= 64, "a host mask is 64 bits");

/*
 * Which hosts sent bytes of a recent read: one entry per host of a read
 * that moved to the next host on the way, one for a read from the spool
 * (the hosts that fed it).
 */
struct served {
	uint64_t off, len;
	uint64_t eps; /* the hosts, as bits */
	unsigned long read; /* which read: its entries share the number */
};

struct lp_reg_blob {
	atomic_uint refs;
	struct lp_reg *reg; /* a reference */
	struct lp_reg_ref ref;
	struct lp_digest digest;
	char name[LP_DIGEST_STR_LEN + 1];
	uint64_t size;
	/* the registry's host list the blob began with (reg_endpoints(), a
	 * reference the blob holds): cur_ep, skip_until, served and the eps
	 * masks index it, so a hosts.toml change does not reach an open blob */
	const struct reg_endpoints *_Atomic eps;
	atomic_size_t cur_ep; /* the host of the last read that worked */
	pthread_mutex_t lock;
	struct reg_spool *spool; /* protected by lock; made once, when needed */
	atomic_bool ranged; /* a range of it came back 206: ask by ranges */
	bool no_spool; /* protected by lock: the spool could not be made */
	char *redirect; /* protected by lock */
	long redirect_at; /* protected by lock; monotonic s */
	size_t redirect_ep; /* protected by lock; the host it came from */
	uint64_t spool_eps; /* protected by lock: hosts that fed the spool */
	uint64_t bad_eps; /* protected by lock: whose spool did not verify */
	size_t spool_restarts; /* protected by lock: spools taken again */
	/* hosts passed over for this blob until then (lp_mono_ms()) */
	long skip_until[LP_HOSTS_MAX]; /* protected by lock */
	struct served served[REG_SERVED_MAX]; /* protected by lock; a ring */
	size_t n_served; /* protected by lock; entries recorded, ever */
	atomic_ulong reads; /* reads made, ever: numbers them */
};

int lp_reg_blob_open(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size,
		     struct lp_reg_blob **ret_rb)
{
	struct lp_reg_blob *rb;

	rb = calloc(1, sizeof(*rb));
	if (!rb)
		return -ENOMEM;
	rb->ref = *ref;
	lp_reg_auth_ref(rb->ref.auth); /* the blob's requests use it */
	rb->digest = *digest;
	rb->size = size;
	atomic_init(&rb->ranged, false);
	lp_digest_format(digest, rb->name);
	atomic_init(&rb->refs, 1);
	atomic_init(&rb->cur_ep, 0);
	atomic_init(&rb->reads, 0);
	pthread_mutex_init(&rb->lock, NULL);
	rb->reg = lp_reg_ref_client(reg);
	*ret_rb = rb;
	return 0;
}

uint64_t lp_reg_blob_size(const struct lp_reg_blob *rb)
{
	return rb->size;
}

struct lp_reg_blob *lp_reg_blob_ref(struct lp_reg_blob *rb)
{
	atomic_fetch_add(&rb->refs, 1);
	return rb;
}

void lp_reg_blob_unref(struct lp_reg_blob *rb)
{
	if (!rb || atomic_fetch_sub(&rb->refs, 1) != 1)
		return;
	reg_spool_free(rb->spool); /* stops its feeder, which uses rb */
	reg_endpoints_put(rb->reg, atomic_load(&rb->eps));
	lp_reg_unref_client(rb->reg);
	lp_reg_auth_unref(rb->ref.auth);
	pthread_mutex_destroy(&rb->lock);
	free(rb->redirect);
	free(rb);
}

/* a copy of the cached redirect target of host @ep, or NULL */
static char *redirect_get(struct lp_reg_blob *rb, size_t ep)
{
	char *u = NULL;

	pthread_mutex_lock(&rb->lock);
	if (rb->redirect && rb->redirect_ep == ep &&
	    (long)(lp_mono_ms() / 1000) - rb->redirect_at <
		    LP_REG_REDIRECT_TTL_S)
		u = strdup(rb->redirect);
	pthread_mutex_unlock(&rb->lock);
	return u;
}

static void redirect_set(struct lp_reg_blob *rb, size_t ep, const char *url)
{
	char *u = url ? strdup(url) : NULL;

	pthread_mutex_lock(&rb->lock);
	free(rb->redirect);
	rb->redirect = u;
	rb->redirect_ep = ep;
	rb->redirect_at = (long)(lp_mono_ms() / 1000);
	pthread_mutex_unlock(&rb->lock);
}

/* a number for a new read, shared by the entries it notes */
static unsigned long read_number(struct lp_reg_blob *rb)
{
	return atomic_fetch_add(&rb->reads, 1);
}

/*
 * The hosts @eps (bits) sent [off, off + len) for read number @read:
 * remembered for lp_reg_blob_reject().
 */
static void served_note(struct lp_reg_blob *rb, unsigned long read,
			uint64_t eps, uint64_t off, uint64_t len)
{
	struct served *sv;

	if (!eps || !len)
		return;
	pthread_mutex_lock(&rb->lock);
	sv = &rb->served[rb->n_served++ % REG_SERVED_MAX];
	sv->off = off;
	sv->len = len;
	sv->eps = eps;
	sv->read = read;
	pthread_mutex_unlock(&rb->lock);
}

/* host @ep (in the list) sent [off, off + len) for read @read */
static void served_by(struct lp_reg_blob *rb, unsigned long read, size_t ep,
		      uint64_t off, uint64_t len)
{
	if (ep >= LP_HOSTS_MAX)
		return;
	atomic_store(&rb->cur_ep, ep);
	served_note(rb, read, (uint64_t)1 << ep, off, len);
}

/* pass host @ep over for this blob for a while */
static void blob_skip(struct lp_reg_blob *rb, size_t ep)
{
	pthread_mutex_lock(&rb->lock);
	if (ep < LP_HOSTS_MAX)
		rb->skip_until[ep] = (long)lp_mono_ms() + LP_REG_HOST_DOWN_MS;
	pthread_mutex_unlock(&rb->lock);
}

/* whether entry @sv covers part of [off, off + len) */
static bool served_overlaps(const struct served *sv, uint64_t off, uint64_t len)
{
	return sv->off < off + len && off < sv->off + sv->len;
}

/* the host list @rb began with: the first call takes the client's */
static int blob_endpoints(struct lp_reg_blob *rb,
			  const struct reg_endpoints **ret_eps,
			  struct lp_err *err)
{
	const struct reg_endpoints *e = atomic_load(&rb->eps), *want = NULL;
	int r;

	if (!e) {
		r = reg_endpoints(rb->reg, &rb->ref, &e, err);
		if (r < 0)
			return r;
		/* a racing first call's list wins */
		if (!atomic_compare_exchange_strong(&rb->eps, &want, e)) {
			reg_endpoints_put(rb->reg, e);
			e = want;
		}
	}
	*ret_eps = e;
	return 0;
}

void lp_reg_blob_reject(struct lp_reg_blob *rb, uint64_t off, uint64_t len)
{
	const struct reg_endpoints *eps;
	const struct served *sv;
	size_t i, first, ep = atomic_load(&rb->cur_ep);
	uint64_t bad = 0;
	unsigned long read = 0;
	bool found = false;

	pthread_mutex_lock(&rb->lock);
	first = rb->n_served > REG_SERVED_MAX ? rb->n_served - REG_SERVED_MAX :
						0;
	/* the latest read that overlaps: the hosts of its entries that
	 * overlap sent these bytes (a read that moved to the next host on
	 * the way has an entry per host) */
	for (i = rb->n_served; i > first && !found; i--) {
		sv = &rb->served[(i - 1) % REG_SERVED_MAX];
		if (served_overlaps(sv, off, len)) {
			read = sv->read;
			found = true;
		}
	}
	for (i = first; found && i < rb->n_served; i++) {
		sv = &rb->served[i % REG_SERVED_MAX];
		if (sv->read == read && served_overlaps(sv, off, len))
			bad |= sv->eps;
	}
	if (!found && ep < LP_HOSTS_MAX)
		bad = (uint64_t)1 << ep; /* nothing remembered: the latest */
	for (i = 0; i < LP_HOSTS_MAX; i++)
		if (bad & (uint64_t)1 << i)
			rb->skip_until[i] =
				(long)lp_mono_ms() + LP_REG_HOST_DOWN_MS;
	pthread_mutex_unlock(&rb->lock);
	if (blob_endpoints(rb, &eps, NULL) < 0)
		return;
	for (i = 0; i < eps->n && i < LP_HOSTS_MAX; i++)
		if (bad & (uint64_t)1 << i)
			lp_log_warn("blob %s: bytes %llu+%llu from %s did not "
				    "verify; its next reads go to the next "
				    "host",
				    rb->name, (unsigned long long)off,
				    (unsigned long long)len, eps->v[i].host);
}

/* the length of "SCHEME://HOST" of @ep's URLs */
static size_t origin_len(const struct reg_endpoint *ep)
{
	return strlen(ep->scheme) + 3 + strlen(ep->host);
}

/*
 * One ranged GET from host @ep (@i in the list; @more: another host
 * follows): straight to the cached storage URL when there is one, else to
 * the host following redirects (and caching where they lead). The URL
 * asked goes to @url (LP_REG_URL_MAX bytes) for messages.
 */
static int range_get_at(struct lp_reg_blob *rb, const struct reg_endpoint *ep,
			size_t i, bool more, const char *range,
			struct lp_reg_sink *sink, struct lp_reg_resp *resp,
			char *url, struct lp_err *err)
{
	const char *hdrs[] = { range, NULL };
	struct lp_reg_ref epref;
	struct lp_reg_req req;
	char *cached = redirect_get(rb, i);
	char *final = NULL;
	char suffix[LP_DIGEST_STR_LEN + 8];
	struct lp_err tmp;
	int r;

	reg_ep_ref(ep, &rb->ref, &epref);
	snprintf(suffix, sizeof(suffix), "blobs/%s", rb->name);
	r = reg_ep_url(ep, &rb->ref, suffix, url, LP_REG_URL_MAX);
	if (r < 0)
		goto out;
	memset(&req, 0, sizeof(req));
	req.ref = &epref;
	req.ep = ep;
	req.attempts = more ? LP_REG_MIRROR_ATTEMPTS : 0;
	req.headers = hdrs;
	req.body_fd = -1;
	req.sink = sink;
	req.what = "blob range";
	if (cached) {
		lp_err_clear(&tmp);
		req.url = cached;
		req.external = true;
		/* storage elsewhere gets neither the host's TLS nor headers */
		if (strncmp(cached, url, origin_len(ep)) ||
		    !strchr("/?", cached[origin_len(ep)]))
			req.ep = NULL;
		r = lp_reg_do(rb->reg, &req, resp, &tmp);
		if (r == 0 && resp->status != 401 && resp->status != 403 &&
		    resp->status != 404 && resp->status != 410 &&
		    (resp->status < 300 || resp->status >= 400))
			goto out;
		/* expired or refused: ask the registry again */
		lp_log_debug("blob %s: cached redirect failed (%d, HTTP %ld)",
			     rb->name, r, resp->status);
		redirect_set(rb, i, NULL);
		if (sink->reset)
			sink->reset(sink->ctx);
	}
	final = malloc(LP_REG_URL_MAX);
	if (!final) {
		r = -ENOMEM;
		goto out;
	}
	req.url = url;
	req.external = false;
	req.ep = ep;
	r = lp_reg_do_follow(rb->reg, &req, resp, final, LP_REG_URL_MAX, err);
	if (r == 0 && resp->status >= 200 && resp->status < 300 &&
	    strcmp(final, url)) {
		redirect_set(rb, i, final);
		reg_caps_note(lp_reg_caps(rb->reg), ep->host, REG_SEEN_REDIRECT,
			      resp->status);
	}
out:
	free(cached);
	free(final);
	return r;
}

/* a reply, and where it came from */
struct range_out {
	struct lp_reg_resp resp;
	char url[LP_REG_URL_MAX]; /* the URL asked */
	size_t ep; /* the host, in the registry's list */
	const char *host; /* its name: what caps.c keys it by */
};

/*
 * One ranged GET from the blob's hosts in order: a host that fails hands
 * the request to the next (the sink is reset: a single range asks only for
 * what it still misses). While a host is asked, @o->ep and @o->host name
 * it (sinks read them as replies come); they are left naming the host that
 * gave the outcome, @o->url its URL. Returns as range_get_at() for that
 * host.
 */
static int range_get(struct lp_reg_blob *rb, const char *range,
		     struct lp_reg_sink *sink, struct range_out *o,
		     struct lp_err *err)
{
	struct lp_reg_resp *resp = &o->resp;
	const struct reg_endpoints *eps;
	long skip[LP_HOSTS_MAX];
	enum reg_ep_verdict v;
	struct lp_err tmp;
	size_t i;
	int r;

	o->ep = 0;
	o->host = rb->ref.host;
	r = blob_endpoints(rb, &eps, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rb->lock);
	memcpy(skip, rb->skip_until, sizeof(skip));
	pthread_mutex_unlock(&rb->lock);
	for (i = reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip); i < eps->n;
	     i = reg_ep_next(eps, LP_HOST_CAP_PULL, i + 1, skip)) {
		bool more = reg_ep_has_next(eps, LP_HOST_CAP_PULL, i);

		lp_err_clear(&tmp);
		o->ep = i;
		o->host = eps->v[i].host;
		r = range_get_at(rb, &eps->v[i], i, more, range, sink, resp,
				 o->url, &tmp);
		v = reg_ep_verdict(r, resp);
		if (sink->stopped && sink->stopped(sink->ctx))
			v = REG_EP_USE;
		if (!more || v == REG_EP_USE)
			return r < 0 ? reg_err_pass(err, &tmp, r) : 0;
		if (r == 0)
			lp_err_set(&tmp, -EIO, "%s %s: HTTP %ld", "blob range",
				   o->url, resp->status);
		if (v == REG_EP_DOWN) {
			reg_ep_mark_down(&eps->v[i], &tmp);
		} else {
			blob_skip(rb, i);
			lp_log_info("blob %s: %s; the next host is asked "
				    "for it",
				    rb->name, tmp.msg);
		}
		if (sink->reset)
			sink->reset(sink->ctx);
	}
	return lp_err_set(err, -ENOENT,
			  "%s: no host in the registry configuration may pull",
			  rb->ref.host);
}

/*
 * The host the next read of @rb goes to first (range_get()'s first
 * choice): whose capabilities decide how that read is made.
 */
static const char *first_host(struct lp_reg_blob *rb)
{
	const struct reg_endpoints *eps;
	long skip[LP_HOSTS_MAX];
	size_t i;

	if (blob_endpoints(rb, &eps, NULL) < 0)
		return rb->ref.host;
	pthread_mutex_lock(&rb->lock);
	memcpy(skip, rb->skip_until, sizeof(skip));
	pthread_mutex_unlock(&rb->lock);
	i = reg_ep_next(eps, LP_HOST_CAP_PULL, 0, skip);
	return i < eps->n ? eps->v[i].host : rb->ref.host;
}

static struct reg_spool *blob_spool(struct lp_reg_blob *rb);

static bool blob_has_spool(struct lp_reg_blob *rb)
{
	bool has;

	pthread_mutex_lock(&rb->lock);
	has = rb->spool != NULL;
	pthread_mutex_unlock(&rb->lock);
	return has;
}

/* host @ep fed @rb's spool (a spool that does not verify rejects them) */
static void spool_fed_by(struct lp_reg_blob *rb, size_t ep)
{
	pthread_mutex_lock(&rb->lock);
	if (ep < LP_HOSTS_MAX)
		rb->spool_eps |= (uint64_t)1 << ep;
	pthread_mutex_unlock(&rb->lock);
}

/*
 * A whole blob came from host @o for a range (@off, @len) of @rb: tell
 * caps.c, and when that host is now to be spooled, make this reply the
 * spool's feed. Returns the claimed spool (the caller feeds it through
 * *@sink, rewriting @range on retries, and releases it), or NULL: slice
 * the reply as before.
 */
static struct reg_spool *whole_reply(struct lp_reg_blob *rb,
				     const struct range_out *o, uint64_t off,
				     uint64_t len, char *range,
				     size_t range_size,
				     struct lp_reg_sink *sink)
{
	struct reg_caps *caps = lp_reg_caps(rb->reg);
	struct reg_spool *sp;

	if (off == 0 && len >= rb->size)
		return NULL; /* asked for all of it: nothing learnt */
	/* claimed before the host is known range-less, which sends the
	 * readers waiting at the gate to this spool */
	sp = reg_caps_spool_allowed(caps) ? blob_spool(rb) : NULL;
	if (sp && !reg_spool_claim(sp))
		sp = NULL;
	reg_caps_note(caps, o->host, REG_SEEN_WHOLE, o->resp.status);
	if (sp) {
		spool_fed_by(rb, o->ep);
		reg_spool_sink(sp, range, range_size, sink);
	}
	return sp;
}

/* ---- single range ---- */

int reg_reply_check(const struct lp_reg_resp *resp, uint64_t off, uint64_t len,
		    uint64_t size, uint64_t *ret_total)
{
	uint64_t a, b, t, from, n;

	if (resp->status == 200) {
		/* Range ignored: the whole blob, of the size known */
		if (size && resp->content_length >= 0 &&
		    (uint64_t)resp->content_length != size)
			return -EPROTO;
		if (ret_total)
			*ret_total = size ? size :
				     resp->content_length >= 0 ?
					    (uint64_t)resp->content_length :
					    0;
		return 200;
	}
	if (resp->status != 206 ||
	    !strncasecmp(resp->content_type, "multipart/", 10) ||
	    lp_reg_content_range_parse(resp->content_range,
				       strlen(resp->content_range), &a, &b,
				       &t) < 0)
		return -EPROTO;
	if (t == UINT64_MAX)
		t = size; /* "*": the size known, if it is */
	if (!t || (size && t != size))
		return -EPROTO;
	n = off == REG_RANGE_SUFFIX ? lp_min_u64(len, t) : len;
	from = off == REG_RANGE_SUFFIX ? t - n : off;
	if (!n || a != from || b != from + n - 1)
		return -EPROTO;
	if (ret_total)
		*ret_total = t;
	return 206;
}

/*
 * buf[0, got) is final: a retry asks for the rest only (the Range header,
 * ours, is rewritten before it), so bytes are never written twice and a
 * streaming reader's prefix stays right.
 */
struct range_sink {
	struct lp_reg_blob *rb;
	uint8_t *buf;
	uint64_t off;
	size_t len;
	size_t got;
	uint64_t seen; /* 200: body bytes seen so far */
	bool whole; /* 200: slicing the whole blob */
	bool begun;
	char *range; /* the request's Range header */
	size_t range_size;
	lp_blob_progress_fn fn; /* NULL: no progress reports */
	void *arg;
	struct range_out *o; /* the reply and the host it comes from */
	struct reg_spool *feed; /* the reply goes to this spool instead */
	struct lp_reg_sink fsink; /* its sink, when feed is set */
	bool join; /* another reply feeds the blob's spool: read from it */
	int fn_rc; /* what fn returned when it said stop */
	unsigned long read; /* this read's number (served_note) */
	size_t noted; /* buf[0, noted) is noted with the hosts that sent it */
};

/*
 * buf[noted, got) came from the host asked now (o->ep): noted before the
 * request moves on (to a retry, to the next host), so that a reject of
 * those bytes blames that host, not the one that sent the rest.
 */
static void range_note(struct range_sink *s)
{
	if (s->got <= s->noted)
		return;
	served_by(s->rb, s->read, s->o->ep, s->off + s->noted,
		  s->got - s->noted);
	s->noted = s->got;
}

static int range_begin(void *ctx, const struct lp_reg_resp *resp)
{
	struct range_sink *s = ctx;
	int r;

	if (s->feed) {
		spool_fed_by(s->rb, s->o->ep); /* maybe the next host */
		return s->fsink.begin(s->fsink.ctx, resp);
	}
	s->begun = true;
	r = reg_reply_check(resp, s->off + s->got, s->len - s->got, s->rb->size,
			    NULL);
	if (r < 0)
		return r;
	if (r == 200) {
		/* Range ignored: the whole blob follows; take our slice */
		s->feed = whole_reply(s->rb, s->o, s->off, s->len, s->range,
				      s->range_size, &s->fsink);
		if (s->feed)
			return s->fsink.begin(s->fsink.ctx, resp);
		if (blob_has_spool(s->rb)) {
			s->join = true; /* stop this one, wait for that one */
			return -EALREADY;
		}
		if (s->off + s->got > LP_REG_SKIP_MAX)
			return -EFBIG;
		s->whole = true;
		return 0;
	}
	s->whole = false;
	atomic_store(&s->rb->ranged, true);
	reg_caps_note(lp_reg_caps(s->rb->reg), s->o->host, REG_SEEN_RANGE,
		      resp->status);
	return 0;
}

static int range_write(void *ctx, const void *data, size_t len)
{
	struct range_sink *s = ctx;
	const uint8_t *p = data;
	int r;

	if (s->feed)
		return s->fsink.write(s->fsink.ctx, data, len);
	if (s->whole) {
		uint64_t start = s->seen, end = s->seen + len;
		uint64_t from, to;

		s->seen = end;
		from = lp_max_u64(start, s->off + s->got);
		to = lp_min_u64(end, s->off + s->len);
		if (from < to) {
			memcpy(s->buf + (from - s->off), p + (from - start),
			       (size_t)(to - from));
			s->got += (size_t)(to - from);
			if (s->fn && (r = s->fn(s->arg, s->got)) < 0)
				return s->fn_rc = r;
		}
		return s->got == s->len ? 1 : 0;
	}
	if (len > s->len - s->got)
		return -EPROTO; /* more than the Content-Range said */
	memcpy(s->buf + s->got, p, len);
	s->got += len;
	if (s->fn && len && (r = s->fn(s->arg, s->got)) < 0)
		return s->fn_rc = r;
	return 0;
}

static int range_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct range_sink *s = ctx;

	if (s->feed)
		return s->fsink.finish(s->fsink.ctx, resp);
	if (resp->status != 200 && resp->status != 206)
		return -EPROTO;
	return s->got == s->len ? 0 : -EAGAIN;
}

static bool range_stopped(void *ctx)
{
	struct range_sink *s = ctx;

	/* stopped by us, not the host's fault: another reply feeds the
	 * spool (join), or the caller's progress function said stop */
	return s->fn_rc != 0 || s->join;
}

static bool range_complete(void *ctx)
{
	struct range_sink *s = ctx;

	if (s->feed)
		return s->fsink.complete(s->fsink.ctx);
	return s->begun && s->got == s->len;
}

static void range_reset(void *ctx)
{
	struct range_sink *s = ctx;

	range_note(s); /* the host asked so far sent buf[noted, got) */
	if (s->feed) {
		s->fsink.reset(s->fsink.ctx); /* the spool's missing tail */
		return;
	}
	/* keep buf[0, got): ask for the rest */
	if (s->got)
		snprintf(s->range, s->range_size, "Range: bytes=%llu-%llu",
			 (unsigned long long)(s->off + s->got),
			 (unsigned long long)(s->off + s->len - 1));
	s->seen = 0;
	s->whole = false;
	s->begun = false;
}

static int check_range(const struct lp_reg_blob *rb, uint64_t off, size_t len,
		       struct lp_err *err)
{
	if (off > rb->size || len > rb->size - off)
		return lp_err_set(err, -ERANGE,
				  "blob %s: range %llu+%zu outside %llu bytes",
				  rb->name, (unsigned long long)off, len,
				  (unsigned long long)rb->size);
	return 0;
}

/*
 * The verdict on a single-range reply: @r from range_get() with the
 * message a bad reply deserves, or the HTTP status's error for a reply
 * that is neither 200 nor 206; 0 when the bytes can be used.
 */
static int range_reply(struct lp_reg_blob *rb, const char *what,
		       const char *range, const struct lp_reg_resp *resp,
		       const char *url, int r, struct lp_err *err)
{
	if (r == -EPROTO || r == -EFBIG)
		return lp_err_set(err, r,
				  "blob %s/%s@%s: bad reply to %s (HTTP %ld, "
				  "Content-Range \"%s\")",
				  rb->ref.host, rb->ref.repo, rb->name, range,
				  resp->status, resp->content_range);
	if (r < 0)
		return r;
	if (resp->status != 200 && resp->status != 206)
		return lp_reg_status_err(
			&(struct lp_reg_req){ .url = url, .what = what }, resp,
			err);
	return 0;
}

/* the spool's sink, noting which host feeds it */
struct feed_sink {
	struct lp_reg_blob *rb;
	const struct range_out *o;
	struct lp_reg_sink in; /* reg_spool_sink()'s */
};

static int feed_begin(void *ctx, const struct lp_reg_resp *resp)
{
	struct feed_sink *f = ctx;

	spool_fed_by(f->rb, f->o->ep);
	return f->in.begin(f->in.ctx, resp);
}

static int feed_write(void *ctx, const void *data, size_t len)
{
	struct feed_sink *f = ctx;

	return f->in.write(f->in.ctx, data, len);
}

static int feed_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct feed_sink *f = ctx;

	return f->in.finish(f->in.ctx, resp);
}

static void feed_reset(void *ctx)
{
	struct feed_sink *f = ctx;

	f->in.reset(f->in.ctx);
}

static bool feed_complete(void *ctx)
{
	struct feed_sink *f = ctx;

	return f->in.complete(f->in.ctx);
}

/*
 * The spool's feeder: one request for what it lacks (reg_spool_feed_fn),
 * from the blob's hosts in order: a host that dies in the middle hands the
 * rest (a Range from the spool's end) to the next one (range_get()).
 */
static int spool_feed(void *ctx, struct reg_spool *sp, struct lp_err *err)
{
	struct lp_reg_blob *rb = ctx;
	struct feed_sink f = { .rb = rb };
	struct lp_reg_sink sink = { .begin = feed_begin,
				    .write = feed_write,
				    .finish = feed_finish,
				    .reset = feed_reset,
				    .complete = feed_complete,
				    .ctx = &f };
	struct range_out *o;
	char range[64];
	int r;

	o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	f.o = o;
	reg_spool_sink(sp, range, sizeof(range), &f.in);
	r = range_get(rb, range, &sink, o, err);
	r = range_reply(rb, "blob", range, &o->resp, o->url, r, err);
	free(o);
	return r;
}

/*
 * The spool's bytes did not verify (reg_spool_bad_fn): the hosts that fed
 * it are rejected for this blob (as lp_reg_blob_reject() does) and, when a
 * host that may pull has not fed a bad spool yet, the spool is taken again
 * (from it: range_get() passes the rejected ones over). At most one new
 * start per host of the list.
 */
static bool spool_bad(void *ctx)
{
	struct lp_reg_blob *rb = ctx;
	const struct reg_endpoints *eps;
	uint64_t fed, bad;
	long until = (long)lp_mono_ms() + LP_REG_HOST_DOWN_MS;
	bool again = false;
	size_t i, n = 0;

	if (blob_endpoints(rb, &eps, NULL) == 0)
		n = eps->n;
	pthread_mutex_lock(&rb->lock);
	fed = rb->spool_eps;
	rb->spool_eps = 0;
	rb->bad_eps |= fed;
	bad = rb->bad_eps;
	for (i = 0; i < LP_HOSTS_MAX; i++)
		if (fed & (uint64_t)1 << i)
			rb->skip_until[i] = until;
	for (i = 0; i < n && i < LP_HOSTS_MAX; i++)
		if ((eps->v[i].caps & LP_HOST_CAP_PULL) &&
		    !(bad & (uint64_t)1 << i))
			again = true;
	if (again && rb->spool_restarts++ >= n)
		again = false;
	pthread_mutex_unlock(&rb->lock);
	for (i = 0; i < n && i < LP_HOSTS_MAX; i++)
		if (fed & (uint64_t)1 << i)
			lp_log_warn("blob %s: the whole blob from %s did not "
				    "verify; %s",
				    rb->name, eps->v[i].host,
				    again ? "taken again from the next host" :
					    "no other host to take it from");
	return again;
}

/* @rb's spool, made on first use; NULL when it cannot be (logged once) */
static struct reg_spool *blob_spool(struct lp_reg_blob *rb)
{
	struct reg_spool *sp;
	struct lp_err err;
	int r = 0;

	lp_err_clear(&err);
	pthread_mutex_lock(&rb->lock);
	if (!rb->spool && !rb->no_spool && rb->size) {
		r = reg_spool_new(lp_reg_opts_get(rb->reg)->spool_dir,
				  &rb->digest, rb->size, spool_feed, rb,
				  &rb->spool, &err);
		rb->no_spool = r < 0;
		if (r == 0)
			reg_spool_on_bad(rb->spool, spool_bad);
	}
	sp = rb->spool;
	pthread_mutex_unlock(&rb->lock);
	if (r < 0)
		lp_log_warn("%s: read by ranges, a whole blob each (%s)",
			    lp_err_str(&err, r), rb->ref.host);
	return sp;
}

/*
 * Read @rb from its spool rather than by a range: when it has one (a reply
 * was the whole blob), or when its host's last answer to a range was the
 * whole blob and @rb has had no 206 of its own.
 */
static bool spool_first(struct lp_reg_blob *rb)
{
	return blob_has_spool(rb) ||
	       (!atomic_load(&rb->ranged) &&
		reg_caps_spool(lp_reg_caps(rb->reg), first_host(rb)));
}

/*
 * progress of a read of buf[got, len) told as progress of buf[0, len),
 * and how much of it was told
 */
struct progress_from {
	lp_blob_progress_fn fn;
	void *arg;
	size_t got;
	size_t told; /* of buf[got, len) */
};

static int progress_from(void *arg, size_t done)
{
	struct progress_from *p = arg;

	p->told = done;
	return p->fn(p->arg, p->got + done);
}

/*
 * reg_spool_read() of @len bytes at @off whose first @got are in @buf (a
 * 206 gave them before the whole blob came), for read number @read: the
 * bytes it gives (all, or those told to @fn before a failure) are noted
 * with the hosts that fed the spool. Not after -EAGAIN: that spool was
 * emptied, and the hosts that fed it were rejected then (spool_bad()).
 */
static int spool_read_from(struct lp_reg_blob *rb, struct reg_spool *sp,
			   uint8_t *buf, size_t len, uint64_t off, size_t got,
			   lp_blob_progress_fn fn, void *arg,
			   unsigned long read, struct lp_err *err)
{
	struct progress_from p = { fn, arg, got, 0 };
	uint64_t eps;
	int r;

	r = reg_spool_read(sp, buf + got, len - got, off + got,
			   fn ? progress_from : NULL, &p, err);
	if (r == 0)
		p.told = len - got;
	if (r == -EAGAIN || !p.told)
		return r;
	pthread_mutex_lock(&rb->lock);
	eps = rb->spool_eps;
	pthread_mutex_unlock(&rb->lock);
	served_note(rb, read, eps, off + got, p.told);
	return r;
}

/* one Range request, retried from where it broke off; @fn may be NULL */
static int pread_range(struct lp_reg_blob *rb, void *buf, size_t len,
		       uint64_t off, lp_blob_progress_fn fn, void *arg,
		       struct lp_err *err)
{
	char range[64];
	struct range_sink s = { .rb = rb,
				.buf = buf,
				.off = off,
				.len = len,
				.range = range,
				.range_size = sizeof(range),
				.fn = fn,
				.arg = arg,
				.read = read_number(rb) };
	struct lp_reg_sink sink = { .begin = range_begin,
				    .write = range_write,
				    .finish = range_finish,
				    .reset = range_reset,
				    .complete = range_complete,
				    .stopped = range_stopped,
				    .ctx = &s };
	struct range_out *o = NULL;
	struct lp_reg_resp *resp;
	const char *gated = NULL;
	int r;

	r = check_range(rb, off, len, err);
	if (r < 0 || !len)
		goto out;
	/* nothing known of the host's ranges: one read at a time finds out */
	if (!atomic_load(&rb->ranged) && !blob_has_spool(rb)) {
		gated = first_host(rb);
		if (!reg_caps_gate(lp_reg_caps(rb->reg), gated))
			gated = NULL;
	}
	if (spool_first(rb) && (s.feed = blob_spool(rb))) {
		/* a range-less host: from the spool, as its bytes come in */
		r = spool_read_from(rb, s.feed, buf, len, off, 0, fn, arg,
				    s.read, err);
		goto out;
	}
	o = malloc(sizeof(*o));
	if (!o) {
		r = -ENOMEM;
		goto out;
	}
	resp = &o->resp;
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
		 (unsigned long long)off, (unsigned long long)(off + len - 1));
	s.o = o;
	r = range_get(rb, range, &sink, o, err);
	range_note(&s); /* what the last host asked sent */
	if (s.join && (s.feed = blob_spool(rb))) {
		/* a whole blob, as another reply already feeding the spool;
		 * a 206 before it (cut short) gave buf[0, got) */
		r = spool_read_from(rb, s.feed, buf, len, off, s.got, fn, arg,
				    s.read, err);
		goto out;
	}
	r = range_reply(rb, "blob range", range, resp, o->url, r, err);
	if (s.feed) {
		/* the reply was the whole blob, taken into the spool; a 206
		 * before it (cut short) gave buf[0, got): the rest from there */
		r = reg_spool_release(s.feed, r, err, err);
		if (r == 0)
			r = spool_read_from(rb, s.feed, buf, len, off, s.got,
					    fn, arg, s.read, err);
		goto out;
	}
	if (r < 0)
		goto out;
	if (s.got != len)
		r = lp_err_set_ex(err, -EIO, LP_ERR_RETRYABLE, resp->status,
				  "blob %s/%s@%s: %zu of %zu bytes at %llu",
				  rb->ref.host, rb->ref.repo, rb->name, s.got,
				  len, (unsigned long long)off);
out:
	if (gated)
		reg_caps_gate_end(lp_reg_caps(rb->reg), gated);
	free(o);
	return r;
}

int lp_reg_blob_pread(struct lp_reg_blob *rb, void *buf, size_t len,
		      uint64_t off, struct lp_err *err)
{
	return pread_range(rb, buf, len, off, NULL, NULL, err);
}

/* ---- the tail, by a suffix range ---- */

struct tail_sink {
	uint8_t *buf;
	size_t want; /* room in buf */
	uint64_t hint; /* the size the caller knows, 0: unknown */
	uint64_t total; /* the blob's size, from the reply */
	size_t len; /* bytes the reply carries */
	size_t got;
	bool began; /* tail_begin() accepted the reply */
	bool refused; /* a 200 with more than @want bytes: stopped */
	int64_t refused_len; /* its Content-Length, -1 when not sent */
	struct lp_reg_blob *rb;
	const struct range_out *o; /* the reply and the host it comes from */
	char *range; /* the request's Range header */
	size_t range_size;
	struct reg_spool *feed; /* the reply goes to this spool instead */
	struct lp_reg_sink fsink; /* its sink, when feed is set */
};

/* a whole blob larger than the tail: into the spool when the host is
 * spooled and the blob's size is known, else -EOPNOTSUPP (stop) */
static int tail_whole(struct tail_sink *s, const struct lp_reg_resp *resp)
{
	uint64_t total = resp->content_length >= 0 ?
				 (uint64_t)resp->content_length :
				 s->hint;

	if (!total || (s->hint && total != s->hint))
		return -EOPNOTSUPP;
	s->rb->size = total; /* the blob is not shared yet */
	s->feed = whole_reply(s->rb, s->o, total - s->want, s->want, s->range,
			      s->range_size, &s->fsink);
	if (!s->feed)
		return -EOPNOTSUPP;
	s->total = total;
	s->len = s->want;
	return s->fsink.begin(s->fsink.ctx, resp);
}

static int tail_begin(void *ctx, const struct lp_reg_resp *resp)
{
	struct tail_sink *s = ctx;
	uint64_t t;
	int r;

	if (s->feed) {
		spool_fed_by(s->rb, s->o->ep); /* maybe the next host */
		return s->fsink.begin(s->fsink.ctx, resp);
	}
	r = reg_reply_check(resp, REG_RANGE_SUFFIX, s->want, s->hint, &t);
	if (r < 0)
		return r;
	if (r == 200) {
		/* Range ignored: fine for a blob that fits, else stop now */
		if (resp->content_length >= 0 &&
		    (uint64_t)resp->content_length <= s->want) {
			s->total = (uint64_t)resp->content_length;
			s->len = (size_t)s->total;
			s->began = true;
			return 0;
		}
		r = tail_whole(s, resp);
		if (r != -EOPNOTSUPP)
			return r;
		s->refused = true;
		s->refused_len = resp->content_length;
		return -EOPNOTSUPP;
	}
	/* the last min(want, total) bytes */
	s->total = t;
	s->len = (size_t)lp_min_u64(s->want, t);
	s->began = true;
	if (s->len < t) {
		atomic_store(&s->rb->ranged, true);
		reg_caps_note(lp_reg_caps(s->rb->reg), s->o->host,
			      REG_SEEN_RANGE, resp->status);
	}
	return 0;
}

static int tail_write(void *ctx, const void *data, size_t len)
{
	struct tail_sink *s = ctx;

	if (s->feed)
		return s->fsink.write(s->fsink.ctx, data, len);
	if (len > s->len - s->got)
		return -EPROTO; /* more than the reply announced */
	memcpy(s->buf + s->got, data, len);
	s->got += len;
	return 0;
}

static int tail_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct tail_sink *s = ctx;

	if (s->feed)
		return s->fsink.finish(s->fsink.ctx, resp);
	if (resp->status != 200 && resp->status != 206)
		return -EPROTO;
	if (!s->began) {
		/* no body, so begin never ran: only an empty blob may say so */
		if (resp->status != 200 || resp->content_length != 0 || s->hint)
			return -EPROTO;
		s->total = 0;
		s->len = 0;
	}
	return s->got == s->len ? 0 : -EAGAIN;
}

static bool tail_complete(void *ctx)
{
	struct tail_sink *s = ctx;

	if (s->feed)
		return s->fsink.complete(s->fsink.ctx);
	return s->began && s->got == s->len;
}

static void tail_reset(void *ctx)
{
	struct tail_sink *s = ctx;

	if (s->feed) {
		s->fsink.reset(s->fsink.ctx); /* the spool's missing tail */
		return;
	}
	s->got = 0;
	s->len = 0;
	s->total = 0;
	s->began = false;
	s->refused = false;
	s->refused_len = -1;
}

/* the total of a 416's "bytes * /TOTAL", or 0 */
static uint64_t unsatisfied_total(const char *cr)
{
	uint64_t t = 0;
	const char *p;

	if (strncasecmp(cr, "bytes */", 8))
		return 0;
	for (p = cr + 8; *p >= '0' && *p <= '9'; p++) {
		if (t > (UINT64_MAX - 9) / 10)
			return 0;
		t = t * 10 + (uint64_t)(*p - '0');
	}
	return p == cr + 8 || (*p && *p != '\r' && *p != '\n' && *p != ' ') ?
		       0 :
		       t;
}

int lp_reg_blob_open_tail(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *digest, uint64_t size,
			  void *buf, size_t want, size_t *ret_len,
			  struct lp_reg_blob **ret_rb, struct lp_err *err)
{
	struct tail_sink s = { .buf = buf, .want = want, .hint = size };
	struct lp_reg_sink sink = { .begin = tail_begin,
				    .write = tail_write,
				    .finish = tail_finish,
				    .reset = tail_reset,
				    .complete = tail_complete,
				    .ctx = &s };
	struct range_out *o = NULL;
	struct lp_reg_resp *resp;
	struct lp_reg_blob *rb = NULL;
	uint64_t total = 0;
	char range[64];
	size_t n;
	int r;

	tail_reset(&s);
	if (!want || want > LP_REG_TAIL_MAX) {
		r = lp_err_set(err, -EINVAL, "tail of %zu bytes (max %d)", want,
			       LP_REG_TAIL_MAX);
		goto out;
	}
	r = lp_reg_blob_open(reg, ref, digest, size, &rb);
	if (r < 0)
		goto out;
	o = malloc(sizeof(*o));
	if (!o) {
		r = -ENOMEM;
		goto out;
	}
	resp = &o->resp;
	snprintf(range, sizeof(range), "Range: bytes=-%zu", want);
	s.rb = rb;
	s.o = o;
	s.range = range;
	s.range_size = sizeof(range);
	r = range_get(rb, range, &sink, o, err);
	if (s.feed) {
		/* the whole blob, taken into the spool: the tail from there */
		r = range_reply(rb, "blob", range, resp, o->url, r, err);
		r = reg_spool_release(s.feed, r, err, err);
		if (r == 0)
			r = spool_read_from(rb, s.feed, buf, s.len,
					    s.total - s.len, 0, NULL, NULL,
					    read_number(rb), err);
		if (r < 0)
			goto out;
		*ret_len = s.len;
		goto done;
	}
	if (r == -EOPNOTSUPP && s.refused) {
		/* a whole blob larger than the tail: ask for the range */
		total = s.refused_len >= 0 ? (uint64_t)s.refused_len : size;
		if (size && total != size) {
			r = lp_err_set(err, -EPROTO,
				       "blob %s/%s@%s: HTTP 200 of %llu bytes "
				       "for a blob of %llu",
				       rb->ref.host, rb->ref.repo, rb->name,
				       (unsigned long long)total,
				       (unsigned long long)size);
			goto out;
		}
		lp_log_debug("blob %s: suffix range answered by a whole blob",
			     rb->name);
		goto by_range;
	}
	if (r == 0 && resp->status == 416) {
		/* only an empty blob cannot serve a suffix; or a quirk */
		total = unsatisfied_total(resp->content_range);
		if (size && total && total != size) {
			r = lp_err_set(
				err, -EPROTO,
				"blob %s/%s@%s: HTTP 416 says %llu bytes "
				"for a blob of %llu",
				rb->ref.host, rb->ref.repo, rb->name,
				(unsigned long long)total,
				(unsigned long long)size);
			goto out;
		}
		if (!total)
			total = size;
		lp_log_debug("blob %s: suffix range refused (416, \"%s\")",
			     rb->name, resp->content_range);
		goto by_range;
	}
	r = range_reply(rb, "blob tail", range, resp, o->url, r, err);
	if (r < 0)
		goto out;
	rb->size = s.total;
	*ret_len = s.len;
	served_by(rb, read_number(rb), o->ep, s.total - s.len, s.len);
	goto done;
by_range:
	if (!total) {
		r = lp_err_set(err, -EOPNOTSUPP,
			       "blob %s/%s@%s: no size known and the registry "
			       "does not answer a suffix range (HTTP %ld)",
			       rb->ref.host, rb->ref.repo, rb->name,
			       resp->status);
		goto out;
	}
	rb->size = total;
	n = (size_t)lp_min_u64(want, total);
	r = lp_reg_blob_pread(rb, buf, n, total - n, err);
	if (r < 0)
		goto out;
	*ret_len = n;
done:
	*ret_rb = rb;
	rb = NULL;
out:
	lp_reg_blob_unref(rb);
	free(o);
	return r;
}

/* ---- several ranges ---- */

struct multi_sink {
	struct lp_reg_blob *rb;
	const struct lp_reg_range *ranges;
	size_t n;
	size_t *filled; /* bytes filled per range */
	struct lp_buf body;
	bool multipart;
	char boundary[LP_REG_BOUNDARY_MAX + 1];
	uint64_t a, b; /* single-part 206: its Content-Range */
};

static int multi_begin(void *ctx, const struct lp_reg_resp *resp)
{
	struct multi_sink *m = ctx;
	uint64_t t;

	if (resp->status != 206)
		return -EOPNOTSUPP; /* 200: the whole blob; fall back */
	if (!strncasecmp(resp->content_type, "multipart/", 10)) {
		m->multipart = true;
		return lp_reg_multipart_boundary(
			resp->content_type, m->boundary, sizeof(m->boundary));
	}
	/* one part: the server merged the ranges into one span */
	m->multipart = false;
	if (lp_reg_content_range_parse(resp->content_range,
				       strlen(resp->content_range), &m->a,
				       &m->b, &t) < 0 ||
	    (t != UINT64_MAX && t != m->rb->size))
		return -EPROTO;
	return 0;
}

static int multi_write(void *ctx, const void *data, size_t len)
{
	struct multi_sink *m = ctx;

	return lp_buf_append(&m->body, data, len);
}

static void multi_reset(void *ctx)
{
	struct multi_sink *m = ctx;

	lp_buf_reset(&m->body);
	memset(m->filled, 0, m->n * sizeof(*m->filled));
}

/* copy the parts of requested ranges that a part [off, off+plen) covers */
static int multi_part(void *ctx, uint64_t off, uint64_t plen, uint64_t total,
		      const void *data, size_t len)
{
	struct multi_sink *m = ctx;
	size_t i;

	if (total != UINT64_MAX && total != m->rb->size)
		return -EPROTO;
	for (i = 0; i < m->n; i++) {
		const struct lp_reg_range *g = &m->ranges[i];

		/* only whole ranges count: a part must cover one entirely */
		if (g->off < off || g->off + g->len > off + plen)
			continue;
		memcpy(g->buf, (const uint8_t *)data + (g->off - off), g->len);
		m->filled[i] = g->len;
	}
	return 0;
}

static int multi_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct multi_sink *m = ctx;
	size_t i;
	int r;

	if (resp->status == 200)
		return -EOPNOTSUPP; /* an empty 200: fall back as well */
	if (resp->status != 206)
		return -EPROTO;
	if (m->multipart) {
		r = lp_reg_multipart_parse(
			m->body.data ? m->body.data : (uint8_t *)"",
			m->body.len, m->boundary, multi_part, m);
		if (r < 0)
			return r == -EPROTO ? -EAGAIN : r;
	} else {
		if (m->body.len != m->b - m->a + 1)
			return -EAGAIN;
		r = multi_part(m, m->a, m->body.len, UINT64_MAX, m->body.data,
			       m->body.len);
		if (r < 0)
			return r;
	}
	for (i = 0; i < m->n; i++)
		if (m->filled[i] != m->ranges[i].len)
			return -EPROTO; /* a range the reply left out */
	return 0;
}

static int singles(struct lp_reg_blob *rb, const struct lp_reg_range *g,
		   size_t n, struct lp_err *err)
{
	size_t i;
	int r = 0;

	for (i = 0; i < n && !r; i++)
		r = lp_reg_blob_pread(rb, g[i].buf, g[i].len, g[i].off, err);
	return r;
}

int lp_reg_blob_pread_multi(struct lp_reg_blob *rb,
			    const struct lp_reg_range *ranges, size_t n,
			    struct lp_err *err)
{
	struct multi_sink m = { .rb = rb, .ranges = ranges, .n = n };
	struct lp_reg_sink sink = { .begin = multi_begin,
				    .write = multi_write,
				    .finish = multi_finish,
				    .reset = multi_reset,
				    .ctx = &m };
	struct range_out *o = NULL;
	struct lp_reg_resp *resp = NULL;
	struct lp_buf range;
	struct lp_err tmp;
	uint64_t sum = 0;
	unsigned long read;
	size_t i;
	int r = -EINVAL;

	lp_buf_init(&range, 64 + LP_REG_MULTI_MAX * 44);
	if (n > LP_REG_MULTI_MAX) {
		r = lp_err_set(err, -EINVAL, "blob %s: %zu ranges (max %d)",
			       rb->name, n, LP_REG_MULTI_MAX);
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = check_range(rb, ranges[i].off, ranges[i].len, err);
		if (r < 0)
			goto out;
		if (!ranges[i].len ||
		    (i &&
		     ranges[i].off < ranges[i - 1].off + ranges[i - 1].len)) {
			r = lp_err_set(err, -EINVAL,
				       "blob %s: ranges empty, unsorted or "
				       "overlapping",
				       rb->name);
			goto out;
		}
		sum += ranges[i].len;
	}
	if (n <= 1 || spool_first(rb) ||
	    !reg_caps_multi(lp_reg_caps(rb->reg), first_host(rb))) {
		r = singles(rb, ranges, n, err);
		goto out;
	}
	r = -ENOMEM;
	m.filled = calloc(n, sizeof(*m.filled));
	o = malloc(sizeof(*o));
	if (!m.filled || !o)
		goto out;
	resp = &o->resp;
	/* the reply: our bytes plus per-part framing; a merged span may
	 * carry the gaps too, bounded by the blob's own extent */
	lp_buf_init(&m.body,
		    (size_t)lp_min_u64(ranges[n - 1].off + ranges[n - 1].len -
					       ranges[0].off +
					       n * LP_REG_MULTIPART_OVERHEAD,
				       sum + n * LP_REG_MULTIPART_OVERHEAD +
					       LP_REG_MULTIPART_OVERHEAD +
					       (uint64_t)16 * LP_MIB));
	r = lp_buf_printf(&range, "Range: bytes=");
	for (i = 0; i < n && !r; i++)
		r = lp_buf_printf(&range, "%s%llu-%llu", i ? "," : "",
				  (unsigned long long)ranges[i].off,
				  (unsigned long long)(ranges[i].off +
						       ranges[i].len - 1));
	if (r < 0)
		goto out;
	lp_err_clear(&tmp);
	r = range_get(rb, (const char *)range.data, &sink, o, &tmp);
	if ((r == -EOPNOTSUPP && resp->status == 200) ||
	    (r == 0 && (resp->status == 400 || resp->status == 501))) {
		/* no multi-range here (GHCR: 501): remember, one by one */
		reg_caps_note(lp_reg_caps(rb->reg), o->host,
			      REG_SEEN_MULTI_REFUSED, resp->status);
		r = singles(rb, ranges, n, err);
		goto out;
	}
	if (r < 0) {
		if (tmp.msg[0])
			lp_err_set_from(err, &tmp, r, "%s", tmp.msg);
		else
			lp_err_set(err, r,
				   "blob %s/%s@%s: bad reply to %zu ranges "
				   "(HTTP %ld, %s)",
				   rb->ref.host, rb->ref.repo, rb->name, n,
				   resp->status, resp->content_type);
		goto out;
	}
	if (resp->status != 206) {
		r = lp_reg_status_err(
			&(struct lp_reg_req){ .url = o->url,
					      .what = "blob ranges" },
			resp, err);
		goto out;
	}
	if (m.multipart)
		reg_caps_note(lp_reg_caps(rb->reg), o->host, REG_SEEN_MULTI,
			      resp->status);
	read = read_number(rb);
	for (i = 0; i < n; i++)
		served_by(rb, read, o->ep, ranges[i].off, ranges[i].len);
out:
	lp_buf_release(&m.body);
	lp_buf_release(&range);
	free(m.filled);
	free(o);
	return r;
}

/* ---- as a plain blob source ---- */

/*
 * The blob interface's codes (lp_blob.h): a registry that did not deliver
 * the bytes is -EIO to a blob reader, whatever the HTTP status was; @err
 * keeps the registry's reason, status and retryability. @keep is a code
 * the caller's own progress function returned: passed on as it is.
 */
static int source_code(int r, int keep, struct lp_err *err)
{
	int c = r;

	if (r < 0 && r != keep && r != -ENOMEM && r != -EBADMSG)
		c = -EIO;
	if (err && err->msg[0] && err->code == r)
		err->code = c;
	return c;
}

static int blob_pread(void *ctx, void *buf, size_t len, uint64_t off,
		      struct lp_err *err)
{
	return source_code(lp_reg_blob_pread(ctx, buf, len, off, err), 0, err);
}

/* a progress function's own error, told apart from the registry's */
struct progress_shim {
	lp_blob_progress_fn fn;
	void *arg;
	int r;
};

static int shim_progress(void *arg, size_t done)
{
	struct progress_shim *p = arg;

	p->r = p->fn(p->arg, done);
	return p->r;
}

static int blob_pread_stream(void *ctx, void *buf, size_t len, uint64_t off,
			     lp_blob_progress_fn fn, void *arg,
			     struct lp_err *err)
{
	struct progress_shim shim = { fn, arg, 0 };
	int r;

	r = pread_range(ctx, buf, len, off, shim_progress, &shim, err);
	return source_code(r, shim.r, err);
}

/* several ranges: one multi-range request per LP_REG_MULTI_MAX of them */
static int blob_pread_multi(void *ctx, const struct lp_blob_range *ranges,
			    size_t n, struct lp_err *err)
{
	struct lp_reg_range g[LP_REG_MULTI_MAX];
	struct lp_reg_blob *rb = ctx;
	size_t i, k;
	int r = 0;

	for (i = 0; i < n && r == 0; i += k) {
		for (k = 0; k < LP_REG_MULTI_MAX && i + k < n; k++) {
			g[k].off = ranges[i + k].off;
			g[k].len = ranges[i + k].len;
			g[k].buf = ranges[i + k].buf;
		}
		r = lp_reg_blob_pread_multi(rb, g, k, err);
	}
	return source_code(r, 0, err);
}

static void blob_close(void *ctx)
{
	lp_reg_blob_unref(ctx);
}

static void blob_reject(void *ctx, uint64_t off, uint64_t len)
{
	lp_reg_blob_reject(ctx, off, len);
}

static const struct lp_blob_ops reg_blob_ops = {
	.pread = blob_pread,
	.close = blob_close,
	.pread_multi = blob_pread_multi,
	.pread_stream = blob_pread_stream,
	.reject = blob_reject,
};

int lp_reg_blob_as_blob(struct lp_reg_blob *rb, struct lp_blob **ret_blob)
{
	int r;

	lp_reg_blob_ref(rb);
	r = lp_blob_new(&reg_blob_ops, rb, rb->size, rb->name, ret_blob);
	if (r < 0)
		lp_reg_blob_unref(rb);
	return r;
}

int lp_reg_open_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size,
		     struct lp_blob **ret_blob)
{
	struct lp_reg_blob *rb = NULL;
	int r;

	r = lp_reg_blob_open(reg, ref, digest, size, &rb);
	if (r < 0)
		return r;
	r = lp_reg_blob_as_blob(rb, ret_blob);
	lp_reg_blob_unref(rb);
	return r;
}
