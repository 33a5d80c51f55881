// SPDX-License-Identifier: Apache-2.0
/*
 * lp_image_source.h: one platform's image of a registry or OCI layout,
 * resolved through the image stores (store_int.h) that image conversion
 * uses, so the two read images the same way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lp_io.h"
#include "lp_image.h"
#include "lp_image_source.h"
#include "store_int.h"

#define SRC_COPY_BLOCK (4 * 1024 * 1024) /* one read of a layer copy */
#define SRC_PLATFORM_MAX 256 /* "os/arch/variant" of a config */

struct lp_image_src {
	struct lp_reg *reg;
	struct lp_img_store *store;
	struct lp_reg_manifest *m; /* the image manifest */
	char *config; /* NUL-terminated */
	size_t config_len;
};

static const char *cfg_str(json_object *cfg, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(cfg, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return "";
}

/* the config is an image config, for @platform when one was asked for */
static int check_config(struct lp_image_src *s, const char *platform,
			struct lp_err *err)
{
	const char *name = lp_img_store_name(s->store);
	json_object *cfg = NULL, *rootfs;
	char have[SRC_PLATFORM_MAX];
	const char *variant;
	int r = 0;

	cfg = json_tokener_parse(s->config);
	if (!cfg || !json_object_is_type(cfg, json_type_object) ||
	    !json_object_object_get_ex(cfg, "rootfs", &rootfs)) {
		r = lp_err_set(err, -EINVAL,
			       "%s: the config is not an image config", name);
		goto out;
	}
	if (!platform)
		goto out;
	variant = cfg_str(cfg, "variant");
	snprintf(have, sizeof(have), "%s/%s%s%s", cfg_str(cfg, "os"),
		 cfg_str(cfg, "architecture"), *variant ? "/" : "", variant);
	/* "os/arch" matches any variant */
	if (strcmp(platform, have) &&
	    !(!strncmp(platform, have, strlen(platform)) &&
	      have[strlen(platform)] == '/'))
		r = lp_err_set(err, -ENOENT, "%s: the image is for %s, not %s",
			       name, have, platform);
out:
	json_object_put(cfg);
	return r;
}

/* the image manifest for @platform: the top one, or picked from an index */
static int resolve(struct lp_image_src *s, const char *platform,
		   bool *ret_from_index, struct lp_err *err)
{
	struct lp_reg_manifest *top = NULL, *m = NULL;
	const struct lp_reg_desc *d;
	int r;

	r = lp_img_store_get_top(s->store, &top, err);
	if (r < 0)
		goto out;
	*ret_from_index = lp_reg_manifest_is_index(top);
	if (!*ret_from_index) {
		s->m = top;
		top = NULL;
		goto out;
	}
	r = lp_reg_index_select(top, platform, &d);
	if (r < 0) {
		r = lp_err_set(err, r == -EINVAL ? -EINVAL : -ENOENT,
			       "%s: no image for platform %s",
			       lp_img_store_name(s->store),
			       platform ? platform : "of this host");
		goto out;
	}
	r = lp_img_store_get_manifest(s->store, d, &m, err);
	if (r < 0)
		goto out;
	if (lp_reg_manifest_is_index(m)) {
		r = lp_err_set(err, -EOPNOTSUPP, "%s: nested index",
			       lp_img_store_name(s->store));
		goto out;
	}
	s->m = m;
	m = NULL;
out:
	lp_reg_manifest_free(top);
	lp_reg_manifest_free(m);
	return r;
}

int lp_image_src_open(const char *spec, const struct lp_reg_opts *reg_opts,
		      const char *platform, struct lp_image_src **ret_src,
		      struct lp_err *err)
{
	struct lp_image_src *s = NULL;
	bool from_index = false;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s) {
		r = lp_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = lp_reg_new(reg_opts, &s->reg);
	if (r < 0) {
		lp_err_set(err, r, "registry client: %s", strerror(-r));
		goto out;
	}
	r = lp_img_store_open(spec, s->reg, false, &s->store, err);
	if (r < 0)
		goto out;
	r = resolve(s, platform, &from_index, err);
	if (r < 0)
		goto out;
	r = lp_img_store_get_small(s->store, lp_reg_manifest_config(s->m),
				   LP_IMAGE_CONFIG_MAX, &s->config,
				   &s->config_len, err);
	if (r < 0)
		goto out;
	r = check_config(s, from_index ? NULL : platform, err);
	if (r < 0)
		goto out;
	*ret_src = s;
	s = NULL;
out:
	lp_image_src_free(s);
	return r;
}

void lp_image_src_free(struct lp_image_src *src)
{
	if (!src)
		return;
	free(src->config);
	lp_reg_manifest_free(src->m);
	lp_img_store_free(src->store);
	lp_reg_free(src->reg);
	free(src);
}

const char *lp_image_src_name(const struct lp_image_src *src)
{
	return lp_img_store_name(src->store);
}

const char *lp_image_src_config(const struct lp_image_src *src, size_t *ret_len)
{
	*ret_len = src->config_len;
	return src->config;
}

size_t lp_image_src_nr_layers(const struct lp_image_src *src)
{
	return lp_reg_manifest_count(src->m);
}

const struct lp_reg_desc *lp_image_src_layer(const struct lp_image_src *src,
					     size_t i)
{
	return lp_reg_manifest_layer(src->m, i);
}

int lp_image_src_open_layer(struct lp_image_src *src, size_t i,
			    struct lp_blob **ret_blob, struct lp_err *err)
{
	return lp_img_store_open_blob(src->store, lp_image_src_layer(src, i),
				      ret_blob, err);
}

int lp_image_src_fetch_layer(struct lp_image_src *src, size_t i, int fd,
			     struct lp_err *err)
{
	const struct lp_reg_desc *d = lp_image_src_layer(src, i);
	char ds[LP_DIGEST_STR_LEN + 1];
	struct lp_sha256 *sha = NULL;
	struct lp_blob *b = NULL;
	struct lp_digest got;
	uint64_t off = 0;
	char *buf = NULL;
	int r;

	lp_digest_format(&d->digest, ds);
	r = lp_image_src_open_layer(src, i, &b, err);
	if (r < 0)
		goto out;
	buf = malloc(SRC_COPY_BLOCK);
	r = buf ? lp_sha256_new(&sha) : -ENOMEM;
	if (r < 0) {
		lp_err_set(err, r, "out of memory");
		goto out;
	}
	while (off < d->size) {
		size_t n = d->size - off < SRC_COPY_BLOCK ?
				   (size_t)(d->size - off) :
				   SRC_COPY_BLOCK;
		struct lp_err why = { 0 };

		r = lp_blob_pread(b, buf, n, off, &why);
		if (r < 0) {
			lp_err_set_from(
				err, &why, r, "%s: layer %s at %llu: %s",
				lp_image_src_name(src), ds,
				(unsigned long long)off, lp_err_str(&why, r));
			goto out;
		}
		lp_sha256_update(sha, buf, n);
		r = lp_write_all(fd, buf, n);
		if (r < 0) {
			lp_err_set(err, r, "writing layer %s: %s", ds,
				   strerror(-r));
			goto out;
		}
		off += n;
	}
	lp_sha256_final(sha, &got);
	if (!lp_digest_equal(&got, &d->digest))
		r = lp_err_set(err, -EBADMSG, "%s: layer %s: digest mismatch",
			       lp_image_src_name(src), ds);
out:
	lp_sha256_free(sha);
	lp_blob_unref(b);
	free(buf);
	return r;
}
