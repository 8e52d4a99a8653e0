/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Parse text as exactly one JSON value (only whitespace may follow), nested at most
 * depth levels. On failure *err says "not JSON at byte N: why" (or "... is not a JSON
 * object" when want_object). */
int json_parse(const char *text, size_t len, int depth, bool want_object, json_object **ret,
               struct hull_error **err);
/* o[key] when it is a string, else NULL. */
const char *json_get_string(json_object *o, const char *key);

static inline void json_object_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
