// SPDX-License-Identifier: Apache-2.0
/*
 * Image-level prioritised-file lists: the per-layer form of the lists the
 * layer converter takes. A line is a path, or a JSON object with "path" and
 * optionally the layer it belongs to ("layer_digest", "layer_index"), the
 * record `lazypull optimize` is to write. Image conversion hands each layer
 * the paths that name it plus those that name no layer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lp_image.h"

void lp_image_prio_list_release(struct lp_image_prio_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->items[i].path);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static json_object *member(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (json_object_object_get_ex(o, a, &v) ||
	    json_object_object_get_ex(o, b, &v))
		return v;
	return NULL;
}

/* one JSON line into @it; -EINVAL when malformed */
static int parse_json_line(const char *line, struct lp_image_prio *it)
{
	json_object *root, *v;
	int r = -EINVAL;

	root = json_tokener_parse(line);
	if (!root || !json_object_is_type(root, json_type_object))
		goto out;
	v = member(root, "path", "path");
	if (!v || !json_object_is_type(v, json_type_string) ||
	    !json_object_get_string_len(v))
		goto out;
	it->path = strdup(json_object_get_string(v));
	if (!it->path) {
		r = -ENOMEM;
		goto out;
	}
	v = member(root, "layer_digest", "layerDigest");
	if (v) {
		if (!json_object_is_type(v, json_type_string) ||
		    lp_digest_parse(json_object_get_string(v),
				    &it->layer_digest) < 0)
			goto out;
		it->has_digest = true;
	}
	v = member(root, "layer_index", "layerIndex");
	if (v) {
		if (!json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) < 0 ||
		    json_object_get_int64(v) >= LP_REG_LAYERS_MAX)
			goto out;
		it->layer_index = (long)json_object_get_int64(v);
	}
	r = 0;
out:
	json_object_put(root);
	return r;
}

int lp_image_prio_load(const char *path, struct lp_image_prio_list *ret,
		       struct lp_err *err)
{
	struct lp_image_prio_list l = { 0 };
	struct lp_image_prio *items;
	size_t alloc = 0, lineno = 0, total = 0;
	char *line = NULL, *s;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f)
		return lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) >= 0) {
		struct lp_image_prio it = { .layer_index = -1 };

		lineno++;
		total += (size_t)n;
		if ((size_t)n > LP_IMAGE_PRIO_LINE_MAX ||
		    total > LP_IMAGE_PRIO_FILE_MAX ||
		    l.n >= LP_CONVERT_MAX_PRIORITIZED) {
			r = lp_err_set(err, -EFBIG, "%s:%zu: over a size limit",
				       path, lineno);
			goto out;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		if (*s == '{') {
			r = parse_json_line(s, &it);
			if (r < 0) {
				free(it.path);
				lp_err_set(err, r,
					   "%s:%zu: expected {\"path\": ..., "
					   "\"layer_digest\"/\"layer_index\"}",
					   path, lineno);
				goto out;
			}
		} else {
			it.path = strdup(line);
			if (!it.path) {
				r = -ENOMEM;
				goto out;
			}
		}
		if (l.n == alloc) {
			alloc = alloc ? 2 * alloc : 64;
			items = realloc(l.items, alloc * sizeof(*items));
			if (!items) {
				free(it.path);
				r = -ENOMEM;
				goto out;
			}
			l.items = items;
		}
		l.items[l.n++] = it;
	}
	if (ferror(f)) {
		r = lp_err_set(err, -EIO, "%s: read error", path);
		goto out;
	}
	*ret = l;
	l.items = NULL;
	l.n = 0;
	r = (int)ret->n;
out:
	lp_image_prio_list_release(&l);
	free(line);
	fclose(f);
	return r;
}
