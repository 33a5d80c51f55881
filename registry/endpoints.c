// SPDX-License-Identifier: Apache-2.0
/*
 * Where a request for a registry's content goes: the registry's hosts in
 * order (hosts.toml mirrors, then the server or the registry itself, as
 * lp_hosts_resolve() lists them), each made ready for requests once (its
 * "Name: value" header lines, its CA bundle read into memory, its client
 * certificate checked), and which of them to skip because it failed a
 * moment ago. The one owner of "is this a host failure, and what do we do
 * about it": reg_ep_verdict() sorts an outcome into use it, try the next
 * host, or next host and mark this one down for LP_REG_HOST_DOWN_MS.
 *
 * A struct reg_endpoints is made once per registry name and kept by the
 * client (http.c) until it is freed; it is immutable but for each host's
 * down mark (an atomic), so any thread may read it without a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lp_buf.h"
#include "lp_common.h"
#include "lp_hosts.h"
#include "lp_log.h"
#include "reg_int.h"

#define REG_CA_FILE_MAX (4 * 1024 * 1024) /* bytes of one CA file */
#define REG_CA_BUNDLE_MAX (16 * 1024 * 1024) /* the system's plus ours */

bool reg_plain_http(const struct lp_reg_opts *o, const char *host)
{
	size_t i;

	if (o->loopback_plain_http && lp_reg_host_is_loopback(host))
		return true;
	for (i = 0; o->insecure_hosts && o->insecure_hosts[i]; i++)
		if (!strcmp(o->insecure_hosts[i], host))
			return true;
	return false;
}

/* append file @path (at most REG_CA_FILE_MAX bytes) and a newline to @b */
static int append_file(struct lp_buf *b, const char *path, struct lp_err *err)
{
	char chunk[8192];
	uint64_t total = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lp_err_set(err, -errno, "CA file %s: %s", path,
				  strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = lp_err_set(err, -errno, "CA file %s: %s", path,
				       strerror(errno));
			goto out;
		}
		total += (uint64_t)n;
		if (total > REG_CA_FILE_MAX) {
			r = lp_err_set(err, -EFBIG,
				       "CA file %s: larger than %d bytes "
				       "(REG_CA_FILE_MAX)",
				       path, REG_CA_FILE_MAX);
			goto out;
		}
		r = lp_buf_append(b, chunk, (size_t)n);
		if (r < 0)
			goto out;
	}
	r = lp_buf_append(b, "\n", 1);
out:
	if (r == -EFBIG && b->len >= REG_CA_BUNDLE_MAX)
		r = lp_err_set(err, -EFBIG,
			       "CA bundle with %s: larger than %d bytes "
			       "(REG_CA_BUNDLE_MAX)",
			       path, REG_CA_BUNDLE_MAX);
	close(fd);
	return r;
}

/*
 * The PEM bundle a host with `ca` files trusts: the base (the client's
 * ca_file, else curl's built-in bundle, when it exists) and the host's CA
 * files. curl takes one bundle (CURLOPT_CAINFO_BLOB replaces the default
 * file), so "besides the system ones" means concatenating them here.
 */
static int ca_bundle(const struct lp_host *h, const char *base,
		     struct reg_endpoint *ep, struct lp_err *err)
{
	struct lp_buf b;
	size_t i;
	int r = 0;

	lp_buf_init(&b, REG_CA_BUNDLE_MAX);
	if (base && access(base, R_OK) == 0)
		r = append_file(&b, base, err);
	for (i = 0; i < h->n_ca && r == 0; i++)
		r = append_file(&b, h->ca[i], err);
	if (r < 0)
		goto out;
	ep->ca_blob = (char *)lp_buf_steal(&b, &ep->ca_len);
out:
	lp_buf_release(&b);
	return r;
}

/* "Name: value" lines of @h's headers, NULL-ended, in ep->headers */
static int header_lines(const struct lp_host *h, struct reg_endpoint *ep)
{
	size_t i, j, n = 0, k = 0;

	for (i = 0; i < h->n_headers; i++)
		n += h->headers[i].n_values;
	ep->headers = calloc(n + 1, sizeof(char *));
	if (!ep->headers)
		return -ENOMEM;
	for (i = 0; i < h->n_headers; i++)
		for (j = 0; j < h->headers[i].n_values; j++) {
			char *s = NULL;

			if (asprintf(&s, "%s: %s", h->headers[i].name,
				     h->headers[i].values[j]) < 0)
				return -ENOMEM;
			ep->headers[k++] = s;
		}
	return 0;
}

/* ready @h (borrowed from @eps->hosts) for requests as @ep */
static int endpoint_init(const struct lp_host *h, const char *registry,
			 const char *base_ca, struct reg_endpoint *ep,
			 struct lp_err *err)
{
	size_t i;
	int r;

	ep->scheme = h->scheme;
	ep->host = h->host;
	ep->path = h->path;
	ep->caps = h->caps;
	ep->cfg = h;
	ep->mirror = strcmp(h->host, registry) != 0;
	atomic_init(&ep->down_until_ms, 0);
	atomic_init(&ep->warmed_ms, 0);
	r = header_lines(h, ep);
	if (r < 0)
		return r;
	if (h->n_ca) {
		r = ca_bundle(h, base_ca, ep, err);
		if (r < 0)
			return r;
	}
	/* a certificate that cannot be read is a configuration error: say
	 * so now, not as a TLS handshake failure later */
	for (i = 0; i < h->n_clients && i < 1; i++)
		if (access(h->clients[i].cert, R_OK) < 0 ||
		    (h->clients[i].key && access(h->clients[i].key, R_OK) < 0))
			return lp_err_set(err, -errno,
					  "client certificate %s / key %s "
					  "for %s: %s",
					  h->clients[i].cert,
					  h->clients[i].key ?
						  h->clients[i].key :
						  "(in the file)",
					  h->host, strerror(errno));
	if (h->n_clients > 1)
		lp_log_warn("%s: %zu client certificates configured; only the "
			    "first (%s) is used",
			    h->host, h->n_clients, h->clients[0].cert);
	return 0;
}

void reg_endpoints_free(struct reg_endpoints *eps)
{
	size_t i, j;

	if (!eps)
		return;
	for (i = 0; i < eps->n; i++) {
		struct reg_endpoint *ep = &eps->v[i];

		for (j = 0; ep->headers && ep->headers[j]; j++)
			free(ep->headers[j]);
		free(ep->headers);
		free(ep->ca_blob);
		free(ep->own_scheme);
		free(ep->own_host);
	}
	free(eps->v);
	lp_hosts_free(eps->hosts);
	free(eps);
}

/* without a config directory: the registry itself, as lp_reg_url() */
static int single(const char *registry, const struct lp_reg_opts *o,
		  struct reg_endpoints *eps)
{
	struct reg_endpoint *ep;

	eps->v = calloc(1, sizeof(*eps->v));
	if (!eps->v)
		return -ENOMEM;
	eps->n = 1;
	ep = &eps->v[0];
	ep->own_scheme = strdup(reg_plain_http(o, registry) ? "http" : "https");
	ep->own_host = strdup(registry);
	if (!ep->own_scheme || !ep->own_host)
		return -ENOMEM;
	ep->scheme = ep->own_scheme;
	ep->host = ep->own_host;
	ep->path = "/v2";
	ep->caps = LP_HOST_CAP_ALL;
	atomic_init(&ep->down_until_ms, 0);
	atomic_init(&ep->warmed_ms, 0);
	return 0;
}

int reg_endpoints_new(const char *config_dir, const char *registry,
		      const struct lp_reg_opts *o, const char *base_ca,
		      struct reg_endpoints **ret_eps, struct lp_err *err)
{
	struct reg_endpoints *eps;
	uint64_t before, after, with_files = 0, stamp;
	size_t i, n;
	int r;

	eps = calloc(1, sizeof(*eps));
	if (!eps)
		return -ENOMEM;
	snprintf(eps->registry, sizeof(eps->registry), "%s", registry);
	if (!config_dir) {
		r = single(registry, o, eps);
		goto out;
	}
	/* what the files were before they are read: a change while they
	 * are read makes the next look read them again */
	if (lp_hosts_stamp(config_dir, registry, NULL, &before, NULL) < 0)
		before = 0;
	r = lp_hosts_resolve(config_dir, registry, o, 0, &eps->hosts, err);
	if (r < 0)
		goto out;
	/* the CA files too, before endpoint_init() reads them */
	if (lp_hosts_stamp(config_dir, registry, eps->hosts, &with_files,
			   NULL) < 0)
		before = 0;
	n = lp_hosts_count(eps->hosts);
	eps->v = calloc(n, sizeof(*eps->v));
	if (!eps->v) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		eps->n = i + 1;
		r = endpoint_init(lp_hosts_get(eps->hosts, i), registry,
				  base_ca, &eps->v[i], err);
		if (r < 0) {
			lp_err_set(err, r, "registry config for %s: %s",
				   registry, strerror(-r));
			goto out;
		}
	}
	if (n > 1 || eps->v[0].mirror)
		for (i = 0; i < n; i++)
			lp_log_info("registry %s: host %zu of %zu: %s://%s%s%s",
				    registry, i + 1, n, eps->v[i].scheme,
				    eps->v[i].host, eps->v[i].path,
				    eps->v[i].caps & LP_HOST_CAP_RESOLVE ?
					    "" :
					    " (pull only)");
	if (lp_hosts_stamp(config_dir, registry, NULL, &after, NULL) == 0 &&
	    after == before && before &&
	    lp_hosts_stamp(config_dir, registry, eps->hosts, &stamp, NULL) ==
		    0 &&
	    stamp == with_files) {
		atomic_init(&eps->stamp, stamp);
		atomic_init(&eps->stamped, true);
	}
out:
	if (r < 0) {
		reg_endpoints_free(eps);
		return r;
	}
	*ret_eps = eps;
	return 0;
}

enum reg_eps_look reg_endpoints_look(const struct reg_endpoints *eps,
				     const char *config_dir,
				     uint64_t *ret_stamp)
{
	struct timespec now;
	int64_t newest;

	*ret_stamp = 0;
	if (!config_dir)
		return REG_EPS_SAME; /* no files: nothing to change */
	if (lp_hosts_stamp(config_dir, eps->registry, eps->hosts, ret_stamp,
			   &newest) < 0)
		return REG_EPS_CHANGED;
	if (atomic_load(&eps->stamped) &&
	    *ret_stamp == atomic_load(&eps->stamp))
		return REG_EPS_SAME;
	clock_gettime(CLOCK_REALTIME, &now);
	if (newest > (int64_t)now.tv_sec * 1000000000 + now.tv_nsec -
			     (int64_t)LP_REG_HOSTS_SETTLE_MS * 1000000)
		return REG_EPS_SETTLING;
	return REG_EPS_CHANGED;
}

/* two strings, either NULL */
static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool same_endpoint(const struct reg_endpoint *a,
			  const struct reg_endpoint *b)
{
	size_t i;

	if (!same_str(a->scheme, b->scheme) || !same_str(a->host, b->host) ||
	    !same_str(a->path, b->path) || a->caps != b->caps ||
	    a->mirror != b->mirror || a->ca_len != b->ca_len ||
	    (a->ca_len && memcmp(a->ca_blob, b->ca_blob, a->ca_len)) ||
	    !a->cfg != !b->cfg)
		return false;
	if (a->cfg) {
		if (a->cfg->skip_verify != b->cfg->skip_verify ||
		    a->cfg->n_clients != b->cfg->n_clients)
			return false;
		for (i = 0; i < a->cfg->n_clients; i++)
			if (!same_str(a->cfg->clients[i].cert,
				      b->cfg->clients[i].cert) ||
			    !same_str(a->cfg->clients[i].key,
				      b->cfg->clients[i].key))
				return false;
	}
	for (i = 0; a->headers && b->headers && a->headers[i] && b->headers[i];
	     i++)
		if (strcmp(a->headers[i], b->headers[i]))
			return false;
	return (!a->headers || !a->headers[i]) &&
	       (!b->headers || !b->headers[i]);
}

bool reg_endpoints_same(const struct reg_endpoints *a,
			const struct reg_endpoints *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (!same_endpoint(&a->v[i], &b->v[i]))
			return false;
	return true;
}

bool reg_ep_down(const struct reg_endpoint *ep)
{
	return (long)lp_mono_ms() < atomic_load(&ep->down_until_ms);
}

void reg_ep_mark_down(struct reg_endpoint *ep, const struct lp_err *why)
{
	long until = (long)lp_mono_ms() + LP_REG_HOST_DOWN_MS;
	long was = atomic_exchange(&ep->down_until_ms, until);

	/* one message per outage, not one per request that saw it */
	if (was <= (long)lp_mono_ms())
		lp_log_warn("registry host %s://%s failed (%s): using the "
			    "next host for %d s",
			    ep->scheme, ep->host,
			    why && why->msg[0] ? why->msg : "no reply",
			    LP_REG_HOST_DOWN_MS / 1000);
}

int reg_ep_url(const struct reg_endpoint *ep, const struct lp_reg_ref *ref,
	       const char *suffix, char *out, size_t size)
{
	const char *ns =
		strcmp(ref->host, LP_REG_DOCKER_HUB) ? ref->host : "docker.io";
	int n;

	/* containerd tells a mirror which registry it stands for (?ns=) */
	if (ep->mirror)
		n = snprintf(out, size, "%s://%s%s/%s/%s?ns=%s", ep->scheme,
			     ep->host, ep->path, ref->repo, suffix, ns);
	else
		n = snprintf(out, size, "%s://%s%s/%s/%s", ep->scheme, ep->host,
			     ep->path, ref->repo, suffix);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

void reg_ep_ref(const struct reg_endpoint *ep, const struct lp_reg_ref *ref,
		struct lp_reg_ref *out)
{
	*out = *ref;
	snprintf(out->host, sizeof(out->host), "%s", ep->host);
}

size_t reg_ep_next(const struct reg_endpoints *eps, unsigned int need,
		   size_t from, const long *skip_until)
{
	long now = (long)lp_mono_ms();
	size_t i, last = eps->n;

	for (i = eps->n; i-- > 0;)
		if ((eps->v[i].caps & need) == need) {
			last = i;
			break;
		}
	for (i = from; i < eps->n; i++) {
		if ((eps->v[i].caps & need) != need)
			continue;
		/* the last candidate is always tried: better a host that
		 * failed a while ago than none */
		if (i == last)
			return i;
		if (reg_ep_down(&eps->v[i]) ||
		    (skip_until && skip_until[i] > now))
			continue;
		return i;
	}
	return eps->n;
}

bool reg_ep_has_next(const struct reg_endpoints *eps, unsigned int need,
		     size_t i)
{
	for (i++; i < eps->n; i++)
		if ((eps->v[i].caps & need) == need)
			return true;
	return false;
}

enum reg_ep_verdict reg_ep_verdict(int r, const struct lp_reg_resp *resp)
{
	switch (r) {
	case 0:
		break;
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -EIO:
	case -EAGAIN:
		return REG_EP_DOWN;
	case -EACCES: /* refused TLS or credentials: not down for others */
	case -EPROTO:
	case -EBADMSG:
		return REG_EP_NEXT; /* a reply that breaks the protocol */
	default:
		return REG_EP_USE; /* ours: memory, a write, a limit */
	}
	if (resp->status == 429 || resp->status >= 500)
		return REG_EP_DOWN;
	/* not there (a mirror may not have it), or not for us */
	if (resp->status == 404 || resp->status == 410 || resp->status == 401 ||
	    resp->status == 403)
		return REG_EP_NEXT;
	/* 2xx, 3xx, and what the caller handles (400 or 416 to a range:
	 * the same from any host) */
	return REG_EP_USE;
}

int reg_err_pass(struct lp_err *err, const struct lp_err *from, int r)
{
	/* a sink's own error has no message: its caller words it */
	if (from->msg[0])
		return lp_err_set_from(err, from, r, "%s", from->msg);
	return r;
}

int reg_ep_try_each(struct lp_reg *reg, const struct lp_reg_ref *ref,
		    unsigned int need, reg_ep_try_fn try, void *ctx,
		    struct lp_err *err)
{
	const struct reg_endpoints *eps;
	enum reg_ep_verdict v;
	struct lp_err tmp;
	size_t i;
	int r;

	r = reg_endpoints(reg, ref, &eps, err);
	if (r < 0)
		return r;
	for (i = reg_ep_next(eps, need, 0, NULL); i < eps->n;
	     i = reg_ep_next(eps, need, i + 1, NULL)) {
		bool more = reg_ep_has_next(eps, need, i);

		lp_err_clear(&tmp);
		v = REG_EP_USE;
		r = try(ctx, &eps->v[i], more, &v, &tmp);
		if (r == 0)
			goto out;
		if (!more || v == REG_EP_USE) {
			r = reg_err_pass(err, &tmp, r);
			goto out;
		}
		if (v == REG_EP_DOWN)
			reg_ep_mark_down(&eps->v[i], &tmp);
		else
			lp_log_info("%s; trying the next host",
				    lp_err_str(&tmp, r));
	}
	r = lp_err_set(err, -ENOENT,
		       "%s: no host in the registry configuration may %s",
		       ref->host,
		       need == LP_HOST_CAP_RESOLVE ? "resolve tags" : "pull");
out:
	reg_endpoints_put(reg, eps);
	return r;
}

void reg_ep_tls_desc(const struct reg_endpoint *ep, char *out, size_t size)
{
	const struct lp_host *h = ep->cfg;

	if (!size)
		return;
	/* nothing configured, nothing to tell: the system's defaults */
	if (!h || (!h->n_ca && !h->n_clients && !h->skip_verify)) {
		out[0] = '\0';
		return;
	}
	snprintf(out, size,
		 "; TLS to %s: %s%s, %zu CA file(s) besides the "
		 "system's%s",
		 ep->host,
		 h->n_clients ? "client certificate " : "no client certificate",
		 h->n_clients ? h->clients[0].cert : "", h->n_ca,
		 h->skip_verify ? ", skip_verify" : "");
}
