// SPDX-License-Identifier: Apache-2.0
/*
 * Finding the gzip index of a plain layer (issue 14, docs/snapshotter.md
 * "Plain gzip layers"): a layer whose labels carry no TOC digest may still
 * be mounted lazily when someone ran `lazypull index` on its image. The
 * index is looked for in the directories the config names (the layout
 * `lazypull index --output DIR` writes: DIR/<layer hex>.gzidx), then in the
 * registry among the artifacts that refer to the image manifest (what
 * `lazypull index IMAGE` pushes: an OCI manifest of artifact type
 * LP_INDEX_ARTIFACT_TYPE whose layers are the indexes, each annotated with
 * the layer it indexes). Everything found is input from outside: sizes are
 * bounded before anything is read, and a candidate counts only once
 * lp_index_parse() took it and it names this layer. What an index vouches
 * for at read time (span digests, tar headers) is the mount's business
 * (lp_mount_layer()); this file only decides which bytes to hand it.
 *
 * What the registry says about an image (its manifest's layers, the indexes
 * its referrers offer, or that it has none) is kept for
 * LP_SNAP_INDEX_CACHE_TTL_S in a small cache, so that containerd's walk
 * down an image's layers asks for the manifest and the referrers once, not
 * once per layer; an index pushed meanwhile shows once that has passed.
 *
 * A lookup ends within LP_SNAP_INDEX_LOOKUP_MS: it is checked before every
 * request (or set of requests started together: img_fetch()), and each
 * request is bounded (the caller's registry client has
 * short timeouts, LP_SNAP_INDEX_REQUEST_MS); past it the layer takes the
 * plain path (reason index_timeout). A failure to read the manifest or
 * the referrers is cached like an answer, so that the image's other layers
 * do not wait for the same registry again.
 *
 * An image's prefetch profile (lp_snap_profile_find, format/lp_profile.h)
 * is found by a lookup of its own, on its own, shorter deadline
 * (LP_SNAP_PROFILE_LOOKUP_MS), so that it never delays a gzip index
 * lookup nor changes its answer: DIR/<manifest hex>.profile in the index
 * directories, else the newest referrer artifact of type
 * LP_PROFILE_ARTIFACT_TYPE (at most LP_PROFILE_MAX_SIZE bytes), kept in
 * the same cache under a key of its own (PROFILE_KEY). The gzip index
 * lookup only notes the newest profile artifact it sees among the
 * referrers; a profile lookup of the image reuses that note instead of
 * asking for the referrers again. A profile is used only for what it says about a layer; it
 * cannot make anything serve other bytes (the prefetched chunks are
 * verified like any other), so the worst a forged one does is waste a
 * bounded fetch.
 *
 * Threads: any number of lookups may run at once; the cache has one lock,
 * taken alone and never across I/O. A lookup that knows the manifest
 * digest asks for the referrers on a thread of its own while it reads the
 * manifest (img_fetch(), the client is made for many threads), and joins
 * it before it goes on. Lookups of an image another lookup is
 * fetching wait for it (single flight, bounded by their deadline) instead
 * of asking the registry too.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lp_common.h"
#include "lp_io.h"
#include "lp_json.h"
#include "lp_log.h"
#include "lp_profile.h"
#include "lp_registry.h"
#include "snap_int.h"

uint64_t lp_snap_index_bound(uint64_t layer_size)
{
	uint64_t b = layer_size / LP_SNAP_INDEX_LAYER_DIV + LP_SNAP_INDEX_SLACK;

	if (!layer_size || b > LP_SNAP_INDEX_MAX)
		return LP_SNAP_INDEX_MAX;
	return b;
}

void lp_snap_index_found_clear(struct lp_snap_index_found *f)
{
	if (!f)
		return;
	free(f->data);
	free(f->sig);
	memset(f, 0, sizeof(*f));
}

/* what a lookup saw: the first refusal, for the reason bad_index */
struct lookup {
	const struct lp_digest *layer;
	uint64_t size; /* the descriptor's; 0: not known (yet) */
	const char *want_index; /* the index digest to accept, or NULL */
	const char *manifest; /* the image manifest's digest, or NULL */
	uint64_t deadline_ns; /* lp_mono_ns() past which it gives up */
	const char *what; /* "gzip index", "prefetch profile" */
	int budget_ms; /* deadline_ns - its start */
	bool refused; /* a candidate was refused */
	struct lp_err refusal; /* why (the first) */
	bool unreachable; /* a candidate could not be fetched */
	struct lp_err failure; /* why (the first) */
};

/*
 * refuse() - a candidate index of @lk->layer refused for @r (@err says
 * why; @what names it, "gzip index from WHERE refused"): logged, and the
 * first refusal remembered in @lk. Returns 0 (not taken).
 */
static int refuse(struct lookup *lk, const char *what, int r,
		  const struct lp_err *err)
{
	char ls[LP_DIGEST_STR_LEN + 1];

	lp_digest_format(lk->layer, ls);
	lp_log_warn("layer %s: %s: %s", ls, what, lp_err_str(err, r));
	if (!lk->refused)
		lp_err_set(&lk->refusal, r, "%s: %s", what, lp_err_str(err, r));
	lk->refused = true;
	return 0;
}

/*
 * check() - take @data (@len bytes, malloc'ed; taken in every case) from
 * @where as the index of @lk->layer if it is one: it parses, names the
 * layer, and agrees with the descriptor's size. Returns 1 taken (@ret
 * filled), 0 refused (logged, remembered in @lk).
 */
static int check(struct lookup *lk, uint8_t *data, size_t len,
		 const char *where, struct lp_snap_index_found *ret)
{
	struct lp_index *ix = NULL;
	struct lp_err err = { 0 };
	struct lp_digest id;
	char want[LP_DIGEST_STR_LEN + 1], got[LP_DIGEST_STR_LEN + 1];
	char what[LP_SNAP_PATH_MAX + 32];
	int r;

	lp_sha256(data, len, &id);
	lp_digest_format(&id, got);
	if (lk->want_index && strcmp(got, lk->want_index)) {
		r = lp_err_set(&err, -EBADMSG,
			       "its digest is %s, the layer's recorded index "
			       "is %s",
			       got, lk->want_index);
		goto refused;
	}
	r = lp_index_parse(data, len, &ix, &err);
	if (r < 0)
		goto refused;
	if (!lp_digest_equal(lp_index_blob_digest(ix), lk->layer)) {
		lp_digest_format(lk->layer, want);
		lp_digest_format(lp_index_blob_digest(ix), got);
		r = lp_err_set(&err, -EBADMSG, "it indexes layer %s, not %s",
			       got, want);
		goto refused;
	}
	if (lk->size && lp_index_blob_size(ix) != lk->size) {
		r = lp_err_set(&err, -EBADMSG,
			       "it indexes a blob of %llu bytes, the manifest "
			       "says %llu",
			       (unsigned long long)lp_index_blob_size(ix),
			       (unsigned long long)lk->size);
		goto refused;
	}
	lp_snap_index_found_clear(ret);
	lp_digest_format(&id, ret->digest);
	ret->blob_size = lp_index_blob_size(ix);
	ret->size_checked = lk->size != 0; /* compared just above */
	snprintf(ret->where, sizeof(ret->where), "%s", where);
	ret->data = data;
	ret->len = len;
	lp_index_free(ix);
	return 1;
refused:
	lp_index_free(ix);
	free(data);
	snprintf(what, sizeof(what), "gzip index from %s refused", where);
	return refuse(lk, what, r, &err);
}

int lp_snap_read_file(const char *path, size_t limit, uint8_t **ret,
		      size_t *ret_len)
{
	return lp_file_read_bounded(path, limit, O_NOFOLLOW | O_NONBLOCK,
				    (void **)ret, ret_len);
}

/*
 * the signature sidecar of the image @lk->manifest beside an index found
 * in @dir (DIR/<manifest hex>.gzidx.sig, `lazypull index --output DIR
 * --sign-key`) into @ret, when there is one; read bounded, not checked
 * (the mount checks it: layers.c)
 */
static void local_sig(const char *dir, const struct lookup *lk,
		      struct lp_snap_index_found *ret)
{
	char path[LP_SNAP_PATH_MAX];
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (!lk->manifest)
		return;
	snprintf(ret->manifest, sizeof(ret->manifest), "%s", lk->manifest);
	if (snprintf(path, sizeof(path), "%s/%s" LP_INDEX_SIG_SUFFIX, dir,
		     lk->manifest + 7) >= (int)sizeof(path))
		return;
	r = lp_snap_read_file(path, LP_INDEX_SIG_MAX_JSON, &data, &len);
	if (r < 0) {
		if (r != -ENOENT)
			lp_log_warn("gzip index signature %s: %s", path,
				    r == -EFBIG ? "over LP_INDEX_SIG_MAX_JSON" :
						  strerror(-r));
		return;
	}
	ret->sig = (char *)data;
	ret->sig_len = len;
}

/* DIR/<hex>.gzidx in each configured directory; 1 found, 0 not */
static int find_local(const struct lp_snap_config *c, struct lookup *lk,
		      struct lp_snap_index_found *ret)
{
	char ds[LP_DIGEST_STR_LEN + 1], path[LP_SNAP_PATH_MAX];
	uint8_t *data;
	size_t i, len = 0;
	int r;

	lp_digest_format(lk->layer, ds);
	for (i = 0; i < c->n_index_dirs; i++) {
		if (snprintf(path, sizeof(path), "%s/%s" LP_SNAP_INDEX_SUFFIX,
			     c->index_dirs[i], ds + 7) >= (int)sizeof(path))
			continue;
		data = NULL;
		r = lp_snap_read_file(path, LP_SNAP_INDEX_MAX, &data, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			lp_log_warn("layer %s: gzip index %s: %s", ds, path,
				    r == -EFBIG ? "bigger than the bound "
						  "LP_SNAP_INDEX_MAX" :
						  strerror(-r));
			/* the file's fault (too big, not a regular file, a
			 * symlink) refuses it; a local I/O or permission
			 * problem does not make it a bad index */
			if (r != -EFBIG && r != -EINVAL && r != -ELOOP)
				continue;
			if (!lk->refused)
				lp_err_set(&lk->refusal, r, "gzip index %s: %s",
					   path, strerror(-r));
			lk->refused = true;
			continue;
		}
		if (check(lk, data, len, path, ret)) {
			local_sig(c->index_dirs[i], lk, ret);
			return 1;
		}
	}
	return 0;
}

/* -ETIMEDOUT (@err says so) when @lk is past its deadline, before @step */
static int over(const struct lookup *lk, const char *step, struct lp_err *err)
{
	if (lp_mono_ns() < lk->deadline_ns)
		return 0;
	return lp_err_set(err, -ETIMEDOUT,
			  "the %s lookup took over %d ms (before %s)", lk->what,
			  lk->budget_ms, step);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* ---- what the registry says about an image, cached ------------------- */

/* a gzip index an artifact offers for a layer (not fetched yet) */
struct offer {
	struct lp_digest layer;
	/* the artifact layer that carries it: its digest and size (the
	 * index's own digest, of the uncompressed bytes, is known once it
	 * is fetched) and how it is carried */
	struct lp_digest index;
	uint64_t size;
	enum lp_index_transport transport;
	char artifact[LP_DIGEST_STR_LEN + 1];
	/* the artifact's signature annotations as a sidecar's JSON
	 * (artifact_sig()), NULL: unsigned; owned */
	char *sig;
};

struct img_layer {
	struct lp_digest digest;
	uint64_t size;
	char *media_type; /* "" when absent */
};

/*
 * One image's manifest and referrers, as fetched: immutable once made,
 * shared by reference (the count under the cache's lock).
 */
struct img {
	char key[LP_SNAP_PATH_MAX]; /* host/repo|manifest digest or tag */
	/* whose answer: the credentials it was asked with (a reference
	 * held, so no other identity's handle can take its address), NULL
	 * the client's; served only to lookups with the same handle */
	struct lp_reg_auth *auth;
	uint64_t at_ns; /* fetched then (lp_mono_ns) */
	unsigned int refs; /* protected by the cache's lock */
	char manifest[LP_DIGEST_STR_LEN + 1];
	struct img_layer *layers;
	size_t n_layers;
	struct offer *offers; /* newest artifact first */
	size_t n_offers;
	size_t n_referrers, n_examined;
	size_t n_other; /* referrers of another artifact type, not fetched */
	bool no_referrers; /* the registry has none for the manifest */
	bool referrers_api; /* the API answered (maybe filtered by type) */
	/* the newest prefetch profile artifact among the referrers (not
	 * fetched: lp_snap_profile_find() does, on its own deadline) */
	bool has_profile_art;
	struct lp_digest profile_art;
	/* a profile entry (key PROFILE_KEY...): the newest prefetch profile
	 * of the manifest: its bytes (NULL: none taken), where from; or why
	 * the one offered was not taken (-errno, 0: none offered) */
	uint8_t *profile;
	size_t profile_len;
	char profile_where[LP_DIGEST_STR_LEN + 32];
	int profile_error;
	char profile_msg[LP_ERR_MSG_MAX];
	/* the registry could not be read (cached too): -errno, the reason
	 * and why; 0 otherwise */
	int error;
	enum lp_snap_fallback why;
	char msg[LP_ERR_MSG_MAX];
};

/* an image being fetched by one lookup, which the others wait for */
struct inflight {
	char key[LP_SNAP_PATH_MAX];
	const struct lp_reg_auth *auth; /* compared, not dereferenced */
	bool busy;
};

struct lp_snap_index_cache {
	pthread_mutex_t lock;
	pthread_cond_t fetched; /* an inflight fetch ended */
	struct img *slot[LP_SNAP_INDEX_CACHE_ENTRIES]; /* protected by lock */
	/* protected by lock: the images being fetched (single flight: the
	 * layers of an image mounted at once, neighbours ahead of use, ask
	 * the registry once, not once each) */
	struct inflight inflight[LP_SNAP_INDEX_CACHE_ENTRIES];
};

static void img_free(struct img *im)
{
	size_t i;

	if (!im)
		return;
	for (i = 0; i < im->n_layers; i++)
		free(im->layers[i].media_type);
	free(im->layers);
	for (i = 0; i < im->n_offers; i++)
		free(im->offers[i].sig);
	free(im->offers);
	free(im->profile);
	lp_reg_auth_unref(im->auth);
	free(im);
}

int lp_snap_index_cache_new(struct lp_snap_index_cache **ret_c)
{
	struct lp_snap_index_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->fetched, NULL);
	*ret_c = c;
	return 0;
}

void lp_snap_index_cache_free(struct lp_snap_index_cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < LP_SNAP_INDEX_CACHE_ENTRIES; i++)
		img_free(c->slot[i]); /* no lookup runs any more */
	pthread_cond_destroy(&c->fetched);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void img_unref(struct lp_snap_index_cache *c, struct img *im)
{
	bool last;

	if (!im)
		return;
	pthread_mutex_lock(&c->lock);
	last = --im->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		img_free(im);
}

static bool fresh(const struct img *im, uint64_t now)
{
	return now - im->at_ns <
	       (uint64_t)LP_SNAP_INDEX_CACHE_TTL_S * 1000000000u;
}

/* the fresh entry for @key asked with @auth, referenced (img_unref()), or
 * NULL */
static struct img *cache_get(struct lp_snap_index_cache *c, const char *key,
			     const struct lp_reg_auth *auth)
{
	struct img *im = NULL;
	uint64_t now = lp_mono_ns();
	size_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < LP_SNAP_INDEX_CACHE_ENTRIES; i++) {
		if (c->slot[i] && !strcmp(c->slot[i]->key, key) &&
		    c->slot[i]->auth == auth && fresh(c->slot[i], now)) {
			im = c->slot[i];
			im->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return im;
}

/* keep @im (the caller keeps its own reference), replacing an entry of
 * the same key, else the oldest */
static void cache_put(struct lp_snap_index_cache *c, struct img *im)
{
	struct img *old = NULL;
	size_t i, victim = 0;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < LP_SNAP_INDEX_CACHE_ENTRIES; i++) {
		if (!c->slot[i] || (!strcmp(c->slot[i]->key, im->key) &&
				    c->slot[i]->auth == im->auth)) {
			victim = i;
			break;
		}
		if (c->slot[i]->at_ns < c->slot[victim]->at_ns)
			victim = i;
	}
	old = c->slot[victim];
	c->slot[victim] = im;
	im->refs++;
	if (old && --old->refs > 0)
		old = NULL; /* still in use: its last user frees it */
	pthread_mutex_unlock(&c->lock);
	img_free(old);
}

static const struct img_layer *img_layer(const struct img *im,
					 const struct lp_digest *d)
{
	size_t i;

	for (i = 0; i < im->n_layers; i++)
		if (lp_digest_equal(&im->layers[i].digest, d))
			return &im->layers[i];
	return NULL;
}

/*
 * artifact_sig() - the signature annotations of artifact manifest @art
 * (docs/format.md "Signed indexes") as a sidecar's JSON
 * ({"annotations": {the three}}, malloc'ed), NULL when it carries none
 * (or no memory: unsigned then). Not checked here: the mount does.
 */
static char *artifact_sig(const struct lp_reg_manifest *art)
{
	static const char *const keys[] = { LP_INDEX_SIG_ANN_STATEMENT,
					    LP_INDEX_SIG_ANN_SIGNATURE,
					    LP_INDEX_SIG_ANN_KEY };
	json_object *o = NULL, *ann, *out = NULL, *oann, *v;
	const void *raw;
	char *sig = NULL;
	size_t len, i;

	raw = lp_reg_manifest_raw(art, &len);
	/* the registry client bounded the manifest already */
	if (lp_json_parse(raw, len, 16, json_type_object, &o) < 0 ||
	    !json_object_object_get_ex(o, "annotations", &ann) ||
	    !json_object_is_type(ann, json_type_object))
		goto out;
	out = json_object_new_object();
	oann = json_object_new_object();
	if (!out || !oann) {
		json_object_put(oann);
		goto out;
	}
	json_object_object_add(out, "annotations", oann);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_object_get_ex(ann, keys[i], &v))
			json_object_object_add(oann, keys[i],
					       json_object_get(v));
	if (json_object_object_length(oann))
		sig = strdup(json_object_to_json_string_ext(
			out, JSON_C_TO_STRING_PLAIN |
				     JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(out);
	json_object_put(o);
	return sig;
}

/* the gzip indexes artifact @e of the referrers offers, appended to @im */
static void read_artifact(struct lp_reg *reg, const struct lp_reg_ref *ref,
			  const struct lp_reg_desc *e, struct img *im,
			  size_t *cap)
{
	struct lp_reg_manifest *art = NULL;
	struct lp_reg_ref aref = *ref;
	struct lp_err err = { 0 };
	const struct lp_reg_desc *d;
	struct offer *o;
	const char *a;
	char *sig = NULL;
	size_t k;
	int r, t;

	aref.tag[0] = '\0';
	aref.has_digest = true;
	aref.digest = e->digest;
	r = lp_reg_manifest_get(reg, &aref, &art, &err);
	if (r < 0) {
		char as[LP_DIGEST_STR_LEN + 1];

		lp_digest_format(&e->digest, as);
		lp_log_warn("%s/%s: referrer %s unreadable: %s", ref->host,
			    ref->repo, as, lp_err_str(&err, r));
		return;
	}
	if (!lp_reg_manifest_is_index(art))
		sig = artifact_sig(art);
	for (k = 0;
	     !lp_reg_manifest_is_index(art) && k < lp_reg_manifest_count(art);
	     k++) {
		d = lp_reg_manifest_layer(art, k);
		a = lp_reg_desc_annotation(d, LP_INDEX_ANN_LAYER);
		t = lp_index_transport_of(d->media_type);
		if (t < 0 || !a || im->n_offers >= LP_SNAP_INDEX_OFFERS_MAX ||
		    lp_grow_array((void **)&im->offers, cap, im->n_offers + 1,
				  sizeof(*im->offers)) < 0)
			continue;
		o = &im->offers[im->n_offers];
		if (lp_digest_parse(a, &o->layer) < 0)
			continue;
		o->index = d->digest;
		o->size = d->size;
		o->transport = (enum lp_index_transport)t;
		lp_digest_format(&e->digest, o->artifact);
		o->sig = sig ? strdup(sig) : NULL;
		im->n_offers++;
	}
	free(sig);
	lp_reg_manifest_free(art);
}

/*
 * read_profile() - the profile referrer artifact @art offers, into @im (or
 * why not into im->profile_error): one layer of LP_PROFILE_MEDIA_TYPE, at
 * most LP_PROFILE_MAX_SIZE bytes (checked before it is fetched); two
 * requests, @lk's deadline checked before each
 */
static void read_profile(struct lp_reg *reg, const struct lp_reg_ref *ref,
			 const struct lp_digest *art_digest,
			 const struct lookup *lk, struct img *im)
{
	struct lp_reg_manifest *art = NULL;
	struct lp_reg_ref aref = *ref;
	struct lp_err err = { 0 };
	const struct lp_reg_desc *d = NULL;
	char as[LP_DIGEST_STR_LEN + 1];
	void *data = NULL;
	size_t k, len = 0;
	int r;

	lp_digest_format(art_digest, as);
	snprintf(im->profile_where, sizeof(im->profile_where),
		 "registry artifact %s", as);
	aref.tag[0] = '\0';
	aref.has_digest = true;
	aref.digest = *art_digest;
	r = over(lk, "the profile artifact", &err);
	if (r == 0)
		r = lp_reg_manifest_get(reg, &aref, &art, &err);
	for (k = 0; r == 0 && !lp_reg_manifest_is_index(art) &&
		    k < lp_reg_manifest_count(art);
	     k++) {
		d = lp_reg_manifest_layer(art, k);
		if (d->media_type &&
		    !strcmp(d->media_type, LP_PROFILE_MEDIA_TYPE))
			break;
		d = NULL;
	}
	if (r == 0 && !d)
		r = lp_err_set(&err, -EINVAL, "no layer of media type %s",
			       LP_PROFILE_MEDIA_TYPE);
	if (r == 0 && d->size > LP_PROFILE_MAX_SIZE)
		r = lp_err_set(&err, -EFBIG,
			       "%llu bytes, over LP_PROFILE_MAX_SIZE (not "
			       "fetched)",
			       (unsigned long long)d->size);
	if (r == 0)
		r = over(lk, "the profile blob", &err);
	if (r == 0) /* digest and size verified by the client */
		r = lp_reg_fetch_blob_mem(reg, ref, &d->digest, (size_t)d->size,
					  &data, &len, &err);
	if (r == 0) {
		im->profile = data;
		im->profile_len = len;
	} else {
		im->profile_error = r;
		snprintf(im->profile_msg, sizeof(im->profile_msg), "%s",
			 lp_err_str(&err, r));
	}
	lp_reg_manifest_free(art);
}

/*
 * The referrers request of img_fetch(): on a thread of its own, at the
 * same time as the manifest's, when the manifest digest is known before
 * the manifest is read (the cri labels); else after it, on the caller's
 * thread. The fields are the thread's until it is joined; @reg and @ref
 * are borrowed from img_fetch(), which joins before it returns.
 */
struct refs_job {
	struct lp_reg *reg;
	const struct lp_reg_ref *ref;
	struct lp_digest subject; /* the image manifest's digest */
	struct lp_reg_manifest *refs; /* the answer (owned), or NULL */
	bool api; /* the referrers API gave it (not the tag) */
	struct lp_err why; /* what the registry said */
	int r; /* 0, -ENOENT none, or -errno with why */
};

static void *refs_main(void *arg)
{
	struct refs_job *j = arg;

	j->r = lp_reg_referrers_from(j->reg, j->ref, &j->subject,
				     LP_INDEX_ARTIFACT_TYPE, &j->refs, &j->api,
				     &j->why);
	return NULL;
}

/*
 * img_fetch() - what the registry says about image @ref (by
 * @manifest_digest when given): its manifest's layers, and the gzip
 * indexes its newest LP_SNAP_INDEX_REFERRERS_MAX referrers offer. Returns
 * 0 with *@ret_im (one reference), or -errno with @err (manifest or
 * referrers unreachable).
 *
 * With @manifest_digest the referrers are asked at the same time as the
 * manifest (they need its digest, not its content): one round trip
 * instead of two (and lp_reg_referrers_from() asks the API and the tag
 * at once). Both start before the deadline (one over() check), and the
 * requests made are the same as serially, but for a manifest that
 * cannot be read (its referrers were asked for nothing, and the failure
 * waits for their bounded answer before it is reported) and a digest
 * that names an index (the referrers are asked again, serially, for the
 * platform manifest it leads to). By tag, the manifest comes first: its
 * digest is the referrers' subject.
 */
static int img_fetch(struct lp_reg *reg, const struct lp_reg_ref *ref,
		     const char *key, const struct lp_digest *manifest_digest,
		     const struct lookup *lk, struct img **ret_im,
		     struct lp_err *err)
{
	struct lp_reg_manifest *m = NULL, *refs = NULL;
	struct lp_reg_ref mref = *ref;
	struct lp_err why = { 0 }; /* what the registry said */
	struct refs_job job = { .reg = reg, .ref = ref };
	const struct lp_reg_desc *d, *e;
	struct img *im = NULL;
	pthread_t t;
	bool early = false; /* the referrers were asked on t */
	bool running = false; /* t not joined yet */
	size_t i, cap = 0;
	int r;

	if (manifest_digest) {
		mref.tag[0] = '\0';
		mref.has_digest = true;
		mref.digest = *manifest_digest;
	}
	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	im->refs = 1;
	im->at_ns = lp_mono_ns();
	snprintf(im->key, sizeof(im->key), "%s", key);
	im->auth = lp_reg_auth_ref(ref->auth);
	/* the referrers are asked by API and by tag at once: a connection
	 * for the second, opened while the manifest's request goes out */
	(void)lp_reg_warm(reg, ref, LP_SNAP_WARM_LOOKUP);
	r = over(lk, "the image manifest", err);
	if (r < 0)
		goto out;
	if (manifest_digest) { /* no thread: the referrers after it */
		job.subject = *manifest_digest;
		early = running =
			pthread_create(&t, NULL, refs_main, &job) == 0;
	}
	r = lp_reg_manifest_fetch(reg, &mref, NULL, &m, &why);
	if (r < 0) {
		r = lp_err_set_from(err, &why, r, "the image manifest: %s",
				    lp_err_str(&why, r));
		goto out;
	}
	lp_digest_format(lp_reg_manifest_digest(m), im->manifest);
	im->layers = calloc(lp_reg_manifest_count(m) + 1, sizeof(*im->layers));
	if (!im->layers) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < lp_reg_manifest_count(m); i++) {
		d = lp_reg_manifest_layer(m, i);
		im->layers[i].digest = d->digest;
		im->layers[i].size = d->size;
		im->layers[i].media_type =
			strdup(d->media_type ? d->media_type : "");
		if (!im->layers[i].media_type) {
			r = -ENOMEM;
			goto out;
		}
		im->n_layers++;
	}
	if (running) {
		pthread_join(t, NULL);
		running = false;
	}
	/* a digest that named an index led to its platform's manifest:
	 * the referrers asked early were another subject's */
	if (!early ||
	    !lp_digest_equal(&job.subject, lp_reg_manifest_digest(m))) {
		lp_reg_manifest_free(job.refs);
		memset(&job, 0, sizeof(job));
		job.reg = reg;
		job.ref = ref;
		job.subject = *lp_reg_manifest_digest(m);
		r = over(lk, "the referrers", err);
		if (r < 0)
			goto out;
		refs_main(&job);
	}
	r = job.r;
	refs = job.refs;
	job.refs = NULL;
	why = job.why;
	if (r == -ENOENT) {
		im->no_referrers = true;
		r = 0;
		goto out;
	}
	if (r < 0) {
		r = lp_err_set_from(err, &why, r, "the image's referrers: %s",
				    lp_err_str(&why, r));
		goto out;
	}
	/* from the end: the tag schema's index is append-ordered (an index
	 * pushed again is last); the API's order is not specified. Entries
	 * of another artifact type are passed over unfetched (the tag schema
	 * is never filtered; a registry may ignore ?artifactType=). */
	im->referrers_api = job.api;
	im->n_referrers = lp_reg_manifest_count(refs);
	for (i = im->n_referrers;
	     i-- > 0 && im->n_examined < LP_SNAP_INDEX_REFERRERS_MAX;) {
		e = lp_reg_manifest_layer(refs, i);
		if (e->artifact_type &&
		    !strcmp(e->artifact_type, LP_PROFILE_ARTIFACT_TYPE)) {
			/* the newest one, recorded: fetched by a profile
			 * lookup only, never on the indexes' deadline */
			im->n_other++;
			if (!im->has_profile_art) {
				im->has_profile_art = true;
				im->profile_art = e->digest;
			}
			continue;
		}
		if (e->artifact_type &&
		    strcmp(e->artifact_type, LP_INDEX_ARTIFACT_TYPE)) {
			im->n_other++;
			continue;
		}
		r = over(lk, "a referrer artifact", err);
		if (r < 0)
			goto out;
		read_artifact(reg, ref, e, im, &cap);
		im->n_examined++;
	}
out:
	if (running) /* its answer is not used, but it borrows reg and ref */
		pthread_join(t, NULL);
	lp_reg_manifest_free(job.refs);
	lp_reg_manifest_free(refs);
	lp_reg_manifest_free(m);
	if (r < 0) {
		img_free(im);
		return r;
	}
	*ret_im = im;
	return 0;
}

/*
 * img_failed() - an entry saying that the registry could not be read for
 * image @key (@r, @err), to be cached like an answer; NULL: no memory
 */
static struct img *img_failed(const char *key, struct lp_reg_auth *auth, int r,
			      enum lp_snap_fallback why,
			      const struct lp_err *err)
{
	struct img *im = calloc(1, sizeof(*im));

	if (!im)
		return NULL;
	im->refs = 1;
	im->at_ns = lp_mono_ns();
	snprintf(im->key, sizeof(im->key), "%s", key);
	im->error = r;
	im->why = why;
	im->auth = lp_reg_auth_ref(auth);
	snprintf(im->msg, sizeof(im->msg), "%s", lp_err_str(err, r));
	return im;
}

/*
 * the offered index @o of our layer, fetched, inflated when it travels
 * gzip'ed (its output under the same bound as a plain index's: the
 * layer's digest only vouches for the transfer, not for what it inflates
 * to) and checked; 1 taken
 */
static int take_offer(struct lp_reg *reg, const struct lp_reg_ref *ref,
		      const struct offer *o, struct lookup *lk,
		      struct lp_snap_index_found *ret)
{
	char where[LP_SNAP_PATH_MAX], ls[LP_DIGEST_STR_LEN + 1];
	char what[LP_SNAP_PATH_MAX + 32];
	struct lp_err err = { 0 };
	void *data = NULL;
	uint8_t *index = NULL;
	size_t len = 0, index_len = 0;
	int r;

	lp_digest_format(lk->layer, ls);
	snprintf(where, sizeof(where), "registry artifact %s%s", o->artifact,
		 o->transport == LP_INDEX_TRANSPORT_GZIP ? " (+gzip)" : "");
	if (o->size > lp_snap_index_bound(lk->size))
		r = lp_err_set(
			&err, -EFBIG,
			"%llu bytes, over the bound %llu for a layer "
			"of %llu bytes (not fetched)",
			(unsigned long long)o->size,
			(unsigned long long)lp_snap_index_bound(lk->size),
			(unsigned long long)lk->size);
	else { /* digest and size verified by the client */
		r = lp_reg_fetch_blob_mem(reg, ref, &o->index, (size_t)o->size,
					  &data, &len, &err);
		if (r < 0 && r != -EFBIG) {
			/* the registry's failure, not the index's */
			lp_log_warn("layer %s: gzip index in %s: %s", ls, where,
				    lp_err_str(&err, r));
			if (!lk->unreachable)
				lp_err_set(&lk->failure, r,
					   "gzip index in %s: %s", where,
					   lp_err_str(&err, r));
			lk->unreachable = true;
			return 0;
		}
	}
	if (r < 0) {
		snprintf(what, sizeof(what), "gzip index in %s", where);
		return refuse(lk, what, r, &err);
	}
	if (o->transport == LP_INDEX_TRANSPORT_PLAIN)
		return check(lk, data, len, where, ret);
	r = lp_index_transport_decode(o->transport, data, len,
				      lp_snap_index_bound(lk->size), &index,
				      &index_len, &err);
	free(data);
	if (r < 0) {
		snprintf(what, sizeof(what), "gzip index in %s refused", where);
		return refuse(lk, what, r, &err);
	}
	return check(lk, index, index_len, where, ret);
}

/*
 * wait_inflight() - when another lookup is fetching image @key for @auth,
 * wait until it is done and return 1 (its answer is in the cache), or
 * -ETIMEDOUT when @lk's deadline passes first (the owner's answer is still
 * to come: nothing to cache, nothing to overwrite); else mark it as ours
 * (*@ret_slot, -1 when every mark is taken: fetched without one) and
 * return 0
 */
static int wait_inflight(struct lp_snap_index_cache *c, const char *key,
			 const struct lp_reg_auth *auth,
			 const struct lookup *lk, int *ret_slot)
{
	struct timespec ts;
	bool waited = false;
	int r = 0;
	size_t i;

	*ret_slot = -1;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (i = 0; i < LP_SNAP_INDEX_CACHE_ENTRIES; i++)
			if (c->inflight[i].busy &&
			    c->inflight[i].auth == auth &&
			    !strcmp(c->inflight[i].key, key))
				break;
		if (i == LP_SNAP_INDEX_CACHE_ENTRIES)
			break;
		if (lp_mono_ns() >= lk->deadline_ns) {
			r = -ETIMEDOUT;
			break;
		}
		/* the condition uses CLOCK_REALTIME: a short wait, then look
		 * again (the deadline is on the monotonic clock) */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->fetched, &c->lock, &ts);
		waited = true;
	}
	if (waited && r == 0)
		r = 1;
	if (!waited && r == 0) {
		for (i = 0; i < LP_SNAP_INDEX_CACHE_ENTRIES; i++) {
			if (c->inflight[i].busy)
				continue;
			snprintf(c->inflight[i].key, sizeof(c->inflight[i].key),
				 "%s", key);
			c->inflight[i].auth = auth;
			c->inflight[i].busy = true;
			*ret_slot = (int)i;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* end_inflight() - the fetch marked @slot (-1: none) is over */
static void end_inflight(struct lp_snap_index_cache *c, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&c->lock);
	c->inflight[slot].busy = false;
	pthread_cond_broadcast(&c->fetched);
	pthread_mutex_unlock(&c->lock);
}

/* the cache key of image @ref's entry (img_lookup()), after @prefix: by
 * @manifest_digest when known, else by the reference's digest or tag */
static void image_key(const char *prefix, const struct lp_reg_ref *ref,
		      const struct lp_digest *manifest_digest, char *key,
		      size_t size)
{
	char ds[LP_DIGEST_STR_LEN + 1];

	if (manifest_digest)
		lp_digest_format(manifest_digest, ds);
	else if (ref->has_digest)
		lp_digest_format(&ref->digest, ds);
	snprintf(key, size, "%s%s/%s|%s", prefix, ref->host, ref->repo,
		 manifest_digest || ref->has_digest ? ds : ref->tag);
}

/*
 * img_lookup() - what the registry says about image @ref (by
 * @manifest_digest when given) for a lookup of layer @lk->layer: the
 * cache's entry, else fetched (a failure cached as an entry with its
 * error). Returns 0 with *@ret_im (referenced: img_unref()) or -ENOMEM.
 */
static int img_lookup(struct lp_snap_index_cache *cache, struct lp_reg *reg,
		      const struct lp_reg_ref *ref,
		      const struct lp_digest *manifest_digest,
		      const struct lookup *lk, struct img **ret_im,
		      struct lp_err *err)
{
	char key[LP_SNAP_PATH_MAX];
	struct lp_err why = { 0 };
	struct img *im;
	int slot = -1, r, w = 0;

	image_key("", ref, manifest_digest, key, sizeof(key));
	im = cache_get(cache, key, ref->auth);
	if (!im)
		w = wait_inflight(cache, key, ref->auth, lk, &slot);
	if (w == 1)
		im = cache_get(cache, key, ref->auth); /* what it fetched */
	if (w == -ETIMEDOUT) {
		/* the owner's answer is still to come: ours is not cached
		 * (it would stand for the owner's) */
		lp_err_set(&why, -ETIMEDOUT,
			   "another lookup of the image still runs after "
			   "%d ms",
			   lk->budget_ms);
		im = img_failed(key, ref->auth, -ETIMEDOUT,
				LP_FALLBACK_INDEX_TIMEOUT, &why);
		if (!im)
			return -ENOMEM;
		*ret_im = im;
		return 0;
	}
	if (im && !im->error && !img_layer(im, lk->layer)) { /* a tag moved? */
		img_unref(cache, im);
		im = NULL;
	}
	if (!im) {
		r = img_fetch(reg, ref, key, manifest_digest, lk, &im, err);
		if (r == -ENOMEM) {
			end_inflight(cache, slot);
			return r;
		}
		if (r < 0) { /* cached too: not asked again for a while */
			im = img_failed(key, ref->auth, r,
					lp_mono_ns() >= lk->deadline_ns ?
						LP_FALLBACK_INDEX_TIMEOUT :
						LP_FALLBACK_REGISTRY,
					err);
			if (!im) {
				end_inflight(cache, slot);
				return -ENOMEM;
			}
		}
		cache_put(cache, im);
	}
	end_inflight(cache, slot);
	*ret_im = im;
	return 0;
}

int lp_snap_index_find(struct lp_snap_index_cache *cache, struct lp_reg *reg,
		       const struct lp_snap_config *c,
		       const struct lp_reg_ref *ref,
		       const struct lp_digest *layer,
		       const char *manifest_digest, const char *want_index,
		       struct lp_snap_index_found *ret,
		       enum lp_snap_fallback *ret_why, struct lp_err *err)
{
	struct lookup lk = { .layer = layer,
			     .want_index = want_index,
			     .manifest = manifest_digest };
	const struct img_layer *d = NULL;
	struct lp_digest md;
	struct img *im = NULL;
	size_t i, tried = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	lk.deadline_ns = lp_mono_ns() + LP_SNAP_INDEX_LOOKUP_MS * 1000000ull;
	lk.what = "gzip index";
	lk.budget_ms = LP_SNAP_INDEX_LOOKUP_MS;
	*ret_why = LP_FALLBACK_BAD_LABELS;
	if (manifest_digest && lp_digest_parse(manifest_digest, &md) < 0)
		return lp_err_set(err, -EINVAL,
				  "bad manifest digest label '%s'",
				  manifest_digest);
	*ret_why = LP_FALLBACK_NO_INDEX;
	if (find_local(c, &lk, ret))
		return 0;

	/* the manifest: the layer's media type, the referrers' subject */
	r = img_lookup(cache, reg, ref, manifest_digest ? &md : NULL, &lk, &im,
		       err);
	if (r < 0)
		goto out;
	if (im->error) {
		*ret_why = im->why;
		r = lp_err_set(err, im->error, "%s", im->msg);
		goto out;
	}
	d = img_layer(im, layer);
	if (!d) {
		r = lp_err_set(err, -ENOENT,
			       "the layer is not in the manifest %s (%s)",
			       im->manifest, im->key);
		goto out;
	}
	if (ends_with(d->media_type, "+zstd")) {
		*ret_why = LP_FALLBACK_ZSTD_UNINDEXED;
		r = lp_err_set(err, -EOPNOTSUPP,
			       "a tar+zstd layer without a TOC (%s): no "
			       "seekable index for zstd yet",
			       d->media_type);
		goto out;
	}
	if (!ends_with(d->media_type, "+gzip") &&
	    !ends_with(d->media_type, ".gzip")) {
		r = lp_err_set(err, -EOPNOTSUPP,
			       "not a gzip layer (%s): nothing to index",
			       *d->media_type ? d->media_type :
						"no media type");
		goto out;
	}
	lk.size = d->size;
	if (im->no_referrers) {
		r = lp_err_set(err, -ENOENT,
			       "no gzip index: none in the index directories "
			       "(%zu), no referrers of the image manifest %s",
			       c->n_index_dirs, im->manifest);
		goto out;
	}
	for (i = 0; i < im->n_offers; i++) {
		if (!lp_digest_equal(&im->offers[i].layer, layer))
			continue;
		if (tried++ == LP_SNAP_INDEX_CANDIDATES_MAX) {
			char ls[LP_DIGEST_STR_LEN + 1];

			lp_digest_format(layer, ls);
			lp_log_warn("layer %s: more than %d gzip indexes "
				    "offered; the others are not tried",
				    ls, LP_SNAP_INDEX_CANDIDATES_MAX);
			break;
		}
		r = over(&lk, "a gzip index blob", err);
		if (r < 0) {
			*ret_why = LP_FALLBACK_INDEX_TIMEOUT;
			goto out;
		}
		if (take_offer(reg, ref, &im->offers[i], &lk, ret)) {
			snprintf(ret->manifest, sizeof(ret->manifest), "%s",
				 im->manifest);
			if (im->offers[i].sig) {
				ret->sig = strdup(im->offers[i].sig);
				ret->sig_len = ret->sig ? strlen(ret->sig) : 0;
			}
			r = 0;
			goto out;
		}
	}
	r = lp_err_set(err, -ENOENT,
		       "no gzip index of this layer among the %zu referrer(s) "
		       "of the image manifest %s%s",
		       im->n_referrers, im->manifest,
		       im->n_examined + im->n_other < im->n_referrers ?
			       " (only the newest examined)" :
			       "");
out:
	if (r < 0 && lk.refused && *ret_why == LP_FALLBACK_NO_INDEX) {
		*ret_why = LP_FALLBACK_BAD_INDEX;
		lp_err_clear(err);
		r = lk.refusal.code < 0 ? lk.refusal.code : -EBADMSG;
		lp_err_set(err, r, "%s", lp_err_str(&lk.refusal, r));
	} else if (r < 0 && lk.unreachable &&
		   *ret_why == LP_FALLBACK_NO_INDEX) {
		*ret_why = LP_FALLBACK_REGISTRY;
		lp_err_clear(err);
		r = lk.failure.code < 0 ? lk.failure.code : -EIO;
		lp_err_set(err, r, "%s", lp_err_str(&lk.failure, r));
	}
	img_unref(cache, im);
	return r;
}

/* ---- prefetch profiles ------------------------------------------------ */

/* profile @data (@len bytes, from @where) for @layer into @ret; 1 or the
 * profile's -errno (logged with @err) */
static int take_profile(const uint8_t *data, size_t len, const char *where,
			const struct lp_digest *layer, struct lp_prio_list *ret,
			char *ret_where, size_t where_size, struct lp_err *err)
{
	int r;

	snprintf(ret_where, where_size, "%s", where);
	r = lp_profile_layer(data, len, where, layer, ret, err);
	return r < 0 ? r : 1;
}

/* DIR/<manifest hex>.profile in each configured directory: 1 taken, 0 none
 * there, -errno (a file refused: @err) */
static int profile_local(const struct lp_snap_config *c,
			 const struct lp_digest *manifest,
			 const struct lp_digest *layer,
			 struct lp_prio_list *ret, char *ret_where,
			 size_t where_size, struct lp_err *err)
{
	char ds[LP_DIGEST_STR_LEN + 1], path[LP_SNAP_PATH_MAX];
	uint8_t *data;
	size_t i, len = 0;
	int r;

	lp_digest_format(manifest, ds);
	for (i = 0; i < c->n_index_dirs; i++) {
		if (snprintf(path, sizeof(path), "%s/%s" LP_PROFILE_SUFFIX,
			     c->index_dirs[i], ds + 7) >= (int)sizeof(path))
			continue;
		data = NULL;
		r = lp_snap_read_file(path, LP_PROFILE_MAX_SIZE, &data, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			snprintf(ret_where, where_size, "%s", path);
			return lp_err_set(err, r, "%s: %s", path,
					  r == -EFBIG ? "over "
							"LP_PROFILE_MAX_SIZE" :
							strerror(-r));
		}
		r = take_profile(data, len, path, layer, ret, ret_where,
				 where_size, err);
		free(data);
		return r;
	}
	return 0;
}

/* the profile entries' keys, apart from the images' */
#define PROFILE_KEY "profile:"

/*
 * profile_fetch() - the newest prefetch profile among the referrers of
 * image @ref's manifest (@md when known: no manifest request), into a new
 * profile entry *@ret_im (one reference; -ENOMEM only): what the image
 * entry of a gzip index lookup recorded spares the referrers request.
 * Every request is checked against @lk's deadline; a failure is kept in
 * the entry (error: the registry's, profile_error: the artifact's), cached
 * like an answer.
 */
static int profile_fetch(struct lp_snap_index_cache *cache, struct lp_reg *reg,
			 const struct lp_reg_ref *ref, const char *key,
			 const struct lp_digest *md, const struct lookup *lk,
			 struct img **ret_im)
{
	struct lp_reg_manifest *m = NULL, *refs = NULL;
	char ikey[LP_SNAP_PATH_MAX];
	struct lp_reg_ref mref = *ref;
	struct lp_err err = { 0 };
	const struct lp_reg_desc *e;
	struct lp_digest subject, art;
	struct img *im, *seen = NULL;
	bool has_art = false, known = false;
	size_t i;
	int r = 0;

	im = calloc(1, sizeof(*im));
	if (!im)
		return -ENOMEM;
	im->refs = 1;
	im->at_ns = lp_mono_ns();
	snprintf(im->key, sizeof(im->key), "%s", key);
	im->auth = lp_reg_auth_ref(ref->auth);
	if (md) {
		subject = *md;
	} else {
		/* a gzip index lookup of the image by the same tag (or
		 * digest) knows its manifest digest and referrers: no
		 * request (the python3 import's mount waited 3 round trips,
		 * 89 ms, for this lookup asking again) */
		image_key("", ref, NULL, ikey, sizeof(ikey));
		seen = cache_get(cache, ikey, ref->auth);
		/* not an entry of the image that has this layer: the tag
		 * moved since (img_lookup()'s test), or it failed */
		if (seen && (seen->error || !img_layer(seen, lk->layer) ||
			     lp_digest_parse(seen->manifest, &subject) < 0)) {
			img_unref(cache, seen);
			seen = NULL;
		}
		if (seen) { /* its answer is as old as the entry's */
			im->at_ns = seen->at_ns;
		} else {
			r = over(lk, "the image manifest", &err);
			if (r == 0)
				r = lp_reg_manifest_fetch(reg, &mref, NULL, &m,
							  &err);
			if (r < 0)
				goto out;
			subject = *lp_reg_manifest_digest(m);
		}
	}
	lp_digest_format(&subject, im->manifest);
	/* a gzip index lookup of the image saw its referrers already */
	if (!seen) {
		image_key("", ref, &subject, ikey, sizeof(ikey));
		seen = cache_get(cache, ikey, ref->auth);
	}
	if (seen && !seen->error) {
		has_art = seen->has_profile_art;
		art = seen->profile_art;
		/* the tag schema lists every type; an API asked for
		 * indexes may have left profiles out */
		known = has_art || seen->no_referrers || !seen->referrers_api;
	}
	img_unref(cache, seen);
	if (!known) {
		r = over(lk, "the referrers", &err);
		if (r == 0)
			r = lp_reg_referrers(reg, ref, &subject,
					     LP_PROFILE_ARTIFACT_TYPE, &refs,
					     &err);
		if (r == -ENOENT)
			r = 0;
		if (r < 0)
			goto out;
		/* from the end: the tag schema's index is append-ordered */
		for (i = refs ? lp_reg_manifest_count(refs) : 0; i-- > 0;) {
			e = lp_reg_manifest_layer(refs, i);
			if (e->artifact_type &&
			    !strcmp(e->artifact_type,
				    LP_PROFILE_ARTIFACT_TYPE)) {
				has_art = true;
				art = e->digest;
				break;
			}
		}
	}
	if (has_art)
		read_profile(reg, ref, &art, lk, im);
out:
	if (r < 0) {
		im->error = r;
		snprintf(im->msg, sizeof(im->msg), "%s", lp_err_str(&err, r));
	}
	lp_reg_manifest_free(refs);
	lp_reg_manifest_free(m);
	*ret_im = im;
	return 0;
}

int lp_snap_profile_find(struct lp_snap_index_cache *cache, struct lp_reg *reg,
			 const struct lp_snap_config *c,
			 const struct lp_reg_ref *ref,
			 const struct lp_digest *layer,
			 const char *manifest_digest, struct lp_prio_list *ret,
			 char *ret_where, size_t where_size, struct lp_err *err)
{
	struct lookup lk = { .layer = layer };
	char key[LP_SNAP_PATH_MAX];
	struct lp_digest md;
	struct img *im = NULL;
	int slot = -1, r, w = 0;

	memset(ret, 0, sizeof(*ret));
	snprintf(ret_where, where_size, "-");
	lk.deadline_ns = lp_mono_ns() + LP_SNAP_PROFILE_LOOKUP_MS * 1000000ull;
	lk.what = "prefetch profile";
	lk.budget_ms = LP_SNAP_PROFILE_LOOKUP_MS;
	if (manifest_digest && lp_digest_parse(manifest_digest, &md) < 0)
		manifest_digest = NULL; /* the registry says which */
	if (manifest_digest) {
		r = profile_local(c, &md, layer, ret, ret_where, where_size,
				  err);
		if (r != 0)
			return r;
	}
	image_key(PROFILE_KEY, ref, manifest_digest ? &md : NULL, key,
		  sizeof(key));
	/* single flight: the image's other layers wait for one lookup, and
	 * its answer (a failure too) serves them for the cache's TTL */
	im = cache_get(cache, key, ref->auth);
	if (!im)
		w = wait_inflight(cache, key, ref->auth, &lk, &slot);
	if (w == -ETIMEDOUT)
		return lp_err_set(err, -ETIMEDOUT,
				  "another lookup of the image's prefetch "
				  "profile still runs after %d ms",
				  LP_SNAP_PROFILE_LOOKUP_MS);
	if (w == 1)
		im = cache_get(cache, key, ref->auth);
	if (!im) {
		r = profile_fetch(cache, reg, ref, key,
				  manifest_digest ? &md : NULL, &lk, &im);
		if (r == 0)
			cache_put(cache, im);
		end_inflight(cache, slot);
		if (r < 0)
			return r;
	}
	if (im->error) {
		r = lp_err_set(err, im->error, "%s", im->msg);
		goto out;
	}
	if (!manifest_digest && lp_digest_parse(im->manifest, &md) == 0) {
		r = profile_local(c, &md, layer, ret, ret_where, where_size,
				  err);
		if (r != 0)
			goto out;
	}
	if (im->profile) {
		r = take_profile(im->profile, im->profile_len,
				 im->profile_where, layer, ret, ret_where,
				 where_size, err);
	} else if (im->profile_error) {
		snprintf(ret_where, where_size, "%s", im->profile_where);
		r = lp_err_set(err, im->profile_error, "%s: %s",
			       im->profile_where, im->profile_msg);
	} else {
		r = 0;
	}
out:
	img_unref(cache, im);
	return r;
}
