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
	*c = (struct shim_config){
	    .accel = VMM_ACCEL_AUTO,
	    .machine = VMM_MACHINE_MICROVM,
	    .channel = -1,
	    .cpus = 1,
	    .memory_mib = 256,
	    .boot_timeout_ms = 30000,
	    .log_level = LOG_LEVEL_INFO,
	};
}

void shim_config_done(struct shim_config *c)
{
	free(c->kernel);
	free(c->initrd);
	free(c->qemu);
	shim_config_defaults(c);
}

static int set_value(struct shim_config *c, const char *key, const char *v, bool quoted)
{
	uint64_t n;

	if (strcmp(key, "kernel") == 0 || strcmp(key, "initrd") == 0 || strcmp(key, "qemu") == 0) {
		char **dst = key[0] == 'k' ? &c->kernel : key[0] == 'i' ? &c->initrd : &c->qemu;
		if (!quoted || !*v || (key[0] != 'q' && v[0] != '/'))
			return -EINVAL;
		free(*dst);
		*dst = xstrdup(v);
		return 0;
	}
	if (strcmp(key, "cpus") == 0) {
		char *end;
		unsigned long u = strtoul(v, &end, 10);
		if (quoted || *end || end == v || u < 1 || u > 64)
			return -EINVAL;
		c->cpus = (unsigned)u;
		return 0;
	}
	if (strcmp(key, "memory") == 0) {
		if (parse_size(v, &n) < 0 || n < (64ull << 20) || n > (1ull << 40))
			return -EINVAL;
		c->memory_mib = n >> 20;
		return 0;
	}
	if (strcmp(key, "boot_timeout") == 0) {
		if (parse_duration_ms(v, &n) < 0 || n == 0 || n > 3600000)
			return -EINVAL;
		c->boot_timeout_ms = (int)n;
		return 0;
	}
	if (strcmp(key, "accel") == 0) {
		int a = vmm_accel_from_string(v);
		if (a < 0)
			return -EINVAL;
		c->accel = (enum vmm_accel)a;
		return 0;
	}
	if (strcmp(key, "machine") == 0) {
		int m = vmm_machine_from_string(v);
		if (m < 0)
			return -EINVAL;
		c->machine = (enum vmm_machine)m;
		return 0;
	}
	if (strcmp(key, "channel") == 0) {
		if (strcmp(v, "auto") == 0)
			c->channel = -1;
		else if (strcmp(v, "serial") == 0)
			c->channel = VMM_CHANNEL_SERIAL;
		else if (strcmp(v, "vsock") == 0)
			c->channel = VMM_CHANNEL_VSOCK;
		else
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "log_level") == 0) {
		int l = log_level_from_string(v);
		if (l < 0)
			return -EINVAL;
		c->log_level = l;
		return 0;
	}
	return -ENOENT;
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
		r = set_value(c, key, v, quoted);
		if (r == -ENOENT)
			return hull_error_set(err, -EINVAL, "%s:%u: unknown key '%.64s'", path,
			                      lineno, key);
		if (r < 0)
			return hull_error_set(err, -EINVAL, "%s:%u: %s: bad value '%.128s'", path,
			                      lineno, key, v);
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
