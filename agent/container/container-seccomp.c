/* SPDX-License-Identifier: MIT */
/* linux.seccomp compiled with libseccomp and loaded right before execve. */
#include <seccomp.h>
#include <string.h>

#include "container-internal.h"
#include "util.h"

static int action_of(const char *name, bool has_errno, uint32_t errno_ret, uint32_t *ret)
{
	if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
		*ret = SCMP_ACT_ALLOW;
	else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
		*ret = SCMP_ACT_ERRNO(has_errno ? errno_ret : EPERM);
	else if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
		*ret = SCMP_ACT_KILL_THREAD;
	else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
		*ret = SCMP_ACT_KILL_PROCESS;
	else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
		*ret = SCMP_ACT_TRAP;
	else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
		*ret = SCMP_ACT_TRACE(has_errno ? errno_ret : EPERM);
	else if (strcmp(name, "SCMP_ACT_LOG") == 0)
		*ret = SCMP_ACT_LOG;
	else
		return -EINVAL;
	return 0;
}

static const enum scmp_compare ops[_OCI_OP_MAX] = {
    [OCI_OP_NE] = SCMP_CMP_NE,
    [OCI_OP_LT] = SCMP_CMP_LT,
    [OCI_OP_LE] = SCMP_CMP_LE,
    [OCI_OP_EQ] = SCMP_CMP_EQ,
    [OCI_OP_GE] = SCMP_CMP_GE,
    [OCI_OP_GT] = SCMP_CMP_GT,
    [OCI_OP_MASKED_EQ] = SCMP_CMP_MASKED_EQ,
};

static void ctx_release(scmp_filter_ctx *c)
{
	if (*c)
		seccomp_release(*c);
}

int container_seccomp_load(const struct oci_seccomp *sc, struct hull_error **err)
{
	_cleanup_(ctx_release) scmp_filter_ctx ctx = NULL;
	uint32_t def;
	int r;

	if (!sc)
		return 0;
	if (action_of(sc->default_action, sc->has_default_errno, sc->default_errno, &def) < 0)
		return hull_error_set(err, -EINVAL, "seccomp: default action '%s'",
		                      sc->default_action);
	ctx = seccomp_init(def);
	if (!ctx)
		return hull_error_set(err, -ENOMEM, "seccomp: init");
	/* libseccomp sets no_new_privs itself when it loads a filter; the spec's
	 * noNewPrivileges decides that (container_set_no_new_privs), as with runc. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r < 0)
		return hull_error_set_errno(err, r, "seccomp: no_new_privs attribute");
	for (size_t i = 0; sc->architectures && sc->architectures[i]; i++) {
		/* "SCMP_ARCH_X86_64" -> "x86_64" as libseccomp names it. */
		_cleanup_free_ char *name = xstrdup(sc->architectures[i] + strlen("SCMP_ARCH_"));
		for (char *c = name; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
		uint32_t arch = seccomp_arch_resolve_name(name);
		if (arch == 0)
			continue; /* an architecture this libseccomp does not know */
		r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST)
			return hull_error_set_errno(err, r, "seccomp: architecture '%s'",
			                            sc->architectures[i]);
	}
	for (size_t i = 0; sc->flags && sc->flags[i]; i++) {
		if (strcmp(sc->flags[i], "SECCOMP_FILTER_FLAG_TSYNC") == 0)
			r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
		else if (strcmp(sc->flags[i], "SECCOMP_FILTER_FLAG_LOG") == 0)
			r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
		else if (strcmp(sc->flags[i], "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
			r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1);
		else
			r = 0;
		if (r < 0)
			return hull_error_set_errno(err, r, "seccomp: flag '%s'", sc->flags[i]);
	}
	for (size_t i = 0; i < sc->n_rules; i++) {
		const struct oci_seccomp_rule *rule = &sc->rules[i];
		struct scmp_arg_cmp cmp[6];
		uint32_t act;

		if (action_of(rule->action_name, rule->has_errno, rule->errno_ret, &act) < 0)
			return hull_error_set(err, -EINVAL, "seccomp: syscalls[%zu]: action", i);
		if (act == def)
			continue; /* libseccomp refuses rules that repeat the default */
		for (size_t a = 0; a < rule->n_args; a++)
			cmp[a] = (struct scmp_arg_cmp){.arg = rule->args[a].index,
			                               .op = ops[rule->args[a].op],
			                               .datum_a = rule->args[a].value,
			                               .datum_b = rule->args[a].value_two};
		for (size_t n = 0; rule->names[n]; n++) {
			int nr = seccomp_syscall_resolve_name(rule->names[n]);
			if (nr == __NR_SCMP_ERROR)
				continue; /* unknown to this kernel/arch: nothing to filter */
			r = seccomp_rule_add_array(ctx, act, nr, (unsigned)rule->n_args, cmp);
			if (r < 0)
				return hull_error_set_errno(err, r, "seccomp: syscalls[%zu] '%s'",
				                            i, rule->names[n]);
		}
	}
	/* Security: from here on the process runs under the spec's filter. */
	r = seccomp_load(ctx);
	if (r < 0)
		return hull_error_set_errno(err, r, "seccomp: load");
	return 0;
}
