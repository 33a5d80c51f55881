// SPDX-License-Identifier: Apache-2.0
/*
 * WWW-Authenticate parsing (RFC 7235): one or more challenges, each a scheme
 * followed by comma-separated auth-params whose values are tokens or quoted
 * strings with backslash escapes. The registry client wants the Bearer
 * challenge (realm, service, scope) and falls back to Basic.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "reg_int.h"

struct cursor {
	const char *p;
	const char *end;
};

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_ows(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static size_t token(struct cursor *c, const char **ret_start)
{
	*ret_start = c->p;
	while (c->p < c->end && is_tchar(*c->p))
		c->p++;
	return (size_t)(c->p - *ret_start);
}

/* a token or quoted string into @out (NUL-terminated); -EPROTO or -EFBIG */
static int value(struct cursor *c, char *out, size_t size)
{
	size_t n = 0;

	if (c->p < c->end && *c->p == '"') {
		c->p++;
		for (;;) {
			char ch;

			if (c->p >= c->end)
				return -EPROTO;
			ch = *c->p++;
			if (ch == '"')
				break;
			if (ch == '\\') {
				if (c->p >= c->end)
					return -EPROTO;
				ch = *c->p++;
			}
			if (n + 1 >= size)
				return -EFBIG;
			out[n++] = ch;
		}
	} else {
		const char *s;
		size_t len = token(c, &s);

		/* token68 may end in '=' padding */
		while (c->p < c->end && *c->p == '=')
			c->p++, len++;
		if (!len)
			return -EPROTO;
		if (len >= size)
			return -EFBIG;
		memcpy(out, s, len);
		n = len;
	}
	out[n] = '\0';
	return 0;
}

static void set_scheme(struct lp_reg_challenge *ch, const char *s, size_t len)
{
	ch->scheme = LP_REG_AUTH_OTHER;
	if (len == 6 && !strncasecmp(s, "bearer", 6))
		ch->scheme = LP_REG_AUTH_BEARER;
	else if (len == 5 && !strncasecmp(s, "basic", 5))
		ch->scheme = LP_REG_AUTH_BASIC;
}

int lp_reg_www_auth_parse(const char *hdr, size_t len,
			  struct lp_reg_challenge *ret_ch)
{
	struct lp_reg_challenge best, cur;
	struct cursor c = { hdr, hdr + len };
	bool have_cur = false, have_best = false;
	int r = -EPROTO;

	memset(&best, 0, sizeof(best));
	memset(&cur, 0, sizeof(cur));
	if (len > LP_REG_HEADER_MAX) {
		r = -EFBIG;
		goto out;
	}
	for (;;) {
		const char *name;
		size_t nlen;
		struct cursor save;

		skip_ows(&c);
		while (c.p < c.end && (*c.p == ',' || *c.p == ' '))
			c.p++;
		if (c.p >= c.end)
			break;
		nlen = token(&c, &name);
		if (!nlen)
			goto out;
		save = c;
		skip_ows(&c);
		if (c.p < c.end && *c.p == '=' &&
		    !(c.p + 1 < c.end && c.p[1] == '=') && have_cur) {
			char *dst = NULL;
			size_t dsize = 0;
			char skip[LP_REG_AUTH_FIELD_MAX];

			c.p++;
			skip_ows(&c);
			if (nlen == 5 && !strncasecmp(name, "realm", 5))
				dst = cur.realm, dsize = sizeof(cur.realm);
			else if (nlen == 7 && !strncasecmp(name, "service", 7))
				dst = cur.service, dsize = sizeof(cur.service);
			else if (nlen == 5 && !strncasecmp(name, "scope", 5))
				dst = cur.scope, dsize = sizeof(cur.scope);
			else if (nlen == 5 && !strncasecmp(name, "error", 5))
				dst = cur.error, dsize = sizeof(cur.error);
			if (!dst)
				dst = skip, dsize = sizeof(skip);
			r = value(&c, dst, dsize);
			if (r < 0)
				goto out;
			r = -EPROTO;
			skip_ows(&c);
			if (c.p < c.end && *c.p != ',')
				goto out;
			continue;
		}
		/* a new challenge: keep the better one seen so far */
		c = save;
		if (have_cur && (!have_best || cur.scheme < best.scheme))
			best = cur, have_best = true;
		memset(&cur, 0, sizeof(cur));
		set_scheme(&cur, name, nlen);
		have_cur = true;
		/* a token68 credential right after the scheme: skip it */
		skip_ows(&c);
		if (c.p < c.end && *c.p != ',') {
			const char *t;
			struct cursor look = c;

			token(&look, &t);
			skip_ows(&look);
			if (look.p < look.end && *look.p == '=' &&
			    !(look.p + 1 < look.end && look.p[1] == '='))
				continue;
			/* token68 */
			while (c.p < c.end && *c.p != ',')
				c.p++;
		}
	}
	if (have_cur && (!have_best || cur.scheme < best.scheme))
		best = cur, have_best = true;
	if (!have_best || best.scheme == LP_REG_AUTH_OTHER)
		goto out;
	if (best.scheme == LP_REG_AUTH_BEARER && !best.realm[0])
		goto out;
	*ret_ch = best;
	r = 0;
out:
	return r;
}
