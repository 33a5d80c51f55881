// SPDX-License-Identifier: Apache-2.0
/*
 * Manifests and whole blobs: GET, bound, verify. A manifest is accepted only
 * when its sha256 matches the digest the caller asked for or, fetched by
 * tag, the Docker-Content-Digest the registry sent; an index is resolved to
 * the platform's manifest, fetched by digest and verified likewise. Whole
 * blobs are streamed to a file while hashed and accepted only when size and
 * digest match.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lp_buf.h"
#include "lp_hosts.h"
#include "lp_log.h"
#include "reg_int.h"

#define LP_REG_ACCEPT_MANIFESTS                                    \
	"Accept: " LP_REG_MT_OCI_MANIFEST ", " LP_REG_MT_OCI_INDEX \
	", " LP_REG_MT_DOCKER_MANIFEST ", " LP_REG_MT_DOCKER_LIST

static int buf_write(void *ctx, const void *data, size_t len)
{
	return lp_buf_append(ctx, data, len);
}

static void buf_reset(void *ctx)
{
	lp_buf_reset(ctx);
}

/*
 * GET manifests/@name of @ref from host @ep (@more: another host follows
 * it); verified against @want (may be NULL). *ret_v says what the outcome
 * tells of the host.
 */
static int manifest_at(struct lp_reg *reg, const struct reg_endpoint *ep,
		       bool more, const struct lp_reg_ref *oref,
		       const char *name, const struct lp_digest *want,
		       struct lp_reg_manifest **ret_m,
		       enum reg_ep_verdict *ret_v, struct lp_err *err)
{
	struct lp_reg_ref epref;
	const struct lp_reg_ref *ref = &epref;
	struct lp_buf body;
	struct lp_reg_sink sink = { .write = buf_write,
				    .reset = buf_reset,
				    .ctx = &body };
	const char *hdrs[] = { LP_REG_ACCEPT_MANIFESTS, NULL };
	struct lp_reg_resp *resp = NULL;
	struct lp_reg_req req;
	struct lp_digest got, sent;
	char url[LP_REG_URL_MAX], ct[256], ds[LP_DIGEST_STR_LEN + 1];
	char suffix[LP_REG_TAG_MAX + LP_DIGEST_STR_LEN + 16];
	int r;

	lp_buf_init(&body, LP_REG_MANIFEST_MAX);
	*ret_v = REG_EP_USE;
	reg_ep_ref(ep, oref, &epref);
	if (snprintf(suffix, sizeof(suffix), "manifests/%s", name) >=
	    (int)sizeof(suffix)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	r = reg_ep_url(ep, oref, suffix, url, sizeof(url));
	if (r < 0)
		goto out;
	resp = malloc(sizeof(*resp));
	if (!resp) {
		r = -ENOMEM;
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.ref = ref;
	req.url = url;
	req.ep = ep;
	req.attempts = more ? LP_REG_MIRROR_ATTEMPTS : 0;
	req.headers = hdrs;
	req.body_fd = -1;
	req.sink = &sink;
	req.small = true;
	req.what = "manifest";
	r = lp_reg_do_follow(reg, &req, resp, NULL, 0, err);
	*ret_v = reg_ep_verdict(r, resp);
	if (r == -EFBIG)
		lp_err_set(err, r, "manifest %s/%s:%s larger than %d bytes",
			   ref->host, ref->repo, name, LP_REG_MANIFEST_MAX);
	if (r < 0) {
		lp_err_set(err, r, "manifest %s/%s:%s: %s", ref->host,
			   ref->repo, name, strerror(-r));
		goto out;
	}
	if (resp->status != 200) {
		r = lp_reg_status_err(&req, resp, err);
		goto out;
	}
	lp_sha256(body.data, body.len, &got);
	if (!want && resp->docker_digest[0] &&
	    lp_digest_parse(resp->docker_digest, &sent) == 0)
		want = &sent;
	if (want && !lp_digest_equal(want, &got)) {
		*ret_v = REG_EP_NEXT;
		lp_digest_format(&got, ds);
		r = lp_err_set(err, -EBADMSG,
			       "manifest %s/%s:%s: digest mismatch (got %s)",
			       ref->host, ref->repo, name, ds);
		goto out;
	}
	snprintf(ct, sizeof(ct), "%s", resp->content_type);
	ct[strcspn(ct, "; \t")] = '\0';
	r = lp_reg_manifest_parse(body.data ? (void *)body.data : "", body.len,
				  ct, ret_m);
	if (r < 0) {
		*ret_v = REG_EP_NEXT;
		lp_err_set(err, r, "manifest %s/%s:%s: %s", ref->host,
			   ref->repo, name,
			   r == -EOPNOTSUPP ? "unsupported media type" :
					      "malformed");
	}
out:
	lp_buf_release(&body);
	free(resp);
	return r;
}

/* manifest_at()'s arguments, for reg_ep_try_each() */
struct manifest_try {
	struct lp_reg *reg;
	const struct lp_reg_ref *ref;
	const char *name;
	const struct lp_digest *want;
	struct lp_reg_manifest **ret_m;
};

static int manifest_try(void *ctx, const struct reg_endpoint *ep, bool more,
			enum reg_ep_verdict *ret_v, struct lp_err *err)
{
	struct manifest_try *t = ctx;

	return manifest_at(t->reg, ep, more, t->ref, t->name, t->want, t->ret_m,
			   ret_v, err);
}

/*
 * GET manifests/@name of @ref from its registry's hosts in order: by tag
 * from those that may resolve, by digest from those that may pull.
 */
static int get_manifest(struct lp_reg *reg, const struct lp_reg_ref *ref,
			const char *name, const struct lp_digest *want,
			struct lp_reg_manifest **ret_m, struct lp_err *err)
{
	struct manifest_try t = { reg, ref, name, want, ret_m };

	return reg_ep_try_each(reg, ref,
			       want ? LP_HOST_CAP_PULL : LP_HOST_CAP_RESOLVE,
			       manifest_try, &t, err);
}

int lp_reg_manifest_get(struct lp_reg *reg, const struct lp_reg_ref *ref,
			struct lp_reg_manifest **ret_m, struct lp_err *err)
{
	char name[LP_DIGEST_STR_LEN + 1];

	if (ref->has_digest)
		lp_digest_format(&ref->digest, name);
	return get_manifest(reg, ref, ref->has_digest ? name : ref->tag,
			    ref->has_digest ? &ref->digest : NULL, ret_m, err);
}

int lp_reg_manifest_fetch(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const char *platform, struct lp_reg_manifest **ret_m,
			  struct lp_err *err)
{
	struct lp_reg_manifest *m = NULL, *im = NULL;
	const struct lp_reg_desc *d;
	char name[LP_DIGEST_STR_LEN + 1];
	size_t len;
	int r;

	if (ref->has_digest)
		lp_digest_format(&ref->digest, name);
	r = get_manifest(reg, ref, ref->has_digest ? name : ref->tag,
			 ref->has_digest ? &ref->digest : NULL, &m, err);
	if (r < 0)
		goto out;
	if (!lp_reg_manifest_is_index(m)) {
		*ret_m = m;
		m = NULL;
		goto out;
	}
	if (!platform)
		platform = lp_reg_opts_get(reg)->platform;
	r = lp_reg_index_select(m, platform, &d);
	if (r < 0) {
		lp_err_set(err, r == -ENOENT ? -ENOENT : r,
			   "%s/%s: no manifest for platform %s in the index",
			   ref->host, ref->repo,
			   platform ? platform : "(host)");
		goto out;
	}
	lp_digest_format(&d->digest, name);
	r = get_manifest(reg, ref, name, &d->digest, &im, err);
	if (r < 0)
		goto out;
	lp_reg_manifest_raw(im, &len);
	if (lp_reg_manifest_is_index(im) || len != d->size) {
		r = lp_err_set(err, -EPROTO, "%s/%s@%s: %s", ref->host,
			       ref->repo, name,
			       len != d->size ? "size differs from the index" :
						"nested index");
		goto out;
	}
	*ret_m = im;
	im = NULL;
out:
	lp_reg_manifest_free(im);
	lp_reg_manifest_free(m);
	return r;
}

/* ---- whole blobs ---- */

struct whole_sink {
	struct lp_sha256 *sha;
	int fd; /* -1: into mem */
	struct lp_buf *mem;
	uint64_t size; /* expected; UINT64_MAX: unknown */
	uint64_t pos;
};

static int whole_begin(void *ctx, const struct lp_reg_resp *resp)
{
	return resp->status == 200 ? 0 : -EPROTO;
}

static int whole_write(void *ctx, const void *data, size_t len)
{
	struct whole_sink *w = ctx;
	const char *p = data;
	size_t left = len;
	int r;

	if (w->size != UINT64_MAX && len > w->size - w->pos)
		return -EFBIG;
	lp_sha256_update(w->sha, data, len);
	if (w->fd < 0) {
		r = lp_buf_append(w->mem, data, len);
		if (r < 0)
			return r;
		w->pos += len;
		return 0;
	}
	while (left) {
		ssize_t n = pwrite(w->fd, p, left, (off_t)w->pos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		left -= (size_t)n;
		w->pos += (uint64_t)n;
	}
	return 0;
}

static int whole_finish(void *ctx, const struct lp_reg_resp *resp)
{
	struct whole_sink *w = ctx;

	if (resp->status != 200)
		return -EPROTO;
	if (w->size != UINT64_MAX && w->pos < w->size)
		return -EAGAIN;
	return 0;
}

static void whole_reset(void *ctx)
{
	struct whole_sink *w = ctx;
	struct lp_digest dummy;

	lp_sha256_final(w->sha, &dummy);
	w->pos = 0;
	if (w->mem)
		lp_buf_reset(w->mem);
}

static int whole_at(struct lp_reg *reg, const struct reg_endpoint *ep,
		    bool more, const struct lp_reg_ref *oref,
		    const struct lp_digest *digest, struct whole_sink *w,
		    enum reg_ep_verdict *ret_v, struct lp_err *err)
{
	struct lp_reg_ref epref;
	const struct lp_reg_ref *ref = &epref;
	struct lp_reg_sink sink = { .begin = whole_begin,
				    .write = whole_write,
				    .finish = whole_finish,
				    .reset = whole_reset,
				    .ctx = w };
	struct lp_reg_resp *resp = NULL;
	struct lp_reg_req req;
	struct lp_digest got;
	char url[LP_REG_URL_MAX], ds[LP_DIGEST_STR_LEN + 1];
	char suffix[LP_DIGEST_STR_LEN + 8];
	int r;

	*ret_v = REG_EP_USE;
	reg_ep_ref(ep, oref, &epref);
	lp_digest_format(digest, ds);
	snprintf(suffix, sizeof(suffix), "blobs/%s", ds);
	r = reg_ep_url(ep, oref, suffix, url, sizeof(url));
	if (r < 0)
		goto out;
	w->pos = 0;
	if (w->mem)
		lp_buf_reset(w->mem);
	r = lp_sha256_new(&w->sha);
	if (r < 0)
		goto out;
	resp = malloc(sizeof(*resp));
	if (!resp) {
		r = -ENOMEM;
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.ref = ref;
	req.url = url;
	req.ep = ep;
	req.attempts = more ? LP_REG_MIRROR_ATTEMPTS : 0;
	req.body_fd = -1;
	req.sink = &sink;
	req.what = "blob";
	/* into memory (a config, an index): bounded, so the request's
	 * whole-time limit applies, as to a manifest's (a trickling host
	 * never holds its caller longer) */
	req.small = w->mem != NULL;
	r = lp_reg_do_follow(reg, &req, resp, NULL, 0, err);
	*ret_v = reg_ep_verdict(r, resp);
	if (r == -EFBIG)
		lp_err_set(err, r, "blob %s/%s@%s: longer than expected",
			   ref->host, ref->repo, ds);
	if (r < 0) {
		lp_err_set(err, r, "blob %s/%s@%s: %s", ref->host, ref->repo,
			   ds,
			   r == -EPROTO ? "unexpected reply status" :
					  strerror(-r));
		goto out;
	}
	if (resp->status != 200) {
		r = lp_reg_status_err(&req, resp, err);
		goto out;
	}
	lp_sha256_final(w->sha, &got);
	if (!lp_digest_equal(&got, digest)) {
		*ret_v = REG_EP_NEXT;
		r = lp_err_set(err, -EBADMSG,
			       "blob %s/%s@%s: digest mismatch (%llu bytes)",
			       ref->host, ref->repo, ds,
			       (unsigned long long)w->pos);
		goto out;
	}
	r = 0;
out:
	lp_sha256_free(w->sha);
	w->sha = NULL;
	free(resp);
	return r;
}

/* whole_at()'s arguments, for reg_ep_try_each() */
struct whole_try {
	struct lp_reg *reg;
	const struct lp_reg_ref *ref;
	const struct lp_digest *digest;
	struct whole_sink *w;
};

static int whole_try(void *ctx, const struct reg_endpoint *ep, bool more,
		     enum reg_ep_verdict *ret_v, struct lp_err *err)
{
	struct whole_try *t = ctx;

	return whole_at(t->reg, ep, more, t->ref, t->digest, t->w, ret_v, err);
}

/* the whole blob from the registry's hosts that may pull, in order */
static int fetch_whole(struct lp_reg *reg, const struct lp_reg_ref *ref,
		       const struct lp_digest *digest, struct whole_sink *w,
		       struct lp_err *err)
{
	struct whole_try t = { reg, ref, digest, w };

	return reg_ep_try_each(reg, ref, LP_HOST_CAP_PULL, whole_try, &t, err);
}

int lp_reg_fetch_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		      const struct lp_digest *digest, uint64_t size, int fd,
		      struct lp_err *err)
{
	struct whole_sink w = { .fd = fd, .size = size };
	int r;

	r = fetch_whole(reg, ref, digest, &w, err);
	if (r < 0)
		goto out;
	if (ftruncate(fd, (off_t)size) < 0)
		r = lp_err_set(err, -errno, "blob: truncate: %s",
			       strerror(errno));
out:
	return r;
}

int lp_reg_fetch_blob_mem(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *digest, size_t limit,
			  void **ret_data, size_t *ret_len, struct lp_err *err)
{
	struct lp_buf mem;
	struct whole_sink w = { .fd = -1, .mem = &mem, .size = UINT64_MAX };
	int r;

	lp_buf_init(&mem, limit);
	r = fetch_whole(reg, ref, digest, &w, err);
	if (r < 0)
		goto out;
	if (!mem.data) {
		r = lp_buf_append(&mem, "", 0); /* an empty, NUL-ended string */
		if (r < 0)
			goto out;
	}
	*ret_data = lp_buf_steal(&mem, ret_len);
out:
	lp_buf_release(&mem);
	return r;
}
