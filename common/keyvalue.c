/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyvalue.h"
#include "macros.h"
#include "util.h"

static char *skip_blank(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A basic string at s (on its opening quote), without escapes: paths and words need
 * none. Returns the character after the closing quote, or NULL. */
static char *take_string(char *s, char **ret)
{
	char *close = strchr(s + 1, '"');
	if (!close || memchr(s + 1, '\\', (size_t)(close - s - 1)))
		return NULL;
	*close = '\0';
	*ret = s + 1;
	return close + 1;
}

static bool rest_is_empty(const char *e)
{
	while (*e == ' ' || *e == '\t')
		e++;
	return !*e || *e == '#';
}

/* `[a.b."c.d"]` -> "a.b.c.d". */
static int parse_section(char *s, char **ret)
{
	_cleanup_free_ char *out = xcalloc(1, strlen(s) + 1);
	char *p = s + 1, *o = out;

	for (;;) {
		p = skip_blank(p);
		if (*p == '"') {
			char *str;
			p = take_string(p, &str);
			if (!p || !*str)
				return -EINVAL;
			o = stpcpy(o, str);
		} else {
			size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                     "0123456789_-");
			if (n == 0)
				return -EINVAL;
			memcpy(o, p, n);
			o += n;
			p += n;
		}
		p = skip_blank(p);
		if (*p == ']')
			break;
		if (*p != '.')
			return -EINVAL;
		*o++ = '.';
		p++;
	}
	if (!rest_is_empty(p + 1))
		return -EINVAL;
	*ret = TAKE_PTR(out);
	return 0;
}

/* `["a", "b"]` rewritten in place as "a\0b\0". */
static int parse_array(char *s, size_t *n_items)
{
	char *p = s + 1, *o = s;
	size_t n = 0;

	for (;;) {
		p = skip_blank(p);
		if (*p == ']')
			break;
		if (*p != '"')
			return -EINVAL;
		char *str;
		p = take_string(p, &str);
		if (!p)
			return -EINVAL;
		size_t l = strlen(str);
		memmove(o, str, l + 1);
		o += l + 1;
		n++;
		p = skip_blank(p);
		if (*p == ',')
			p++;
		else if (*p != ']')
			return -EINVAL;
	}
	if (!rest_is_empty(p + 1))
		return -EINVAL;
	*n_items = n;
	return 0;
}

int keyvalue_parse(const char *text, size_t len, const char *path, keyvalue_fn fn, void *userdata,
                   struct hull_error **err)
{
	_cleanup_free_ char *section = NULL;
	unsigned lineno = 0;

	if (len > KEYVALUE_MAX)
		return hull_error_set(err, -EFBIG, "%s: larger than 64 KiB", path);
	if (memchr(text, '\0', len))
		return hull_error_set(err, -EINVAL, "%s: contains a NUL byte", path);
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		_cleanup_free_ char *line = xstrndup(p, n);
		_cleanup_free_ char *full = NULL;
		_cleanup_error_ struct hull_error *e_value = NULL;
		struct keyvalue kv = {.kind = KEYVALUE_BARE};
		char *s, *key, *eq, *v, *e;
		int r;

		p += n + (nl ? 1 : 0);
		lineno++;
		for (e = line + strlen(line); e > line && (e[-1] == '\r'); e--)
			*(e - 1) = '\0';
		s = skip_blank(line);
		if (!*s || *s == '#')
			continue;
		if (*s == '[') {
			free(section);
			section = NULL;
			if (parse_section(s, &section) < 0)
				return hull_error_set(err, -EINVAL, "%s:%u: bad section header",
				                      path, lineno);
			continue;
		}
		eq = strchr(s, '=');
		if (!eq)
			return hull_error_set(err, -EINVAL, "%s:%u: expected key = value", path,
			                      lineno);
		key = s;
		for (e = eq; e > key && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		if (section)
			key = full = xasprintf("%s.%s", section, key);
		v = skip_blank(eq + 1);
		if (*v == '"') {
			char *after = take_string(v, &v);
			if (!after)
				return hull_error_set(err, -EINVAL,
				                      "%s:%u: %s: unterminated or escaped string",
				                      path, lineno, key);
			if (!rest_is_empty(after))
				return hull_error_set(err, -EINVAL,
				                      "%s:%u: %s: text after the value", path,
				                      lineno, key);
			kv.kind = KEYVALUE_STRING;
		} else if (*v == '[') {
			if (parse_array(v, &kv.n_items) < 0)
				return hull_error_set(err, -EINVAL,
				                      "%s:%u: %s: want an array of quoted strings",
				                      path, lineno, key);
			kv.kind = KEYVALUE_ARRAY;
		} else {
			e = strchr(v, '#');
			if (e)
				*e = '\0';
			for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
				*(e - 1) = '\0';
		}
		kv.key = key;
		kv.value = v;
		r = fn(userdata, &kv, &e_value);
		if (r == -ENOENT && !e_value)
			return hull_error_set(err, -EINVAL, "%s:%u: unknown key '%.64s'", path,
			                      lineno, key);
		if (r < 0)
			return hull_error_set(err, r, "%s:%u: %s: %s", path, lineno, key,
			                      e_value ? e_value->msg : strerror(-r));
	}
	return 0;
}

int keyvalue_load(const char *path, bool named, keyvalue_fn fn, void *userdata,
                  struct hull_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT && !named)
			return 0;
		return hull_error_set_errno(err, -errno, "config '%s'", path);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > KEYVALUE_MAX)
		return hull_error_set(err, -EINVAL, "config '%s': not a file of at most 64 KiB",
		                      path);
	text = xmalloc((size_t)st.st_size + 1);
	n = read_all(fd, text, (size_t)st.st_size);
	if (n < 0)
		return hull_error_set_errno(err, (int)n, "config '%s'", path);
	return keyvalue_parse(text, (size_t)n, path, fn, userdata, err);
}

char **keyvalue_items(const struct keyvalue *kv)
{
	char **v = xcalloc(kv->n_items + 1, sizeof(*v));
	const char *p = kv->value;
	for (size_t i = 0; i < kv->n_items; i++) {
		v[i] = xstrdup(p);
		p += strlen(p) + 1;
	}
	return v;
}
