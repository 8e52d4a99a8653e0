/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* OCI images on the host: references, manifests and configs (image-spec.c, pure and
 * fuzzed), a content-addressed store (image-store.c), layer unpacking
 * (image-unpack.c), import from archives and layouts (image-load.c). docs/images.md. */

/* ---- references ---- */

/* docker.io/library/busybox:latest, localhost:5000/x/y@sha256:... */
struct image_ref {
	char *registry;   /* "docker.io" for short names */
	char *repository; /* "library/busybox" */
	char *tag;        /* "latest" unless a digest alone was given; or NULL */
	char *digest;     /* "sha256:<64 hex>" or NULL */
};

int image_ref_parse(const char *s, struct image_ref *ret, struct hull_error **err);
/* The full name: registry/repository[:tag][@digest]. Caller frees. */
char *image_ref_string(const struct image_ref *r);
void image_ref_done(struct image_ref *r);

/* "sha256:" and 64 lowercase hex digits. */
bool digest_is_valid(const char *d);

/* ---- manifests, indexes, configs ---- */

#define MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MEDIA_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

#define IMAGE_MAX_JSON (4u << 20) /* a manifest, index or config larger is refused */
#define IMAGE_MAX_LAYERS 256

struct image_desc {
	char *media_type;
	char *digest;
	int64_t size;
	char *os, *arch, *variant; /* index entries: the platform, or NULL */
	char *ref_name;            /* index entries: org.opencontainers.image.ref.name */
	char *image_name;          /* index entries: io.containerd.image.name */
};

struct image_manifest {
	bool is_index;
	struct image_desc *entries; /* index: manifests; manifest: [0] config, then layers */
	size_t n_entries;
};

/* An index (OCI, docker manifest list) or an image manifest; media types checked. */
int image_parse_manifest(const char *json, size_t len, struct image_manifest *ret,
                         struct hull_error **err);
void image_manifest_done(struct image_manifest *m);
/* The index entry for os/arch (variant ignored when NULL), or NULL. */
const struct image_desc *image_index_select(const struct image_manifest *index, const char *os,
                                            const char *arch);

struct image_config {
	char *os, *arch;
	char **entrypoint, **cmd, **env; /* NULL-terminated, or NULL */
	char *workdir, *user, *stop_signal;
	char **diff_ids; /* rootfs.diff_ids, NULL-terminated */
	size_t n_diff_ids;
};

int image_parse_config(const char *json, size_t len, struct image_config *ret,
                       struct hull_error **err);
void image_config_done(struct image_config *c);

/* ---- digests ---- */

struct sha256;
struct sha256 *sha256_new(void);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* "sha256:<hex>" of what went in; frees h. Caller frees the string. */
char *sha256_finish(struct sha256 *h);
char *sha256_of(const void *data, size_t len);

/* ---- the store ---- */

struct image_store;

/* $HULL_IMAGE_ROOT, /var/lib/hull/images for root, else ~/.local/share/hull/images. */
char *image_store_default_root(void);
int image_store_open(const char *root, struct image_store **ret, struct hull_error **err);
void image_store_close(struct image_store *s);
const char *image_store_root(const struct image_store *s);
/* Trees and layer images made from now on keep device nodes (a --privileged run);
 * they are cached apart from the unprivileged ones. */
void image_store_set_privileged(struct image_store *s, bool on);
/* Hold the store shared until it is closed (also across fork): prune waits for no one
 * and skips a store in use; a running job keeps its image. */
void image_store_hold(struct image_store *s);

/* Copy a blob in from fd, verifying it against digest (and size unless < 0) before it
 * becomes visible: written to a temp file, fsynced, renamed. A blob already present
 * is not copied again. */
int image_store_put_blob(struct image_store *s, const char *digest, int64_t size, int fd,
                         struct hull_error **err);
int image_store_put_blob_mem(struct image_store *s, const void *data, size_t len, char **digest,
                             struct hull_error **err);
bool image_store_has_blob(struct image_store *s, const char *digest);
char *image_store_blob_path(const struct image_store *s, const char *digest);
/* Read a JSON-sized blob (at most max bytes), checked against its digest again. */
int image_store_read_blob(struct image_store *s, const char *digest, size_t max, char **data,
                          size_t *len, struct hull_error **err);

/* name (a full reference string) -> manifest digest. */
int image_store_tag(struct image_store *s, const char *name, const char *digest,
                    struct hull_error **err);
int image_store_resolve(struct image_store *s, const char *name, char **digest,
                        struct hull_error **err);
int image_store_untag(struct image_store *s, const char *name, struct hull_error **err);
/* Names and their digests, sorted by name. */
int image_store_list(struct image_store *s, char ***names, char ***digests,
                     struct hull_error **err);
/* Remove blobs and unpacked trees no name reaches; *freed counts removed entries. */
int image_store_prune(struct image_store *s, size_t *freed, struct hull_error **err);

/* The image's manifest and config (an image manifest, not an index). */
int image_store_load(struct image_store *s, const char *manifest_digest, struct image_manifest *m,
                     struct image_config *c, struct hull_error **err);
/* The image's root filesystem, unpacked once (layers applied in order) into
 * ROOT/rootfs/<manifest hex> and kept; *path is it. */
int image_store_rootfs(struct image_store *s, const char *manifest_digest, char **path,
                       struct hull_error **err);

/* Layers reach the guest as erofs disks (root, mkfs.erofs present, unless
 * HULL_IMAGE_BACKEND=9p) or as the unpacked tree over 9p. */
bool image_backend_erofs(void);
/* What a run of the image needs, made now: a load or pull validates every layer this
 * way before the image is named. */
int image_store_prepare(struct image_store *s, const char *manifest_digest,
                        struct hull_error **err);

/* Each layer of the image as a read-only erofs image in overlayfs form (whiteouts as
 * 0/0 devices, opaque directories marked), made once per diff_id and kept in
 * ROOT/layers/; *paths bottom layer first. Needs root (whiteout devices, trusted
 * xattrs) and mkfs.erofs. */
int image_store_layer_images(struct image_store *s, const char *manifest_digest, char ***paths,
                             struct hull_error **err);
int image_store_layer_image(struct image_store *s, const char *blob_digest, const char *diff_id,
                            char **path, struct hull_error **err);

/* ---- layers ---- */

/* Apply one layer tar (gzip, zstd or plain) onto the directory dirfd: OCI whiteouts
 * and opaque directories (applied to what is below, or kept in overlayfs form), hard
 * links and symlinks kept inside, no entry escaping the directory ("..", absolute
 * paths, through symlinks), device nodes skipped unless privileged. *diff_id gets the
 * digest of the uncompressed tar when non-NULL. */
enum {
	IMAGE_LAYER_PRIVILEGED = 1, /* device nodes too */
	IMAGE_LAYER_OVERLAY = 2,    /* keep the layer a layer: whiteouts become overlayfs ones
	                             * (0/0 devices, trusted.overlay.opaque) */
};
int image_apply_layer(int dirfd, const char *blob_path, unsigned flags, char **diff_id,
                      struct hull_error **err);

/* ---- registries ---- */

/* A registry's 401 answer: WWW-Authenticate: Bearer realm="URL",service="S",scope="S". */
struct auth_challenge {
	char realm[1024], service[1024], scope[1024];
};
/* 0 with an http(s) realm, -EINVAL otherwise. */
int image_parse_challenge(const char *challenge, struct auth_challenge *ret);

/* Credentials given with one pull (the CRI's AuthConfig), each NULL when absent. Any
 * of them replaces the auth file's credentials for that pull: basic ones when username
 * or password is set (on a Basic challenge, and to the token server of a Bearer one);
 * else identity_token, an OAuth2 refresh token POSTed to the token server
 * (grant_type=refresh_token, client_id=hull; a token server that refuses the POST gets
 * a GET with it as basic password and an empty username, as containerd does);
 * registry_token is sent to the registry as the Bearer token, never replaced by one of
 * ours. */
struct image_auth {
	const char *username, *password;
	const char *identity_token;
	const char *registry_token;
};

struct pull_opts {
	bool quiet;                    /* no progress, only errors */
	const char *os, *arch;         /* the platform an index is resolved to */
	unsigned timeout_s;            /* a registry silent this long fails the pull (default 30) */
	const struct image_auth *auth; /* NULL (or nothing set): the auth file's, if any */
};

/* Pull refstr (tag or digest) from its registry into the store, unpack it and name it;
 * *name and *digest are the full name and the image manifest's digest (caller frees
 * both). -EINVAL for a bad reference or unusable credentials (a username holding ':',
 * a token holding a line break), -ENOENT when the registry has no such image (or none
 * for the platform), -EACCES when it refuses us. */
int image_pull(struct image_store *s, const char *refstr, const struct pull_opts *o, char **name,
               char **digest, struct hull_error **err);

/* ---- import ---- */

/* An OCI image layout directory, an oci-archive or a docker-archive tar into the store;
 * *names gets the names it tagged. */
int image_load(struct image_store *s, const char *path, char ***names, struct hull_error **err);
/* Images by name into an oci-archive at out (written beside, then renamed). */
int image_save(struct image_store *s, char *const *names, const char *out, struct hull_error **err);
