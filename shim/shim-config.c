/* SPDX-License-Identifier: MIT */
/* The shim's configuration file: common/keyvalue.c's TOML subset. Unknown keys and bad
 * values are errors with the file and line, so a typo never silently boots the wrong
 * guest. */
#include <string.h>

#include "keyvalue.h"
#include "log.h"
#include "shim.h"
#include "util.h"

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
static int set_value(void *userdata, const struct keyvalue *kv, struct hull_error **err)
{
	static const char *const strings[] = {"kernel", "initrd", "qemu", "template_domain"};
	struct shim_config *c = userdata;
	const char *key = kv->key, *v = kv->value;

	if (kv->kind == KEYVALUE_ARRAY)
		return hull_error_set(err, -EINVAL, "bad value: an array where one value goes");
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
		if (strcmp(key, strings[i]) == 0 && kv->kind != KEYVALUE_STRING)
			return hull_error_set(err, -EINVAL,
			                      "bad value '%.128s': want a quoted string", v);
	return vmm_settings_set(&c->vm, key, v, err);
}

int shim_config_parse(const char *text, size_t len, const char *path, struct shim_config *c,
                      struct hull_error **err)
{
	return keyvalue_parse(text, len, path, set_value, c, err);
}

int shim_config_load(const char *path, bool named, struct shim_config *c, struct hull_error **err)
{
	return keyvalue_load(path && *path ? path : DEFAULT_CONFIG, named, set_value, c, err);
}
