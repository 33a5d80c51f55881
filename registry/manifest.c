// SPDX-License-Identifier: Apache-2.0
/*
 * Manifest and index parsing: OCI image manifests and indexes, Docker
 * schema2 manifests and manifest lists, into descriptors (media type,
 * digest, size, annotations, platform), and platform selection from an
 * index. Pure: no I/O. The descriptors' strings point into the parsed JSON,
 * which the manifest keeps until it is freed.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "lp_json.h"
#include "lp_registry.h"
#include "reg_int.h"

struct lp_reg_manifest {
	char *raw; /* the exact bytes, NUL-terminated */
	size_t raw_len;
	struct lp_digest digest;
	const char *media_type;
	bool is_index;
	struct lp_reg_desc config; /* image manifests */
	struct lp_reg_desc *descs; /* layers, or index entries */
	size_t n_descs;
	json_object *root; /* owns every string above */
};

static int parse_desc(json_object *o, bool want_platform, struct lp_reg_desc *d)
{
	json_object *v, *ann, *plat;
	const char *s;
	int64_t size;
	struct lp_reg_annotation *a = NULL;
	int r = -EPROTO;

	memset(d, 0, sizeof(*d));
	d->platform.os = d->platform.arch = d->platform.variant = "";
	if (!json_object_is_type(o, json_type_object))
		goto out;
	s = lp_json_str(o, "mediaType");
	if (!s)
		goto out;
	d->media_type = s;
	d->artifact_type = lp_json_str(o, "artifactType");
	s = lp_json_str(o, "digest");
	if (!s || lp_digest_parse(s, &d->digest) < 0)
		goto out;
	if (!json_object_object_get_ex(o, "size", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	size = json_object_get_int64(v);
	if (size < 0 || size == INT64_MAX)
		goto out;
	d->size = (uint64_t)size;
	if (json_object_object_get_ex(o, "annotations", &ann) &&
	    !json_object_is_type(ann, json_type_null)) {
		size_t n = 0;

		if (!json_object_is_type(ann, json_type_object))
			goto out;
		if (json_object_object_length(ann) > LP_REG_ANNOTATIONS_MAX) {
			r = -EFBIG;
			goto out;
		}
		a = calloc((size_t)json_object_object_length(ann) + 1,
			   sizeof(*a));
		if (!a) {
			r = -ENOMEM;
			goto out;
		}
		json_object_object_foreach(ann, key, val)
		{
			if (!json_object_is_type(val, json_type_string))
				goto out;
			a[n].key = key;
			a[n].value = json_object_get_string(val);
			n++;
		}
		d->n_annotations = n;
	}
	if (want_platform && json_object_object_get_ex(o, "platform", &plat)) {
		if (!json_object_is_type(plat, json_type_object))
			goto out;
		s = lp_json_str(plat, "os");
		d->platform.os = s ? s : "";
		s = lp_json_str(plat, "architecture");
		d->platform.arch = s ? s : "";
		s = lp_json_str(plat, "variant");
		d->platform.variant = s ? s : "";
	}
	d->annotations = a;
	a = NULL;
	r = 0;
out:
	free(a);
	return r;
}

const char *lp_reg_desc_annotation(const struct lp_reg_desc *d, const char *key)
{
	size_t i;

	for (i = 0; i < d->n_annotations; i++)
		if (!strcmp(d->annotations[i].key, key))
			return d->annotations[i].value;
	return NULL;
}

static void free_descs(struct lp_reg_desc *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free((void *)d[i].annotations);
	free(d);
}

void lp_reg_manifest_free(struct lp_reg_manifest *m)
{
	if (!m)
		return;
	free((void *)m->config.annotations);
	free_descs(m->descs, m->n_descs);
	json_object_put(m->root);
	free(m->raw);
	free(m);
}

int lp_reg_manifest_parse(const void *data, size_t len, const char *media_type,
			  struct lp_reg_manifest **ret_m)
{
	struct lp_reg_manifest *m = NULL;
	json_object *v, *arr;
	const char *mt;
	size_t i, n;
	int r = -EPROTO;

	if (len > LP_REG_MANIFEST_MAX) {
		r = -EFBIG;
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m || !(m->raw = malloc(len + 1))) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(m->raw, data, len);
	m->raw[len] = '\0';
	m->raw_len = len;
	lp_sha256(data, len, &m->digest);
	r = lp_json_parse(m->raw, len, REG_MANIFEST_JSON_DEPTH,
			  json_type_object, &m->root);
	if (r < 0) {
		r = r == -ENOMEM ? r : -EPROTO;
		goto out;
	}
	r = -EPROTO;
	if (!json_object_object_get_ex(m->root, "schemaVersion", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	if (json_object_get_int64(v) != 2) {
		r = -EOPNOTSUPP; /* schema1 */
		goto out;
	}
	mt = lp_json_str(m->root, "mediaType");
	if (!mt && media_type && media_type[0])
		mt = media_type;
	if (!mt) /* OCI allows leaving it out */
		mt = json_object_object_get_ex(m->root, "manifests", NULL) ?
			     LP_REG_MT_OCI_INDEX :
			     LP_REG_MT_OCI_MANIFEST;
	/* media types map to the constants, whatever memory mt points into */
	if (!strcmp(mt, LP_REG_MT_OCI_INDEX)) {
		m->media_type = LP_REG_MT_OCI_INDEX;
		m->is_index = true;
	} else if (!strcmp(mt, LP_REG_MT_DOCKER_LIST)) {
		m->media_type = LP_REG_MT_DOCKER_LIST;
		m->is_index = true;
	} else if (!strcmp(mt, LP_REG_MT_OCI_MANIFEST)) {
		m->media_type = LP_REG_MT_OCI_MANIFEST;
	} else if (!strcmp(mt, LP_REG_MT_DOCKER_MANIFEST)) {
		m->media_type = LP_REG_MT_DOCKER_MANIFEST;
	} else {
		r = -EOPNOTSUPP;
		goto out;
	}
	if (!m->is_index) {
		if (!json_object_object_get_ex(m->root, "config", &v))
			goto out;
		r = parse_desc(v, false, &m->config);
		if (r < 0)
			goto out;
		r = -EPROTO;
	}
	if (!json_object_object_get_ex(
		    m->root, m->is_index ? "manifests" : "layers", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		goto out;
	n = json_object_array_length(arr);
	if (n > (m->is_index ? LP_REG_INDEX_MAX : LP_REG_LAYERS_MAX)) {
		r = -EFBIG;
		goto out;
	}
	m->descs = calloc(n ? n : 1, sizeof(*m->descs));
	if (!m->descs) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = parse_desc(json_object_array_get_idx(arr, i), m->is_index,
			       &m->descs[i]);
		if (r < 0)
			goto out;
		m->n_descs++;
	}
	*ret_m = m;
	m = NULL;
	r = 0;
out:
	lp_reg_manifest_free(m);
	return r;
}

bool lp_reg_manifest_is_index(const struct lp_reg_manifest *m)
{
	return m->is_index;
}

const char *lp_reg_manifest_media_type(const struct lp_reg_manifest *m)
{
	return m->media_type;
}

const struct lp_digest *lp_reg_manifest_digest(const struct lp_reg_manifest *m)
{
	return &m->digest;
}

const void *lp_reg_manifest_raw(const struct lp_reg_manifest *m, size_t *len)
{
	*len = m->raw_len;
	return m->raw;
}

const struct lp_reg_desc *
lp_reg_manifest_config(const struct lp_reg_manifest *m)
{
	return m->is_index ? NULL : &m->config;
}

size_t lp_reg_manifest_count(const struct lp_reg_manifest *m)
{
	return m->n_descs;
}

const struct lp_reg_desc *lp_reg_manifest_layer(const struct lp_reg_manifest *m,
						size_t i)
{
	return i < m->n_descs ? &m->descs[i] : NULL;
}

static const char *host_platform(void)
{
#if defined(__x86_64__)
	return "linux/amd64";
#elif defined(__aarch64__)
	return "linux/arm64/v8";
#elif defined(__arm__)
	return "linux/arm/v7";
#elif defined(__i386__)
	return "linux/386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "linux/ppc64le";
#elif defined(__s390x__)
	return "linux/s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "linux/riscv64";
#else
	return "linux/amd64";
#endif
}

int lp_reg_index_select(const struct lp_reg_manifest *m, const char *platform,
			const struct lp_reg_desc **ret_desc)
{
	char buf[128], *os, *arch, *variant;
	size_t i;
	int r = -EINVAL;

	if (!m->is_index)
		goto out;
	if (!platform)
		platform = host_platform();
	if (strlen(platform) >= sizeof(buf))
		goto out;
	memcpy(buf, platform, strlen(platform) + 1);
	os = buf;
	arch = strchr(os, '/');
	if (!arch || !*++arch)
		goto out;
	arch[-1] = '\0';
	variant = strchr(arch, '/');
	if (variant)
		*variant++ = '\0';
	else
		variant = "";
	if (!*os || strchr(variant, '/'))
		goto out;
	r = -ENOENT;
	for (i = 0; i < m->n_descs; i++) {
		const struct lp_reg_desc *d = &m->descs[i];
		const char *dv = d->platform.variant;

		if (strcmp(d->media_type, LP_REG_MT_OCI_MANIFEST) &&
		    strcmp(d->media_type, LP_REG_MT_DOCKER_MANIFEST))
			continue;
		if (strcmp(d->platform.os, os) ||
		    strcmp(d->platform.arch, arch))
			continue;
		if (!strcmp(arch, "arm64") && !*dv)
			dv = "v8";
		if (*variant && strcmp(dv, variant) &&
		    !(!strcmp(arch, "arm64") && !strcmp(variant, "v8") && !*dv))
			continue;
		*ret_desc = d;
		r = 0;
		break;
	}
out:
	return r;
}
