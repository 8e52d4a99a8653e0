/* SPDX-License-Identifier: MIT */
/* /etc/hull/cri.toml: common/keyvalue.c's TOML subset. Every key is listed in
 * docs/kubernetes.md; an unknown key or a bad value is an error with file and line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cri.h"
#include "keyvalue.h"
#include "log.h"
#include "util.h"

void cri_config_defaults(struct cri_config *c)
{
	memset(c, 0, sizeof(*c));
	c->socket = xstrdup(CRI_DEFAULT_SOCKET);
	c->root = xstrdup(CRI_DEFAULT_ROOT);
	c->state = xstrdup(CRI_DEFAULT_STATE);
	c->stream_address = xstrdup("127.0.0.1:0");
	c->cni_conf_dir = xstrdup("/etc/cni/net.d");
	c->cni_bin_dirs = xcalloc(3, sizeof(char *));
	c->cni_bin_dirs[0] = xstrdup("/opt/cni/bin");
	c->cni_bin_dirs[1] = xstrdup("/usr/lib/cni");
	c->cgroup_driver = xstrdup("cgroupfs");
	c->log_level = LOG_LEVEL_INFO;
}

void cri_config_done(struct cri_config *c)
{
	free(c->socket);
	free(c->root);
	free(c->state);
	free(c->image_root);
	free(c->stream_address);
	free(c->cni_conf_dir);
	strv_free(c->cni_bin_dirs);
	free(c->cgroup_driver);
	free(c->shim_binary);
	free(c->shim_config);
	free(c->pause_binary);
	free(c->runc_shim);
	strv_free(c->insecure_registries);
	free(c->registry_mirrors);
	memset(c, 0, sizeof(*c));
}

static int set_path(char **slot, const struct keyvalue *kv, struct hull_error **err)
{
	if (kv->kind != KEYVALUE_STRING)
		return hull_error_set(err, -EINVAL, "want a quoted string");
	if (kv->value[0] != '/')
		return hull_error_set(err, -EINVAL, "'%.200s' is not an absolute path", kv->value);
	free(*slot);
	*slot = xstrdup(kv->value);
	return 0;
}

static int set_value(void *userdata, const struct keyvalue *kv, struct hull_error **err)
{
	struct cri_config *c = userdata;
	const char *k = kv->key, *v = kv->value;

	if (strcmp(k, "socket") == 0)
		return set_path(&c->socket, kv, err);
	if (strcmp(k, "root") == 0)
		return set_path(&c->root, kv, err);
	if (strcmp(k, "state") == 0)
		return set_path(&c->state, kv, err);
	if (strcmp(k, "image_root") == 0)
		return set_path(&c->image_root, kv, err);
	if (strcmp(k, "shim_binary") == 0)
		return set_path(&c->shim_binary, kv, err);
	if (strcmp(k, "shim_config") == 0)
		return set_path(&c->shim_config, kv, err);
	if (strcmp(k, "pause_binary") == 0)
		return set_path(&c->pause_binary, kv, err);
	if (strcmp(k, "runc_shim") == 0)
		return set_path(&c->runc_shim, kv, err);
	if (strcmp(k, "host_namespaces") == 0) {
		if (strcmp(v, "refuse") != 0 && strcmp(v, "runc") != 0)
			return hull_error_set(err, -EINVAL,
			                      "bad value '%.64s': want refuse or runc", v);
		c->host_namespaces_to_runc = strcmp(v, "runc") == 0;
		return 0;
	}
	if (strcmp(k, "cni.conf_dir") == 0)
		return set_path(&c->cni_conf_dir, kv, err);
	if (strcmp(k, "cni.bin_dirs") == 0 || strcmp(k, "registry.insecure") == 0) {
		char ***slot = k[0] == 'c' ? &c->cni_bin_dirs : &c->insecure_registries;
		if (kv->kind != KEYVALUE_ARRAY)
			return hull_error_set(err, -EINVAL, "want an array of quoted strings");
		strv_free(*slot);
		*slot = keyvalue_items(kv);
		return 0;
	}
	if (strncmp(k, "registry.mirrors.", 17) == 0) {
		/* [registry.mirrors."docker.io"] endpoint = "http://127.0.0.1:5000" */
		const char *dot = strrchr(k, '.');
		if (strcmp(dot, ".endpoint") != 0 || dot == k + 16)
			return -ENOENT;
		if (kv->kind != KEYVALUE_STRING ||
		    (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
		    strchr(v, ','))
			return hull_error_set(err, -EINVAL,
			                      "want a quoted http:// or https:// URL");
		_cleanup_free_ char *host = xstrndup(k + 17, (size_t)(dot - k - 17));
		char *m = c->registry_mirrors ? xasprintf("%s,%s=%s", c->registry_mirrors, host, v)
		                              : xasprintf("%s=%s", host, v);
		free(c->registry_mirrors);
		c->registry_mirrors = m;
		return 0;
	}
	if (strcmp(k, "stream_address") == 0) {
		if (kv->kind != KEYVALUE_STRING || !strrchr(v, ':'))
			return hull_error_set(err, -EINVAL, "want a quoted \"host:port\"");
		free(c->stream_address);
		c->stream_address = xstrdup(v);
		return 0;
	}
	if (strcmp(k, "cgroup_driver") == 0) {
		if (strcmp(v, "cgroupfs") != 0 && strcmp(v, "systemd") != 0)
			return hull_error_set(err, -EINVAL,
			                      "bad value '%.64s': want cgroupfs or systemd", v);
		free(c->cgroup_driver);
		c->cgroup_driver = xstrdup(v);
		return 0;
	}
	if (strcmp(k, "log_level") == 0) {
		int l = log_level_from_string(v);
		if (l < 0)
			return hull_error_set(
			    err, -EINVAL, "bad value '%.128s': want error, warn, info or debug", v);
		c->log_level = l;
		return 0;
	}
	return -ENOENT;
}

int cri_config_parse(const char *text, size_t len, const char *path, struct cri_config *c,
                     struct hull_error **err)
{
	return keyvalue_parse(text, len, path, set_value, c, err);
}

int cri_config_load(const char *path, bool named, struct cri_config *c, struct hull_error **err)
{
	return keyvalue_load(path ? path : CRI_DEFAULT_CONFIG, named, set_value, c, err);
}
