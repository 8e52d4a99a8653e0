/* SPDX-License-Identifier: MIT */
/* hull load: images from an OCI image layout (a directory, or an oci-archive tar of
 * one) or a docker-archive (what `docker save` writes) into the store. Every blob is
 * verified against its digest on the way in; an image is unpacked, then named, so a
 * failed load leaves no name pointing at a partial or unusable image. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "json.h"
#include "log.h"
#include "util.h"

static int read_small(int dirfd, const char *name, size_t max, char **data, size_t *len,
                      struct hull_error **err)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return hull_error_set_errno(err, -errno, "'%s'", name);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max)
		return hull_error_set(err, -E2BIG, "'%s': not a file of at most %zu bytes", name,
		                      max);
	*data = xmalloc((size_t)st.st_size + 1);
	n = read_all(fd, *data, (size_t)st.st_size);
	if (n != st.st_size) {
		free(*data);
		return hull_error_set_errno(err, n < 0 ? (int)n : -EIO, "read '%s'", name);
	}
	(*data)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

/* Copy the layout's blob into the store, verified. */
static int copy_blob(struct image_store *s, int dirfd, const struct image_desc *d,
                     struct hull_error **err)
{
	_cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", d->digest + 7);
	_cleanup_close_ int fd = -1;

	if (image_store_has_blob(s, d->digest))
		return 0;
	fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hull_error_set_errno(err, -errno, "blob %s", d->digest);
	return image_store_put_blob(s, d->digest, d->size, fd, err);
}

/* One image manifest (and what it names) from the layout into the store. */
static int load_manifest(struct image_store *s, int dirfd, const struct image_desc *d,
                         struct hull_error **err)
{
	_cleanup_free_ char *json = NULL;
	struct image_manifest m = {0};
	size_t len;
	int r;

	r = copy_blob(s, dirfd, d, err);
	if (r < 0)
		return r;
	r = image_store_read_blob(s, d->digest, IMAGE_MAX_JSON, &json, &len, err);
	if (r < 0)
		return r;
	r = image_parse_manifest(json, len, &m, err);
	if (r < 0)
		return r;
	if (m.is_index) {
		/* A multi-platform image: ours (linux/amd64) and nothing else. */
		const struct image_desc *e = image_index_select(&m, "linux", "amd64");
		if (!e)
			r = hull_error_set(err, -ENOENT, "%s: no linux/amd64 image in the index",
			                   d->digest);
		else
			r = load_manifest(s, dirfd, e, err);
	} else {
		for (size_t i = 0; r >= 0 && i < m.n_entries; i++)
			r = copy_blob(s, dirfd, &m.entries[i], err);
	}
	image_manifest_done(&m);
	return r;
}

/* The image manifest digest a descriptor resolves to (through an index). */
static int image_digest(struct image_store *s, const char *digest, char **ret,
                        struct hull_error **err)
{
	_cleanup_free_ char *json = NULL;
	struct image_manifest m = {0};
	size_t len;
	int r = image_store_read_blob(s, digest, IMAGE_MAX_JSON, &json, &len, err);
	if (r < 0)
		return r;
	r = image_parse_manifest(json, len, &m, err);
	if (r < 0)
		return r;
	if (!m.is_index) {
		*ret = xstrdup(digest);
	} else {
		const struct image_desc *e = image_index_select(&m, "linux", "amd64");
		r = e ? image_digest(s, e->digest, ret, err)
		      : hull_error_set(err, -ENOENT, "%s: no linux/amd64 image", digest);
	}
	image_manifest_done(&m);
	return r;
}

/* Unpacked before it is named: a layer that cannot be applied (a hostile one) fails
 * the load, and no name ever points at an image that cannot run. */
static int unpack_then_tag(struct image_store *s, const char *name, const char *digest,
                           struct hull_error **err)
{
	int r = image_store_prepare(s, digest, err);
	return r < 0 ? r : image_store_tag(s, name, digest, err);
}

/* A name an index entry carries, as a full reference; NULL when it has none. */
static char *entry_name(const struct image_desc *d)
{
	struct image_ref ref;
	const char *n = d->image_name ? d->image_name : d->ref_name;
	char *s;
	/* A bare tag ("latest") names no repository. */
	if (!n || (!strchr(n, '/') && !strchr(n, ':') && !d->image_name))
		return NULL;
	if (image_ref_parse(n, &ref, NULL) < 0)
		return NULL;
	s = image_ref_string(&ref);
	image_ref_done(&ref);
	return s;
}

static int load_layout(struct image_store *s, int dirfd, char ***names, struct hull_error **err)
{
	_cleanup_free_ char *json = NULL;
	struct image_manifest index = {0};
	size_t len;
	int r;

	r = read_small(dirfd, "index.json", IMAGE_MAX_JSON, &json, &len, err);
	if (r < 0)
		return hull_error_prefix(err, "OCI layout");
	r = image_parse_manifest(json, len, &index, err);
	if (r >= 0 && !index.is_index)
		r = hull_error_set(err, -EINVAL, "OCI layout: index.json is not an index");
	if (r < 0)
		return hull_error_prefix(err, "OCI layout");
	/* All blobs first; names last, so no name points at a partial image. */
	for (size_t i = 0; r >= 0 && i < index.n_entries; i++)
		r = load_manifest(s, dirfd, &index.entries[i], err);
	for (size_t i = 0; r >= 0 && i < index.n_entries; i++) {
		_cleanup_free_ char *name = entry_name(&index.entries[i]), *digest = NULL;
		if (!name)
			continue;
		r = image_digest(s, index.entries[i].digest, &digest, err);
		if (r >= 0)
			r = unpack_then_tag(s, name, digest, err);
		if (r >= 0)
			strv_push(names, TAKE_PTR(name));
	}
	image_manifest_done(&index);
	return r;
}

/* docker save: manifest.json lists each image's config file, tags and layer tars. */
static int load_docker(struct image_store *s, int dirfd, char ***names, struct hull_error **err)
{
	_cleanup_free_ char *json = NULL;
	_cleanup_(json_object_putp) json_object *root = NULL;
	size_t len;
	int r;

	r = read_small(dirfd, "manifest.json", IMAGE_MAX_JSON, &json, &len, err);
	if (r >= 0)
		r = json_parse(json, len, 16, false, &root, err);
	if (r >= 0 && !json_object_is_type(root, json_type_array))
		r = hull_error_set(err, -EINVAL, "want an array");
	if (r < 0)
		return hull_error_prefix(err, "docker archive: manifest.json");
	for (size_t i = 0; r >= 0 && i < json_object_array_length(root); i++) {
		json_object *img = json_object_array_get_idx(root, i), *layers, *tags;
		const char *config = json_get_string(img, "Config");
		_cleanup_free_ char *cdata = NULL, *cdigest = NULL, *manifest = NULL,
		                    *mdigest = NULL;
		json_object *mo = json_object_new_object(), *ml = json_object_new_array(), *cd;
		size_t clen;

		if (!config || !json_object_object_get_ex(img, "Layers", &layers) ||
		    !json_object_is_type(layers, json_type_array)) {
			json_object_put(mo);
			json_object_put(ml);
			r = hull_error_set(
			    err, -EINVAL,
			    "docker archive: manifest.json[%zu]: wants Config and Layers", i);
			break;
		}
		r = read_small(dirfd, config, IMAGE_MAX_JSON, &cdata, &clen, err);
		if (r >= 0)
			r = image_store_put_blob_mem(s, cdata, clen, &cdigest, err);
		/* The layers are plain tars: each becomes a blob by its own digest. */
		for (size_t k = 0; r >= 0 && k < json_object_array_length(layers); k++) {
			json_object *lv = json_object_array_get_idx(layers, k);
			const char *lp = json_object_is_type(lv, json_type_string)
			                     ? json_object_get_string(lv)
			                     : NULL;
			_cleanup_close_ int fd = lp ? openat(dirfd, lp, O_RDONLY | O_CLOEXEC) : -1;
			struct sha256 *h;
			uint8_t buf[1 << 16];
			ssize_t n;
			struct stat st;
			if (fd < 0 || fstat(fd, &st) < 0) {
				r = hull_error_set_errno(err, lp ? -errno : -EINVAL,
				                         "docker archive: layer '%s'",
				                         lp ? lp : "?");
				break;
			}
			h = sha256_new();
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				sha256_update(h, buf, (size_t)n);
			_cleanup_free_ char *ld = sha256_finish(h);
			if (n < 0 || lseek(fd, 0, SEEK_SET) < 0) {
				r = hull_error_set_errno(err, -errno, "docker archive: layer '%s'",
				                         lp);
				break;
			}
			r = image_store_put_blob(s, ld, st.st_size, fd, err);
			json_object *d = json_object_new_object();
			json_object_object_add(
			    d, "mediaType",
			    json_object_new_string("application/vnd.docker.image.rootfs.diff.tar"));
			json_object_object_add(d, "digest", json_object_new_string(ld));
			json_object_object_add(d, "size", json_object_new_int64(st.st_size));
			json_object_array_add(ml, d);
		}
		if (r < 0) {
			json_object_put(mo);
			json_object_put(ml);
			break;
		}
		cd = json_object_new_object();
		json_object_object_add(cd, "mediaType",
		                       json_object_new_string(MEDIA_DOCKER_CONFIG));
		json_object_object_add(cd, "digest", json_object_new_string(cdigest));
		json_object_object_add(cd, "size", json_object_new_int64((int64_t)clen));
		json_object_object_add(mo, "schemaVersion", json_object_new_int(2));
		json_object_object_add(mo, "mediaType",
		                       json_object_new_string(MEDIA_DOCKER_MANIFEST));
		json_object_object_add(mo, "config", cd);
		json_object_object_add(mo, "layers", ml);
		manifest = xstrdup(json_object_to_json_string_ext(mo, JSON_C_TO_STRING_PLAIN));
		json_object_put(mo);
		r = image_store_put_blob_mem(s, manifest, strlen(manifest), &mdigest, err);
		if (r >= 0 && json_object_object_get_ex(img, "RepoTags", &tags) &&
		    json_object_is_type(tags, json_type_array))
			for (size_t k = 0; r >= 0 && k < json_object_array_length(tags); k++) {
				json_object *t = json_object_array_get_idx(tags, k);
				struct image_ref ref;
				if (!json_object_is_type(t, json_type_string) ||
				    image_ref_parse(json_object_get_string(t), &ref, NULL) < 0)
					continue;
				char *name = image_ref_string(&ref);
				image_ref_done(&ref);
				r = unpack_then_tag(s, name, mdigest, err);
				strv_push(names, name);
			}
	}
	return r;
}

/* An archive unpacked into a temp dir of the store (as safely as a layer is). */
static int unpack_archive(struct image_store *s, const char *path, char **dir,
                          struct hull_error **err)
{
	_cleanup_close_ int dfd = -1;
	int r;

	*dir = xasprintf("%s/tmp/load.XXXXXX", image_store_root(s));
	if (!mkdtemp(*dir)) {
		r = hull_error_set_errno(err, -errno, "image store temp dir");
		free(*dir);
		*dir = NULL;
		return r;
	}
	dfd = open(*dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = image_apply_layer(dfd, path, 0, NULL, err);
	if (r < 0) {
		rm_tree(*dir);
		free(*dir);
		*dir = NULL;
		return hull_error_prefix(err, "'%s'", path);
	}
	return 0;
}

int image_load(struct image_store *s, const char *path, char ***names, struct hull_error **err)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int dfd = -1;
	struct stat st;
	int r;

	*names = xcalloc(1, sizeof(char *));
	if (stat(path, &st) < 0)
		return hull_error_set_errno(err, -errno, "'%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		r = unpack_archive(s, path, &tmp, err);
		if (r < 0)
			return r;
	}
	dfd = open(tmp ? tmp : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = hull_error_set_errno(err, -errno, "'%s'", path);
	} else if (faccessat(dfd, "index.json", F_OK, 0) == 0) {
		r = load_layout(s, dfd, names, err);
	} else if (faccessat(dfd, "manifest.json", F_OK, 0) == 0) {
		r = load_docker(s, dfd, names, err);
	} else {
		r = hull_error_set(
		    err, -EINVAL,
		    "'%s' is neither an OCI layout (index.json) nor a docker archive "
		    "(manifest.json)",
		    path);
	}
	if (tmp)
		rm_tree(tmp);
	if (r < 0)
		hull_error_prefix(err, "load '%s'", path);
	return r;
}

/* ---- hull save ---- */

static int add_file(struct archive *a, const char *name, const void *data, size_t len, int fd,
                    int64_t size, struct hull_error **err)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, data ? (la_int64_t)len : size);
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		r = hull_error_set(err, -EIO, "save: %s", archive_error_string(a));
		goto out;
	}
	if (data) {
		if (archive_write_data(a, data, len) != (la_ssize_t)len)
			r = hull_error_set(err, -EIO, "save: %s", archive_error_string(a));
	} else {
		uint8_t buf[1 << 16];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (archive_write_data(a, buf, (size_t)n) != n) {
				r = hull_error_set(err, -EIO, "save: %s", archive_error_string(a));
				break;
			}
		if (n < 0)
			r = hull_error_set_errno(err, -errno, "save: read blob");
	}
out:
	archive_entry_free(e);
	return r;
}

int image_save(struct image_store *s, char *const *names, const char *out, struct hull_error **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", out);
	_cleanup_strv_free_ char **done = NULL;
	json_object *index = json_object_new_object(), *list = json_object_new_array();
	struct archive *a = archive_write_new();
	int r = 0;

	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
		r = hull_error_set(err, -EIO, "save '%s': %s", out, archive_error_string(a));
		goto out;
	}
	r = add_file(a, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, -1, 0, err);
	for (size_t i = 0; r >= 0 && names[i]; i++) {
		_cleanup_free_ char *digest = NULL, *json = NULL;
		struct image_ref ref;
		struct image_manifest m = {0};
		struct image_config c = {0};
		_cleanup_free_ char *full = NULL;
		size_t len;

		r = image_ref_parse(names[i], &ref, err);
		if (r < 0)
			break;
		full = image_ref_string(&ref);
		image_ref_done(&ref);
		r = image_store_resolve(s, full, &digest, err);
		if (r >= 0)
			r = image_store_load(s, digest, &m, &c, err);
		if (r >= 0)
			r = image_store_read_blob(s, digest, IMAGE_MAX_JSON, &json, &len, err);
		/* The manifest, then what it names; a blob shared by two images once. */
		for (size_t k = 0; r >= 0 && k <= m.n_entries; k++) {
			const char *d = k == 0 ? digest : m.entries[k - 1].digest;
			bool seen = false;
			for (char **p = done; p && *p; p++)
				seen = seen || strcmp(*p, d) == 0;
			if (seen)
				continue;
			_cleanup_free_ char *path = image_store_blob_path(s, d);
			_cleanup_free_ char *name = xasprintf("blobs/sha256/%s", d + 7);
			_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
			struct stat st;
			if (fd < 0 || fstat(fd, &st) < 0) {
				r = hull_error_set_errno(err, -errno, "save: blob %s", d);
				break;
			}
			r = add_file(a, name, NULL, 0, fd, st.st_size, err);
			strv_push(&done, xstrdup(d));
		}
		if (r >= 0) {
			json_object *e = json_object_new_object(), *ann = json_object_new_object();
			json_object_object_add(e, "mediaType",
			                       json_object_new_string(MEDIA_OCI_MANIFEST));
			json_object_object_add(e, "digest", json_object_new_string(digest));
			json_object_object_add(e, "size", json_object_new_int64((int64_t)len));
			json_object_object_add(ann, "io.containerd.image.name",
			                       json_object_new_string(full));
			/* The full name in both: skopeo selects by ref.name, containerd
			 * names by io.containerd.image.name. */
			json_object_object_add(ann, "org.opencontainers.image.ref.name",
			                       json_object_new_string(full));
			json_object_object_add(e, "annotations", ann);
			json_object_array_add(list, e);
		}
		image_manifest_done(&m);
		image_config_done(&c);
	}
	if (r >= 0) {
		const char *text;
		json_object_object_add(index, "schemaVersion", json_object_new_int(2));
		json_object_object_add(index, "manifests", json_object_get(list));
		text = json_object_to_json_string_ext(index, JSON_C_TO_STRING_PLAIN);
		r = add_file(a, "index.json", text, strlen(text), -1, 0, err);
	}
	if (archive_write_close(a) != ARCHIVE_OK && r >= 0)
		r = hull_error_set(err, -EIO, "save '%s': %s", out, archive_error_string(a));
	if (r >= 0 && rename(tmp, out) < 0)
		r = hull_error_set_errno(err, -errno, "save '%s'", out);
out:
	archive_write_free(a);
	json_object_put(list);
	json_object_put(index);
	if (r < 0)
		(void)unlink(tmp);
	return r;
}
