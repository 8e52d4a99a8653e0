/* SPDX-License-Identifier: MIT */
/* One layer tar onto a directory, the way the image spec says and without trusting
 * the tar: every name is relative to the directory and checked before use; libarchive
 * refuses what would land outside it (through "..", absolute names or a symlink on
 * disk); whiteouts are resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "image.h"
#include "log.h"
#include "util.h"

#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"

static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
	                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* Where the directory path (relative, clean) of an entry really is inside the tree
 * rootfd: symlinks among its components are followed as if the tree were "/" (an
 * image's /lib -> usr/lib is followed into the image, never out of it), and the
 * result has no symlink left, so extraction cannot be redirected. Components that do
 * not exist yet are kept as they are (extraction creates them). */
static int resolve_dir(int rootfd, const char *path, char **ret, struct hull_error **err)
{
	_cleanup_free_ char *root = NULL;
	char *cur = xstrdup("");
	struct stat st;
	char buf[64];

	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", rootfd);
	root = realpath(buf, NULL);
	if (!root) {
		free(cur);
		return hull_error_set_errno(err, -errno, "layer: the target directory");
	}
	for (const char *p = path; *p;) {
		const char *e = strchrnul(p, '/');
		char *next = *cur ? xasprintf("%s/%.*s", cur, (int)(e - p), p)
		                  : xasprintf("%.*s", (int)(e - p), p);
		free(cur);
		cur = next;
		if (fstatat(rootfd, cur, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) {
				int r = hull_error_set_errno(err, -errno, "layer: '%.256s'", cur);
				free(cur);
				return r;
			}
			/* The rest does not exist yet: no symlink can be in it. */
			char *all = *e ? xasprintf("%s%s", cur, e) : xstrdup(cur);
			free(cur);
			*ret = all;
			return 0;
		}
		if (S_ISLNK(st.st_mode)) {
			struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			                       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
			                                  RESOLVE_NO_XDEV};
			int fd = (int)syscall(SYS_openat2, rootfd, cur, &how, sizeof(how));
			char link[64];
			_cleanup_free_ char *real = NULL;
			if (fd < 0) {
				int r =
				    hull_error_set(err, -EPERM,
				                   "layer: '%.256s/...' goes through symlink "
				                   "'%.256s', which leads to no directory in the "
				                   "image",
				                   path, cur);
				free(cur);
				return r;
			}
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			real = realpath(link, NULL);
			close(fd);
			size_t n = strlen(root);
			free(cur);
			if (!real || strncmp(real, root, n) != 0 || (real[n] && real[n] != '/'))
				return hull_error_set(
				    err, -EPERM, "layer: '%.256s' resolves out of the image", path);
			cur = xstrdup(real[n] ? real + n + 1 : "");
		} else if (!S_ISDIR(st.st_mode)) {
			int r = hull_error_set(err, -ENOTDIR,
			                       "layer: '%.256s': '%.256s' is not a directory", path,
			                       cur);
			free(cur);
			return r;
		}
		p = *e ? e + 1 : e;
	}
	*ret = cur;
	return 0;
}

/* name with its directory part resolved (resolve_dir); the last component stays. */
static int resolve_entry(int rootfd, const char *name, char **ret, struct hull_error **err)
{
	const char *slash = strrchr(name, '/');
	_cleanup_free_ char *dir = NULL, *parent = NULL;
	int r;

	if (!slash) {
		*ret = xstrdup(name);
		return 0;
	}
	parent = xstrndup(name, (size_t)(slash - name));
	r = resolve_dir(rootfd, parent, &dir, err);
	if (r < 0)
		return r;
	*ret = *dir ? xasprintf("%s/%s", dir, slash + 1) : xstrdup(slash + 1);
	return 0;
}

/* A tar name made relative and clean: "./a//b/" -> "a/b"; NULL when it climbs out
 * ("..") or is empty after cleaning (the root itself). */
static char *clean_name(const char *name)
{
	char *out = xmalloc(strlen(name) + 1), *w = out;
	const char *p = name;

	while (*p) {
		const char *e;
		while (*p == '/')
			p++;
		e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			return NULL;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (w != out)
				*w++ = '/';
			memcpy(w, p, n);
			w += n;
		}
		p = e;
	}
	*w = '\0';
	if (w == out) {
		free(out);
		return NULL;
	}
	return out;
}

/* Remove name (a file or a whole tree) inside the directory parentfd. */
static int remove_beneath(int parentfd, const char *name)
{
	struct stat st;
	if (fstatat(parentfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parentfd, name, 0) < 0 ? -errno : 0;
	int fd = openat2_beneath(parentfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int r = 0;
	if (!d) {
		close(fd);
		return -errno;
	}
	while (r >= 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = remove_beneath(dirfd(d), de->d_name);
	closedir(d);
	if (r < 0)
		return r;
	return unlinkat(parentfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* A whiteout entry: "dir/.wh.name" removes dir/name from the layers below;
 * "dir/.wh..wh..opq" empties dir (its entries from this layer come after it). */
static int apply_whiteout(int rootfd, const char *clean, struct hull_error **err)
{
	const char *slash = strrchr(clean, '/');
	const char *base = slash ? slash + 1 : clean;
	_cleanup_free_ char *parent = NULL;
	_cleanup_close_ int pfd = -1;
	int r = 0;

	if (slash) {
		_cleanup_free_ char *dir = xstrndup(clean, (size_t)(slash - clean));
		r = resolve_dir(rootfd, dir, &parent, err);
		if (r < 0)
			return r;
	}
	pfd = openat2_beneath(rootfd, parent && *parent ? parent : ".", O_RDONLY | O_DIRECTORY);

	if (pfd < 0) {
		/* Nothing below to hide, or a symlink in the way (refused). */
		if (pfd == -ENOENT)
			return 0;
		return hull_error_set_errno(err, pfd, "whiteout '%.256s'", clean);
	}
	if (strcmp(base, OPAQUE) == 0) {
		DIR *d = fdopendir(dup(pfd));
		struct dirent *de;
		while (d && r >= 0 && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				r = remove_beneath(pfd, de->d_name);
		if (d)
			closedir(d);
	} else {
		const char *victim = base + strlen(WHITEOUT);
		if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
			return hull_error_set(err, -EINVAL, "whiteout '%.256s': no name", clean);
		r = remove_beneath(pfd, victim);
	}
	return r < 0 ? hull_error_set_errno(err, r, "whiteout '%.256s'", clean) : 0;
}

static void set_compressed_input(struct archive *a)
{
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_bzip2(a);
}

/* The digest of the uncompressed tar (a layer's diff_id). */
static int layer_diff_id(const char *blob_path, char **ret, struct hull_error **err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	struct sha256 *h;
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	set_compressed_input(a);
	archive_read_support_format_raw(a);
	if (archive_read_open_filename(a, blob_path, 1 << 16) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK) {
		r = hull_error_set(err, -EINVAL, "layer: %s", archive_error_string(a));
		archive_read_free(a);
		return r;
	}
	h = sha256_new();
	while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK)
		sha256_update(h, buf, size);
	*ret = sha256_finish(h);
	if (r != ARCHIVE_EOF) {
		r = hull_error_set(err, -EINVAL, "layer: %s", archive_error_string(a));
		free(*ret);
		*ret = NULL;
	} else {
		r = 0;
	}
	archive_read_free(a);
	return r;
}

/* An overlayfs whiteout for name in the layer tree (a 0/0 character device), or the
 * opaque mark on its directory: the layer stays a layer, for overlayfs to stack. */
static int overlay_whiteout(int rootfd, const char *clean, struct hull_error **err)
{
	const char *slash = strrchr(clean, '/');
	const char *base = slash ? slash + 1 : clean;
	_cleanup_free_ char *parent = NULL,
	                    *dir = slash ? xstrndup(clean, (size_t)(slash - clean)) : NULL;
	_cleanup_close_ int pfd = -1;
	int r;

	if (dir) {
		r = resolve_dir(rootfd, dir, &parent, err);
		if (r < 0)
			return r;
		/* What does not exist yet is made here, component by component, beneath. */
		for (char *p = parent; *p;) {
			char *e = strchrnul(p, '/');
			char c = *e;
			*e = '\0';
			if (mkdirat(rootfd, parent, 0755) < 0 && errno != EEXIST)
				return hull_error_set_errno(err, -errno, "whiteout '%.256s'",
				                            clean);
			*e = c;
			p = c ? e + 1 : e;
		}
	}
	pfd = openat2_beneath(rootfd, parent && *parent ? parent : ".", O_RDONLY | O_DIRECTORY);
	if (pfd < 0)
		return hull_error_set_errno(err, pfd, "whiteout '%.256s'", clean);
	if (strcmp(base, OPAQUE) == 0) {
		if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
			return hull_error_set_errno(err, -errno, "opaque '%.256s'", clean);
		return 0;
	}
	const char *victim = base + strlen(WHITEOUT);
	if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
		return hull_error_set(err, -EINVAL, "whiteout '%.256s': no name", clean);
	(void)remove_beneath(pfd, victim);
	if (mknodat(pfd, victim, S_IFCHR | 0000, makedev(0, 0)) < 0)
		return hull_error_set_errno(err, -errno, "whiteout '%.256s'", clean);
	return 0;
}

enum pass {
	PASS_WHITEOUTS, /* flatten: remove what the layer's whiteouts name, nothing else */
	PASS_ENTRIES,   /* flatten: everything but whiteouts */
	PASS_OVERLAY,   /* one pass: entries, and whiteouts in overlayfs form */
};

static int apply_pass(int dirfd, const char *blob_path, unsigned flags_in, enum pass pass,
                      struct hull_error **err)
{
	bool privileged = flags_in & IMAGE_LAYER_PRIVILEGED;
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	int flags = ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	            ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
	            ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK | ARCHIVE_EXTRACT_XATTR;
	_cleanup_close_ int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int in = open(blob_path, O_RDONLY | O_CLOEXEC);
	unsigned long skipped_devices = 0;
	int r = 0, ar;

	if (geteuid() == 0)
		flags |= ARCHIVE_EXTRACT_OWNER;
	archive_write_disk_set_options(w, flags);
	set_compressed_input(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (in < 0) {
		r = hull_error_set_errno(err, -errno, "'%s'", blob_path);
		goto out;
	}
	/* libarchive resolves names against the working directory: ours, for a while. */
	if (cwd < 0 || fchdir(dirfd) < 0) {
		r = hull_error_set_errno(err, -errno, "layer: enter the target directory");
		goto out;
	}
	if (archive_read_open_fd(a, in, 1 << 16) != ARCHIVE_OK) {
		r = hull_error_set(err, -EINVAL, "layer: %s", archive_error_string(a));
		goto out;
	}
	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		_cleanup_free_ char *clean = name ? clean_name(name) : NULL;
		const char *base;
		mode_t type = archive_entry_filetype(e);

		if (name && name[0] == '/') {
			/* Layers name files relative to the root; an absolute name is a
			 * hand-made (or hostile) tar. */
			r = hull_error_set(err, -EPERM, "layer: entry '%.256s' is an absolute path",
			                   name);
			goto out;
		}
		if (!clean) {
			if (name && strstr(name, "..")) {
				r = hull_error_set(err, -EPERM,
				                   "layer: entry '%.256s' climbs out of the image",
				                   name);
				goto out;
			}
			continue; /* "./": the root itself */
		}
		base = strrchr(clean, '/') ? strrchr(clean, '/') + 1 : clean;
		if (strncmp(base, WHITEOUT, strlen(WHITEOUT)) == 0) {
			if (pass == PASS_WHITEOUTS)
				r = apply_whiteout(dirfd, clean, err);
			else if (pass == PASS_OVERLAY)
				r = overlay_whiteout(dirfd, clean, err);
			if (r < 0)
				goto out;
			continue;
		}
		if (pass == PASS_WHITEOUTS)
			continue;
		if ((type == AE_IFCHR || type == AE_IFBLK) && !privileged) {
			skipped_devices++;
			continue;
		}
		{
			_cleanup_free_ char *where = NULL;
			r = resolve_entry(dirfd, clean, &where, err);
			if (r < 0)
				goto out;
			archive_entry_set_pathname(e, where);
		}
		if (archive_entry_hardlink(e)) {
			const char *t = archive_entry_hardlink(e);
			_cleanup_free_ char *target = t[0] == '/' ? NULL : clean_name(t);
			_cleanup_free_ char *where = NULL;
			if (!target) {
				r = hull_error_set(
				    err, -EPERM,
				    "layer: hard link '%.256s' points out of the image", clean);
				goto out;
			}
			r = resolve_entry(dirfd, target, &where, err);
			if (r < 0)
				goto out;
			archive_entry_set_hardlink(e, where);
		}
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			r = hull_error_set(err, -EPERM, "layer: '%.256s': %s", clean,
			                   archive_error_string(w));
			goto out;
		}
		if (archive_entry_size(e) > 0) {
			const void *buf;
			size_t size;
			la_int64_t off;
			while ((ar = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK)
				if (archive_write_data_block(w, buf, size, off) != ARCHIVE_OK) {
					r = hull_error_set(err, -EIO, "layer: '%.256s': %s", clean,
					                   archive_error_string(w));
					goto out;
				}
			if (ar != ARCHIVE_EOF) {
				r = hull_error_set(err, -EINVAL, "layer: '%.256s': %s", clean,
				                   archive_error_string(a));
				goto out;
			}
		}
		if (archive_write_finish_entry(w) != ARCHIVE_OK) {
			r = hull_error_set(err, -EIO, "layer: '%.256s': %s", clean,
			                   archive_error_string(w));
			goto out;
		}
	}
	if (ar != ARCHIVE_EOF) {
		r = hull_error_set(err, -EINVAL, "layer: %s", archive_error_string(a));
		goto out;
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		r = hull_error_set(err, -EIO, "layer: %s", archive_error_string(w));
		goto out;
	}
	if (skipped_devices && pass != PASS_WHITEOUTS)
		log_info("layer: %lu device nodes skipped (unprivileged image)", skipped_devices);
out:
	archive_read_free(a);
	archive_write_free(w);
	if (cwd >= 0)
		(void)!fchdir(cwd);
	return r;
}

int image_apply_layer(int dirfd, const char *blob_path, unsigned flags, char **diff_id,
                      struct hull_error **err)
{
	int r;
	if (flags & IMAGE_LAYER_OVERLAY) {
		r = apply_pass(dirfd, blob_path, flags, PASS_OVERLAY, err);
	} else {
		/* Whiteouts hide the layers below, never this layer's own entries, whatever
		 * their order in the tar: all of them first, then the entries. */
		r = apply_pass(dirfd, blob_path, flags, PASS_WHITEOUTS, err);
		if (r >= 0)
			r = apply_pass(dirfd, blob_path, flags, PASS_ENTRIES, err);
	}
	if (r >= 0 && diff_id)
		r = layer_diff_id(blob_path, diff_id, err);
	return r;
}
