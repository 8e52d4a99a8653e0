/* SPDX-License-Identifier: MIT */
/* Parsers of user input (sizes, durations, names) and the small helpers beside them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "util.h"

static void test_parse_size(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(parse_size("1g", &v), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("-1M", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("1MM", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(parse_size("17179869184T", &v), -ERANGE);
}

static void test_parse_duration(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(parse_duration_ms("90", &v), 0);
	assert_int_equal(v, 90000);
	assert_int_equal(parse_duration_ms("1.5s", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("500ms", &v), 0);
	assert_int_equal(v, 500);
	assert_int_equal(parse_duration_ms("1h30m", &v), 0);
	assert_int_equal(v, 5400000);
	assert_int_equal(parse_duration_ms("", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("soon", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("5d", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("-3s", &v), -EINVAL);
}

static void test_error_wrapping(void **state)
{
	struct hull_error *err = NULL;
	(void)state;
	assert_int_equal(
	    hull_error_set_errno(&err, -ENOENT, "mount volume '%s' at '%s'", "data", "/srv"),
	    -ENOENT);
	/* Set exactly once: a second set does not overwrite the first cause. */
	hull_error_set(&err, -EIO, "later");
	hull_error_prefix(&err, "create container '%s'", "web");
	assert_string_equal(
	    err->msg,
	    "create container 'web': mount volume 'data' at '/srv': No such file or directory");
	assert_int_equal(err->code, -ENOENT);
	hull_error_free(err);
}

static void test_id_rule(void **state)
{
	(void)state;
	assert_true(id_is_valid("web-1.prod_a"));
	assert_true(
	    id_is_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(
	    id_is_valid("01234567890123456789012345678901234567890123456789012345678901234"));
	assert_false(id_is_valid(""));
	assert_false(id_is_valid(".hidden"));
	assert_false(id_is_valid("../x"));
	assert_false(id_is_valid("a/b"));
	assert_false(id_is_valid("a b"));
}

static void test_subpath_rule(void **state)
{
	(void)state;
	assert_true(subpath_is_valid("c1/rootfs"));
	assert_true(subpath_is_valid("plain"));
	assert_true(subpath_is_valid("a/b/c/d/e/f/g/h"));
	assert_false(subpath_is_valid("a/b/c/d/e/f/g/h/i"));
	assert_false(subpath_is_valid(""));
	assert_false(subpath_is_valid("/abs"));
	assert_false(subpath_is_valid("c1/"));
	assert_false(subpath_is_valid("c1//rootfs"));
	assert_false(subpath_is_valid("c1/../etc"));
	assert_false(subpath_is_valid("c1/./x"));
}

static void test_fnv1a(void **state)
{
	(void)state;
	/* The published FNV-1a 64 vectors; continuing equals hashing at once. */
	assert_true(fnv1a(FNV1A_INIT, "", 0) == FNV1A_INIT);
	assert_true(fnv1a(FNV1A_INIT, "a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(fnv1a(FNV1A_INIT, "foobar", 6) == 0x85944171f73967e8ull);
	assert_true(fnv1a(fnv1a(FNV1A_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ull);
}

static void test_find_program(void **state)
{
	_cleanup_free_ char *sh = find_program("sh");
	_cleanup_free_ char *none = find_program("hull-no-such-program");
	_cleanup_free_ char *missing = find_program("/no/such/dir/prog");
	(void)state;
	assert_non_null(sh);
	assert_int_equal(sh[0], '/');
	assert_null(none);
	assert_null(missing);
}

static void test_mounts_below(void **state)
{
	_cleanup_strv_free_ char **all = mounts_below("/");
	_cleanup_strv_free_ char **proc = mounts_below("/proc/self/fd");
	bool has_proc = false;
	(void)state;
	for (char **p = all; p && *p; p++)
		has_proc |= strcmp(*p, "/proc") == 0;
	assert_true(has_proc);
	assert_null(proc); /* nothing is mounted below a process's fd directory */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size),     cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_error_wrapping), cmocka_unit_test(test_id_rule),
	    cmocka_unit_test(test_subpath_rule),   cmocka_unit_test(test_fnv1a),
	    cmocka_unit_test(test_find_program),   cmocka_unit_test(test_mounts_below),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
