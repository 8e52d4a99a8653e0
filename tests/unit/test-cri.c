/* SPDX-License-Identifier: MIT */
/* hull-cri's pure parts: the CRI log format (records, partial lines, the tail of a
 * stream) through a real FIFO, and cri.toml (every key, sections, arrays, errors with
 * file and line). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cri-log.h"
#include "cri.h"
#include "log.h"
#include "util.h"

static void test_log_format(void **state)
{
	char out[128];
	(void)state;
	/* 2026-12-02T06:14:31.000000042Z */
	size_t n = cri_log_format(out, 1796192071000000042LL, "stdout", false, "hi", 2);
	out[n] = '\0';
	assert_string_equal(out, "2026-12-02T06:14:31.000000042Z stdout F hi\n");
	n = cri_log_format(out, 0, "stderr", true, "", 0);
	out[n] = '\0';
	assert_string_equal(out, "1970-01-01T00:00:00.000000000Z stderr P \n");
}

static bool reader_eof;
static void on_eof(void *userdata)
{
	(void)userdata;
	reader_eof = true;
}

static void test_log_reader(void **state)
{
	char dir[] = "/tmp/test-cri-XXXXXX", path[64], fifo[64];
	struct event_loop *loop = event_loop_new();
	struct hull_error *err = NULL;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.log", dir);
	snprintf(fifo, sizeof(fifo), "%s/out", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int wfd = open(fifo, O_WRONLY | O_CLOEXEC);
	struct cri_log *l = cri_log_open(path, &err);
	assert_non_null(l);
	struct cri_log_reader *r = cri_log_reader_new(loop, rfd, l, "stdout", on_eof, NULL);

	/* Two lines in one write, a line split across writes, a line of 40000 bytes, a
	 * tail without a newline. */
	char *big = malloc(40001);
	memset(big, 'x', 40000);
	big[40000] = '\n';
	assert_int_equal(write(wfd, "one\ntwo\nthr", 11), 11);
	for (int i = 0; i < 5; i++)
		event_loop_once(loop, 10);
	assert_int_equal(write(wfd, "ee\n", 3), 3);
	assert_int_equal(write_all(wfd, big, 40001), 0);
	assert_int_equal(write(wfd, "tail", 4), 4);
	close(wfd);
	for (int i = 0; i < 50 && !reader_eof; i++)
		event_loop_once(loop, 10);
	assert_true(reader_eof);
	assert_true(cri_log_reader_done(r));

	char text[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n = read_all(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	const char *want[] = {"stdout F one", "stdout F two", "stdout F three", "stdout P ",
	                      "stdout P ",    "stdout F ",    "stdout F tail"};
	size_t lens[] = {0, 0, 0, CRI_LOG_MAX_LINE, CRI_LOG_MAX_LINE, 40000 - 2 * CRI_LOG_MAX_LINE,
	                 0};
	char *p = text;
	for (size_t i = 0; i < ELEMENTSOF(want); i++) {
		char *nl = strchr(p, '\n');
		assert_non_null(nl);
		*nl = '\0';
		/* "TIMESTAMP stdout F msg": the timestamp is 30 characters. */
		assert_int_equal(p[30], ' ');
		assert_memory_equal(p + 31, want[i], strlen(want[i]));
		if (lens[i])
			assert_int_equal(strlen(p + 31 + 9), lens[i]);
		p = nl + 1;
	}
	assert_int_equal(*p, '\0');

	/* Rotation: the file moved away, reopened at the same path. */
	char moved[80];
	snprintf(moved, sizeof(moved), "%s.1", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(cri_log_reopen(l, &err), 0);
	assert_int_equal(access(path, F_OK), 0);

	cri_log_reader_free(r);
	cri_log_unref(l);
	free(big);
	event_loop_free(loop);
	rm_tree(dir);
}

static void test_config(void **state)
{
	static const char text[] = "# hull-cri\n"
	                           "socket = \"/run/x/cri.sock\"\n"
	                           "cgroup_driver = systemd\n"
	                           "stream_address = \"0.0.0.0:10010\"\n"
	                           "log_level = debug\n"
	                           "[cni]\n"
	                           "conf_dir = \"/etc/x/net.d\"\n"
	                           "bin_dirs = [\"/a\", \"/b\"]\n"
	                           "[registry.mirrors.\"docker.io\"]\n"
	                           "endpoint = \"http://127.0.0.1:5000\"\n"
	                           "[registry.mirrors.\"quay.io\"]\n"
	                           "endpoint = \"https://m.example\"\n"
	                           "[registry]\n"
	                           "insecure = [\"r.local:5000\"]\n";
	struct cri_config c;
	struct hull_error *err = NULL;
	(void)state;

	cri_config_defaults(&c);
	assert_int_equal(cri_config_parse(text, strlen(text), "cri.toml", &c, &err), 0);
	assert_string_equal(c.socket, "/run/x/cri.sock");
	assert_string_equal(c.cgroup_driver, "systemd");
	assert_string_equal(c.stream_address, "0.0.0.0:10010");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(c.cni_conf_dir, "/etc/x/net.d");
	assert_string_equal(c.cni_bin_dirs[0], "/a");
	assert_string_equal(c.cni_bin_dirs[1], "/b");
	assert_null(c.cni_bin_dirs[2]);
	assert_string_equal(c.registry_mirrors,
	                    "docker.io=http://127.0.0.1:5000,quay.io=https://m.example");
	assert_string_equal(c.insecure_registries[0], "r.local:5000");
	assert_string_equal(c.root, CRI_DEFAULT_ROOT);
	cri_config_done(&c);

	static const struct {
		const char *text, *msg;
	} bad[] = {
	    {"sockett = \"/x\"\n", "cri.toml:1: unknown key 'sockett'"},
	    {"\nroot = \"relative\"\n", "cri.toml:2: root: 'relative' is not an absolute path"},
	    {"cgroup_driver = cgroupv2\n", "cri.toml:1: cgroup_driver: bad value 'cgroupv2'"},
	    {"[cni]\nbin_dirs = \"/a\"\n", "cri.toml:2: cni.bin_dirs: want an array"},
	    {"[cni\n", "cri.toml:1: bad section header"},
	    {"[registry.mirrors.\"x\"]\nendpoint = \"ftp://x\"\n",
	     "cri.toml:2: registry.mirrors.x.endpoint: want a quoted http://"},
	    {"[cni]\nbin_dirs = [\"/a\" \"/b\"]\n", "cri.toml:2: cni.bin_dirs: want an array"},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		cri_config_defaults(&c);
		assert_int_equal(
		    cri_config_parse(bad[i].text, strlen(bad[i].text), "cri.toml", &c, &err),
		    -EINVAL);
		if (strncmp(err->msg, bad[i].msg, strlen(bad[i].msg)) != 0)
			fail_msg("'%s': got '%s'", bad[i].text, err->msg);
		err = hull_error_free(err);
		cri_config_done(&c);
	}
}

static char logged[256];
static void catch_line(const char *line, size_t n, void *userdata)
{
	(void)userdata;
	snprintf(logged, sizeof(logged), "%.*s", (int)n, line);
}

static void test_journal_lines(void **state)
{
	(void)state;
	log_setup("cri", LOG_LEVEL_DEBUG);
	log_set_writer(catch_line, NULL);
	log_set_journal(true);
	log_warn("pod '%s' lost", "p");
	assert_string_equal(logged, "<4>warn: pod 'p' lost\n");
	log_debug("x");
	assert_string_equal(logged, "<7>debug: x\n");
	log_set_journal(false);
	log_info("y");
	assert_non_null(strstr(logged, "] info: y\n"));
	assert_memory_equal(logged, "cri[", 4);
	log_set_writer(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_format),
	    cmocka_unit_test(test_log_reader),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_journal_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
