/* SPDX-License-Identifier: MIT */
/* hull-cri's ImageService on hull's image store (image/image.h), answering as
 * containerd's CRI does. An image is known by its config digest: that is Image.id, the
 * image_ref PullImage answers and the name kubelet gives CreateContainer later; its
 * names are the store's names whose manifest has that config (two manifests of one
 * config, a docker and an OCI one, are one image).
 *
 * Reads of the store (small JSON blobs, checked against their digests) run on the loop.
 * A pull, a prune and the walk of the store for ImageFsInfo run on a thread each
 * (cri_run_work), each thread with a store handle of its own: a handle is not to be
 * shared between threads, and the thread gets copies of every string it reads. */
#include <ftw.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>

#include "cri.h"
#include "image.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

#define CRI_PULL_OS "linux"
#define CRI_PULL_ARCH "amd64" /* hull's guests; as `hull pull` */
#define CRI_MAX_CREDENTIAL 16384

/* ---- the store, image by image ---- */

/* One image: a config digest and the names whose manifest has it. */
struct cri_img {
	char *id;         /* the config digest */
	char **names;     /* full references, in the store's (sorted) order */
	char **manifests; /* each name's manifest digest */
	size_t n;
};

struct catalog {
	struct cri_img *imgs;
	size_t n;
};

static void catalog_done(struct catalog *cat)
{
	for (size_t i = 0; i < cat->n; i++) {
		free(cat->imgs[i].id);
		for (size_t k = 0; k < cat->imgs[i].n; k++) {
			free(cat->imgs[i].names[k]);
			free(cat->imgs[i].manifests[k]);
		}
		free(cat->imgs[i].names);
		free(cat->imgs[i].manifests);
	}
	free(cat->imgs);
	*cat = (struct catalog){0};
}

static struct cri_img *catalog_by_id(const struct catalog *cat, const char *id)
{
	for (size_t i = 0; i < cat->n; i++)
		if (strcmp(cat->imgs[i].id, id) == 0)
			return &cat->imgs[i];
	return NULL;
}

/* The config digest of manifest (a digest), from a name already read when one has the
 * same manifest; NULL when it cannot be read or is an index. Caller frees. */
static char *config_of(struct image_store *s, const struct catalog *cat, const char *manifest)
{
	_cleanup_free_ char *json = NULL;
	struct image_manifest m = {0};
	char *id = NULL;
	size_t len;

	for (size_t i = 0; i < cat->n; i++)
		for (size_t k = 0; k < cat->imgs[i].n; k++)
			if (strcmp(cat->imgs[i].manifests[k], manifest) == 0)
				return xstrdup(cat->imgs[i].id);
	if (image_store_read_blob(s, manifest, IMAGE_MAX_JSON, &json, &len, NULL) < 0 ||
	    image_parse_manifest(json, len, &m, NULL) < 0)
		return NULL;
	if (!m.is_index && m.n_entries > 0 && digest_is_valid(m.entries[0].digest))
		id = xstrdup(m.entries[0].digest);
	image_manifest_done(&m);
	return id;
}

/* Every name of the store, grouped by image into *ret (catalog_done() it). A name
 * whose manifest cannot be read is left out: an image that cannot run is not listed. */
static int catalog_load(struct image_store *s, struct catalog *ret, struct hull_error **err)
{
	_cleanup_strv_free_ char **names = NULL, **digests = NULL;
	struct catalog cat = {0};
	int r = image_store_list(s, &names, &digests, err);

	if (r < 0)
		return r;
	for (size_t i = 0; names[i]; i++) {
		_cleanup_free_ char *id =
		    digest_is_valid(digests[i]) ? config_of(s, &cat, digests[i]) : NULL;
		struct cri_img *img;
		if (!id) {
			log_debug("cri: image '%s' (%s) left out: its manifest cannot be read",
			          names[i], digests[i]);
			continue;
		}
		img = catalog_by_id(&cat, id);
		if (!img) {
			cat.imgs = xrealloc(cat.imgs, (cat.n + 1) * sizeof(*cat.imgs));
			img = &cat.imgs[cat.n++];
			*img = (struct cri_img){.id = TAKE_PTR(id)};
		}
		img->names = xrealloc(img->names, (img->n + 1) * sizeof(char *));
		img->manifests = xrealloc(img->manifests, (img->n + 1) * sizeof(char *));
		img->names[img->n] = xstrdup(names[i]);
		img->manifests[img->n] = xstrdup(digests[i]);
		img->n++;
	}
	*ret = cat;
	return 0;
}

/* 12 to 64 lowercase hex digits: an image id without "sha256:", or its prefix. */
static bool is_id_prefix(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");
	return n >= 12 && n <= 64 && !s[n];
}

/* The one image whose id starts with "sha256:" hex; NULL when none or several do. */
static const struct cri_img *catalog_by_prefix(const struct catalog *cat, const char *hex)
{
	const struct cri_img *found = NULL;
	size_t n = strlen(hex);
	for (size_t i = 0; i < cat->n; i++)
		if (strncmp(cat->imgs[i].id + 7, hex, n) == 0) {
			if (found)
				return NULL;
			found = &cat->imgs[i];
		}
	return found;
}

static const struct cri_img *catalog_by_name(const struct catalog *cat, const char *name,
                                             const char *manifest)
{
	for (size_t i = 0; i < cat->n; i++)
		for (size_t k = 0; k < cat->imgs[i].n; k++)
			if (strcmp(cat->imgs[i].names[k], name) == 0 &&
			    (!manifest || strcmp(cat->imgs[i].manifests[k], manifest) == 0))
				return &cat->imgs[i];
	return NULL;
}

/* The image arg names, as containerd resolves it: an id ("sha256:<64 hex>"), a
 * reference (short ones completed as `hull` completes them: "busybox" is
 * docker.io/library/busybox:latest), else an id's hex (12 digits or more, unique).
 * *ret is NULL when no image is so named; -EINVAL when arg is no reference at all. */
static int catalog_lookup(const struct catalog *cat, const char *arg, const struct cri_img **ret,
                          struct hull_error **err)
{
	struct image_ref ref;
	_cleanup_free_ char *full = NULL;
	const struct cri_img *img;
	bool hex = is_id_prefix(arg);
	int r;

	*ret = NULL;
	if (digest_is_valid(arg)) {
		*ret = catalog_by_id(cat, arg);
		return 0;
	}
	r = image_ref_parse(arg, &ref, hex ? NULL : err);
	if (r < 0) {
		if (!hex)
			return r;
		*ret = catalog_by_prefix(cat, arg);
		return 0;
	}
	full = image_ref_string(&ref);
	img = catalog_by_name(cat, full, NULL);
	if (!img && ref.tag && ref.digest) {
		/* NAME:TAG@DIGEST: the name a pull by that digest wrote, else the tag if it
		 * is that very manifest. */
		_cleanup_free_ char *by_digest =
		    xasprintf("%s/%s@%s", ref.registry, ref.repository, ref.digest);
		_cleanup_free_ char *by_tag =
		    xasprintf("%s/%s:%s", ref.registry, ref.repository, ref.tag);
		img = catalog_by_name(cat, by_digest, NULL);
		if (!img)
			img = catalog_by_name(cat, by_tag, ref.digest);
	}
	if (!img && hex)
		img = catalog_by_prefix(cat, arg);
	image_ref_done(&ref);
	*ret = img;
	return 0;
}

/* ---- the CRI's Image ---- */

static void strv_add_unique(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return;
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = xstrdup(s);
}

/* The image's config user as containerd reports it: a numeric uid (of "uid[:gid]")
 * into uid, anything else (a name) into username; nothing when unset. */
static void image_user(const char *user, Runtime__V1__Image *out)
{
	_cleanup_free_ char *u = NULL;
	char *end;
	long long v;

	if (!user || !*user)
		return;
	u = xstrndup(user, strcspn(user, ":"));
	if (!*u)
		return;
	errno = 0;
	v = strtoll(u, &end, 10);
	if ((u[0] == '-' || (u[0] >= '0' && u[0] <= '9')) && !*end && errno == 0) {
		out->uid = xmalloc(sizeof(*out->uid));
		runtime__v1__int64_value__init(out->uid);
		out->uid->value = v;
		return;
	}
	out->username = TAKE_PTR(u);
}

/* img as kubelet sees it, m and cfg being the manifest and config of its first name:
 * id and spec.image the config digest, repo_tags the names by tag, repo_digests
 * REGISTRY/REPOSITORY@MANIFEST for every name (a name by digest gives its own), size
 * the layers' sum, uid or username from the config's user. Caller frees with
 * protobuf_c_message_free_unpacked(). */
static Runtime__V1__Image *cri_img_image(const struct cri_img *img, const struct image_manifest *m,
                                         const struct image_config *cfg)
{
	Runtime__V1__Image *out = xmalloc(sizeof(*out));
	runtime__v1__image__init(out);

	out->id = xstrdup(img->id);
	for (size_t i = 0; i < img->n; i++) {
		struct image_ref ref;
		if (image_ref_parse(img->names[i], &ref, NULL) < 0) {
			/* Not a reference we would write; shown as it is. */
			strv_add_unique(&out->repo_tags, &out->n_repo_tags, img->names[i]);
			continue;
		}
		if (ref.tag) {
			_cleanup_free_ char *t =
			    xasprintf("%s/%s:%s", ref.registry, ref.repository, ref.tag);
			strv_add_unique(&out->repo_tags, &out->n_repo_tags, t);
		}
		_cleanup_free_ char *d = xasprintf("%s/%s@%s", ref.registry, ref.repository,
		                                   ref.digest ? ref.digest : img->manifests[i]);
		strv_add_unique(&out->repo_digests, &out->n_repo_digests, d);
		image_ref_done(&ref);
	}
	for (size_t i = 1; i < m->n_entries; i++)
		if (m->entries[i].size > 0)
			out->size += (uint64_t)m->entries[i].size;
	image_user(cfg->user, out);
	out->spec = xmalloc(sizeof(*out->spec));
	runtime__v1__image_spec__init(out->spec);
	out->spec->image = xstrdup(img->id);
	return out;
}

/* img's Image (*ret, freed with protobuf_c_message_free_unpacked()), from the manifest
 * and config of its first name, which *ret_m and *ret_cfg get when non-NULL (the caller
 * then image_manifest_done()s and image_config_done()s them). */
static int cri_img_load(struct image_store *s, const struct cri_img *img, Runtime__V1__Image **ret,
                        struct image_manifest *ret_m, struct image_config *ret_cfg,
                        struct hull_error **err)
{
	struct image_manifest m = {0};
	struct image_config cfg = {0};
	int r = image_store_load(s, img->manifests[0], &m, &cfg, err);

	if (r < 0)
		return hull_error_prefix(err, "image '%s'", img->names[0]);
	*ret = cri_img_image(img, &m, &cfg);
	if (ret_m)
		*ret_m = m;
	else
		image_manifest_done(&m);
	if (ret_cfg)
		*ret_cfg = cfg;
	else
		image_config_done(&cfg);
	return 0;
}

static json_object *strv_json(char **l)
{
	json_object *a;
	if (!l)
		return NULL;
	a = json_object_new_array();
	for (; *l; l++)
		json_object_array_add(a, json_object_new_string(*l));
	return a;
}

static json_object *string_json(const char *s)
{
	return json_object_new_string(s ? s : "");
}

/* ImageStatus's verbose info["info"]: containerd's shape (imageSpec: the OCI config
 * as far as hull reads it) and the manifest. Caller frees. */
static char *image_info_json(const struct cri_img *img, const struct image_manifest *m,
                             const struct image_config *cfg)
{
	json_object *o = json_object_new_object(), *spec = json_object_new_object(),
	            *conf = json_object_new_object(), *rootfs = json_object_new_object(),
	            *layers = json_object_new_array();
	char *out;

	json_object_object_add(o, "id", string_json(img->id));
	json_object_object_add(o, "manifestDigest", string_json(img->manifests[0]));
	json_object_object_add(spec, "architecture", string_json(cfg->arch));
	json_object_object_add(spec, "os", string_json(cfg->os));
	json_object_object_add(conf, "User", string_json(cfg->user));
	json_object_object_add(conf, "Env", strv_json(cfg->env));
	json_object_object_add(conf, "Entrypoint", strv_json(cfg->entrypoint));
	json_object_object_add(conf, "Cmd", strv_json(cfg->cmd));
	json_object_object_add(conf, "WorkingDir", string_json(cfg->workdir));
	if (cfg->stop_signal)
		json_object_object_add(conf, "StopSignal", string_json(cfg->stop_signal));
	json_object_object_add(spec, "config", conf);
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	json_object_object_add(rootfs, "diff_ids", strv_json(cfg->diff_ids));
	json_object_object_add(spec, "rootfs", rootfs);
	json_object_object_add(o, "imageSpec", spec);
	for (size_t i = 1; i < m->n_entries; i++) {
		json_object *l = json_object_new_object();
		json_object_object_add(l, "mediaType", string_json(m->entries[i].media_type));
		json_object_object_add(l, "digest", string_json(m->entries[i].digest));
		json_object_object_add(l, "size", json_object_new_int64(m->entries[i].size));
		json_object_array_add(layers, l);
	}
	json_object_object_add(o, "layers", layers);
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* ---- requests ---- */

/* image.image of a request, or -EINVAL naming the field. */
static int spec_image(const Runtime__V1__ImageSpec *spec, const char **ret, struct hull_error **err)
{
	if (!spec || !spec->image || !*spec->image)
		return hull_error_set(err, -EINVAL, "image.image: empty");
	*ret = spec->image;
	return 0;
}

static int bad_request(const char *what, struct hull_error **err)
{
	return hull_error_set(err, -EINVAL, "%s: the request does not decode", what);
}

static int cri_list_images(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                           ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ListImagesRequest *req =
	    runtime__v1__list_images_request__unpack(NULL, len, msg);
	Runtime__V1__ListImagesResponse *resp;
	const char *filter = NULL;
	const struct cri_img *only = NULL;
	struct catalog cat = {0};
	int r;

	(void)call;
	if (!req)
		return bad_request("ListImages", err);
	if (req->filter && req->filter->image && req->filter->image->image &&
	    *req->filter->image->image)
		filter = req->filter->image->image;
	r = catalog_load(c->images, &cat, err);
	if (r >= 0 && filter) {
		r = catalog_lookup(&cat, filter, &only, err);
		if (r < 0)
			hull_error_prefix(err, "filter.image.image");
	}
	if (r < 0)
		goto out;
	resp = xmalloc(sizeof(*resp));
	runtime__v1__list_images_response__init(resp);
	resp->images = xcalloc(cat.n + 1, sizeof(*resp->images));
	for (size_t i = 0; i < cat.n; i++) {
		Runtime__V1__Image *img = NULL;
		struct hull_error *ierr = NULL;
		if (filter && only != &cat.imgs[i])
			continue;
		if (cri_img_load(c->images, &cat.imgs[i], &img, NULL, NULL, &ierr) < 0) {
			/* One broken image does not hide the others. */
			log_warn("cri: list images: %s", ierr->msg);
			hull_error_free(ierr);
			continue;
		}
		resp->images[resp->n_images++] = img;
	}
	*ret = &resp->base;
out:
	catalog_done(&cat);
	runtime__v1__list_images_request__free_unpacked(req, NULL);
	return r < 0 ? r : 0;
}

static int cri_image_status(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                            ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ImageStatusRequest *req =
	    runtime__v1__image_status_request__unpack(NULL, len, msg);
	Runtime__V1__ImageStatusResponse *resp;
	const struct cri_img *img = NULL;
	struct image_manifest m = {0};
	struct image_config cfg = {0};
	struct catalog cat = {0};
	const char *name = NULL;
	int r;

	(void)call;
	if (!req)
		return bad_request("ImageStatus", err);
	r = spec_image(req->image, &name, err);
	if (r >= 0)
		r = catalog_load(c->images, &cat, err);
	if (r >= 0 && (r = catalog_lookup(&cat, name, &img, err)) < 0)
		hull_error_prefix(err, "image.image");
	if (r < 0)
		goto out;
	resp = xmalloc(sizeof(*resp));
	runtime__v1__image_status_response__init(resp);
	/* Not there is no error: the answer without an image says so (kubelet then
	 * pulls). */
	if (img) {
		r = cri_img_load(c->images, img, &resp->image, &m, &cfg, err);
		if (r < 0) {
			protobuf_c_message_free_unpacked(&resp->base, NULL);
			goto out;
		}
		if (req->verbose) {
			Runtime__V1__ImageStatusResponse__InfoEntry *e = xmalloc(sizeof(*e));
			runtime__v1__image_status_response__info_entry__init(e);
			e->key = xstrdup("info");
			e->value = image_info_json(img, &m, &cfg);
			resp->info = xmalloc(sizeof(*resp->info));
			resp->info[0] = e;
			resp->n_info = 1;
		}
		image_manifest_done(&m);
		image_config_done(&cfg);
	}
	*ret = &resp->base;
out:
	catalog_done(&cat);
	runtime__v1__image_status_request__free_unpacked(req, NULL);
	return r < 0 ? r : 0;
}

/* ---- PullImage: on a thread ---- */

struct pull_work {
	struct grpc_call *call;
	char *root; /* the store's: the thread opens a store of its own there */
	char *ref;  /* image.image, as kubelet gave it */
	char *username, *password, *identity_token, *registry_token;
	bool auth;
	/* the outcome */
	int r;
	struct hull_error *err;
	char *id;
};

static void pull_work_free(struct pull_work *w)
{
	if (!w)
		return;
	free(w->root);
	free(w->ref);
	free(w->username);
	free(w->password);
	free(w->identity_token);
	free(w->registry_token);
	hull_error_free(w->err);
	free(w->id);
	free(w);
}

/* A credential of AuthConfig, copied; -EINVAL naming the field when too long. */
static int auth_field(const char *value, const char *field, char **ret, struct hull_error **err)
{
	if (!value || !*value)
		return 0;
	if (strlen(value) > CRI_MAX_CREDENTIAL)
		return hull_error_set(err, -EINVAL, "auth.%s: longer than %d bytes", field,
		                      CRI_MAX_CREDENTIAL);
	*ret = xstrdup(value);
	return 0;
}

/* auth.auth: base64 (standard alphabet, padded) of "user:password", as in a docker
 * config file; both NULL for ":" (anonymous, as containerd takes it). */
static int auth_decode(const char *b64, char **ret_user, char **ret_pass, struct hull_error **err)
{
	size_t len = strlen(b64), pad = 0, n;
	_cleanup_free_ unsigned char *out = NULL;
	char *colon;
	int dn;

	while (pad < 2 && pad < len && b64[len - 1 - pad] == '=')
		pad++;
	/* EVP_DecodeBlock skips blanks and decodes padding to NULs: only the alphabet,
	 * whole quanta, and the padding taken off by hand. */
	if (len == 0 || len % 4 != 0 || len > CRI_MAX_CREDENTIAL ||
	    strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") !=
	        len - pad)
		return hull_error_set(err, -EINVAL, "auth.auth: not base64 of user:password");
	out = xmalloc(len / 4 * 3 + 1);
	dn = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
	if (dn < 0 || (size_t)dn != len / 4 * 3)
		return hull_error_set(err, -EINVAL, "auth.auth: not base64 of user:password");
	n = (size_t)dn - pad;
	/* containerd trims trailing NULs off the password; any other NUL is junk. */
	while (n > 0 && out[n - 1] == '\0')
		n--;
	out[n] = '\0';
	colon = memchr(out, ':', n);
	if (!colon || strlen((char *)out) != n)
		return hull_error_set(err, -EINVAL, "auth.auth: not base64 of user:password");
	if (n == 1)
		return 0;
	*ret_user = xstrndup((char *)out, (size_t)(colon - (char *)out));
	*ret_pass = xstrdup(colon + 1);
	return 0;
}

/* The credentials of AuthConfig into w, chosen as containerd chooses them: username
 * and password, else identity_token, else auth; registry_token besides. */
static int pull_auth(const Runtime__V1__AuthConfig *a, struct pull_work *w, struct hull_error **err)
{
	int r = 0;

	if (!a)
		return 0;
	if (a->username && *a->username) {
		if (strchr(a->username, ':'))
			return hull_error_set(err, -EINVAL, "auth.username: holds a ':'");
		r = auth_field(a->username, "username", &w->username, err);
		if (r >= 0)
			r = auth_field(a->password, "password", &w->password, err);
		if (r >= 0 && !w->password)
			w->password = xstrdup("");
	} else if (a->identity_token && *a->identity_token) {
		r = auth_field(a->identity_token, "identity_token", &w->identity_token, err);
	} else if (a->auth && *a->auth) {
		r = auth_decode(a->auth, &w->username, &w->password, err);
	}
	if (r >= 0 && a->registry_token && *a->registry_token) {
		if (strpbrk(a->registry_token, "\r\n"))
			return hull_error_set(err, -EINVAL,
			                      "auth.registry_token: holds a line break");
		r = auth_field(a->registry_token, "registry_token", &w->registry_token, err);
	}
	w->auth = w->username || w->identity_token || w->registry_token;
	return r;
}

/* What a failed pull answers: the errno's code, except that a registry's bad answer
 * (a manifest that does not parse, a blob that does not hash) is not the caller's
 * INVALID_ARGUMENT but UNKNOWN, and a registry unreachable, failing or stalled is
 * UNAVAILABLE (not DEADLINE_EXCEEDED: kubelet's own deadline has not passed).
 * Not found stays NOT_FOUND, refused stays PERMISSION_DENIED. */
static void pull_error_code(struct hull_error *err)
{
	if (!err)
		return;
	switch (-err->code) {
	case EINVAL:
	case EBADMSG:
	case E2BIG:
		err->code = grpc_error_code(TTRPC_UNKNOWN);
		break;
	case EIO:
	case ETIMEDOUT:
		err->code = grpc_error_code(TTRPC_UNAVAILABLE);
		break;
	default:
		break;
	}
}

static void pull_work_run(void *arg)
{
	struct pull_work *w = arg;
	const struct image_auth auth = {
	    .username = w->username,
	    .password = w->password,
	    .identity_token = w->identity_token,
	    .registry_token = w->registry_token,
	};
	const struct pull_opts o = {
	    .quiet = true,
	    .os = CRI_PULL_OS,
	    .arch = CRI_PULL_ARCH,
	    .auth = w->auth ? &auth : NULL,
	};
	_cleanup_free_ char *name = NULL, *digest = NULL;
	struct image_store *s = NULL;
	struct image_manifest m = {0};
	struct image_config cfg = {0};

	w->r = image_store_open(w->root, &s, &w->err);
	if (w->r < 0) {
		hull_error_prefix(&w->err, "pull '%s'", w->ref);
		goto out;
	}
	/* Held shared until the image is named (tagging lets go): a prune meanwhile
	 * (RemoveImage, kubelet's image GC) skips the store instead of taking the blobs
	 * this pull fetched and has not named yet. */
	image_store_hold(s);
	w->r = image_pull(s, w->ref, &o, &name, &digest, &w->err);
	if (w->r < 0) {
		pull_error_code(w->err);
		goto out;
	}
	w->r = image_store_load(s, digest, &m, &cfg, &w->err);
	if (w->r < 0) {
		hull_error_prefix(&w->err, "pull '%s'", w->ref);
		goto out;
	}
	w->id = xstrdup(m.entries[0].digest);
	image_manifest_done(&m);
	image_config_done(&cfg);
out:
	image_store_close(s);
}

static void pull_work_done(struct cri *c, void *arg)
{
	struct pull_work *w = arg;

	(void)c;
	if (w->r < 0) {
		log_warn("cri: %s", w->err ? w->err->msg : strerror(-w->r));
		grpc_call_reply(w->call, w->r, w->err, NULL);
	} else {
		Runtime__V1__PullImageResponse resp = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
		resp.image_ref = w->id;
		log_info("cri: pulled '%s': %s", w->ref, w->id);
		grpc_call_reply(w->call, 0, NULL, &resp.base);
	}
	pull_work_free(w);
}

static int cri_pull_image(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                          ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__PullImageRequest *req =
	    runtime__v1__pull_image_request__unpack(NULL, len, msg);
	struct pull_work *w = NULL;
	struct image_ref ref;
	const char *name = NULL;
	int r;

	(void)ret;
	if (!req)
		return bad_request("PullImage", err);
	r = spec_image(req->image, &name, err);
	if (r >= 0) {
		/* Checked here, where the field can be named; the thread parses it again. */
		r = image_ref_parse(name, &ref, err);
		if (r < 0)
			hull_error_prefix(err, "image.image");
		else
			image_ref_done(&ref);
	}
	if (r >= 0) {
		w = xcalloc(1, sizeof(*w));
		w->call = call;
		w->root = xstrdup(image_store_root(c->images));
		w->ref = xstrdup(name);
		r = pull_auth(req->auth, w, err);
	}
	if (r >= 0) {
		r = cri_run_work(c, pull_work_run, pull_work_done, w);
		if (r < 0)
			hull_error_set_errno(err, r, "pull '%s': start a thread", name);
	}
	/* A pull in flight owns w (pull_work_done frees it) and answers the call. */
	if (r < 0)
		pull_work_free(w);
	runtime__v1__pull_image_request__free_unpacked(req, NULL);
	return r < 0 ? r : 1;
}

/* ---- RemoveImage: names now, blobs on a thread ---- */

struct prune_work {
	struct grpc_call *call;
	char *root;
	char *what; /* for the log */
	int r;
	struct hull_error *err;
	size_t freed;
};

static void prune_work_run(void *arg)
{
	struct prune_work *w = arg;
	struct image_store *s = NULL;

	w->r = image_store_open(w->root, &s, &w->err);
	if (w->r >= 0)
		w->r = image_store_prune(s, &w->freed, &w->err);
	image_store_close(s);
}

static void prune_work_done(struct cri *c, void *arg)
{
	struct prune_work *w = arg;

	(void)c;
	/* The names are gone, which is what kubelet asked: a prune that could not run
	 * now (a pull or a running pod holds the store) runs with a later one. */
	if (w->r == -EBUSY)
		log_debug("cri: remove image '%s': blobs kept for now: %s", w->what,
		          w->err ? w->err->msg : "busy");
	else if (w->r < 0)
		log_warn("cri: remove image '%s': prune: %s", w->what,
		         w->err ? w->err->msg : strerror(-w->r));
	else
		log_debug("cri: remove image '%s': %zu blobs and trees freed", w->what, w->freed);
	grpc_call_reply(w->call, 0, NULL, NULL);
	free(w->root);
	free(w->what);
	hull_error_free(w->err);
	free(w);
}

static int cri_remove_image(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                            ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__RemoveImageRequest *req =
	    runtime__v1__remove_image_request__unpack(NULL, len, msg);
	const struct cri_img *img = NULL;
	struct catalog cat = {0};
	const char *name = NULL;
	int r;

	(void)ret;
	if (!req)
		return bad_request("RemoveImage", err);
	r = spec_image(req->image, &name, err);
	if (r >= 0)
		r = catalog_load(c->images, &cat, err);
	if (r >= 0 && (r = catalog_lookup(&cat, name, &img, err)) < 0)
		hull_error_prefix(err, "image.image");
	/* An image that is not there is removed already (kubelet retries removals). */
	for (size_t i = 0; r >= 0 && img && i < img->n; i++) {
		struct hull_error *uerr = NULL;
		int u = image_store_untag(c->images, img->names[i], &uerr);
		if (u < 0 && u != -ENOENT) {
			r = hull_error_prefix(&uerr, "remove image '%s'", name);
			if (err && !*err)
				*err = TAKE_PTR(uerr);
		}
		hull_error_free(uerr);
	}
	if (r >= 0 && img) {
		struct prune_work *w = xcalloc(1, sizeof(*w));
		log_info("cri: removed image '%s' (%s, %zu names)", name, img->id, img->n);
		w->call = call;
		w->root = xstrdup(image_store_root(c->images));
		w->what = xstrdup(name);
		if (cri_run_work(c, prune_work_run, prune_work_done, w) >= 0) {
			r = 1;
		} else {
			/* The names are gone; the blobs go with the next removal. */
			log_warn("cri: remove image '%s': no thread for the prune", name);
			free(w->root);
			free(w->what);
			free(w);
		}
	}
	catalog_done(&cat);
	runtime__v1__remove_image_request__free_unpacked(req, NULL);
	return r;
}

/* ---- ImageFsInfo: a walk of the store on a thread ---- */

struct fs_link {
	dev_t dev;
	ino_t ino;
	blkcnt_t blocks;
};

struct fs_walk {
	uint64_t bytes, inodes;
	struct fs_link *links; /* files with more than one link: counted once, after */
	size_t n_links;
};

/* nftw() takes no userdata: the walk in progress on this thread. */
static __thread struct fs_walk *fs_walk_cur;

static int fs_walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct fs_walk *w = fs_walk_cur;

	(void)path;
	(void)ftw;
	if (type == FTW_NS)
		return 0; /* gone meanwhile, or no stat: nothing to count */
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		w->links = xrealloc(w->links, (w->n_links + 1) * sizeof(*w->links));
		w->links[w->n_links++] =
		    (struct fs_link){.dev = st->st_dev, .ino = st->st_ino, .blocks = st->st_blocks};
		return 0;
	}
	w->bytes += (uint64_t)st->st_blocks * 512;
	w->inodes++;
	return 0;
}

static int fs_link_cmp(const void *a, const void *b)
{
	const struct fs_link *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

struct fsinfo_work {
	struct grpc_call *call;
	char *root;
	int64_t timestamp;
	int r;
	uint64_t bytes, inodes;
};

static void fsinfo_work_run(void *arg)
{
	struct fsinfo_work *w = arg;
	struct fs_walk walk = {0};

	/* Physical (symlinks not followed) and on the store's filesystem only: what the
	 * images take there, as du -x counts it (hard links once). */
	fs_walk_cur = &walk;
	w->r = nftw(w->root, fs_walk_one, 32, FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
	fs_walk_cur = NULL;
	if (walk.n_links > 0)
		qsort(walk.links, walk.n_links, sizeof(*walk.links), fs_link_cmp);
	for (size_t i = 0; i < walk.n_links; i++)
		if (i == 0 || fs_link_cmp(&walk.links[i], &walk.links[i - 1]) != 0) {
			walk.bytes += (uint64_t)walk.links[i].blocks * 512;
			walk.inodes++;
		}
	free(walk.links);
	w->bytes = walk.bytes;
	w->inodes = walk.inodes;
}

static Runtime__V1__FilesystemUsage *fs_usage_new(const struct fsinfo_work *w)
{
	Runtime__V1__FilesystemUsage *u = xmalloc(sizeof(*u));
	runtime__v1__filesystem_usage__init(u);
	u->timestamp = w->timestamp;
	u->fs_id = xmalloc(sizeof(*u->fs_id));
	runtime__v1__filesystem_identifier__init(u->fs_id);
	u->fs_id->mountpoint = xstrdup(w->root);
	u->used_bytes = xmalloc(sizeof(*u->used_bytes));
	runtime__v1__uint64_value__init(u->used_bytes);
	u->used_bytes->value = w->bytes;
	u->inodes_used = xmalloc(sizeof(*u->inodes_used));
	runtime__v1__uint64_value__init(u->inodes_used);
	u->inodes_used->value = w->inodes;
	return u;
}

static void fsinfo_work_done(struct cri *c, void *arg)
{
	struct fsinfo_work *w = arg;

	(void)c;
	if (w->r < 0) {
		struct hull_error *err = NULL;
		hull_error_set_errno(&err, w->r, "image filesystem '%s'", w->root);
		grpc_call_reply(w->call, w->r, err, NULL);
		hull_error_free(err);
	} else {
		/* kubelet 1.32 reads both: images and containers share the store's disk. */
		Runtime__V1__ImageFsInfoResponse resp = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
		Runtime__V1__FilesystemUsage *img = fs_usage_new(w), *ctr = fs_usage_new(w);
		resp.image_filesystems = &img;
		resp.n_image_filesystems = 1;
		resp.container_filesystems = &ctr;
		resp.n_container_filesystems = 1;
		grpc_call_reply(w->call, 0, NULL, &resp.base);
		protobuf_c_message_free_unpacked(&img->base, NULL);
		protobuf_c_message_free_unpacked(&ctr->base, NULL);
	}
	free(w->root);
	free(w);
}

static int cri_image_fs_info(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                             ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ImageFsInfoRequest *req =
	    runtime__v1__image_fs_info_request__unpack(NULL, len, msg);
	struct fsinfo_work *w;
	int r;

	(void)ret;
	if (!req)
		return bad_request("ImageFsInfo", err);
	runtime__v1__image_fs_info_request__free_unpacked(req, NULL);
	w = xcalloc(1, sizeof(*w));
	w->call = call;
	w->root = xstrdup(image_store_root(c->images));
	w->timestamp = cri_now_ns();
	r = cri_run_work(c, fsinfo_work_run, fsinfo_work_done, w);
	if (r < 0) {
		free(w->root);
		free(w);
		return hull_error_set_errno(err, r, "image filesystem: start a thread");
	}
	return 1;
}

/* ---- the service ---- */

const struct grpc_method cri_image_methods[] = {
    {"/runtime.v1.ImageService/ListImages", cri_list_images},
    {"/runtime.v1.ImageService/ImageStatus", cri_image_status},
    {"/runtime.v1.ImageService/PullImage", cri_pull_image},
    {"/runtime.v1.ImageService/RemoveImage", cri_remove_image},
    {"/runtime.v1.ImageService/ImageFsInfo", cri_image_fs_info},
};
const size_t cri_image_n_methods = ELEMENTSOF(cri_image_methods);
