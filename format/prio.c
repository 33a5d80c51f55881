// SPDX-License-Identifier: Apache-2.0
/*
 * The prioritised-file list reader: see lp_prio.h. One parser over a
 * buffer (what the fuzz target drives), and a loader that reads a file of
 * at most LP_PRIO_MAX_FILE bytes into one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lp_buf.h"
#include "lp_json.h"
#include "lp_prio.h"

#define PRIO_READ_STEP (16 * LP_KIB) /* on the stack */

void lp_prio_release(struct lp_prio_list *l)
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

/* member @a, or its camelCase spelling @b */
static json_object *member(json_object *o, const char *a, const char *b)
{
	json_object *v;

	if (json_object_object_get_ex(o, a, &v) ||
	    json_object_object_get_ex(o, b, &v))
		return v;
	return NULL;
}

/* the layer members of JSON line @o into @it; 0 or -EINVAL (@err set) */
static int parse_layer(json_object *o, struct lp_prio *it, const char *where,
		       struct lp_err *err)
{
	json_object *v;
	int64_t idx;

	v = member(o, "layer_digest", "layerDigest");
	if (v) {
		if (!json_object_is_type(v, json_type_string) ||
		    lp_digest_parse(json_object_get_string(v),
				    &it->layer_digest) < 0)
			return lp_err_set(err, -EINVAL,
					  "%s: \"layer_digest\" is not a "
					  "sha256 digest",
					  where);
		it->has_digest = true;
	}
	v = member(o, "layer_index", "layerIndex");
	if (v) {
		idx = json_object_get_int64(v);
		if (!json_object_is_type(v, json_type_int) || idx < 0 ||
		    idx >= LP_PRIO_MAX_LAYERS)
			return lp_err_set(err, -EINVAL,
					  "%s: \"layer_index\" is not an "
					  "integer in [0, %u)",
					  where, (unsigned)LP_PRIO_MAX_LAYERS);
		it->layer_index = (long)idx;
	}
	return 0;
}

/* one trimmed, non-empty line @s[0..@len) into @it; 0 or -errno (@err) */
static int parse_line(const char *s, size_t len, struct lp_prio *it,
		      const char *where, struct lp_err *err)
{
	json_object *o = NULL;
	const char *path = s;
	size_t plen = len;
	int r;

	if (memchr(s, '\0', len))
		return lp_err_set(err, -EINVAL, "%s: a NUL byte", where);
	if (s[0] == '{') {
		r = lp_json_parse(s, len, LP_TOC_MAX_JSON_NESTING,
				  json_type_object, &o);
		path = r < 0 ? NULL : lp_json_str_len(o, "path", &plen);
		if (!path || memchr(path, '\0', plen)) {
			r = lp_err_set(err, r == -ENOMEM ? r : -EINVAL,
				       "%s: not a path nor a JSON object with "
				       "a string \"path\"",
				       where);
			goto out;
		}
		r = parse_layer(o, it, where, err);
		if (r < 0)
			goto out;
	}
	if (plen == 0 || plen > LP_PRIO_MAX_PATH) {
		r = lp_err_set(err, plen ? -EFBIG : -EINVAL,
			       "%s: path empty or over LP_PRIO_MAX_PATH (%u "
			       "bytes)",
			       where, (unsigned)LP_PRIO_MAX_PATH);
		goto out;
	}
	it->path = strndup(path, plen);
	r = it->path ? 0 : -ENOMEM;
out:
	json_object_put(o);
	return r;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int lp_prio_parse(const char *data, size_t len, const char *name,
		  struct lp_prio_list *ret, struct lp_err *err)
{
	struct lp_prio_list l = { 0 };
	size_t pos = 0, lineno = 0, cap = 0;
	char where[PATH_MAX + 32];
	int r = 0;

	if (len > LP_PRIO_MAX_FILE) {
		r = lp_err_set(err, -EFBIG,
			       "%s: over LP_PRIO_MAX_FILE (%u bytes)", name,
			       (unsigned)LP_PRIO_MAX_FILE);
		goto out;
	}
	while (pos < len) {
		const char *s = data + pos, *nl;
		struct lp_prio it = { .layer_index = -1 };
		size_t n, end;

		nl = memchr(s, '\n', len - pos);
		n = nl ? (size_t)(nl - s) + 1 : len - pos;
		pos += n;
		lineno++;
		snprintf(where, sizeof(where), "%s:%zu", name, lineno);
		if (n > LP_PRIO_MAX_LINE) {
			r = lp_err_set(err, -EFBIG,
				       "%s: line over LP_PRIO_MAX_LINE (%u "
				       "bytes)",
				       where, (unsigned)LP_PRIO_MAX_LINE);
			goto out;
		}
		end = n;
		while (end && (s[end - 1] == '\n' || s[end - 1] == '\r' ||
			       is_blank(s[end - 1])))
			end--;
		while (end && is_blank(*s)) {
			s++;
			end--;
		}
		if (!end || *s == '#')
			continue;
		if (l.n >= LP_PRIO_MAX_PATHS) {
			r = lp_err_set(err, -EFBIG,
				       "%s: more than LP_PRIO_MAX_PATHS (%u) "
				       "paths",
				       where, LP_PRIO_MAX_PATHS);
			goto out;
		}
		r = lp_grow_array((void **)&l.items, &cap, l.n + 1,
				  sizeof(*l.items));
		if (r < 0)
			goto out;
		r = parse_line(s, end, &it, where, err);
		if (r < 0)
			goto out;
		l.items[l.n++] = it;
	}
	*ret = l;
	l.items = NULL;
	l.n = 0;
	r = (int)ret->n;
out:
	lp_prio_release(&l);
	return r;
}

int lp_prio_load(const char *path, struct lp_prio_list *ret, struct lp_err *err)
{
	char chunk[PRIO_READ_STEP];
	struct lp_buf b;
	ssize_t n;
	int fd, r = 0;

	lp_buf_init(&b, LP_PRIO_MAX_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
	while (r == 0) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0;
			break;
		}
		r = lp_buf_append(&b, chunk, (size_t)n);
	}
	close(fd);
	if (r == -EFBIG)
		r = lp_err_set(err, r, "%s: over LP_PRIO_MAX_FILE (%u bytes)",
			       path, (unsigned)LP_PRIO_MAX_FILE);
	else if (r < 0)
		r = lp_err_set(err, r, "%s: %s", path, strerror(-r));
	else
		r = lp_prio_parse(b.data ? (const char *)b.data : "", b.len,
				  path, ret, err);
	lp_buf_release(&b);
	return r;
}
