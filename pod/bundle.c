/* SPDX-License-Identifier: MIT */
#include "bundle.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "util.h"

#define BUNDLE_MAX_CONFIG (1u << 20)
#define BUNDLE_MAX_BINDS 32

void bundle_done(struct bundle *b)
{
	free(b->config);
	free(b->rootfs);
	for (size_t i = 0; i < b->n_binds; i++) {
		free(b->binds[i].source);
		free(b->binds[i].destination);
	}
	free(b->binds);
	free(b->container_type);
	free(b->sandbox_id);
	free(b->cgroups_path);
	free(b->netns_path);
	free(b->k8s_namespace);
	free(b->template_domain);
	*b = (struct bundle){0};
}

static bool bool_of(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static bool has_option(json_object *m, const char *opt)
{
	json_object *opts;
	if (!json_object_object_get_ex(m, "options", &opts) ||
	    !json_object_is_type(opts, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(opts); i++) {
		json_object *e = json_object_array_get_idx(opts, i);
		if (e && json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), opt) == 0)
			return true;
	}
	return false;
}

int bundle_parse_config(const char *json, size_t len, struct bundle *b, struct hull_error **err)
{
	json_object *root, *o, *mounts;
	const char *path;
	int r = json_parse(json, len, 64, true, &root, err);

	if (r < 0)
		return hull_error_prefix(err, "config.json");

	/* Only what the host acts on; the guest validates the whole spec. */
	json_object_object_get_ex(root, "root", &o);
	path = json_get_string(o, "path");
	free(b->rootfs);
	b->rootfs = xstrdup(path && *path ? path : "rootfs");
	b->root_readonly = bool_of(o, "readonly");
	json_object_object_get_ex(root, "process", &o);
	b->terminal = bool_of(o, "terminal");
	o = NULL;
	json_object_object_get_ex(root, "annotations", &o);
	if ((path = json_get_string(o, "io.kubernetes.cri.container-type")))
		b->container_type = xstrdup(path);
	if ((path = json_get_string(o, "io.kubernetes.cri.sandbox-id")))
		b->sandbox_id = xstrdup(path);
	if ((path = json_get_string(o, "io.kubernetes.cri.sandbox-namespace")))
		b->k8s_namespace = xstrdup(path);
	if ((path = json_get_string(o, "io.hull.template-domain")))
		b->template_domain = xstrdup(path);
	o = NULL;
	json_object_object_get_ex(root, "linux", &o);
	if ((path = json_get_string(o, "cgroupsPath")) && *path)
		b->cgroups_path = xstrdup(path);
	b->host_network = b->host_ipc = b->host_pid = true;
	if (o && json_object_object_get_ex(o, "namespaces", &o) &&
	    json_object_is_type(o, json_type_array))
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			json_object *ns = json_object_array_get_idx(o, i);
			const char *type = json_get_string(ns, "type");
			if (type && strcmp(type, "network") == 0)
				b->host_network = false;
			else if (type && strcmp(type, "ipc") == 0)
				b->host_ipc = false;
			else if (type && strcmp(type, "pid") == 0)
				b->host_pid = false;
			if (type && strcmp(type, "network") == 0 &&
			    (path = json_get_string(ns, "path")) && *path) {
				free(b->netns_path);
				b->netns_path = xstrdup(path);
			}
		}

	if (json_object_object_get_ex(root, "mounts", &mounts) &&
	    json_object_is_type(mounts, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(mounts); i++) {
			json_object *m = json_object_array_get_idx(mounts, i);
			const char *type = json_get_string(m, "type"),
			           *src = json_get_string(m, "source"),
			           *dst = json_get_string(m, "destination");
			bool bind = (type && strcmp(type, "bind") == 0) || has_option(m, "bind") ||
			            has_option(m, "rbind");
			/* A later mount at the same destination covers an earlier bind. */
			for (size_t k = 0; dst && k < b->n_binds; k++)
				if (strcmp(b->binds[k].destination, dst) == 0) {
					free(b->binds[k].source);
					free(b->binds[k].destination);
					b->binds[k] = b->binds[--b->n_binds];
					break;
				}
			if (!bind || !src || !dst)
				continue;
			if (b->n_binds >= BUNDLE_MAX_BINDS) {
				r = hull_error_set(err, -E2BIG, "mounts: more than %d bind mounts",
				                   BUNDLE_MAX_BINDS);
				break;
			}
			b->binds = xrealloc(b->binds, (b->n_binds + 1) * sizeof(*b->binds));
			b->binds[b->n_binds++] =
			    (struct bundle_bind){.source = xstrdup(src),
			                         .destination = xstrdup(dst),
			                         .readonly = has_option(m, "ro")};
		}
	}
	json_object_put(root);
	return r;
}

/* A systemd unit name's body: what runc's systemd driver accepts, without escapes. */
static bool unit_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return n > 0 && n < 256;
}

/* "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" (the root) -> "". */
static char *expand_slice(const char *slice)
{
	size_t n = strlen(slice);
	char *path;

	if (strcmp(slice, "-.slice") == 0)
		return xstrdup("");
	if (n <= strlen(".slice") || strcmp(slice + n - strlen(".slice"), ".slice") != 0 ||
	    !unit_chars(slice, n))
		return NULL;
	n -= strlen(".slice");
	if (slice[0] == '-' || slice[n - 1] == '-' || memmem(slice, n, "--", 2) ||
	    memchr(slice, '.', n))
		return NULL;
	path = xstrdup("");
	for (size_t i = 0; i <= n; i++)
		if (i == n || slice[i] == '-') {
			char *next = xasprintf("%s/%.*s.slice", path, (int)i, slice);
			free(path);
			path = next;
		}
	return path;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

char *bundle_cgroup_path(const char *cgroups_path)
{
	const char *a, *b;
	_cleanup_free_ char *slice = NULL, *prefix = NULL, *base = NULL;

	if (!cgroups_path || !*cgroups_path)
		return NULL;
	if (cgroups_path[0] == '/') {
		for (const char *p = cgroups_path; *p;) {
			const char *slash = strchrnul(p, '/');
			size_t n = (size_t)(slash - p);
			if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
				return NULL;
			p = *slash ? slash + 1 : slash;
		}
		return xstrdup(cgroups_path);
	}
	a = strchr(cgroups_path, ':');
	b = a ? strchr(a + 1, ':') : NULL;
	if (!b || strchr(b + 1, ':'))
		return NULL;
	slice = xstrndup(cgroups_path, (size_t)(a - cgroups_path));
	prefix = xstrndup(a + 1, (size_t)(b - a - 1));
	b++;
	if (!unit_chars(b, strlen(b)) || (*prefix && !unit_chars(prefix, strlen(prefix))))
		return NULL;
	/* runc's systemd driver: a name that is a slice is that slice; anything else is
	 * a scope "prefix-name.scope" in the slice (system.slice when none is given). */
	if (ends_with(b, ".slice"))
		return expand_slice(b);
	base = expand_slice(*slice ? slice : "system.slice");
	if (!base)
		return NULL;
	return *prefix ? xasprintf("%s/%s-%s.scope", base, prefix, b)
	               : xasprintf("%s/%s.scope", base, b);
}

int bundle_read(const char *dir, struct bundle *b, struct hull_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/config.json", dir);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;
	int r;

	*b = (struct bundle){0};
	if (fd < 0 || fstat(fd, &st) < 0)
		return hull_error_set_errno(err, -errno, "bundle '%s': config.json", dir);
	if (!S_ISREG(st.st_mode) || st.st_size > BUNDLE_MAX_CONFIG)
		return hull_error_set(
		    err, -EINVAL, "bundle '%s': config.json is not a file of at most 1 MiB", dir);
	b->config = xmalloc((size_t)st.st_size + 1);
	n = read_all(fd, b->config, (size_t)st.st_size);
	if (n != st.st_size) {
		bundle_done(b);
		return hull_error_set_errno(err, n < 0 ? (int)n : -EIO,
		                            "bundle '%s': read config.json", dir);
	}
	b->config_len = (size_t)n;
	r = bundle_parse_config(b->config, b->config_len, b, err);
	if (r < 0)
		goto fail;

	/* root.path is relative to the bundle unless absolute. */
	{
		_cleanup_free_ char *p =
		    b->rootfs[0] == '/' ? xstrdup(b->rootfs) : xasprintf("%s/%s", dir, b->rootfs);
		char *real = realpath(p, NULL);
		if (!real || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
			r = hull_error_set_errno(err, real ? -ENOTDIR : -errno,
			                         "bundle '%s': root.path '%s'", dir, b->rootfs);
			free(real);
			goto fail;
		}
		free(b->rootfs);
		b->rootfs = real;
	}
	for (size_t i = 0; i < b->n_binds; i++) {
		struct bundle_bind *bb = &b->binds[i];
		char *real = realpath(bb->source, NULL);
		if (!real) {
			r = hull_error_set_errno(err, -errno, "bundle: bind mount source '%s'",
			                         bb->source);
			goto fail;
		}
		free(bb->source);
		bb->source = real;
		if (stat(real, &st) < 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
			r = hull_error_set(
			    err, -EOPNOTSUPP,
			    "bundle: bind mount source '%s' at '%s' is not a directory "
			    "or a regular file",
			    real, bb->destination);
			goto fail;
		}
		/* A single file cannot be a 9p share: it is copied in at start. */
		bb->is_file = S_ISREG(st.st_mode);
	}
	return 0;
fail:
	bundle_done(b);
	return r;
}
