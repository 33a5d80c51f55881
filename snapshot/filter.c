// SPDX-License-Identifier: Apache-2.0
/*
 * containerd's filter syntax, the part the Snapshots API's List uses:
 * a filter is a comma-separated conjunction of terms `FIELD OP VALUE` or a
 * bare `FIELD` (present). FIELD is a dotted path whose parts are identifiers
 * or double-quoted strings (`labels."containerd.io/snapshot.ref"`); OP is
 * `==`, `!=` or `~=` (POSIX extended regexp); VALUE is quoted (Go escapes),
 * /slashed/ or bare up to the next comma. containerd's metadata store asks
 * for `labels."containerd.io/snapshot.ref"==TARGET,parent=="PARENT"` to find
 * the snapshot a remote Prepare committed.
 */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "snap_int.h"

#define FILTER_PART_MAX LP_SNAP_KEY_MAX

struct cursor {
	const char *p;
};

static void skip_space(struct cursor *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

/* a quoted string (opening quote at c->p) into @out; Go escapes */
static int read_quoted(struct cursor *c, char quote, char *out, size_t size)
{
	size_t n = 0;
	char ch;

	c->p++;
	while (*c->p && *c->p != quote) {
		ch = *c->p++;
		if (ch == '\\' && *c->p) {
			ch = *c->p++;
			switch (ch) {
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			default: /* \" \\ \/ and anything else: literal */
				if (quote == '/' && ch != '/') {
					if (n + 1 >= size)
						return -EINVAL;
					out[n++] = '\\';
				}
				break;
			}
		}
		if (n + 1 >= size)
			return -EINVAL;
		out[n++] = ch;
	}
	if (*c->p != quote)
		return -EINVAL;
	c->p++;
	out[n] = '\0';
	return 0;
}

static int is_ident(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '_';
}

static int read_part(struct cursor *c, char *out, size_t size)
{
	size_t n = 0;

	if (*c->p == '"')
		return read_quoted(c, '"', out, size);
	while (is_ident(*c->p)) {
		if (n + 1 >= size)
			return -EINVAL;
		out[n++] = *c->p++;
	}
	out[n] = '\0';
	return n ? 0 : -EINVAL;
}

static const char *kind_name(enum lp_snap_kind k)
{
	switch (k) {
	case LP_SNAP_KIND_VIEW:
		return "view";
	case LP_SNAP_KIND_ACTIVE:
		return "active";
	case LP_SNAP_KIND_COMMITTED:
		return "committed";
	default:
		return "unknown";
	}
}

/* one term at c->p; 1 match, 0 no match, -EINVAL */
static int match_term(struct cursor *c, const struct lp_snap_rec *r, char *a,
		      char *b)
{
	const char *have = NULL;
	regex_t re;
	char op = 0;
	int m, rc;

	skip_space(c);
	if (read_part(c, a, FILTER_PART_MAX) < 0)
		return -EINVAL;
	if (!strcmp(a, "labels")) {
		if (*c->p != '.')
			return -EINVAL;
		c->p++;
		if (read_part(c, b, FILTER_PART_MAX) < 0)
			return -EINVAL;
		have = lp_snap_rec_label(r, b);
	} else if (!strcmp(a, "name")) {
		have = r->key;
	} else if (!strcmp(a, "parent")) {
		have = r->parent;
	} else if (!strcmp(a, "kind")) {
		have = kind_name(r->kind);
	}
	skip_space(c);
	if (!strncmp(c->p, "==", 2) || !strncmp(c->p, "!=", 2) ||
	    !strncmp(c->p, "~=", 2)) {
		op = *c->p;
		c->p += 2;
	} else if (*c->p && *c->p != ',') {
		return -EINVAL;
	}
	if (!op)
		return have && *have;
	skip_space(c);
	if (*c->p == '"' || *c->p == '/') {
		if (read_quoted(c, *c->p, b, FILTER_PART_MAX) < 0)
			return -EINVAL;
	} else {
		size_t n = 0;

		while (*c->p && *c->p != ',' && *c->p != ' ') {
			if (n + 1 >= FILTER_PART_MAX)
				return -EINVAL;
			b[n++] = *c->p++;
		}
		b[n] = '\0';
	}
	skip_space(c);
	if (*c->p && *c->p != ',')
		return -EINVAL;
	if (op == '=')
		return have && !strcmp(have, b);
	if (op == '!')
		return !have || strcmp(have, b);
	if (regcomp(&re, b, REG_EXTENDED | REG_NOSUB) != 0)
		return -EINVAL;
	rc = have ? regexec(&re, have, 0, NULL, 0) : REG_NOMATCH;
	regfree(&re);
	m = rc == 0;
	return m;
}

int lp_snap_filter_match(const char *filter, const struct lp_snap_rec *r)
{
	struct cursor c = { filter };
	char *a = NULL, *b = NULL;
	int m = 1, t;

	a = malloc(FILTER_PART_MAX);
	b = malloc(FILTER_PART_MAX);
	if (!a || !b) {
		m = -ENOMEM;
		goto out;
	}
	skip_space(&c);
	if (!*c.p)
		goto out; /* empty filter: everything */
	for (;;) {
		t = match_term(&c, r, a, b);
		if (t < 0) {
			m = t;
			goto out;
		}
		if (!t)
			m = 0; /* keep parsing: report syntax errors */
		if (*c.p != ',')
			break;
		c.p++;
	}
out:
	free(a);
	free(b);
	return m;
}
