/* SPDX-License-Identifier: MIT */
/* A VM's settings: one table of keys with their defaults and one validator, behind
 * `hull run`'s flags (--cpus 2), the shim's config file (cpus = 2) and every later front
 * end. A new setting is one row here and one field in struct vmm_settings. */
#include <string.h>

#include "util.h"
#include "vmm.h"

typedef int (*setting_fn)(struct vmm_settings *s, const char *v);

static int set_path(char **dst, const char *v)
{
	/* Absolute: the shim runs in a bundle directory, and a relative path there would
	 * name something nobody meant. hull run makes its flags' paths absolute. */
	if (v[0] != '/' || strlen(v) >= 4096)
		return -EINVAL;
	free(*dst);
	*dst = xstrdup(v);
	return 0;
}

static int set_kernel(struct vmm_settings *s, const char *v)
{
	return set_path(&s->kernel, v);
}

static int set_initrd(struct vmm_settings *s, const char *v)
{
	return set_path(&s->initrd, v);
}

static int set_qemu(struct vmm_settings *s, const char *v)
{
	if (!*v || strlen(v) >= 4096)
		return -EINVAL;
	free(s->qemu);
	s->qemu = xstrdup(v);
	return 0;
}

static int set_accel(struct vmm_settings *s, const char *v)
{
	int a = vmm_accel_from_string(v);
	if (a < 0)
		return a;
	s->accel = (enum vmm_accel)a;
	return 0;
}

static int set_machine(struct vmm_settings *s, const char *v)
{
	int m = vmm_machine_from_string(v);
	if (m < 0)
		return m;
	s->machine = (enum vmm_machine)m;
	return 0;
}

static int set_channel(struct vmm_settings *s, const char *v)
{
	if (strcmp(v, "auto") == 0)
		s->channel = -1;
	else if (strcmp(v, "serial") == 0)
		s->channel = VMM_CHANNEL_SERIAL;
	else if (strcmp(v, "vsock") == 0)
		s->channel = VMM_CHANNEL_VSOCK;
	else
		return -EINVAL;
	return 0;
}

static int set_cpus(struct vmm_settings *s, const char *v)
{
	char *end;
	unsigned long n;

	/* Digits only: strtoul would take " 2", "+2" and "-1" too. */
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n < 1 || n > VMM_CPUS_MAX)
		return -EINVAL;
	s->cpus = (unsigned)n;
	return 0;
}

static int set_memory(struct vmm_settings *s, const char *v)
{
	uint64_t n;
	if (parse_size(v, &n) < 0 || n < ((uint64_t)VMM_MEMORY_MIN_MIB << 20) ||
	    n > ((uint64_t)VMM_MEMORY_MAX_MIB << 20))
		return -EINVAL;
	s->memory_mib = n >> 20;
	return 0;
}

static int set_tcg_cache(struct vmm_settings *s, const char *v)
{
	uint64_t n;
	if (parse_size(v, &n) < 0 || n < ((uint64_t)VMM_TCG_CACHE_MIN_MIB << 20) ||
	    n > ((uint64_t)VMM_TCG_CACHE_MAX_MIB << 20))
		return -EINVAL;
	s->tcg_cache_mib = n >> 20;
	return 0;
}

static int set_boot_timeout(struct vmm_settings *s, const char *v)
{
	uint64_t ms;
	if (parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > 3600000)
		return -EINVAL;
	s->boot_timeout_ms = ms;
	return 0;
}

static int set_template(struct vmm_settings *s, const char *v)
{
	if (strcmp(v, "true") == 0)
		s->template = true;
	else if (strcmp(v, "false") == 0)
		s->template = false;
	else
		return -EINVAL;
	return 0;
}

static int set_template_domain(struct vmm_settings *s, const char *v)
{
	if (!id_is_valid(v))
		return -EINVAL;
	free(s->template_domain);
	s->template_domain = xstrdup(v);
	return 0;
}

static const struct {
	struct vmm_setting info;
	setting_fn set;
} table[] = {
    {{"kernel", "an absolute path", NULL, "guest kernel (default: hull's own)"}, set_kernel},
    {{"initrd", "an absolute path", NULL, "guest initramfs (default: hull's own)"}, set_initrd},
    {{"qemu", "a program name or path", NULL,
      "QEMU binary (default: $HULL_QEMU or qemu-system-x86_64)"},
     set_qemu},
    {{"accel", "auto, kvm or tcg", "auto", "accelerator (auto: KVM where it really works)"},
     set_accel},
    {{"machine", "microvm or q35", "microvm", "machine model"}, set_machine},
    {{"channel", "auto, serial or vsock", "auto",
      "agent channel (auto: vsock where the host has it)"},
     set_channel},
    {{"cpus", "a number from 1 to 64", "1", "virtual CPUs"}, set_cpus},
    {{"memory", "a size from 64M to 1T, like 512M", "256M", "guest memory"}, set_memory},
    {{"tcg_cache", "a size from 8M to 1G, like 64M", "32M",
      "TCG's translated-code cache: the most host memory a guest's code costs (no effect "
      "under KVM)"},
     set_tcg_cache},
    {{"boot_timeout", "a duration like 30s, 500ms, 5m (at most 1h)", "30s",
      "give up when the VM is not ready after this"},
     set_boot_timeout},
    {{"template", "true or false", "true",
      "restore from a template instead of booting (docs/templates.md)"},
     set_template},
    {{"template_domain", "1 to 64 of A-Z a-z 0-9 _ . - (not starting with '.')", NULL,
      "trust domain: only its sandboxes share a template (default: per user for hull run, "
      "per Kubernetes namespace for pods)"},
     set_template_domain},
};

const struct vmm_setting *vmm_settings_list(size_t *ret_n)
{
	static struct vmm_setting infos[ELEMENTSOF(table)];
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		infos[i] = table[i].info;
	*ret_n = ELEMENTSOF(table);
	return infos;
}

int vmm_settings_set(struct vmm_settings *s, const char *key, const char *value,
                     struct hull_error **err)
{
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		if (strcmp(table[i].info.key, key) != 0)
			continue;
		if (table[i].set(s, value) < 0)
			return hull_error_set(err, -EINVAL, "bad value '%.128s': want %s", value,
			                      table[i].info.syntax);
		return 0;
	}
	return hull_error_set(err, -ENOENT, "unknown setting '%.64s'", key);
}

void vmm_settings_init(struct vmm_settings *s)
{
	*s = (struct vmm_settings){0};
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (table[i].info.def && table[i].set(s, table[i].info.def) < 0)
			abort(); /* the table's own defaults pass its own checks */
}

void vmm_settings_done(struct vmm_settings *s)
{
	free(s->kernel);
	free(s->initrd);
	free(s->qemu);
	free(s->template_domain);
	*s = (struct vmm_settings){0};
}

void vmm_settings_copy(struct vmm_settings *dst, const struct vmm_settings *src)
{
	*dst = *src;
	dst->kernel = src->kernel ? xstrdup(src->kernel) : NULL;
	dst->initrd = src->initrd ? xstrdup(src->initrd) : NULL;
	dst->qemu = src->qemu ? xstrdup(src->qemu) : NULL;
	dst->template_domain = src->template_domain ? xstrdup(src->template_domain) : NULL;
}
