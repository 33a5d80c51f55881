// SPDX-License-Identifier: Apache-2.0
/*
 * Image stores: a registry repository or an OCI image layout directory,
 * behind one small interface (store_int.h) so that image conversion works
 * the same in every direction. Registry access goes through registry/;
 * layouts are plain files, every read verified against its descriptor and
 * every write made to a temporary file renamed into place, index.json last.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lp_io.h"
#include "lp_image.h"
#include "store_int.h"

#define LAYOUT_FILE_CONTENT "{\"imageLayoutVersion\":\"1.0.0\"}"
#define COPY_BLOCK (1024 * 1024)

struct lp_img_store {
	char *spec;
	bool layout;
	/* layout */
	char *dir;
	char *tag; /* NULL when none was given */
	bool prepared; /* blobs/sha256 and oci-layout exist */
	/* registry */
	struct lp_reg *reg; /* borrowed */
	struct lp_reg_ref ref;
};

const char *lp_img_store_name(const struct lp_img_store *st)
{
	return st->spec;
}

bool lp_img_store_is_layout(const struct lp_img_store *st)
{
	return st->layout;
}

const struct lp_reg_ref *lp_img_store_ref(const struct lp_img_store *st)
{
	return st->layout ? NULL : &st->ref;
}

void lp_img_store_free(struct lp_img_store *st)
{
	if (!st)
		return;
	free(st->spec);
	free(st->dir);
	free(st->tag);
	free(st);
}

/* "oci:DIR[:TAG]": the part after the last ':' is a tag when it has no '/' */
static int parse_layout_spec(struct lp_img_store *st, const char *rest)
{
	const char *colon = strrchr(rest, ':');
	size_t dlen = strlen(rest);

	if (colon && !strchr(colon + 1, '/')) {
		dlen = (size_t)(colon - rest);
		if (!colon[1] || strlen(colon + 1) >= LP_REG_TAG_MAX)
			return -EINVAL;
		st->tag = strdup(colon + 1);
		if (!st->tag)
			return -ENOMEM;
	}
	if (!dlen || dlen >= LP_IMG_PATH_MAX - 128)
		return -EINVAL;
	st->dir = strndup(rest, dlen);
	return st->dir ? 0 : -ENOMEM;
}

int lp_img_store_open(const char *spec, struct lp_reg *reg, bool for_write,
		      struct lp_img_store **ret_st, struct lp_err *err)
{
	struct lp_img_store *st = NULL;
	int r = -ENOMEM;

	st = calloc(1, sizeof(*st));
	if (!st || !(st->spec = strdup(spec)))
		goto out;
	st->reg = reg;
	if (!strncmp(spec, "oci:", 4)) {
		st->layout = true;
		r = parse_layout_spec(st, spec + 4);
		if (r == -EINVAL)
			lp_err_set(err, r,
				   "%s: not an OCI layout spec (oci:DIR[:TAG])",
				   spec);
		if (r < 0)
			goto out;
	} else {
		r = lp_reg_ref_parse(spec, &st->ref);
		if (r < 0) {
			lp_err_set(err, r, "%s: not an image reference", spec);
			goto out;
		}
		if (for_write && (st->ref.has_digest || !st->ref.tag[0])) {
			r = lp_err_set(err, -EINVAL,
				       "%s: the destination needs a tag, not a "
				       "digest",
				       spec);
			goto out;
		}
	}
	*ret_st = st;
	st = NULL;
	r = 0;
out:
	lp_img_store_free(st);
	return r;
}

/* ---- layout files ---- */

static int blob_path(const struct lp_img_store *st, const struct lp_digest *d,
		     char *out, size_t size)
{
	char ds[LP_DIGEST_STR_LEN + 1];
	int n;

	lp_digest_format(d, ds);
	n = snprintf(out, size, "%s/blobs/sha256/%s", st->dir, ds + 7);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* read a whole file of at most @limit bytes, NUL-ended */
static int read_bounded(const char *path, size_t limit, char **ret_data,
			size_t *ret_len)
{
	return lp_file_read_bounded(path, limit, 0, (void **)ret_data, ret_len);
}

/* write @path atomically: a temporary file next to it, fsync, rename */
static int write_atomic(const char *path, const void *data, size_t len,
			struct lp_err *err)
{
	int r = lp_file_write_atomic(path, data, len, 0644);

	if (r < 0)
		lp_err_set(err, r, "writing %s: %s", path, strerror(-r));
	return r;
}

/* copy file @src to @dst atomically (when a hard link is not possible) */
static int copy_atomic(const char *src, const char *dst, struct lp_err *err)
{
	char tmp[LP_IMG_PATH_MAX + 16];
	char *buf = NULL;
	int in = -1, out = -1, r;
	ssize_t n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", dst) >=
	    (int)sizeof(tmp))
		return lp_err_set(err, -ENAMETOOLONG, "%s: name too long", dst);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return lp_err_set(err, -errno, "%s: %s", src, strerror(errno));
	out = mkostemp(tmp, O_CLOEXEC);
	buf = malloc(COPY_BLOCK);
	if (out < 0 || !buf) {
		r = out < 0 ? -errno : -ENOMEM;
		lp_err_set(err, r, "%s: cannot create: %s", tmp, strerror(-r));
		goto out;
	}
	for (;;) {
		n = read(in, buf, COPY_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = lp_err_set(err, -errno, "%s: %s", src,
				       strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		r = lp_write_all(out, buf, (size_t)n);
		if (r < 0) {
			lp_err_set(err, r, "%s: %s", tmp, strerror(-r));
			goto out;
		}
	}
	r = 0;
	if (fchmod(out, 0644) < 0 || fsync(out) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	out = -1;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0)
		lp_err_set(err, r, "writing %s: %s", dst, strerror(-r));
out:
	if (out >= 0)
		close(out);
	if (r < 0)
		unlink(tmp);
	close(in);
	free(buf);
	return r;
}

/* blobs/sha256 and the oci-layout file, made on the first write */
static int layout_prepare(struct lp_img_store *st, struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX];
	int r;

	if (st->prepared)
		return 0;
	snprintf(path, sizeof(path), "%s/blobs/sha256", st->dir);
	r = lp_mkdir_p(path, 0755, 0755);
	if (r < 0)
		return lp_err_set(err, r, "%s: cannot create: %s", path,
				  strerror(-r));
	snprintf(path, sizeof(path), "%s/oci-layout", st->dir);
	if (access(path, F_OK) < 0) {
		r = write_atomic(path, LAYOUT_FILE_CONTENT,
				 strlen(LAYOUT_FILE_CONTENT), err);
		if (r < 0)
			return r;
	}
	st->prepared = true;
	return 0;
}

/* a layout blob, checked against @d, into memory */
static int layout_get_blob(struct lp_img_store *st, const struct lp_reg_desc *d,
			   size_t limit, char **ret_data, size_t *ret_len,
			   struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX], ds[LP_DIGEST_STR_LEN + 1];
	struct lp_digest got;
	char *data = NULL;
	size_t len;
	int r;

	lp_digest_format(&d->digest, ds);
	r = blob_path(st, &d->digest, path, sizeof(path));
	if (r == 0)
		r = read_bounded(path, limit, &data, &len);
	if (r < 0) {
		lp_err_set(err, r, "%s: blob %s: %s", st->spec, ds,
			   r == -EFBIG ? "too large" : strerror(-r));
		goto out;
	}
	lp_sha256(data, len, &got);
	if (len != d->size || !lp_digest_equal(&got, &d->digest)) {
		r = lp_err_set(err, -EBADMSG,
			       "%s: blob %s: %s does not match its descriptor",
			       st->spec, ds,
			       len != d->size ? "size" : "digest");
		goto out;
	}
	*ret_data = data;
	*ret_len = len;
	data = NULL;
out:
	free(data);
	return r;
}

static int layout_index_json(struct lp_img_store *st,
			     struct lp_reg_manifest **ret_m, struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX];
	char *data = NULL;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "%s/index.json", st->dir);
	r = read_bounded(path, LP_IMAGE_INDEX_JSON_MAX, &data, &len);
	if (r < 0) {
		lp_err_set(err, r, "%s: %s%s", st->spec,
			   r == -ENOENT ? "no index.json: not an OCI layout" :
					  "index.json: ",
			   r == -ENOENT ? "" : strerror(-r));
		goto out;
	}
	r = lp_reg_manifest_parse(data, len, LP_REG_MT_OCI_INDEX, ret_m);
	if (r == 0 && !lp_reg_manifest_is_index(*ret_m)) {
		lp_reg_manifest_free(*ret_m);
		r = -EPROTO;
	}
	if (r < 0)
		lp_err_set(err, r, "%s: index.json is not an OCI index",
			   st->spec);
out:
	free(data);
	return r;
}

static int layout_get_top(struct lp_img_store *st,
			  struct lp_reg_manifest **ret_m, struct lp_err *err)
{
	struct lp_reg_manifest *idx = NULL;
	const struct lp_reg_desc *pick = NULL;
	size_t i, n, named = 0;
	int r;

	r = layout_index_json(st, &idx, err);
	if (r < 0)
		goto out;
	n = lp_reg_manifest_count(idx);
	for (i = 0; i < n; i++) {
		const struct lp_reg_desc *d = lp_reg_manifest_layer(idx, i);
		const char *name =
			lp_reg_desc_annotation(d, LP_IMAGE_ANN_REF_NAME);

		if (name)
			named++;
		if (st->tag && name && !strcmp(name, st->tag))
			pick = d;
	}
	if (st->tag && !pick) {
		r = lp_err_set(err, -ENOENT, "%s: no image tagged '%s'",
			       st->spec, st->tag);
		goto out;
	}
	if (!st->tag && n == 1) {
		pick = lp_reg_manifest_layer(idx, 0);
	} else if (!st->tag && n > 1 && !named) {
		/* index.json itself lists the platforms of one image */
		*ret_m = idx;
		idx = NULL;
		goto out;
	} else if (!st->tag) {
		r = lp_err_set(err, n ? -EINVAL : -ENOENT, "%s: %s", st->spec,
			       n ? "several images: name one as oci:DIR:TAG" :
				   "no image in index.json");
		goto out;
	}
	r = lp_img_store_get_manifest(st, pick, ret_m, err);
out:
	lp_reg_manifest_free(idx);
	return r;
}

static int layout_put_blob(struct lp_img_store *st, const void *data,
			   size_t len, struct lp_digest *ret_digest,
			   struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX];
	struct lp_digest d;
	int r;

	r = layout_prepare(st, err);
	if (r < 0)
		return r;
	lp_sha256(data, len, &d);
	r = blob_path(st, &d, path, sizeof(path));
	if (r == 0)
		r = write_atomic(path, data, len, err);
	if (r == 0 && ret_digest)
		*ret_digest = d;
	return r;
}

/* index.json with @entry replacing the entries of the same name */
static int layout_put_index(struct lp_img_store *st, json_object *entry,
			    struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX];
	json_object *root = NULL, *old = NULL, *arr, *m;
	const char *s;
	char *data = NULL;
	size_t len, i, n;
	int r;

	snprintf(path, sizeof(path), "%s/index.json", st->dir);
	r = read_bounded(path, LP_IMAGE_INDEX_JSON_MAX, &data, &len);
	if (r == 0) {
		root = json_tokener_parse(data);
		if (!root || !json_object_is_type(root, json_type_object) ||
		    !json_object_object_get_ex(root, "manifests", &old) ||
		    !json_object_is_type(old, json_type_array)) {
			old = NULL; /* borrowed from root: not ours to put */
			r = lp_err_set(err, -EPROTO,
				       "%s: existing index.json is not an "
				       "OCI index",
				       st->spec);
			goto out;
		}
		json_object_get(old);
	} else if (r == -ENOENT) {
		root = json_object_new_object();
		if (!root) {
			r = -ENOMEM;
			goto out;
		}
		json_object_object_add(root, "schemaVersion",
				       json_object_new_int(2));
		json_object_object_add(
			root, "mediaType",
			json_object_new_string(LP_REG_MT_OCI_INDEX));
	} else {
		lp_err_set(err, r, "%s: %s", path, strerror(-r));
		goto out;
	}
	arr = json_object_new_array();
	if (!arr) {
		r = -ENOMEM;
		goto out;
	}
	n = old ? json_object_array_length(old) : 0;
	for (i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(old, i), *ann, *nm;

		s = NULL;
		if (json_object_object_get_ex(e, "annotations", &ann) &&
		    json_object_object_get_ex(ann, LP_IMAGE_ANN_REF_NAME, &nm))
			s = json_object_get_string(nm);
		/* same tag, or both untagged: replaced */
		if ((st->tag && s && !strcmp(s, st->tag)) || (!st->tag && !s))
			continue;
		json_object_array_add(arr, json_object_get(e));
	}
	json_object_array_add(arr, json_object_get(entry));
	json_object_object_add(root, "manifests", arr);
	m = root;
	s = json_object_to_json_string_ext(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = s ? write_atomic(path, s, strlen(s), err) : -ENOMEM;
out:
	json_object_put(old);
	json_object_put(root);
	free(data);
	return r;
}

/* ---- the interface ---- */

int lp_img_store_get_top(struct lp_img_store *st,
			 struct lp_reg_manifest **ret_m, struct lp_err *err)
{
	if (st->layout)
		return layout_get_top(st, ret_m, err);
	return lp_reg_manifest_get(st->reg, &st->ref, ret_m, err);
}

int lp_img_store_get_manifest(struct lp_img_store *st,
			      const struct lp_reg_desc *d,
			      struct lp_reg_manifest **ret_m,
			      struct lp_err *err)
{
	struct lp_reg_manifest *m = NULL;
	struct lp_reg_ref ref;
	char ds[LP_DIGEST_STR_LEN + 1];
	char *data = NULL;
	size_t len;
	int r;

	lp_digest_format(&d->digest, ds);
	if (st->layout) {
		r = layout_get_blob(st, d, LP_REG_MANIFEST_MAX, &data, &len,
				    err);
		if (r < 0)
			goto out;
		r = lp_reg_manifest_parse(data, len, d->media_type, &m);
		if (r < 0) {
			lp_err_set(err, r, "%s: manifest %s: %s", st->spec, ds,
				   r == -EOPNOTSUPP ? "unsupported media type" :
						      "malformed");
			goto out;
		}
	} else {
		ref = st->ref;
		ref.tag[0] = '\0';
		ref.has_digest = true;
		ref.digest = d->digest;
		r = lp_reg_manifest_get(st->reg, &ref, &m, err);
		if (r < 0)
			goto out;
		lp_reg_manifest_raw(m, &len);
		if (len != d->size) {
			r = lp_err_set(err, -EBADMSG,
				       "%s: manifest %s is %zu bytes, its "
				       "descriptor says %llu",
				       st->spec, ds, len,
				       (unsigned long long)d->size);
			goto out;
		}
	}
	*ret_m = m;
	m = NULL;
out:
	lp_reg_manifest_free(m);
	free(data);
	return r;
}

int lp_img_store_get_small(struct lp_img_store *st, const struct lp_reg_desc *d,
			   size_t limit, char **ret_data, size_t *ret_len,
			   struct lp_err *err)
{
	char ds[LP_DIGEST_STR_LEN + 1];
	void *data = NULL;
	size_t len;
	int r;

	if (st->layout)
		return layout_get_blob(st, d, limit, ret_data, ret_len, err);
	lp_digest_format(&d->digest, ds);
	if (d->size > limit)
		return lp_err_set(err, -EFBIG,
				  "%s: blob %s: %llu bytes, over %zu", st->spec,
				  ds, (unsigned long long)d->size, limit);
	r = lp_reg_fetch_blob_mem(st->reg, &st->ref, &d->digest, limit, &data,
				  &len, err);
	if (r < 0)
		goto out;
	if (len != d->size) {
		r = lp_err_set(err, -EBADMSG,
			       "%s: blob %s is %zu bytes, its descriptor says "
			       "%llu",
			       st->spec, ds, len, (unsigned long long)d->size);
		goto out;
	}
	*ret_data = data;
	*ret_len = len;
	data = NULL;
out:
	free(data);
	return r;
}

int lp_img_store_open_blob(struct lp_img_store *st, const struct lp_reg_desc *d,
			   struct lp_blob **ret_blob, struct lp_err *err)
{
	char path[LP_IMG_PATH_MAX], ds[LP_DIGEST_STR_LEN + 1];
	struct lp_blob *b = NULL;
	int r;

	lp_digest_format(&d->digest, ds);
	if (!st->layout) {
		r = lp_reg_open_blob(st->reg, &st->ref, &d->digest, d->size,
				     ret_blob);
		if (r < 0)
			lp_err_set(err, r, "%s: blob %s: %s", st->spec, ds,
				   strerror(-r));
		return r;
	}
	r = blob_path(st, &d->digest, path, sizeof(path));
	if (r == 0)
		r = lp_blob_open_file(path, &b);
	if (r < 0) {
		lp_err_set(err, r, "%s: blob %s: %s", st->spec, ds,
			   strerror(-r));
		goto out;
	}
	if (lp_blob_size(b) != d->size) {
		r = lp_err_set(err, -EBADMSG,
			       "%s: blob %s is %llu bytes, its descriptor "
			       "says %llu",
			       st->spec, ds,
			       (unsigned long long)lp_blob_size(b),
			       (unsigned long long)d->size);
		goto out;
	}
	*ret_blob = b;
	b = NULL;
out:
	lp_blob_unref(b);
	return r;
}

int lp_img_store_put_file(struct lp_img_store *st,
			  const struct lp_digest *digest, uint64_t size,
			  const char *path, const struct lp_img_store *from,
			  struct lp_err *err)
{
	char dst[LP_IMG_PATH_MAX];
	const char *mount = NULL;
	struct stat sb;
	int fd = -1, r;

	if (st->layout) {
		r = layout_prepare(st, err);
		if (r < 0)
			goto out;
		r = blob_path(st, digest, dst, sizeof(dst));
		if (r < 0)
			goto out;
		/* content-addressed: a complete file of that name is it */
		if (stat(dst, &sb) == 0 && (uint64_t)sb.st_size == size)
			goto out;
		if (link(path, dst) == 0)
			goto out;
		r = copy_atomic(path, dst, err);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (from && !from->layout && !strcmp(from->ref.host, st->ref.host))
		mount = from->ref.repo;
	r = lp_reg_push_blob(st->reg, &st->ref, digest, size, fd, mount, err);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int lp_img_store_put_mem(struct lp_img_store *st, const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err)
{
	struct lp_digest d;
	int fd = -1, r;

	if (st->layout)
		return layout_put_blob(st, data, len, ret_digest, err);
	lp_sha256(data, len, &d);
	fd = memfd_create("lp-image-blob", MFD_CLOEXEC);
	if (fd < 0)
		return lp_err_set(err, -errno, "memfd_create: %s",
				  strerror(errno));
	r = lp_write_all(fd, data, len);
	if (r < 0) {
		lp_err_set(err, r, "memfd: %s", strerror(-r));
		goto out;
	}
	r = lp_reg_push_blob(st->reg, &st->ref, &d, len, fd, NULL, err);
	if (r == 0 && ret_digest)
		*ret_digest = d;
out:
	close(fd);
	return r;
}

int lp_img_store_put_manifest(struct lp_img_store *st, const char *media_type,
			      const void *data, size_t len,
			      struct lp_digest *ret_digest, struct lp_err *err)
{
	struct lp_reg_ref ref;

	if (st->layout)
		return layout_put_blob(st, data, len, ret_digest, err);
	ref = st->ref;
	ref.tag[0] = '\0';
	ref.has_digest = true;
	lp_sha256(data, len, &ref.digest);
	return lp_reg_push_manifest(st->reg, &ref, media_type, data, len,
				    ret_digest, err);
}

int lp_img_store_put_tag(struct lp_img_store *st, const char *media_type,
			 const void *data, size_t len,
			 struct lp_digest *ret_digest, struct lp_err *err)
{
	json_object *entry = NULL, *ann;
	char ds[LP_DIGEST_STR_LEN + 1];
	struct lp_digest d;
	int r;

	if (!st->layout)
		return lp_reg_push_manifest(st->reg, &st->ref, media_type, data,
					    len, ret_digest, err);
	r = layout_put_blob(st, data, len, &d, err);
	if (r < 0)
		goto out;
	lp_digest_format(&d, ds);
	entry = json_object_new_object();
	if (!entry) {
		r = -ENOMEM;
		goto out;
	}
	json_object_object_add(entry, "mediaType",
			       json_object_new_string(media_type));
	json_object_object_add(entry, "digest", json_object_new_string(ds));
	json_object_object_add(entry, "size", json_object_new_int64(len));
	if (st->tag) {
		ann = json_object_new_object();
		json_object_object_add(ann, LP_IMAGE_ANN_REF_NAME,
				       json_object_new_string(st->tag));
		json_object_object_add(entry, "annotations", ann);
	}
	r = layout_put_index(st, entry, err);
	if (r == 0 && ret_digest)
		*ret_digest = d;
out:
	json_object_put(entry);
	return r;
}
