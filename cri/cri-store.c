/* SPDX-License-Identifier: MIT */
/* What survives a restart of hull-cri: a record per pod and per container under
 * ROOT/pods/ID.json and ROOT/containers/ID.json (the CRI config packed, base64, and the
 * state kubelet asks about), written atomically on every change. At start, every
 * record comes back, and every pod's shim is spoken to again: the address it wrote in
 * its bundle, State for the sandbox and each container (what exited while we were away
 * reports its exit), the containers' FIFOs reopened so their logs go on. A pod whose
 * shim is gone is NOTREADY with its containers exited; a host reboot (the state dir is
 * gone) reads the same way. kubelet then stops and removes them as usual. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni.h"
#include "cri-internal.h"
#include "cri-shim.h"
#include "json.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

#define RECORD_MAX (4u << 20)

static char *b64_encode(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *raw = xmalloc(n + 1);
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	protobuf_c_message_pack(m, raw);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
	return out;
}

static ProtobufCMessage *b64_decode(const ProtobufCMessageDescriptor *d, const char *s)
{
	size_t n = strlen(s);
	_cleanup_free_ uint8_t *raw = xmalloc(n / 4 * 3 + 3);
	int len;
	if (n % 4 != 0)
		return NULL;
	len = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)n);
	if (len < 0)
		return NULL;
	/* EVP_DecodeBlock counts the padding as data. */
	while (n > 0 && s[n - 1] == '=' && len > 0)
		n--, len--;
	return protobuf_c_message_unpack(d, NULL, (size_t)len, raw);
}

static void write_record(const char *dir, const char *id, json_object *o)
{
	_cleanup_free_ char *path = xasprintf("%s/%s.json", dir, id);
	_cleanup_free_ char *tmp = xasprintf("%s/.%s.tmp", dir, id);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0)
		log_warn("record '%s': %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	json_object_put(o);
}

static void add_str(json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

static char *dup_str(json_object *o, const char *k)
{
	const char *v = json_get_string(o, k);
	return v ? xstrdup(v) : NULL;
}

static bool get_bool(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static int64_t get_i64(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

void cri_pod_save(const struct cri_pod *p)
{
	_cleanup_free_ char *dir = xasprintf("%s/pods", p->c->cfg.root);
	_cleanup_free_ char *cfg = b64_encode(&p->config->base);
	json_object *o = json_object_new_object();

	add_str(o, "id", p->id);
	add_str(o, "handler", p->handler);
	add_str(o, "dir", p->dir);
	add_str(o, "address", p->address);
	json_object_object_add(o, "state", json_object_new_int(p->state));
	json_object_object_add(o, "created_at", json_object_new_int64(p->created_at));
	json_object_object_add(o, "pid", json_object_new_int64(p->pid));
	add_str(o, "config", cfg);
	write_record(dir, p->id, o);
}

void cri_ctr_save(const struct cri_ctr *k)
{
	_cleanup_free_ char *dir = xasprintf("%s/containers", k->c->cfg.root);
	_cleanup_free_ char *cfg = b64_encode(&k->config->base);
	json_object *o = json_object_new_object(), *opts = json_object_new_array();

	add_str(o, "id", k->id);
	add_str(o, "pod", k->pod->id);
	add_str(o, "image_name", k->image_name);
	add_str(o, "image_id", k->image_id);
	json_object_object_add(o, "state", json_object_new_int(k->state));
	json_object_object_add(o, "created_at", json_object_new_int64(k->created_at));
	json_object_object_add(o, "started_at", json_object_new_int64(k->started_at));
	json_object_object_add(o, "finished_at", json_object_new_int64(k->finished_at));
	json_object_object_add(o, "exit_code", json_object_new_int(k->exit_code));
	add_str(o, "reason", k->reason);
	add_str(o, "message", k->message);
	json_object_object_add(o, "oom", json_object_new_boolean(k->oom));
	json_object_object_add(o, "pid", json_object_new_int64(k->pid));
	json_object_object_add(o, "in_shim", json_object_new_boolean(k->in_shim));
	add_str(o, "dir", k->dir);
	add_str(o, "log_path", k->log_path);
	add_str(o, "out_path", k->out_path);
	add_str(o, "err_path", k->err_path);
	add_str(o, "in_path", k->in_path);
	for (int i = 0; i < 3; i++)
		json_object_array_add(
		    opts, json_object_new_string(k->rootfs_opts[i] ? k->rootfs_opts[i] : ""));
	json_object_object_add(o, "rootfs", opts);
	add_str(o, "config", cfg);
	write_record(dir, k->id, o);
}

static void forget(const struct cri *c, const char *kind, const char *id)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/%s.json", c->cfg.root, kind, id);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("remove record '%s': %s", path, strerror(errno));
}

void cri_pod_forget(const struct cri_pod *p)
{
	forget(p->c, "pods", p->id);
}

void cri_ctr_forget(const struct cri_ctr *k)
{
	forget(k->c, "containers", k->id);
}

/* ---- loading ---- */

typedef void (*record_fn)(struct cri *c, const char *id, json_object *o);

static void each_record(struct cri *c, const char *kind, record_fn fn)
{
	_cleanup_free_ char *dir = xasprintf("%s/%s", c->cfg.root, kind);
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		_cleanup_free_ char *id = NULL, *path = NULL, *text = NULL;
		_cleanup_(json_object_putp) json_object *o = NULL;
		_cleanup_error_ struct hull_error *err = NULL;
		_cleanup_close_ int fd = -1;
		ssize_t len;

		if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		id = xstrndup(de->d_name, n - 5);
		path = xasprintf("%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		text = xmalloc(RECORD_MAX);
		len = fd < 0 ? -errno : read_all(fd, text, RECORD_MAX);
		if (len < 0 || json_parse(text, (size_t)len, 16, true, &o, &err) < 0 ||
		    !id_is_valid(id) || !json_get_string(o, "config")) {
			log_warn("record '%s' is unreadable: %s; moved aside", path,
			         err       ? err->msg
			         : len < 0 ? strerror((int)-len)
			                   : "fields missing");
			_cleanup_free_ char *aside = xasprintf("%s/.bad-%s", dir, de->d_name);
			(void)rename(path, aside);
			continue;
		}
		fn(c, id, o);
	}
	if (d)
		closedir(d);
}

static void load_pod(struct cri *c, const char *id, json_object *o)
{
	Runtime__V1__PodSandboxConfig *cfg = (Runtime__V1__PodSandboxConfig *)b64_decode(
	    &runtime__v1__pod_sandbox_config__descriptor, json_get_string(o, "config"));
	struct cri_pod *p;

	if (!cfg || !cfg->metadata) {
		log_warn("pod record '%s': its config does not decode; ignored", id);
		if (cfg)
			runtime__v1__pod_sandbox_config__free_unpacked(cfg, NULL);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->c = c;
	p->id = xstrdup(id);
	p->config = cfg;
	p->handler = dup_str(o, "handler");
	if (!p->handler)
		p->handler = xstrdup("hull");
	p->dir = dup_str(o, "dir");
	if (!p->dir)
		p->dir = xasprintf("%s/pods/%s", c->cfg.state, id);
	p->address = dup_str(o, "address");
	p->state = (Runtime__V1__PodSandboxState)get_i64(o, "state");
	p->created_at = get_i64(o, "created_at");
	p->pid = (uint32_t)get_i64(o, "pid");
	p->next = c->pods;
	c->pods = p;
}

static void load_ctr(struct cri *c, const char *id, json_object *o)
{
	Runtime__V1__ContainerConfig *cfg = (Runtime__V1__ContainerConfig *)b64_decode(
	    &runtime__v1__container_config__descriptor, json_get_string(o, "config"));
	struct cri_pod *p = NULL;
	const char *pod = json_get_string(o, "pod");
	json_object *opts;
	struct cri_ctr *k;

	for (p = c->pods; p && pod; p = p->next)
		if (strcmp(p->id, pod) == 0)
			break;
	if (!cfg || !cfg->metadata || !p) {
		log_warn("container record '%s': %s; ignored", id,
		         !p ? "its pod is not known" : "its config does not decode");
		if (cfg)
			runtime__v1__container_config__free_unpacked(cfg, NULL);
		return;
	}
	k = xcalloc(1, sizeof(*k));
	k->c = c;
	k->hold[0] = k->hold[1] = -1;
	k->stdin_fd = -1;
	k->id = xstrdup(id);
	k->pod = p;
	k->config = cfg;
	k->image_name = dup_str(o, "image_name");
	k->image_id = dup_str(o, "image_id");
	k->state = (Runtime__V1__ContainerState)get_i64(o, "state");
	k->created_at = get_i64(o, "created_at");
	k->started_at = get_i64(o, "started_at");
	k->finished_at = get_i64(o, "finished_at");
	k->exit_code = (int32_t)get_i64(o, "exit_code");
	k->reason = dup_str(o, "reason");
	k->message = dup_str(o, "message");
	k->oom = get_bool(o, "oom");
	k->pid = (uint32_t)get_i64(o, "pid");
	k->in_shim = get_bool(o, "in_shim");
	k->dir = dup_str(o, "dir");
	k->log_path = dup_str(o, "log_path");
	k->out_path = dup_str(o, "out_path");
	k->err_path = dup_str(o, "err_path");
	k->in_path = dup_str(o, "in_path");
	if (json_object_object_get_ex(o, "rootfs", &opts) &&
	    json_object_is_type(opts, json_type_array) && json_object_array_length(opts) == 3)
		for (int i = 0; i < 3; i++)
			k->rootfs_opts[i] =
			    xstrdup(json_object_get_string(json_object_array_get_idx(opts, i)));
	if (!k->image_name)
		k->image_name = xstrdup("");
	if (!k->image_id)
		k->image_id = xstrdup("");
	if (!k->dir)
		k->dir = xasprintf("%s/containers/%s", c->cfg.state, id);
	k->log = cri_log_open(k->log_path ? k->log_path : "/dev/null", NULL);
	if (!k->log)
		k->log = cri_log_open("/dev/null", NULL);
	k->next = c->ctrs;
	c->ctrs = k;
}

/* The FIFOs again, while the shim still holds their write ends: the log goes on. */
static void reopen_logs(struct cri_ctr *k)
{
	const char *paths[2] = {k->out_path, k->err_path};
	struct cri_log_reader **readers[2] = {&k->out, &k->err};
	for (int i = 0; i < 2; i++) {
		if (!paths[i] || !*paths[i] || *readers[i])
			continue;
		int fd = open(paths[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			*readers[i] = cri_log_reader_new(k->c->loop, fd, k->log,
			                                 i ? "stderr" : "stdout", NULL, NULL);
	}
}

static void on_ctr_state(struct ttrpc_client *tc, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_ctr *k = userdata;
	Hull__Task__StateResponse *st = NULL;
	(void)tc;

	if (code == TTRPC_OK)
		st = hull__task__state_response__unpack(NULL, len, payload);
	if (!st) {
		/* The shim no longer has it. */
		log_info("container '%s': the shim does not know it (%s)", k->id,
		         code == TTRPC_OK ? "bad answer" : message);
		k->in_shim = false;
		if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
			ctr_set_exited(k, 128 + SIGKILL, 0);
		cri_ctr_save(k);
		return;
	}
	if (st->status == HULL__TASK__STATUS__STOPPED &&
	    k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
		int64_t at =
		    st->exited_at ? st->exited_at->seconds * 1000000000 + st->exited_at->nanos : 0;
		ctr_set_exited(k, st->exit_status, at);
		log_info("container '%s' exited %u while hull-cri was away", k->id,
		         st->exit_status);
	}
	if (st->status != HULL__TASK__STATUS__CREATED)
		reopen_logs(k);
	if (st->status == HULL__TASK__STATUS__RUNNING && k->in_path && k->stdin_fd < 0)
		k->stdin_fd = open(k->in_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	hull__task__state_response__free_unpacked(st, NULL);
	cri_ctr_save(k);
}

static void on_pod_state(struct ttrpc_client *tc, int code, const char *message,
                         const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_pod *p = userdata;
	Hull__Task__StateResponse *st = NULL;
	(void)tc;

	if (code == TTRPC_OK)
		st = hull__task__state_response__unpack(NULL, len, payload);
	if (!st || st->status != HULL__TASK__STATUS__RUNNING) {
		_cleanup_free_ char *why =
		    xasprintf("the sandbox task is %s", st ? "not running" : message);
		pod_lost(p, why);
		cri_pod_save(p);
	}
	if (st)
		hull__task__state_response__free_unpacked(st, NULL);
}

static void reattach(struct cri *c, struct cri_pod *p)
{
	_cleanup_error_ struct hull_error *err = NULL;
	Hull__Task__StateRequest sr = HULL__TASK__STATE_REQUEST__INIT;

	if (!p->address) {
		/* hull-cri stopped between the shim's start and its answer: the shim wrote
		 * its address in the bundle, as it does for containerd. */
		_cleanup_free_ char *text = read_small(p->dir, "address");
		if (text && strncmp(text, "unix://", 7) == 0)
			p->address = xstrndup(text, strcspn(text, "\n"));
	}
	p->cni = cni_restore(c->cfg.state, p->id);
	if (!p->address || cri_shim_connect(p->address, &p->shim, &err) < 0) {
		p->state = RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
		pod_lost(p, err ? err->msg : "the pod's shim never answered");
		for (struct cri_ctr *k = c->ctrs; k; k = k->next)
			if (k->pod == p)
				k->in_shim = false;
		return;
	}
	ttrpc_client_attach(p->shim, c->loop, on_shim_error, p);
	if (p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY) {
		/* Its RunPodSandbox never finished: the shim goes (StopPodSandbox cleans
		 * the rest). */
		Hull__Task__ShutdownRequest sh = HULL__TASK__SHUTDOWN_REQUEST__INIT;
		sh.id = p->id;
		sh.now = true;
		(void)shim_call(p, "Shutdown", &sh.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
		return;
	}
	sr.id = p->id;
	(void)shim_call(p, "State", &sr.base, SHIM_CALL_TIMEOUT_MS, on_pod_state, p);
	for (struct cri_ctr *k = c->ctrs; k; k = k->next) {
		if (k->pod != p || !k->in_shim)
			continue;
		Hull__Task__StateRequest cs = HULL__TASK__STATE_REQUEST__INIT;
		cs.id = k->id;
		(void)shim_call(p, "State", &cs.base, SHIM_CALL_TIMEOUT_MS, on_ctr_state, k);
	}
}

int cri_store_load(struct cri *c, struct hull_error **err)
{
	size_t n_pods = 0, n_ctrs = 0;

	for (const char *kind = "pods"; kind;
	     kind = strcmp(kind, "pods") == 0 ? "containers" : NULL) {
		_cleanup_free_ char *d = xasprintf("%s/%s", c->cfg.root, kind);
		int r = mkdir_p(d, 0700);
		if (r < 0)
			return hull_error_set_errno(err, r, "mkdir '%s'", d);
	}
	each_record(c, "pods", load_pod);
	each_record(c, "containers", load_ctr);
	for (struct cri_pod *p = c->pods; p; p = p->next, n_pods++)
		reattach(c, p);
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		n_ctrs++;
	if (n_pods)
		log_info("%zu pods and %zu containers from '%s'", n_pods, n_ctrs, c->cfg.root);
	return 0;
}
