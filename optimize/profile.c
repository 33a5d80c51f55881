// SPDX-License-Identifier: Apache-2.0
/*
 * `lazypull optimize --profile-only`: the access record published as a
 * prefetch profile of the image that ran (format/lp_profile.h) instead of a
 * reconverted image. The artifact is an OCI image manifest of artifactType
 * LP_PROFILE_ARTIFACT_TYPE: the empty config, one layer (the JSON-lines
 * list, LP_PROFILE_MEDIA_TYPE), and the image manifest as its subject,
 * made findable through the referrers API or the referrers tag schema
 * (lp_reg_push_referrer, as `lazypull index` pushes its indexes). With an
 * output directory it is written to DIR/<manifest hex>.profile instead.
 *
 * The manifest is fetched again after the run: the subject is the manifest
 * whose layers ran (a tag moved meanwhile fails with -ESTALE rather than
 * attach the profile to an image it was not recorded on).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lp_image_source.h"
#include "lp_io.h"
#include "lp_profile.h"
#include "lp_registry.h"
#include "optimize_int.h"

#define EMPTY_CONFIG "{}"
#define EMPTY_CONFIG_MT "application/vnd.oci.empty.v1+json"

/* a descriptor object {mediaType, digest, size} */
static json_object *desc(const char *mt, const struct lp_digest *d,
			 uint64_t size)
{
	json_object *o = json_object_new_object();
	char ds[LP_DIGEST_STR_LEN + 1];

	if (!o)
		return NULL;
	lp_digest_format(d, ds);
	json_object_object_add(o, "mediaType", json_object_new_string(mt));
	json_object_object_add(o, "digest", json_object_new_string(ds));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
	return o;
}

/* @len bytes of @data pushed as blob @d (through an unlinked file) */
static int push_bytes(struct lp_reg *reg, const struct lp_reg_ref *ref,
		      const struct lp_digest *d, const void *data, size_t len,
		      const char *tmpdir, struct lp_err *err)
{
	int fd, r;

	fd = lp_file_open_unlinked(tmpdir, "lazypull-profile");
	if (fd < 0)
		return lp_err_set(err, fd, "%s: temporary file: %s", tmpdir,
				  strerror(-fd));
	r = lp_write_all(fd, data, len);
	if (r < 0)
		lp_err_set(err, r, "temporary file: %s", strerror(-r));
	else
		r = lp_reg_push_blob(reg, ref, d, len, fd, NULL, err);
	close(fd);
	return r;
}

/* the artifact manifest for profile @blob (@len bytes) of subject @m */
static char *artifact_json(const struct lp_reg_manifest *m,
			   const struct lp_digest *cfg,
			   const struct lp_digest *blob, size_t len)
{
	json_object *man = json_object_new_object(), *layers;
	size_t raw_len;
	char *s = NULL;

	if (!man)
		return NULL;
	(void)lp_reg_manifest_raw(m, &raw_len);
	json_object_object_add(man, "schemaVersion", json_object_new_int(2));
	json_object_object_add(man, "mediaType",
			       json_object_new_string(LP_REG_MT_OCI_MANIFEST));
	json_object_object_add(
		man, "artifactType",
		json_object_new_string(LP_PROFILE_ARTIFACT_TYPE));
	json_object_object_add(
		man, "config",
		desc(EMPTY_CONFIG_MT, cfg, strlen(EMPTY_CONFIG)));
	layers = json_object_new_array();
	json_object_array_add(layers, desc(LP_PROFILE_MEDIA_TYPE, blob, len));
	json_object_object_add(man, "layers", layers);
	json_object_object_add(man, "subject",
			       desc(lp_reg_manifest_media_type(m),
				    lp_reg_manifest_digest(m), raw_len));
	s = strdup(json_object_to_json_string_ext(
		man, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(man);
	return s;
}

/* does manifest @m list exactly @src's layers? */
static bool same_layers(const struct lp_reg_manifest *m,
			const struct lp_image_src *src)
{
	size_t i, n = lp_image_src_nr_layers(src);

	if (lp_reg_manifest_is_index(m) || lp_reg_manifest_count(m) != n)
		return false;
	for (i = 0; i < n; i++)
		if (!lp_digest_equal(&lp_reg_manifest_layer(m, i)->digest,
				     &lp_image_src_layer(src, i)->digest))
			return false;
	return true;
}

int opt_profile_publish(const struct lp_optimize_opts *o,
			const struct lp_image_src *src, const char *rec_path,
			struct lp_optimize_profile *ret, struct lp_err *err)
{
	const char *tmpdir =
		o->image.tmpdir ? o->image.tmpdir : getenv("TMPDIR");
	struct lp_reg_manifest *m = NULL;
	struct lp_prio_list check = { 0 };
	struct lp_reg *reg = NULL;
	struct lp_reg_ref ref;
	struct lp_digest cfg;
	char ds[LP_DIGEST_STR_LEN + 1];
	char *art = NULL;
	void *data = NULL;
	size_t len = 0;
	int r;

	if (!tmpdir || !*tmpdir)
		tmpdir = "/var/tmp";
	memset(ret, 0, sizeof(*ret));
	if (!strncmp(o->image.src, "oci:", 4) ||
	    lp_reg_ref_parse(o->image.src, &ref) < 0)
		return lp_err_set(err, -EINVAL,
				  "%s: a profile is published for a registry "
				  "image",
				  o->image.src);
	r = lp_file_read_bounded(rec_path, LP_PROFILE_MAX_SIZE, O_NOFOLLOW,
				 &data, &len);
	if (r < 0) {
		lp_err_set(err, r, "%s: %s", rec_path,
			   r == -EFBIG ? "the profile is over "
					 "LP_PROFILE_MAX_SIZE" :
					 strerror(-r));
		goto out;
	}
	/* what the snapshotter will read: it must take it */
	r = lp_prio_parse(data, len, rec_path, &check, err);
	if (r < 0)
		goto out;
	r = lp_reg_new(&o->image.reg, &reg);
	if (r < 0) {
		lp_err_set(err, r, "registry client: %s", strerror(-r));
		goto out;
	}
	r = lp_reg_manifest_fetch(reg, &ref, o->image.platform, &m, err);
	if (r < 0)
		goto out;
	if (!same_layers(m, src)) {
		lp_digest_format(lp_reg_manifest_digest(m), ds);
		r = lp_err_set(err, -ESTALE,
			       "%s now names manifest %s, whose layers are not "
			       "the ones the workload ran on: no profile "
			       "published",
			       o->image.src, ds);
		goto out;
	}
	ret->manifest = *lp_reg_manifest_digest(m);
	lp_sha256(data, len, &ret->blob);
	ret->bytes = len;
	lp_digest_format(&ret->manifest, ds);
	if (o->profile_output) {
		if (snprintf(ret->path, sizeof(ret->path), "%s/%s%s",
			     o->profile_output, ds + 7,
			     LP_PROFILE_SUFFIX) >= (int)sizeof(ret->path)) {
			r = lp_err_set(err, -ENAMETOOLONG, "%s: too long",
				       o->profile_output);
			goto out;
		}
		r = lp_file_write_atomic(ret->path, data, len, 0644);
		if (r < 0)
			lp_err_set(err, r, "%s: %s", ret->path, strerror(-r));
		goto out;
	}
	lp_sha256(EMPTY_CONFIG, strlen(EMPTY_CONFIG), &cfg);
	r = push_bytes(reg, &ref, &cfg, EMPTY_CONFIG, strlen(EMPTY_CONFIG),
		       tmpdir, err);
	if (r == 0)
		r = push_bytes(reg, &ref, &ret->blob, data, len, tmpdir, err);
	if (r < 0)
		goto out;
	art = artifact_json(m, &cfg, &ret->blob, len);
	if (!art) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = lp_reg_push_referrer(reg, &ref, &ret->manifest,
				 LP_PROFILE_ARTIFACT_TYPE, art, strlen(art),
				 &ret->artifact, err);
	if (r >= 0) {
		ret->via_api = r;
		r = 0;
	}
out:
	free(art);
	free(data);
	lp_prio_release(&check);
	lp_reg_manifest_free(m);
	lp_reg_free(reg);
	return r;
}
