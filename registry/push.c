// SPDX-License-Identifier: Apache-2.0
/*
 * Push: blob existence (HEAD), cross-repository mount, monolithic upload
 * (POST then one PUT) for small blobs and chunked upload (PATCH per chunk,
 * then a closing PUT) for big ones, and manifest PUT. The registry checks
 * the digest of what it received; we check it answered as the protocol
 * says. Referrers: an artifact manifest whose subject is an image is made
 * findable through the OCI 1.1 referrers API where the registry has it,
 * else through the referrers tag schema (an OCI index tagged
 * "sha256-<hex of the subject digest>").
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lp_buf.h"
#include "lp_common.h"
#include "reg_int.h"

#define LP_REG_PUSH_MONOLITHIC_MAX (32 * LP_MIB) /* bigger: PATCH chunks */
#define LP_REG_PUSH_CHUNK (16 * LP_MIB)

static void init_req(struct lp_reg_req *req, const struct lp_reg_ref *ref,
		     const char *method, const char *url, const char *what)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->ref = ref;
	req->actions = "pull,push";
	req->url = url;
	req->body_fd = -1;
	req->what = what;
	req->small = true;
}

int lp_reg_blob_exists(struct lp_reg *reg, const struct lp_reg_ref *ref,
		       const struct lp_digest *digest, struct lp_err *err)
{
	struct lp_reg_resp *resp;
	struct lp_reg_req req;
	char url[LP_REG_URL_MAX], suffix[LP_DIGEST_STR_LEN + 8];
	char ds[LP_DIGEST_STR_LEN + 1];
	int r;

	resp = malloc(sizeof(*resp));
	if (!resp)
		return -ENOMEM;
	lp_digest_format(digest, ds);
	snprintf(suffix, sizeof(suffix), "blobs/%s", ds);
	r = lp_reg_url(reg, ref, suffix, url, sizeof(url));
	if (r < 0)
		goto out;
	init_req(&req, ref, "HEAD", url, "blob HEAD");
	req.actions = "pull";
	r = lp_reg_do_follow(reg, &req, resp, NULL, 0, err);
	if (r < 0)
		goto out;
	if (resp->status == 200)
		r = 1;
	else if (resp->status == 404)
		r = 0;
	else
		r = lp_reg_status_err(&req, resp, err);
out:
	free(resp);
	return r;
}

/* an upload Location made absolute, with "digest=" appended when given */
static int upload_url(struct lp_reg *reg, const struct lp_reg_ref *ref,
		      const char *loc, const char *ds, char *out, size_t size)
{
	char base[LP_REG_URL_MAX];
	int n;

	if (!loc[0])
		return -EPROTO;
	if (loc[0] == '/') {
		if (lp_reg_url(reg, ref, "", base, sizeof(base)) < 0)
			return -ENAMETOOLONG;
		base[strcspn(strstr(base, "://") + 3, "/") +
		     (size_t)(strstr(base, "://") + 3 - base)] = '\0';
		n = snprintf(out, size, "%s%s", base, loc);
	} else if (!strncmp(loc, "http://", 7) ||
		   !strncmp(loc, "https://", 8)) {
		n = snprintf(out, size, "%s", loc);
	} else {
		return -EPROTO;
	}
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (ds) {
		size_t len = (size_t)n;

		n = snprintf(out + len, size - len, "%cdigest=%s",
			     strchr(out, '?') ? '&' : '?', ds);
		if (n < 0 || (size_t)n >= size - len)
			return -ENAMETOOLONG;
	}
	return 0;
}

int lp_reg_push_blob(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *digest, uint64_t size, int fd,
		     const char *mount_from, struct lp_err *err)
{
	struct lp_reg_resp *resp = NULL;
	struct lp_reg_req req;
	char *url = NULL, *next = NULL;
	char ds[LP_DIGEST_STR_LEN + 1];
	const char *ctype[] = { "Content-Type: application/octet-stream", NULL,
				NULL };
	char crange[96];
	uint64_t off;
	int r;

	r = lp_reg_blob_exists(reg, ref, digest, err);
	if (r != 0) {
		r = r > 0 ? 0 : r;
		goto out;
	}
	r = -ENOMEM;
	resp = malloc(sizeof(*resp));
	url = malloc(LP_REG_URL_MAX);
	next = malloc(LP_REG_URL_MAX);
	if (!resp || !url || !next)
		goto out;
	lp_digest_format(digest, ds);
	if (mount_from) {
		char suffix[LP_REG_REPO_MAX + LP_DIGEST_STR_LEN + 64];

		snprintf(suffix, sizeof(suffix),
			 "blobs/uploads/?mount=%s&from=%s", ds, mount_from);
		r = lp_reg_url(reg, ref, suffix, url, LP_REG_URL_MAX);
	} else {
		r = lp_reg_url(reg, ref, "blobs/uploads/", url, LP_REG_URL_MAX);
	}
	if (r < 0)
		goto out;
	init_req(&req, ref, "POST", url, "blob upload start");
	r = lp_reg_do(reg, &req, resp, err);
	if (r < 0)
		goto out;
	if (resp->status == 201) /* mounted */
		goto out;
	if (resp->status != 202) {
		r = lp_reg_status_err(&req, resp, err);
		goto out;
	}
	off = 0;
	if (size > LP_REG_PUSH_MONOLITHIC_MAX) {
		while (off < size) {
			uint64_t n = lp_min_u64(LP_REG_PUSH_CHUNK, size - off);

			r = upload_url(reg, ref, resp->location, NULL, next,
				       LP_REG_URL_MAX);
			if (r < 0)
				goto bad_location;
			snprintf(crange, sizeof(crange),
				 "Content-Range: %llu-%llu",
				 (unsigned long long)off,
				 (unsigned long long)(off + n - 1));
			ctype[1] = crange;
			init_req(&req, ref, "PATCH", next, "blob upload chunk");
			req.headers = ctype;
			req.body_fd = fd;
			req.body_off = off;
			req.body_len = n;
			req.small = false;
			r = lp_reg_do(reg, &req, resp, err);
			if (r < 0)
				goto out;
			if (resp->status != 202) {
				r = lp_reg_status_err(&req, resp, err);
				goto out;
			}
			off += n;
		}
	}
	r = upload_url(reg, ref, resp->location, ds, next, LP_REG_URL_MAX);
	if (r < 0)
		goto bad_location;
	ctype[1] = NULL;
	init_req(&req, ref, "PUT", next, "blob upload");
	req.headers = ctype;
	req.body_fd = fd;
	req.body_off = off;
	req.body_len = size - off;
	req.small = false;
	r = lp_reg_do(reg, &req, resp, err);
	if (r < 0)
		goto out;
	if (resp->status != 201 && resp->status != 204)
		r = lp_reg_status_err(&req, resp, err);
	goto out;
bad_location:
	r = lp_err_set(err, r, "blob upload %s/%s: bad Location \"%s\"",
		       ref->host, ref->repo, resp->location);
out:
	free(resp);
	free(url);
	free(next);
	return r;
}

int lp_reg_push_manifest(struct lp_reg *reg, const struct lp_reg_ref *ref,
			 const char *media_type, const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err)
{
	struct lp_reg_resp *resp = NULL;
	struct lp_reg_req req;
	struct lp_digest d, sent;
	char url[LP_REG_URL_MAX], ct[256];
	char suffix[LP_REG_TAG_MAX + LP_DIGEST_STR_LEN + 16];
	char ds[LP_DIGEST_STR_LEN + 1];
	const char *hdrs[] = { ct, NULL };
	int r;

	if (len > LP_REG_MANIFEST_MAX)
		return lp_err_set(err, -EFBIG, "manifest of %zu bytes", len);
	lp_sha256(data, len, &d);
	lp_digest_format(&d, ds);
	if (ref->has_digest && !lp_digest_equal(&d, &ref->digest))
		return lp_err_set(err, -EINVAL,
				  "manifest digest %s differs from the "
				  "reference",
				  ds);
	snprintf(suffix, sizeof(suffix), "manifests/%s",
		 ref->tag[0] ? ref->tag : ds);
	r = lp_reg_url(reg, ref, suffix, url, sizeof(url));
	if (r < 0)
		return r;
	snprintf(ct, sizeof(ct), "Content-Type: %s", media_type);
	resp = malloc(sizeof(*resp));
	if (!resp)
		return -ENOMEM;
	init_req(&req, ref, "PUT", url, "manifest PUT");
	req.headers = hdrs;
	req.body = data;
	req.body_len = len;
	r = lp_reg_do(reg, &req, resp, err);
	if (r < 0)
		goto out;
	if (resp->status != 201 && resp->status != 200) {
		r = lp_reg_status_err(&req, resp, err);
		goto out;
	}
	if (resp->docker_digest[0] &&
	    (lp_digest_parse(resp->docker_digest, &sent) < 0 ||
	     !lp_digest_equal(&sent, &d))) {
		r = lp_err_set(err, -EPROTO,
			       "manifest PUT %s: registry says digest %s, "
			       "we sent %s",
			       url, resp->docker_digest, ds);
		goto out;
	}
	if (ret_digest)
		*ret_digest = d;
out:
	free(resp);
	return r;
}

/* ---- referrers (OCI 1.1 API, else the referrers tag schema) ---------- */

static int buf_sink_write(void *ctx, const void *data, size_t len)
{
	return lp_buf_append(ctx, data, len);
}

static void buf_sink_reset(void *ctx)
{
	lp_buf_reset(ctx);
}

/* GET referrers/@subject; *ret_status 200 with the body in @body, or 404 */
static int get_referrers_api(struct lp_reg *reg, const struct lp_reg_ref *ref,
			     const char *subject, const char *artifact_type,
			     struct lp_buf *body, long *ret_status,
			     struct lp_err *err)
{
	struct lp_reg_sink sink = { .write = buf_sink_write,
				    .reset = buf_sink_reset,
				    .ctx = body };
	const char *hdrs[] = { "Accept: " LP_REG_MT_OCI_INDEX, NULL };
	struct lp_reg_resp *resp = NULL;
	struct lp_reg_req req;
	char url[LP_REG_URL_MAX], suffix[LP_DIGEST_STR_LEN + 256];
	int r;

	if (snprintf(suffix, sizeof(suffix), "referrers/%s%s%s", subject,
		     artifact_type ? "?artifactType=" : "",
		     artifact_type ? artifact_type : "") >= (int)sizeof(suffix))
		return -ENAMETOOLONG;
	r = lp_reg_url(reg, ref, suffix, url, sizeof(url));
	if (r < 0)
		return r;
	resp = malloc(sizeof(*resp));
	if (!resp)
		return -ENOMEM;
	init_req(&req, ref, "GET", url, "referrers");
	req.actions = "pull";
	req.headers = hdrs;
	req.sink = &sink;
	r = lp_reg_do_follow(reg, &req, resp, NULL, 0, err);
	if (r == 0) {
		*ret_status = resp->status;
		/* anything but a JSON index means "no referrers API" (a 404,
		 * or a registry answering every unknown path with a page) */
		if (resp->status == 200 &&
		    strncmp(resp->content_type, LP_REG_MT_OCI_INDEX,
			    strlen(LP_REG_MT_OCI_INDEX)))
			*ret_status = 404;
	}
	free(resp);
	return r;
}

/* the referrers tag of @subject: "sha256-<hex>" in @ref's repository */
static void tag_ref(const struct lp_reg_ref *ref, const char *subject,
		    struct lp_reg_ref *ret)
{
	*ret = *ref;
	ret->has_digest = false;
	snprintf(ret->tag, sizeof(ret->tag), "sha256-%s", subject + 7);
}

int lp_reg_referrers(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const struct lp_digest *subject, const char *artifact_type,
		     struct lp_reg_manifest **ret_index, struct lp_err *err)
{
	return lp_reg_referrers_from(reg, ref, subject, artifact_type,
				     ret_index, NULL, err);
}

/*
 * The referrers tag's GET, run on a thread of its own while the API is
 * asked. Its fields are the thread's until it is joined; @reg and @ref
 * are borrowed from lp_reg_referrers_from(), which joins before it
 * returns.
 */
struct tag_job {
	struct lp_reg *reg;
	const struct lp_reg_ref *ref;
	const char *subject; /* "sha256:<hex>" */
	struct lp_reg_manifest *index; /* the answer (owned), or NULL */
	struct lp_err err;
	int r; /* 0, or -errno with err */
};

/* the index under @j's referrers tag; anything else there is -EPROTO */
static void *tag_main(void *arg)
{
	struct tag_job *j = arg;
	struct lp_reg_ref tref;

	tag_ref(j->ref, j->subject, &tref);
	j->r = lp_reg_manifest_get(j->reg, &tref, &j->index, &j->err);
	if (j->r == 0 && !lp_reg_manifest_is_index(j->index)) {
		lp_reg_manifest_free(j->index);
		j->index = NULL;
		j->r = lp_err_set(&j->err, -EPROTO,
				  "%s/%s:%s is not an index of referrers",
				  j->ref->host, j->ref->repo, tref.tag);
	}
	return NULL;
}

/*
 * The referrers tag is asked at the same time as the API unless the host's
 * last answer to the API was an index (reg_caps_referrers_api()): on a
 * registry without the API (Debian's docker-registry) the lookup then
 * costs one round trip instead of two. The price, on a registry with the
 * API, is one tag GET whose answer is thrown away, on the first lookup
 * of the process on that host (and after the API last failed it): its
 * later lookups ask the API alone, as before. The API's index still wins
 * whatever the tag says, and the tag's answer is used exactly when it
 * was before: the API answered, but not with an index.
 */
int lp_reg_referrers_from(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_digest *subject,
			  const char *artifact_type,
			  struct lp_reg_manifest **ret_index, bool *ret_api,
			  struct lp_err *err)
{
	struct reg_caps *caps = lp_reg_caps(reg);
	struct tag_job tag = { .reg = reg, .ref = ref };
	struct lp_buf body;
	pthread_t t;
	char ds[LP_DIGEST_STR_LEN + 1];
	bool both = false;
	long status = 0;
	int r;

	lp_digest_format(subject, ds);
	tag.subject = ds;
	lp_buf_init(&body, LP_REG_MANIFEST_MAX);
	if (ret_api)
		*ret_api = false;
	/* no thread (out of them): the tag after the API, as when serial */
	if (!reg_caps_referrers_api(caps, ref->host))
		both = pthread_create(&t, NULL, tag_main, &tag) == 0;
	r = get_referrers_api(reg, ref, ds, artifact_type, &body, &status, err);
	/* a 404 says the host has no API; another answer (a 401 after a
	 * failed auth, a 5xx) says nothing about it */
	if (r == 0 && (status == 200 || status == 404))
		reg_caps_note(caps, ref->host,
			      status == 200 ? REG_SEEN_REFERRERS_API :
					      REG_SEEN_NO_REFERRERS_API,
			      status);
	if (r == 0 && status == 200) {
		if (ret_api)
			*ret_api = true;
		r = lp_reg_manifest_parse(body.data ? (void *)body.data : "",
					  body.len, LP_REG_MT_OCI_INDEX,
					  ret_index);
		if (r < 0)
			r = lp_err_set(err, r,
				       "referrers of %s: malformed "
				       "index",
				       ds);
		goto out;
	}
	if (r < 0)
		goto out;
	if (both) {
		pthread_join(t, NULL);
		both = false;
	} else {
		tag_main(&tag);
	}
	r = tag.r;
	*ret_index = tag.index;
	tag.index = NULL;
	lp_err_clear(err);
	if (r < 0 && err)
		*err = tag.err;
out:
	if (both) /* its answer is not used, but it borrows reg and ref */
		pthread_join(t, NULL);
	lp_reg_manifest_free(tag.index);
	lp_buf_release(&body);
	return r;
}

/* the tag schema index with @desc (JSON) added, replacing an entry of the
 * same digest */
static int merge_index(const struct lp_reg_manifest *old, json_object *desc,
		       const char *digest, char **ret_json)
{
	json_object *root = NULL, *arr, *neu = NULL, *e, *d;
	const void *raw;
	size_t len, i, n;
	int r = 0;

	if (old) {
		raw = lp_reg_manifest_raw(old, &len);
		root = json_tokener_parse(raw);
		if (!root ||
		    !json_object_object_get_ex(root, "manifests", &arr) ||
		    !json_object_is_type(arr, json_type_array)) {
			r = -EPROTO;
			goto out;
		}
		neu = json_object_new_array();
		n = json_object_array_length(arr);
		for (i = 0; i < n; i++) {
			e = json_object_array_get_idx(arr, i);
			if (json_object_object_get_ex(e, "digest", &d) &&
			    !strcmp(json_object_get_string(d), digest))
				continue;
			json_object_array_add(neu, json_object_get(e));
		}
		json_object_object_add(root, "manifests", neu);
	} else {
		root = json_object_new_object();
		json_object_object_add(root, "schemaVersion",
				       json_object_new_int(2));
		json_object_object_add(
			root, "mediaType",
			json_object_new_string(LP_REG_MT_OCI_INDEX));
		neu = json_object_new_array();
		json_object_object_add(root, "manifests", neu);
	}
	json_object_array_add(neu, json_object_get(desc));
	*ret_json = strdup(json_object_to_json_string_ext(
		root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!*ret_json)
		r = -ENOMEM;
out:
	json_object_put(root);
	return r;
}

int lp_reg_push_referrer(struct lp_reg *reg, const struct lp_reg_ref *ref,
			 const struct lp_digest *subject,
			 const char *artifact_type, const void *data,
			 size_t len, struct lp_digest *ret_digest,
			 struct lp_err *err)
{
	struct lp_reg_manifest *old = NULL;
	struct lp_reg_ref mref, tref;
	struct lp_digest d;
	json_object *desc = NULL;
	char ds[LP_DIGEST_STR_LEN + 1], ss[LP_DIGEST_STR_LEN + 1];
	char *json = NULL;
	long status = 0;
	struct lp_buf body;
	int r;

	lp_buf_init(&body, LP_REG_MANIFEST_MAX);
	lp_sha256(data, len, &d);
	lp_digest_format(&d, ds);
	lp_digest_format(subject, ss);
	mref = *ref;
	mref.tag[0] = '\0';
	mref.has_digest = true;
	mref.digest = d;
	r = lp_reg_push_manifest(reg, &mref, LP_REG_MT_OCI_MANIFEST, data, len,
				 NULL, err);
	if (r < 0)
		goto out;
	if (ret_digest)
		*ret_digest = d;
	/* a registry with the referrers API lists it by now */
	r = get_referrers_api(reg, ref, ss, NULL, &body, &status, err);
	if (r < 0)
		goto out;
	if (status == 200 && body.data && strstr((char *)body.data, ds)) {
		r = 1;
		goto out;
	}
	lp_err_clear(err);
	tag_ref(ref, ss, &tref);
	r = lp_reg_manifest_get(reg, &tref, &old, err);
	if (r == -ENOENT) {
		lp_err_clear(err);
		old = NULL;
	} else if (r < 0) {
		goto out;
	} else if (!lp_reg_manifest_is_index(old)) {
		r = lp_err_set(err, -EPROTO,
			       "%s/%s:%s exists and is not an index of "
			       "referrers",
			       ref->host, ref->repo, tref.tag);
		goto out;
	}
	desc = json_object_new_object();
	json_object_object_add(desc, "mediaType",
			       json_object_new_string(LP_REG_MT_OCI_MANIFEST));
	json_object_object_add(desc, "digest", json_object_new_string(ds));
	json_object_object_add(desc, "size",
			       json_object_new_int64((int64_t)len));
	json_object_object_add(desc, "artifactType",
			       json_object_new_string(artifact_type));
	r = merge_index(old, desc, ds, &json);
	if (r < 0) {
		r = lp_err_set(err, r, "%s/%s:%s: cannot update the index",
			       ref->host, ref->repo, tref.tag);
		goto out;
	}
	r = lp_reg_push_manifest(reg, &tref, LP_REG_MT_OCI_INDEX, json,
				 strlen(json), NULL, err);
out:
	json_object_put(desc);
	free(json);
	lp_reg_manifest_free(old);
	lp_buf_release(&body);
	return r;
}
