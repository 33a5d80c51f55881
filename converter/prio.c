// SPDX-License-Identifier: Apache-2.0
/*
 * Prioritised-file lists: the input of `lazypull layer convert --prioritize`.
 * One path per line, or JSON lines whose "path" member names the file (the
 * records `lazypull optimize` writes; other members are ignored). Paths are
 * kept as written ("./" prefixes and all): the converter normalises them
 * the way the reference does when it matches them against the layer.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_int.h"

/* one line: a path or a JSON record with some metadata */
#define LP_PRIO_MAX_LINE (LP_TOC_MAX_PATH + 4096)

void lp_prio_list_free(char **paths)
{
	size_t i;

	if (!paths)
		return;
	for (i = 0; paths[i]; i++)
		free(paths[i]);
	free(paths);
}

/* The path a line names, as a new string; NULL with *r set on error. */
static char *lp_prio_line_path(const char *line, size_t lineno,
			       const char *file, int *r, struct lp_err *err)
{
	struct json_tokener *tok = NULL;
	struct json_object *obj = NULL, *v;
	const char *s;
	char *out = NULL;

	if (line[0] != '{') {
		s = line;
		goto dup;
	}
	tok = json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING);
	if (!tok) {
		*r = -ENOMEM;
		goto out;
	}
	obj = json_tokener_parse_ex(tok, line, (int)strlen(line));
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "path", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		*r = lp_err_set(err, -EINVAL,
				"%s:%zu: not a path nor a JSON record with a "
				"string \"path\"",
				file, lineno);
		goto out;
	}
	s = json_object_get_string(v);
dup:
	if (!*s || strlen(s) > LP_TOC_MAX_PATH) {
		*r = lp_err_set(err, *s ? -EFBIG : -EINVAL,
				"%s:%zu: path empty or over %u bytes", file,
				lineno, (unsigned)LP_TOC_MAX_PATH);
		goto out;
	}
	out = strdup(s);
	if (!out)
		*r = -ENOMEM;
out:
	json_object_put(obj);
	if (tok)
		json_tokener_free(tok);
	return out;
}

int lp_prio_list_load(const char *path, char ***ret_paths, struct lp_err *err)
{
	char **paths = NULL, *line = NULL;
	size_t nr = 0, cap = 0, lineno = 0, alloc = 0;
	FILE *f = NULL;
	ssize_t n;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		r = lp_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = getline(&line, &alloc, f)) >= 0) {
		char *s = line, *e = line + n, *p;

		lineno++;
		if ((size_t)n > LP_PRIO_MAX_LINE) {
			r = lp_err_set(err, -EFBIG,
				       "%s:%zu: line over %u bytes", path,
				       lineno, (unsigned)LP_PRIO_MAX_LINE);
			goto out;
		}
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' ||
				 e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		if (nr >= LP_CONVERT_MAX_PRIORITIZED) {
			r = lp_err_set(err, -EFBIG, "%s: more than %u paths",
				       path, LP_CONVERT_MAX_PRIORITIZED);
			goto out;
		}
		/* room for this path and the NULL after the last */
		r = lp_grow_array((void **)&paths, &cap, nr + 2,
				  sizeof(*paths));
		if (r < 0)
			goto out;
		p = lp_prio_line_path(s, lineno, path, &r, err);
		if (!p)
			goto out;
		paths[nr++] = p;
		paths[nr] = NULL;
	}
	if (ferror(f)) {
		r = lp_err_set(err, -EIO, "%s: read error", path);
		goto out;
	}
	if (!paths) {
		paths = calloc(1, sizeof(*paths));
		if (!paths) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret_paths = paths;
	paths = NULL;
	r = (int)nr;
out:
	lp_prio_list_free(paths);
	free(line);
	if (f)
		fclose(f);
	return r;
}
