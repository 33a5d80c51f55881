// SPDX-License-Identifier: Apache-2.0
/*
 * WWW-Authenticate parsing (RFC 7235): one or more challenges, each a scheme
 * followed by comma-separated auth-params whose values are tokens or quoted
 * strings with backslash escapes. The registry client wants the Bearer
 * challenge (realm, service, scope) and falls back to Basic. The token
 * server's JSON reply to that challenge (token, expires_in, issued_at) is
 * parsed here too, so that both halves of the Bearer flow are pure
 * functions that the unit tests and one fuzz target drive.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lp_json.h"
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

/* @n decimal digits at @s, or -1 */
static int digits(const char *s, int n)
{
	int v = 0;

	for (; n; n--, s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

int lp_reg_rfc3339_parse(const char *s, size_t len, int64_t *ret_epoch)
{
	struct tm tm;
	int64_t off = 0;
	time_t t;
	size_t i = 19;

	/* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
	if (len < 20 || len > LP_REG_TIME_MAX || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
	    s[16] != ':')
		return -EPROTO;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour < 0 ||
	    tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
	    tm.tm_sec < 0 || tm.tm_sec > 60)
		return -EPROTO;
	if (s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == 20)
			return -EPROTO;
	}
	if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
		off = 0;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') &&
		   s[i + 3] == ':') {
		int hh = digits(s + i + 1, 2), mm = digits(s + i + 4, 2);

		if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
			return -EPROTO;
		off = (int64_t)(hh * 3600 + mm * 60) * (s[i] == '-' ? -1 : 1);
	} else {
		return -EPROTO;
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EPROTO;
	*ret_epoch = (int64_t)t - off;
	return 0;
}

int lp_reg_token_reply_parse(const char *json, size_t len,
			     struct lp_reg_token_reply *ret)
{
	json_object *root = NULL, *v;
	const char *token, *issued;
	size_t tlen = 0, ilen = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (len > LP_REG_TOKEN_BODY_MAX)
		return -EFBIG;
	r = lp_json_parse(json, len, REG_TOKEN_JSON_DEPTH, json_type_object,
			  &root);
	if (r < 0)
		return r == -ENOMEM ? r : -EPROTO;
	r = -EPROTO;
	token = lp_json_str_len(root, "token", &tlen);
	if (!token || !tlen)
		token = lp_json_str_len(root, "access_token", &tlen);
	if (!token || !tlen || tlen >= sizeof(ret->token) ||
	    strlen(token) != tlen || strpbrk(token, "\r\n"))
		goto out;
	memcpy(ret->token, token, tlen + 1);
	if (json_object_object_get_ex(root, "expires_in", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 0)
		ret->expires_in_s =
			json_object_get_int64(v) > LP_REG_TOKEN_TTL_MAX ?
				LP_REG_TOKEN_TTL_MAX :
				json_object_get_int64(v);
	issued = lp_json_str_len(root, "issued_at", &ilen);
	if (issued && lp_reg_rfc3339_parse(issued, ilen, &ret->issued_at) == 0)
		ret->have_issued_at = true;
	r = 0;
out:
	json_object_put(root);
	if (r < 0)
		explicit_bzero(ret, sizeof(*ret));
	return r;
}

int64_t lp_reg_token_lifetime_ms(const struct lp_reg_token_reply *t,
				 int64_t now_epoch_ms)
{
	int64_t ttl = (t->expires_in_s > 0 ? t->expires_in_s :
					     LP_REG_TOKEN_DEFAULT_TTL_S) *
		      1000;
	int64_t age;

	if (!t->have_issued_at)
		return ttl;
	/* a token issued in the future, or longer ago than it lives, says
	 * that the clocks disagree: then expires_in counts from now */
	age = now_epoch_ms - t->issued_at * 1000;
	if (age < 0 || age >= ttl)
		return ttl;
	return ttl - age;
}
