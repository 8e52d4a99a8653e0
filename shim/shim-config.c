/* SPDX-License-Identifier: MIT */
/* The shim's configuration file: `key = value` lines, a TOML subset (strings in double
 * quotes, bare integers, `#` comments). Unknown keys and bad values are errors with the
 * file and line, so a typo never silently boots the wrong guest. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "shim.h"
#include "util.h"

#define CONFIG_MAX (64u << 10)
#define DEFAULT_CONFIG "/etc/hull/shim.toml"

void shim_config_defaults(struct shim_config *c)
{
	vmm_settings_init(&c->vm);
	c->log_level = LOG_LEVEL_INFO;
}

void shim_config_done(struct shim_config *c)
{
	vmm_settings_done(&c->vm);
	shim_config_defaults(c);
}

/* A key of the file: the VM's settings (checked where every front end's are), and the
 * shim's own. */
static int set_value(struct shim_config *c, const char *key, const char *v, bool quoted,
                     struct hull_error **err)
{
	static const char *const strings[] = {"kernel", "initrd", "qemu", "template_domain"};
	if (strcmp(key, "log_level") == 0) {
		int l = log_level_from_string(v);
		if (l < 0)
			return hull_error_set(
			    err, -EINVAL, "bad value '%.128s': want error, warn, info or debug", v);
		c->log_level = l;
		return 0;
	}
	/* Paths and names are TOML strings; numbers, sizes and words are bare. */
	for (size_t i = 0; i < ELEMENTSOF(strings); i++)
		if (strcmp(key, strings[i]) == 0 && !quoted)
			return hull_error_set(err, -EINVAL,
			                      "bad value '%.128s': want a quoted string", v);
	return vmm_settings_set(&c->vm, key, v, err);
}

int shim_config_parse(const char *text, size_t len, const char *path, struct shim_config *c,
                      struct hull_error **err)
{
	unsigned lineno = 0;

	if (len > CONFIG_MAX)
		return hull_error_set(err, -EFBIG, "%s: larger than 64 KiB", path);
	if (memchr(text, '\0', len))
		return hull_error_set(err, -EINVAL, "%s: contains a NUL byte", path);
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		_cleanup_free_ char *line = xstrndup(p, n);
		char *s = line, *key, *eq, *v, *e;
		_cleanup_error_ struct hull_error *e_value = NULL;
		bool quoted = false;
		int r;

		p += n + (nl ? 1 : 0);
		lineno++;
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = '\0';
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq)
			return hull_error_set(err, -EINVAL, "%s:%u: expected key = value", path,
			                      lineno);
		key = s;
		for (e = eq; e > key && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		v = eq + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v == '"') {
			/* A basic string without escapes: paths and words need none. */
			char *close = strchr(v + 1, '"');
			if (!close || strchr(v + 1, '\\'))
				return hull_error_set(err, -EINVAL,
				                      "%s:%u: %s: unterminated or escaped string",
				                      path, lineno, key);
			*close = '\0';
			for (e = close + 1; *e == ' ' || *e == '\t'; e++)
				;
			if (*e && *e != '#')
				return hull_error_set(err, -EINVAL,
				                      "%s:%u: %s: text after the value", path,
				                      lineno, key);
			v++;
			quoted = true;
		} else {
			e = strchr(v, '#');
			if (e)
				*e = '\0';
			for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
				*(e - 1) = '\0';
		}
		r = set_value(c, key, v, quoted, &e_value);
		if (r == -ENOENT)
			return hull_error_set(err, -EINVAL, "%s:%u: unknown key '%.64s'", path,
			                      lineno, key);
		if (r < 0)
			return hull_error_set(err, r, "%s:%u: %s: %s", path, lineno, key,
			                      e_value->msg);
	}
	return 0;
}

int shim_config_load(const char *path, bool named, struct shim_config *c, struct hull_error **err)
{
	const char *p = path && *path ? path : DEFAULT_CONFIG;
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT && !named)
			return 0;
		return hull_error_set_errno(err, -errno, "config '%s'", p);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX)
		return hull_error_set(err, -EINVAL, "config '%s': not a file of at most 64 KiB", p);
	text = xmalloc((size_t)st.st_size + 1);
	n = read_all(fd, text, (size_t)st.st_size);
	if (n < 0)
		return hull_error_set_errno(err, (int)n, "config '%s'", p);
	return shim_config_parse(text, (size_t)n, p, c, err);
}
