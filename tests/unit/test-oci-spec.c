/* SPDX-License-Identifier: MIT */
/* The OCI config.json parser: every case of tests/unit/oci-cases.txt (the fuzzer's seed
 * corpus) parses or fails with the error it names; a good spec's fields come out typed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "container/oci-spec.h"
#include "util.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static char *slurp(const char *path, size_t *len)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void test_cases(void **state)
{
	_cleanup_fclose_ FILE *f = fopen(SRCDIR "/tests/unit/oci-cases.txt", "re");
	char line[1024];
	unsigned n = 0;
	(void)state;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t');
		struct hull_error *err = NULL;
		struct oci_spec spec;
		size_t len;
		if (line[0] == '#' || !tab)
			continue;
		*tab = '\0';
		char *expect = tab + 1;
		expect[strcspn(expect, "\n")] = '\0';
		_cleanup_free_ char *path =
		    xasprintf(SRCDIR "/tests/fuzz/corpus/oci-spec/%s", line);
		_cleanup_free_ char *json = slurp(path, &len);
		int r = oci_spec_parse(json, len, &spec, &err);
		if (strcmp(expect, "OK") == 0) {
			if (r < 0)
				fail_msg("%s: unexpected error: %s", line, err->msg);
			oci_spec_done(&spec);
		} else {
			if (r == 0)
				fail_msg("%s: parsed, want error '%s'", line, expect);
			if (!strstr(err->msg, expect))
				fail_msg("%s: error '%s', want '%s'", line, err->msg, expect);
			hull_error_free(err);
		}
		n++;
	}
	assert_true(n >= 30);
}

static void test_good_spec_fields(void **state)
{
	size_t len;
	_cleanup_free_ char *json =
	    slurp(SRCDIR "/tests/fuzz/corpus/oci-spec/good-full.json", &len);
	struct oci_spec s;
	(void)state;

	assert_int_equal(oci_spec_parse(json, len, &s, NULL), 0);
	assert_string_equal(s.args[2], "echo hi");
	assert_int_equal(s.umask, 18);
	assert_true(s.has_umask);
	assert_int_equal(s.n_additional_gids, 1);
	assert_true(s.no_new_privileges);
	assert_int_equal(s.oom_score_adj, 100);
	assert_int_equal(s.caps[OCI_CAP_BOUNDING], (1ull << 0) | (1ull << 5) | (1ull << 10));
	assert_int_equal(s.caps[OCI_CAP_AMBIENT], 0);
	assert_int_equal(s.n_rlimits, 1);
	assert_int_equal(s.rlimits[0].resource, RLIMIT_NOFILE);
	assert_true(s.root_readonly);
	assert_int_equal(s.n_mounts, 3);
	assert_int_equal(s.mounts[1].flags, MS_NOSUID | MS_STRICTATIME);
	assert_string_equal(s.mounts[1].data, "mode=755,size=65536k");
	assert_true(s.mounts[2].bind);
	assert_int_equal(s.mounts[2].flags, MS_BIND | MS_REC | MS_RDONLY);
	assert_int_equal(s.mounts[2].propagation, MS_PRIVATE | MS_REC);
	assert_int_equal(s.n_namespaces, 5);
	assert_int_equal(s.resources.memory_limit, 64 << 20);
	assert_int_equal(s.resources.cpu_quota, 50000);
	assert_int_equal(s.resources.pids_limit, 64);
	assert_non_null(s.seccomp);
	assert_int_equal(s.seccomp->n_rules, 2);
	assert_true(s.seccomp->rules[0].has_errno);
	assert_int_equal(s.seccomp->rules[1].args[0].value, 8);
	assert_string_equal(s.sysctl_keys[0], "net.ipv4.ip_forward");
	assert_string_equal(s.annotation_values[0], "container");
	oci_spec_done(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_good_spec_fields),
	};
	return cmocka_run_group_tests_name("oci-spec", tests, NULL, NULL);
}
