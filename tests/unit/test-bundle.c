/* SPDX-License-Identifier: MIT */
/* linux.cgroupsPath as the shim joins it: cgroupfs paths as they are, systemd's
 * slice:prefix:name where systemd lays the unit out, anything else refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bundle.h"
#include "util.h"

static void expect_path(const char *in, const char *want)
{
	_cleanup_free_ char *got = bundle_cgroup_path(in);
	if (!want) {
		if (got)
			fail_msg("'%s' gave '%s', want a refusal", in ? in : "(null)", got);
		return;
	}
	if (!got)
		fail_msg("'%s' refused, want '%s'", in, want);
	assert_string_equal(got, want);
}

static void test_cgroupfs(void **state)
{
	(void)state;
	expect_path("/kubepods/besteffort/pod1/abc", "/kubepods/besteffort/pod1/abc");
	expect_path("/hull-test-1/abc", "/hull-test-1/abc");
	expect_path("/a/../b", NULL);
	expect_path("/a/./b", NULL);
	expect_path("/..", NULL);
	expect_path("relative/path", NULL);
	expect_path("", NULL);
	expect_path(NULL, NULL);
}

static void test_systemd(void **state)
{
	(void)state;
	/* What containerd builds for a kubelet with the systemd driver. */
	expect_path("kubepods-besteffort-pod1234.slice:cri-containerd:abc",
	            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/"
	            "cri-containerd-abc.scope");
	expect_path("kubepods.slice:cri-containerd:abc",
	            "/kubepods.slice/cri-containerd-abc.scope");
	/* No slice: system.slice; the root slice; no prefix; a name that is a slice. */
	expect_path(":cri-containerd:abc", "/system.slice/cri-containerd-abc.scope");
	expect_path("-.slice:p:abc", "/p-abc.scope");
	expect_path("machine.slice::abc", "/machine.slice/abc.scope");
	expect_path("ignored.slice::a-b.slice", "/a.slice/a-b.slice");
	expect_path("-.slice::-.slice", "");
	/* What systemd would refuse as a slice name or unit, and anything past it. */
	expect_path("kubepods--x.slice:p:abc", NULL);
	expect_path("-kubepods.slice:p:abc", NULL);
	expect_path("kubepods-.slice:p:abc", NULL);
	expect_path("kube.pods.slice:p:abc", NULL);
	expect_path("kubepods.service:p:abc", NULL);
	expect_path(".slice:p:abc", NULL);
	expect_path("kubepods.slice:p:../../etc", NULL);
	expect_path("kubepods.slice:p/q:abc", NULL);
	expect_path("kubepods.slice:p:", NULL);
	expect_path("kubepods.slice:p:a:b", NULL);
	expect_path("kubepods.slice:abc", NULL);
	expect_path("kubepods.slice", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cgroupfs),
	    cmocka_unit_test(test_systemd),
	};
	return cmocka_run_group_tests_name("bundle", tests, NULL, NULL);
}
