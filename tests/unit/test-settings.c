/* SPDX-License-Identifier: MIT */
/* VM settings: the one table of defaults and the one validator every front end uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "util.h"
#include "vmm.h"

static void assert_same_string(const char *a, const char *b)
{
	if (a || b) {
		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);
	}
}

static void assert_settings_equal(const struct vmm_settings *a, const struct vmm_settings *b)
{
	assert_same_string(a->kernel, b->kernel);
	assert_same_string(a->initrd, b->initrd);
	assert_same_string(a->qemu, b->qemu);
	assert_int_equal(a->accel, b->accel);
	assert_int_equal(a->machine, b->machine);
	assert_int_equal(a->channel, b->channel);
	assert_int_equal(a->cpus, b->cpus);
	assert_int_equal(a->memory_mib, b->memory_mib);
	assert_int_equal(a->tcg_cache_mib, b->tcg_cache_mib);
	assert_int_equal(a->boot_timeout_ms, b->boot_timeout_ms);
	assert_int_equal(a->template, b->template);
	assert_true((!a->template_domain && !b->template_domain) ||
	            (a->template_domain && b->template_domain &&
	             strcmp(a->template_domain, b->template_domain) == 0));
}

static void test_defaults(void **state)
{
	struct vmm_settings s;
	const struct vmm_setting *list;
	size_t n;
	(void)state;

	vmm_settings_init(&s);
	assert_int_equal(s.cpus, 1);
	assert_int_equal(s.memory_mib, 256);
	assert_int_equal(s.tcg_cache_mib, 32); /* not QEMU's 1 GiB a guest could fill */
	assert_int_equal(s.boot_timeout_ms, 30000);
	assert_int_equal(s.machine, VMM_MACHINE_MICROVM);
	assert_int_equal(s.accel, VMM_ACCEL_AUTO);
	assert_int_equal(s.channel, -1); /* auto: vsock where the host has it */
	assert_null(s.kernel);           /* hull's own guest */
	assert_null(s.initrd);
	assert_null(s.qemu);
	assert_true(s.template); /* restored from a template unless told not to */
	assert_null(s.template_domain);
	vmm_settings_done(&s);

	/* The table documents every key, and its defaults are the ones init sets. */
	list = vmm_settings_list(&n);
	assert_int_equal(n, 12);
	const char *keys[] = {"kernel",    "initrd",       "qemu",     "accel",
	                      "machine",   "channel",      "cpus",     "memory",
	                      "tcg_cache", "boot_timeout", "template", "template_domain"};
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		const struct vmm_setting *e = NULL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(list[j].key, keys[i]) == 0)
				e = &list[j];
		assert_non_null(e);
		assert_non_null(e->syntax);
		assert_non_null(e->help);
	}
	for (size_t j = 0; j < n; j++) {
		struct vmm_settings a, b;
		if (!list[j].def)
			continue;
		vmm_settings_init(&a);
		vmm_settings_init(&b);
		assert_int_equal(vmm_settings_set(&b, list[j].key, list[j].def, NULL), 0);
		assert_settings_equal(&a, &b);
		vmm_settings_done(&a);
		vmm_settings_done(&b);
	}
}

static void test_set_each_key(void **state)
{
	struct vmm_settings s;
	struct hull_error *err = NULL;
	(void)state;

	vmm_settings_init(&s);
	assert_int_equal(vmm_settings_set(&s, "kernel", "/boot/vmlinuz", &err), 0);
	assert_string_equal(s.kernel, "/boot/vmlinuz");
	/* Set again: replaced (the old string freed, as ASan checks). */
	assert_int_equal(vmm_settings_set(&s, "kernel", "/srv/hull/bzImage", &err), 0);
	assert_string_equal(s.kernel, "/srv/hull/bzImage");
	assert_int_equal(vmm_settings_set(&s, "initrd", "/srv/hull/initramfs.cpio", &err), 0);
	assert_string_equal(s.initrd, "/srv/hull/initramfs.cpio");
	assert_int_equal(vmm_settings_set(&s, "qemu", "qemu-kvm", &err), 0);
	assert_string_equal(s.qemu, "qemu-kvm");
	assert_int_equal(vmm_settings_set(&s, "qemu", "/usr/libexec/qemu-kvm", &err), 0);
	assert_string_equal(s.qemu, "/usr/libexec/qemu-kvm");

	assert_int_equal(vmm_settings_set(&s, "accel", "kvm", &err), 0);
	assert_int_equal(s.accel, VMM_ACCEL_KVM);
	assert_int_equal(vmm_settings_set(&s, "accel", "tcg", &err), 0);
	assert_int_equal(s.accel, VMM_ACCEL_TCG);
	assert_int_equal(vmm_settings_set(&s, "accel", "auto", &err), 0);
	assert_int_equal(s.accel, VMM_ACCEL_AUTO);

	assert_int_equal(vmm_settings_set(&s, "machine", "q35", &err), 0);
	assert_int_equal(s.machine, VMM_MACHINE_Q35);
	assert_int_equal(vmm_settings_set(&s, "machine", "microvm", &err), 0);
	assert_int_equal(s.machine, VMM_MACHINE_MICROVM);

	assert_int_equal(vmm_settings_set(&s, "channel", "serial", &err), 0);
	assert_int_equal(s.channel, VMM_CHANNEL_SERIAL);
	assert_int_equal(vmm_settings_set(&s, "channel", "vsock", &err), 0);
	assert_int_equal(s.channel, VMM_CHANNEL_VSOCK);
	assert_int_equal(vmm_settings_set(&s, "channel", "auto", &err), 0);
	assert_int_equal(s.channel, -1);

	assert_int_equal(vmm_settings_set(&s, "cpus", "4", &err), 0);
	assert_int_equal(s.cpus, 4);
	assert_int_equal(vmm_settings_set(&s, "cpus", "64", &err), 0);
	assert_int_equal(s.cpus, VMM_CPUS_MAX);
	assert_int_equal(vmm_settings_set(&s, "cpus", "1", &err), 0);
	assert_int_equal(s.cpus, 1);

	assert_int_equal(vmm_settings_set(&s, "memory", "512M", &err), 0);
	assert_int_equal(s.memory_mib, 512);
	assert_int_equal(vmm_settings_set(&s, "memory", "2GiB", &err), 0);
	assert_int_equal(s.memory_mib, 2048);
	assert_int_equal(vmm_settings_set(&s, "memory", "64M", &err), 0);
	assert_int_equal(s.memory_mib, VMM_MEMORY_MIN_MIB);
	assert_int_equal(vmm_settings_set(&s, "memory", "1T", &err), 0);
	assert_int_equal(s.memory_mib, VMM_MEMORY_MAX_MIB);

	assert_int_equal(vmm_settings_set(&s, "tcg_cache", "8M", &err), 0);
	assert_int_equal(s.tcg_cache_mib, VMM_TCG_CACHE_MIN_MIB);
	assert_int_equal(vmm_settings_set(&s, "tcg_cache", "1G", &err), 0);
	assert_int_equal(s.tcg_cache_mib, VMM_TCG_CACHE_MAX_MIB);

	assert_int_equal(vmm_settings_set(&s, "boot_timeout", "5m", &err), 0);
	assert_int_equal(s.boot_timeout_ms, 300000);
	assert_int_equal(vmm_settings_set(&s, "boot_timeout", "500ms", &err), 0);
	assert_int_equal(s.boot_timeout_ms, 500);
	assert_int_equal(vmm_settings_set(&s, "boot_timeout", "1h", &err), 0);
	assert_int_equal(s.boot_timeout_ms, 3600000);
	assert_int_equal(vmm_settings_set(&s, "boot_timeout", "90", &err), 0);
	assert_int_equal(s.boot_timeout_ms, 90000); /* a bare number is seconds */

	assert_int_equal(vmm_settings_set(&s, "template", "false", &err), 0);
	assert_false(s.template);
	assert_int_equal(vmm_settings_set(&s, "template", "true", &err), 0);
	assert_true(s.template);
	assert_int_equal(vmm_settings_set(&s, "template_domain", "tenant-a", &err), 0);
	assert_string_equal(s.template_domain, "tenant-a");
	assert_int_equal(vmm_settings_set(&s, "template_domain", "ns.b_2", &err), 0);
	assert_string_equal(s.template_domain, "ns.b_2");

	assert_null(err); /* never set on success */
	vmm_settings_done(&s);
	assert_null(s.kernel);
	assert_null(s.qemu);
}

/* A bad value: -EINVAL, a message that names the value and what is wanted, and the
 * settings as they were. */
static void test_bad_values(void **state)
{
	static const struct {
		const char *key, *value, *want;
	} bad[] = {
	    {"cpus", "0", "a number from 1 to 64"},
	    {"cpus", "65", "a number from 1 to 64"},
	    {"cpus", "two", "a number from 1 to 64"},
	    {"cpus", "4x", "a number from 1 to 64"},
	    {"cpus", "", "a number from 1 to 64"},
	    {"cpus", "-1", "a number from 1 to 64"},
	    {"cpus", "18446744073709551617", "a number from 1 to 64"},
	    {"memory", "63M", "a size from 64M to 1T, like 512M"},
	    {"memory", "1025G", "a size from 64M to 1T, like 512M"},
	    {"memory", "512", "a size from 64M to 1T, like 512M"}, /* bytes */
	    {"memory", "lots", "a size from 64M to 1T, like 512M"},
	    {"tcg_cache", "7M", "a size from 8M to 1G, like 64M"},
	    {"tcg_cache", "2G", "a size from 8M to 1G, like 64M"},
	    {"tcg_cache", "32", "a size from 8M to 1G, like 64M"},
	    {"boot_timeout", "0", "a duration like 30s, 500ms, 5m (at most 1h)"},
	    {"boot_timeout", "61m", "a duration like 30s, 500ms, 5m (at most 1h)"},
	    {"boot_timeout", "soon", "a duration like 30s, 500ms, 5m (at most 1h)"},
	    {"boot_timeout", "", "a duration like 30s, 500ms, 5m (at most 1h)"},
	    {"machine", "pc", "microvm or q35"},
	    {"machine", "", "microvm or q35"},
	    {"accel", "hvf", "auto, kvm or tcg"},
	    {"accel", "KVM", "auto, kvm or tcg"},
	    {"channel", "tcp", "auto, serial or vsock"},
	    {"kernel", "vmlinuz", "an absolute path"},
	    {"kernel", "./guest/vmlinuz", "an absolute path"},
	    {"kernel", "", "an absolute path"},
	    {"initrd", "initramfs.cpio", "an absolute path"},
	    {"qemu", "", "a program name or path"},
	    {"template", "yes", "true or false"},
	    {"template", "", "true or false"},
	    {"template_domain", "", "1 to 64 of A-Z a-z 0-9 _ . - (not starting with '.')"},
	    {"template_domain", "../x", "1 to 64 of A-Z a-z 0-9 _ . - (not starting with '.')"},
	    {"template_domain", ".hidden", "1 to 64 of A-Z a-z 0-9 _ . - (not starting with '.')"},
	    {"template_domain", "a b", "1 to 64 of A-Z a-z 0-9 _ . - (not starting with '.')"},
	};
	struct vmm_settings s, before;
	(void)state;

	/* Start from non-defaults, strings set: "unchanged" then means something. */
	vmm_settings_init(&s);
	assert_int_equal(vmm_settings_set(&s, "kernel", "/k", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "initrd", "/i", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "qemu", "q", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "cpus", "3", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "memory", "768M", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "boot_timeout", "7s", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "machine", "q35", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "accel", "tcg", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "channel", "serial", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "template", "false", NULL), 0);
	assert_int_equal(vmm_settings_set(&s, "template_domain", "d1", NULL), 0);
	vmm_settings_copy(&before, &s);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct hull_error *err = NULL;
		_cleanup_free_ char *msg =
		    xasprintf("bad value '%s': want %s", bad[i].value, bad[i].want);
		int r = vmm_settings_set(&s, bad[i].key, bad[i].value, &err);
		if (r != -EINVAL || !err || strcmp(err->msg, msg) != 0)
			fail_msg("%s=%s: %d '%s', want -EINVAL '%s'", bad[i].key, bad[i].value, r,
			         err ? err->msg : "(no error)", msg);
		assert_int_equal(err->code, -EINVAL);
		hull_error_free(err);
		assert_settings_equal(&s, &before);
	}
	/* Without an error to fill in, the same answer. */
	assert_int_equal(vmm_settings_set(&s, "cpus", "0", NULL), -EINVAL);
	assert_settings_equal(&s, &before);
	vmm_settings_done(&s);
	vmm_settings_done(&before);
}

static void test_unknown_key(void **state)
{
	struct vmm_settings s, before;
	struct hull_error *err = NULL;
	(void)state;

	vmm_settings_init(&s);
	vmm_settings_init(&before);
	assert_int_equal(vmm_settings_set(&s, "gpus", "1", &err), -ENOENT);
	assert_non_null(err);
	assert_int_equal(err->code, -ENOENT);
	assert_string_equal(err->msg, "unknown setting 'gpus'");
	hull_error_free(err), err = NULL;
	/* Keys are exact: hull run's flag spelling is not a key. */
	assert_int_equal(vmm_settings_set(&s, "boot-timeout", "5s", &err), -ENOENT);
	hull_error_free(err), err = NULL;
	assert_int_equal(vmm_settings_set(&s, "CPUS", "2", &err), -ENOENT);
	hull_error_free(err), err = NULL;
	assert_settings_equal(&s, &before);
	vmm_settings_done(&s);
	vmm_settings_done(&before);
}

/* A copy owns its strings: the original can change or go away. */
static void test_copy_is_deep(void **state)
{
	struct vmm_settings src, dst, none;
	(void)state;

	vmm_settings_init(&src);
	assert_int_equal(vmm_settings_set(&src, "kernel", "/k", NULL), 0);
	assert_int_equal(vmm_settings_set(&src, "initrd", "/i", NULL), 0);
	assert_int_equal(vmm_settings_set(&src, "qemu", "q", NULL), 0);
	assert_int_equal(vmm_settings_set(&src, "cpus", "8", NULL), 0);
	vmm_settings_copy(&dst, &src);
	assert_settings_equal(&dst, &src);
	assert_ptr_not_equal(dst.kernel, src.kernel);
	assert_ptr_not_equal(dst.initrd, src.initrd);
	assert_ptr_not_equal(dst.qemu, src.qemu);

	assert_int_equal(vmm_settings_set(&src, "kernel", "/other", NULL), 0);
	assert_int_equal(vmm_settings_set(&src, "cpus", "2", NULL), 0);
	vmm_settings_done(&src);
	assert_string_equal(dst.kernel, "/k");
	assert_string_equal(dst.initrd, "/i");
	assert_string_equal(dst.qemu, "q");
	assert_int_equal(dst.cpus, 8);
	vmm_settings_done(&dst);

	/* NULL strings stay NULL. */
	vmm_settings_init(&src);
	vmm_settings_copy(&none, &src);
	assert_null(none.kernel);
	assert_null(none.initrd);
	assert_null(none.qemu);
	vmm_settings_done(&none);
	vmm_settings_done(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_set_each_key),
	    cmocka_unit_test(test_bad_values),   cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_copy_is_deep),
	};
	return cmocka_run_group_tests_name("vmm-settings", tests, NULL, NULL);
}
