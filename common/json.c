/* SPDX-License-Identifier: MIT */
/* One way to turn outside text into json-c objects: bounded depth, the whole input
 * consumed, errors that say where. */
#include "json.h"

#include <limits.h>

#include "macros.h"

int json_parse(const char *text, size_t len, int depth, bool want_object, json_object **ret,
               struct hull_error **err)
{
	json_tokener *tok;
	json_object *o;
	size_t end;

	*ret = NULL;
	if (len > INT_MAX)
		return hull_error_set(err, -E2BIG, "%zu bytes of JSON", len);
	tok = json_tokener_new_ex(depth);
	if (!tok)
		abort();
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		end = json_tokener_get_parse_end(tok);
		json_object_put(o);
		json_tokener_free(tok);
		return hull_error_set(
		    err, -EINVAL, "not JSON at byte %zu: %s", end,
		    json_tokener_error_desc(e == json_tokener_continue || e == json_tokener_success
		                                ? json_tokener_error_parse_eof
		                                : e));
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (; end < len; end++)
		if (text[end] != ' ' && text[end] != '\t' && text[end] != '\n' &&
		    text[end] != '\r') {
			json_object_put(o);
			return hull_error_set(err, -EINVAL,
			                      "not JSON at byte %zu: text after the value", end);
		}
	if (want_object && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return hull_error_set(err, -EINVAL, "not a JSON object");
	}
	*ret = o;
	return 0;
}

const char *json_get_string(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}
