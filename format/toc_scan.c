// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC's JSON reader: a strict, allocation-free RFC 8259 scanner over
 * the top-level object and the "entries" array. Each entry object is read
 * once: the last value of every key the decoder knows (toc_field_key) is
 * kept as a byte span (struct jval), every other value is validated and
 * skipped, and the spans go to toc_parse_entry(). Strings are not copied:
 * the decoder borrows them from the input, or unescapes them
 * (toc_json_unescape) when they hold a backslash. Keys, top-level and an
 * entry's, are compared decoded ("entr\u0069es" is "entries"), as json-c
 * and the Go reference read them. Nesting LP_TOC_MAX_JSON_NESTING deep or
 * deeper (json-c's count, which its tokener of that depth and the other
 * JSON readers here refuse) is rejected where it starts; so are raw control
 * characters in strings, bad escapes, numbers off the grammar (leading
 * zeros, "1."), and anything after the document. This replaced json-c,
 * which built (and freed) a hash table and a string per field of every
 * entry: two thirds of the parse time of a big TOC. Part of the TOC parser
 * (toc_parse.c says how the files divide the work).
 */
#include <errno.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "toc_int.h"

/* longest key compared against toc_field_key ("chunkDigest") */
#define KEY_MAX 16

const char *const toc_field_key[F_NR] = {
	[F_NAME] = "name",
	[F_TYPE] = "type",
	[F_SIZE] = "size",
	[F_MODTIME] = "modtime",
	[F_LINKNAME] = "linkName",
	[F_MODE] = "mode",
	[F_UID] = "uid",
	[F_GID] = "gid",
	[F_USERNAME] = "userName",
	[F_GROUPNAME] = "groupName",
	[F_OFFSET] = "offset",
	[F_INNEROFFSET] = "innerOffset",
	[F_DEVMAJOR] = "devMajor",
	[F_DEVMINOR] = "devMinor",
	[F_XATTRS] = "xattrs",
	[F_DIGEST] = "digest",
	[F_CHUNKOFFSET] = "chunkOffset",
	[F_CHUNKSIZE] = "chunkSize",
	[F_CHUNKDIGEST] = "chunkDigest",
};

/* strlen(toc_field_key[f]) */
static const uint8_t field_key_len[F_NR] = {
	[F_NAME] = 4,	      [F_TYPE] = 4,	    [F_SIZE] = 4,
	[F_MODTIME] = 7,      [F_LINKNAME] = 8,	    [F_MODE] = 4,
	[F_UID] = 3,	      [F_GID] = 3,	    [F_USERNAME] = 8,
	[F_GROUPNAME] = 9,    [F_OFFSET] = 6,	    [F_INNEROFFSET] = 11,
	[F_DEVMAJOR] = 8,     [F_DEVMINOR] = 8,	    [F_XATTRS] = 6,
	[F_DIGEST] = 6,	      [F_CHUNKOFFSET] = 11, [F_CHUNKSIZE] = 9,
	[F_CHUNKDIGEST] = 11,
};

/* lp_toc_feed.window when it says 0 */
#define FEED_WINDOW (256 * LP_KIB)

struct scan {
	const char *p;
	size_t len, pos; /* len: the bytes in place (all but while fed) */
	struct lp_err *err;
	size_t total; /* the JSON's length */
	const struct lp_toc_feed *feed; /* NULL: len == total */
	size_t window;
	bool err_clean; /* @err held no message when the parse began */
};

/* JSON's whitespace bytes */
static const uint8_t is_ws[256] = {
	[' '] = 1,
	['\t'] = 1,
	['\n'] = 1,
	['\r'] = 1,
};

static void skip_ws(struct scan *s)
{
	const char *p = s->p;
	size_t i = s->pos, n = s->len;

	while (i < n && is_ws[(unsigned char)p[i]])
		i++;
	s->pos = i;
}

static int syntax(struct scan *s, const char *what)
{
	return lp_err_set(s->err, -EINVAL, "TOC JSON at byte %zu: %s", s->pos,
			  what);
}

/*
 * Fed JSON (lp_toc_parse_fed()): what a scan reads is only what the feed
 * said is in place (s->len). A scan that failed, or that ended at s->len
 * (a number or whitespace may go on), may have been cut short: it is
 * redone from its start once more bytes are in place (cut_short()), so a
 * scan that stands ended before s->len, and one that failed, failed on
 * the whole JSON, with the same message.
 */

/* wait until @want bytes (at most all) are in place */
static int feed_wait(struct scan *s, size_t want)
{
	ssize_t n;

	if (want > s->total)
		want = s->total;
	if (want <= s->len)
		return 0;
	n = s->feed->wait(s->feed->arg, want);
	if (n < 0)
		return lp_err_set(s->err, (int)n,
				  "TOC JSON: no bytes past %zu arrived",
				  s->len);
	if ((size_t)n < want || (size_t)n > s->total)
		return lp_err_set(s->err, -EIO,
				  "TOC JSON: fed %zd bytes for %zu of %zu", n,
				  want, s->total);
	s->len = (size_t)n;
	return 0;
}

/* the scan that started at @start and returned @r may have been cut
   short: more bytes are waited for (twice its span) and 1 returned */
static int cut_short(struct scan *s, size_t start, int r)
{
	if (s->len == s->total || (r == 0 && s->pos < s->len))
		return 0;
	/* the cut scan's message: the first one set would stay */
	if (s->err && s->err_clean)
		memset(s->err, 0, sizeof(*s->err));
	r = feed_wait(s, s->len + (s->len - start) + 1);
	if (r < 0)
		return r;
	s->pos = start;
	return 1;
}

/* skip_ws() on to a byte, or to the end of all the JSON */
static int skip_ws_fed(struct scan *s)
{
	int r = 0;

	skip_ws(s);
	while (r == 0 && s->pos >= s->len && s->len < s->total) {
		r = feed_wait(s, s->pos + s->window);
		skip_ws(s);
	}
	return r;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* the bytes a string's fast path stops at: '"', '\\', control bytes */
static const uint8_t str_special[256] = {
	[0 ... 0x1f] = 1,
	['"'] = 1,
	['\\'] = 1,
};

/* 0x0101010101010101: a byte value times ONES fills a word with it */
#define ONES (~(uint64_t)0 / 255)

/* the string at s->pos (a '"'): its span into @v, s->pos past it */
static int scan_string(struct scan *s, struct jval *v)
{
	const char *p = s->p;
	size_t i = s->pos + 1, n = s->len;
	bool esc = false;
	int r = 0;

	/* the common case: a closing quote, no escape or control byte;
	   sixteen bytes a step to the first special one (SSE2), then eight
	   a step while none of them is special */
#ifdef __SSE2__
	while (i + 16 <= n) {
		__m128i w = _mm_loadu_si128((const __m128i *)(p + i));
		__m128i hit = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(w, _mm_set1_epi8('"')),
				     _mm_cmpeq_epi8(w, _mm_set1_epi8('\\'))),
			/* unsigned w <= 0x1f */
			_mm_cmpeq_epi8(_mm_min_epu8(w, _mm_set1_epi8(0x1f)),
				       w));
		unsigned int m = (unsigned int)_mm_movemask_epi8(hit);

		if (m) {
			i += (size_t)__builtin_ctz(m);
			goto special;
		}
		i += 16;
	}
#endif
	while (i + 8 <= n) {
		uint64_t w, q, bs, ctl;

		memcpy(&w, p + i, 8);
		q = w ^ (ONES * '"');
		bs = w ^ (ONES * '\\');
		/* a byte of 0 in q or bs, or a byte below 0x20 in w */
		q = (q - ONES) & ~q;
		bs = (bs - ONES) & ~bs;
		ctl = (w - ONES * 0x20) & ~w;
		if ((q | bs | ctl) & (ONES * 0x80))
			break;
		i += 8;
	}
	while (i < n && !str_special[(unsigned char)p[i]])
		i++;
#ifdef __SSE2__
special:
#endif
	if (i < n && p[i] == '"')
		goto done;
	for (;;) {
		unsigned char c;

		while (i < n && (unsigned char)p[i] >= 0x20 && p[i] != '"' &&
		       p[i] != '\\')
			i++;
		if (i >= n) {
			s->pos = n;
			r = syntax(s, "unterminated string");
			goto out;
		}
		c = (unsigned char)p[i];
		if (c == '"')
			break;
		if (c < 0x20) {
			s->pos = i;
			r = syntax(s, "control character in a string");
			goto out;
		}
		/* a backslash */
		esc = true;
		if (i + 1 >= n) {
			s->pos = n;
			r = syntax(s, "unterminated string");
			goto out;
		}
		switch (p[i + 1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			i += 2;
			break;
		case 'u':
			if (i + 5 >= n || !is_hex(p[i + 2]) ||
			    !is_hex(p[i + 3]) || !is_hex(p[i + 4]) ||
			    !is_hex(p[i + 5])) {
				s->pos = i;
				r = syntax(s, "bad \\u escape");
				goto out;
			}
			i += 6;
			break;
		default:
			s->pos = i;
			r = syntax(s, "bad escape");
			goto out;
		}
	}
done:
	v->kind = J_STR;
	v->p = p + s->pos + 1;
	v->len = i - s->pos - 1;
	v->esc = esc;
	s->pos = i + 1;
out:
	return r;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s, struct jval *v)
{
	const char *p = s->p;
	size_t i = s->pos, n = s->len;
	bool frac = false;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0') {
		i++;
	} else if (i < n && is_digit(p[i])) {
		while (i < n && is_digit(p[i]))
			i++;
	} else {
		goto bad;
	}
	if (i < n && p[i] == '.') {
		frac = true;
		if (++i >= n || !is_digit(p[i]))
			goto bad;
		while (i < n && is_digit(p[i]))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		frac = true;
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || !is_digit(p[i]))
			goto bad;
		while (i < n && is_digit(p[i]))
			i++;
	}
	v->kind = frac ? J_NUM : J_INT;
	v->p = p + s->pos;
	v->len = i - s->pos;
	v->esc = false;
	s->pos = i;
	return 0;
bad:
	s->pos = i;
	return syntax(s, "bad number");
}

static int scan_literal(struct scan *s, const char *word, enum jkind kind,
			struct jval *v)
{
	size_t n = strlen(word);

	if (s->len - s->pos < n || memcmp(s->p + s->pos, word, n) != 0)
		return syntax(s, "unexpected character");
	v->kind = (uint8_t)kind;
	v->p = s->p + s->pos;
	v->len = n;
	v->esc = false;
	s->pos += n;
	return 0;
}

static int expect(struct scan *s, char c)
{
	skip_ws(s);
	if (s->pos >= s->len && s->len)
		return lp_err_set(s->err, -EINVAL,
				  "TOC JSON truncated at byte %zu", s->len);
	if (s->pos >= s->len || s->p[s->pos] != c)
		return lp_err_set(s->err, -EINVAL,
				  "TOC JSON: expected '%c' at byte %zu", c,
				  s->pos);
	s->pos++;
	return 0;
}

static int scan_value(struct scan *s, unsigned int depth, struct jval *v);

/*
 * the object or array at s->pos, inside @depth containers: validated,
 * span into @v. Recursion is bounded by LP_TOC_MAX_JSON_NESTING.
 */
static int scan_container(struct scan *s, unsigned int depth, struct jval *v)
{
	size_t start = s->pos;
	bool obj = s->p[s->pos] == '{';
	char close = obj ? '}' : ']';
	struct jval m;
	int r = 0;

	/* json-c's json_tokener_new_ex(N) takes N - 1 levels */
	if (depth + 1 >= LP_TOC_MAX_JSON_NESTING) {
		r = lp_err_set(s->err, -EINVAL,
			       "TOC JSON nested deeper than %d at byte %zu",
			       LP_TOC_MAX_JSON_NESTING - 1, s->pos);
		goto out;
	}
	s->pos++;
	skip_ws(s);
	if (s->pos < s->len && s->p[s->pos] == close) {
		s->pos++;
		goto done;
	}
	for (;;) {
		skip_ws(s);
		if (obj) {
			if (s->pos >= s->len || s->p[s->pos] != '"') {
				r = syntax(s, "expected a key");
				goto out;
			}
			if ((r = scan_string(s, &m)) < 0 ||
			    (r = expect(s, ':')) < 0)
				goto out;
			skip_ws(s);
		}
		r = scan_value(s, depth + 1, &m);
		if (r < 0)
			goto out;
		skip_ws(s);
		if (s->pos < s->len && s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		r = expect(s, close);
		if (r < 0)
			goto out;
		break;
	}
done:
	v->kind = obj ? J_OBJ : J_ARR;
	v->p = s->p + start;
	v->len = s->pos - start;
	v->esc = false;
out:
	return r;
}

/* the value at s->pos (whitespace skipped), inside @depth containers */
static int scan_value(struct scan *s, unsigned int depth, struct jval *v)
{
	if (s->pos >= s->len)
		return lp_err_set(s->err, -EINVAL,
				  "TOC JSON truncated at byte %zu", s->len);
	switch (s->p[s->pos]) {
	case '"':
		return scan_string(s, v);
	case '{':
	case '[':
		return scan_container(s, depth, v);
	case 't':
		return scan_literal(s, "true", J_TRUE, v);
	case 'f':
		return scan_literal(s, "false", J_FALSE, v);
	case 'n':
		return scan_literal(s, "null", J_NULL, v);
	default:
		return scan_number(s, v);
	}
}

/* four hex digits (validated by scan_string()) */
static unsigned int hex4(const char *p)
{
	unsigned int v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v = v << 4 | (unsigned int)(c <= '9' ? c - '0' :
					    c <= 'F' ? c - 'A' + 10 :
						       c - 'a' + 10);
	}
	return v;
}

int toc_json_unescape(const struct jval *v, char *out, size_t *ret_len)
{
	const char *p = v->p, *end = v->p + v->len;
	size_t o = 0;

	while (p < end) {
		unsigned int cp;

		if (*p != '\\') {
			out[o++] = *p++;
			continue;
		}
		p++; /* validated: an escape follows */
		switch (*p) {
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u':
			cp = hex4(p + 1);
			p += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -EINVAL; /* a lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned int lo;

				/* its low half must follow: 6 bytes fit in
				   the 6 of the pair's escape */
				if (end - p < 7 || p[1] != '\\' || p[2] != 'u')
					return -EINVAL;
				lo = hex4(p + 3);
				if (lo < 0xdc00 || lo > 0xdfff)
					return -EINVAL;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
				p += 6;
			}
			/* UTF-8: at most 4 bytes for the 6 or 12 read */
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | cp >> 6);
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				out[o++] = (char)(0xe0 | cp >> 12);
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xf0 | cp >> 18);
				out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		default: /* '"', '\\', '/' */
			out[o++] = *p;
			break;
		}
		p++;
	}
	*ret_len = o;
	return 0;
}

/* the key @k (a J_STR) decoded into @buf (@cap bytes), or -EFBIG */
static int decode_key(const struct jval *k, char *buf, size_t cap,
		      size_t *ret_len)
{
	if (!k->esc) {
		if (k->len > cap)
			return -EFBIG;
		memcpy(buf, k->p, k->len);
		*ret_len = k->len;
		return 0;
	}
	if (k->len > cap) /* decoding never grows a string */
		return -EFBIG;
	return toc_json_unescape(k, buf, ret_len);
}

int toc_json_members(const struct jval *obj, char *kbuf, size_t kcap,
		     int (*fn)(void *ctx, const char *key, size_t klen,
			       const struct jval *v),
		     void *ctx)
{
	/* validated by scan_container(): nothing here can fail but @fn */
	struct scan s = { obj->p, obj->len, 1, NULL, obj->len, NULL, 0, false };
	struct jval k, v;
	size_t klen;
	int r = 0;

	skip_ws(&s);
	if (s.p[s.pos] == '}')
		goto out;
	for (;;) {
		skip_ws(&s);
		scan_string(&s, &k);
		skip_ws(&s);
		s.pos++; /* ':' */
		skip_ws(&s);
		/* the depth was checked in place */
		scan_value(&s, 0, &v);
		r = decode_key(&k, kbuf, kcap, &klen);
		if (r == 0)
			r = fn(ctx, kbuf, klen, &v);
		if (r)
			goto out;
		skip_ws(&s);
		if (s.p[s.pos] != ',')
			break;
		s.pos++;
	}
out:
	return r;
}

/* which toc_field key @k is, or F_NR */
static enum toc_field field_of(const struct jval *k)
{
	char buf[KEY_MAX];
	const char *p = k->p;
	size_t len = k->len;
	int f;

	if (k->esc) {
		if (decode_key(k, buf, sizeof(buf), &len) < 0)
			return F_NR;
		p = buf;
	}
	if (len > KEY_MAX || len == 0)
		return F_NR;
	/* the keys of most entries first, compared at constant sizes */
	switch (len) {
	case 4:
		if (!memcmp(p, "name", 4))
			return F_NAME;
		if (!memcmp(p, "type", 4))
			return F_TYPE;
		if (!memcmp(p, "size", 4))
			return F_SIZE;
		if (!memcmp(p, "mode", 4))
			return F_MODE;
		break;
	case 6:
		if (!memcmp(p, "offset", 6))
			return F_OFFSET;
		if (!memcmp(p, "digest", 6))
			return F_DIGEST;
		break;
	case 7:
		if (!memcmp(p, "modtime", 7))
			return F_MODTIME;
		break;
	case 9:
		if (!memcmp(p, "chunkSize", 9))
			return F_CHUNKSIZE;
		break;
	case 11:
		if (!memcmp(p, "chunkDigest", 11))
			return F_CHUNKDIGEST;
		break;
	}
	for (f = 0; f < F_NR; f++) {
		const char *key = toc_field_key[f];

		if (key[0] == p[0] && field_key_len[f] == len &&
		    memcmp(key, p, len) == 0)
			return (enum toc_field)f;
	}
	return F_NR;
}

/* one entry object at s->pos into @f (inside ENTRY_JSON_DEPTH containers) */
static int scan_entry(struct scan *s, struct toc_fields *f)
{
	struct jval k, v;
	enum toc_field which;
	int r = 0;

	memset(f, 0, sizeof(*f));
	if (s->pos >= s->len || s->p[s->pos] != '{') {
		/* not an object: validate it for the message's sake */
		r = scan_value(s, ENTRY_JSON_DEPTH, &v);
		if (r == 0)
			r = 1; /* the caller says "not a JSON object" */
		goto out;
	}
	s->pos++;
	skip_ws(s);
	if (s->pos < s->len && s->p[s->pos] == '}') {
		s->pos++;
		goto out;
	}
	for (;;) {
		skip_ws(s);
		if (s->pos >= s->len || s->p[s->pos] != '"') {
			r = syntax(s, "expected a key");
			goto out;
		}
		if ((r = scan_string(s, &k)) < 0 || (r = expect(s, ':')) < 0)
			goto out;
		skip_ws(s);
		r = scan_value(s, ENTRY_JSON_DEPTH + 1, &v);
		if (r < 0)
			goto out;
		which = field_of(&k);
		if (which != F_NR)
			f->v[which] = v; /* the last one wins, as in json-c */
		skip_ws(s);
		if (s->pos < s->len && s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		r = expect(s, '}');
		goto out;
	}
out:
	return r;
}

static int parse_entries(struct builder *b, struct scan *s,
			 struct toc_split *sp)
{
	struct toc_fields *f = NULL;
	size_t start, end;
	int r, c;

	f = malloc(sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = skip_ws_fed(s)) < 0 || (r = expect(s, '[')) < 0 ||
	    (r = skip_ws_fed(s)) < 0)
		goto out;
	if (s->pos < s->len && s->p[s->pos] == ']') {
		s->pos++;
		goto out;
	}
	for (;;) {
		if ((r = skip_ws_fed(s)) < 0 ||
		    (r = feed_wait(s, s->pos + s->window)) < 0)
			goto out;
		start = s->pos;
		if (sp) {
			r = toc_split_at(sp, b, start, &end);
			if (r < 0)
				goto out;
			if (r > 0) { /* the rest of the array was parsed */
				s->pos = end;
				r = 0;
				goto out;
			}
		}
		while ((c = cut_short(s, start, r = scan_entry(s, f))) > 0)
			;
		if (c < 0)
			r = c;
		if (r < 0)
			goto out;
		if (r > 0) {
			b->cur_name = NULL;
			b->cur_len = 0;
			r = toc_ent_err(b, -EINVAL, "not a JSON object");
			goto out;
		}
		r = toc_parse_entry(b, f);
		if (r < 0)
			goto out;
		b->json_idx++;
		r = skip_ws_fed(s);
		if (r < 0)
			goto out;
		if (s->pos < s->len && s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		r = expect(s, ']');
		goto out;
	}
out:
	free(f);
	return r;
}

/* whether key @k decodes to @key (escapes decoded, as json-c and Go do) */
static bool key_is(const struct jval *k, const char *key)
{
	char buf[KEY_MAX];
	const char *p = k->p;
	size_t len = k->len;

	if (k->esc) {
		if (decode_key(k, buf, sizeof(buf), &len) < 0)
			return false;
		p = buf;
	}
	return len == strlen(key) && memcmp(p, key, len) == 0;
}

/* a top-level key at s->pos and its ':' into @k (whitespace after skipped) */
static int scan_top_key(struct scan *s, struct jval *k)
{
	int r;

	if (s->pos >= s->len || s->p[s->pos] != '"')
		return lp_err_set(s->err, -EINVAL,
				  "TOC JSON: expected a key at byte %zu",
				  s->pos);
	if ((r = scan_string(s, k)) < 0 || (r = expect(s, ':')) < 0)
		return r;
	skip_ws(s);
	return 0;
}

int toc_parse_top(struct builder *b, const char *json, size_t len,
		  const struct lp_toc_feed *feed, struct toc_split *sp)
{
	struct scan s = { json, len, 0, b->err, len, feed, FEED_WINDOW, false };
	bool seen_entries = false;
	struct jval k, v;
	size_t start;
	int r, c;

	s.err_clean = b->err && !b->err->msg[0];
	if (feed) {
		s.len = 0;
		if (feed->window)
			s.window = feed->window;
	}
	if ((r = skip_ws_fed(&s)) < 0 || (r = expect(&s, '{')) < 0 ||
	    (r = skip_ws_fed(&s)) < 0)
		goto out;
	if (s.pos < s.len && s.p[s.pos] == '}') {
		s.pos++;
		goto tail;
	}
	for (;;) {
		if ((r = skip_ws_fed(&s)) < 0 ||
		    (r = feed_wait(&s, s.pos + s.window)) < 0)
			goto out;
		start = s.pos;
		while ((c = cut_short(&s, start, r = scan_top_key(&s, &k))) > 0)
			;
		if (c < 0)
			r = c;
		if (r < 0)
			goto out;
		if (key_is(&k, "entries")) {
			if (seen_entries) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: two \"entries\"");
				goto out;
			}
			seen_entries = true;
			r = parse_entries(b, &s, sp);
			sp = NULL; /* a second array fails before any entry */
			if (r < 0)
				goto out;
		} else {
			/* validated, then ignored unless it is "version" */
			start = s.pos;
			while ((c = cut_short(&s, start,
					      r = scan_value(&s, 1, &v))) > 0)
				;
			if (c < 0)
				r = c;
			if (r < 0)
				goto out;
			if (key_is(&k, "version") &&
			    (v.kind != J_INT || v.len != 1 || v.p[0] != '1')) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: unsupported version "
					       "%.*s",
					       (int)(v.len > 20 ? 20 : v.len),
					       v.p);
				goto out;
			}
		}
		r = skip_ws_fed(&s);
		if (r < 0)
			goto out;
		if (s.pos < s.len && s.p[s.pos] == ',') {
			s.pos++;
			continue;
		}
		r = expect(&s, '}');
		if (r < 0)
			goto out;
		break;
	}
tail:
	r = feed_wait(&s, s.total);
	if (r < 0)
		goto out;
	skip_ws(&s);
	if (s.pos != s.len)
		r = lp_err_set(b->err, -EINVAL,
			       "TOC JSON: trailing bytes at %zu", s.pos);
out:
	return r;
}

int toc_parse_frag(struct builder *b, const char *json, size_t len,
		   size_t start, const _Atomic bool *stop, _Atomic size_t *at,
		   size_t *ret_end)
{
	struct scan s = { json, len,  start,	   b->err,
			  len,	NULL, FEED_WINDOW, false };
	struct toc_fields *f = NULL;
	int r;

	f = malloc(sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (atomic_load_explicit(stop, memory_order_relaxed)) {
			r = 1;
			goto out;
		}
		atomic_store_explicit(at, s.pos, memory_order_relaxed);
		skip_ws(&s);
		r = scan_entry(&s, f);
		if (r > 0)
			r = syntax(&s, "not a JSON object");
		if (r < 0)
			goto out;
		r = toc_parse_entry(b, f);
		if (r < 0)
			goto out;
		b->json_idx++;
		skip_ws(&s);
		if (s.pos < s.len && s.p[s.pos] == ',') {
			s.pos++;
			continue;
		}
		r = expect(&s, ']');
		if (r < 0)
			goto out;
		*ret_end = s.pos;
		goto out;
	}
out:
	free(f);
	return r;
}

size_t toc_split_candidate(const char *json, size_t len, size_t from)
{
	const char *p;
	size_t i = from;

	while (i < len && (p = memchr(json + i, '}', len - i)) != NULL) {
		i = (size_t)(p - json) + 1;
		while (i < len && is_ws[(unsigned char)json[i]])
			i++;
		if (i >= len || json[i] != ',')
			continue;
		i++;
		while (i < len && is_ws[(unsigned char)json[i]])
			i++;
		if (i < len && json[i] == '{')
			return i;
	}
	return len;
}

bool toc_frag_is_chunk(const char *json, size_t len, size_t pos)
{
	struct scan s = { json, len, pos, NULL, len, NULL, FEED_WINDOW, false };
	struct toc_fields f;
	const struct jval *t = &f.v[F_TYPE];

	if (scan_entry(&s, &f) != 0)
		return false;
	return t->kind == J_STR && !t->esc && t->len == 5 &&
	       memcmp(t->p, "chunk", 5) == 0;
}
