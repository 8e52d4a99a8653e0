/* SPDX-License-Identifier: MIT */
/* The template store (sandbox-template.h): keys, layout, lock, checks. */
#include "sandbox-template.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define TEMPLATE_FORMAT 2
#define META_MAX (16u << 10)
#define EXTENTS_MAX (8u << 20)
#define META_SEPARATOR "--\n"

/* Firmware QEMU loads into guest ROM: a clone's must be the template's. */
static const char *const firmware[] = {
    "/usr/share/qemu/qboot.rom",     "/usr/share/qemu/bios-microvm.bin",
    "/usr/share/qemu/bios-256k.bin", "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/kvmvapic.bin",  "/usr/share/qemu/efi-virtio.rom",
};

bool template_domain_valid(const char *s)
{
	/* A front end composes domains from names ("k8s-NS.NAME"): longer than an id. */
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > TEMPLATE_DOMAIN_MAX || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
		            *p))
			return false;
	return true;
}

unsigned template_disk_slots(unsigned n, unsigned max)
{
	unsigned s = 1;
	if (n == 0)
		return 0;
	while (s < n)
		s <<= 1;
	return s > max ? MAX(n, max) : s;
}

void template_slot_mac(unsigned slot, char buf[18])
{
	/* Locally administered, never a MAC a sandbox gets (those are the pod's own, or
	 * random with 52:54:00 for QEMU's NAT). */
	snprintf(buf, 18, "0a:68:75:6c:6c:%02x", slot & 0xff);
}

char *template_store_path(const char *root)
{
	return xasprintf("%s/.templates", root);
}

/* "PATH DEV:INO SIZE MTIME" for a file whose change must make a new template. */
static char *identity(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return xasprintf("%s missing", path);
	return xasprintf("%s %llu:%llu %lld %lld.%09ld", path, (unsigned long long)st.st_dev,
	                 (unsigned long long)st.st_ino, (long long)st.st_size,
	                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static void add_line(char **text, const char *name, const char *value)
{
	char *n = xasprintf("%s%s=%s\n", *text, name, value);
	free(*text);
	*text = n;
}

static void add_identity(char **text, const char *name, const char *path)
{
	_cleanup_free_ char *id = identity(path);
	add_line(text, name, id);
}

int template_key(const struct template_spec *s, char **ret_key, char **ret_id,
                 struct hull_error **err)
{
	const struct vmm_config *vm = s->vm;
	_cleanup_free_ char *qemu = find_program(vm->qemu ? vm->qemu : "qemu-system-x86_64");
	_cleanup_free_ char *kernel = realpath(vm->kernel, NULL);
	_cleanup_free_ char *initrd = realpath(vm->initrd, NULL);
	char *text = xstrdup(""), num[64];

	if (!template_domain_valid(s->domain)) {
		free(text);
		return hull_error_set(err, -EINVAL,
		                      "template domain '%.64s': want 1 to 200 of "
		                      "[A-Za-z0-9_.-], not starting with '.'",
		                      s->domain ? s->domain : "");
	}
	if (!qemu || !kernel || !initrd) {
		free(text);
		return hull_error_set(err, -ENOENT,
		                      "template key: QEMU, kernel or initrd not found");
	}
	snprintf(num, sizeof(num), "%d", TEMPLATE_FORMAT);
	add_line(&text, "format", num);
	add_line(&text, "hull", HULL_VERSION);
	add_line(&text, "domain", s->domain);
	add_identity(&text, "qemu", qemu);
	for (size_t i = 0; i < ELEMENTSOF(firmware); i++)
		if (access(firmware[i], F_OK) == 0)
			add_identity(&text, "firmware", firmware[i]);
	add_identity(&text, "kernel", kernel);
	add_identity(&text, "initrd", initrd);
	add_line(&text, "machine", vmm_machine_to_string(vm->machine));
	add_line(&text, "accel", vmm_accel_to_string(vm->accel));
	add_line(&text, "channel", vm->channel == VMM_CHANNEL_VSOCK ? "vsock" : "serial");
	snprintf(num, sizeof(num), "%u", vm->cpus);
	add_line(&text, "cpus", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)vm->memory_mib);
	add_line(&text, "memory_mib", num);
	snprintf(num, sizeof(num), "%u", s->n_disks);
	add_line(&text, "disks", num);
	snprintf(num, sizeof(num), "%u", s->n_nics);
	add_line(&text, "nics", num);
	add_line(&text, "net_user", s->net_user ? "1" : "0");
	add_line(&text, "vhost_net", vm->vhost_net ? "1" : "0");
	add_line(&text, "debug", vm->debug ? "1" : "0");
	snprintf(num, sizeof(num), "%016llx",
	         (unsigned long long)fnv1a(FNV1A_INIT, text, strlen(text)));
	*ret_id = xstrdup(num);
	*ret_key = text;
	return 0;
}

char *template_key_get(const char *key, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = key; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > n && strncmp(p, name, n) == 0 && p[n] == '=')
			return xstrndup(p + n + 1, len - n - 1);
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

/* ---- reading and checking ---------------------------------------------------------- */

static int read_small(const char *path, char **ret, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	ssize_t n;

	if (fd < 0)
		return -errno;
	buf = xmalloc(max + 1);
	n = read_all(fd, buf, max + 1);
	if (n < 0 || (size_t)n > max) {
		free(buf);
		return n < 0 ? (int)n : -EFBIG;
	}
	buf[n] = '\0';
	*ret = buf;
	return 0;
}

static int hash_fd(int fd, uint64_t *ret)
{
	uint8_t buf[64 << 10];
	uint64_t h = FNV1A_INIT;
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		h = fnv1a(h, buf, (size_t)n);
		off += n;
	}
	*ret = h;
	return 0;
}

struct meta {
	uint64_t ram_size, state_size, state_hash, extents_hash, kept;
	long long created;
};

/* meta = key, separator, then "name=value" lines. -EBADMSG when it does not parse;
 * *ret_key (may be NULL) gets the key part. */
static int meta_parse(const char *text, char **ret_key, struct meta *m)
{
	const char *sep = strstr(text, "\n" META_SEPARATOR);
	unsigned long long a = 0, b = 0, c = 0, e = 0, k = 0;
	long long d = 0;

	if (!sep)
		return -EBADMSG;
	if (sscanf(sep + 1 + strlen(META_SEPARATOR),
	           "ram_size=%llu\nstate_size=%llu\nstate_hash=%llx\nextents_hash=%llx\n"
	           "kept=%llu\ncreated=%lld\n",
	           &a, &b, &c, &e, &k, &d) != 6)
		return -EBADMSG;
	*m = (struct meta){.ram_size = a,
	                   .state_size = b,
	                   .state_hash = c,
	                   .extents_hash = e,
	                   .kept = k,
	                   .created = d};
	if (ret_key)
		*ret_key = xstrndup(text, (size_t)(sep - text) + 1);
	return 0;
}

/* Move dir out of the way in one step, then delete it: a template is there whole or
 * not at all. */
static void remove_dir(const char *store, const char *dir)
{
	_cleanup_free_ char *trash =
	    xasprintf("%s/.trash-%d-%llu", store, (int)getpid(),
	              (unsigned long long)fnv1a(FNV1A_INIT, dir, strlen(dir)));
	if (rename(dir, trash) == 0)
		rm_tree(trash);
	else
		rm_tree(dir);
}

/* The longest reason a failure record keeps: a longer one (QEMU's exit error carries up
 * to 2 KiB of its log) is cut to this, so recent_failure() can still read it. */
#define FAILED_MAX 1024u

static void write_failed(const char *store, const char *id, const char *reason)
{
	_cleanup_free_ char *path = xasprintf("%s/%s.failed", store, id);
	_cleanup_free_ char *tmp = xasprintf("%s.%d", path, (int)getpid());
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write_all(fd, reason, MIN(strlen(reason), FAILED_MAX)) == 0 && rename(tmp, path) == 0)
		return;
	(void)unlink(tmp);
}

/* A recent failure record: its reason, or NULL. */
static char *recent_failure(const char *store, const char *id)
{
	_cleanup_free_ char *path = xasprintf("%s/%s.failed", store, id);
	char *reason = NULL;
	struct stat st;

	if (stat(path, &st) < 0)
		return NULL;
	if (st.st_mtime + TEMPLATE_FAILED_HOLD_S < time(NULL) || st.st_mtime > time(NULL) + 60) {
		(void)unlink(path);
		return NULL;
	}
	if (read_small(path, &reason, FAILED_MAX) < 0)
		return xstrdup("(no reason recorded)");
	return reason;
}

struct template *template_close(struct template *t)
{
	if (!t)
		return NULL;
	if (t->ram_fd >= 0)
		close(t->ram_fd);
	if (t->state_fd >= 0)
		close(t->state_fd);
	free(t->id);
	free(t->dir);
	free(t->blank);
	free(t->keep);
	free(t);
	return NULL;
}

/* "OFFSET LENGTH" lines into pairs, each inside size and after the one before. */
static int extents_parse(const char *text, uint64_t size, uint64_t (**ret)[2], size_t *ret_n)
{
	uint64_t(*v)[2] = NULL;
	size_t n = 0;
	uint64_t end = 0;

	for (const char *p = text; *p;) {
		unsigned long long off, len;
		int used = 0;
		if (sscanf(p, "%llu %llu\n%n", &off, &len, &used) != 2 || used == 0 || len == 0 ||
		    off < end || off > size || len > size - off) {
			free(v);
			return -EBADMSG;
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n][0] = off;
		v[n][1] = len;
		n++;
		end = off + len;
		p += used;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Why dir is not a sound template for key, or NULL (t filled). */
static char *check(struct template *t, const char *key, uint64_t memory_mib)
{
	_cleanup_free_ char *meta_path = xasprintf("%s/meta", t->dir);
	_cleanup_free_ char *ram = xasprintf("%s/ram", t->dir);
	_cleanup_free_ char *state = xasprintf("%s/state", t->dir);
	_cleanup_free_ char *text = NULL, *stored_key = NULL;
	struct meta m;
	struct stat st;
	uint64_t h;
	int r;

	r = read_small(meta_path, &text, META_MAX);
	if (r < 0)
		return xasprintf("meta: %s", strerror(-r));
	if (meta_parse(text, &stored_key, &m) < 0)
		return xstrdup("meta does not parse");
	if (strcmp(stored_key, key) != 0)
		return xstrdup("meta holds another key");
	t->ram_fd = open(ram, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (t->ram_fd < 0 || fstat(t->ram_fd, &st) < 0)
		return xasprintf("ram: %s", strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m.ram_size ||
	    m.ram_size != memory_mib << 20)
		return xasprintf("ram is %lld bytes, want %llu", (long long)st.st_size,
		                 (unsigned long long)(memory_mib << 20));
	t->state_fd = open(state, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (t->state_fd < 0 || fstat(t->state_fd, &st) < 0)
		return xasprintf("state: %s", strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m.state_size)
		return xasprintf("state is %lld bytes, meta says %llu", (long long)st.st_size,
		                 (unsigned long long)m.state_size);
	if (hash_fd(t->state_fd, &h) < 0 || h != m.state_hash)
		return xstrdup("state does not match its hash");
	if (stat(t->blank, &st) < 0 || (uint64_t)st.st_size != TEMPLATE_BLANK_SIZE)
		return xstrdup("blank disk missing or resized");
	{
		_cleanup_free_ char *path = xasprintf("%s/extents", t->dir);
		_cleanup_free_ char *ext = NULL;
		r = read_small(path, &ext, EXTENTS_MAX);
		if (r < 0)
			return xasprintf("extents: %s", strerror(-r));
		if (fnv1a(FNV1A_INIT, ext, strlen(ext)) != m.extents_hash ||
		    extents_parse(ext, m.ram_size, &t->keep, &t->n_keep) < 0)
			return xstrdup("extents do not match their hash");
		t->kept = m.kept;
	}
	return NULL;
}

/* The RAM file's data (what the template's guest wrote) as "OFFSET LENGTH" lines;
 * *ret_bytes their total. */
static char *ram_extents(int fd, uint64_t *ret_bytes)
{
	char *text = xstrdup("");
	uint64_t bytes = 0;
	off_t off = 0;

	for (;;) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;
		char *n;
		if (data < 0)
			break; /* ENXIO: no data after off */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole <= data)
			break;
		n = xasprintf("%s%lld %lld\n", text, (long long)data, (long long)(hole - data));
		free(text);
		text = n;
		bytes += (uint64_t)(hole - data);
		off = hole;
	}
	*ret_bytes = bytes;
	return text;
}

int template_reclaim(struct template *t)
{
	struct stat st;
	uint64_t off = 0, before;
	int r = 0;

	if (fstat(t->ram_fd, &st) < 0)
		return -errno;
	before = (uint64_t)st.st_blocks * 512;
	/* A little above what the template kept: nothing worth a pass. */
	if (before <= t->kept + (4u << 20))
		return 0;
	for (size_t i = 0; i <= t->n_keep && r == 0; i++) {
		uint64_t end = i < t->n_keep ? t->keep[i][0] : (uint64_t)st.st_size;
		if (end > off && fallocate(t->ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		                           (off_t)off, (off_t)(end - off)) < 0)
			r = -errno;
		if (i < t->n_keep)
			off = t->keep[i][0] + t->keep[i][1];
	}
	if (r == 0 && fstat(t->ram_fd, &st) == 0)
		log_debug("template %s: %llu MiB of clones' zero pages given back", t->id,
		          (unsigned long long)((before - (uint64_t)st.st_blocks * 512) >> 20));
	return r;
}

int template_boot_header(const char *kernel, const char *path)
{
	/* Documentation/arch/x86/boot.rst: setup_sects at 0x1f1 (0 means 4), "HdrS" at
	 * 0x202; the setup part is (setup_sects + 1) sectors, the rest is the kernel. */
	uint8_t buf[(255 + 1) * 512 + 512] = {0};
	_cleanup_close_ int in = open(kernel, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = -1;
	size_t setup;
	ssize_t n;

	if (in < 0)
		return -errno;
	n = pread(in, buf, 0x210, 0);
	if (n < 0)
		return -errno;
	if (n < 0x210 || memcmp(buf + 0x202, "HdrS", 4) != 0)
		return 0;
	setup = ((size_t)(buf[0x1f1] ? buf[0x1f1] : 4) + 1) * 512;
	n = pread(in, buf, setup, 0);
	if (n < 0)
		return -errno;
	if ((size_t)n != setup)
		return 0;
	/* One zero sector of "kernel" after the setup: the loader wants some. */
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	if (write_all(out, buf, setup + 512) < 0)
		return -errno;
	return 1;
}

int template_open(const struct template_spec *s, struct template **ret, struct hull_error **err)
{
	_cleanup_free_ char *key = NULL, *id = NULL, *why = NULL, *failed = NULL;
	_cleanup_free_ char *store = template_store_path(s->root);
	struct template *t;
	struct stat st;
	int r;

	r = template_key(s, &key, &id, err);
	if (r < 0)
		return r;
	failed = recent_failure(store, id);
	if (failed)
		return hull_error_set(err, -EAGAIN, "template %s failed recently: %s", id, failed);
	t = xcalloc(1, sizeof(*t));
	t->ram_fd = t->state_fd = -1;
	t->id = TAKE_PTR(id);
	t->dir = xasprintf("%s/%s", store, t->id);
	t->blank = xasprintf("%s/blank", t->dir);
	if (lstat(t->dir, &st) < 0) {
		template_close(t);
		return 0;
	}
	why = check(t, key, s->vm->memory_mib);
	if (why) {
		log_info("template %s is damaged (%s): removed, to be built again", t->id, why);
		remove_dir(store, t->dir);
		template_close(t);
		return 0;
	}
	*ret = t;
	return 1;
}

/* ---- the lock and the build --------------------------------------------------------- */

int template_lock(const char *root, const char *id, int *ret_fd, struct hull_error **err)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_free_ char *path = xasprintf("%s/%s.lock", store, id);
	int r = mkdir_p(store, 0700);

	if (r < 0)
		return hull_error_set_errno(err, r, "create '%s'", store);
	for (;;) {
		struct stat a, b;
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return hull_error_set_errno(err, -errno, "open '%s'", path);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			r = -errno;
			close(fd);
			if (r == -EWOULDBLOCK)
				return 0;
			return hull_error_set_errno(err, r, "lock '%s'", path);
		}
		/* prune unlinks lock files it holds: ours must still be the one there. */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*ret_fd = fd;
			return 1;
		}
		close(fd);
	}
}

void template_build_free(struct template_build *b)
{
	if (!b)
		return;
	if (b->state_fd >= 0)
		close(b->state_fd);
	if (b->lock_fd >= 0)
		close(b->lock_fd); /* releases the lock */
	free(b->id);
	free(b->key);
	free(b->store);
	free(b->dir);
	free(b->shared);
	free(b->ram);
	free(b->blank);
	free(b);
}

/* Builds of id left by processes that are gone (the lock is ours, so none runs). */
static void remove_old_builds(const char *store, const char *id)
{
	_cleanup_(closedirp) DIR *d = opendir(store);
	_cleanup_free_ char *prefix = xasprintf(".build-%s-", id);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			_cleanup_free_ char *p = xasprintf("%s/%s", store, de->d_name);
			rm_tree(p);
		}
}

static int create_file(const char *path, uint64_t size, int *ret_fd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (ret_fd)
		*ret_fd = fd;
	else
		close(fd);
	return 0;
}

int template_build_begin(const struct template_spec *s, int lock_fd, struct template_build **ret,
                         struct hull_error **err)
{
	struct template_build *b = xcalloc(1, sizeof(*b));
	_cleanup_free_ char *state = NULL;
	int r;

	b->lock_fd = lock_fd;
	b->state_fd = -1;
	r = template_key(s, &b->key, &b->id, err);
	if (r < 0)
		goto fail;
	b->store = template_store_path(s->root);
	remove_old_builds(b->store, b->id);
	b->dir = xasprintf("%s/.build-%s-%d", b->store, b->id, (int)getpid());
	b->shared = xasprintf("%s/shared", b->dir);
	b->ram = xasprintf("%s/ram", b->dir);
	b->blank = xasprintf("%s/blank", b->dir);
	state = xasprintf("%s/state", b->dir);
	if (mkdir(b->dir, 0700) < 0 || mkdir(b->shared, 0700) < 0) {
		r = hull_error_set_errno(err, -errno, "create '%s'", b->dir);
		goto fail;
	}
	r = create_file(b->ram, s->vm->memory_mib << 20, NULL);
	if (r == 0)
		r = create_file(b->blank, TEMPLATE_BLANK_SIZE, NULL);
	if (r == 0)
		r = create_file(state, 0, &b->state_fd);
	if (r < 0) {
		hull_error_set_errno(err, r, "create the files of '%s'", b->dir);
		goto fail;
	}
	*ret = b;
	return 0;
fail:
	if (b->dir)
		rm_tree(b->dir);
	template_build_free(b);
	return r;
}

int template_build_commit(struct template_build *b, struct hull_error **err)
{
	_cleanup_free_ char *meta = xasprintf("%s/meta", b->dir);
	_cleanup_free_ char *extents_path = xasprintf("%s/extents", b->dir);
	_cleanup_free_ char *final = xasprintf("%s/%s", b->store, b->id);
	_cleanup_free_ char *text = NULL, *extents = NULL;
	_cleanup_close_ int fd = -1, efd = -1, rfd = -1;
	struct stat st, rst;
	uint64_t h, kept;
	int r;

	if (fstat(b->state_fd, &st) < 0 || st.st_size == 0 || hash_fd(b->state_fd, &h) < 0)
		return hull_error_set(err, -EIO, "template %s: no state was written", b->id);
	rfd = open(b->ram, O_RDONLY | O_CLOEXEC);
	if (rfd < 0 || fstat(rfd, &rst) < 0)
		return hull_error_set_errno(err, -errno, "template %s: ram", b->id);
	/* What the template's guest wrote: the rest of the file is holes, which clones
	 * fill with zero pages as they fault them in; template_reclaim() gives those
	 * back. */
	extents = ram_extents(rfd, &kept);
	efd = open(extents_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (efd < 0 || write_all(efd, extents, strlen(extents)) < 0)
		return hull_error_set_errno(err, -errno, "write '%s'", extents_path);
	text = xasprintf("%s" META_SEPARATOR "ram_size=%llu\nstate_size=%llu\nstate_hash=%016llx\n"
	                 "extents_hash=%016llx\nkept=%llu\ncreated=%lld\n",
	                 b->key, (unsigned long long)rst.st_size, (unsigned long long)st.st_size,
	                 (unsigned long long)h,
	                 (unsigned long long)fnv1a(FNV1A_INIT, extents, strlen(extents)),
	                 (unsigned long long)kept, (long long)time(NULL));
	fd = open(meta, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
		return hull_error_set_errno(err, -errno, "write '%s'", meta);
	/* What only the build needed goes; the rest becomes the template in one rename. */
	rm_tree(b->shared);
	if (rename(b->dir, final) < 0) {
		r = -errno;
		if (r != -EEXIST && r != -ENOTEMPTY)
			return hull_error_set_errno(err, r, "move '%s' into place", b->dir);
		/* A damaged one nobody removed yet: ours replaces it. */
		remove_dir(b->store, final);
		if (rename(b->dir, final) < 0)
			return hull_error_set_errno(err, -errno, "move '%s' into place", b->dir);
	}
	free(b->dir);
	b->dir = NULL;
	{
		_cleanup_free_ char *failed = xasprintf("%s/%s.failed", b->store, b->id);
		(void)unlink(failed);
	}
	log_info("template %s built", b->id);
	template_build_free(b);
	return 0;
}

void template_build_abort(struct template_build *b, const char *reason)
{
	if (!b)
		return;
	if (b->dir)
		rm_tree(b->dir);
	if (reason) {
		log_info("template %s not built: %s", b->id, reason);
		write_failed(b->store, b->id, reason);
	}
	template_build_free(b);
}

void template_forget_failure(const char *root, const char *id)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_free_ char *path = xasprintf("%s/%s.failed", store, id);
	(void)unlink(path);
}

void template_restore_failed(const char *root, const char *id, const char *reason)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_free_ char *dir = xasprintf("%s/%s", store, id);
	_cleanup_free_ char *why = xasprintf("restore failed: %s", reason);
	log_info("template %s: %s; removed", id, why);
	write_failed(store, id, why);
	remove_dir(store, dir);
}

/* ---- listing and removal ------------------------------------------------------------ */

/* The path in identity()'s text: "PATH missing" or "PATH DEV:INO SIZE MTIME", where
 * PATH may hold spaces (the other fields do not). NULL when it is neither. */
static char *identity_path(const char *value)
{
	static const char missing[] = " missing";
	size_t n = strlen(value), m = strlen(missing);
	const char *end = value + n;

	if (n > m && strcmp(end - m, missing) == 0)
		return xstrndup(value, n - m);
	for (int field = 0; field < 3; field++) {
		while (end > value && end[-1] != ' ')
			end--;
		if (end == value)
			return NULL;
		end--; /* the space before the field */
	}
	return end > value ? xstrndup(value, (size_t)(end - value)) : NULL;
}

/* Is any file named in key changed or gone? */
static bool key_stale(const char *key)
{
	for (const char *p = key; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		_cleanup_free_ char *line = xstrndup(p, len);
		char *eq = strchr(line, '=');
		p = nl ? nl + 1 : NULL;
		if (!eq)
			continue;
		*eq = '\0';
		if (strcmp(line, "qemu") && strcmp(line, "kernel") && strcmp(line, "initrd") &&
		    strcmp(line, "firmware"))
			continue;
		{
			_cleanup_free_ char *path = identity_path(eq + 1);
			_cleanup_free_ char *now = path ? identity(path) : NULL;
			if (!now || strcmp(now, eq + 1) != 0)
				return true;
		}
	}
	return false;
}

static bool is_template_name(const char *n)
{
	size_t len = strlen(n);
	if (len != 16)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdef", n[i]))
			return false;
	return true;
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct template_info *)a)->id, ((const struct template_info *)b)->id);
}

int template_list(const char *root, struct template_info **ret, size_t *ret_n,
                  struct hull_error **err)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_(closedirp) DIR *d = opendir(store);
	struct template_info *v = NULL;
	struct dirent *de;
	size_t n = 0;

	if (!d && errno != ENOENT)
		return hull_error_set_errno(err, -errno, "open '%s'", store);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *meta = NULL, *text = NULL, *ram = NULL;
		struct template_info t = {0};
		struct meta m;
		struct stat st;

		if (!is_template_name(de->d_name))
			continue;
		meta = xasprintf("%s/%s/meta", store, de->d_name);
		ram = xasprintf("%s/%s/ram", store, de->d_name);
		if (read_small(meta, &text, META_MAX) < 0 || meta_parse(text, &t.key, &m) < 0) {
			t.key = xstrdup("");
			t.stale = true;
		} else {
			t.stale = key_stale(t.key);
			t.state_bytes = m.state_size;
			t.created = (time_t)m.created;
		}
		if (stat(ram, &st) == 0)
			t.ram_bytes = (uint64_t)st.st_blocks * 512;
		t.id = xstrdup(de->d_name);
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = t;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_info);
	*ret = v;
	*ret_n = n;
	return 0;
}

void template_info_free(struct template_info *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].id);
		free(t[i].key);
	}
	free(t);
}

int template_remove(const char *root, const char *id, struct hull_error **err)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_free_ char *dir = NULL, *failed = NULL;
	struct stat st;

	if (!is_template_name(id))
		return hull_error_set(err, -EINVAL, "'%.64s' is not a template id", id);
	dir = xasprintf("%s/%s", store, id);
	failed = xasprintf("%s/%s.failed", store, id);
	(void)unlink(failed);
	if (lstat(dir, &st) < 0)
		return hull_error_set(err, -ENOENT, "no template '%s'", id);
	remove_dir(store, dir);
	return 0;
}

int template_prune(const char *root)
{
	_cleanup_free_ char *store = template_store_path(root);
	_cleanup_(closedirp) DIR *d = opendir(store);
	struct template_info *v = NULL;
	struct dirent *de;
	size_t n = 0;
	int removed = 0;

	if (template_list(root, &v, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			if (v[i].stale && template_remove(root, v[i].id, NULL) == 0)
				removed++;
	template_info_free(v, n);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = xasprintf("%s/%s", store, de->d_name);
		const char *dot = strchr(de->d_name, '.');
		if (strncmp(de->d_name, ".trash-", 7) == 0) {
			rm_tree(p);
		} else if (strncmp(de->d_name, ".build-", 7) == 0 && strlen(de->d_name) > 24) {
			/* Nobody builds it when its lock is free. */
			_cleanup_free_ char *id = xstrndup(de->d_name + 7, 16);
			int fd = -1;
			if (template_lock(root, id, &fd, NULL) == 1) {
				rm_tree(p);
				close(fd);
			}
		} else if (dot && strncmp(dot, ".failed", 7) == 0) {
			/* A record, or one being written by a process that died. */
			(void)unlink(p);
		} else if (dot && strcmp(dot, ".lock") == 0) {
			_cleanup_free_ char *id = xstrndup(de->d_name, (size_t)(dot - de->d_name));
			_cleanup_free_ char *dir = xasprintf("%s/%s", store, id);
			int fd = -1;
			/* Unlinked while held: a process that opened the old one sees it
			 * replaced (template_lock) and takes the new one. */
			if (access(dir, F_OK) < 0 && template_lock(root, id, &fd, NULL) == 1) {
				(void)unlink(p);
				close(fd);
			}
		}
	}
	return removed;
}
