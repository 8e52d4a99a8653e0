/* SPDX-License-Identifier: MIT */
/* The template store (sandbox-template.c): keys, the lock, a build without QEMU (the test
 * writes the device state QEMU would), the checks that throw a damaged template away,
 * failure records, listing and pruning. Every test has a state root of its own under
 * /tmp, removed after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "sandbox-template.h"
#include "util.h"
#include "vmm.h"

#define STATE_BYTES "QEVM device state standing in for QEMU's"
#define MEMORY_MIB 64

struct fixture {
	char *tmp;                       /* mkdtemp: everything below it */
	char *root;                      /* the state root */
	char *kernel, *initrd, *qemu;    /* stand-ins: files that exist */
	char *kernel2, *initrd2, *qemu2; /* others like them */
	struct vmm_config vm;
	struct template_spec spec;
};

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
	close(fd);
}

/* The whole of a small file, NUL-terminated. Caller frees. */
static char *read_file(const char *path)
{
	char *buf = xmalloc(65536);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read_all(fd, buf, 65535);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* A file's mtime set to sec (atime unchanged). */
static void set_mtime(const char *path, time_t sec)
{
	const struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = sec, .tv_nsec = 0}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->tmp = xstrdup("/tmp/hull-test-template-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	f->root = xasprintf("%s/state", f->tmp);
	assert_int_equal(mkdir(f->root, 0700), 0);
	f->kernel = xasprintf("%s/vmlinuz", f->tmp);
	f->initrd = xasprintf("%s/initramfs.cpio", f->tmp);
	f->qemu = xasprintf("%s/qemu-system-x86_64", f->tmp);
	f->kernel2 = xasprintf("%s/vmlinuz-2", f->tmp);
	f->initrd2 = xasprintf("%s/initramfs-2.cpio", f->tmp);
	f->qemu2 = xasprintf("%s/qemu-other", f->tmp);
	write_file(f->kernel, "a kernel", 0644);
	write_file(f->initrd, "an initramfs", 0644);
	write_file(f->qemu, "#!/bin/sh\nexit 0\n", 0755);
	write_file(f->kernel2, "another kernel", 0644);
	write_file(f->initrd2, "another initramfs", 0644);
	write_file(f->qemu2, "#!/bin/sh\nexit 1\n", 0755);
	f->vm = (struct vmm_config){
	    .qemu = f->qemu,
	    .kernel = f->kernel,
	    .initrd = f->initrd,
	    .machine = VMM_MACHINE_MICROVM,
	    .accel = VMM_ACCEL_TCG,
	    .channel = VMM_CHANNEL_SERIAL,
	    .cpus = 1,
	    .memory_mib = MEMORY_MIB,
	};
	f->spec = (struct template_spec){
	    .root = f->root,
	    .domain = "test",
	    .vm = &f->vm,
	    .n_disks = 2,
	    .n_nics = 1,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_tree(f->tmp);
	assert_false(exists(f->tmp));
	free(f->tmp);
	free(f->root);
	free(f->kernel);
	free(f->initrd);
	free(f->qemu);
	free(f->kernel2);
	free(f->initrd2);
	free(f->qemu2);
	free(f);
	return 0;
}

/* ROOT/.templates/NAME, or ROOT/.templates/ID/NAME. Caller frees. */
static char *store_path(const struct fixture *f, const char *id, const char *name)
{
	if (!name)
		return xasprintf("%s/.templates/%s", f->root, id);
	return xasprintf("%s/.templates/%s/%s", f->root, id, name);
}

static char *spec_id(const struct template_spec *s)
{
	char *key = NULL, *id = NULL;
	assert_int_equal(template_key(s, &key, &id, NULL), 0);
	free(key);
	return id;
}

/* Does the store hold an entry whose name starts with prefix? */
static bool store_has_prefix(const struct fixture *f, const char *prefix)
{
	_cleanup_free_ char *store = template_store_path(f->root);
	DIR *d = opendir(store);
	struct dirent *de;
	bool found = false;

	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			found = true;
	if (d)
		closedir(d);
	return found;
}

/* A build up to (not including) commit or abort, with the state written. */
static struct template_build *begin(const struct template_spec *s, const char *state_bytes)
{
	struct template_build *b = NULL;
	struct hull_error *err = NULL;
	_cleanup_free_ char *id = spec_id(s);
	int lock_fd = -1;

	assert_int_equal(template_lock(s->root, id, &lock_fd, &err), 1);
	assert_true(lock_fd >= 0);
	assert_int_equal(template_build_begin(s, lock_fd, &b, &err), 0);
	assert_null(err);
	assert_non_null(b);
	if (state_bytes)
		assert_int_equal(write_all(b->state_fd, state_bytes, strlen(state_bytes)), 0);
	return b;
}

/* A whole build; returns the id. Caller frees. */
static char *build(const struct template_spec *s)
{
	struct template_build *b = begin(s, STATE_BYTES);
	struct hull_error *err = NULL;
	char *id = xstrdup(b->id);

	assert_int_equal(template_build_commit(b, &err), 0);
	assert_null(err);
	return id;
}

/* template_open and expect "none". */
static void assert_none(const struct template_spec *s)
{
	struct template *t = NULL;
	struct hull_error *err = NULL;

	assert_int_equal(template_open(s, &t, &err), 0);
	assert_null(t);
	assert_null(err);
}

/* ---- keys ----------------------------------------------------------------------------- */

static void test_key_stable(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *key1 = NULL, *id1 = NULL, *key2 = NULL, *id2 = NULL;
	_cleanup_free_ char *kernel = realpath(f->kernel, NULL);
	_cleanup_free_ char *qemu = realpath(f->qemu, NULL);
	_cleanup_free_ char *kernel_line = NULL, *qemu_line = NULL;
	static const char *const lines[] = {
	    "domain=test\n", "machine=microvm\n", "accel=tcg\n", "channel=serial\n",
	    "cpus=1\n",      "memory_mib=64\n",   "disks=2\n",   "nics=1\n",
	    "net_user=0\n",  "vhost_net=0\n",     "debug=0\n"};
	struct template_spec copy = f->spec;
	struct vmm_config vm = f->vm;
	char domain[] = "test";

	assert_int_equal(template_key(&f->spec, &key1, &id1, NULL), 0);
	/* The same values elsewhere (not the same pointers) give the same key, and what a
	 * clone does not share with its template (name, state dir, cid) is not in it. */
	vm.name = "another-sandbox";
	vm.state_dir = "/run/hull/elsewhere";
	vm.vsock_cid = 1234;
	vm.sandbox = true;
	copy.vm = &vm;
	copy.domain = domain;
	assert_int_equal(template_key(&copy, &key2, &id2, NULL), 0);
	assert_string_equal(key1, key2);
	assert_string_equal(id1, id2);

	/* The id: 16 lower-case hex digits (a name template_remove accepts). */
	assert_int_equal(strlen(id1), 16);
	assert_int_equal(strspn(id1, "0123456789abcdef"), 16);

	/* The key's text: "name=value" lines, files by identity. */
	assert_true(strncmp(key1, "format=2\nhull=" HULL_VERSION "\n", 15 + strlen(HULL_VERSION)) ==
	            0);
	for (size_t i = 0; i < ELEMENTSOF(lines); i++)
		assert_non_null(strstr(key1, lines[i]));
	kernel_line = xasprintf("\nkernel=%s ", kernel);
	qemu_line = xasprintf("\nqemu=%s ", qemu);
	assert_non_null(strstr(key1, kernel_line));
	assert_non_null(strstr(key1, qemu_line));
	assert_int_equal(key1[strlen(key1) - 1], '\n');
}

static void test_key_get(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *key = NULL, *id = NULL;
	_cleanup_free_ char *domain = NULL, *mem = NULL, *debug = NULL;

	assert_int_equal(template_key(&f->spec, &key, &id, NULL), 0);
	domain = template_key_get(key, "domain");
	mem = template_key_get(key, "memory_mib");
	debug = template_key_get(key, "debug"); /* the last line */
	assert_string_equal(domain, "test");
	assert_string_equal(mem, "64");
	assert_string_equal(debug, "0");
	/* A prefix of a name is not the name; unknown names and no key give NULL. */
	assert_null(template_key_get(key, "dom"));
	assert_null(template_key_get(key, "memory"));
	assert_null(template_key_get(key, "nothing"));
	assert_null(template_key_get(NULL, "domain"));
	assert_null(template_key_get("domain", "domain"));
}

/* Each thing a clone must share with its template gives another id. */
static void test_key_changes(void **state)
{
	struct fixture *f = *state;
	enum {
		CHANGE_DOMAIN,
		CHANGE_CPUS,
		CHANGE_MEMORY,
		CHANGE_MACHINE,
		CHANGE_ACCEL,
		CHANGE_CHANNEL,
		CHANGE_DISKS,
		CHANGE_NICS,
		CHANGE_NET_USER,
		CHANGE_DEBUG,
		CHANGE_VHOST_NET,
		CHANGE_KERNEL,
		CHANGE_INITRD,
		CHANGE_QEMU,
		_CHANGE_MAX,
	};
	char *ids[_CHANGE_MAX + 1];
	_cleanup_free_ char *base = spec_id(&f->spec);

	for (int c = 0; c < _CHANGE_MAX; c++) {
		struct vmm_config vm = f->vm;
		struct template_spec s = f->spec;
		s.vm = &vm;
		switch (c) {
		case CHANGE_DOMAIN:
			s.domain = "k8s-default.web";
			break;
		case CHANGE_CPUS:
			vm.cpus = 2;
			break;
		case CHANGE_MEMORY:
			vm.memory_mib = 128;
			break;
		case CHANGE_MACHINE:
			vm.machine = VMM_MACHINE_Q35;
			break;
		case CHANGE_ACCEL:
			vm.accel = VMM_ACCEL_KVM;
			break;
		case CHANGE_CHANNEL:
			vm.channel = VMM_CHANNEL_VSOCK;
			break;
		case CHANGE_DISKS:
			s.n_disks = 4;
			break;
		case CHANGE_NICS:
			s.n_nics = 0;
			break;
		case CHANGE_NET_USER:
			s.net_user = true;
			break;
		case CHANGE_DEBUG:
			vm.debug = true;
			break;
		case CHANGE_VHOST_NET:
			vm.vhost_net = true;
			break;
		case CHANGE_KERNEL:
			vm.kernel = f->kernel2;
			break;
		case CHANGE_INITRD:
			vm.initrd = f->initrd2;
			break;
		case CHANGE_QEMU:
			vm.qemu = f->qemu2;
			break;
		}
		ids[c] = spec_id(&s);
	}
	ids[_CHANGE_MAX] = xstrdup(base);
	/* Every one differs from the base and from every other. */
	for (int i = 0; i <= _CHANGE_MAX; i++)
		for (int j = i + 1; j <= _CHANGE_MAX; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				fail_msg("changes %d and %d give the same id %s", i, j, ids[i]);
	for (int i = 0; i <= _CHANGE_MAX; i++)
		free(ids[i]);
}

/* A file in the key that changes in place (same path) gives another id too. */
static void test_key_file_identity(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *a = spec_id(&f->spec), *b = NULL, *c = NULL, *d = NULL, *e = NULL;
	_cleanup_free_ char *g = NULL;

	set_mtime(f->kernel, 1000000000);
	b = spec_id(&f->spec);
	assert_string_not_equal(a, b);
	/* Only the mtime moved again: yet another id; back to the same mtime: the same. */
	set_mtime(f->kernel, 1000000001);
	c = spec_id(&f->spec);
	assert_string_not_equal(b, c);
	set_mtime(f->kernel, 1000000000);
	d = spec_id(&f->spec);
	assert_string_equal(b, d);
	/* Rewritten with other content (another size). */
	write_file(f->initrd, "an initramfs, rebuilt", 0644);
	e = spec_id(&f->spec);
	assert_string_not_equal(d, e);
	/* QEMU replaced by another file under the same name (another inode). */
	assert_int_equal(rename(f->qemu2, f->qemu), 0);
	g = spec_id(&f->spec);
	assert_string_not_equal(e, g);
}

/* A bare QEMU name is looked up in PATH as execvp() would, then named by its file. */
static void test_key_qemu_lookup(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *old_path = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;
	_cleanup_free_ char *by_path = spec_id(&f->spec), *by_name = NULL;
	_cleanup_free_ char *key = NULL, *id = NULL;
	struct hull_error *err = NULL;

	setenv("PATH", f->tmp, 1);
	f->vm.qemu = "qemu-system-x86_64";
	by_name = spec_id(&f->spec);
	assert_string_equal(by_path, by_name);
	/* NULL means the default name, looked up the same way. */
	f->vm.qemu = NULL;
	assert_int_equal(template_key(&f->spec, &key, &id, NULL), 0);
	assert_string_equal(id, by_path);
	free(key), free(id);
	key = id = NULL;
	/* Not found: -ENOENT, nothing returned. */
	f->vm.qemu = "no-such-qemu";
	assert_int_equal(template_key(&f->spec, &key, &id, &err), -ENOENT);
	assert_null(key);
	assert_null(id);
	assert_non_null(strstr(err->msg, "not found"));
	err = hull_error_free(err);
	if (old_path)
		setenv("PATH", old_path, 1);
	else
		unsetenv("PATH");
	/* A kernel or initrd that is gone. */
	f->vm.qemu = f->qemu;
	f->vm.kernel = "/nonexistent/vmlinuz";
	assert_int_equal(template_key(&f->spec, &key, &id, &err), -ENOENT);
	err = hull_error_free(err);
	f->vm.kernel = f->kernel;
	f->vm.initrd = "/nonexistent/initrd";
	assert_int_equal(template_key(&f->spec, &key, &id, &err), -ENOENT);
	err = hull_error_free(err);
}

static void test_key_bad_domain(void **state)
{
	struct fixture *f = *state;
	char long_domain[TEMPLATE_DOMAIN_MAX + 2];
	const char *bad[] = {"", ".x", "a b", "a/b", "a\nb", "ü", long_domain, NULL};

	memset(long_domain, 'a', sizeof(long_domain) - 1);
	long_domain[sizeof(long_domain) - 1] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct hull_error *err = NULL;
		struct template *t = NULL;
		char *key = NULL, *id = NULL;

		f->spec.domain = bad[i];
		assert_int_equal(template_key(&f->spec, &key, &id, &err), -EINVAL);
		assert_null(key);
		assert_null(id);
		assert_non_null(err);
		assert_int_equal(err->code, -EINVAL);
		assert_non_null(strstr(err->msg, "template domain"));
		err = hull_error_free(err);
		/* template_open refuses it the same way. */
		assert_int_equal(template_open(&f->spec, &t, &err), -EINVAL);
		assert_null(t);
		err = hull_error_free(err);
	}
	/* The longest allowed, and the characters allowed. */
	long_domain[TEMPLATE_DOMAIN_MAX] = '\0';
	assert_true(template_domain_valid(long_domain));
	assert_true(template_domain_valid("k8s-NS_1.name-2"));
	assert_true(template_domain_valid("x."));
	assert_false(template_domain_valid(NULL));
}

static void test_disk_slots(void **state)
{
	(void)state;
	/* 0, or the next power of two. */
	assert_int_equal(template_disk_slots(0, 20), 0);
	assert_int_equal(template_disk_slots(1, 20), 1);
	assert_int_equal(template_disk_slots(2, 20), 2);
	assert_int_equal(template_disk_slots(3, 20), 4);
	assert_int_equal(template_disk_slots(4, 20), 4);
	assert_int_equal(template_disk_slots(5, 20), 8);
	assert_int_equal(template_disk_slots(8, 20), 8);
	assert_int_equal(template_disk_slots(9, 20), 16);
	assert_int_equal(template_disk_slots(16, 16), 16);
	/* The power of two would pass max: max instead. */
	assert_int_equal(template_disk_slots(9, 12), 12);
	assert_int_equal(template_disk_slots(5, 7), 7);
	assert_int_equal(template_disk_slots(12, 12), 12);
	assert_int_equal(template_disk_slots(0, 0), 0);
	/* More disks than max: n itself (never fewer slots than disks), despite the
	 * header's "never more than max". */
	assert_int_equal(template_disk_slots(13, 12), 13);
	assert_int_equal(template_disk_slots(3, 2), 3);
}

static void test_slot_mac(void **state)
{
	char buf[18];
	(void)state;

	memset(buf, 'x', sizeof(buf));
	template_slot_mac(0, buf);
	assert_string_equal(buf, "0a:68:75:6c:6c:00");
	template_slot_mac(7, buf);
	assert_string_equal(buf, "0a:68:75:6c:6c:07");
	template_slot_mac(TEMPLATE_NAT_SLOT, buf);
	assert_string_equal(buf, "0a:68:75:6c:6c:ff");
	/* Locally administered, unicast. */
	assert_int_equal(strtol(buf, NULL, 16) & 0x03, 0x02);
	/* Only the low byte of a slot counts. */
	template_slot_mac(0x101, buf);
	assert_string_equal(buf, "0a:68:75:6c:6c:01");
}

/* ---- the lock and the build ---------------------------------------------------------- */

static void test_lock(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *store = template_store_path(f->root);
	_cleanup_free_ char *lock = store_path(f, id, NULL);
	_cleanup_free_ char *lock_file = xasprintf("%s.lock", lock);
	int a = -1, b = -1, other = -1;
	struct stat st;

	assert_int_equal(template_lock(f->root, id, &a, NULL), 1);
	assert_true(a >= 0);
	assert_true(fcntl(a, F_GETFD) & FD_CLOEXEC);
	/* The store is made, private. */
	assert_int_equal(stat(store, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(exists(lock_file));
	/* flock is per open file description: a second open in this process is refused,
	 * and *ret_fd is left alone. */
	assert_int_equal(template_lock(f->root, id, &b, NULL), 0);
	assert_int_equal(b, -1);
	/* Another id's lock is another lock. */
	assert_int_equal(template_lock(f->root, "0123456789abcdef", &other, NULL), 1);
	close(other);
	close(a);
	assert_int_equal(template_lock(f->root, id, &b, NULL), 1);
	assert_true(b >= 0);
	close(b);
}

/* prune unlinks a free lock file; a builder that opened it before sees it replaced. */
static void test_lock_replaced(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *base = store_path(f, id, NULL);
	_cleanup_free_ char *lock_file = xasprintf("%s.lock", base);
	struct stat st1, st2;
	int a = -1, b = -1;

	assert_int_equal(template_lock(f->root, id, &a, NULL), 1);
	assert_int_equal(fstat(a, &st1), 0);
	/* Unlinked while held (as prune does): the next locker gets a new file. */
	assert_int_equal(unlink(lock_file), 0);
	assert_int_equal(template_lock(f->root, id, &b, NULL), 1);
	assert_int_equal(fstat(b, &st2), 0);
	assert_true(st1.st_ino != st2.st_ino || st1.st_dev != st2.st_dev);
	assert_int_equal(stat(lock_file, &st1), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	close(a);
	close(b);
}

static uint64_t blocks_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* The template's guest wrote two regions of its RAM; clones then fill holes with zero
 * pages (a private mapping of a tmpfs file does, as a write stands in for here). The
 * next reclaim gives those back and keeps every byte the template wrote. */
static void test_reclaim(void **state)
{
	struct fixture *f = *state;
	struct template_build *b = begin(&f->spec, STATE_BYTES);
	struct hull_error *err = NULL;
	struct template *t = NULL;
	_cleanup_close_ int ram = open(b->ram, O_RDWR | O_CLOEXEC);
	static char page[4096], zero[7 << 20], back[4096];

	memset(page, 'T', sizeof(page));
	assert_true(ram >= 0);
	assert_int_equal(pwrite(ram, page, sizeof(page), 1 << 20), (ssize_t)sizeof(page));
	assert_int_equal(pwrite(ram, page, sizeof(page), 9 << 20), (ssize_t)sizeof(page));
	assert_int_equal(template_build_commit(b, &err), 0);
	assert_int_equal(template_open(&f->spec, &t, &err), 1);
	assert_int_equal(t->n_keep, 2);
	assert_int_equal(t->kept, 2 * sizeof(page));
	/* Nothing grew: nothing to do. */
	assert_int_equal(template_reclaim(t), 0);
	assert_int_equal(blocks_of(t->ram_fd), 2 * sizeof(page));
	/* 14 MiB of zero pages faulted in between and after the template's own. */
	assert_int_equal(pwrite(t->ram_fd, zero, sizeof(zero), 2 << 20), (ssize_t)sizeof(zero));
	assert_int_equal(pwrite(t->ram_fd, zero, sizeof(zero), 20 << 20), (ssize_t)sizeof(zero));
	assert_true(blocks_of(t->ram_fd) >= 2 * sizeof(zero));
	assert_int_equal(template_reclaim(t), 0);
	assert_int_equal(blocks_of(t->ram_fd), 2 * sizeof(page));
	assert_int_equal(pread(t->ram_fd, back, sizeof(back), 1 << 20), (ssize_t)sizeof(back));
	assert_memory_equal(back, page, sizeof(page));
	assert_int_equal(pread(t->ram_fd, back, sizeof(back), 9 << 20), (ssize_t)sizeof(back));
	assert_memory_equal(back, page, sizeof(page));
	template_close(t);
}

static void test_build_cycle(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *key = NULL, *key_id = NULL;
	_cleanup_free_ char *store = template_store_path(f->root);
	_cleanup_free_ char *build_dir = NULL, *old_build = NULL, *old_file = NULL;
	_cleanup_free_ char *dir = store_path(f, id, NULL);
	_cleanup_free_ char *meta_path = store_path(f, id, "meta");
	_cleanup_free_ char *meta = NULL, *want = NULL;
	_cleanup_free_ char *shared = NULL;
	struct template_build *b = NULL;
	struct template *t = NULL;
	struct hull_error *err = NULL;
	char state_buf[sizeof(STATE_BYTES)];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd = -1, again = -1;

	assert_int_equal(template_key(&f->spec, &key, &key_id, NULL), 0);
	assert_none(&f->spec); /* an empty store */
	assert_int_equal(template_lock(f->root, id, &fd, &err), 1);
	assert_true(fd >= 0);
	/* A build of this id left by a process that is gone: begin clears it. */
	old_build = xasprintf("%s/.build-%s-1", store, id);
	old_file = xasprintf("%s/ram", old_build);
	assert_int_equal(mkdir(old_build, 0700), 0);
	write_file(old_file, "old", 0600);

	assert_int_equal(template_build_begin(&f->spec, fd, &b, &err), 0);
	assert_null(err);
	assert_false(exists(old_build));
	build_dir = xasprintf("%s/.build-%s-%d", store, id, (int)getpid());
	assert_string_equal(b->dir, build_dir);
	assert_string_equal(b->id, id);
	assert_string_equal(b->key, key);
	assert_int_equal(b->lock_fd, fd);
	shared = xasprintf("%s/shared", build_dir);
	assert_string_equal(b->shared, shared);
	/* The export is empty: nothing is mounted in a template. */
	d = opendir(b->shared);
	assert_non_null(d);
	while ((de = readdir(d)))
		assert_true(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0);
	closedir(d);
	/* RAM sized for the VM and the blank disk, both sparse. */
	assert_int_equal(stat(b->ram, &st), 0);
	assert_int_equal(st.st_size, (off_t)MEMORY_MIB << 20);
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size);
	assert_int_equal(stat(b->blank, &st), 0);
	assert_int_equal((uint64_t)st.st_size, TEMPLATE_BLANK_SIZE);
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size);
	/* The state file, empty, for QEMU to write. */
	assert_true(b->state_fd >= 0);
	assert_int_equal(fstat(b->state_fd, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(write_all(b->state_fd, STATE_BYTES, strlen(STATE_BYTES)), 0);
	assert_int_equal(template_build_commit(b, &err), 0); /* frees b */
	assert_null(err);

	/* The template: meta, ram, state and blank, nothing of the build. */
	assert_false(exists(build_dir));
	assert_false(store_has_prefix(f, ".build-"));
	assert_false(store_has_prefix(f, ".trash-"));
	d = opendir(dir);
	assert_non_null(d);
	{
		char *seen[8];
		size_t n = 0;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.') {
				assert_true(n < ELEMENTSOF(seen));
				seen[n++] = xstrdup(de->d_name);
			}
		assert_int_equal(n, 5);
		for (const char *w = "blank\0extents\0meta\0ram\0state\0"; *w; w += strlen(w) + 1) {
			bool found = false;
			for (size_t i = 0; i < n; i++)
				found |= strcmp(seen[i], w) == 0;
			if (!found)
				fail_msg("template lacks '%s'", w);
		}
		for (size_t i = 0; i < n; i++)
			free(seen[i]);
	}
	closedir(d);
	/* meta: the key, the separator, then sizes and the state's hash. */
	meta = read_file(meta_path);
	want = xasprintf("%s--\nram_size=%llu\nstate_size=%zu\nstate_hash=", key,
	                 (unsigned long long)MEMORY_MIB << 20, strlen(STATE_BYTES));
	assert_true(strncmp(meta, want, strlen(want)) == 0);
	assert_non_null(strstr(meta, "\ncreated="));

	/* The lock went with the build. */
	assert_int_equal(template_lock(f->root, id, &again, NULL), 1);
	close(again);

	/* Open: sound, its files held open. */
	assert_int_equal(template_open(&f->spec, &t, &err), 1);
	assert_null(err);
	assert_non_null(t);
	assert_string_equal(t->id, id);
	assert_string_equal(t->dir, dir);
	{
		_cleanup_free_ char *blank = store_path(f, id, "blank");
		assert_string_equal(t->blank, blank);
	}
	assert_true(t->ram_fd > 2);
	assert_true(t->state_fd > 2);
	assert_int_equal(fcntl(t->ram_fd, F_GETFL) & O_ACCMODE, O_RDWR);
	assert_int_equal(fcntl(t->state_fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	assert_true(fcntl(t->ram_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(t->state_fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(t->ram_fd, &st), 0);
	assert_int_equal(st.st_size, (off_t)MEMORY_MIB << 20);
	/* The state fd at offset 0, holding what was written. */
	assert_int_equal(lseek(t->state_fd, 0, SEEK_CUR), 0);
	assert_int_equal(read_all(t->state_fd, state_buf, sizeof(state_buf)), strlen(STATE_BYTES));
	assert_memory_equal(state_buf, STATE_BYTES, strlen(STATE_BYTES));
	assert_null(template_close(t));
	assert_null(template_close(NULL));

	/* Opened again (nothing was consumed). */
	assert_int_equal(template_open(&f->spec, &t, &err), 1);
	template_close(t);
	/* Another spec finds nothing. */
	f->vm.cpus = 2;
	assert_none(&f->spec);
}

/* A build whose VM wrote no state is refused; the build stays for the caller to abort. */
static void test_commit_without_state(void **state)
{
	struct fixture *f = *state;
	struct template_build *b = begin(&f->spec, NULL);
	_cleanup_free_ char *id = xstrdup(b->id);
	_cleanup_free_ char *build_dir = xstrdup(b->dir);
	_cleanup_free_ char *dir = store_path(f, id, NULL);
	struct hull_error *err = NULL;
	int fd = -1;

	assert_int_equal(template_build_commit(b, &err), -EIO);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "no state was written"));
	hull_error_free(err);
	assert_false(exists(dir));
	assert_true(exists(build_dir));
	/* Still locked: b holds it until the abort. */
	assert_int_equal(template_lock(f->root, id, &fd, NULL), 0);
	template_build_abort(b, NULL);
	assert_false(exists(build_dir));
	assert_int_equal(template_lock(f->root, id, &fd, NULL), 1);
	close(fd);
	assert_none(&f->spec);
}

/* A damaged template left where the build goes (nobody removed it yet): replaced. */
static void test_commit_replaces_leftover(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *dir = store_path(f, id, NULL);
	_cleanup_free_ char *junk = store_path(f, id, "junk");
	struct template_build *b = begin(&f->spec, STATE_BYTES);
	struct template *t = NULL;

	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(junk, "left over", 0600);
	assert_int_equal(template_build_commit(b, NULL), 0);
	assert_false(exists(junk));
	assert_false(store_has_prefix(f, ".trash-"));
	assert_int_equal(template_open(&f->spec, &t, NULL), 1);
	template_close(t);
}

/* begin refuses a spec without a key, and releases the lock it was given. */
static void test_begin_fails(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	struct template_build *b = NULL;
	struct hull_error *err = NULL;
	int fd = -1;

	assert_int_equal(template_lock(f->root, id, &fd, NULL), 1);
	f->spec.domain = "bad domain";
	assert_int_equal(template_build_begin(&f->spec, fd, &b, &err), -EINVAL);
	assert_null(b);
	assert_non_null(err);
	err = hull_error_free(err);
	assert_false(store_has_prefix(f, ".build-"));
	fd = -1;
	assert_int_equal(template_lock(f->root, id, &fd, NULL), 1);
	f->spec.domain = "test";
	f->vm.kernel = "/nonexistent/vmlinuz";
	assert_int_equal(template_build_begin(&f->spec, fd, &b, &err), -ENOENT);
	assert_null(b);
	err = hull_error_free(err);
	assert_int_equal(template_lock(f->root, id, &fd, NULL), 1);
	close(fd);
}

/* ---- damage ------------------------------------------------------------------------ */

enum damage {
	DAMAGE_STATE_TRUNCATED,
	DAMAGE_STATE_BYTE,
	DAMAGE_STATE_GONE,
	DAMAGE_RAM_TRUNCATED,
	DAMAGE_RAM_GROWN,
	DAMAGE_RAM_GONE,
	DAMAGE_BLANK_GONE,
	DAMAGE_BLANK_RESIZED,
	DAMAGE_META_GARBAGE,
	DAMAGE_META_EMPTY,
	DAMAGE_META_GONE,
	DAMAGE_META_KEY,
	DAMAGE_META_HASH,
	DAMAGE_META_RAM_SIZE,
	DAMAGE_EXTENTS_GONE,
	DAMAGE_EXTENTS_EDITED,
	DAMAGE_EXTENTS_HASH,
	_DAMAGE_MAX,
};

/* Replace the first occurrence of from in path's text with to. */
static void edit_file(const char *path, const char *from, const char *to)
{
	_cleanup_free_ char *text = read_file(path);
	_cleanup_free_ char *out = NULL;
	char *p = strstr(text, from);

	assert_non_null(p);
	*p = '\0';
	out = xasprintf("%s%s%s", text, to, p + strlen(from));
	write_file(path, out, 0600);
}

static void damage(const struct fixture *f, const char *id, enum damage d)
{
	_cleanup_free_ char *state = store_path(f, id, "state");
	_cleanup_free_ char *ram = store_path(f, id, "ram");
	_cleanup_free_ char *blank = store_path(f, id, "blank");
	_cleanup_free_ char *meta = store_path(f, id, "meta");
	_cleanup_free_ char *extents = store_path(f, id, "extents");
	_cleanup_free_ char *text = NULL;
	int fd;
	char c;

	switch (d) {
	case DAMAGE_STATE_TRUNCATED:
		assert_int_equal(truncate(state, 4), 0);
		break;
	case DAMAGE_STATE_BYTE:
		/* The same size, one bit off: only the hash tells. */
		fd = open(state, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, 3), 1);
		c ^= 0x01;
		assert_int_equal(pwrite(fd, &c, 1, 3), 1);
		close(fd);
		break;
	case DAMAGE_STATE_GONE:
		assert_int_equal(unlink(state), 0);
		break;
	case DAMAGE_RAM_TRUNCATED:
		assert_int_equal(truncate(ram, ((off_t)MEMORY_MIB << 20) - 4096), 0);
		break;
	case DAMAGE_RAM_GROWN:
		assert_int_equal(truncate(ram, ((off_t)MEMORY_MIB << 20) + 4096), 0);
		break;
	case DAMAGE_RAM_GONE:
		assert_int_equal(unlink(ram), 0);
		break;
	case DAMAGE_BLANK_GONE:
		assert_int_equal(unlink(blank), 0);
		break;
	case DAMAGE_BLANK_RESIZED:
		assert_int_equal(truncate(blank, 1 << 20), 0);
		break;
	case DAMAGE_META_GARBAGE:
		write_file(meta, "this is not a template's meta\n", 0600);
		break;
	case DAMAGE_META_EMPTY:
		assert_int_equal(truncate(meta, 0), 0);
		break;
	case DAMAGE_META_GONE:
		assert_int_equal(unlink(meta), 0);
		break;
	case DAMAGE_META_KEY:
		/* The same size, another key. */
		edit_file(meta, "\ncpus=1\n", "\ncpus=7\n");
		break;
	case DAMAGE_META_HASH:
		text = read_file(meta);
		{
			char *h = strstr(text, "state_hash=");
			assert_non_null(h);
			h += strlen("state_hash=");
			*h = *h == '0' ? '1' : '0';
			write_file(meta, text, 0600);
		}
		break;
	case DAMAGE_META_RAM_SIZE:
		/* ram and meta agree, but not with the VM's memory. */
		edit_file(meta, "\nram_size=67108864\n", "\nram_size=67112960\n");
		assert_int_equal(truncate(ram, ((off_t)MEMORY_MIB << 20) + 4096), 0);
		break;
	case DAMAGE_EXTENTS_GONE:
		assert_int_equal(unlink(extents), 0);
		break;
	case DAMAGE_EXTENTS_EDITED:
		/* A wrong map would punch the template's own pages out of its RAM file. */
		write_file(extents, "0 4096\n", 0600);
		break;
	case DAMAGE_EXTENTS_HASH:
		text = read_file(meta);
		{
			char *h = strstr(text, "extents_hash=");
			assert_non_null(h);
			h += strlen("extents_hash=");
			*h = *h == '0' ? '1' : '0';
			write_file(meta, text, 0600);
		}
		break;
	case _DAMAGE_MAX:
		break;
	}
}

static void test_damage(void **state)
{
	struct fixture *f = *state;

	for (int d = 0; d < _DAMAGE_MAX; d++) {
		_cleanup_free_ char *id = build(&f->spec);
		_cleanup_free_ char *dir = store_path(f, id, NULL);
		struct template *t = NULL;

		/* Sound before. */
		assert_int_equal(template_open(&f->spec, &t, NULL), 1);
		t = template_close(t);
		damage(f, id, (enum damage)d);
		if (template_open(&f->spec, &t, NULL) != 0)
			fail_msg("damage %d: not refused", d);
		assert_null(t);
		if (exists(dir))
			fail_msg("damage %d: the template was not removed", d);
		assert_false(store_has_prefix(f, ".trash-"));
		/* Refused, not failed: the next start builds again. */
		assert_none(&f->spec);
	}
}

/* ---- failures ----------------------------------------------------------------------- */

static void test_abort_records_failure(void **state)
{
	struct fixture *f = *state;
	struct template_build *b = begin(&f->spec, STATE_BYTES);
	_cleanup_free_ char *id = xstrdup(b->id);
	_cleanup_free_ char *build_dir = xstrdup(b->dir);
	_cleanup_free_ char *base = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", base);
	_cleanup_free_ char *text = NULL;
	struct template *t = NULL;
	struct hull_error *err = NULL;
	int fd = -1;

	template_build_abort(b, "the guest did not answer in 30 s");
	assert_false(exists(build_dir));
	assert_false(exists(base));
	assert_false(store_has_prefix(f, ".build-"));
	text = read_file(failed);
	assert_string_equal(text, "the guest did not answer in 30 s");
	/* No stray temporary of the record. */
	{
		_cleanup_free_ char *prefix = xasprintf("%s.failed.", id);
		assert_false(store_has_prefix(f, prefix));
	}
	/* The lock went with the build. */
	assert_int_equal(template_lock(f->root, id, &fd, NULL), 1);
	close(fd);

	/* Not tried again for a while: -EAGAIN, saying why. */
	assert_int_equal(template_open(&f->spec, &t, &err), -EAGAIN);
	assert_null(t);
	assert_non_null(err);
	assert_int_equal(err->code, -EAGAIN);
	assert_non_null(strstr(err->msg, id));
	assert_non_null(strstr(err->msg, "the guest did not answer in 30 s"));
	err = hull_error_free(err);
	/* Asked again, the same. */
	assert_int_equal(template_open(&f->spec, &t, &err), -EAGAIN);
	err = hull_error_free(err);

	template_forget_failure(f->root, id);
	assert_false(exists(failed));
	assert_none(&f->spec);
	/* Forgetting what is not there is fine. */
	template_forget_failure(f->root, id);
	template_build_abort(NULL, "nothing");
}

static void test_abort_without_reason(void **state)
{
	struct fixture *f = *state;
	struct template_build *b = begin(&f->spec, STATE_BYTES);
	_cleanup_free_ char *id = xstrdup(b->id);
	_cleanup_free_ char *build_dir = xstrdup(b->dir);
	_cleanup_free_ char *base = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", base);

	template_build_abort(b, NULL);
	assert_false(exists(build_dir));
	assert_false(exists(failed));
	assert_false(exists(base));
	assert_none(&f->spec);
}

/* A successful build clears the record of an earlier failure. */
static void test_commit_clears_failure(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *base = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", base);
	struct template *t = NULL;

	template_build_abort(begin(&f->spec, NULL), "first try failed");
	assert_true(exists(failed));
	free(build(&f->spec)); /* hull template create builds regardless */
	assert_false(exists(failed));
	assert_int_equal(template_open(&f->spec, &t, NULL), 1);
	template_close(t);
}

/* A record is held TEMPLATE_FAILED_HOLD_S; an old one (or one from the future) is
 * dropped. */
static void test_failure_expires(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = spec_id(&f->spec);
	_cleanup_free_ char *base = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", base);
	struct hull_error *err = NULL;
	struct template *t = NULL;

	template_build_abort(begin(&f->spec, NULL), "boom");
	set_mtime(failed, time(NULL) - TEMPLATE_FAILED_HOLD_S + 30);
	assert_int_equal(template_open(&f->spec, &t, &err), -EAGAIN);
	err = hull_error_free(err);
	set_mtime(failed, time(NULL) - TEMPLATE_FAILED_HOLD_S - 30);
	assert_none(&f->spec);
	assert_false(exists(failed));

	template_build_abort(begin(&f->spec, NULL), "boom");
	set_mtime(failed, time(NULL) + 3600);
	assert_none(&f->spec);
	assert_false(exists(failed));
}

/* The reason of a QEMU that exited carries its log's tail (up to 2 KiB): it is still
 * what template_open reports, if shortened. */
static void test_failure_long_reason(void **state)
{
	struct fixture *f = *state;
	char reason[3000];
	struct hull_error *err = NULL;
	struct template *t = NULL;

	memset(reason, 'x', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	memcpy(reason, "QEMU exited with status 1:\n", strlen("QEMU exited with status 1:\n"));
	template_build_abort(begin(&f->spec, NULL), reason);
	assert_int_equal(template_open(&f->spec, &t, &err), -EAGAIN);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "QEMU exited with status 1:\nxxxx"));
	hull_error_free(err);
	/* The record keeps the reason's start, cut to what is read back. */
	{
		_cleanup_free_ char *id = spec_id(&f->spec);
		_cleanup_free_ char *base = store_path(f, id, NULL);
		_cleanup_free_ char *failed = xasprintf("%s.failed", base);
		struct stat st;
		assert_int_equal(stat(failed, &st), 0);
		assert_int_equal(st.st_size, 1024);
	}
}

static void test_restore_failed(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = build(&f->spec);
	_cleanup_free_ char *dir = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", dir);
	_cleanup_free_ char *text = NULL;
	struct hull_error *err = NULL;
	struct template *t = NULL;

	/* A clone holds its files open; they outlive the removal. */
	assert_int_equal(template_open(&f->spec, &t, NULL), 1);
	template_restore_failed(f->root, id, "load of device 'virtio-net' failed");
	assert_false(exists(dir));
	assert_false(store_has_prefix(f, ".trash-"));
	text = read_file(failed);
	assert_string_equal(text, "restore failed: load of device 'virtio-net' failed");
	{
		char c;
		assert_int_equal(pread(t->state_fd, &c, 1, 0), 1);
		assert_int_equal(c, STATE_BYTES[0]);
	}
	template_close(t);
	assert_int_equal(template_open(&f->spec, &t, &err), -EAGAIN);
	assert_non_null(strstr(err->msg, "restore failed: load of device 'virtio-net' failed"));
	err = hull_error_free(err);
	template_forget_failure(f->root, id);
	assert_none(&f->spec);
	/* Of a template that is not there: recorded all the same. */
	template_restore_failed(f->root, "0123456789abcdef", "gone");
	{
		_cleanup_free_ char *other = store_path(f, "0123456789abcdef.failed", NULL);
		assert_true(exists(other));
	}
}

/* ---- listing, removal, pruning ----------------------------------------------------- */

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct vmm_config vm2 = f->vm;
	struct template_spec s2 = f->spec;
	_cleanup_free_ char *id1 = NULL, *id2 = NULL, *key1 = NULL, *key2 = NULL, *tmp = NULL;
	struct template_info *v = NULL;
	struct template_build *b;
	size_t n = 99;
	time_t now = time(NULL);

	/* No store yet: an empty list. */
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(v);

	vm2.cpus = 2;
	s2.vm = &vm2;
	id1 = build(&f->spec);
	/* The second with a page of its RAM written, as a booted guest's are. */
	b = begin(&s2, STATE_BYTES ", longer");
	{
		char page[4096];
		int fd = open(b->ram, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		memset(page, 0x5a, sizeof(page));
		assert_int_equal(pwrite(fd, page, sizeof(page), 0), (ssize_t)sizeof(page));
		close(fd);
	}
	id2 = xstrdup(b->id);
	assert_int_equal(template_build_commit(b, NULL), 0);
	/* Neither a failure record, a lock, nor a build in progress is a template. */
	template_restore_failed(f->root, "fedcba9876543210", "x");
	b = begin(&f->spec, NULL);

	assert_int_equal(template_key(&f->spec, &key1, &tmp, NULL), 0);
	free(tmp);
	assert_int_equal(template_key(&s2, &key2, &tmp, NULL), 0);
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_true(strcmp(v[0].id, v[1].id) < 0);
	for (size_t i = 0; i < n; i++) {
		bool first = strcmp(v[i].id, id1) == 0;
		if (!first)
			assert_string_equal(v[i].id, id2);
		assert_string_equal(v[i].key, first ? key1 : key2);
		assert_false(v[i].stale);
		assert_int_equal(v[i].state_bytes,
		                 strlen(first ? STATE_BYTES : STATE_BYTES ", longer"));
		assert_true(v[i].created >= now - 5 && v[i].created <= time(NULL) + 5);
		if (!first)
			assert_true(v[i].ram_bytes >= 4096);
		{
			_cleanup_free_ char *cpus = template_key_get(v[i].key, "cpus");
			assert_string_equal(cpus, first ? "1" : "2");
		}
	}
	template_info_free(v, n);
	template_build_abort(b, NULL);
}

/* A file named in a key that changes makes the template stale; so does a meta that
 * does not parse. */
static void test_list_stale(void **state)
{
	struct fixture *f = *state;
	struct vmm_config vm2 = f->vm;
	struct template_spec s2 = f->spec;
	_cleanup_free_ char *id1 = NULL, *id2 = NULL, *bad = NULL;
	struct template_info *v = NULL;
	size_t n = 0;

	vm2.kernel = f->kernel2;
	s2.vm = &vm2;
	id1 = build(&f->spec);
	id2 = build(&s2);
	bad = store_path(f, "00000000000000aa", NULL);
	assert_int_equal(mkdir(bad, 0700), 0);

	set_mtime(f->kernel, 1000000000);
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].id, "00000000000000aa") == 0) {
			assert_true(v[i].stale);
			assert_string_equal(v[i].key, "");
			assert_int_equal(v[i].state_bytes, 0);
		} else {
			assert_int_equal(v[i].stale, strcmp(v[i].id, id1) == 0);
			if (strcmp(v[i].id, id1) != 0)
				assert_string_equal(v[i].id, id2);
		}
	}
	template_info_free(v, n);

	/* The kernel gone altogether. */
	assert_int_equal(unlink(f->kernel2), 0);
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_true(v[i].stale);
	template_info_free(v, n);
}

/* A path with a space in it is a path like any other: the template is not stale. */
static void test_list_path_with_space(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *dir = xasprintf("%s/with space", f->tmp);
	_cleanup_free_ char *kernel = xasprintf("%s/vmlinuz", dir);
	_cleanup_free_ char *id = NULL;
	struct template_info *v = NULL;
	size_t n = 0;

	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(kernel, "a kernel in a dir with a space", 0644);
	f->vm.kernel = kernel;
	id = build(&f->spec);
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, id);
	assert_false(v[0].stale);
	template_info_free(v, n);
	/* So prune keeps it; and once the kernel changes, it is stale after all. */
	assert_int_equal(template_prune(f->root), 0);
	{
		struct template *t = NULL;
		assert_int_equal(template_open(&f->spec, &t, NULL), 1);
		template_close(t);
	}
	set_mtime(kernel, 1000000000);
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_true(v[0].stale);
	template_info_free(v, n);
}

static void test_remove(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *id = build(&f->spec);
	_cleanup_free_ char *dir = store_path(f, id, NULL);
	_cleanup_free_ char *failed = xasprintf("%s.failed", dir);
	struct hull_error *err = NULL;
	const char *bad[] = {"",
	                     "xyz",
	                     "0123456789ABCDEF",
	                     "0123456789abcdeg",
	                     "0123456789abcdef0",
	                     "../../../../etc",
	                     ".build-0123456789"};

	assert_int_equal(template_remove(f->root, "0123456789abcdef", &err), -ENOENT);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "0123456789abcdef"));
	err = hull_error_free(err);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_int_equal(template_remove(f->root, bad[i], &err), -EINVAL);
		assert_non_null(strstr(err->msg, "not a template id"));
		err = hull_error_free(err);
	}
	assert_true(exists(dir));
	write_file(failed, "an old failure", 0600);
	assert_int_equal(template_remove(f->root, id, &err), 0);
	assert_null(err);
	assert_false(exists(dir));
	assert_false(exists(failed));
	assert_false(store_has_prefix(f, ".trash-"));
	assert_none(&f->spec);
	assert_int_equal(template_remove(f->root, id, &err), -ENOENT);
	err = hull_error_free(err);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct vmm_config vm2 = f->vm;
	struct template_spec s2 = f->spec;
	_cleanup_free_ char *store = template_store_path(f->root);
	_cleanup_free_ char *id1 = NULL, *id2 = NULL;
	_cleanup_free_ char *dir1 = NULL, *dir2 = NULL, *lock1 = NULL, *lock2 = NULL;
	_cleanup_free_ char *free_build = NULL, *busy_build = NULL, *trash = NULL;
	_cleanup_free_ char *orphan_lock = NULL, *old_failed = NULL, *busy_lock = NULL;
	_cleanup_free_ char *file = NULL;
	const char *busy_id = "00000000000000bb";
	struct template_info *v = NULL;
	size_t n = 0;
	int busy_fd = -1;

	/* Nothing to prune in a store that does not exist. */
	assert_int_equal(template_prune(f->root), 0);

	vm2.kernel = f->kernel2;
	s2.vm = &vm2;
	id1 = build(&f->spec);
	id2 = build(&s2);
	dir1 = store_path(f, id1, NULL);
	dir2 = store_path(f, id2, NULL);
	lock1 = xasprintf("%s.lock", dir1);
	lock2 = xasprintf("%s.lock", dir2);
	/* A build by a process that is gone (its lock is free) and one that runs. */
	free_build = xasprintf("%s/.build-00000000000000aa-99999", store);
	busy_build = xasprintf("%s/.build-%s-99998", store, busy_id);
	assert_int_equal(mkdir(free_build, 0700), 0);
	file = xasprintf("%s/ram", free_build);
	write_file(file, "x", 0600);
	assert_int_equal(mkdir(busy_build, 0700), 0);
	assert_int_equal(template_lock(f->root, busy_id, &busy_fd, NULL), 1);
	busy_lock = xasprintf("%s/%s.lock", store, busy_id);
	/* A removal cut short, a lock nothing uses, an old failure record. */
	trash = xasprintf("%s/.trash-1-2", store);
	assert_int_equal(mkdir(trash, 0700), 0);
	orphan_lock = xasprintf("%s/00000000000000cc.lock", store);
	write_file(orphan_lock, "", 0600);
	old_failed = xasprintf("%s/00000000000000dd.failed", store);
	write_file(old_failed, "long ago", 0600);
	set_mtime(old_failed, time(NULL) - 2 * TEMPLATE_FAILED_HOLD_S);

	/* Nothing stale yet: only leftovers go. */
	assert_int_equal(template_prune(f->root), 0);
	assert_true(exists(dir1));
	assert_true(exists(dir2));
	assert_false(exists(free_build));
	assert_true(exists(busy_build));
	assert_true(exists(busy_lock));
	assert_false(exists(trash));
	assert_false(exists(orphan_lock));
	assert_false(exists(old_failed));
	/* The locks of templates that are there stay. */
	assert_true(exists(lock1));
	assert_true(exists(lock2));

	/* The first one's kernel changes: it goes, the other stays. */
	set_mtime(f->kernel, 1000000000);
	assert_int_equal(template_prune(f->root), 1);
	assert_false(exists(dir1));
	assert_false(exists(lock1));
	assert_true(exists(dir2));
	assert_true(exists(lock2));
	assert_true(exists(busy_build));
	assert_false(store_has_prefix(f, ".trash-"));
	assert_int_equal(template_list(f->root, &v, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, id2);
	template_info_free(v, n);

	/* Once its builder is gone, the build goes too. */
	close(busy_fd);
	assert_int_equal(template_prune(f->root), 0);
	assert_false(exists(busy_build));
	assert_true(exists(dir2));
	assert_int_equal(template_prune(f->root), 0);
}

/* A clone's -kernel: a bzImage's setup sectors and one sector more; anything else is
 * not cut down. */
static void test_boot_header(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *bz = xasprintf("%s/bzImage", f->tmp);
	_cleanup_free_ char *out = xasprintf("%s/boot-header", f->tmp);
	_cleanup_free_ char *missing = xasprintf("%s/none", f->tmp);
	_cleanup_free_ uint8_t *img = xcalloc(1, 64 << 10);
	uint8_t got[8192];
	struct stat st;
	int fd;

	for (size_t i = 0; i < (64u << 10); i++)
		img[i] = (uint8_t)(i * 7 + 1);
	img[0x1f1] = 2; /* three sectors of setup */
	memcpy(img + 0x202, "HdrS", 4);
	fd = open(bz, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, img, 64 << 10), 64 << 10);
	close(fd);
	assert_int_equal(template_boot_header(bz, out), 1);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, 4 * 512);
	fd = open(out, O_RDONLY);
	assert_int_equal(read(fd, got, sizeof(got)), 4 * 512);
	close(fd);
	assert_memory_equal(got, img, 3 * 512);
	for (size_t i = 3 * 512; i < 4 * 512; i++)
		assert_int_equal(got[i], 0);

	img[0x1f1] = 0; /* the old kernels' "four" */
	fd = open(bz, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, img, 64 << 10), 64 << 10);
	close(fd);
	assert_int_equal(template_boot_header(bz, out), 1);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, 6 * 512);

	/* Not a bzImage (an ELF vmlinux, say), or one cut short: the kernel itself. */
	assert_int_equal(template_boot_header(f->kernel, out), 0);
	img[0x1f1] = 200;
	fd = open(bz, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, img, 4096), 4096);
	close(fd);
	assert_int_equal(template_boot_header(bz, out), 0);
	assert_int_equal(template_boot_header(missing, out), -ENOENT);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_key_stable),
	    T(test_key_get),
	    T(test_key_changes),
	    T(test_key_file_identity),
	    T(test_key_qemu_lookup),
	    T(test_key_bad_domain),
	    T(test_disk_slots),
	    T(test_slot_mac),
	    T(test_lock),
	    T(test_lock_replaced),
	    T(test_reclaim),
	    T(test_build_cycle),
	    T(test_commit_without_state),
	    T(test_commit_replaces_leftover),
	    T(test_begin_fails),
	    T(test_damage),
	    T(test_abort_records_failure),
	    T(test_abort_without_reason),
	    T(test_commit_clears_failure),
	    T(test_failure_expires),
	    T(test_failure_long_reason),
	    T(test_restore_failed),
	    T(test_list),
	    T(test_list_stale),
	    T(test_list_path_with_space),
	    T(test_remove),
	    T(test_prune),
	    T(test_boot_header),
	};
#undef T
	return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
