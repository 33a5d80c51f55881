// SPDX-License-Identifier: Apache-2.0
/*
 * The TOC's JSON skeleton: a scanner over the top-level object and the
 * "entries" array that finds each value's byte span, rejecting nesting
 * deeper than LP_TOC_MAX_JSON_NESTING before json-c sees it, and hands
 * json-c one entry at a time (toc_parse_entry). Part of the TOC parser
 * (toc_parse.c says how the files divide the work).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "toc_int.h"

/* --- the JSON skeleton ----------------------------------------------- */

struct scan {
	const char *p;
	size_t len, pos;
};

static void skip_ws(struct scan *s)
{
	while (s->pos < s->len &&
	       (s->p[s->pos] == ' ' || s->p[s->pos] == '\t' ||
		s->p[s->pos] == '\n' || s->p[s->pos] == '\r'))
		s->pos++;
}

/* index just past the string starting at @i (a '"'), or 0 if unterminated */
static size_t skip_string(const struct scan *s, size_t i)
{
	for (i++; i < s->len; i++) {
		if (s->p[i] == '\\')
			i++;
		else if (s->p[i] == '"')
			return i + 1;
	}
	return 0;
}

/*
 * The end of the JSON value at s->pos, which sits inside @depth containers.
 * Only delimits (json-c validates the span); rejects nesting deeper than
 * LP_TOC_MAX_JSON_NESTING before anything parses it.
 */
static int scan_value(struct scan *s, unsigned int depth, size_t *ret_end,
		      struct lp_err *err)
{
	size_t i = s->pos, level = 0;
	int r = 0;

	if (i >= s->len)
		goto truncated;
	if (s->p[i] == '"') {
		i = skip_string(s, i);
		if (!i)
			goto truncated;
		*ret_end = i;
		goto out;
	}
	if (s->p[i] != '{' && s->p[i] != '[') {
		while (i < s->len && !strchr(",]} \t\r\n", s->p[i]))
			i++;
		*ret_end = i;
		goto out;
	}
	while (i < s->len) {
		char c = s->p[i];

		if (c == '"') {
			i = skip_string(s, i);
			if (!i)
				goto truncated;
			continue;
		}
		if (c == '{' || c == '[') {
			if (depth + ++level > LP_TOC_MAX_JSON_NESTING) {
				r = lp_err_set(err, -EINVAL,
					       "TOC JSON nested deeper than "
					       "%d at byte %zu",
					       LP_TOC_MAX_JSON_NESTING, i);
				goto out;
			}
		} else if (c == '}' || c == ']') {
			if (--level == 0) {
				*ret_end = i + 1;
				goto out;
			}
		}
		i++;
	}
truncated:
	r = lp_err_set(err, -EINVAL, "TOC JSON truncated at byte %zu", s->len);
out:
	return r;
}

/* parse the span [s->pos, end) with json-c; *ret_obj may be NULL (null) */
static int parse_span(struct json_tokener *tok, const struct scan *s,
		      size_t end, json_object **ret_obj, struct lp_err *err)
{
	json_object *o;
	enum json_tokener_error je;
	int r = 0;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, s->p + s->pos, (int)(end - s->pos));
	je = json_tokener_get_error(tok);
	if (!o && je == json_tokener_continue) {
		/* a bare number needs a delimiter to end */
		o = json_tokener_parse_ex(tok, " ", 1);
		je = json_tokener_get_error(tok);
	} else if (je == json_tokener_success &&
		   json_tokener_get_parse_end(tok) != end - s->pos) {
		json_object_put(o);
		o = NULL;
		je = json_tokener_error_parse_unexpected;
	}
	if (je != json_tokener_success) {
		json_object_put(o);
		r = lp_err_set(err, -EINVAL, "TOC JSON at byte %zu: %s", s->pos,
			       json_tokener_error_desc(je));
		goto out;
	}
	*ret_obj = o;
out:
	return r;
}

static int expect(struct scan *s, char c, struct lp_err *err)
{
	skip_ws(s);
	if (s->pos >= s->len || s->p[s->pos] != c)
		return lp_err_set(err, -EINVAL,
				  "TOC JSON: expected '%c' at byte %zu", c,
				  s->pos);
	s->pos++;
	return 0;
}

static int parse_entries(struct builder *b, struct scan *s,
			 struct json_tokener *tok)
{
	json_object *o = NULL;
	size_t end;
	int r;

	r = expect(s, '[', b->err);
	if (r < 0)
		goto out;
	skip_ws(s);
	if (s->pos < s->len && s->p[s->pos] == ']') {
		s->pos++;
		goto out;
	}
	for (;;) {
		skip_ws(s);
		r = scan_value(s, ENTRY_JSON_DEPTH, &end, b->err);
		if (r < 0)
			goto out;
		r = parse_span(tok, s, end, &o, b->err);
		if (r < 0)
			goto out;
		r = toc_parse_entry(b, o);
		json_object_put(o);
		o = NULL;
		if (r < 0)
			goto out;
		b->json_idx++;
		s->pos = end;
		skip_ws(s);
		if (s->pos < s->len && s->p[s->pos] == ',') {
			s->pos++;
			continue;
		}
		r = expect(s, ']', b->err);
		goto out;
	}
out:
	return r;
}

static bool key_is(const struct scan *s, size_t end, const char *key)
{
	size_t n = strlen(key);

	return end - s->pos == n + 2 && memcmp(s->p + s->pos + 1, key, n) == 0;
}

int toc_parse_top(struct builder *b, const char *json, size_t len)
{
	struct scan s = { json, len, 0 };
	struct json_tokener *tok = NULL;
	json_object *o = NULL;
	bool seen_entries = false;
	size_t end;
	int r;

	tok = json_tokener_new_ex(LP_TOC_MAX_JSON_NESTING - ENTRY_JSON_DEPTH);
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	r = expect(&s, '{', b->err);
	if (r < 0)
		goto out;
	skip_ws(&s);
	if (s.pos < s.len && s.p[s.pos] == '}') {
		s.pos++;
		goto tail;
	}
	for (;;) {
		bool is_entries, is_version;

		skip_ws(&s);
		if (s.pos >= s.len || s.p[s.pos] != '"') {
			r = lp_err_set(b->err, -EINVAL,
				       "TOC JSON: expected a key at byte %zu",
				       s.pos);
			goto out;
		}
		r = scan_value(&s, 1, &end, b->err);
		if (r < 0)
			goto out;
		is_entries = key_is(&s, end, "entries");
		is_version = key_is(&s, end, "version");
		s.pos = end;
		r = expect(&s, ':', b->err);
		if (r < 0)
			goto out;
		skip_ws(&s);
		if (is_entries) {
			if (seen_entries) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: two \"entries\"");
				goto out;
			}
			seen_entries = true;
			r = parse_entries(b, &s, tok);
			if (r < 0)
				goto out;
		} else {
			/* validated, then ignored unless it is "version" */
			r = scan_value(&s, 1, &end, b->err);
			if (r < 0)
				goto out;
			r = parse_span(tok, &s, end, &o, b->err);
			if (r < 0)
				goto out;
			if (is_version &&
			    (!json_object_is_type(o, json_type_int) ||
			     json_object_get_int64(o) != 1)) {
				r = lp_err_set(b->err, -EINVAL,
					       "TOC JSON: unsupported version "
					       "%.20s",
					       json_object_to_json_string(o));
				goto out;
			}
			json_object_put(o);
			o = NULL;
			s.pos = end;
		}
		skip_ws(&s);
		if (s.pos < s.len && s.p[s.pos] == ',') {
			s.pos++;
			continue;
		}
		r = expect(&s, '}', b->err);
		if (r < 0)
			goto out;
		break;
	}
tail:
	skip_ws(&s);
	if (s.pos != s.len)
		r = lp_err_set(b->err, -EINVAL,
			       "TOC JSON: trailing bytes at %zu", s.pos);
out:
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	return r;
}
