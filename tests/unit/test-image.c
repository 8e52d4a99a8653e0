/* SPDX-License-Identifier: MIT */
/* Image references as docker spells them, manifests and indexes, image configs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "image.h"
#include "util.h"

static void check_ref(const char *in, const char *want)
{
	struct image_ref r;
	struct hull_error *err = NULL;
	int rc = image_ref_parse(in, &r, &err);
	if (!want) {
		assert_true(rc < 0);
		assert_non_null(err);
		hull_error_free(err);
		return;
	}
	if (rc < 0)
		fail_msg("%s: %s", in, err->msg);
	char *s = image_ref_string(&r);
	assert_string_equal(s, want);
	free(s);
	image_ref_done(&r);
}

#define D "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_refs(void **state)
{
	(void)state;
	check_ref("busybox", "docker.io/library/busybox:latest");
	check_ref("busybox:1.36", "docker.io/library/busybox:1.36");
	check_ref("user/app", "docker.io/user/app:latest");
	check_ref("localhost:5000/a/b:t", "localhost:5000/a/b:t");
	check_ref("localhost/app", "localhost/app:latest");
	check_ref("ghcr.io/o/r@" D, "ghcr.io/o/r@" D);
	check_ref("ghcr.io/o/r:v1@" D, "ghcr.io/o/r:v1@" D);
	check_ref("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest");
	check_ref("", NULL);
	check_ref("Busybox", NULL);            /* repositories are lowercase */
	check_ref("busybox:", NULL);           /* empty tag */
	check_ref("busybox:-x", NULL);         /* tags do not start with '-' */
	check_ref("busybox@sha256:abc", NULL); /* short digest */
	check_ref("a//b", NULL);
	check_ref("a/../b", NULL);
	check_ref("bad host/x", NULL);
}

static void test_manifest_and_index(void **state)
{
	struct image_manifest m;
	struct hull_error *err = NULL;
	const char *index = "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_OCI_INDEX "\","
	                    "\"manifests\":[{\"mediaType\":\"" MEDIA_OCI_MANIFEST "\","
	                    "\"digest\":\"" D "\",\"size\":10,\"platform\":{\"os\":\"linux\","
	                    "\"architecture\":\"arm64\"}},{\"digest\":\"" D "\",\"size\":11,"
	                    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	const char *man = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MEDIA_DOCKER_CONFIG
	                  "\",\"digest\":\"" D "\",\"size\":1},\"layers\":[{\"mediaType\":"
	                  "\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"digest\":\"" D
	                  "\",\"size\":2}]}";
	(void)state;
	assert_int_equal(image_parse_manifest(index, strlen(index), &m, &err), 0);
	assert_true(m.is_index);
	assert_int_equal(image_index_select(&m, "linux", "amd64")->size, 11);
	assert_null(image_index_select(&m, "linux", "s390x"));
	image_manifest_done(&m);
	assert_int_equal(image_parse_manifest(man, strlen(man), &m, &err), 0);
	assert_false(m.is_index);
	assert_int_equal(m.n_entries, 2);
	assert_int_equal(m.entries[1].size, 2);
	image_manifest_done(&m);
	/* Refusals say which field. */
	const char *bad[][2] = {
	    {"{\"schemaVersion\":1}", "schemaVersion"},
	    {"{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:x\",\"size\":1},\"layers\":[]}",
	     "manifest.config.digest"},
	    {"{\"schemaVersion\":2,\"config\":{\"digest\":\"" D "\",\"size\":-1},\"layers\":[]}",
	     "manifest.config.size"},
	    {"{\"schemaVersion\":2,\"config\":{\"digest\":\"" D "\",\"size\":1},\"layers\":[{"
	     "\"mediaType\":\"text/plain\",\"digest\":\"" D "\",\"size\":1}]}",
	     "manifest.layers[0].mediaType"},
	    {"{\"schemaVersion\":2,\"manifests\":{}}", "manifest.manifests"},
	    {"[1]", "not a JSON object"},
	    {"{\"schemaVersion\":2} x", "text after the value"},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_true(image_parse_manifest(bad[i][0], strlen(bad[i][0]), &m, &err) < 0);
		if (!strstr(err->msg, bad[i][1]))
			fail_msg("'%s': error '%s' lacks '%s'", bad[i][0], err->msg, bad[i][1]);
		hull_error_free(err), err = NULL;
	}
}

static void test_config(void **state)
{
	struct image_config c;
	struct hull_error *err = NULL;
	const char *cfg = "{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Entrypoint\":"
	                  "[\"/bin/sh\",\"-c\"],\"Cmd\":[\"echo hi\"],\"Env\":[\"A=1\"],"
	                  "\"WorkingDir\":\"/w\",\"User\":\"nobody\",\"StopSignal\":\"SIGQUIT\"},"
	                  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D "\"]}}";
	(void)state;
	assert_int_equal(image_parse_config(cfg, strlen(cfg), &c, &err), 0);
	assert_string_equal(c.entrypoint[1], "-c");
	assert_string_equal(c.cmd[0], "echo hi");
	assert_string_equal(c.env[0], "A=1");
	assert_string_equal(c.workdir, "/w");
	assert_string_equal(c.user, "nobody");
	assert_string_equal(c.stop_signal, "SIGQUIT");
	assert_int_equal(c.n_diff_ids, 1);
	image_config_done(&c);
	const char *bad = "{\"config\":{\"Cmd\":\"echo\"},\"rootfs\":{\"diff_ids\":[]}}";
	assert_true(image_parse_config(bad, strlen(bad), &c, &err) < 0);
	assert_non_null(strstr(err->msg, "config.config.Cmd"));
	hull_error_free(err);
}

static void test_challenge(void **state)
{
	struct auth_challenge ch;
	(void)state;
	assert_int_equal(
	    image_parse_challenge("Bearer realm=\"https://auth.io/token\",service=\"reg\","
	                          "scope=\"repository:a/b:pull\"",
	                          &ch),
	    0);
	assert_string_equal(ch.realm, "https://auth.io/token");
	assert_string_equal(ch.service, "reg");
	assert_string_equal(ch.scope, "repository:a/b:pull");
	/* A realm that is not http(s), or no bearer challenge at all, is refused. */
	assert_true(image_parse_challenge("Bearer realm=\"file:///etc/passwd\"", &ch) < 0);
	assert_true(image_parse_challenge("Basic realm=\"x\"", &ch) < 0);
}

static void test_sha256(void **state)
{
	char *d = sha256_of("abc", 3);
	(void)state;
	assert_string_equal(
	    d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(digest_is_valid(d));
	free(d);
	assert_false(digest_is_valid(
	    "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refs),      cmocka_unit_test(test_manifest_and_index),
	    cmocka_unit_test(test_config),    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_challenge),
	};
	return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}
