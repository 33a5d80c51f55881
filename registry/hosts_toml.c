// SPDX-License-Identifier: Apache-2.0
/*
 * The hosts.toml parser: the subset of TOML that containerd's hosts.toml
 * documentation uses (comments; `key = value` with "basic" and 'literal'
 * strings, booleans, decimal integers and arrays of them, arrays of arrays
 * one level deep; [table] headers of dotted simple keys) read into the
 * host list containerd's remotes/docker/config/hosts.go makes of it. No C
 * TOML library is packaged for Debian 12, hence our own; it is small,
 * bounded everywhere (LP_HOSTS_* in lp_hosts.h) and fuzzed
 * (tests/fuzz/fuzz_hosts_toml.c). TOML outside the subset (multi-line
 * strings, floats, dates, inline tables, arrays of tables, dotted keys on
 * the left of `=`) is an error naming the file and line, as is a value of
 * the wrong type for a key containerd knows; keys containerd does not know
 * are ignored, as its TOML decoding ignores them.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hosts_int.h"
#include "lp_buf.h"
#include "lp_common.h"

/* ---- the document: tables, keys, values ---------------------------- */

enum table_kind {
	TK_ROOT, /* the top level: server, capabilities, ca, ... */
	TK_HOSTS, /* [host]: holds only [host."URL"] tables */
	TK_HOST, /* [host."URL"] */
	TK_HEADER, /* [header] or [host."URL".header] */
	TK_OTHER, /* a table containerd does not know: ignored */
};

struct table {
	int parent; /* index in parser.tables; -1 for the root */
	char *name;
	enum table_kind kind;
	int cfg; /* TK_ROOT, TK_HOST, TK_HEADER: index in parser.cfgs */
	bool defined; /* by its own [header] line (not only implied) */
};

struct key {
	int table;
	char *name;
};

/* a host as the file says it, before its URL is taken apart */
struct cfg {
	struct lp_host h;
	char *url; /* the "URL" of [host."URL"], or `server`; NULL: none */
	bool caps_set;
	bool override_path;
};

enum value_type { V_STR, V_BOOL, V_INT, V_ARRAY };

struct value {
	enum value_type type;
	unsigned int line;
	char *s; /* V_STR */
	bool b; /* V_BOOL */
	long long i; /* V_INT */
	struct value *items; /* V_ARRAY */
	size_t n;
};

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	unsigned int line;
	const char *dir;
	const char *file;
	struct lp_err *err;
	struct table tables[LP_HOSTS_TABLES_MAX];
	size_t n_tables;
	struct key keys[LP_HOSTS_KEYS_MAX];
	size_t n_keys;
	struct cfg cfgs[LP_HOSTS_MAX]; /* [0] is the top level */
	size_t n_cfgs;
	int cur; /* the table `key = value` lines go to */
};

static int fail(struct parser *p, unsigned int line, int code, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

static int fail(struct parser *p, unsigned int line, int code, const char *fmt,
		...)
{
	char msg[LP_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!line)
		return lp_err_set(p->err, code, "%s: %s", p->file, msg);
	return lp_err_set(p->err, code, "%s:%u: %s", p->file, line, msg);
}

static void value_release(struct value *v)
{
	size_t i;

	if (!v)
		return;
	free(v->s);
	for (i = 0; i < v->n; i++)
		value_release(&v->items[i]);
	free(v->items);
	memset(v, 0, sizeof(*v));
}

/* ---- the whole text: size, lines, characters ----------------------- */

/* the length of the UTF-8 sequence at @s (@n bytes left), 0 if invalid */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned int c = s[0], cp, i, len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Every line within LP_HOSTS_LINE_MAX, the text UTF-8 without control
 * characters but tab (TOML allows none in strings, keys or comments; a
 * NUL would end a C string early), lines ended by LF or CRLF.
 */
static int check_text(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	unsigned int line = 1;
	size_t i = 0, col = 0;

	if (p->len > LP_HOSTS_FILE_MAX)
		return fail(p, 0, -EFBIG,
			    "%zu bytes, over LP_HOSTS_FILE_MAX (%d)", p->len,
			    LP_HOSTS_FILE_MAX);
	while (i < p->len) {
		size_t n = 1;

		if (s[i] == '\n') {
			line++;
			col = 0;
			i++;
			continue;
		}
		if (s[i] == '\r' && i + 1 < p->len && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return fail(p, line, -EINVAL,
				    "control character 0x%02x", s[i]);
		if (s[i] >= 0x80) {
			n = utf8_len(s + i, p->len - i);
			if (!n)
				return fail(p, line, -EINVAL, "not UTF-8");
		}
		col += n;
		if (col > LP_HOSTS_LINE_MAX)
			return fail(p, line, -EFBIG,
				    "line over LP_HOSTS_LINE_MAX (%d) bytes",
				    LP_HOSTS_LINE_MAX);
		i += n;
	}
	return 0;
}

/* ---- characters ----------------------------------------------------- */

static int peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t ahead)
{
	return p->pos + ahead < p->len ? (unsigned char)p->s[p->pos + ahead] :
					 -1;
}

static void skip_ws(struct parser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		p->pos++;
}

static bool at_newline(const struct parser *p)
{
	return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

static void eat_newline(struct parser *p)
{
	if (peek(p) == '\r')
		p->pos++;
	p->pos++;
	p->line++;
}

static void skip_comment(struct parser *p)
{
	if (peek(p) != '#')
		return;
	while (p->pos < p->len && !at_newline(p))
		p->pos++;
}

/* spaces, comments and newlines: between the elements of an array */
static void skip_blank(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		skip_comment(p);
		if (!at_newline(p))
			return;
		eat_newline(p);
	}
}

/* after a key/value or a [table]: only a comment until the line ends */
static int end_line(struct parser *p)
{
	skip_ws(p);
	skip_comment(p);
	if (p->pos == p->len)
		return 0;
	if (!at_newline(p) && peek(p) > ' ' && peek(p) < 0x7f)
		return fail(p, p->line, -EINVAL,
			    "unexpected '%c' where the line should end",
			    peek(p));
	if (!at_newline(p))
		return fail(p, p->line, -EINVAL,
			    "unexpected byte 0x%02x where the line should end",
			    peek(p));
	eat_newline(p);
	return 0;
}

static bool is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* what may follow a value: a separator, a comment or the line's end */
static bool is_value_end(const struct parser *p)
{
	int c = peek(p);

	return c == -1 || c == ' ' || c == '\t' || c == '#' || c == ',' ||
	       c == ']' || at_newline(p);
}

/* ---- strings -------------------------------------------------------- */

static int put_utf8(struct lp_buf *b, unsigned long cp)
{
	unsigned char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xc0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xe0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xf0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return lp_buf_append(b, u, n);
}

/* the escape after a backslash, p->pos on the character after it */
static int escape(struct parser *p, struct lp_buf *b)
{
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	unsigned long cp = 0;
	const char *e;
	int c = peek(p), digits, i;

	if (c > 0 && (e = strchr(from, c))) {
		p->pos++;
		return lp_buf_append(b, &to[e - from], 1);
	}
	if (c != 'u' && c != 'U')
		return fail(p, p->line, -EINVAL, "invalid escape in a string");
	digits = c == 'u' ? 4 : 8;
	p->pos++;
	for (i = 0; i < digits; i++) {
		int h = lp_hex_digit(peek(p));

		if (h < 0)
			return fail(p, p->line, -EINVAL,
				    "\\%c needs %d hex digits", c, digits);
		cp = (cp << 4) | (unsigned long)h;
		p->pos++;
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(p, p->line, -EINVAL,
			    "escape is not a Unicode scalar value");
	if (!cp)
		return fail(p, p->line, -EINVAL, "NUL in a string");
	return put_utf8(b, cp);
}

/*
 * A "basic" or 'literal' string, p->pos on its quote; at most @max bytes
 * decoded (@what and @bound name the bound in the error).
 */
static int string(struct parser *p, size_t max, const char *bound, char **ret_s)
{
	struct lp_buf b;
	int q = peek(p), r = 0;
	unsigned int line = p->line;

	lp_buf_init(&b, max);
	if (peek_at(p, 1) == q && peek_at(p, 2) == q) {
		r = fail(p, line, -EINVAL,
			 "multi-line strings are not supported");
		goto out;
	}
	p->pos++;
	for (;;) {
		int c = peek(p);

		if (c == -1 || c == '\n' || c == '\r') {
			r = fail(p, line, -EINVAL, "unterminated string");
			goto out;
		}
		p->pos++;
		if (c == q)
			break;
		if (c == '\\' && q == '"')
			r = escape(p, &b);
		else
			r = lp_buf_append(&b, &p->s[p->pos - 1], 1);
		if (r == -EFBIG)
			r = fail(p, line, -EFBIG, "over %s (%zu) bytes", bound,
				 max);
		if (r < 0)
			goto out;
	}
	/* an empty buffer has no allocation yet: give it its NUL */
	r = lp_buf_append(&b, "", 0);
	if (r < 0)
		goto out;
	*ret_s = (char *)lp_buf_steal(&b, NULL);
out:
	lp_buf_release(&b);
	return r;
}

/* a bare or quoted key, p->pos on its first character */
static int key(struct parser *p, char **ret_key)
{
	size_t start = p->pos, n;
	int c = peek(p);

	if (c == '"' || c == '\'')
		return string(p, LP_HOSTS_KEY_MAX, "LP_HOSTS_KEY_MAX", ret_key);
	while (is_bare(peek(p)))
		p->pos++;
	n = p->pos - start;
	if (!n)
		return fail(p, p->line, -EINVAL, "expected a key");
	if (n > LP_HOSTS_KEY_MAX)
		return fail(p, p->line, -EFBIG,
			    "key over LP_HOSTS_KEY_MAX (%d)", LP_HOSTS_KEY_MAX);
	*ret_key = strndup(p->s + start, n);
	return *ret_key ? 0 : -ENOMEM;
}

/* ---- values --------------------------------------------------------- */

static int value(struct parser *p, unsigned int depth, struct value *v);

static int array(struct parser *p, unsigned int depth, struct value *v)
{
	size_t cap = 0;
	int r;

	if (depth >= LP_HOSTS_NEST_MAX)
		return fail(p, p->line, -EFBIG,
			    "arrays nested deeper than LP_HOSTS_NEST_MAX (%d)",
			    LP_HOSTS_NEST_MAX);
	p->pos++;
	for (;;) {
		skip_blank(p);
		if (peek(p) == ']')
			break;
		if (v->n == LP_HOSTS_ARRAY_MAX)
			return fail(
				p, p->line, -EFBIG,
				"array over LP_HOSTS_ARRAY_MAX (%d) elements",
				LP_HOSTS_ARRAY_MAX);
		r = lp_grow_array((void **)&v->items, &cap, v->n + 1,
				  sizeof(*v->items));
		if (r < 0)
			return r;
		memset(&v->items[v->n], 0, sizeof(*v->items));
		r = value(p, depth + 1, &v->items[v->n]);
		v->n++; /* also on error: value_release() frees the part */
		if (r < 0)
			return r;
		skip_blank(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) != ']')
			return fail(p, p->line, -EINVAL,
				    "expected ',' or ']' in an array");
		break;
	}
	p->pos++;
	return 0;
}

/* a decimal integer; other numbers, dates and times are not supported */
static int integer(struct parser *p, struct value *v)
{
	size_t start = p->pos, i;
	bool neg = false, digit_before = false;
	unsigned long long n = 0, limit;

	while (p->pos < p->len && !is_value_end(p))
		p->pos++;
	i = start;
	if (p->s[i] == '+' || p->s[i] == '-')
		neg = p->s[i++] == '-';
	limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
	if (i == p->pos)
		goto bad;
	if (p->s[i] == '0' && i + 1 < p->pos)
		goto bad; /* leading zeros, 0x.., 0o.., 0b.. */
	for (; i < p->pos; i++) {
		char c = p->s[i];

		if (c == '_' && digit_before && i + 1 < p->pos &&
		    p->s[i + 1] >= '0' && p->s[i + 1] <= '9') {
			digit_before = false;
			continue;
		}
		if (c < '0' || c > '9')
			goto bad;
		if (n > (limit - (unsigned)(c - '0')) / 10)
			return fail(p, v->line, -EINVAL,
				    "integer out of range");
		n = n * 10 + (unsigned)(c - '0');
		digit_before = true;
	}
	v->type = V_INT;
	v->i = neg ? (long long)(0 - n) : (long long)n;
	return 0;
bad:
	return fail(p, v->line, -EINVAL,
		    "only strings, booleans, decimal integers and arrays are "
		    "supported (no floats, dates or times)");
}

static int value(struct parser *p, unsigned int depth, struct value *v)
{
	int c = peek(p);

	v->line = p->line;
	if (c == '"' || c == '\'') {
		v->type = V_STR;
		return string(p, LP_HOSTS_STRING_MAX, "LP_HOSTS_STRING_MAX",
			      &v->s);
	}
	if (c == '[') {
		v->type = V_ARRAY;
		return array(p, depth, v);
	}
	if (c == '{')
		return fail(p, v->line, -EINVAL,
			    "inline tables are not supported; use a "
			    "[table] header");
	if (c == 't' || c == 'f') {
		const char *w = c == 't' ? "true" : "false";
		size_t n = strlen(w);

		if (p->len - p->pos >= n && !memcmp(p->s + p->pos, w, n)) {
			p->pos += n;
			if (is_value_end(p)) {
				v->type = V_BOOL;
				v->b = c == 't';
				return 0;
			}
		}
		return fail(p, v->line, -EINVAL, "invalid value");
	}
	if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' ||
	    c == 'n')
		return integer(p, v);
	return fail(p, v->line, -EINVAL, "expected a value");
}

/* ---- what the keys mean --------------------------------------------- */

/* as containerd: capabilities are case-insensitive; none listed: all */
static int set_caps(struct parser *p, struct cfg *c, const struct value *v)
{
	static const struct {
		const char *name;
		unsigned int cap;
	} names[] = {
		{ "pull", LP_HOST_CAP_PULL },
		{ "resolve", LP_HOST_CAP_RESOLVE },
		{ "push", LP_HOST_CAP_PUSH },
	};
	size_t i, j;

	if (v->type != V_ARRAY)
		return fail(p, v->line, -EINVAL,
			    "capabilities must be an array of strings");
	c->caps_set = true;
	c->h.caps = v->n ? 0 : LP_HOST_CAP_ALL;
	for (i = 0; i < v->n; i++) {
		const struct value *e = &v->items[i];

		if (e->type != V_STR)
			return fail(p, e->line, -EINVAL,
				    "capabilities must be an array of strings");
		for (j = 0; j < LP_ARRAY_SIZE(names); j++)
			if (!strcasecmp(e->s, names[j].name))
				break;
		if (j == LP_ARRAY_SIZE(names))
			return fail(p, e->line, -EINVAL,
				    "unknown capability \"%s\" (pull, resolve "
				    "or push)",
				    e->s);
		c->h.caps |= names[j].cap;
	}
	return 0;
}

static int path(struct parser *p, const struct value *v, const char *what,
		char **ret_path)
{
	int r = reg_hosts_path(p->dir, v->s, ret_path);

	if (r == -EINVAL)
		return fail(p, v->line, r, "%s: empty path", what);
	if (r == -ENAMETOOLONG)
		return fail(p, v->line, r,
			    "%s: path over LP_HOSTS_PATH_MAX (%d)", what,
			    LP_HOSTS_PATH_MAX);
	return r;
}

/* `ca`: a path or an array of paths */
static int set_ca(struct parser *p, struct cfg *c, const struct value *v)
{
	const struct value *one = v->type == V_STR ? v : NULL;
	size_t n = one ? 1 : v->n, i;
	int r;

	if (v->type != V_STR && v->type != V_ARRAY)
		return fail(p, v->line, -EINVAL,
			    "ca must be a path or an array of paths");
	c->h.ca = calloc(n ? n : 1, sizeof(*c->h.ca));
	if (!c->h.ca)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct value *e = one ? one : &v->items[i];

		if (e->type != V_STR)
			return fail(p, e->line, -EINVAL,
				    "ca must be a path or an array of paths");
		r = path(p, e, "ca", &c->h.ca[i]);
		if (r < 0)
			return r;
		c->h.n_ca++;
	}
	return 0;
}

/* `client`: a path, an array of paths, or of [cert, key] pairs */
static int set_client(struct parser *p, struct cfg *c, const struct value *v)
{
	static const char *const msg =
		"client must be a path, an array of paths or an array of "
		"[\"cert\", \"key\"] pairs";
	const struct value *one = v->type == V_STR ? v : NULL;
	size_t n = one ? 1 : v->n, i;
	int r;

	if (v->type != V_STR && v->type != V_ARRAY)
		return fail(p, v->line, -EINVAL, "%s", msg);
	c->h.clients = calloc(n ? n : 1, sizeof(*c->h.clients));
	if (!c->h.clients)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct value *e = one ? one : &v->items[i];
		struct lp_host_client *cl = &c->h.clients[i];

		if (e->type == V_STR) {
			r = path(p, e, "client", &cl->cert);
		} else if (e->type == V_ARRAY && e->n == 2 &&
			   e->items[0].type == V_STR &&
			   e->items[1].type == V_STR) {
			r = path(p, &e->items[0], "client", &cl->cert);
			/* ["cert.pem", ""]: the key is in the cert file */
			if (r == 0 && e->items[1].s[0])
				r = path(p, &e->items[1], "client", &cl->key);
		} else {
			r = fail(p, e->line, -EINVAL, "%s", msg);
		}
		c->h.n_clients++; /* a part set is freed with the rest */
		if (r < 0)
			return r;
	}
	return 0;
}

static int set_bool(struct parser *p, const char *k, const struct value *v,
		    bool *ret_b)
{
	if (v->type != V_BOOL)
		return fail(p, v->line, -EINVAL, "%s must be true or false", k);
	*ret_b = v->b;
	return 0;
}

/* RFC 9110 token: a header name curl will send as it is */
static bool is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_bare((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

/* a value must not smuggle a CR/LF (another header) into a request */
static bool is_field_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

static int add_header(struct parser *p, struct cfg *c, const char *name,
		      const struct value *v)
{
	struct lp_host_header *hd;
	const struct value *one = v->type == V_STR ? v : NULL;
	size_t n = one ? 1 : v->n, i;

	if (!is_token(name))
		return fail(p, v->line, -EINVAL,
			    "header \"%s\": not a valid header name", name);
	if (v->type != V_STR && v->type != V_ARRAY)
		return fail(p, v->line, -EINVAL,
			    "header %s must be a string or an array of "
			    "strings",
			    name);
	if (c->h.n_headers == LP_HOSTS_HEADERS_MAX)
		return fail(p, v->line, -EFBIG,
			    "over LP_HOSTS_HEADERS_MAX (%d) headers",
			    LP_HOSTS_HEADERS_MAX);
	if (!c->h.headers) {
		c->h.headers =
			calloc(LP_HOSTS_HEADERS_MAX, sizeof(*c->h.headers));
		if (!c->h.headers)
			return -ENOMEM;
	}
	hd = &c->h.headers[c->h.n_headers++];
	hd->name = strdup(name);
	hd->values = calloc(n ? n : 1, sizeof(*hd->values));
	if (!hd->name || !hd->values)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct value *e = one ? one : &v->items[i];

		if (e->type != V_STR)
			return fail(p, e->line, -EINVAL,
				    "header %s must be a string or an array "
				    "of strings",
				    name);
		if (!is_field_value(e->s))
			return fail(p, e->line, -EINVAL,
				    "header %s: a control character in its "
				    "value",
				    name);
		hd->values[i] = strdup(e->s);
		if (!hd->values[i])
			return -ENOMEM;
		hd->n_values++;
	}
	return 0;
}

/* a key of the top level or of a [host."URL"] table */
static int set_field(struct parser *p, struct cfg *c, const char *k,
		     const struct value *v)
{
	if (!strcmp(k, "capabilities"))
		return set_caps(p, c, v);
	if (!strcmp(k, "ca"))
		return set_ca(p, c, v);
	if (!strcmp(k, "client"))
		return set_client(p, c, v);
	if (!strcmp(k, "skip_verify"))
		return set_bool(p, k, v, &c->h.skip_verify);
	if (!strcmp(k, "override_path"))
		return set_bool(p, k, v, &c->override_path);
	/*
	 * Newer containerd routes such a host through a proxy; going
	 * around it instead could break a network policy.
	 */
	if (!strcmp(k, "proxy"))
		return fail(p, v->line, -EOPNOTSUPP,
			    "proxy is not supported by lazypull");
	if (!strcmp(k, "header"))
		return fail(p, v->line, -EINVAL,
			    "header must be a table ([header] or "
			    "[host.\"URL\".header])");
	return 0; /* a key containerd does not know: ignored, as it does */
}

static int set_key(struct parser *p, const char *k, const struct value *v)
{
	const struct table *t = &p->tables[p->cur];
	struct cfg *c = t->kind == TK_OTHER || t->kind == TK_HOSTS ?
				NULL :
				&p->cfgs[t->cfg];

	switch (t->kind) {
	case TK_ROOT:
		if (!strcmp(k, "server")) {
			if (v->type != V_STR)
				return fail(p, v->line, -EINVAL,
					    "server must be a string");
			c->url = strdup(v->s);
			c->h.line = v->line;
			return c->url ? 0 : -ENOMEM;
		}
		if (!strcmp(k, "host"))
			return fail(p, v->line, -EINVAL,
				    "host must be a table ([host.\"URL\"])");
		return set_field(p, c, k, v);
	case TK_HOST:
		return set_field(p, c, k, v);
	case TK_HEADER:
		return add_header(p, c, k, v);
	case TK_HOSTS:
		return fail(p, v->line, -EINVAL,
			    "[host] holds only [host.\"URL\"] tables");
	case TK_OTHER:
		break;
	}
	return 0;
}

/* ---- tables and keys ------------------------------------------------ */

static int find_table(const struct parser *p, int parent, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_tables; i++)
		if (p->tables[i].parent == parent &&
		    !strcmp(p->tables[i].name, name))
			return (int)i;
	return -1;
}

static bool has_key(const struct parser *p, int table, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_keys; i++)
		if (p->keys[i].table == table && !strcmp(p->keys[i].name, name))
			return true;
	return false;
}

/* a new table @name in @parent; takes @name */
static int new_table(struct parser *p, int parent, char *name,
		     unsigned int line, int *ret_table)
{
	const struct table *up = &p->tables[parent];
	struct table *t;
	enum table_kind kind = TK_OTHER;
	int cfg = -1, r = 0;

	if (has_key(p, parent, name)) {
		r = fail(p, line, -EINVAL, "\"%s\" is already a key", name);
		goto out;
	}
	if (p->n_tables == LP_HOSTS_TABLES_MAX) {
		r = fail(p, line, -EFBIG,
			 "over LP_HOSTS_TABLES_MAX (%d) tables",
			 LP_HOSTS_TABLES_MAX);
		goto out;
	}
	switch (up->kind) {
	case TK_ROOT:
		if (!strcmp(name, "host")) {
			kind = TK_HOSTS;
		} else if (!strcmp(name, "header")) {
			kind = TK_HEADER;
			cfg = up->cfg;
		}
		break;
	case TK_HOSTS:
		if (p->n_cfgs == LP_HOSTS_MAX) {
			r = fail(p, line, -EFBIG,
				 "over LP_HOSTS_MAX (%d) hosts, the server "
				 "included",
				 LP_HOSTS_MAX);
			goto out;
		}
		kind = TK_HOST;
		cfg = (int)p->n_cfgs++;
		p->cfgs[cfg].url = strdup(name);
		p->cfgs[cfg].h.line = line;
		if (!p->cfgs[cfg].url) {
			r = -ENOMEM;
			goto out;
		}
		break;
	case TK_HOST:
		if (!strcmp(name, "header")) {
			kind = TK_HEADER;
			cfg = up->cfg;
		}
		break;
	case TK_HEADER:
		r = fail(p, line, -EINVAL,
			 "header values are strings or arrays of strings, "
			 "not tables");
		goto out;
	case TK_OTHER:
		break;
	}
	t = &p->tables[p->n_tables];
	t->parent = parent;
	t->name = name;
	name = NULL;
	t->kind = kind;
	t->cfg = cfg;
	*ret_table = (int)p->n_tables++;
out:
	free(name);
	return r;
}

/* a [table.header] line, p->pos on its '[' */
static int table_line(struct parser *p)
{
	unsigned int line = p->line, depth = 0;
	int t = 0, r = 0;
	char *name = NULL;

	p->pos++;
	if (peek(p) == '[')
		return fail(p, line, -EINVAL,
			    "arrays of tables ([[...]]) are not supported");
	for (;;) {
		int child;

		skip_ws(p);
		r = key(p, &name);
		if (r < 0)
			goto out;
		if (++depth > LP_HOSTS_DEPTH_MAX) {
			r = fail(p, line, -EFBIG,
				 "table name of over LP_HOSTS_DEPTH_MAX (%d) "
				 "keys",
				 LP_HOSTS_DEPTH_MAX);
			goto out;
		}
		child = find_table(p, t, name);
		if (child < 0) {
			r = new_table(p, t, name, line, &child);
			name = NULL;
			if (r < 0)
				goto out;
		}
		free(name);
		name = NULL;
		t = child;
		skip_ws(p);
		if (peek(p) == '.') {
			p->pos++;
			continue;
		}
		if (peek(p) == ']')
			break;
		r = fail(p, line, -EINVAL,
			 "expected '.' or ']' in a table name");
		goto out;
	}
	p->pos++;
	if (p->tables[t].defined) {
		r = fail(p, line, -EINVAL, "table defined twice");
		goto out;
	}
	p->tables[t].defined = true;
	p->cur = t;
	r = end_line(p);
out:
	free(name);
	return r;
}

/* a key = value line, p->pos on the key */
static int key_line(struct parser *p)
{
	struct value v = { 0 };
	unsigned int line = p->line;
	char *k = NULL;
	int r;

	r = key(p, &k);
	if (r < 0)
		goto out;
	skip_ws(p);
	if (peek(p) == '.') {
		r = fail(p, line, -EINVAL,
			 "dotted keys are not supported; use a [table] header");
		goto out;
	}
	if (peek(p) != '=') {
		r = fail(p, line, -EINVAL, "expected '=' after the key");
		goto out;
	}
	p->pos++;
	skip_ws(p);
	if (has_key(p, p->cur, k)) {
		r = fail(p, line, -EINVAL, "key \"%s\" defined twice", k);
		goto out;
	}
	if (find_table(p, p->cur, k) >= 0) {
		r = fail(p, line, -EINVAL, "\"%s\" is already a table", k);
		goto out;
	}
	if (p->n_keys == LP_HOSTS_KEYS_MAX) {
		r = fail(p, line, -EFBIG, "over LP_HOSTS_KEYS_MAX (%d) keys",
			 LP_HOSTS_KEYS_MAX);
		goto out;
	}
	r = value(p, 0, &v);
	if (r < 0)
		goto out;
	r = end_line(p);
	if (r < 0)
		goto out;
	p->keys[p->n_keys].table = p->cur;
	p->keys[p->n_keys++].name = k;
	r = set_key(p, k, &v);
	k = NULL;
out:
	free(k);
	value_release(&v);
	return r;
}

/* ---- URLs ----------------------------------------------------------- */

static bool valid_port(const char *s, size_t n)
{
	unsigned long port = 0;
	size_t i;

	if (!n || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

/* "name[:port]" or "[v6]:port" */
static bool valid_authority(const char *s, size_t n)
{
	size_t i = 0;

	if (!n || n >= LP_REG_HOST_MAX)
		return false;
	if (s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (lp_hex_digit(s[i]) < 0 && s[i] != ':' &&
			    s[i] != '.')
				return false;
		if (i == n || i < 3)
			return false;
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++)
			if (!is_bare((unsigned char)s[i]) && s[i] != '.')
				return false;
		if (!i)
			return false;
	}
	if (i == n)
		return true;
	return s[i] == ':' && valid_port(s + i + 1, n - i - 1);
}

static bool valid_path_char(char c)
{
	return is_bare((unsigned char)c) ||
	       (c && strchr("/.~!$&'()*+,;=:@", c));
}

/*
 * Take @c->url apart as containerd does: no scheme means https; the path
 * gets "/v2" appended unless it ends in "/v2" or override_path is set.
 */
static int split_url(struct parser *p, struct cfg *c)
{
	struct lp_host *h = &c->h;
	const char *s = c->url, *auth, *slash;
	size_t alen;

	if (!strncmp(s, "https://", 8)) {
		auth = s + 8;
		h->scheme = strdup("https");
	} else if (!strncmp(s, "http://", 7)) {
		auth = s + 7;
		h->scheme = strdup("http");
	} else if (strstr(s, "://")) {
		return fail(p, h->line, -EINVAL,
			    "\"%s\": only http:// and https:// are supported",
			    s);
	} else {
		auth = s;
		h->scheme = strdup("https");
	}
	if (!h->scheme)
		return -ENOMEM;
	slash = strchr(auth, '/');
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	if (!valid_authority(auth, alen))
		return fail(p, h->line, -EINVAL,
			    "\"%s\": not a host[:port] (no user, query or "
			    "fragment)",
			    s);
	h->host = strndup(auth, alen);
	/* room for "/v2" */
	h->path = malloc((slash ? strlen(slash) : 0) + 4);
	if (!h->host || !h->path)
		return -ENOMEM;
	h->path[0] = '\0';
	if (slash) {
		const char *q;

		for (q = slash; *q; q++)
			if (!valid_path_char(*q))
				return fail(p, h->line, -EINVAL,
					    "\"%s\": '%c' in the path", s, *q);
		memcpy(h->path, slash, strlen(slash) + 1);
		reg_hosts_path_clean(h->path);
		if (!strcmp(h->path, "/"))
			h->path[0] = '\0';
	}
	if (!c->override_path) {
		size_t n = strlen(h->path);

		if (n < 3 || strcmp(h->path + n - 3, "/v2"))
			memcpy(h->path + n, "/v2", 4); /* room: above */
	}
	return 0;
}

/* ---- the whole file ------------------------------------------------- */

static void parser_release(struct parser *p)
{
	size_t i;

	for (i = 0; i < p->n_tables; i++)
		free(p->tables[i].name);
	for (i = 0; i < p->n_keys; i++)
		free(p->keys[i].name);
	for (i = 0; i < p->n_cfgs; i++) {
		reg_hosts_release(&p->cfgs[i].h);
		free(p->cfgs[i].url);
	}
}

static int parse(struct parser *p)
{
	int r;

	r = check_text(p);
	if (r < 0)
		return r;
	p->tables[0].parent = -1;
	p->tables[0].name = strdup("");
	p->tables[0].kind = TK_ROOT;
	p->tables[0].cfg = 0;
	p->tables[0].defined = true;
	if (!p->tables[0].name)
		return -ENOMEM;
	p->n_tables = 1;
	p->n_cfgs = 1;
	while (p->pos < p->len) {
		skip_ws(p);
		skip_comment(p);
		if (p->pos == p->len)
			break;
		if (at_newline(p)) {
			eat_newline(p);
			continue;
		}
		r = peek(p) == '[' ? table_line(p) : key_line(p);
		if (r < 0)
			return r;
	}
	return 0;
}

int lp_hosts_parse(const char *text, size_t len, const char *dir,
		   const char *file, struct lp_hosts **ret_hosts,
		   struct lp_err *err)
{
	struct lp_hosts *hosts = NULL;
	struct parser *p;
	size_t i;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->s = text;
	p->len = len;
	p->line = 1;
	p->dir = dir;
	p->file = file ? file : "hosts.toml";
	p->err = err;
	r = parse(p);
	if (r < 0)
		goto out;
	/* the [host."URL"] tables in file order, then the top level */
	for (i = 0; i < p->n_cfgs; i++) {
		struct cfg *c = &p->cfgs[(i + 1) % p->n_cfgs];

		if (!c->caps_set)
			c->h.caps = LP_HOST_CAP_ALL;
		if (c != &p->cfgs[0] && !c->url[0]) {
			r = fail(p, c->h.line, -EINVAL, "[host.\"\"]: no URL");
			goto out;
		}
		if (c->url && c->url[0]) {
			r = split_url(p, c);
			if (r < 0)
				goto out;
		}
	}
	r = -ENOMEM;
	hosts = calloc(1, sizeof(*hosts));
	if (!hosts)
		goto out;
	hosts->v = calloc(p->n_cfgs, sizeof(*hosts->v));
	if (!hosts->v)
		goto out;
	for (i = 0; i < p->n_cfgs; i++) {
		struct cfg *c = &p->cfgs[(i + 1) % p->n_cfgs];

		hosts->v[hosts->n++] = c->h;
		memset(&c->h, 0, sizeof(c->h));
	}
	*ret_hosts = hosts;
	hosts = NULL;
	r = 0;
out:
	if (r == -ENOMEM)
		lp_err_set(err, r, "%s: out of memory", p->file);
	lp_hosts_free(hosts);
	parser_release(p);
	free(p);
	return r;
}
