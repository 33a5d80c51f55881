// SPDX-License-Identifier: Apache-2.0
/*
 * json-c helpers: see lp_json.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "lp_json.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int lp_json_parse(const char *s, size_t len, int max_depth, enum json_type want,
		  json_object **ret_obj)
{
	struct json_tokener *tok = NULL;
	json_object *o = NULL;
	size_t end;
	int r = -EINVAL;

	if (len > LP_JSON_MAX_LEN)
		return -EFBIG;
	if (memchr(s, '\0', len))
		return -EINVAL;
	tok = json_tokener_new_ex(max_depth);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
		/* a bare number or literal ends only at what follows it:
		   hand json-c the terminating NUL it waits for */
		o = json_tokener_parse_ex(tok, "", 1);
		end = len;
	} else {
		end = json_tokener_get_parse_end(tok);
	}
	if (!o || json_tokener_get_error(tok) != json_tokener_success)
		goto out;
	for (; end < len; end++)
		if (!is_space(s[end]))
			goto out;
	if (want != json_type_null && !json_object_is_type(o, want))
		goto out;
	*ret_obj = o;
	o = NULL;
	r = 0;
out:
	json_object_put(o);
	json_tokener_free(tok);
	return r;
}

const char *lp_json_str_len(json_object *o, const char *key, size_t *ret_len)
{
	json_object *v;

	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	*ret_len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

const char *lp_json_str(json_object *o, const char *key)
{
	size_t len;

	return lp_json_str_len(o, key, &len);
}
