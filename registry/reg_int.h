/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to registry/: the parsers the client is built from (exposed here
 * so that the module's unit tests and fuzz targets can drive them), the
 * client's internal state and the one request function every HTTP exchange
 * goes through (auth, redirects handled by the caller, retries).
 *
 * Lock order: lp_reg.lock, then lp_reg_blob.lock; lp_reg.pool_lock, the
 * curl share locks, reg_caps.lock and reg_spool.lock are leaves (nothing is
 * taken while they are held).
 */
#ifndef LP_REG_INT_H
#define LP_REG_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp_registry.h"

#define LP_REG_HEADER_MAX 8192 /* one response header line */
#define LP_REG_AUTH_FIELD_MAX 1024 /* realm, scope, service values */
#define LP_REG_BOUNDARY_MAX 200 /* multipart boundary */
#define LP_REG_URL_MAX 4096 /* any URL, incl. signed redirects */
#define LP_REG_TOKEN_MAX 8192 /* one bearer token */
#define LP_REG_TOKEN_BODY_MAX 65536 /* token server reply */
#define LP_REG_ERRBODY_MAX 1024 /* error body kept for messages */
#define LP_REG_CRED_MAX 1024 /* user name or secret */
#define LP_REG_CONFIG_MAX (1024 * 1024) /* docker config.json */
#define LP_REG_HELPER_OUT_MAX 65536 /* credential helper output */
#define LP_REG_HELPER_TIMEOUT_MS 10000
#define LP_REG_MULTIPART_OVERHEAD 512 /* per part: delimiter + headers */
#define LP_REG_POOL_MAX 16 /* idle curl handles kept */
#define LP_REG_MAX_REDIRECTS 5
#define LP_REG_REDIRECT_TTL_S 300 /* reuse a redirect this long */
#define LP_REG_SKIP_MAX ((uint64_t)64 << 30) /* bytes skipped on a 200 */
/* a host that failed (refused, 5xx, timeout) is passed over this long; a
 * host that failed one blob (404, bytes that did not verify), for that blob */
#define LP_REG_HOST_DOWN_MS 30000
/* host lists of one registry a client holds at once: the current one and
 * those open blobs began with, one per hosts.toml change (http.c); a list
 * nobody holds any more is freed */
#define LP_REG_EPS_VERSIONS_MAX 16
/* a configuration file changed this recently may be half written */
#define LP_REG_HOSTS_SETTLE_MS 100
/* tries of a request to a host that has another one after it: one retry
 * absorbs a reset connection, more would only delay the next host */
#define LP_REG_MIRROR_ATTEMPTS 2
/* JSON nesting accepted (lp_json_parse) */
#define REG_MANIFEST_JSON_DEPTH 32 /* manifests and indexes */
#define REG_TOKEN_JSON_DEPTH 8 /* token server replies */
#define REG_CONFIG_JSON_DEPTH 16 /* docker config.json, helper output */

/* ---- WWW-Authenticate ---- */

enum lp_reg_auth_scheme {
	/* ordered by preference */
	LP_REG_AUTH_BEARER = 1,
	LP_REG_AUTH_BASIC,
	LP_REG_AUTH_OTHER,
};

struct lp_reg_challenge {
	enum lp_reg_auth_scheme scheme;
	char realm[LP_REG_AUTH_FIELD_MAX];
	char service[LP_REG_AUTH_FIELD_MAX];
	char scope[LP_REG_AUTH_FIELD_MAX];
	char error[LP_REG_AUTH_FIELD_MAX];
};

/*
 * lp_reg_www_auth_parse() - the preferred challenge (Bearer, then Basic) of
 * @len bytes of WWW-Authenticate value(s) (several headers may be joined
 * with ", "). Returns 0, -EPROTO malformed or no usable challenge, -EFBIG.
 */
int lp_reg_www_auth_parse(const char *hdr, size_t len,
			  struct lp_reg_challenge *ret_ch);

/* ---- token server replies ---- */

#define LP_REG_TIME_MAX 64 /* an RFC 3339 time stamp */
#define LP_REG_TOKEN_TTL_MAX 86400 /* expires_in larger is cut to this */
#define LP_REG_TOKEN_DEFAULT_TTL_S 60 /* expires_in absent (distribution) */

struct lp_reg_token_reply {
	char token[LP_REG_TOKEN_MAX];
	int64_t expires_in_s; /* 0: not sent */
	int64_t issued_at; /* epoch seconds, when have_issued_at */
	bool have_issued_at;
};

/*
 * lp_reg_rfc3339_parse() - "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)" (at most
 * LP_REG_TIME_MAX bytes) as epoch seconds. Returns 0 or -EPROTO.
 */
int lp_reg_rfc3339_parse(const char *s, size_t len, int64_t *ret_epoch);

/*
 * lp_reg_token_reply_parse() - a token server's JSON reply of @len bytes
 * (at most LP_REG_TOKEN_BODY_MAX): "token" or "access_token" (a header-safe
 * string under LP_REG_TOKEN_MAX), "expires_in" (cut to
 * LP_REG_TOKEN_TTL_MAX) and "issued_at" (RFC 3339; ignored when malformed).
 * Returns 0, -EPROTO (not JSON, no usable token), -EFBIG, -ENOMEM.
 */
int lp_reg_token_reply_parse(const char *json, size_t len,
			     struct lp_reg_token_reply *ret);

/*
 * lp_reg_token_lifetime_ms() - how many ms from @now_epoch_ms (wall clock)
 * the token of @t lives: expires_in (LP_REG_TOKEN_DEFAULT_TTL_S when
 * absent) counted from issued_at, or from now when there is none or the
 * clocks plainly disagree (issued in the future, or longer ago than it
 * lives). Milliseconds: a token server that stamps whole seconds may have
 * issued the token up to a second before the stamp says.
 */
int64_t lp_reg_token_lifetime_ms(const struct lp_reg_token_reply *t,
				 int64_t now_epoch_ms);

/* ---- ranges ---- */

/*
 * lp_reg_content_range_parse() - "bytes A-B/TOTAL" (TOTAL "*" gives
 * UINT64_MAX). Returns 0 or -EPROTO (also for B < A or B >= TOTAL).
 */
int lp_reg_content_range_parse(const char *s, size_t len, uint64_t *ret_start,
			       uint64_t *ret_end, uint64_t *ret_total);

/* lp_reg_multipart_boundary() - boundary of a multipart/byteranges type. */
int lp_reg_multipart_boundary(const char *content_type, char *out, size_t size);

/* called per part: @len == plen bytes at blob offset @off */
typedef int (*lp_reg_part_fn)(void *ctx, uint64_t off, uint64_t plen,
			      uint64_t total, const void *data, size_t len);

/*
 * lp_reg_multipart_parse() - walk a multipart/byteranges body, calling @fn
 * for each part. Returns the number of parts, -EPROTO malformed, -EFBIG too
 * many parts, or @fn's negative return.
 */
int lp_reg_multipart_parse(const void *body, size_t len, const char *boundary,
			   lp_reg_part_fn fn, void *ctx);

/* ---- docker config ---- */

struct lp_reg_cred {
	char user[LP_REG_CRED_MAX];
	char secret[LP_REG_CRED_MAX];
	char helper[64]; /* set when a credential helper is to be asked */
};

/*
 * lp_reg_docker_config_lookup() - credentials for @host in a docker
 * config.json: auths[...].auth (base64 "user:secret") or username/password,
 * else credHelpers[host] or credsStore. Keys may carry a scheme and path
 * ("https://index.docker.io/v1/"). Returns 1 found (user/secret or helper
 * set), 0 nothing for the host, -EPROTO bad JSON/base64, -EFBIG.
 */
int lp_reg_docker_config_lookup(const char *json, size_t len, const char *host,
				struct lp_reg_cred *ret_cred);

/*
 * lp_reg_helper_parse() - the {"Username","Secret"} reply of a credential
 * helper. Returns 1, 0 for an identity token (unsupported), -EPROTO.
 */
int lp_reg_helper_parse(const char *json, size_t len, struct lp_reg_cred *cred);

/*
 * reg_req_cred() - the credentials a request for @ref sends (http.c): its
 * own handle's (lp_reg_ref.auth) when it goes to the host they were given
 * for, else the client's for the host (lp_reg_set_credentials() or the
 * docker config). Returns 1 (@ret_cred filled), 0 none, -ENOMEM.
 */
int reg_req_cred(struct lp_reg *reg, const struct lp_reg_ref *ref,
		 struct lp_reg_cred *ret_cred);

/* lp_reg_cred_load() - config file + helper for @host. 1 found, 0, -errno. */
int lp_reg_cred_load(const char *config_dir, const char *host,
		     struct lp_reg_cred *ret_cred);

/* ---- references ---- */

bool lp_reg_host_is_loopback(const char *host);

/* ---- the client ---- */

struct lp_reg_resp {
	long status;
	int64_t content_length; /* -1 when not sent */
	char content_type[256];
	char content_range[128];
	char docker_digest[LP_DIGEST_STR_LEN + 1];
	char location[LP_REG_URL_MAX]; /* 3xx: resolved; else as sent */
	char www_auth[LP_REG_HEADER_MAX];
	long retry_after_s; /* -1 when not sent */
	char err_body[LP_REG_ERRBODY_MAX];
	size_t err_len;
};

/*
 * Where a 2xx body goes. begin (may be NULL) sees the headers before the
 * first byte; write returns 0 for more, 1 when it has all it wants (the
 * transfer stops), or -errno; finish (may be NULL) runs after a 2xx reply
 * and returns 0, -EAGAIN when the body was cut short (the request is
 * retried), or -errno; reset runs before every retry.
 */
struct lp_reg_sink {
	int (*begin)(void *ctx, const struct lp_reg_resp *resp);
	int (*write)(void *ctx, const void *data, size_t len);
	int (*finish)(void *ctx, const struct lp_reg_resp *resp);
	void (*reset)(void *ctx);
	/* optional: true when the sink already holds every byte it wants, so
	 * that a transport error after them (a reply cut before its end, a
	 * reset stream) is not retried: the exchange has done its work */
	bool (*complete)(void *ctx);
	/* optional: true when the sink's error is its caller's own (a
	 * progress function said stop): then no other host is tried */
	bool (*stopped)(void *ctx);
	void *ctx;
};

struct reg_endpoint;

struct lp_reg_req {
	const char *method; /* NULL: GET */
	/* the host's TLS settings and headers (endpoints.c); NULL: none */
	const struct reg_endpoint *ep;
	unsigned int attempts; /* 0: the client's max_attempts */
	const struct lp_reg_ref *ref; /* host + repo, for auth and errors */
	const char *actions; /* scope actions: "pull", "pull,push" */
	const char *url;
	bool external; /* a redirect target: no registry auth */
	const char *const *headers; /* extra, NULL-ended */
	const void *body; /* request body in memory, or... */
	int body_fd; /* ...from this fd (-1: none) */
	uint64_t body_off, body_len;
	struct lp_reg_sink *sink; /* NULL: body discarded */
	bool small; /* apply request_timeout_ms */
	/* this request's own connect and total timeout instead of the
	 * client's (0: the client's) */
	long timeout_ms;
	const char *what; /* for messages: "manifest", "blob" */
};

/*
 * lp_reg_do() - one HTTP exchange, retried on connection failures, 5xx and
 * 429 (Retry-After honoured) with exponential back-off and jitter, bounded
 * by max_attempts and retry_budget_ms; on 401 from the registry it runs the
 * auth flow once and repeats. Redirects are not followed: a 3xx is returned
 * with resp->location. Returns 0 with the final response in @resp (any
 * status: the caller decides), or -errno when no usable response came
 * (-ETIMEDOUT, -ECONNREFUSED, -EIO, or the sink's error); an error whose
 * cause may pass (retries spent on 5xx, 429, a timeout, a reset) is marked
 * LP_ERR_RETRYABLE in @err, with the last HTTP status.
 */
int lp_reg_do(struct lp_reg *reg, const struct lp_reg_req *req,
	      struct lp_reg_resp *resp, struct lp_err *err);

/* reg_reply_check()'s @off for a suffix range: the last @len bytes */
#define REG_RANGE_SUFFIX UINT64_MAX

/*
 * reg_reply_check() - the one check of a reply to a single-range request
 * for @len bytes at @off (REG_RANGE_SUFFIX: the last @len bytes, or all of
 * a smaller blob) of a blob of @size bytes (0: unknown, a suffix only),
 * made before its body is used: a 200 must carry the whole blob (its
 * Content-Length, when sent, is @size), a 206 exactly the bytes asked (not
 * multipart; Content-Range "bytes A-B/T" with A-B those bytes and T the
 * blob's size, or "*" when @size is known). Returns 200 or 206 with
 * *@ret_total (NULL allowed) the blob's size as far as known (0: not
 * known), or -EPROTO for any other reply.
 */
int reg_reply_check(const struct lp_reg_resp *resp, uint64_t off, uint64_t len,
		    uint64_t size, uint64_t *ret_total);

/*
 * lp_reg_status_err() - map an unexpected status to -errno and a message
 * naming the request (404/410 -ENOENT, 401/403 -EACCES, 416 -ERANGE, else
 * -EPROTO), with the status in @err and, for 429 and 5xx but 501/505,
 * LP_ERR_RETRYABLE.
 */
int lp_reg_status_err(const struct lp_reg_req *req,
		      const struct lp_reg_resp *resp, struct lp_err *err);

/* lp_reg_url() - "SCHEME://host/v2/REPO/SUFFIX" for @ref's host. */
int lp_reg_url(const struct lp_reg *reg, const struct lp_reg_ref *ref,
	       const char *suffix, char *out, size_t size);

/*
 * lp_reg_do_follow() - lp_reg_do() following up to LP_REG_MAX_REDIRECTS
 * redirects (auth is dropped when the target is another host). The URL
 * that gave the final answer is copied to @final_url (may be NULL).
 */
int lp_reg_do_follow(struct lp_reg *reg, const struct lp_reg_req *req,
		     struct lp_reg_resp *resp, char *final_url, size_t size,
		     struct lp_err *err);

/* ---- host capabilities (caps.c) ---- */

struct reg_caps;

/* what a reply showed about its host */
enum reg_caps_seen {
	REG_SEEN_RANGE = 1, /* 206 to a single range */
	REG_SEEN_WHOLE, /* 200 and the whole blob to a range of part of it */
	REG_SEEN_MULTI, /* multipart/byteranges to several ranges */
	REG_SEEN_MULTI_REFUSED, /* 400, 501 or 200 to several ranges */
	REG_SEEN_REDIRECT, /* a blob sent to another URL */
	REG_SEEN_REFERRERS_API, /* an index from the referrers API */
	REG_SEEN_NO_REFERRERS_API, /* anything else from it (no API) */
};

/* reg_caps_new() - an empty table (reads LAZYPULL_NO_SPOOL). 0, -ENOMEM. */
int reg_caps_new(struct reg_caps **ret_caps);
void reg_caps_free(struct reg_caps *c); /* NULL allowed */

/*
 * reg_caps_note() - remember what a reply of HTTP @status from @host
 * ("host:port" as in a reference) showed; logged once per host and thing.
 */
void reg_caps_note(struct reg_caps *c, const char *host,
		   enum reg_caps_seen seen, long status);

/* reg_caps_spool() - take @host's blobs whole, once, into a spool. */
bool reg_caps_spool(struct reg_caps *c, const char *host);

/* reg_caps_spool_allowed() - false when LAZYPULL_NO_SPOOL turned it off. */
bool reg_caps_spool_allowed(const struct reg_caps *c);

/*
 * reg_caps_gate() - before a ranged read of @host: waits while another
 * read is finding out whether @host honours ranges. Returns true when the
 * caller is now the one finding out (it calls reg_caps_gate_end() once its
 * request is over, whatever came of it), false when the answer is known.
 */
bool reg_caps_gate(struct reg_caps *c, const char *host);
void reg_caps_gate_end(struct reg_caps *c, const char *host);

/* reg_caps_multi() - worth sending @host several ranges in one request. */
bool reg_caps_multi(struct reg_caps *c, const char *host);

/*
 * reg_caps_referrers_api() - @host's last answer to the referrers API was
 * an index: ask it alone, not the referrers tag beside it (push.c).
 */
bool reg_caps_referrers_api(struct reg_caps *c, const char *host);

/* lp_reg_caps() - the client's table (lives as long as @reg). */
struct reg_caps *lp_reg_caps(struct lp_reg *reg);

/* ---- the spool of a blob from a range-less host (spool.c) ---- */

#define LP_REG_SPOOL_MAX LP_REG_SKIP_MAX /* bytes of one spooled blob */
#define LP_REG_SPOOL_SLACK ((uint64_t)64 << 20) /* left free on its disk */

struct reg_spool;

/*
 * Fetches what the spool lacks: one request (retried and resumed within it)
 * fed through reg_spool_sink(). Runs on the spool's feeder thread. Returns
 * 0 or -errno with @err saying why.
 */
typedef int (*reg_spool_feed_fn)(void *ctx, struct reg_spool *sp,
				 struct lp_err *err);

/*
 * reg_spool_new() - an empty spool for the blob @digest of @size bytes: an
 * unlinked file in @dir (NULL: $TMPDIR, else /var/tmp), so that it is gone
 * when the spool is freed or the process dies. @feed(@ctx) fills it when a
 * reader needs bytes and nobody is fetching them; @ctx must outlive the
 * spool. The file's @size bytes are reserved now (fallocate), so that
 * spools made at once cannot together fill the disk. Returns 0, -EFBIG
 * over LP_REG_SPOOL_MAX, -ENOSPC when the disk would keep less than
 * LP_REG_SPOOL_SLACK free, or the -errno of making or reserving the file
 * (-EOPNOTSUPP: a filesystem that cannot reserve); @err says why.
 */
int reg_spool_new(const char *dir, const struct lp_digest *digest,
		  uint64_t size, reg_spool_feed_fn feed, void *ctx,
		  struct reg_spool **ret_sp, struct lp_err *err);

/*
 * Told that the whole blob in the spool does not match its digest (the
 * spool is emptied): true to take it again (the owner rejected the hosts
 * that fed it and another may serve it), false to fail for good. Called
 * with no lock held, by the feeder that brought the last byte.
 */
typedef bool (*reg_spool_bad_fn)(void *ctx);

/* reg_spool_on_bad() - set @sp's verdict hook (before its first read). */
void reg_spool_on_bad(struct reg_spool *sp, reg_spool_bad_fn bad);

/*
 * reg_spool_free() - stop the feeder (its next write fails -ECANCELED),
 * wait for it, drop the file. NULL allowed.
 */
void reg_spool_free(struct reg_spool *sp);

/*
 * reg_spool_read() - @len bytes at @off, each served as soon as it is in
 * the spool: when nobody is fetching, the feeder thread is started; readers
 * of bytes not yet in wait for it rather than make requests of their own.
 * @fn (may be NULL) is told each longer prefix of @buf that is final.
 * All of @buf comes from one feed: when the spool is emptied after a
 * mismatch while this read holds bytes of it, those not yet told to @fn
 * are read again from the next feed; bytes already told cannot be taken
 * back, so the read fails -EAGAIN, marked retryable (read again).
 * Returns 0, -EBADMSG once the whole blob failed verification (for good:
 * the spool is dropped), -EAGAIN as said, the error of a feeder that
 * ended while this read waited (from its @err, retryability kept),
 * -ECANCELED when freed, or @fn's error.
 */
int reg_spool_read(struct reg_spool *sp, void *buf, size_t len, uint64_t off,
		   lp_blob_progress_fn fn, void *arg, struct lp_err *err);

/*
 * reg_spool_claim() - become the spool's one feeder, for a request already
 * under way whose reply turned out to be the whole blob. Returns true when
 * the caller now feeds (and must call reg_spool_release()), false when
 * another feeder runs or the spool is complete or failed.
 */
bool reg_spool_claim(struct reg_spool *sp);

/*
 * reg_spool_sink() - the sink that writes a reply into the spool, for the
 * feeder. It asks for the missing tail: *@range (@range_size bytes) is set
 * to "Range: bytes=HAVE-END" now and before each retry. A 206 must start at
 * HAVE; a 200 (the host ignoring Range) is skipped up to HAVE. Bytes are
 * hashed as they are appended.
 */
void reg_spool_sink(struct reg_spool *sp, char *range, size_t range_size,
		    struct lp_reg_sink *ret_sink);

/*
 * reg_spool_release() - the feeder is done, with its result @r (@cause may
 * be NULL). A complete spool is verified here against the digest: a
 * mismatch empties it and, unless the verdict hook says to start over,
 * drops it for good. Wakes every reader. Returns 0 when the blob is
 * complete and verified or emptied to be taken again (a read fetches it),
 * -EBADMSG for a mismatch for good (@err says so), -EAGAIN for an
 * incomplete spool after @r == 0, else @r.
 */
int reg_spool_release(struct reg_spool *sp, int r, const struct lp_err *cause,
		      struct lp_err *err);

/* lp_reg_opts_get() - the client's options (strings owned by it). */
const struct lp_reg_opts *lp_reg_opts_get(const struct lp_reg *reg);

struct lp_reg *lp_reg_ref_client(struct lp_reg *reg);

/* ---- hosts: where requests go (endpoints.c) ---- */

/*
 * One host of a registry's list, ready for requests. Its strings are
 * borrowed from the struct lp_hosts the list keeps (or own_*).
 */
struct reg_endpoint {
	const char *scheme; /* "http", "https" */
	const char *host; /* "mirror:5000" */
	const char *path; /* API root: "/v2"; "" with override_path */
	unsigned int caps; /* enum lp_host_cap bits (lp_hosts.h) */
	const struct lp_host *cfg; /* ca, client, skip_verify; NULL: none */
	bool mirror; /* not the registry of the reference: ?ns= is added */
	char **headers; /* "Name: value" lines, NULL-ended; may be NULL */
	char *ca_blob; /* PEM bundle (base + cfg->ca); NULL: the default */
	size_t ca_len;
	atomic_long down_until_ms; /* lp_mono_ms(); no lock */
	atomic_long warmed_ms; /* lp_mono_ms() of its last lp_reg_warm() */
	char *own_scheme, *own_host; /* without a config directory */
};

/* The hosts of one registry, in the order they are tried. */
struct reg_endpoints {
	char registry[LP_REG_HOST_MAX];
	struct lp_hosts *hosts; /* NULL without a config directory */
	struct reg_endpoint *v;
	size_t n; /* >= 1 */
	/* lp_hosts_stamp() of the files it was made from (or, when a new
	 * look found the same hosts, of the files then); without @stamped
	 * (they changed while read, or a stat failed) the next look
	 * resolves them again */
	_Atomic uint64_t stamp;
	atomic_bool stamped;
	/* the stamp of files that did not load: not tried again until they
	 * change again (http.c) */
	_Atomic uint64_t bad_stamp;
	/* lp_mono_ms() of the next look at the files (http.c) */
	atomic_long check_at_ms;
	atomic_bool capped; /* LP_REG_EPS_VERSIONS_MAX reached: said once */
	/* references: the client's cache while the list is current, and each
	 * holder reg_endpoints() gave it to (reg_endpoints_put()); changed
	 * under the client's lock */
	unsigned int refs;
	bool superseded; /* protected by the client's lock: a newer list
			    of the registry is in the cache */
	struct reg_endpoints *next; /* the client's cache list */
};

/* reg_plain_http() - whether @o speaks plain HTTP to @host. */
bool reg_plain_http(const struct lp_reg_opts *o, const char *host);

/*
 * reg_endpoints_new() - the hosts for @registry: from certs.d-style
 * @config_dir (lp_hosts_resolve()), or with @config_dir NULL the registry
 * itself only. @base_ca (may be NULL) is the PEM bundle a host's `ca` files
 * are added to. Returns 0, or the resolver's -errno, or the error reading
 * a CA or client certificate file (@err names it).
 */
int reg_endpoints_new(const char *config_dir, const char *registry,
		      const struct lp_reg_opts *o, const char *base_ca,
		      struct reg_endpoints **ret_eps, struct lp_err *err);
void reg_endpoints_free(struct reg_endpoints *eps); /* NULL allowed */

/* what a look at the files of a list found (reg_endpoints_look()) */
enum reg_eps_look {
	REG_EPS_SAME, /* as when the list was made */
	REG_EPS_CHANGED, /* made, removed, replaced or written: resolve */
	/* changed within LP_REG_HOSTS_SETTLE_MS: maybe half written; look
	 * again then */
	REG_EPS_SETTLING,
};

/*
 * reg_endpoints_look() - whether the files @eps was made from in
 * @config_dir (NULL: none) changed since (lp_hosts_stamp(); a stat that
 * fails is a change). *@ret_stamp: their stamp now (0 when unknown).
 */
enum reg_eps_look reg_endpoints_look(const struct reg_endpoints *eps,
				     const char *config_dir,
				     uint64_t *ret_stamp);

/* reg_endpoints_same() - whether two lists hold the same hosts, in the same
 * order, with the same settings and CA bytes */
bool reg_endpoints_same(const struct reg_endpoints *a,
			const struct reg_endpoints *b);

/*
 * reg_endpoints() - the client's (cached) list for @ref's registry, with a
 * reference the caller gives back with reg_endpoints_put() (a blob keeps
 * it for its life, a request for its tries). Returns 0 or as
 * reg_endpoints_new() (not cached then: the next call tries again).
 */
int reg_endpoints(struct lp_reg *reg, const struct lp_reg_ref *ref,
		  const struct reg_endpoints **ret_eps, struct lp_err *err);

/*
 * reg_endpoints_put() - give back reg_endpoints()'s reference to @eps
 * (NULL allowed); a list a newer one replaced is freed with its last.
 */
void reg_endpoints_put(struct lp_reg *reg, const struct reg_endpoints *eps);
/* reg_endpoints_hold() - another reference on @eps (put it) */
const struct reg_endpoints *reg_endpoints_hold(struct lp_reg *reg,
					       const struct reg_endpoints *eps);

/*
 * reg_ep_next() - the first host at or after @from that has the
 * capabilities @need and is neither down nor skipped (@skip_until[i] in
 * lp_mono_ms() time, may be NULL) - except that the last host with @need
 * is never passed over. eps->n when none is left.
 */
size_t reg_ep_next(const struct reg_endpoints *eps, unsigned int need,
		   size_t from, const long *skip_until);
/* reg_ep_has_next() - whether a host after @i has @need. */
bool reg_ep_has_next(const struct reg_endpoints *eps, unsigned int need,
		     size_t i);
bool reg_ep_down(const struct reg_endpoint *ep);
/* reg_ep_mark_down() - pass @ep over for LP_REG_HOST_DOWN_MS (logged once) */
void reg_ep_mark_down(struct reg_endpoint *ep, const struct lp_err *why);

/*
 * reg_ep_tls_desc() - "; TLS to HOST: ..." (the CA files, client
 * certificate and skip_verify of @ep's configuration; "" when it sets none
 * of them) for messages about a failed exchange, into @out (@size bytes,
 * truncated).
 */
void reg_ep_tls_desc(const struct reg_endpoint *ep, char *out, size_t size);

/* reg_ep_url() - SCHEME://HOST PATH/REPO/SUFFIX[?ns=REGISTRY] */
int reg_ep_url(const struct reg_endpoint *ep, const struct lp_reg_ref *ref,
	       const char *suffix, char *out, size_t size);
/* reg_ep_ref() - @ref as spoken to @ep: its host (auth goes by it) */
void reg_ep_ref(const struct reg_endpoint *ep, const struct lp_reg_ref *ref,
		struct lp_reg_ref *out);

enum reg_ep_verdict {
	REG_EP_USE, /* the outcome stands (success, or an error of ours) */
	REG_EP_NEXT, /* try the next host (404, refused, a bad reply) */
	REG_EP_DOWN, /* that too, and pass this host over for a while */
};

/*
 * reg_ep_verdict() - what an exchange's outcome says about its host: @r
 * from lp_reg_do() (or a sink), @resp its reply when @r is 0.
 */
enum reg_ep_verdict reg_ep_verdict(int r, const struct lp_reg_resp *resp);

/* reg_err_pass() - @from's message (of one host's try) into @err; @r */
int reg_err_pass(struct lp_err *err, const struct lp_err *from, int r);

/*
 * One try of a request at host @ep (@more: a later host may be asked):
 * 0 or -errno with @err, and in *@ret_v what the outcome says about @ep.
 */
typedef int (*reg_ep_try_fn)(void *ctx, const struct reg_endpoint *ep,
			     bool more, enum reg_ep_verdict *ret_v,
			     struct lp_err *err);

/*
 * reg_ep_try_each() - @try at the hosts of @ref's registry that have @need,
 * in order, until one succeeds or its outcome stands (REG_EP_USE, or no
 * host is left): a host that is down is passed over for a while (logged
 * once), any other failure hands the request to the next host. Returns
 * the last try's result with its message in @err; -ENOENT when no host
 * may serve @need.
 */
int reg_ep_try_each(struct lp_reg *reg, const struct lp_reg_ref *ref,
		    unsigned int need, reg_ep_try_fn try, void *ctx,
		    struct lp_err *err);
void lp_reg_unref_client(struct lp_reg *reg);

#endif /* LP_REG_INT_H */
