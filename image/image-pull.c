/* SPDX-License-Identifier: MIT */
/* hull pull: the OCI distribution API with libcurl. Manifests (index resolved to our
 * platform), then config and layers fetched in parallel into the store, each verified
 * against its digest before it is visible; a blob interrupted midway resumes from its
 * partial file (Range); a second puller of the same blob waits on the partial file's
 * lock instead of fetching it again. Auth: anonymous, basic, bearer tokens (with the
 * credentials of a docker-style auth file, or those given with the pull: basic ones, an
 * identity token as an OAuth2 refresh token, a registry token as the bearer token).
 * docs/images.md. */
#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define MAX_PARALLEL 4
#define ACCEPT_MANIFESTS                                                          \
	"Accept: " MEDIA_OCI_INDEX ", " MEDIA_OCI_MANIFEST ", " MEDIA_DOCKER_LIST \
	", " MEDIA_DOCKER_MANIFEST

struct pull {
	const struct pull_opts *o;
	struct image_store *s;
	struct image_ref ref;
	char *base;       /* scheme://host for the registry (or its mirror) */
	char *token;      /* bearer token, once we have one */
	char *basic;      /* "user:pass" from the auth file or the pull's auth, or NULL */
	char *refresh;    /* the pull's identity token (an OAuth2 refresh token), or NULL */
	bool fixed_token; /* token is the pull's registry token: never replaced */
	bool tty;
};

/* ---- credentials and registry settings ---- */

/* user:pass for host from a docker-style auth file ({"auths":{host:{"auth":b64}}}). */
static char *auth_for(const char *host)
{
	const char *env = getenv("REGISTRY_AUTH_FILE"), *home = getenv("HOME"),
	           *xdg = getenv("XDG_RUNTIME_DIR");
	_cleanup_free_ char *p1 = xdg ? xasprintf("%s/containers/auth.json", xdg) : NULL;
	_cleanup_free_ char *p2 = home ? xasprintf("%s/.docker/config.json", home) : NULL;
	const char *paths[] = {env, p1, p2};

	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		_cleanup_close_ int fd = paths[i] ? open(paths[i], O_RDONLY | O_CLOEXEC) : -1;
		_cleanup_free_ char *text = NULL;
		_cleanup_(json_object_putp) json_object *root = NULL;
		json_object *auths, *entry;
		char buf[65536];
		ssize_t n;
		if (fd < 0 || (n = read_all(fd, buf, sizeof(buf) - 1)) <= 0)
			continue;
		if (json_parse(buf, (size_t)n, 8, true, &root, NULL) < 0 ||
		    !json_object_object_get_ex(root, "auths", &auths) ||
		    !json_object_object_get_ex(auths, host, &entry))
			continue;
		const char *b64 = json_get_string(entry, "auth");
		if (!b64)
			continue;
		/* libcrypto's decoder (padding decodes to NULs, cut by the terminator). */
		size_t len = strlen(b64);
		char *out = xmalloc(len + 1);
		int dn = len % 4 == 0 && len <= INT_MAX
		             ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64,
		                               (int)len)
		             : -1;
		if (dn >= 0) {
			out[dn] = '\0';
			if (strchr(out, ':'))
				return out;
		}
		free(out);
	}
	return NULL;
}

/* The credentials of this pull: those given with it, else the auth file's. They end up
 * in curl's "user:password" and in an Authorization header: nothing that would split
 * the one or end the other. */
static int pull_credentials(struct pull *p, const struct image_auth *a, struct hull_error **err)
{
	bool basic = a && (a->username || a->password);

	if (!a || (!basic && !a->identity_token && !a->registry_token)) {
		p->basic = auth_for(p->ref.registry);
		return 0;
	}
	if (a->username && strchr(a->username, ':'))
		return hull_error_set(err, -EINVAL, "auth: a username holding ':' cannot be sent");
	if (a->registry_token && (!*a->registry_token || strlen(a->registry_token) > 16384 ||
	                          strpbrk(a->registry_token, "\r\n")))
		return hull_error_set(err, -EINVAL,
		                      "auth: the registry token is empty, longer than 16384 bytes "
		                      "or holds a line break");
	if (basic)
		p->basic = xasprintf("%s:%s", a->username ? a->username : "",
		                     a->password ? a->password : "");
	else if (a->identity_token)
		p->refresh = xstrdup(a->identity_token);
	if (a->registry_token) {
		p->token = xstrdup(a->registry_token);
		p->fixed_token = true;
	}
	return 0;
}

/* Where a registry's API is: its mirror from HULL_REGISTRY_MIRRORS
 * ("docker.io=http://127.0.0.1:5001,..."), else plain HTTP for loopback registries and
 * those named in $HULL_INSECURE_REGISTRIES (comma-separated), HTTPS otherwise. */
static char *registry_base(const char *registry)
{
	const char *mirrors = getenv("HULL_REGISTRY_MIRRORS");
	const char *insecure = getenv("HULL_INSECURE_REGISTRIES");
	size_t n = strlen(registry);

	for (const char *p = mirrors; p && *p;) {
		const char *e = strchrnul(p, ',');
		if ((size_t)(e - p) > n + 1 && strncmp(p, registry, n) == 0 && p[n] == '=')
			return xstrndup(p + n + 1, (size_t)(e - p) - n - 1);
		p = *e ? e + 1 : e;
	}
	bool plain = strncmp(registry, "localhost", 9) == 0 || strncmp(registry, "127.", 4) == 0 ||
	             strncmp(registry, "[::1]", 5) == 0;
	for (const char *p = insecure; p && *p && !plain;) {
		const char *e = strchrnul(p, ',');
		plain = (size_t)(e - p) == n && strncmp(p, registry, n) == 0;
		p = *e ? e + 1 : e;
	}
	if (strcmp(registry, "docker.io") == 0)
		return xstrdup("https://registry-1.docker.io");
	return xasprintf("%s://%s", plain ? "http" : "https", registry);
}

/* ---- one HTTP request into memory or a file ---- */

struct sink {
	struct buf mem; /* when fd < 0 */
	size_t max;     /* refuse bodies larger than this (memory) */
	int fd;         /* append here otherwise */
	struct sha256 *hash;
	uint64_t got, total;
	char *www_auth; /* WWW-Authenticate of a 401 */
	char *content_digest;
	struct pull *p;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sink *k = userdata;
	size_t n = size * nmemb;
	if (k->fd < 0) {
		if (k->mem.len + n > k->max)
			return 0; /* over the cap: abort the transfer */
		buf_append(&k->mem, ptr, n);
	} else {
		/* A blob never grows past the size its manifest gives. */
		if (k->got + n > k->max || write_all(k->fd, ptr, n) < 0)
			return 0;
		if (k->hash)
			sha256_update(k->hash, ptr, n);
	}
	k->got += n;
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sink *k = userdata;
	size_t n = size * nmemb;
	_cleanup_free_ char *line = xstrndup(ptr, n);
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "www-authenticate:", 17) == 0) {
		free(k->www_auth);
		k->www_auth = xstrdup(line + 17 + strspn(line + 17, " "));
	} else if (strncasecmp(line, "docker-content-digest:", 22) == 0) {
		free(k->content_digest);
		k->content_digest = xstrdup(line + 22 + strspn(line + 22, " "));
	} else if (strncasecmp(line, "content-length:", 15) == 0) {
		k->total = strtoull(line + 15, NULL, 10);
	}
	return n;
}

static CURL *easy_new(struct pull *p, const char *url, struct sink *k, struct curl_slist **hdrs,
                      const char *accept)
{
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	*hdrs = NULL;
	if (accept)
		*hdrs = curl_slist_append(*hdrs, accept);
	if (p->token) {
		_cleanup_free_ char *h = xasprintf("Authorization: Bearer %s", p->token);
		*hdrs = curl_slist_append(*hdrs, h);
	} else if (p->basic) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERPWD, p->basic);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	/* A registry that stops sending: under 1 byte/s for the timeout is a failure. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, p->o->timeout_s ? (long)p->o->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hull/" HULL_VERSION);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	return c;
}

static int http_error(CURL *c, CURLcode rc, long status, const char *url, struct hull_error **err)
{
	if (rc != CURLE_OK)
		return hull_error_set(err, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
		                      "%s: %s", url, curl_easy_strerror(rc));
	(void)c;
	if (status == 404)
		return hull_error_set(err, -ENOENT, "%s: not found (404)", url);
	if (status == 401 || status == 403)
		return hull_error_set(err, -EACCES, "%s: access denied (%ld)", url, status);
	return hull_error_set(err, -EIO, "%s: the registry answered %ld", url, status);
}

/* One request to a token server for p->token: GET url, or POST form to it. *ret_status
 * is the HTTP status (0 when there was no answer). */
static int token_request(struct pull *p, const char *url, const char *form, const char *realm,
                         long *ret_status, struct hull_error **err)
{
	struct sink k = {.fd = -1, .max = 1 << 20};
	struct curl_slist *h = NULL;
	_cleanup_(json_object_putp) json_object *o = NULL;
	const char *tok;
	long status = 0;
	CURL *c = easy_new(p, url, &k, &h, NULL);
	CURLcode rc;
	int r = 0;

	if (form)
		curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, form);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	if (rc != CURLE_OK || status != 200) {
		r = http_error(c, rc, status, realm, err);
		hull_error_prefix(err, "registry token");
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(k.www_auth);
	free(k.content_digest);
	if (r >= 0) {
		r = json_parse((const char *)buf_head(&k.mem), k.mem.len, 8, true, &o, err);
		if (r < 0)
			hull_error_prefix(err, "registry token");
	}
	buf_release(&k.mem);
	if (r < 0)
		return r;
	tok = json_get_string(o, "token") ? json_get_string(o, "token")
	                                  : json_get_string(o, "access_token");
	if (!tok || !*tok || strlen(tok) > 16384 || strpbrk(tok, "\r\n"))
		return hull_error_set(err, -EACCES, "registry token: the answer holds no token");
	p->token = xstrdup(tok);
	return 0;
}

/* The OAuth2 form that trades the identity token for an access token. */
static char *refresh_form(const struct pull *p, const struct auth_challenge *ch)
{
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	char *et = curl_easy_escape(c, p->refresh, 0), *es = curl_easy_escape(c, ch->service, 0),
	     *esc = curl_easy_escape(c, ch->scope, 0);
	if (!et || !es || !esc)
		abort();
	char *form = xasprintf(
	    "grant_type=refresh_token&refresh_token=%s&service=%s&scope=%s&client_id=hull", et, es,
	    esc);
	curl_free(et);
	curl_free(es);
	curl_free(esc);
	curl_easy_cleanup(c);
	return form;
}

/* Bearer realm="...",service="...",scope="...": get a token (with basic credentials
 * when we have some, or for the identity token we were given). */
static int get_token(struct pull *p, const char *challenge, struct hull_error **err)
{
	struct auth_challenge ch;
	_cleanup_free_ char *url = NULL;
	long status = 0;
	CURL *c;
	int r;

	if (image_parse_challenge(challenge, &ch) < 0)
		return hull_error_set(err, -EACCES, "registry auth: no usable realm in '%.200s'",
		                      challenge);
	if (!*ch.scope)
		snprintf(ch.scope, sizeof(ch.scope), "repository:%s:pull", p->ref.repository);
	free(p->token);
	p->token = NULL;
	if (p->refresh) {
		/* Security: the identity token goes to the realm the registry named, in the
		 * body of a POST (never in a URL), as docker and containerd send it. */
		_cleanup_free_ char *form = refresh_form(p, &ch);
		struct hull_error *perr = NULL;
		r = token_request(p, ch.realm, form, ch.realm, &status, &perr);
		if (r >= 0)
			return 0;
		/* Token servers without the OAuth2 POST answer it 400 (ACR), 401
		 * (Artifactory), 404 (GCR) or 405: containerd then GETs a token with the
		 * identity token as basic password; so do we. */
		if (status != 400 && status != 401 && status != 404 && status != 405) {
			if (err && !*err)
				*err = perr;
			else
				hull_error_free(perr);
			return r;
		}
		hull_error_free(perr);
	}
	c = curl_easy_init();
	if (!c)
		abort();
	char *es = curl_easy_escape(c, ch.service, 0), *esc = curl_easy_escape(c, ch.scope, 0);
	url = xasprintf("%s?service=%s&scope=%s", ch.realm, es, esc);
	curl_free(es);
	curl_free(esc);
	curl_easy_cleanup(c);
	if (p->refresh) {
		p->basic = xasprintf(":%s", p->refresh);
		r = token_request(p, url, NULL, ch.realm, &status, err);
		free(p->basic);
		p->basic = NULL;
		return r;
	}
	return token_request(p, url, NULL, ch.realm, &status, err);
}

/* GET url into memory (at most max bytes), authenticating on 401 once. */
static int get_mem(struct pull *p, const char *url, const char *accept, size_t max, struct buf *out,
                   char **content_digest, struct hull_error **err)
{
	for (int attempt = 0;; attempt++) {
		struct sink k = {.fd = -1, .max = max};
		struct curl_slist *h;
		long status = 0;
		CURL *c = easy_new(p, url, &k, &h, accept);
		CURLcode rc = curl_easy_perform(c);
		int r = 0;

		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (rc == CURLE_WRITE_ERROR && k.mem.len + CURL_MAX_WRITE_SIZE > max)
			r = hull_error_set(err, -E2BIG, "%s: larger than %zu bytes", url, max);
		else if (status == 401 && k.www_auth &&
		         strncasecmp(k.www_auth, "Bearer ", 7) == 0 && p->fixed_token)
			r = hull_error_set(err, -EACCES, "%s: the registry token was refused", url);
		else if (status == 401 && attempt == 0 && k.www_auth &&
		         strncasecmp(k.www_auth, "Bearer ", 7) == 0)
			r = 1;
		else if (status == 401 && attempt == 0 && k.www_auth &&
		         strncasecmp(k.www_auth, "Basic", 5) == 0 && p->basic && !p->token)
			r = hull_error_set(err, -EACCES, "%s: the credentials were refused", url);
		else if (rc != CURLE_OK || status != 200)
			r = http_error(c, rc, status, url, err);
		curl_easy_cleanup(c);
		curl_slist_free_all(h);
		if (r == 1) {
			r = get_token(p, k.www_auth, err);
			free(k.www_auth);
			free(k.content_digest);
			buf_release(&k.mem);
			if (r < 0)
				return r;
			continue;
		}
		free(k.www_auth);
		if (r < 0) {
			free(k.content_digest);
			buf_release(&k.mem);
			return r;
		}
		*out = k.mem;
		if (content_digest)
			*content_digest = k.content_digest;
		else
			free(k.content_digest);
		return 0;
	}
}

/* ---- manifests ---- */

/* The manifest at reference (tag or digest) into the store; *digest is its digest. */
static int fetch_manifest(struct pull *p, const char *reference, char **digest,
                          struct hull_error **err)
{
	_cleanup_free_ char *url =
	    xasprintf("%s/v2/%s/manifests/%s", p->base, p->ref.repository, reference);
	struct buf body = {0};
	char *d = NULL;
	int r = get_mem(p, url, ACCEPT_MANIFESTS, IMAGE_MAX_JSON, &body, NULL, err);
	if (r < 0)
		return r;
	r = image_store_put_blob_mem(p->s, buf_head(&body), body.len, &d, err);
	buf_release(&body);
	if (r >= 0 && digest_is_valid(reference) && strcmp(d, reference) != 0)
		r = hull_error_set(err, -EBADMSG,
		                   "manifest %s: the registry sent one hashing to %s", reference,
		                   d);
	if (r < 0) {
		free(d);
		return r;
	}
	*digest = d;
	return 0;
}

/* ---- blobs, several at once ---- */

struct job {
	struct image_desc *d;
	char *partial;
	int fd;
	struct sha256 *hash;
	struct sink k;
	struct curl_slist *h;
	CURL *c;
	uint64_t start; /* bytes already in the partial file when this transfer began */
	double t0;      /* when it began (CLOCK_MONOTONIC, s) */
	bool done;
	int attempts;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void draw(struct pull *p, struct job *jobs, size_t n, bool final)
{
	if (p->o->quiet || !p->tty)
		return;
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		uint64_t have = j->done ? (uint64_t)j->d->size : j->start + j->k.got;
		double dt = j->t0 > 0 ? now_s() - j->t0 : 0;
		fprintf(stderr, "\r\033[K%.19s  %7.1f / %.1f MB", j->d->digest, (double)have / 1e6,
		        (double)j->d->size / 1e6);
		if (j->done)
			fputs("  done\n", stderr);
		else if (dt > 0.05)
			fprintf(stderr, "  %.1f MB/s\n", (double)j->k.got / 1e6 / dt);
		else
			fputc('\n', stderr);
	}
	if (!final)
		fprintf(stderr, "\033[%zuA", n);
}

/* Start (or resume) the fetch of job's blob: its partial file is locked, so a second
 * puller of the same blob waits here and then finds it in the store. */
static int job_start(struct pull *p, CURLM *m, struct job *j, struct hull_error **err)
{
	_cleanup_free_ char *url =
	    xasprintf("%s/v2/%s/blobs/%s", p->base, p->ref.repository, j->d->digest);
	struct stat st;
	uint8_t buf[1 << 16];
	ssize_t n;

	j->partial = xasprintf("%s/tmp/%s.partial", image_store_root(p->s), j->d->digest + 7);
	j->fd = open(j->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0)
		return hull_error_set_errno(err, -errno, "'%s'", j->partial);
	if (flock(j->fd, LOCK_EX) < 0)
		return hull_error_set_errno(err, -errno, "lock '%s'", j->partial);
	if (image_store_has_blob(p->s, j->d->digest)) {
		/* Another puller finished it meanwhile; the partial file we may have just
		 * created for it is of no use to anyone now. */
		(void)unlink(j->partial);
		j->done = true;
		return 0;
	}
	/* Resume: hash what is there, fetch the rest. */
	j->hash = sha256_new();
	if (fstat(j->fd, &st) < 0 || st.st_size > j->d->size)
		(void)ftruncate(j->fd, 0);
	while ((n = read(j->fd, buf, sizeof(buf))) > 0)
		sha256_update(j->hash, buf, (size_t)n);
	j->start = (uint64_t)lseek(j->fd, 0, SEEK_END);
	j->k = (struct sink){
	    .fd = j->fd, .hash = j->hash, .p = p, .max = (size_t)j->d->size - (size_t)j->start};
	j->c = easy_new(p, url, &j->k, &j->h, NULL);
	if (j->start > 0) {
		char range[64];
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)j->start);
		curl_easy_setopt(j->c, CURLOPT_RANGE, range);
		if (!p->o->quiet && !p->tty)
			fprintf(stderr, "%.19s: resuming at %.1f MB\n", j->d->digest,
			        (double)j->start / 1e6);
	}
	curl_easy_setopt(j->c, CURLOPT_PRIVATE, j);
	curl_multi_add_handle(m, j->c);
	j->t0 = now_s();
	return 0;
}

/* A finished transfer: verify and move into the store. */
static int job_finish(struct pull *p, CURLM *m, struct job *j, CURLcode rc, struct hull_error **err)
{
	long status = 0;
	_cleanup_free_ char *got = NULL;
	int r = 0;

	curl_easy_getinfo(j->c, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(m, j->c);
	if (rc == CURLE_WRITE_ERROR &&
	    j->start + j->k.got + CURL_MAX_WRITE_SIZE > (uint64_t)j->d->size) {
		r = hull_error_set(err, -EBADMSG, "blob %s: more bytes than the manifest's %lld",
		                   j->d->digest, (long long)j->d->size);
		(void)unlink(j->partial);
	} else if (rc != CURLE_OK || (status != 200 && status != 206)) {
		r = http_error(j->c, rc, status, j->d->digest, err);
		hull_error_prefix(err, "blob");
	} else if (status == 200 && j->start > 0) {
		/* The registry ignored Range: it sent everything after what we had. */
		r = hull_error_set(err, -EIO, "blob %s: the registry does not resume; pull again",
		                   j->d->digest);
		(void)ftruncate(j->fd, 0);
	}
	curl_easy_cleanup(j->c);
	curl_slist_free_all(j->h);
	free(j->k.www_auth);
	free(j->k.content_digest);
	j->c = NULL;
	got = sha256_finish(j->hash);
	j->hash = NULL;
	if (r >= 0 && (int64_t)(j->start + j->k.got) != j->d->size)
		r = hull_error_set(err, -EBADMSG, "blob %s: %llu bytes, the manifest says %lld",
		                   j->d->digest, (unsigned long long)(j->start + j->k.got),
		                   (long long)j->d->size);
	else if (r >= 0 && strcmp(got, j->d->digest) != 0) {
		r = hull_error_set(err, -EBADMSG, "blob %s: its content hashes to %s", j->d->digest,
		                   got);
		(void)unlink(j->partial); /* worthless: start over next time */
	}
	if (r >= 0) {
		_cleanup_free_ char *dst = image_store_blob_path(p->s, j->d->digest);
		if (fsync(j->fd) < 0 || rename(j->partial, dst) < 0)
			r = hull_error_set_errno(err, -errno, "store blob %s", j->d->digest);
	}
	j->done = r >= 0;
	return r;
}

static int fetch_blobs(struct pull *p, struct image_desc *descs, size_t n, struct hull_error **err)
{
	struct job *jobs = xcalloc(n + 1, sizeof(*jobs));
	CURLM *m = curl_multi_init();
	size_t next = 0, active = 0;
	int r = 0, running = 0;
	double last = 0;

	for (size_t i = 0; i < n; i++) {
		jobs[i].d = &descs[i];
		jobs[i].fd = -1;
		jobs[i].done = image_store_has_blob(p->s, descs[i].digest);
	}
	for (;;) {
		while (r >= 0 && active < MAX_PARALLEL && next < n) {
			struct job *j = &jobs[next++];
			if (j->done)
				continue;
			r = job_start(p, m, j, err);
			if (r >= 0 && !j->done)
				active++;
		}
		if (active == 0)
			break;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			struct job *j;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			active--;
			struct hull_error *jerr = NULL;
			CURLcode cr = msg->data.result;
			int jr = job_finish(p, m, j, cr, &jerr);
			/* A connection lost midway: resume from what arrived, twice at most. */
			if (jr < 0 && r >= 0 && j->attempts < 2 &&
			    (cr == CURLE_PARTIAL_FILE || cr == CURLE_RECV_ERROR ||
			     cr == CURLE_GOT_NOTHING || cr == CURLE_OPERATION_TIMEDOUT)) {
				if (!p->o->quiet)
					fprintf(stderr, "%.19s: %s; resuming\n", j->d->digest,
					        jerr->msg);
				hull_error_free(jerr);
				j->attempts++;
				close(j->fd);
				j->fd = -1;
				free(j->partial);
				j->partial = NULL;
				jr = job_start(p, m, j, err);
				if (jr >= 0 && !j->done)
					active++;
				else if (jr < 0)
					r = jr;
				continue;
			}
			if (jr < 0 && r >= 0) {
				r = jr;
				hull_error_free(*err);
				*err = jerr;
			} else {
				hull_error_free(jerr);
			}
			if (jr >= 0 && !p->o->quiet && !p->tty)
				fprintf(stderr, "%.19s: done (%.1f MB)\n", j->d->digest,
				        (double)j->d->size / 1e6);
		}
		double now = now_s();
		if (now - last > 0.2) {
			draw(p, jobs, n, false);
			last = now;
		}
		if (r < 0 && active == 0)
			break;
		curl_multi_poll(m, NULL, 0, 200, NULL);
	}
	draw(p, jobs, n, true);
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].c) {
			curl_multi_remove_handle(m, jobs[i].c);
			curl_easy_cleanup(jobs[i].c);
			curl_slist_free_all(jobs[i].h);
		}
		if (jobs[i].hash)
			free(sha256_finish(jobs[i].hash));
		if (jobs[i].fd >= 0)
			close(jobs[i].fd); /* the lock goes with it; the partial file stays */
		free(jobs[i].partial);
	}
	curl_multi_cleanup(m);
	free(jobs);
	return r;
}

int image_pull(struct image_store *s, const char *refstr, const struct pull_opts *o, char **name,
               char **digest, struct hull_error **err)
{
	struct pull p = {.o = o, .s = s, .tty = isatty(STDERR_FILENO)};
	_cleanup_free_ char *top = NULL, *img = NULL, *json = NULL, *full = NULL;
	struct image_manifest m = {0};
	size_t len;
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = image_ref_parse(refstr, &p.ref, err);
	if (r < 0)
		return r;
	full = image_ref_string(&p.ref);
	r = pull_credentials(&p, o->auth, err);
	if (r < 0)
		goto out;
	p.base = registry_base(p.ref.registry);
	r = fetch_manifest(&p, p.ref.digest ? p.ref.digest : p.ref.tag, &top, err);
	if (r < 0)
		goto out;
	r = image_store_read_blob(s, top, IMAGE_MAX_JSON, &json, &len, err);
	if (r >= 0)
		r = image_parse_manifest(json, len, &m, err);
	if (r >= 0 && m.is_index) {
		const struct image_desc *d = image_index_select(&m, o->os, o->arch);
		if (!d) {
			r = hull_error_set(err, -ENOENT, "%s: no %s/%s image in its index", full,
			                   o->os, o->arch);
			goto out;
		}
		r = fetch_manifest(&p, d->digest, &img, err);
		image_manifest_done(&m);
		free(json);
		json = NULL;
		if (r >= 0)
			r = image_store_read_blob(s, img, IMAGE_MAX_JSON, &json, &len, err);
		if (r >= 0)
			r = image_parse_manifest(json, len, &m, err);
		if (r >= 0 && m.is_index)
			r = hull_error_set(err, -EINVAL, "%s: an index inside an index", full);
	} else if (r >= 0) {
		img = xstrdup(top);
	}
	if (r < 0)
		goto out;
	if (!o->quiet)
		fprintf(stderr, "%s: %zu blobs\n", full, m.n_entries);
	r = fetch_blobs(&p, m.entries, m.n_entries, err);
	if (r < 0)
		goto out;
	/* Unpacked, then named: a name never points at an image that cannot run. */
	{
		/* By tag: that name; by digest alone: NAME@DIGEST, so it is listed and kept. */
		_cleanup_free_ char *plain =
		    p.ref.tag ? xasprintf("%s/%s:%s", p.ref.registry, p.ref.repository, p.ref.tag)
		              : xstrdup(full);
		r = image_store_prepare(s, img, err);
		if (r >= 0)
			r = image_store_tag(s, plain, img, err);
	}
	if (r >= 0) {
		*name = TAKE_PTR(full);
		*digest = TAKE_PTR(img);
	}
out:
	if (r < 0)
		hull_error_prefix(err, "pull '%s'", refstr);
	image_manifest_done(&m);
	image_ref_done(&p.ref);
	free(p.base);
	free(p.token);
	free(p.basic);
	free(p.refresh);
	return r;
}
