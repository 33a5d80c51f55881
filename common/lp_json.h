/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json-c helpers shared by the modules that read JSON from outside
 * (registry replies and docker config.json, prioritised-file lists): a
 * bounded parse of one whole document, and typed member getters.
 */
#ifndef LP_JSON_H
#define LP_JSON_H

#include <stddef.h>

#include <json-c/json.h>

/* json-c takes the length as an int */
#define LP_JSON_MAX_LEN ((size_t)INT32_MAX)

/*
 * lp_json_parse() - parse @s[0..@len) as one JSON value nested at most
 * @max_depth deep, of type @want (json_type_null: any type). Only white
 * space may follow the value. The caller owns *@ret_obj (json_object_put).
 * Returns 0, -EFBIG when @len exceeds LP_JSON_MAX_LEN, -EINVAL for a NUL
 * byte, malformed or truncated JSON, trailing text or another type,
 * -ENOMEM.
 */
int lp_json_parse(const char *s, size_t len, int max_depth, enum json_type want,
		  json_object **ret_obj);

/*
 * lp_json_str() - the string member @key of object @o (borrowed from @o),
 * or NULL when @o is not an object, has no @key, or @key is not a string.
 */
const char *lp_json_str(json_object *o, const char *key);

/*
 * lp_json_str_len() - as lp_json_str(), with the string's length (which
 * may count NUL bytes a JSON "\u0000" put there) in *@ret_len.
 */
const char *lp_json_str_len(json_object *o, const char *key, size_t *ret_len);

#endif /* LP_JSON_H */
