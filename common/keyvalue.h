/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* The configuration files' TOML subset (the shim's shim.toml, hull-cri's cri.toml):
 * `key = value` lines, `[section]` and `[section."quoted.name"]` headers (keys inside
 * are "section.key", `section.quoted.name.key`), strings in double quotes without
 * escapes, bare words and integers, arrays of strings (`["a", "b"]`), `#` comments.
 * Unknown keys and bad values are errors with the file and line. */
#define KEYVALUE_MAX (64u << 10)

enum keyvalue_kind {
	KEYVALUE_BARE,
	KEYVALUE_STRING,
	KEYVALUE_ARRAY, /* value is the strings NUL-separated, n_items of them */
};

struct keyvalue {
	const char *key;
	const char *value;
	enum keyvalue_kind kind;
	size_t n_items;
};

/* Return 0, -ENOENT for an unknown key (the parser names it), or < 0 with *err set
 * (prefixed with file, line and key by the parser). */
typedef int (*keyvalue_fn)(void *userdata, const struct keyvalue *kv, struct hull_error **err);

int keyvalue_parse(const char *text, size_t len, const char *path, keyvalue_fn fn, void *userdata,
                   struct hull_error **err);
/* Read a config file of at most KEYVALUE_MAX bytes and parse it. A missing file is 0
 * unless named (the user asked for it). */
int keyvalue_load(const char *path, bool named, keyvalue_fn fn, void *userdata,
                  struct hull_error **err);
/* An array value's items as a NULL-terminated vector of copies (caller frees each and
 * the vector). */
char **keyvalue_items(const struct keyvalue *kv);
