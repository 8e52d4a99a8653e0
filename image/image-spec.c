/* SPDX-License-Identifier: MIT */
/* Image references, manifests, indexes and configs: outside input, parsed into typed
 * structs with every field checked (fuzzed: tests/fuzz/fuzz-image-spec.c). */
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "image.h"
#include "json.h"
#include "util.h"

/* ---- references ---- */

bool digest_is_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static bool repo_component_ok(const char *s, size_t n)
{
	/* [a-z0-9]+ separated by single '.', '_', '-' or "__" */
	if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	if (!((s[n - 1] >= 'a' && s[n - 1] <= 'z') || (s[n - 1] >= '0' && s[n - 1] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static bool tag_ok(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128 || t[0] == '.' || t[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
		      (t[i] >= '0' && t[i] <= '9') || t[i] == '_' || t[i] == '.' || t[i] == '-'))
			return false;
	return true;
}

static bool registry_ok(const char *r)
{
	if (!*r || strlen(r) > 255)
		return false;
	for (const char *p = r; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == ':' ||
		      *p == '[' || *p == ']'))
			return false;
	return true;
}

void image_ref_done(struct image_ref *r)
{
	free(r->registry);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	*r = (struct image_ref){0};
}

int image_ref_parse(const char *s, struct image_ref *ret, struct hull_error **err)
{
	_cleanup_free_ char *name = NULL;
	char *at, *slash, *colon, *repo;
	struct image_ref r = {0};

	*ret = (struct image_ref){0};
	if (!s || !*s || strlen(s) > 512)
		return hull_error_set(err, -EINVAL, "image reference: empty or longer than 512");
	name = xstrdup(s);
	at = strchr(name, '@');
	if (at) {
		*at = '\0';
		if (!digest_is_valid(at + 1)) {
			return hull_error_set(err, -EINVAL,
			                      "image reference '%.128s': the digest is not "
			                      "sha256:<64 lowercase hex>",
			                      s);
		}
		r.digest = xstrdup(at + 1);
	}
	slash = strrchr(name, '/');
	colon = strrchr(name, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		if (!tag_ok(colon + 1)) {
			image_ref_done(&r);
			return hull_error_set(err, -EINVAL,
			                      "image reference '%.128s': bad tag '%.128s'", s,
			                      colon + 1);
		}
		r.tag = xstrdup(colon + 1);
	}
	/* The first component is a registry when it looks like a host. */
	slash = strchr(name, '/');
	if (slash &&
	    (memchr(name, '.', (size_t)(slash - name)) ||
	     memchr(name, ':', (size_t)(slash - name)) || strncmp(name, "localhost/", 10) == 0)) {
		*slash = '\0';
		r.registry = xstrdup(name);
		repo = slash + 1;
	} else {
		r.registry = xstrdup("docker.io");
		repo = name;
	}
	if (!registry_ok(r.registry)) {
		image_ref_done(&r);
		return hull_error_set(err, -EINVAL, "image reference '%.128s': bad registry", s);
	}
	r.repository = strcmp(r.registry, "docker.io") == 0 && !strchr(repo, '/')
	                   ? xasprintf("library/%s", repo)
	                   : xstrdup(repo);
	for (const char *p = r.repository;;) {
		const char *e = strchrnul(p, '/');
		if (!repo_component_ok(p, (size_t)(e - p)) || strlen(r.repository) > 255) {
			image_ref_done(&r);
			return hull_error_set(err, -EINVAL,
			                      "image reference '%.128s': repository names are "
			                      "lowercase letters, digits and . _ - between slashes",
			                      s);
		}
		if (!*e)
			break;
		p = e + 1;
	}
	if (!r.tag && !r.digest)
		r.tag = xstrdup("latest");
	*ret = r;
	return 0;
}

char *image_ref_string(const struct image_ref *r)
{
	return xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
	                 r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

/* ---- JSON helpers ---- */

static int want_type(json_object *o, const char *path, json_type t, struct hull_error **err)
{
	if (!json_object_is_type(o, t))
		return hull_error_set(err, -EINVAL, "%s: want %s", path, json_type_to_name(t));
	return 0;
}

/* o[key] as a string copy; absent is fine (NULL) unless required. */
static int opt_string(json_object *o, const char *key, const char *path, bool required, char **ret,
                      struct hull_error **err)
{
	json_object *v;
	*ret = NULL;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return hull_error_set(err, -EINVAL, "%s.%s: missing", path, key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return hull_error_set(err, -EINVAL, "%s.%s: want a string", path, key);
	if (json_object_get_string_len(v) > 65536)
		return hull_error_set(err, -E2BIG, "%s.%s: longer than 64 KiB", path, key);
	*ret = xstrdup(json_object_get_string(v));
	return 0;
}

static int opt_strv(json_object *o, const char *key, const char *path, char ***ret, size_t *n_ret,
                    struct hull_error **err)
{
	json_object *v;
	size_t n;
	*ret = NULL;
	if (n_ret)
		*n_ret = 0;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return hull_error_set(err, -EINVAL, "%s.%s: want an array of strings", path, key);
	n = json_object_array_length(v);
	if (n > 4096)
		return hull_error_set(err, -E2BIG, "%s.%s: %zu entries, at most 4096", path, key,
		                      n);
	char **l = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string)) {
			strv_free(l);
			return hull_error_set(err, -EINVAL, "%s.%s[%zu]: want a string", path, key,
			                      i);
		}
		l[i] = xstrdup(json_object_get_string(e));
	}
	*ret = l;
	if (n_ret)
		*n_ret = n;
	return 0;
}

static void desc_done(struct image_desc *d)
{
	free(d->media_type);
	free(d->digest);
	free(d->os);
	free(d->arch);
	free(d->variant);
	free(d->ref_name);
	free(d->image_name);
}

static int parse_desc(json_object *o, const char *path, struct image_desc *d,
                      struct hull_error **err)
{
	json_object *v, *plat, *ann;
	int r;

	*d = (struct image_desc){0};
	if ((r = want_type(o, path, json_type_object, err)) < 0)
		return r;
	if ((r = opt_string(o, "mediaType", path, false, &d->media_type, err)) < 0 ||
	    (r = opt_string(o, "digest", path, true, &d->digest, err)) < 0)
		return r;
	if (!digest_is_valid(d->digest))
		return hull_error_set(err, -EINVAL, "%s.digest: '%.80s' is not sha256:<64 hex>",
		                      path, d->digest);
	if (!json_object_object_get_ex(o, "size", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return hull_error_set(err, -EINVAL, "%s.size: want a non-negative integer", path);
	d->size = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "platform", &plat) &&
	    json_object_is_type(plat, json_type_object)) {
		if ((r = opt_string(plat, "os", path, false, &d->os, err)) < 0 ||
		    (r = opt_string(plat, "architecture", path, false, &d->arch, err)) < 0 ||
		    (r = opt_string(plat, "variant", path, false, &d->variant, err)) < 0)
			return r;
	}
	if (json_object_object_get_ex(o, "annotations", &ann) &&
	    json_object_is_type(ann, json_type_object)) {
		const char *s = json_get_string(ann, "org.opencontainers.image.ref.name");
		if (s)
			d->ref_name = xstrndup(s, 512);
		s = json_get_string(ann, "io.containerd.image.name");
		if (s)
			d->image_name = xstrndup(s, 512);
	}
	return 0;
}

void image_manifest_done(struct image_manifest *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		desc_done(&m->entries[i]);
	free(m->entries);
	*m = (struct image_manifest){0};
}

static bool is_layer_type(const char *t)
{
	return !t || strcmp(t, "application/vnd.oci.image.layer.v1.tar") == 0 ||
	       strcmp(t, "application/vnd.oci.image.layer.v1.tar+gzip") == 0 ||
	       strcmp(t, "application/vnd.oci.image.layer.v1.tar+zstd") == 0 ||
	       strcmp(t, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0 ||
	       strcmp(t, "application/vnd.docker.image.rootfs.diff.tar") == 0;
}

int image_parse_manifest(const char *json, size_t len, struct image_manifest *ret,
                         struct hull_error **err)
{
	_cleanup_(json_object_putp) json_object *root = NULL;
	json_object *v, *list;
	_cleanup_free_ char *mt = NULL;
	struct image_manifest m = {0};
	int r;

	*ret = (struct image_manifest){0};
	if (len > IMAGE_MAX_JSON)
		return hull_error_set(err, -E2BIG, "manifest: %zu bytes, at most %u", len,
		                      IMAGE_MAX_JSON);
	if ((r = json_parse(json, len, 32, true, &root, err)) < 0)
		return hull_error_prefix(err, "manifest");
	if (!json_object_object_get_ex(root, "schemaVersion", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int(v) != 2)
		return hull_error_set(err, -EINVAL, "manifest.schemaVersion: want 2");
	if ((r = opt_string(root, "mediaType", "manifest", false, &mt, err)) < 0)
		return r;
	m.is_index = json_object_object_get_ex(root, "manifests", &list);
	if (mt && strcmp(mt, m.is_index ? MEDIA_OCI_INDEX : MEDIA_OCI_MANIFEST) != 0 &&
	    strcmp(mt, m.is_index ? MEDIA_DOCKER_LIST : MEDIA_DOCKER_MANIFEST) != 0)
		return hull_error_set(err, -EOPNOTSUPP, "manifest.mediaType: '%.128s' unsupported",
		                      mt);
	if (m.is_index) {
		size_t n;
		if ((r = want_type(list, "manifest.manifests", json_type_array, err)) < 0)
			return r;
		n = json_object_array_length(list);
		if (n > 1024)
			return hull_error_set(err, -E2BIG, "manifest.manifests: %zu entries", n);
		m.entries = xcalloc(n + 1, sizeof(*m.entries));
		for (size_t i = 0; i < n; i++) {
			char path[64];
			snprintf(path, sizeof(path), "manifest.manifests[%zu]", i);
			m.n_entries = i + 1;
			r = parse_desc(json_object_array_get_idx(list, i), path, &m.entries[i],
			               err);
			if (r < 0)
				goto fail;
		}
	} else {
		json_object *config, *layers;
		size_t n;
		if (!json_object_object_get_ex(root, "config", &config) ||
		    !json_object_object_get_ex(root, "layers", &layers))
			return hull_error_set(err, -EINVAL, "manifest: wants config and layers");
		if ((r = want_type(layers, "manifest.layers", json_type_array, err)) < 0)
			return r;
		n = json_object_array_length(layers);
		if (n > IMAGE_MAX_LAYERS)
			return hull_error_set(err, -E2BIG, "manifest.layers: %zu, at most %d", n,
			                      IMAGE_MAX_LAYERS);
		m.entries = xcalloc(n + 2, sizeof(*m.entries));
		m.n_entries = 1;
		r = parse_desc(config, "manifest.config", &m.entries[0], err);
		if (r < 0)
			goto fail;
		if (m.entries[0].media_type && strcmp(m.entries[0].media_type, MEDIA_OCI_CONFIG) &&
		    strcmp(m.entries[0].media_type, MEDIA_DOCKER_CONFIG)) {
			r = hull_error_set(err, -EOPNOTSUPP,
			                   "manifest.config.mediaType: '%.128s' is not an image "
			                   "config",
			                   m.entries[0].media_type);
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			char path[64];
			snprintf(path, sizeof(path), "manifest.layers[%zu]", i);
			m.n_entries = i + 2;
			r = parse_desc(json_object_array_get_idx(layers, i), path,
			               &m.entries[i + 1], err);
			if (r < 0)
				goto fail;
			if (!is_layer_type(m.entries[i + 1].media_type)) {
				r = hull_error_set(err, -EOPNOTSUPP,
				                   "%s.mediaType: '%.128s' unsupported", path,
				                   m.entries[i + 1].media_type);
				goto fail;
			}
		}
	}
	*ret = m;
	return 0;
fail:
	image_manifest_done(&m);
	return r;
}

const struct image_desc *image_index_select(const struct image_manifest *index, const char *os,
                                            const char *arch)
{
	for (size_t i = 0; i < index->n_entries; i++) {
		const struct image_desc *d = &index->entries[i];
		if (d->os && d->arch && strcmp(d->os, os) == 0 && strcmp(d->arch, arch) == 0)
			return d;
	}
	return NULL;
}

void image_config_done(struct image_config *c)
{
	free(c->os);
	free(c->arch);
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	strv_free(c->env);
	free(c->workdir);
	free(c->user);
	free(c->stop_signal);
	strv_free(c->diff_ids);
	*c = (struct image_config){0};
}

int image_parse_config(const char *json, size_t len, struct image_config *ret,
                       struct hull_error **err)
{
	_cleanup_(json_object_putp) json_object *root = NULL;
	json_object *cfg = NULL, *rootfs;
	struct image_config c = {0};
	int r;

	*ret = (struct image_config){0};
	if (len > IMAGE_MAX_JSON)
		return hull_error_set(err, -E2BIG, "image config: %zu bytes, at most %u", len,
		                      IMAGE_MAX_JSON);
	if ((r = json_parse(json, len, 32, true, &root, err)) < 0)
		return hull_error_prefix(err, "image config");
	if ((r = opt_string(root, "os", "config", false, &c.os, err)) < 0 ||
	    (r = opt_string(root, "architecture", "config", false, &c.arch, err)) < 0)
		goto fail;
	if (json_object_object_get_ex(root, "config", &cfg) &&
	    !json_object_is_type(cfg, json_type_null)) {
		if ((r = want_type(cfg, "config.config", json_type_object, err)) < 0 ||
		    (r = opt_strv(cfg, "Entrypoint", "config.config", &c.entrypoint, NULL, err)) <
		        0 ||
		    (r = opt_strv(cfg, "Cmd", "config.config", &c.cmd, NULL, err)) < 0 ||
		    (r = opt_strv(cfg, "Env", "config.config", &c.env, NULL, err)) < 0 ||
		    (r = opt_string(cfg, "WorkingDir", "config.config", false, &c.workdir, err)) <
		        0 ||
		    (r = opt_string(cfg, "User", "config.config", false, &c.user, err)) < 0 ||
		    (r = opt_string(cfg, "StopSignal", "config.config", false, &c.stop_signal,
		                    err)) < 0)
			goto fail;
	}
	if (!json_object_object_get_ex(root, "rootfs", &rootfs) ||
	    !json_object_is_type(rootfs, json_type_object)) {
		r = hull_error_set(err, -EINVAL, "config.rootfs: missing");
		goto fail;
	}
	if ((r = opt_strv(rootfs, "diff_ids", "config.rootfs", &c.diff_ids, &c.n_diff_ids, err)) <
	    0)
		goto fail;
	if (c.n_diff_ids > IMAGE_MAX_LAYERS) {
		r = hull_error_set(err, -E2BIG, "config.rootfs.diff_ids: more than %d",
		                   IMAGE_MAX_LAYERS);
		goto fail;
	}
	for (size_t i = 0; i < c.n_diff_ids; i++)
		if (!digest_is_valid(c.diff_ids[i])) {
			r = hull_error_set(err, -EINVAL,
			                   "config.rootfs.diff_ids[%zu]: not sha256:<64 hex>", i);
			goto fail;
		}
	*ret = c;
	return 0;
fail:
	image_config_done(&c);
	return r;
}

/* ---- sha256 (libcrypto) ---- */

struct sha256 {
	EVP_MD_CTX *ctx;
};

struct sha256 *sha256_new(void)
{
	struct sha256 *h = xmalloc(sizeof(*h));
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		abort();
	return h;
}

void sha256_update(struct sha256 *h, const void *data, size_t len)
{
	if (EVP_DigestUpdate(h->ctx, data, len) != 1)
		abort();
}

char *sha256_finish(struct sha256 *h)
{
	unsigned char md[32];
	unsigned int n = 0;
	char *out = xmalloc(7 + 64 + 1);

	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n != 32)
		abort();
	EVP_MD_CTX_free(h->ctx);
	free(h);
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	return out;
}

char *sha256_of(const void *data, size_t len)
{
	struct sha256 *h = sha256_new();
	sha256_update(h, data, len);
	return sha256_finish(h);
}

/* ---- registry auth challenges ---- */

int image_parse_challenge(const char *challenge, struct auth_challenge *ret)
{
	*ret = (struct auth_challenge){0};
	if (strncasecmp(challenge, "Bearer ", 7) != 0)
		return -EINVAL;
	for (const char *q = challenge + 7; *q;) {
		char key[32], val[1024];
		int used = 0;
		if (sscanf(q, " %31[^=]=\"%1023[^\"]\"%n", key, val, &used) != 2 || used == 0)
			break;
		if (strcmp(key, "realm") == 0)
			snprintf(ret->realm, sizeof(ret->realm), "%s", val);
		else if (strcmp(key, "service") == 0)
			snprintf(ret->service, sizeof(ret->service), "%s", val);
		else if (strcmp(key, "scope") == 0)
			snprintf(ret->scope, sizeof(ret->scope), "%s", val);
		q += used;
		q += strspn(q, ", ");
	}
	if (strncmp(ret->realm, "https://", 8) != 0 && strncmp(ret->realm, "http://", 7) != 0)
		return -EINVAL;
	return 0;
}
