/* SPDX-License-Identifier: MIT */
/* The content-addressed image store:
 *   ROOT/blobs/sha256/<hex>  verified blobs (temp file, fsync, rename: never torn)
 *   ROOT/refs/<name>         a manifest digest per image name ('/' written as '+')
 *   ROOT/rootfs/<hex>/       an image's unpacked root filesystem, by manifest digest
 *   ROOT/layers/<hex>.erofs  a layer as a read-only erofs image, by diff_id
 *   ROOT/tmp/                work in progress, on the same filesystem
 *   ROOT/lock                flock: exclusive for prune, shared while tagging */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "image.h"
#include "log.h"
#include "util.h"

struct image_store {
	char *root;
	int lock_fd;
	bool privileged; /* device nodes kept: trees and layer images of their own */
};

void image_store_set_privileged(struct image_store *s, bool on)
{
	s->privileged = on;
}

char *image_store_default_root(void)
{
	const char *env = getenv("HULL_IMAGE_ROOT");
	if (env && *env)
		return xstrdup(env);
	if (geteuid() == 0)
		return xstrdup("/var/lib/hull/images");
	env = getenv("HOME");
	return xasprintf("%s/.local/share/hull/images", env && *env ? env : "/tmp");
}

int image_store_open(const char *root, struct image_store **ret, struct hull_error **err)
{
	struct image_store *s = xcalloc(1, sizeof(*s));
	s->root = root ? xstrdup(root) : image_store_default_root();
	for (const char *sub = "blobs/sha256\0refs\0rootfs\0layers\0tmp\0"; *sub;
	     sub += strlen(sub) + 1) {
		_cleanup_free_ char *d = xasprintf("%s/%s", s->root, sub);
		int r = mkdir_p(d, 0700);
		if (r < 0) {
			hull_error_set_errno(err, r, "image store '%s'", s->root);
			image_store_close(s);
			return r;
		}
	}
	_cleanup_free_ char *lock = xasprintf("%s/lock", s->root);
	s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		int r = hull_error_set_errno(err, -errno, "image store lock '%s'", lock);
		image_store_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

void image_store_close(struct image_store *s)
{
	if (!s)
		return;
	if (s->lock_fd > 0)
		close(s->lock_fd);
	free(s->root);
	free(s);
}

const char *image_store_root(const struct image_store *s)
{
	return s->root;
}

void image_store_hold(struct image_store *s)
{
	(void)flock(s->lock_fd, LOCK_SH);
}

char *image_store_blob_path(const struct image_store *s, const char *digest)
{
	return xasprintf("%s/blobs/sha256/%s", s->root, digest + 7);
}

bool image_store_has_blob(struct image_store *s, const char *digest)
{
	_cleanup_free_ char *p = image_store_blob_path(s, digest);
	return digest_is_valid(digest) && access(p, F_OK) == 0;
}

/* A temp file in ROOT/tmp; the caller renames or unlinks it. */
static int tmp_file(struct image_store *s, char **path)
{
	*path = xasprintf("%s/tmp/blob.XXXXXX", s->root);
	int fd = mkostemp(*path, O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		free(*path);
		*path = NULL;
		return r;
	}
	return fd;
}

static int commit_tmp(struct image_store *s, int fd, char *tmp, const char *digest,
                      struct hull_error **err)
{
	_cleanup_free_ char *dst = image_store_blob_path(s, digest);
	if (fsync(fd) < 0 || rename(tmp, dst) < 0) {
		int r = hull_error_set_errno(err, -errno, "store blob %s", digest);
		(void)unlink(tmp);
		return r;
	}
	return 0;
}

int image_store_put_blob(struct image_store *s, const char *digest, int64_t size, int fd,
                         struct hull_error **err)
{
	_cleanup_free_ char *tmp = NULL, *got = NULL;
	_cleanup_close_ int out = -1;
	struct sha256 *h;
	uint8_t buf[1 << 16];
	int64_t total = 0;
	ssize_t n;
	int r;

	if (!digest_is_valid(digest))
		return hull_error_set(err, -EINVAL, "blob digest '%.80s' is not sha256:<64 hex>",
		                      digest);
	if (image_store_has_blob(s, digest))
		return 0;
	out = tmp_file(s, &tmp);
	if (out < 0)
		return hull_error_set_errno(err, out, "image store temp file");
	h = sha256_new();
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sha256_update(h, buf, (size_t)n);
		total += n;
		if ((size >= 0 && total > size) || write_all(out, buf, (size_t)n) < 0)
			break;
	}
	got = sha256_finish(h);
	if (n < 0)
		r = hull_error_set_errno(err, -errno, "read blob %s", digest);
	else if (size >= 0 && total != size)
		r = hull_error_set(err, -EBADMSG, "blob %s: %s bytes, the manifest says %lld",
		                   digest, total > size ? "more" : "fewer", (long long)size);
	else if (n > 0)
		r = hull_error_set_errno(err, -errno, "write blob %s", digest);
	else if (strcmp(got, digest) != 0)
		r = hull_error_set(err, -EBADMSG, "blob %s: its content hashes to %s", digest, got);
	else
		return commit_tmp(s, out, tmp, digest, err);
	(void)unlink(tmp);
	return r;
}

int image_store_put_blob_mem(struct image_store *s, const void *data, size_t len, char **digest,
                             struct hull_error **err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int out = -1;
	char *d = sha256_of(data, len);

	*digest = d;
	if (image_store_has_blob(s, d))
		return 0;
	out = tmp_file(s, &tmp);
	if (out < 0)
		return hull_error_set_errno(err, out, "image store temp file");
	if (write_all(out, data, len) < 0) {
		int r = hull_error_set_errno(err, -errno, "write blob %s", d);
		(void)unlink(tmp);
		return r;
	}
	return commit_tmp(s, out, tmp, d, err);
}

int image_store_read_blob(struct image_store *s, const char *digest, size_t max, char **data,
                          size_t *len, struct hull_error **err)
{
	_cleanup_free_ char *path = NULL, *got = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;
	char *buf;
	ssize_t n;

	if (!digest_is_valid(digest))
		return hull_error_set(err, -EINVAL, "digest '%.80s' is not sha256:<64 hex>",
		                      digest);
	path = image_store_blob_path(s, digest);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return hull_error_set_errno(err, -errno, "blob %s", digest);
	if ((uint64_t)st.st_size > max)
		return hull_error_set(err, -E2BIG, "blob %s: %lld bytes, at most %zu", digest,
		                      (long long)st.st_size, max);
	buf = xmalloc((size_t)st.st_size + 1);
	n = read_all(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		free(buf);
		return hull_error_set_errno(err, n < 0 ? (int)n : -EIO, "read blob %s", digest);
	}
	buf[n] = '\0';
	/* The file could have been changed behind the store's back: check again. */
	got = sha256_of(buf, (size_t)n);
	if (strcmp(got, digest) != 0) {
		free(buf);
		return hull_error_set(err, -EBADMSG, "blob %s is corrupt (hashes to %s)", digest,
		                      got);
	}
	*data = buf;
	*len = (size_t)n;
	return 0;
}

/* ---- names ---- */

static char *ref_path(struct image_store *s, const char *name)
{
	_cleanup_free_ char *esc = xstrdup(name);
	for (char *p = esc; *p; p++)
		if (*p == '/')
			*p = '+';
	return xasprintf("%s/refs/%s", s->root, esc);
}

int image_store_tag(struct image_store *s, const char *name, const char *digest,
                    struct hull_error **err)
{
	_cleanup_free_ char *path = ref_path(s, name), *tmp = NULL, *line = NULL;
	_cleanup_close_ int fd = -1;

	if (!digest_is_valid(digest) || !image_store_has_blob(s, digest))
		return hull_error_set(err, -ENOENT, "tag '%s': no manifest %s in the store", name,
		                      digest);
	(void)flock(s->lock_fd, LOCK_SH);
	fd = tmp_file(s, &tmp);
	line = xasprintf("%s\n", digest);
	if (fd < 0 || write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		int r = hull_error_set_errno(err, fd < 0 ? fd : -errno, "tag '%s'", name);
		if (tmp)
			(void)unlink(tmp);
		(void)flock(s->lock_fd, LOCK_UN);
		return r;
	}
	(void)flock(s->lock_fd, LOCK_UN);
	return 0;
}

static int read_ref(const char *path, char **digest)
{
	char buf[128];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -errno : read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!digest_is_valid(buf))
		return -EBADMSG;
	*digest = xstrdup(buf);
	return 0;
}

int image_store_resolve(struct image_store *s, const char *name, char **digest,
                        struct hull_error **err)
{
	_cleanup_free_ char *path = ref_path(s, name);
	int r = read_ref(path, digest);
	if (r == -ENOENT)
		return hull_error_set(err, r, "no image '%s' in the store (hull images lists them)",
		                      name);
	if (r < 0)
		return hull_error_set_errno(err, r, "image '%s'", name);
	return 0;
}

int image_store_untag(struct image_store *s, const char *name, struct hull_error **err)
{
	_cleanup_free_ char *path = ref_path(s, name);
	if (unlink(path) < 0)
		return hull_error_set_errno(err, -errno, "image '%s'", name);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int image_store_list(struct image_store *s, char ***names, char ***digests, struct hull_error **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/refs", s->root);
	_cleanup_(closedirp) DIR *d = opendir(dir);
	struct dirent *de;
	char **n = xcalloc(1, sizeof(char *));

	if (!d) {
		free(n);
		return hull_error_set_errno(err, -errno, "image store '%s'", dir);
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			char *name = xstrdup(de->d_name);
			for (char *p = name; *p; p++)
				if (*p == '+')
					*p = '/';
			strv_push(&n, name);
		}
	qsort(n, strv_length(n), sizeof(char *), name_cmp);
	*digests = xcalloc(strv_length(n) + 1, sizeof(char *));
	for (size_t i = 0; n[i]; i++) {
		_cleanup_free_ char *p = ref_path(s, n[i]);
		if (read_ref(p, &(*digests)[i]) < 0)
			(*digests)[i] = xstrdup("?");
	}
	*names = n;
	return 0;
}

/* ---- images ---- */

int image_store_load(struct image_store *s, const char *manifest_digest, struct image_manifest *m,
                     struct image_config *c, struct hull_error **err)
{
	_cleanup_free_ char *json = NULL, *cjson = NULL;
	size_t len, clen;
	int r;

	r = image_store_read_blob(s, manifest_digest, IMAGE_MAX_JSON, &json, &len, err);
	if (r < 0)
		return r;
	r = image_parse_manifest(json, len, m, err);
	if (r < 0)
		return r;
	if (m->is_index) {
		image_manifest_done(m);
		return hull_error_set(err, -EINVAL, "%s is an index, not an image manifest",
		                      manifest_digest);
	}
	r = image_store_read_blob(s, m->entries[0].digest, IMAGE_MAX_JSON, &cjson, &clen, err);
	if (r >= 0)
		r = image_parse_config(cjson, clen, c, err);
	if (r >= 0 && c->n_diff_ids != m->n_entries - 1)
		r = hull_error_set(err, -EINVAL,
		                   "image %s: %zu layers but the config lists %zu diff_ids",
		                   manifest_digest, m->n_entries - 1, c->n_diff_ids);
	if (r < 0) {
		image_manifest_done(m);
		image_config_done(c);
	}
	return r;
}

int image_store_rootfs(struct image_store *s, const char *manifest_digest, char **path,
                       struct hull_error **err)
{
	_cleanup_free_ char *dst =
	    xasprintf("%s/rootfs/%s%s", s->root, manifest_digest + 7, s->privileged ? "-dev" : "");
	_cleanup_free_ char *tmp = NULL;
	struct image_manifest m = {0};
	struct image_config c = {0};
	struct stat st;
	int r, dirfd = -1;

	if (stat(dst, &st) == 0) {
		*path = TAKE_PTR(dst);
		return 0;
	}
	r = image_store_load(s, manifest_digest, &m, &c, err);
	if (r < 0)
		return r;
	/* Unpacked beside, renamed into place whole: a half-unpacked image is never seen,
	 * and of two concurrent unpacks the second rename loses harmlessly. */
	tmp = xasprintf("%s/tmp/rootfs.XXXXXX", s->root);
	if (!mkdtemp(tmp)) {
		r = hull_error_set_errno(err, -errno, "image store temp dir");
		goto out;
	}
	(void)chmod(tmp, 0755);
	dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 1; r >= 0 && i < m.n_entries; i++) {
		_cleanup_free_ char *blob = image_store_blob_path(s, m.entries[i].digest);
		_cleanup_free_ char *diff_id = NULL;
		r = image_apply_layer(dirfd, blob, s->privileged ? IMAGE_LAYER_PRIVILEGED : 0,
		                      &diff_id, err);
		if (r >= 0 && strcmp(diff_id, c.diff_ids[i - 1]) != 0)
			r = hull_error_set(
			    err, -EBADMSG,
			    "layer %zu (%s): uncompressed it hashes to %s, the config "
			    "says %s",
			    i - 1, m.entries[i].digest, diff_id, c.diff_ids[i - 1]);
		if (r < 0)
			hull_error_prefix(err, "image %.19s", manifest_digest);
	}
	if (r >= 0 && rename(tmp, dst) < 0 && errno != EEXIST && errno != ENOTEMPTY)
		r = hull_error_set_errno(err, -errno, "image rootfs '%s'", dst);
	if (r >= 0)
		*path = TAKE_PTR(dst);
out:
	if (dirfd >= 0)
		close(dirfd);
	if (tmp && access(tmp, F_OK) == 0)
		rm_tree(tmp);
	image_manifest_done(&m);
	image_config_done(&c);
	return r;
}

/* ---- prune ---- */

static void mark(char ***keep, const char *digest)
{
	strv_push(keep, xstrdup(digest));
}

static bool marked(char **keep, const char *name)
{
	/* "<hex>", "<hex>-dev", "<hex>.erofs", "<hex>-dev.erofs" */
	if (strlen(name) < 64 || (name[64] && name[64] != '.' && name[64] != '-'))
		return false;
	for (char **k = keep; k && *k; k++)
		if (strncmp(*k + 7, name, 64) == 0)
			return true;
	return false;
}

int image_store_prune(struct image_store *s, size_t *freed, struct hull_error **err)
{
	_cleanup_strv_free_ char **names = NULL, **digests = NULL, **keep = NULL;
	int r;

	*freed = 0;
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return hull_error_set_errno(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
		                            "images are in use by running sandboxes; prune later");
	r = image_store_list(s, &names, &digests, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; digests[i]; i++) {
		struct image_manifest m = {0};
		_cleanup_free_ char *json = NULL;
		size_t len;
		if (!digest_is_valid(digests[i]))
			continue;
		mark(&keep, digests[i]);
		if (image_store_read_blob(s, digests[i], IMAGE_MAX_JSON, &json, &len, NULL) < 0 ||
		    image_parse_manifest(json, len, &m, NULL) < 0)
			continue;
		for (size_t k = 0; k < m.n_entries; k++)
			mark(&keep, m.entries[k].digest);
		image_manifest_done(&m);
		{
			struct image_manifest im = {0};
			struct image_config c = {0};
			if (image_store_load(s, digests[i], &im, &c, NULL) == 0) {
				for (size_t k = 0; k < c.n_diff_ids; k++)
					mark(&keep, c.diff_ids[k]);
				image_manifest_done(&im);
				image_config_done(&c);
			}
		}
	}
	/* Work left in tmp/ by a process that died: partial blobs nobody fetches now
	 * (their lock is free), anything else after an hour. */
	{
		_cleanup_free_ char *dir = xasprintf("%s/tmp", s->root);
		_cleanup_(closedirp) DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			_cleanup_free_ char *p = NULL;
			struct stat st;
			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			if (lstat(p, &st) < 0)
				continue;
			if (strstr(de->d_name, ".partial")) {
				_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
				if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
					continue;
			} else if (st.st_mtime + 3600 > time(NULL)) {
				continue;
			}
			rm_tree(p);
			(*freed)++;
		}
	}
	for (const char *sub = "blobs/sha256\0rootfs\0layers\0"; *sub; sub += strlen(sub) + 1) {
		_cleanup_free_ char *dir = xasprintf("%s/%s", s->root, sub);
		_cleanup_(closedirp) DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.' || marked(keep, de->d_name))
				continue;
			_cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
			rm_tree(p);
			(*freed)++;
		}
	}
out:
	(void)flock(s->lock_fd, LOCK_UN);
	return r;
}

/* ---- how an image reaches the guest ---- */

bool image_backend_erofs(void)
{
	const char *b = getenv("HULL_IMAGE_BACKEND");
	if (b && *b)
		return strcmp(b, "erofs") == 0 && geteuid() == 0;
	/* Whiteouts as devices and trusted xattrs need root; mkfs.erofs must be there. */
	if (geteuid() != 0)
		return false;
	for (const char *dir = "/usr/sbin\0/usr/bin\0/sbin\0/bin\0"; *dir; dir += strlen(dir) + 1) {
		_cleanup_free_ char *p = xasprintf("%s/mkfs.erofs", dir);
		if (access(p, X_OK) == 0)
			return true;
	}
	return false;
}

int image_store_prepare(struct image_store *s, const char *manifest_digest, struct hull_error **err)
{
	_cleanup_strv_free_ char **layers = NULL;
	_cleanup_free_ char *rootfs = NULL;
	if (image_backend_erofs())
		return image_store_layer_images(s, manifest_digest, &layers, err);
	return image_store_rootfs(s, manifest_digest, &rootfs, err);
}

/* ---- layers as block images ---- */

static int run_mkfs_erofs(const char *image, const char *tree, struct hull_error **err)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return hull_error_set_errno(err, -errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		/* Uncompressed: under TCG decompression costs more than the bytes saved. */
		execlp("mkfs.erofs", "mkfs.erofs", "--quiet", "-x1", image, tree, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return hull_error_set_errno(err, -errno, "wait for mkfs.erofs");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return hull_error_set(err, -EIO, "mkfs.erofs failed (status %d%s)",
		                      WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		                      WIFEXITED(status) && WEXITSTATUS(status) == 127
		                          ? ": is erofs-utils installed?"
		                          : "");
	return 0;
}

int image_store_layer_image(struct image_store *s, const char *blob_digest, const char *diff_id,
                            char **path, struct hull_error **err)
{
	_cleanup_free_ char *dst =
	    xasprintf("%s/layers/%s%s.erofs", s->root, diff_id + 7, s->privileged ? "-dev" : "");
	_cleanup_free_ char *tmp = NULL, *tree = NULL, *img = NULL, *blob = NULL, *got = NULL;
	_cleanup_close_ int dirfd = -1;
	int r;

	if (access(dst, R_OK) == 0) {
		*path = TAKE_PTR(dst);
		return 0;
	}
	tmp = xasprintf("%s/tmp/layer.XXXXXX", s->root);
	if (!mkdtemp(tmp))
		return hull_error_set_errno(err, -errno, "image store temp dir");
	tree = xasprintf("%s/tree", tmp);
	img = xasprintf("%s/layer.erofs", tmp);
	blob = image_store_blob_path(s, blob_digest);
	r = mkdir(tree, 0755) < 0 ? -errno : 0;
	if (r >= 0)
		r = dirfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r < 0) {
		hull_error_set_errno(err, r, "'%s'", tree);
		goto out;
	}
	r = image_apply_layer(dirfd, blob,
	                      IMAGE_LAYER_OVERLAY | (s->privileged ? IMAGE_LAYER_PRIVILEGED : 0),
	                      &got, err);
	if (r >= 0 && strcmp(got, diff_id) != 0)
		r = hull_error_set(err, -EBADMSG, "layer %s: uncompressed it hashes to %s, not %s",
		                   blob_digest, got, diff_id);
	if (r >= 0)
		r = run_mkfs_erofs(img, tree, err);
	if (r >= 0 && rename(img, dst) < 0)
		r = hull_error_set_errno(err, -errno, "'%s'", dst);
	if (r >= 0)
		*path = TAKE_PTR(dst);
out:
	rm_tree(tmp);
	return r;
}

int image_store_layer_images(struct image_store *s, const char *manifest_digest, char ***paths,
                             struct hull_error **err)
{
	struct image_manifest m = {0};
	struct image_config c = {0};
	int r = image_store_load(s, manifest_digest, &m, &c, err);

	*paths = xcalloc(1, sizeof(char *));
	for (size_t i = 1; r >= 0 && i < m.n_entries; i++) {
		char *p = NULL;
		r = image_store_layer_image(s, m.entries[i].digest, c.diff_ids[i - 1], &p, err);
		if (r >= 0)
			strv_push(paths, p);
	}
	if (r >= 0 && m.n_entries < 2)
		r = hull_error_set(err, -EINVAL, "image %s has no layers", manifest_digest);
	image_manifest_done(&m);
	image_config_done(&c);
	if (r < 0) {
		strv_free(*paths);
		*paths = NULL;
	}
	return r;
}
