// SPDX-License-Identifier: Apache-2.0
/*
 * The client object and its one HTTP exchange function. Curl easy handles
 * are pooled and share one connection cache, DNS cache and TLS session
 * cache (a curl share handle), so requests from any thread reuse
 * connections. lp_reg_do() is the only place that retries, backs off and
 * authenticates: anonymous first, then on 401 the challenge decides Basic
 * (credentials from lp_reg_set_credentials or the docker config) or a Bearer
 * token, cached per host and scope. A token lives as long as its reply says
 * (expires_in from issued_at): it is fetched again a little before it
 * expires, using the host's last challenge, and at once when the registry
 * answers 401 to it. Either way one thread fetches per host and scope (a
 * single flight): the others wait for its token, so that a burst of readers
 * meeting an expired token costs one token request, not one each.
 *
 * Lock order: lock, then nothing; pool_lock and share_locks[] are leaves.
 * Credential helpers and token requests run without lock held; token_cond
 * is waited on with lock held.
 */
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lp_buf.h"
#include "lp_base64.h"
#include "lp_common.h"
#include "lp_hosts.h"
#include "lp_json.h"
#include "lp_log.h"
#include "reg_int.h"

#define LP_REG_TOKENS_MAX 64 /* cached tokens per host */
#define LP_REG_HOSTS_MAX 256 /* hosts with auth state */
#define LP_REG_BACKOFF_BASE_MS 100
#define LP_REG_BACKOFF_CAP_MS 5000
#define LP_REG_TOKEN_MARGIN_MAX_MS 30000 /* refresh this early at most */
#define LP_REG_TOKEN_MARGIN_DIV 5 /* ...or a fifth of a token's life */
/* a failed token fetch is the answer for this long: requests that come
 * just after it (a burst's stragglers, callers' own retries) fail with its
 * error instead of each asking the token server again */
#define LP_REG_TOKEN_FAIL_HOLD_MS 1000
#define LP_REG_HEADERS_MAX 16 /* request headers */

/* one scope's token of a host; all fields protected by lp_reg.lock */
struct reg_token {
	char scope[LP_REG_AUTH_FIELD_MAX];
	char *token; /* NULL until the first fetch succeeds */
	long expires_ms; /* CLOCK_MONOTONIC ms: not sent after this */
	long refresh_ms; /* fetch a new one from here on */
	uint64_t gen; /* lp_reg.token_gen when stored; 0: none */
	uint64_t auth_id; /* whose: lp_reg_auth.id, 0: the host's own */
	bool fetching; /* a thread is fetching it: wait on token_cond */
	unsigned long attempts; /* fetches finished, failed or not */
	int last_err; /* the last fetch's result */
	long failed_ms; /* CLOCK_MONOTONIC ms when it failed (last_err < 0) */
	struct reg_token *next;
};

struct reg_host {
	char host[LP_REG_HOST_MAX];
	enum lp_reg_auth_scheme scheme; /* 0: anonymous so far */
	bool cred_loaded;
	bool have_cred;
	bool explicit_cred;
	struct lp_reg_cred cred;
	struct reg_token *tokens;
	unsigned int n_tokens;
	/* the last Bearer challenge: where to renew a token before it
	 * expires; NULL until the host has sent one */
	struct lp_reg_challenge *challenge;
	struct reg_host *next;
};

struct lp_reg {
	atomic_uint refs;
	struct lp_reg_opts o; /* strings below are owned copies */
	char *ca_file, *config_dir, *platform, *user_agent, *hosts_dir;
	char *spool_dir;
	char *sys_cainfo; /* curl's built-in CA bundle path, or NULL */
	char **insecure; /* NULL-ended */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[LP_REG_POOL_MAX]; /* protected by pool_lock */
	size_t n_pool; /* protected by pool_lock */
	pthread_mutex_t lock;
	struct reg_host *hosts; /* protected by lock */
	unsigned int n_hosts; /* protected by lock */
	/* the hosts of each registry spoken to (endpoints.c) */
	struct reg_endpoints *eps; /* protected by lock */
	/* one look at the host configuration files at a time; callers that
	 * come while one runs wait for its list instead of taking (and a
	 * blob pinning) the one it replaces */
	pthread_mutex_t reload_lock;
	atomic_bool reloading;
	unsigned int n_eps; /* protected by lock */
	uint64_t token_gen; /* protected by lock: last token's gen */
	uint64_t token_fetches; /* protected by lock: token requests */
	pthread_cond_t token_cond; /* a token fetch ended (with lock) */
	bool curl_init;
	struct reg_caps *caps; /* what each host can do (caps.c) */
};

/*
 * One reference's credentials (lp_reg_ref.auth): immutable once made, so
 * read without a lock; @id keys the tokens fetched with them.
 */
struct lp_reg_auth {
	atomic_uint refs;
	uint64_t id; /* unique per handle, never 0 */
	char host[LP_REG_HOST_MAX]; /* the only host they are sent to */
	struct lp_reg_cred cred;
};

static atomic_uint_fast64_t auth_ids = 1;

int lp_reg_auth_new(const char *host, const char *user, const char *secret,
		    struct lp_reg_auth **ret)
{
	struct lp_reg_auth *a;

	if (strlen(user) >= LP_REG_CRED_MAX ||
	    strlen(secret) >= LP_REG_CRED_MAX ||
	    strlen(host) >= LP_REG_HOST_MAX)
		return -EFBIG;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	atomic_init(&a->refs, 1);
	a->id = atomic_fetch_add(&auth_ids, 1);
	memcpy(a->host, host, strlen(host) + 1);
	memcpy(a->cred.user, user, strlen(user) + 1);
	memcpy(a->cred.secret, secret, strlen(secret) + 1);
	*ret = a;
	return 0;
}

struct lp_reg_auth *lp_reg_auth_ref(struct lp_reg_auth *a)
{
	if (a)
		atomic_fetch_add(&a->refs, 1);
	return a;
}

void lp_reg_auth_unref(struct lp_reg_auth *a)
{
	if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* the credential handle @ref's requests use: NULL when none, or when the
 * request goes to another host than the one it was given for (a mirror) */
static const struct lp_reg_auth *ref_auth(const struct lp_reg_ref *ref)
{
	if (ref && ref->auth && !strcmp(ref->auth->host, ref->host))
		return ref->auth;
	return NULL;
}

/* the identity keying @ref's tokens: its handle's, else 0 (the host's) */
static uint64_t ref_auth_id(const struct lp_reg_ref *ref)
{
	const struct lp_reg_auth *a = ref_auth(ref);

	return a ? a->id : 0;
}

/* the shared monotonic clock (lp_common.h) as this file counts time */
static inline long now_ms(void)
{
	return (long)lp_mono_ms();
}

void lp_reg_opts_init(struct lp_reg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->loopback_plain_http = true;
	o->connect_timeout_ms = 10000;
	o->low_speed_time_s = 30;
	o->low_speed_limit = 1;
	o->request_timeout_ms = 60000;
	o->max_attempts = 5;
	o->retry_budget_ms = 30000;
	o->hosts_recheck_ms = LP_REG_HOSTS_RECHECK_MS;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access,
		       void *userp)
{
	struct lp_reg *reg = userp;

	pthread_mutex_lock(&reg->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct lp_reg *reg = userp;

	pthread_mutex_unlock(&reg->share_locks[data]);
}

static int dup_opt(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* drop @t's token string (wiped) */
static void token_free_str(struct reg_token *t)
{
	if (t->token) {
		explicit_bzero(t->token, strlen(t->token));
		free(t->token);
		t->token = NULL;
	}
}

static void token_free(struct reg_token *t)
{
	if (!t)
		return;
	token_free_str(t);
	free(t);
}

static void reg_destroy(struct lp_reg *reg)
{
	struct reg_host *h, *hn;
	struct reg_token *t, *tn;
	struct reg_endpoints *e, *en;
	size_t i;

	for (e = reg->eps; e; e = en) {
		en = e->next;
		reg_endpoints_free(e);
	}
	for (i = 0; i < reg->n_pool; i++)
		curl_easy_cleanup(reg->pool[i]);
	if (reg->share)
		curl_share_cleanup(reg->share);
	for (h = reg->hosts; h; h = hn) {
		hn = h->next;
		for (t = h->tokens; t; t = tn) {
			tn = t->next;
			token_free(t);
		}
		explicit_bzero(&h->cred, sizeof(h->cred));
		free(h->challenge);
		free(h);
	}
	for (i = 0; reg->insecure && reg->insecure[i]; i++)
		free(reg->insecure[i]);
	free(reg->insecure);
	free(reg->ca_file);
	free(reg->config_dir);
	free(reg->platform);
	free(reg->user_agent);
	free(reg->spool_dir);
	reg_caps_free(reg->caps);
	free(reg->hosts_dir);
	free(reg->sys_cainfo);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&reg->share_locks[i]);
	pthread_mutex_destroy(&reg->pool_lock);
	pthread_mutex_destroy(&reg->reload_lock);
	pthread_mutex_destroy(&reg->lock);
	pthread_cond_destroy(&reg->token_cond);
	if (reg->curl_init)
		curl_global_cleanup();
	free(reg);
}

/* curl's built-in CA bundle (a host's `ca` files are added to it) */
static int default_cainfo(char **ret)
{
	CURL *h = curl_easy_init();
	char *p = NULL;
	int r = 0;

	*ret = NULL;
	if (!h)
		return -ENOMEM;
	if (curl_easy_getinfo(h, CURLINFO_CAINFO, &p) == CURLE_OK && p &&
	    !(*ret = strdup(p)))
		r = -ENOMEM;
	curl_easy_cleanup(h);
	return r;
}

int lp_reg_new(const struct lp_reg_opts *opts, struct lp_reg **ret_reg)
{
	struct lp_reg *reg;
	size_t i, n = 0;
	int r = -ENOMEM;

	reg = calloc(1, sizeof(*reg));
	if (!reg)
		goto out;
	atomic_init(&reg->refs, 1);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&reg->share_locks[i], NULL);
	pthread_mutex_init(&reg->pool_lock, NULL);
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->reload_lock, NULL);
	pthread_cond_init(&reg->token_cond, NULL);
	if (opts)
		reg->o = *opts;
	else
		lp_reg_opts_init(&reg->o);
	if (dup_opt(reg->o.ca_file, &reg->ca_file) < 0 ||
	    dup_opt(reg->o.docker_config_dir, &reg->config_dir) < 0 ||
	    dup_opt(reg->o.platform, &reg->platform) < 0 ||
	    dup_opt(reg->o.spool_dir, &reg->spool_dir) < 0 ||
	    reg_caps_new(&reg->caps) < 0 ||
	    dup_opt(reg->o.registry_config_dir, &reg->hosts_dir) < 0 ||
	    dup_opt(reg->o.user_agent ? reg->o.user_agent : "lazypull/0.1",
		    &reg->user_agent) < 0)
		goto out;
	reg->o.ca_file = reg->ca_file;
	reg->o.docker_config_dir = reg->config_dir;
	reg->o.platform = reg->platform;
	reg->o.registry_config_dir = reg->hosts_dir;
	reg->o.user_agent = reg->user_agent;
	reg->o.spool_dir = reg->spool_dir;
	while (reg->o.insecure_hosts && reg->o.insecure_hosts[n])
		n++;
	reg->insecure = calloc(n + 1, sizeof(char *));
	if (!reg->insecure)
		goto out;
	for (i = 0; i < n; i++)
		if (dup_opt(reg->o.insecure_hosts[i], &reg->insecure[i]) < 0)
			goto out;
	reg->o.insecure_hosts = (const char *const *)reg->insecure;
	if (!reg->o.max_attempts)
		reg->o.max_attempts = 1;
	/* thread-safe since curl 7.84 (CURL_VERSION_THREADSAFE) */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		r = -EIO;
		goto out;
	}
	reg->curl_init = true;
	r = default_cainfo(&reg->sys_cainfo);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	reg->share = curl_share_init();
	if (!reg->share)
		goto out;
	if (curl_share_setopt(reg->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(reg->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(reg->share, CURLSHOPT_USERDATA, reg) ||
	    curl_share_setopt(reg->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(reg->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(reg->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_SSL_SESSION)) {
		r = -EIO;
		goto out;
	}
	*ret_reg = reg;
	reg = NULL;
	r = 0;
out:
	if (reg)
		reg_destroy(reg);
	return r;
}

struct lp_reg *lp_reg_ref_client(struct lp_reg *reg)
{
	atomic_fetch_add(&reg->refs, 1);
	return reg;
}

void lp_reg_unref_client(struct lp_reg *reg)
{
	if (reg && atomic_fetch_sub(&reg->refs, 1) == 1)
		reg_destroy(reg);
}

void lp_reg_free(struct lp_reg *reg)
{
	lp_reg_unref_client(reg);
}

/* the auth state of @host, made on first use; called with lock held */
static struct reg_host *host_get(struct lp_reg *reg, const char *host)
{
	struct reg_host *h;

	for (h = reg->hosts; h; h = h->next)
		if (!strcmp(h->host, host))
			return h;
	if (reg->n_hosts >= LP_REG_HOSTS_MAX)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	snprintf(h->host, sizeof(h->host), "%s", host);
	h->next = reg->hosts;
	reg->hosts = h;
	reg->n_hosts++;
	return h;
}

int lp_reg_set_credentials(struct lp_reg *reg, const char *host,
			   const char *user, const char *secret)
{
	struct reg_host *h;
	int r = -ENOMEM;

	if (strlen(user) >= LP_REG_CRED_MAX ||
	    strlen(secret) >= LP_REG_CRED_MAX)
		return -EFBIG;
	pthread_mutex_lock(&reg->lock);
	h = host_get(reg, host);
	if (h) {
		memset(&h->cred, 0, sizeof(h->cred));
		memcpy(h->cred.user, user, strlen(user) + 1);
		memcpy(h->cred.secret, secret, strlen(secret) + 1);
		h->cred_loaded = h->have_cred = h->explicit_cred = true;
		r = 0;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

static bool host_plain_http(const struct lp_reg *reg, const char *host)
{
	return reg_plain_http(&reg->o, host);
}

/* the newest list of @host in the cache, and how many it holds (the
 * current one and the older ones still held); lock held */
static struct reg_endpoints *newest_locked(struct lp_reg *reg, const char *host,
					   unsigned int *ret_versions)
{
	struct reg_endpoints *e, *found = NULL;
	unsigned int n = 0;

	for (e = reg->eps; e; e = e->next) {
		if (strcmp(e->registry, host))
			continue;
		if (!found && !e->superseded)
			found = e;
		n++;
	}
	*ret_versions = n;
	return found;
}

/* newest_locked() with a reference for the caller */
static struct reg_endpoints *newest_get(struct lp_reg *reg, const char *host,
					unsigned int *ret_versions)
{
	struct reg_endpoints *e;

	pthread_mutex_lock(&reg->lock);
	e = newest_locked(reg, host, ret_versions);
	if (e)
		e->refs++;
	pthread_mutex_unlock(&reg->lock);
	return e;
}

const struct reg_endpoints *reg_endpoints_hold(struct lp_reg *reg,
					       const struct reg_endpoints *ce)
{
	struct reg_endpoints *e = (struct reg_endpoints *)ce;

	pthread_mutex_lock(&reg->lock);
	e->refs++;
	pthread_mutex_unlock(&reg->lock);
	return e;
}

void reg_endpoints_put(struct lp_reg *reg, const struct reg_endpoints *ce)
{
	struct reg_endpoints *e = (struct reg_endpoints *)ce, **pp;

	if (!e)
		return;
	pthread_mutex_lock(&reg->lock);
	/* the cache's reference keeps the current list: only a replaced one
	 * gets here with its last */
	if (--e->refs) {
		pthread_mutex_unlock(&reg->lock);
		return;
	}
	for (pp = &reg->eps; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			reg->n_eps--;
			break;
		}
	}
	pthread_mutex_unlock(&reg->lock);
	reg_endpoints_free(e);
}

/* whether @e's files are due for a look and changed (this caller then
 * resolves them: one caller per look); *@ret_stamp: their stamp */
static bool due_and_changed(struct lp_reg *reg, struct reg_endpoints *e,
			    uint64_t *ret_stamp)
{
	long now = (long)lp_mono_ms();
	long at = atomic_load(&e->check_at_ms);

	if (now < at)
		return false;
	atomic_store(&e->check_at_ms, now + reg->o.hosts_recheck_ms);
	switch (reg_endpoints_look(e, reg->o.registry_config_dir, ret_stamp)) {
	case REG_EPS_SAME:
		return false;
	case REG_EPS_SETTLING:
		atomic_store(&e->check_at_ms, now + LP_REG_HOSTS_SETTLE_MS);
		return false;
	case REG_EPS_CHANGED:
		break;
	}
	/* files that did not load, unchanged since: not again */
	return !*ret_stamp || *ret_stamp != atomic_load(&e->bad_stamp);
}

/* reg_endpoints() with reload_lock held: one look at a time */
static int endpoints_locked(struct lp_reg *reg, const struct lp_reg_ref *ref,
			    const struct reg_endpoints **ret_eps,
			    struct lp_err *err)
{
	struct reg_endpoints *e, *cur, *made = NULL;
	unsigned int versions;
	struct lp_err why = { 0 };
	uint64_t stamp = 0;
	int r = 0;

	/* a reference on the current list, given to the caller or back */
	e = newest_get(reg, ref->host, &versions);
	if (e && !due_and_changed(reg, e, &stamp))
		goto out;
	/* reads files: not under the lock; a racing thread's list wins */
	r = reg_endpoints_new(reg->o.registry_config_dir, ref->host, &reg->o,
			      reg->ca_file ? reg->ca_file : reg->sys_cainfo,
			      &made, e ? &why : err);
	if (r < 0 && e) {
		/* a broken edit: what worked goes on working */
		lp_log_warn("registry %s: its changed host configuration is "
			    "not used: %s; the hosts it had stay",
			    ref->host, lp_err_str(&why, r));
		atomic_store(&e->bad_stamp, stamp);
		r = 0;
		goto out;
	}
	if (r < 0)
		return r;
	if (e && reg_endpoints_same(e, made)) {
		/* touched, not changed (a file beside it, an editor's
		 * backup): the list goes on, with the files' new stamp */
		atomic_store(&e->stamp, atomic_load(&made->stamp));
		atomic_store(&e->stamped, atomic_load(&made->stamped));
		reg_endpoints_free(made);
		goto out;
	}
	if (e && versions >= LP_REG_EPS_VERSIONS_MAX) {
		if (!atomic_exchange(&e->capped, true))
			lp_log_warn("registry %s: its host configuration "
				    "changed, but open blobs hold %d older "
				    "versions of it: the change applies when "
				    "some of them close",
				    ref->host, LP_REG_EPS_VERSIONS_MAX - 1);
		reg_endpoints_free(made);
		goto out;
	}
	pthread_mutex_lock(&reg->lock);
	cur = newest_locked(reg, ref->host, &versions);
	if (cur == e && reg->n_eps < LP_REG_HOSTS_MAX) {
		atomic_init(&made->check_at_ms,
			    (long)lp_mono_ms() + reg->o.hosts_recheck_ms);
		made->refs = 2; /* the cache's and the caller's */
		made->next = reg->eps;
		reg->eps = made;
		reg->n_eps++;
		if (e) {
			/* the cache lets go; its blobs (and our caller's
			 * reference, put below) keep it */
			e->superseded = true;
			e->refs--;
		}
		cur = made;
		made = NULL;
	} else if (cur && cur != e) {
		cur->refs++; /* not reached while looks are serialised */
	}
	pthread_mutex_unlock(&reg->lock);
	if (e && cur && cur != e && !made)
		lp_log_info("registry %s: host configuration changed: %zu "
			    "host(s) from now on",
			    ref->host, cur->n);
	if (cur != e)
		reg_endpoints_put(reg, e);
	e = cur;
	if (!e)
		r = lp_err_set(err, -EFBIG,
			       "more than %d registries (LP_REG_HOSTS_MAX)",
			       LP_REG_HOSTS_MAX);
	reg_endpoints_free(made);
out:
	if (e)
		*ret_eps = e;
	return r;
}

int reg_endpoints(struct lp_reg *reg, const struct lp_reg_ref *ref,
		  const struct reg_endpoints **ret_eps, struct lp_err *err)
{
	struct reg_endpoints *e;
	unsigned int versions;
	int r;

	e = newest_get(reg, ref->host, &versions);
	/* not due and nobody looking: the list as it is */
	if (e && !atomic_load(&reg->reloading) &&
	    (long)lp_mono_ms() < atomic_load(&e->check_at_ms)) {
		*ret_eps = e;
		return 0;
	}
	reg_endpoints_put(reg, e);
	/* a caller that comes while another looks waits for the list that
	 * look leaves, instead of taking (and a blob pinning) the old one */
	pthread_mutex_lock(&reg->reload_lock);
	atomic_store(&reg->reloading, true);
	r = endpoints_locked(reg, ref, ret_eps, err);
	atomic_store(&reg->reloading, false);
	pthread_mutex_unlock(&reg->reload_lock);
	return r;
}

int lp_reg_url(const struct lp_reg *reg, const struct lp_reg_ref *ref,
	       const char *suffix, char *out, size_t size)
{
	int n = snprintf(out, size, "%s://%s/v2/%s/%s",
			 host_plain_http(reg, ref->host) ? "http" : "https",
			 ref->host, ref->repo, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* the wall clock in ms since the epoch (token issue times are on it) */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- curl handles ---- */

static CURL *pool_get(struct lp_reg *reg)
{
	CURL *h = NULL;

	pthread_mutex_lock(&reg->pool_lock);
	if (reg->n_pool)
		h = reg->pool[--reg->n_pool];
	pthread_mutex_unlock(&reg->pool_lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void pool_put(struct lp_reg *reg, CURL *h)
{
	if (!h)
		return;
	curl_easy_reset(h);
	pthread_mutex_lock(&reg->pool_lock);
	if (reg->n_pool < LP_REG_POOL_MAX) {
		reg->pool[reg->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&reg->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- one attempt ---- */

struct xfer {
	const struct lp_reg_req *req;
	struct lp_reg_resp *resp;
	uint64_t up_pos; /* request body bytes sent */
	bool body_started;
	bool sink_done; /* the sink took all it wanted */
	bool err_full; /* error body kept; rest dropped */
	int sink_rc;
	uint64_t auth_gen; /* the token sent (auth_header()) */
	int auth_rc; /* < 0: no token to send, its fetch failed: not sent */
};

static void resp_reset(struct lp_reg_resp *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->retry_after_s = -1;
}

static void copy_hval(char *dst, size_t size, const char *v, size_t len)
{
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
		       v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool hname(const char *line, size_t len, const char *name,
		  const char **val, size_t *vlen)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return false;
	*val = line + n + 1;
	*vlen = len - n - 1;
	return true;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	struct lp_reg_resp *resp = x->resp;
	size_t len = size * nmemb;
	const char *v;
	size_t vlen;
	char tmp[64];

	if (len > LP_REG_HEADER_MAX)
		return len; /* ignore absurd lines; never needed */
	if (len > 5 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', len);

		resp_reset(resp);
		if (sp && (size_t)(data + len - sp) > 3)
			resp->status = strtol(sp + 1, NULL, 10);
		return len;
	}
	if (hname(data, len, "Content-Type", &v, &vlen))
		copy_hval(resp->content_type, sizeof(resp->content_type), v,
			  vlen);
	else if (hname(data, len, "Content-Range", &v, &vlen))
		copy_hval(resp->content_range, sizeof(resp->content_range), v,
			  vlen);
	else if (hname(data, len, "Content-Length", &v, &vlen)) {
		/* known before the body: a sink's begin may decide on it */
		copy_hval(tmp, sizeof(tmp), v, vlen);
		if (tmp[0] && strspn(tmp, "0123456789") == strlen(tmp) &&
		    strlen(tmp) <= 18)
			resp->content_length = strtoll(tmp, NULL, 10);
	} else if (hname(data, len, "Docker-Content-Digest", &v, &vlen))
		copy_hval(resp->docker_digest, sizeof(resp->docker_digest), v,
			  vlen);
	else if (hname(data, len, "Location", &v, &vlen))
		copy_hval(resp->location, sizeof(resp->location), v, vlen);
	else if (hname(data, len, "Retry-After", &v, &vlen)) {
		copy_hval(tmp, sizeof(tmp), v, vlen);
		if (tmp[0] >= '0' && tmp[0] <= '9') {
			resp->retry_after_s = strtol(tmp, NULL, 10);
		} else {
			time_t t = curl_getdate(tmp, NULL);

			if (t > 0)
				resp->retry_after_s =
					t > time(NULL) ? t - time(NULL) : 0;
		}
	} else if (hname(data, len, "WWW-Authenticate", &v, &vlen)) {
		size_t cur = strlen(resp->www_auth);

		/* several challenges: join them as one list */
		if (cur && cur + 2 < sizeof(resp->www_auth)) {
			memcpy(resp->www_auth + cur, ", ", 3);
			cur += 2;
		}
		copy_hval(resp->www_auth + cur, sizeof(resp->www_auth) - cur, v,
			  vlen);
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	struct lp_reg_resp *resp = x->resp;
	struct lp_reg_sink *sink = x->req->sink;
	size_t len = size * nmemb;
	int r;

	if (resp->status < 200 || resp->status > 299) {
		size_t room = sizeof(resp->err_body) - 1 - resp->err_len;

		if (len > room) {
			memcpy(resp->err_body + resp->err_len, data, room);
			resp->err_len += room;
			x->err_full = true;
			return 0; /* enough to explain the error */
		}
		memcpy(resp->err_body + resp->err_len, data, len);
		resp->err_len += len;
		return len;
	}
	if (!sink)
		return len;
	if (!x->body_started) {
		x->body_started = true;
		if (sink->begin) {
			r = sink->begin(sink->ctx, resp);
			if (r < 0) {
				x->sink_rc = r;
				return 0;
			}
		}
	}
	r = sink->write(sink->ctx, data, len);
	if (r < 0) {
		x->sink_rc = r;
		return 0;
	}
	if (r > 0) {
		x->sink_done = true;
		return 0;
	}
	return len;
}

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	const struct lp_reg_req *req = x->req;
	size_t want = size * nmemb;
	ssize_t n;

	if (x->up_pos >= req->body_len)
		return 0;
	want = (size_t)lp_min_u64(want, req->body_len - x->up_pos);
	if (req->body) {
		memcpy(buf, (const char *)req->body + x->up_pos, want);
		n = (ssize_t)want;
	} else {
		n = pread(req->body_fd, buf, want,
			  (off_t)(req->body_off + x->up_pos));
		if (n <= 0) {
			x->sink_rc = n < 0 ? -errno : -EIO;
			return CURL_READFUNC_ABORT;
		}
	}
	x->up_pos += (uint64_t)n;
	return (size_t)n;
}

static const char *scope_of(const struct lp_reg_req *req, char *out,
			    size_t size)
{
	snprintf(out, size, "repository:%s:%s", req->ref->repo,
		 req->actions ? req->actions : "pull");
	return out;
}

static int basic_header(const struct lp_reg_cred *c, char *out, size_t size)
{
	char plain[2 * LP_REG_CRED_MAX + 2];
	int n, r;

	n = snprintf(plain, sizeof(plain), "%s:%s", c->user, c->secret);
	if (n < 0 || (size_t)n >= sizeof(plain))
		return -EFBIG;
	r = snprintf(out, size, "Authorization: Basic ");
	r = lp_base64_encode(plain, (size_t)n, out + r, size - (size_t)r);
	explicit_bzero(plain, sizeof(plain));
	return r;
}

static uint64_t bearer_header(struct lp_reg *reg, const struct lp_reg_req *req,
			      struct reg_host *h, const char *scope, char *out,
			      size_t size, int *ret_err);

/*
 * The Authorization header for @req, or "" (anonymous). Returns the gen of
 * the token sent (0: none), so that a 401 to it can tell whether another
 * thread has renewed it meanwhile. *@ret_err (left alone otherwise) is
 * -errno when the token had to be fetched and the fetch failed: the
 * request is not to be sent (bearer_header()).
 */
static uint64_t auth_header(struct lp_reg *reg, const struct lp_reg_req *req,
			    char *out, size_t size, int *ret_err)
{
	char scope[LP_REG_AUTH_FIELD_MAX];
	struct reg_host *h;
	uint64_t gen = 0;

	out[0] = '\0';
	if (req->external || !req->ref)
		return 0;
	scope_of(req, scope, sizeof(scope));
	pthread_mutex_lock(&reg->lock);
	for (h = reg->hosts; h; h = h->next)
		if (!strcmp(h->host, req->ref->host))
			break;
	if (!h)
		goto out;
	if (h->scheme == LP_REG_AUTH_BASIC && ref_auth(req->ref))
		basic_header(&ref_auth(req->ref)->cred, out, size);
	else if (h->scheme == LP_REG_AUTH_BASIC && h->have_cred)
		basic_header(&h->cred, out, size);
	else if (h->scheme == LP_REG_AUTH_BEARER)
		gen = bearer_header(reg, req, h, scope, out, size, ret_err);
out:
	pthread_mutex_unlock(&reg->lock);
	return gen;
}

/* the TLS settings of a hosts.toml host: CAs, client certificate, checks */
static void host_tls(CURL *h, const struct reg_endpoint *ep)
{
	const struct lp_host *cfg = ep->cfg;

	if (ep->ca_blob) {
		struct curl_blob b = { .data = ep->ca_blob,
				       .len = ep->ca_len,
				       .flags = CURL_BLOB_NOCOPY };

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (!cfg)
		return;
	if (cfg->n_clients) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->clients[0].cert);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		if (cfg->clients[0].key)
			curl_easy_setopt(h, CURLOPT_SSLKEY,
					 cfg->clients[0].key);
	}
	if (cfg->skip_verify) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static int perform(struct lp_reg *reg, const struct lp_reg_req *req,
		   struct lp_reg_resp *resp, struct xfer *x, char *errbuf)
{
	struct curl_slist *hl = NULL, *tmp;
	char auth[LP_REG_TOKEN_MAX + 64];
	const char *method = req->method ? req->method : "GET";
	const struct reg_endpoint *ep = req->ep;
	CURL *h;
	size_t i;
	int cc = CURLE_OUT_OF_MEMORY;

	memset(x, 0, sizeof(*x));
	x->req = req;
	x->resp = resp;
	resp_reset(resp);
	errbuf[0] = '\0';
	h = pool_get(reg);
	if (!h)
		goto out;
	x->auth_gen = auth_header(reg, req, auth, sizeof(auth), &x->auth_rc);
	if (x->auth_rc < 0)
		goto out;
	for (i = 0; req->headers && req->headers[i]; i++) {
		tmp = curl_slist_append(hl, req->headers[i]);
		if (!tmp)
			goto out;
		hl = tmp;
	}
	/* hosts.toml headers go with every request to that host */
	for (i = 0; ep && ep->headers && ep->headers[i]; i++) {
		tmp = curl_slist_append(hl, ep->headers[i]);
		if (!tmp)
			goto out;
		hl = tmp;
	}
	if (auth[0]) {
		tmp = curl_slist_append(hl, auth);
		explicit_bzero(auth, sizeof(auth));
		if (!tmp)
			goto out;
		hl = tmp;
	}
	tmp = curl_slist_append(hl, "Expect:");
	if (!tmp)
		goto out;
	hl = tmp;
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_SHARE, reg->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, reg->o.user_agent);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 req->timeout_ms ? req->timeout_ms :
					   reg->o.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, reg->o.low_speed_limit);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, reg->o.low_speed_time_s);
	if (req->timeout_ms)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	else if (req->small && reg->o.request_timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
				 reg->o.request_timeout_ms);
	if (reg->o.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, reg->o.ca_file);
	if (ep)
		host_tls(h, ep);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
	} else if (!strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		if (!strcmp(method, "PATCH"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(h);
	if (resp->status >= 300 && resp->status < 400) {
		char *loc = NULL;

		curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
		if (loc)
			snprintf(resp->location, sizeof(resp->location), "%s",
				 loc);
	}
	{
		curl_off_t cl = -1;

		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		resp->content_length = cl;
	}
out:
	curl_slist_free_all(hl);
	pool_put(reg, h);
	return cc;
}

static bool curl_retryable(int cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	/* a name that does not resolve is what an offline host or a DNS
	 * outage looks like: it may resolve again */
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_READ_ERROR:
		return true;
	default:
		return false;
	}
}

static int curl_errno(int cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EACCES;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WEIRD_SERVER_REPLY:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* percent-encode @s onto @b */
static int url_escape(struct lp_buf *b, const char *s)
{
	int r = 0;

	for (; *s && !r; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~", c))
			r = lp_buf_append(b, s, 1);
		else
			r = lp_buf_printf(b, "%%%02X", c);
	}
	return r;
}

static int token_write(void *ctx, const void *data, size_t len)
{
	return lp_buf_append(ctx, data, len);
}

static void token_reset(void *ctx)
{
	lp_buf_reset(ctx);
}

/* the token server URL for @scope into @url; -EPROTO for a non-HTTP realm */
static int token_url(const struct lp_reg_req *req,
		     const struct lp_reg_challenge *ch, const char *scope,
		     struct lp_buf *url, struct lp_err *err)
{
	int r;

	if ((r = lp_buf_printf(url, "%s%cservice=", ch->realm,
			       strchr(ch->realm, '?') ? '&' : '?')) < 0 ||
	    (r = url_escape(url, ch->service)) < 0 ||
	    (r = lp_buf_printf(url, "&scope=")) < 0 ||
	    (r = url_escape(url, scope)) < 0)
		return r;
	if (ch->scope[0] && strcmp(ch->scope, scope) &&
	    ((r = lp_buf_printf(url, "&scope=")) < 0 ||
	     (r = url_escape(url, ch->scope)) < 0))
		return r;
	if (strncmp(ch->realm, "https://", 8) &&
	    strncmp(ch->realm, "http://", 7))
		return lp_err_set(err, -EPROTO,
				  "%s: token realm \"%s\" is not "
				  "an http(s) URL",
				  req->ref->host, ch->realm);
	return 0;
}

/*
 * The OAuth2 form that trades identity token @refresh for a token for
 * @scope (distribution's token spec, "refresh_token" grant) into @form, and
 * the realm to POST it to into @url.
 */
static int token_form(const struct lp_reg_req *req,
		      const struct lp_reg_challenge *ch, const char *scope,
		      const char *refresh, struct lp_buf *form,
		      struct lp_buf *url, struct lp_err *err)
{
	int r;

	if (strncmp(ch->realm, "https://", 8) &&
	    strncmp(ch->realm, "http://", 7))
		return lp_err_set(err, -EPROTO,
				  "%s: token realm \"%s\" is not "
				  "an http(s) URL",
				  req->ref->host, ch->realm);
	if ((r = lp_buf_printf(url, "%s", ch->realm)) < 0 ||
	    (r = lp_buf_printf(form, "grant_type=refresh_token&service=")) <
		    0 ||
	    (r = url_escape(form, ch->service)) < 0 ||
	    (r = lp_buf_printf(form, "&client_id=lazypull&scope=")) < 0 ||
	    (r = url_escape(form, scope)) < 0)
		return r;
	if (ch->scope[0] && strcmp(ch->scope, scope) &&
	    ((r = lp_buf_printf(form, "%%20")) < 0 ||
	     (r = url_escape(form, ch->scope)) < 0))
		return r;
	if ((r = lp_buf_printf(form, "&refresh_token=")) < 0 ||
	    (r = url_escape(form, refresh)) < 0)
		return r;
	return 0;
}

/*
 * GET @url (with @cred as Basic auth when set), or with @form POST it to
 * @url (the OAuth2 flow of an identity token); the 200 reply in @body.
 */
static int token_request(struct lp_reg *reg, const struct lp_reg_req *req,
			 const struct lp_reg_challenge *ch, const char *scope,
			 const struct lp_reg_cred *cred, const char *url,
			 const struct lp_buf *form, struct lp_buf *body,
			 struct lp_err *err)
{
	struct lp_reg_sink sink = { .write = token_write,
				    .reset = token_reset,
				    .ctx = body };
	struct lp_reg_req treq;
	struct lp_reg_resp *resp = NULL;
	const char *hdrs[2] = { NULL, NULL };
	char authh[3 * LP_REG_CRED_MAX];
	int r;

	resp = malloc(sizeof(*resp));
	if (!resp) {
		r = -ENOMEM;
		goto out;
	}
	authh[0] = '\0';
	memset(&treq, 0, sizeof(treq));
	if (form) {
		hdrs[0] = "Content-Type: application/x-www-form-urlencoded";
		treq.method = "POST";
		treq.body = form->data;
		treq.body_len = form->len;
	} else if (cred) {
		r = basic_header(cred, authh, sizeof(authh));
		if (r < 0)
			goto out;
		hdrs[0] = authh;
	}
	treq.ref = req->ref;
	treq.url = url;
	treq.external = true;
	treq.headers = hdrs;
	treq.body_fd = -1;
	treq.sink = &sink;
	treq.small = true;
	treq.what = "token";
	r = lp_reg_do(reg, &treq, resp, err);
	if (r < 0) {
		lp_err_set(err, r, "token server %s: %s", ch->realm,
			   r == -EFBIG ? "reply too big" : strerror(-r));
		goto out;
	}
	if (resp->status != 200)
		r = lp_err_set(err,
			       resp->status == 401 || resp->status == 403 ?
				       -EACCES :
				       -EPROTO,
			       "token server %s: HTTP %ld for scope %s",
			       ch->realm, resp->status, scope);
out:
	explicit_bzero(authh, sizeof(authh));
	free(resp);
	return r;
}

/* credentials for @host: set explicitly, or loaded once from docker config */
static int host_cred(struct lp_reg *reg, const char *host,
		     struct lp_reg_cred *ret_cred)
{
	struct lp_reg_cred c;
	struct reg_host *h;
	bool loaded;
	int r;

	pthread_mutex_lock(&reg->lock);
	h = host_get(reg, host);
	if (!h) {
		pthread_mutex_unlock(&reg->lock);
		return -ENOMEM;
	}
	loaded = h->cred_loaded;
	if (loaded && h->have_cred)
		*ret_cred = h->cred;
	r = h->have_cred ? 1 : 0;
	pthread_mutex_unlock(&reg->lock);
	if (loaded)
		return r;
	/* may run a helper program: not under the lock */
	memset(&c, 0, sizeof(c));
	r = lp_reg_cred_load(reg->o.docker_config_dir, host, &c);
	pthread_mutex_lock(&reg->lock);
	if (!h->cred_loaded) {
		h->cred_loaded = true;
		h->have_cred = r > 0;
		if (r > 0)
			h->cred = c;
	}
	r = h->have_cred;
	if (r)
		*ret_cred = h->cred;
	pthread_mutex_unlock(&reg->lock);
	explicit_bzero(&c, sizeof(c));
	return r;
}

int reg_req_cred(struct lp_reg *reg, const struct lp_reg_ref *ref,
		 struct lp_reg_cred *ret_cred)
{
	const struct lp_reg_auth *a = ref_auth(ref);

	if (a) {
		*ret_cred = a->cred;
		return 1;
	}
	return host_cred(reg, ref->host, ret_cred);
}

/* @h's token entry for @scope and identity @id, or NULL; lock held */
static struct reg_token *token_find(struct reg_host *h, const char *scope,
				    uint64_t id)
{
	struct reg_token *t;

	for (t = h->tokens; t; t = t->next)
		if (t->auth_id == id && !strcmp(t->scope, scope))
			return t;
	return NULL;
}

/*
 * @h's token entry for @scope, made when absent; at LP_REG_TOKENS_MAX the
 * oldest entry nobody is fetching makes room. NULL when out of memory or
 * every entry is being fetched. Called with lock held.
 */
static struct reg_token *token_get(struct reg_host *h, const char *scope,
				   uint64_t id)
{
	struct reg_token *t = token_find(h, scope, id), **pp, **victim = NULL;

	if (t)
		return t;
	if (h->n_tokens >= LP_REG_TOKENS_MAX) {
		/* new entries go first: the last idle one is the oldest */
		for (pp = &h->tokens; *pp; pp = &(*pp)->next)
			if (!(*pp)->fetching)
				victim = pp;
		if (!victim)
			return NULL;
		t = *victim;
		*victim = t->next;
		token_free(t);
		h->n_tokens--;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->scope, sizeof(t->scope), "%s", scope);
	t->auth_id = id;
	t->next = h->tokens;
	h->tokens = t;
	h->n_tokens++;
	return t;
}

/*
 * Fetch a token for @scope from the server of challenge @ch and publish it
 * in the host's entry, which the caller has marked fetching (token_claim()
 * or bearer_header()); the mark is cleared and the waiters woken whatever
 * the outcome. Called without lock. Returns 0 or -errno (in @err).
 */
static int token_refresh(struct lp_reg *reg, const struct lp_reg_req *req,
			 const struct lp_reg_challenge *ch, const char *scope,
			 struct lp_err *err)
{
	struct lp_reg_token_reply *reply = NULL;
	struct lp_reg_cred cred;
	struct lp_buf url, body, form;
	struct reg_host *h;
	struct reg_token *t;
	char *tok = NULL;
	int64_t life_ms = 0;
	int have, r;

	lp_buf_init(&url, LP_REG_URL_MAX);
	lp_buf_init(&body, LP_REG_TOKEN_BODY_MAX);
	lp_buf_init(&form, LP_REG_URL_MAX + LP_REG_CRED_MAX * 3);
	memset(&cred, 0, sizeof(cred));
	have = reg_req_cred(reg, req->ref, &cred);
	if (have < 0) {
		r = have;
		goto out;
	}
	reply = malloc(sizeof(*reply));
	if (!reply) {
		r = -ENOMEM;
		goto out;
	}
	if (have && !cred.user[0] && cred.secret[0]) {
		/* an identity token: OAuth2 refresh_token grant, POSTed */
		r = token_form(req, ch, scope, cred.secret, &form, &url, err);
		if (r == 0)
			r = token_request(reg, req, ch, scope, NULL,
					  (const char *)url.data, &form, &body,
					  err);
	} else {
		r = token_url(req, ch, scope, &url, err);
		if (r == 0)
			r = token_request(
				reg, req, ch, scope, have ? &cred : NULL,
				(const char *)url.data, NULL, &body, err);
	}
	if (r < 0)
		goto out;
	r = lp_reg_token_reply_parse(body.data ? (const char *)body.data : "",
				     body.len, reply);
	if (r < 0) {
		r = lp_err_set(err, r == -ENOMEM ? r : -EPROTO,
			       "token server %s: %s", ch->realm,
			       r == -EFBIG ? "reply too big" :
					     "bad reply (no usable token)");
		goto out;
	}
	tok = strdup(reply->token);
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	life_ms = lp_reg_token_lifetime_ms(reply, wall_ms());
out:
	pthread_mutex_lock(&reg->lock);
	h = host_get(reg, req->ref->host);
	t = h ? token_find(h, scope, ref_auth_id(req->ref)) : NULL;
	if (t) {
		t->fetching = false;
		t->attempts++;
		t->last_err = r;
		t->failed_ms = now_ms();
		if (r == 0) {
			long now = now_ms(), life = (long)life_ms;
			long margin = life / LP_REG_TOKEN_MARGIN_DIV;

			if (margin > LP_REG_TOKEN_MARGIN_MAX_MS)
				margin = LP_REG_TOKEN_MARGIN_MAX_MS;
			token_free_str(t);
			t->token = tok;
			tok = NULL;
			t->expires_ms = now + life;
			t->refresh_ms = now + life - margin;
			t->gen = ++reg->token_gen;
			h->scheme = LP_REG_AUTH_BEARER;
		}
	} else if (r == 0) {
		r = -ENOMEM; /* the host table is full */
	}
	pthread_cond_broadcast(&reg->token_cond);
	pthread_mutex_unlock(&reg->lock);
	if (tok) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
	if (reply)
		explicit_bzero(reply, sizeof(*reply));
	free(reply);
	explicit_bzero(&cred, sizeof(cred));
	if (form.data)
		explicit_bzero(form.data, form.len);
	lp_buf_release(&form);
	lp_buf_release(&url);
	lp_buf_release(&body);
	return r;
}

/*
 * token_decide() - the one place that decides who fetches @h's token for
 * @scope and identity @id, for a request about to go out (@renewing: a
 * token in its renewal window is still sent while another thread renews
 * it) and for one refused with the token of gen @used (0: none). Returns
 * TOKEN_USE (a token to send is there, or none is to be fetched: *@ret_t
 * may be NULL), TOKEN_FETCH (this thread fetches: the entry is marked
 * fetching, call token_refresh()), or -errno: the fetch this thread
 * waited for failed, or one failed less than LP_REG_TOKEN_FAIL_HOLD_MS
 * ago, and its waiters fail with its error rather than each trying again
 * (one failing fetch is enough for a burst). Called with
 * lock held; waits on token_cond.
 */
enum { TOKEN_USE = 0, TOKEN_FETCH = 1 };

static int token_decide(struct lp_reg *reg, struct reg_host *h,
			const char *scope, uint64_t id, uint64_t used,
			bool renewing, struct reg_token **ret_t)
{
	unsigned long waited_from = 0;
	bool waited = false;
	struct reg_token *t;

	for (;;) {
		long now = now_ms();
		bool valid;

		/* looked up again after each wait: an idle entry may go */
		t = renewing ? token_find(h, scope, id) :
			       token_get(h, scope, id);
		*ret_t = t;
		if (!t)
			return renewing ? TOKEN_USE : -ENOMEM;
		valid = t->token && now < t->expires_ms && t->gen != used;
		if (valid && (!renewing || now < t->refresh_ms || t->fetching))
			return TOKEN_USE;
		if (waited && t->attempts != waited_from && !t->fetching &&
		    t->last_err < 0)
			return t->last_err;
		if (!t->fetching && !valid && t->last_err < 0 &&
		    now - t->failed_ms < LP_REG_TOKEN_FAIL_HOLD_MS)
			return t->last_err;
		if (!t->fetching) {
			if (renewing && !h->challenge)
				return TOKEN_USE; /* nowhere to renew it */
			t->fetching = true;
			return TOKEN_FETCH;
		}
		if (!waited) {
			waited = true;
			waited_from = t->attempts;
		}
		pthread_cond_wait(&reg->token_cond, &reg->lock);
	}
}

/*
 * A request is about to go out with @h's token for @scope: write its
 * header and return its gen (0: none, the request goes anonymous). A token
 * in its last LP_REG_TOKEN_MARGIN_DIV-th of life (at most
 * LP_REG_TOKEN_MARGIN_MAX_MS) is renewed first from the host's last
 * challenge, by one thread (token_decide()): the others send the old token
 * while it is still valid, or wait for the new one. When the renewal fails
 * and no valid token is left, *@ret_err is its error (-errno) and the
 * request is not sent. Called with lock held (dropped and taken again
 * around the fetch).
 */
static uint64_t bearer_header(struct lp_reg *reg, const struct lp_reg_req *req,
			      struct reg_host *h, const char *scope, char *out,
			      size_t size, int *ret_err)
{
	uint64_t id = ref_auth_id(req->ref);
	struct lp_reg_challenge *ch = NULL;
	struct reg_token *t;
	int r;

	r = token_decide(reg, h, scope, id, 0, true, &t);
	if (r == TOKEN_FETCH) {
		ch = malloc(sizeof(*ch));
		if (ch)
			*ch = *h->challenge;
		pthread_mutex_unlock(&reg->lock);
		if (ch) {
			struct lp_err e = { 0 };

			r = token_refresh(reg, req, ch, scope, &e);
			if (r < 0)
				lp_log_warn("%s: renewing the token for %s: %s",
					    req->ref->host, scope, e.msg);
			free(ch);
		} else {
			r = -ENOMEM;
			/* nobody fetches: let the waiters go */
			pthread_mutex_lock(&reg->lock);
			t = token_find(h, scope, id);
			if (t) {
				t->fetching = false;
				t->attempts++;
				t->last_err = r;
			}
			pthread_cond_broadcast(&reg->token_cond);
			pthread_mutex_unlock(&reg->lock);
		}
		pthread_mutex_lock(&reg->lock);
		/* the host entry outlives the client: @h is still good */
		t = token_find(h, scope, id);
	}
	if (t && t->token && now_ms() < t->expires_ms) {
		snprintf(out, size, "Authorization: Bearer %s", t->token);
		return t->gen;
	}
	if (r < 0)
		*ret_err = r;
	return 0;
}

/*
 * A request that sent the token of gen @used (0: none) for @scope had a
 * 401: decide who fetches the next one (token_decide()). Returns 1 when
 * this thread must (the entry is marked fetching: call token_refresh()), 0
 * when a newer valid token is there (another thread fetched it meanwhile:
 * repeat the request), or -errno, also when the fetch another thread made
 * while this one waited failed.
 */
static int token_claim(struct lp_reg *reg, const struct lp_reg_req *req,
		       const char *scope, uint64_t used, struct lp_err *err)
{
	struct reg_host *h;
	struct reg_token *t;
	int r;

	pthread_mutex_lock(&reg->lock);
	h = host_get(reg, req->ref->host);
	r = h ? token_decide(reg, h, scope, ref_auth_id(req->ref), used, false,
			     &t) :
		-ENOMEM;
	pthread_mutex_unlock(&reg->lock);
	if (r == -ENOMEM)
		return lp_err_set(err, r, "%s: no room for a token for %s",
				  req->ref->host, scope);
	if (r < 0)
		return lp_err_set(err, r,
				  "%s: token for %s: %s (fetched by another "
				  "request)",
				  req->ref->host, scope, strerror(-r));
	return r == TOKEN_FETCH ? 1 : 0;
}

/*
 * A 401 to @req, which sent the token of gen @used (0: none): work out how
 * to authenticate, so that the request can repeat.
 */
static int handle_401(struct lp_reg *reg, const struct lp_reg_req *req,
		      const struct lp_reg_resp *resp, bool again, uint64_t used,
		      struct lp_err *err)
{
	struct lp_reg_challenge *ch;
	struct lp_reg_cred cred;
	char scope[LP_REG_AUTH_FIELD_MAX];
	struct reg_host *h;
	int have, r;

	memset(&cred, 0, sizeof(cred));
	ch = malloc(sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	r = lp_reg_www_auth_parse(resp->www_auth, strlen(resp->www_auth), ch);
	if (r < 0) {
		r = lp_err_set(err, -EACCES,
			       "%s %s: HTTP 401 without a usable "
			       "WWW-Authenticate challenge",
			       req->ref->host, req->ref->repo);
		goto out;
	}
	if (ch->scheme == LP_REG_AUTH_BASIC) {
		have = reg_req_cred(reg, req->ref, &cred);
		if (have < 0) {
			r = have;
			goto out;
		}
		if (!have || again || !cred.user[0]) {
			r = lp_err_set(err, -EACCES, "%s: %s (Basic auth)",
				       req->ref->host,
				       !have ? "needs credentials" :
				       !cred.user[0] ?
					       "an identity token needs "
					       "a token server" :
					       "credentials refused");
			goto out;
		}
		pthread_mutex_lock(&reg->lock);
		h = host_get(reg, req->ref->host);
		if (h)
			h->scheme = LP_REG_AUTH_BASIC;
		pthread_mutex_unlock(&reg->lock);
		r = h ? 0 : -ENOMEM;
		goto out;
	}
	if (again && !strcmp(ch->error, "insufficient_scope")) {
		r = lp_err_set(err, -EACCES, "%s/%s: token lacks scope %s",
			       req->ref->host, req->ref->repo, ch->scope);
		goto out;
	}
	/* remembered for renewing tokens before they expire */
	pthread_mutex_lock(&reg->lock);
	h = host_get(reg, req->ref->host);
	if (h && !h->challenge)
		h->challenge = malloc(sizeof(*h->challenge));
	if (h && h->challenge)
		*h->challenge = *ch;
	pthread_mutex_unlock(&reg->lock);
	scope_of(req, scope, sizeof(scope));
	r = token_claim(reg, req, scope, used, err);
	if (r == 1)
		r = token_refresh(reg, req, ch, scope, err);
out:
	explicit_bzero(&cred, sizeof(cred));
	free(ch);
	return r;
}

/*
 * Where the registry's answers are classified: a status that a later try
 * may not see (overloaded, failing for now) is retried here and, when the
 * retries run out, marked LP_ERR_RETRYABLE in the error; every other one
 * (404, 410, 403, 401 after authenticating, 4xx, 501, 505) is permanent.
 */
static bool status_retryable(long status)
{
	return status == 429 ||
	       (status >= 500 && status != 501 && status != 505);
}

/* a pseudo-random number from the clock: jitter needs no quality */
static uint64_t jitter(void)
{
	uint64_t x;

	x = lp_mono_ns() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&x;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 32);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int lp_reg_do(struct lp_reg *reg, const struct lp_reg_req *req,
	      struct lp_reg_resp *resp, struct lp_err *err)
{
	char errbuf[CURL_ERROR_SIZE];
	char why[CURL_ERROR_SIZE + 256];
	const char *what = req->what ? req->what : "request";
	long start = now_ms();
	unsigned int attempt = 0, auth_tries = 0;
	struct xfer x;
	int r = 0, code;

	for (;;) {
		long delay, cap;
		int cc;

		if (attempt + auth_tries > 0 && req->sink && req->sink->reset)
			req->sink->reset(req->sink->ctx);
		attempt++;
		cc = perform(reg, req, resp, &x, errbuf);
		if (x.auth_rc < 0) {
			r = lp_err_set(err, x.auth_rc,
				       "%s %s: no token for %s: fetching it "
				       "failed (%s)",
				       what, req->url, req->ref->host,
				       strerror(-x.auth_rc));
			goto out;
		}
		if (x.sink_rc < 0) {
			/* the caller knows best what its sink refused */
			r = x.sink_rc;
			goto out;
		}
		if (x.sink_done || x.err_full)
			cc = CURLE_OK; /* we stopped it ourselves */
		if (cc != CURLE_OK && curl_retryable(cc) && req->sink &&
		    req->sink->complete && req->sink->complete(req->sink->ctx))
			cc = CURLE_OK; /* broke after the last byte it needed */
		if (cc != CURLE_OK) {
			code = curl_errno(cc);
			snprintf(why, sizeof(why), "%s",
				 errbuf[0] ? errbuf : curl_easy_strerror(cc));
			/* a server that refuses our TLS often just hangs up:
			 * say what we offered it */
			if (req->ep && !strncmp(req->url, "https://", 8))
				reg_ep_tls_desc(req->ep, why + strlen(why),
						sizeof(why) - strlen(why));
			if (!curl_retryable(cc)) {
				r = lp_err_set(err, code, "%s %s: %s", what,
					       req->url, why);
				goto out;
			}
		} else if (resp->status == 401 && !req->external && req->ref &&
			   auth_tries < 2) {
			r = handle_401(reg, req, resp, auth_tries > 0,
				       x.auth_gen, err);
			if (r < 0)
				goto out;
			auth_tries++;
			attempt--;
			continue;
		} else if (resp->status >= 200 && resp->status < 300 &&
			   req->sink && req->sink->finish &&
			   (r = req->sink->finish(req->sink->ctx, resp)) < 0) {
			if (r != -EAGAIN)
				goto out; /* the caller words it */
			code = -EIO;
			snprintf(why, sizeof(why), "reply cut short");
		} else if (status_retryable(resp->status)) {
			code = -EIO;
			snprintf(why, sizeof(why), "HTTP %ld", resp->status);
		} else {
			r = 0;
			goto out;
		}
		/* retryable: exponential back-off with full jitter */
		cap = LP_REG_BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);
		if (cap > LP_REG_BACKOFF_CAP_MS)
			cap = LP_REG_BACKOFF_CAP_MS;
		delay = cap / 2 + (long)(jitter() % (uint64_t)(cap / 2 + 1));
		if (cc == CURLE_OK && resp->retry_after_s >= 0)
			delay = resp->retry_after_s * 1000 > delay ?
					resp->retry_after_s * 1000 :
					delay;
		if (attempt >= (req->attempts ? req->attempts :
						reg->o.max_attempts) ||
		    now_ms() - start + delay > reg->o.retry_budget_ms) {
			/* the cause may pass: a later try may succeed */
			r = lp_err_set_ex(err,
					  code == -EIO && cc == CURLE_OK &&
							  resp->status == 429 ?
						  -EAGAIN :
						  code,
					  LP_ERR_RETRYABLE,
					  cc == CURLE_OK ? resp->status : 0,
					  "%s %s: %s (gave up after %u "
					  "attempts, %ld ms)",
					  what, req->url, why, attempt,
					  now_ms() - start);
			goto out;
		}
		sleep_ms(delay);
	}
out:
	return r;
}

const struct lp_reg_opts *lp_reg_opts_get(const struct lp_reg *reg)
{
	return &reg->o;
}

struct reg_caps *lp_reg_caps(struct lp_reg *reg)
{
	return reg->caps;
}

/* "scheme://host[:port]" of @url into @out */
static void url_origin(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	n = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : 0;
	if (n >= size)
		n = size - 1;
	memcpy(out, url, n);
	out[n] = '\0';
}

int lp_reg_do_follow(struct lp_reg *reg, const struct lp_reg_req *req,
		     struct lp_reg_resp *resp, char *final_url, size_t size,
		     struct lp_err *err)
{
	struct lp_reg_req cur = *req;
	char *url = NULL;
	char o1[LP_REG_HOST_MAX + 16], o2[LP_REG_HOST_MAX + 16];
	unsigned int hops = 0;
	int r;

	for (;;) {
		r = lp_reg_do(reg, &cur, resp, err);
		if (r < 0)
			goto out;
		if (resp->status < 300 || resp->status >= 400 ||
		    resp->status == 304)
			break;
		if (!resp->location[0] || ++hops > LP_REG_MAX_REDIRECTS) {
			r = lp_err_set(err, -EPROTO, "%s %s: %s",
				       req->what ? req->what : "request",
				       req->url,
				       resp->location[0] ?
					       "too many redirects" :
					       "redirect without Location");
			goto out;
		}
		free(url);
		url = strdup(resp->location);
		if (!url) {
			r = -ENOMEM;
			goto out;
		}
		url_origin(req->url, o1, sizeof(o1));
		url_origin(url, o2, sizeof(o2));
		/* signed storage URLs must not see registry credentials */
		cur.external = req->external || strcmp(o1, o2);
		if (strcmp(o1, o2))
			cur.ep =
				NULL; /* the host's TLS and headers stay there */
		cur.url = url;
	}
	if (final_url)
		snprintf(final_url, size, "%s", cur.url);
out:
	free(url);
	return r;
}

int lp_reg_status_err(const struct lp_reg_req *req,
		      const struct lp_reg_resp *resp, struct lp_err *err)
{
	const char *what = req->what ? req->what : "request";
	char body[LP_REG_ERRBODY_MAX];
	size_t i;
	int code;

	switch (resp->status) {
	case 404:
	case 410:
		code = -ENOENT;
		break;
	case 401:
	case 403:
		code = -EACCES;
		break;
	case 416:
		code = -ERANGE;
		break;
	default:
		code = -EPROTO;
	}
	/* the registry's error JSON, made printable */
	for (i = 0; i < resp->err_len && i < sizeof(body) - 1; i++)
		body[i] =
			resp->err_body[i] >= 0x20 && resp->err_body[i] < 0x7f ?
				resp->err_body[i] :
				' ';
	body[i] = '\0';
	return lp_err_set_ex(err, code,
			     status_retryable(resp->status) ? LP_ERR_RETRYABLE :
							      0,
			     resp->status, "%s %s: HTTP %ld%s%s", what,
			     req->url, resp->status, i ? ": " : "", body);
}
