/* SPDX-License-Identifier: MIT */
/* The size-capped log of a detached job: rotation, the cap on disk, one file truncated
 * in place, and sinks that keep it open. */
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

#include "pod-log.h"
#include "util.h"

struct tmp {
	char dir[32];
	char *path; /* dir/job.log */
};

static int tmp_setup(void **state)
{
	struct tmp *t = xcalloc(1, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/hull-log-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	t->path = xasprintf("%s/job.log", t->dir);
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmp *t = *state;
	rm_tree(t->dir);
	free(t->path);
	free(t);
	return 0;
}

/* PATH, or PATH.i for i > 0. */
static char *nth(const struct tmp *t, unsigned i)
{
	return i ? xasprintf("%s.%u", t->path, i) : xstrdup(t->path);
}

/* The file's size, or -1 when it does not exist. */
static long long file_size(const struct tmp *t, unsigned i)
{
	_cleanup_free_ char *p = nth(t, i);
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* The file's content as a string (the tests write text). */
static char *file_text(const struct tmp *t, unsigned i)
{
	_cleanup_free_ char *p = nth(t, i);
	char buf[4096];
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	assert_true(fd >= 0);
	n = read_all(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void assert_file(const struct tmp *t, unsigned i, const char *want)
{
	_cleanup_free_ char *got = file_text(t, i);
	assert_string_equal(got, want);
}

static void put(struct logfile *l, const char *s)
{
	logfile_write(l, s, strlen(s));
}

/* PATH is written until the next write would take it past max_size, then PATH.1 becomes
 * PATH.2 (up to max_files - 1; the oldest is dropped) and PATH starts over. */
static void test_rotation(void **state)
{
	struct tmp *t = *state;
	struct hull_error *err = NULL;
	struct logfile *l = logfile_open(t->path, 10, 3, &err);
	assert_non_null(l);
	assert_null(err);

	put(l, "aaaaa");
	put(l, "bbbbb"); /* exactly max_size: still one file */
	assert_file(t, 0, "aaaaabbbbb");
	assert_int_equal(file_size(t, 1), -1);

	put(l, "c");
	assert_file(t, 0, "c");
	assert_file(t, 1, "aaaaabbbbb");
	assert_int_equal(file_size(t, 2), -1);

	put(l, "ddddddddd"); /* 1 + 9: fits */
	put(l, "eeeeeee");
	assert_file(t, 0, "eeeeeee");
	assert_file(t, 1, "cddddddddd");
	assert_file(t, 2, "aaaaabbbbb");

	put(l, "ffff"); /* the oldest goes, never a PATH.3 */
	assert_file(t, 0, "ffff");
	assert_file(t, 1, "eeeeeee");
	assert_file(t, 2, "cddddddddd");
	assert_int_equal(file_size(t, 3), -1);
	logfile_unref(l);

	/* Opened again, it appends and counts what is there. */
	l = logfile_open(t->path, 10, 3, NULL);
	assert_non_null(l);
	put(l, "gggggg"); /* 4 + 6 */
	assert_file(t, 0, "ffffgggggg");
	put(l, "h");
	assert_file(t, 0, "h");
	assert_file(t, 1, "ffffgggggg");
	assert_file(t, 2, "eeeeeee");
	logfile_unref(l);
}

static void test_open_error(void **state)
{
	struct tmp *t = *state;
	struct hull_error *err = NULL;
	_cleanup_free_ char *path = xasprintf("%s/missing/job.log", t->dir);

	assert_null(logfile_open(path, 10, 3, &err));
	assert_non_null(err);
	assert_int_equal(err->code, -ENOENT);
	assert_non_null(strstr(err->msg, path));
	hull_error_free(err);
}

static unsigned long long on_disk(const struct tmp *t, unsigned max_files)
{
	unsigned long long total = 0;
	for (unsigned i = 0; i < max_files; i++) {
		long long n = file_size(t, i);
		if (n > 0)
			total += (unsigned long long)n;
	}
	assert_int_equal(file_size(t, max_files), -1);
	return total;
}

/* Whatever the write sizes (up to max_size each), the files hold at most
 * max_size * max_files bytes plus the write in flight, and each file at most max_size. */
static void test_cap_on_disk(void **state)
{
	struct tmp *t = *state;
	const unsigned max_size = 1000, max_files = 4;
	static char chunk[1000];
	unsigned seed = 1;
	struct logfile *l = logfile_open(t->path, max_size, max_files, NULL);

	assert_non_null(l);
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 2000; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % max_size;
		logfile_write(l, chunk, n);
		assert_true(on_disk(t, max_files) <= (unsigned long long)max_size * max_files + n);
		for (unsigned f = 0; f < max_files; f++)
			assert_true(file_size(t, f) <= (long long)max_size);
	}
	/* It did rotate all the way. */
	assert_true(file_size(t, max_files - 1) > 0);
	logfile_unref(l);
}

/* Writes larger than max_size itself (a stream hands the sink its whole buffer, up to
 * the 4 MiB window, and --log-opt max-size goes down to 4K): the cap must hold too. */
static void test_cap_with_large_writes(void **state)
{
	struct tmp *t = *state;
	const unsigned max_size = 4096, max_files = 3;
	const size_t n = 64u << 10;
	struct logfile *l;

	_cleanup_free_ char *chunk = xmalloc(n);
	l = logfile_open(t->path, max_size, max_files, NULL);
	assert_non_null(l);
	memset(chunk, 'y', n);
	for (int i = 0; i < 5; i++) {
		logfile_write(l, chunk, n);
		assert_true(on_disk(t, max_files) <= (unsigned long long)max_size * max_files + n);
	}
	logfile_unref(l);
}

/* max_files = 1: no PATH.1, the one file starts over in place. */
static void test_one_file_truncates(void **state)
{
	struct tmp *t = *state;
	struct logfile *l = logfile_open(t->path, 8, 1, NULL);

	assert_non_null(l);
	put(l, "12345678");
	assert_file(t, 0, "12345678");
	put(l, "abc");
	assert_file(t, 0, "abc");
	put(l, "defgh");
	assert_file(t, 0, "abcdefgh");
	put(l, "i");
	assert_file(t, 0, "i");
	assert_int_equal(file_size(t, 1), -1);
	logfile_unref(l);
}

/* Sinks (a job's stdout and stderr) write through, and keep the logfile alive after the
 * opener lets go of it; the last close frees it (as ASan checks). */
static void test_sink_keeps_it_alive(void **state)
{
	struct tmp *t = *state;
	struct logfile *l = logfile_open(t->path, 16, 2, NULL);
	struct stream_sink *out, *errs;

	assert_non_null(l);
	out = logfile_sink(l);
	errs = logfile_sink(l);
	assert_non_null(out);
	assert_int_equal(out->fd, -1); /* never -EAGAIN: nothing to poll */
	put(l, "start\n");
	assert_null(logfile_unref(l));

	assert_int_equal(out->write(out, "out\n", 4), 4);
	assert_int_equal(errs->write(errs, "err\n", 4), 4);
	assert_file(t, 0, "start\nout\nerr\n");
	errs->close(errs);
	/* Still alive through the other sink, and still rotating. */
	assert_int_equal(out->write(out, "more output\n", 12), 12);
	assert_file(t, 0, "more output\n");
	assert_file(t, 1, "start\nout\nerr\n");
	out->close(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rotation, tmp_setup, tmp_teardown),
	    cmocka_unit_test_setup_teardown(test_open_error, tmp_setup, tmp_teardown),
	    cmocka_unit_test_setup_teardown(test_cap_on_disk, tmp_setup, tmp_teardown),
	    cmocka_unit_test_setup_teardown(test_cap_with_large_writes, tmp_setup, tmp_teardown),
	    cmocka_unit_test_setup_teardown(test_one_file_truncates, tmp_setup, tmp_teardown),
	    cmocka_unit_test_setup_teardown(test_sink_keeps_it_alive, tmp_setup, tmp_teardown),
	};
	return cmocka_run_group_tests_name("logfile", tests, NULL, NULL);
}
