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
 * Threads: no state of its own; any number of lookups may run at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lp_log.h"
#include "lp_registry.h"
#include "snap_int.h"

void lp_snap_index_found_clear(struct lp_snap_index_found *f)
{
	if (!f)
		return;
	free(f->data);
	memset(f, 0, sizeof(*f));
}

/* what a lookup saw: the first refusal, for the reason bad_index */
struct lookup {
	const struct lp_digest *layer;
	uint64_t size; /* the descriptor's; 0: not known (yet) */
	bool refused; /* a candidate was refused */
	struct lp_err refusal; /* why (the first) */
};

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
	int r;

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
	lp_sha256(data, len, &id);
	lp_digest_format(&id, ret->digest);
	ret->blob_size = lp_index_blob_size(ix);
	snprintf(ret->where, sizeof(ret->where), "%s", where);
	ret->data = data;
	ret->len = len;
	lp_index_free(ix);
	return 1;
refused:
	lp_digest_format(lk->layer, want);
	lp_log_warn("layer %s: gzip index from %s refused: %s", want, where,
		    lp_err_str(&err, r));
	if (!lk->refused)
		lp_err_set(&lk->refusal, r, "gzip index from %s refused: %s",
			   where, lp_err_str(&err, r));
	lk->refused = true;
	lp_index_free(ix);
	free(data);
	return 0;
}

int lp_snap_read_file(const char *path, size_t limit, uint8_t **ret,
		      size_t *ret_len)
{
	struct stat st;
	uint8_t *p = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > limit) {
		r = -EFBIG;
		goto out;
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, p + got, (size_t)st.st_size - got);
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO; /* shrank meanwhile */
			goto out;
		}
		got += (size_t)n;
	}
	*ret = p;
	*ret_len = got;
	p = NULL;
out:
	free(p);
	close(fd);
	return r;
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
			if (!lk->refused)
				lp_err_set(&lk->refusal, r, "gzip index %s: %s",
					   path, strerror(-r));
			lk->refused = true;
			continue;
		}
		if (check(lk, data, len, path, ret))
			return 1;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/*
 * the indexes artifact @e (an entry of the referrers index) names for our
 * layer: fetched, bounded, checked; 1 found, 0 not (or refused)
 */
static int try_artifact(struct lp_reg *reg, const struct lp_reg_ref *ref,
			const struct lp_reg_desc *e, struct lookup *lk,
			struct lp_snap_index_found *ret)
{
	struct lp_reg_manifest *art = NULL;
	struct lp_reg_ref aref = *ref;
	struct lp_err err = { 0 };
	char ls[LP_DIGEST_STR_LEN + 1], as[LP_DIGEST_STR_LEN + 1];
	char where[LP_SNAP_PATH_MAX];
	const struct lp_reg_desc *d;
	const char *a;
	void *data = NULL;
	size_t k, len = 0;
	int r, found = 0;

	lp_digest_format(lk->layer, ls);
	lp_digest_format(&e->digest, as);
	aref.tag[0] = '\0';
	aref.has_digest = true;
	aref.digest = e->digest;
	r = lp_reg_manifest_get(reg, &aref, &art, &err);
	if (r < 0) {
		lp_log_warn("layer %s: referrer %s unreadable: %s", ls, as,
			    lp_err_str(&err, r));
		goto out;
	}
	if (lp_reg_manifest_is_index(art))
		goto out;
	for (k = 0; k < lp_reg_manifest_count(art); k++) {
		d = lp_reg_manifest_layer(art, k);
		a = lp_reg_desc_annotation(d, LP_INDEX_ANN_LAYER);
		if (!d->media_type ||
		    strcmp(d->media_type, LP_INDEX_MEDIA_TYPE) || !a ||
		    strcmp(a, ls))
			continue;
		snprintf(where, sizeof(where), "registry artifact %s", as);
		if (d->size > LP_SNAP_INDEX_MAX) {
			lp_err_set(&err, -EFBIG,
				   "%llu bytes, over LP_SNAP_INDEX_MAX",
				   (unsigned long long)d->size);
			r = -EFBIG;
		} else {
			/* digest and size verified by the client */
			r = lp_reg_fetch_blob_mem(reg, ref, &d->digest,
						  (size_t)d->size, &data, &len,
						  &err);
		}
		if (r < 0) {
			lp_log_warn("layer %s: gzip index in %s: %s", ls, where,
				    lp_err_str(&err, r));
			if (!lk->refused)
				lp_err_set(&lk->refusal, r,
					   "gzip index in %s: %s", where,
					   lp_err_str(&err, r));
			lk->refused = true;
			lp_err_clear(&err);
			continue;
		}
		found = check(lk, data, len, where, ret);
		data = NULL; /* taken */
		if (found)
			break;
	}
out:
	lp_reg_manifest_free(art);
	return found;
}

int lp_snap_index_find(struct lp_reg *reg, const struct lp_snap_config *c,
		       const struct lp_reg_ref *ref,
		       const struct lp_digest *layer,
		       const char *manifest_digest,
		       struct lp_snap_index_found *ret,
		       enum lp_snap_fallback *ret_why, struct lp_err *err)
{
	struct lp_reg_manifest *m = NULL, *refs = NULL;
	struct lp_reg_ref mref = *ref;
	struct lookup lk = { .layer = layer };
	struct lp_err why = { 0 }; /* what the registry said */
	const struct lp_reg_desc *d = NULL;
	char ls[LP_DIGEST_STR_LEN + 1];
	size_t i, n, seen = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	lp_digest_format(layer, ls);
	*ret_why = LP_FALLBACK_NO_INDEX;
	if (find_local(c, &lk, ret))
		return 0;

	/* the manifest: the layer's media type, the referrers' subject */
	if (manifest_digest) {
		mref.tag[0] = '\0';
		mref.has_digest = true;
		if (lp_digest_parse(manifest_digest, &mref.digest) < 0) {
			*ret_why = LP_FALLBACK_BAD_LABELS;
			return lp_err_set(err, -EINVAL,
					  "bad manifest digest label '%s'",
					  manifest_digest);
		}
	}
	r = lp_reg_manifest_fetch(reg, &mref, NULL, &m, &why);
	if (r < 0) {
		*ret_why = LP_FALLBACK_REGISTRY;
		r = lp_err_set_from(err, &why, r, "the image manifest: %s",
				    lp_err_str(&why, r));
		goto out;
	}
	for (i = 0; i < lp_reg_manifest_count(m); i++)
		if (lp_digest_equal(&lp_reg_manifest_layer(m, i)->digest,
				    layer))
			d = lp_reg_manifest_layer(m, i);
	if (!d) {
		r = lp_err_set(err, -ENOENT,
			       "the layer is not in the manifest %s names",
			       manifest_digest ? manifest_digest : "the tag");
		goto out;
	}
	if (d->media_type && ends_with(d->media_type, "+zstd")) {
		*ret_why = LP_FALLBACK_ZSTD_UNINDEXED;
		r = lp_err_set(err, -EOPNOTSUPP,
			       "a tar+zstd layer without a TOC (%s): no "
			       "seekable index for zstd yet",
			       d->media_type);
		goto out;
	}
	if (!d->media_type || (!ends_with(d->media_type, "+gzip") &&
			       !ends_with(d->media_type, ".gzip"))) {
		r = lp_err_set(err, -EOPNOTSUPP,
			       "not a gzip layer (%s): nothing to index",
			       d->media_type ? d->media_type : "no media type");
		goto out;
	}
	lk.size = d->size;

	r = lp_reg_referrers(reg, ref, lp_reg_manifest_digest(m), &refs, &why);
	if (r == -ENOENT) {
		r = lp_err_set(err, -ENOENT,
			       "no gzip index: none in the index directories "
			       "(%zu), no referrers of the image manifest",
			       c->n_index_dirs);
		goto out;
	}
	if (r < 0) {
		*ret_why = LP_FALLBACK_REGISTRY;
		r = lp_err_set_from(err, &why, r, "the image's referrers: %s",
				    lp_err_str(&why, r));
		goto out;
	}
	/* newest first: an index pushed again is appended last */
	n = lp_reg_manifest_count(refs);
	for (i = n; i-- > 0 && seen < LP_SNAP_INDEX_REFERRERS_MAX; seen++) {
		if (try_artifact(reg, ref, lp_reg_manifest_layer(refs, i), &lk,
				 ret)) {
			r = 0;
			goto out;
		}
	}
	r = lp_err_set(err, -ENOENT,
		       "no gzip index of this layer among the image's %zu "
		       "referrer(s)%s",
		       n, seen < n ? " (only the newest examined)" : "");
out:
	if (r < 0 && lk.refused && *ret_why == LP_FALLBACK_NO_INDEX) {
		*ret_why = LP_FALLBACK_BAD_INDEX;
		lp_err_clear(err);
		r = lk.refusal.code < 0 ? lk.refusal.code : -EBADMSG;
		lp_err_set(err, r, "%s", lp_err_str(&lk.refusal, r));
	}
	lp_reg_manifest_free(refs);
	lp_reg_manifest_free(m);
	return r;
}
