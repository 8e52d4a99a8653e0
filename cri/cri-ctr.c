/* SPDX-License-Identifier: MIT */
/* The CRI's containers: each a task of its pod's shim, made at StartContainer (as
 * containerd's CRI plugin does), its stdout and stderr through FIFOs into the CRI log. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cri-internal.h"
#include "cri-spec.h"
#include "image.h"
#include "json.h"
#include "log.h"
#include "ttrpc.h"
#include "util.h"

/* ---- containers: records ---- */

void ctr_close_logs(struct cri_ctr *k)
{
	for (int i = 0; i < 2; i++)
		if (k->hold[i] >= 0) {
			close(k->hold[i]);
			k->hold[i] = -1;
		}
}

void ctr_free(struct cri_ctr *k)
{
	struct cri *c = k->c;
	for (struct cri_ctr **pp = &c->ctrs; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	cri_attach_end_all(k);
	ctr_close_logs(k);
	cri_log_reader_free(k->out);
	cri_log_reader_free(k->err);
	if (k->stdin_fd >= 0)
		close(k->stdin_fd);
	free(k->in_path);
	cri_log_unref(k->log);
	if (k->config)
		runtime__v1__container_config__free_unpacked(k->config, NULL);
	free(k->id);
	free(k->image_name);
	free(k->image_id);
	free(k->reason);
	free(k->message);
	free(k->dir);
	free(k->log_path);
	for (int i = 0; i < 3; i++)
		free(k->rootfs_opts[i]);
	free(k->out_path);
	free(k->err_path);
	free(k);
}

/* The container's output ended (both streams): its attach sessions are over. */
void ctr_output_eof(void *userdata)
{
	struct cri_ctr *k = userdata;
	if ((!k->out || cri_log_reader_done(k->out)) && (!k->err || cri_log_reader_done(k->err)))
		cri_attach_end_all(k);
}

void ctr_set_exited(struct cri_ctr *k, uint32_t status, int64_t at)
{
	if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
		return;
	k->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
	k->exit_code = (int32_t)status;
	k->finished_at = at ? at : cri_now_ns();
	free(k->reason);
	k->reason = xstrdup(k->oom ? "OOMKilled" : status == 0 ? "Completed" : "Error");
	cri_event(k, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
	cri_ctr_save(k);
}

/* ---- CreateContainer ---- */

/* The node's file a Localhost seccomp profile names (kubelet gives an absolute path),
 * or NULL. */
static char *localhost_profile(const Runtime__V1__ContainerConfig *cc)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc =
	    cc->linux ? cc->linux->security_context : NULL;
	const char *path = NULL, *legacy;
	if (!sc)
		return NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	legacy = sc->seccomp_profile_path;
#pragma GCC diagnostic pop
	if (sc->seccomp &&
	    sc->seccomp->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost)
		path = sc->seccomp->localhost_ref;
	else if (legacy && strncmp(legacy, "localhost/", strlen("localhost/")) == 0)
		path = legacy + strlen("localhost/");
	if (!path || path[0] != '/')
		return NULL;
	return read_small("", path + 1);
}

/* The image as the store knows it: *manifest and *config digests, its config. */
static int resolve_image(struct cri *c, const char *name, char **ret_manifest, char **ret_id,
                         struct image_config *ic, struct hull_error **err)
{
	struct image_ref ref = {0};
	_cleanup_free_ char *full = NULL, *digest = NULL;
	struct image_manifest m = {0};
	int r;

	if (strncmp(name, "sha256:", 7) == 0) {
		/* An image id (its config digest): find a name that has it. */
		_cleanup_strv_free_ char **names = NULL, **digests = NULL;
		r = image_store_list(c->images, &names, &digests, err);
		if (r < 0)
			return r;
		for (size_t i = 0; names && names[i] && !digest; i++) {
			struct image_manifest mm = {0};
			struct image_config mc = {0};
			if (image_store_load(c->images, digests[i], &mm, &mc, NULL) == 0) {
				if (mm.n_entries > 0 && strcmp(mm.entries[0].digest, name) == 0)
					digest = xstrdup(digests[i]);
				image_manifest_done(&mm);
				image_config_done(&mc);
			}
		}
		if (!digest)
			return hull_error_set(err, -ENOENT, "image '%.80s' not found", name);
	} else {
		r = image_ref_parse(name, &ref, err);
		if (r < 0)
			return r;
		full = image_ref_string(&ref);
		image_ref_done(&ref);
		r = image_store_resolve(c->images, full, &digest, err);
		if (r < 0)
			return r;
	}
	r = image_store_load(c->images, digest, &m, ic, err);
	if (r < 0)
		return r;
	*ret_id = xstrdup(m.entries[0].digest);
	image_manifest_done(&m);
	*ret_manifest = TAKE_PTR(digest);
	return 0;
}

static int open_fifo(const char *path, int *ret_read, int *ret_hold, struct hull_error **err)
{
	if (mkfifo(path, 0600) < 0)
		return hull_error_set_errno(err, -errno, "mkfifo '%s'", path);
	*ret_read = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (*ret_read < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", path);
	/* Held open until the shim opened its own, so that the reader sees no EOF first. */
	*ret_hold = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (*ret_hold < 0)
		return hull_error_set_errno(err, -errno, "open '%s'", path);
	return 0;
}

int m_create_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err)
{
	(void)call;
	struct cri *c = userdata;
	Runtime__V1__CreateContainerRequest *req =
	    runtime__v1__create_container_request__unpack(NULL, len, msg);
	_cleanup_free_ char *manifest = NULL, *tree = NULL, *spec = NULL, *path = NULL,
	                    *upper = NULL, *work = NULL, *out_path = NULL, *err_path = NULL;
	struct image_config ic = {0};
	struct cri_pod *p;
	struct cri_ctr *k = NULL;
	const Runtime__V1__ContainerConfig *cc;
	int r, fd_out = -1, fd_err = -1;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	cc = req->config;
	p = pod_find(c, req->pod_sandbox_id);
	if (!p) {
		r = hull_error_set(err, -ENOENT, "pod sandbox '%.80s' not found",
		                   req->pod_sandbox_id);
		goto out;
	}
	if (p->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY || p->call) {
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "pod sandbox '%s' is not ready", p->id);
		goto out;
	}
	if (!cc || !cc->metadata || !*cc->metadata->name) {
		r = invalid(err, "config.metadata.name", "required");
		goto out;
	}
	if (!cc->image || !*cc->image->image) {
		r = invalid(err, "config.image.image", "required");
		goto out;
	}
	for (struct cri_ctr *o = c->ctrs; o; o = o->next)
		if (o->pod == p && strcmp(o->config->metadata->name, cc->metadata->name) == 0 &&
		    o->config->metadata->attempt == cc->metadata->attempt) {
			r = hull_error_set(
			    err, -EEXIST,
			    "config.metadata: container '%s' attempt %u exists as '%s'",
			    cc->metadata->name, cc->metadata->attempt, o->id);
			goto out;
		}

	k = xcalloc(1, sizeof(*k));
	k->c = c;
	k->hold[0] = k->hold[1] = -1;
	k->stdin_fd = -1;
	k->id = cri_new_id();
	k->pod = p;
	k->config = msg_dup(&cc->base);
	k->image_name = xstrdup(cc->image->image);
	k->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
	k->created_at = cri_now_ns();
	k->dir = xasprintf("%s/containers/%s", c->cfg.state, k->id);
	k->next = c->ctrs;
	c->ctrs = k;

	r = resolve_image(c, cc->image->image, &manifest, &k->image_id, &ic, err);
	if (r < 0) {
		hull_error_prefix(err, "config.image.image '%.200s'", cc->image->image);
		goto fail;
	}
	r = image_store_rootfs(c->images, manifest, &tree, err);
	if (r < 0)
		goto fail;
	r = mkdir_p(k->dir, 0711);
	upper = xasprintf("%s/upper", k->dir);
	work = xasprintf("%s/work", k->dir);
	if (r < 0 || mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0) {
		r = hull_error_set_errno(err, r < 0 ? r : -errno, "mkdir '%s'", k->dir);
		goto fail;
	}
	{
		struct cri_spec_pod sp;
		char *paths[3];
		_cleanup_free_ char *passwd = read_small(tree, "etc/passwd");
		_cleanup_free_ char *group = read_small(tree, "etc/group");
		_cleanup_free_ char *profile = localhost_profile(cc);
		struct cri_spec_users users = {
		    .passwd = passwd, .group = group, .seccomp_localhost = profile};
		spec_pod(p, &sp, paths);
		r = cri_container_spec_users(&sp, k->id, cc, &ic, k->image_name, &users, &spec,
		                             err);
		spec_pod_done(paths);
		if (r < 0)
			goto fail;
	}
	path = xasprintf("%s/config.json", k->dir);
	r = write_file(path, spec, err);
	if (r < 0)
		goto fail;

	/* Logs: CRI's log_path is relative to the pod's log_directory. */
	if (*cc->log_path && *p->config->log_directory) {
		k->log_path = xasprintf("%s/%s", p->config->log_directory, cc->log_path);
		_cleanup_free_ char *d =
		    xstrndup(k->log_path, (size_t)(strrchr(k->log_path, '/') - k->log_path));
		(void)mkdir_p(d, 0755);
		k->log = cri_log_open(k->log_path, err);
		if (!k->log) {
			r = (*err)->code;
			goto fail;
		}
	} else {
		k->log = cri_log_open("/dev/null", err);
		if (!k->log) {
			r = (*err)->code;
			goto fail;
		}
	}
	out_path = xasprintf("%s/stdout", k->dir);
	r = open_fifo(out_path, &fd_out, &k->hold[0], err);
	if (r < 0)
		goto fail;
	k->out = cri_log_reader_new(c->loop, fd_out, k->log, "stdout", ctr_output_eof, k);
	fd_out = -1;
	if (!cc->tty) {
		err_path = xasprintf("%s/stderr", k->dir);
		r = open_fifo(err_path, &fd_err, &k->hold[1], err);
		if (r < 0)
			goto fail;
		k->err = cri_log_reader_new(c->loop, fd_err, k->log, "stderr", ctr_output_eof, k);
		fd_err = -1;
	}

	/* stdin, when the config asks for it (attach writes into it): ours is the write
	 * end, opened read-write so that it never waits for the shim's. */
	if (cc->stdin) {
		k->in_path = xasprintf("%s/stdin", k->dir);
		if (mkfifo(k->in_path, 0600) < 0 ||
		    (k->stdin_fd = open(k->in_path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
			r = hull_error_set_errno(err, -errno, "stdin FIFO '%s'", k->in_path);
			goto fail;
		}
	}
	/* The rootfs as containerd's overlayfs snapshotter hands it: the image's tree
	 * read-only below, the container's own layer above. The shim gets it with the
	 * task, at StartContainer (as containerd's CRI makes the task there). */
	k->rootfs_opts[0] = xasprintf("lowerdir=%s", tree);
	k->rootfs_opts[1] = xasprintf("upperdir=%s/upper", k->dir);
	k->rootfs_opts[2] = xasprintf("workdir=%s/work", k->dir);
	k->out_path = TAKE_PTR(out_path);
	k->err_path = TAKE_PTR(err_path);
	k->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
	cri_ctr_save(k);
	cri_event(k, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
	{
		Runtime__V1__CreateContainerResponse resp =
		    RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
		resp.container_id = k->id;
		*ret = msg_own(&resp.base);
	}
	image_config_done(&ic);
	runtime__v1__create_container_request__free_unpacked(req, NULL);
	return 0;

fail:
	if (fd_out >= 0)
		close(fd_out);
	if (fd_err >= 0)
		close(fd_err);
	hull_error_prefix(err, "create container");
	cleanup_later(c, NULL, k->dir, NULL);
	ctr_free(k);
out:
	image_config_done(&ic);
	runtime__v1__create_container_request__free_unpacked(req, NULL);
	return r;
}

/* ---- StartContainer: the shim's Create (the VM mounts the rootfs, makes the
 * container), then its Start ---- */

/* A container that failed to start is exited, with the reason, as under runc. */
static void ctr_fail_start(struct cri_ctr *k, int r, const char *message)
{
	struct grpc_call *call = k->call;
	struct hull_error e = {.code = r,
	                       .msg = xasprintf("start container '%s': %s", k->id, message)};
	k->call = NULL;
	ctr_close_logs(k);
	ctr_set_exited(k, 128, 0);
	free(k->reason);
	k->reason = xstrdup("StartError");
	free(k->message);
	k->message = xstrdup(message);
	cri_ctr_save(k);
	grpc_call_reply(call, e.code, &e, NULL);
	free(e.msg);
}

static void on_ctr_started(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_ctr *k = userdata;
	struct grpc_call *call;
	(void)tc;

	if (code != TTRPC_OK) {
		ctr_fail_start(k, ttrpc_errno_from_code(code), message);
		return;
	}
	/* The shim holds the FIFOs' write ends now (from Create, or Start for a shim that
	 * opens them late): ours go, so that its close is our EOF. */
	ctr_close_logs(k);
	Hull__Task__StartResponse *sr = hull__task__start_response__unpack(NULL, len, payload);
	if (sr) {
		k->pid = sr->pid;
		hull__task__start_response__free_unpacked(sr, NULL);
	}
	if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED) {
		k->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
		k->started_at = cri_now_ns();
	}
	cri_ctr_save(k);
	cri_event(k, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
	call = k->call;
	k->call = NULL;
	grpc_call_reply(call, 0, NULL, NULL);
}

static void on_ctr_created(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_ctr *k = userdata;
	Hull__Task__StartRequest sr = HULL__TASK__START_REQUEST__INIT;
	(void)tc, (void)payload, (void)len;

	if (code != TTRPC_OK) {
		ctr_fail_start(k, ttrpc_errno_from_code(code), message);
		return;
	}
	k->in_shim = true;
	cri_ctr_save(k);
	sr.id = k->id;
	if (!shim_call(k->pod, "Start", &sr.base, SHIM_CALL_TIMEOUT_MS, on_ctr_started, k))
		ctr_fail_start(k, -EIO, "the pod's shim is gone");
}

static int ctr_send_create(struct cri_ctr *k)
{
	Hull__Task__CreateTaskRequest cr = HULL__TASK__CREATE_TASK_REQUEST__INIT;
	Hull__Task__Mount mnt = HULL__TASK__MOUNT__INIT, *mnts[1] = {&mnt};

	mnt.type = (char *)"overlay";
	mnt.source = (char *)"overlay";
	mnt.n_options = 3;
	mnt.options = k->rootfs_opts;
	cr.id = k->id;
	cr.bundle = k->dir;
	cr.n_rootfs = 1;
	cr.rootfs = mnts;
	cr.terminal = k->config->tty;
	cr.stdin = k->in_path ? k->in_path : (char *)"";
	cr.stdout = k->out_path;
	cr.stderr = k->err_path ? k->err_path : (char *)"";
	return shim_call(k->pod, "Create", &cr.base, SHIM_CALL_TIMEOUT_MS * 6, on_ctr_created, k)
	           ? 0
	           : -EIO;
}

int m_start_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__StartContainerRequest *req =
	    runtime__v1__start_container_request__unpack(NULL, len, msg);
	struct cri_ctr *k;
	int r = 1;
	(void)ret;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_find(c, req->container_id);
	if (!k)
		r = hull_error_set(err, -ENOENT, "container '%.80s' not found", req->container_id);
	else if (k->call)
		r = busy(err, "container", k->id);
	else if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED)
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "container '%s' is not in the created state", k->id);
	else if (k->pod->state != RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY)
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "the pod sandbox of container '%s' is not ready", k->id);
	else {
		k->call = call;
		if (ctr_send_create(k) < 0) {
			k->call = NULL;
			r = hull_error_set(err, -EIO, "the pod's shim is gone");
		}
	}
	runtime__v1__start_container_request__free_unpacked(req, NULL);
	return r;
}

/* ---- StopContainer, RemoveContainer: signal, wait (then SIGKILL), delete ---- */

static void ctr_stop_done(struct cri_ctr *k)
{
	struct grpc_call *call = k->call;
	k->call = NULL;
	if (k->removing) {
		cri_event(k, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
		cri_ctr_forget(k);
		cleanup_later(k->c, NULL, k->dir, NULL);
		ctr_free(k);
	}
	grpc_call_reply(call, 0, NULL, NULL);
}

static void on_ctr_deleted(struct ttrpc_client *tc, int code, const char *message,
                           const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_ctr *k = userdata;
	(void)tc, (void)payload, (void)len;
	if (code != TTRPC_OK)
		log_debug("container '%s': delete: %s", k->id, message);
	k->in_shim = false;
	cri_ctr_save(k);
	ctr_stop_done(k);
}

static void ctr_delete_task(struct cri_ctr *k)
{
	Hull__Task__DeleteRequest dr = HULL__TASK__DELETE_REQUEST__INIT;
	dr.id = k->id;
	if (!k->removing || !k->in_shim ||
	    !shim_call(k->pod, "Delete", &dr.base, SHIM_CALL_TIMEOUT_MS, on_ctr_deleted, k))
		ctr_stop_done(k);
}

static void on_ctr_waited(struct ttrpc_client *tc, int code, const char *message,
                          const uint8_t *payload, size_t len, void *userdata);

static void ctr_kill_and_wait(struct cri_ctr *k, int sig, int timeout_ms)
{
	Hull__Task__KillRequest kr = HULL__TASK__KILL_REQUEST__INIT;
	Hull__Task__WaitRequest wr = HULL__TASK__WAIT_REQUEST__INIT;
	kr.id = k->id;
	kr.signal = (uint32_t)sig;
	kr.all = sig == SIGKILL;
	wr.id = k->id;
	(void)shim_call(k->pod, "Kill", &kr.base, SHIM_CALL_TIMEOUT_MS, NULL, NULL);
	k->stop_timeout = sig == SIGKILL ? -1 : timeout_ms;
	if (!shim_call(k->pod, "Wait", &wr.base, timeout_ms, on_ctr_waited, k)) {
		ctr_set_exited(k, 128 + SIGKILL, 0);
		ctr_delete_task(k);
	}
}

static void on_ctr_waited(struct ttrpc_client *tc, int code, const char *message,
                          const uint8_t *payload, size_t len, void *userdata)
{
	struct cri_ctr *k = userdata;
	(void)tc, (void)message;

	if (code == TTRPC_DEADLINE_EXCEEDED && k->stop_timeout >= 0) {
		/* The grace period is over. */
		ctr_kill_and_wait(k, SIGKILL, SHIM_CALL_TIMEOUT_MS);
		return;
	}
	if (code == TTRPC_OK) {
		Hull__Task__WaitResponse *w = hull__task__wait_response__unpack(NULL, len, payload);
		if (w) {
			int64_t at = w->exited_at
			                 ? w->exited_at->seconds * 1000000000 + w->exited_at->nanos
			                 : 0;
			ctr_set_exited(k, w->exit_status, at);
			hull__task__wait_response__free_unpacked(w, NULL);
		}
	}
	if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
		ctr_set_exited(k, 128 + SIGKILL, 0);
	ctr_delete_task(k);
}

static void ctr_stop_start(struct cri_ctr *k, struct grpc_call *call, int64_t timeout_s)
{
	k->call = call;
	if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING && k->pod->shim) {
		if (timeout_s <= 0)
			ctr_kill_and_wait(k, SIGKILL, SHIM_CALL_TIMEOUT_MS);
		else
			ctr_kill_and_wait(k, SIGTERM, (int)MIN(timeout_s, 3600) * 1000);
		return;
	}
	if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED && k->removing) {
		ctr_set_exited(k, 0, 0);
	}
	ctr_delete_task(k);
}

int m_stop_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
               ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__StopContainerRequest *req =
	    runtime__v1__stop_container_request__unpack(NULL, len, msg);
	struct cri_ctr *k;
	int r = 1;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_find(c, req->container_id);
	if (!k || k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING) {
		/* Gone, or not running: stopped already. */
		*ret = msg_own(&(Runtime__V1__StopContainerResponse)
		                    RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT.base);
		r = 0;
	} else if (k->call) {
		r = busy(err, "container", k->id);
	} else {
		ctr_stop_start(k, call, req->timeout);
	}
	runtime__v1__stop_container_request__free_unpacked(req, NULL);
	return r;
}

int m_remove_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__RemoveContainerRequest *req =
	    runtime__v1__remove_container_request__unpack(NULL, len, msg);
	struct cri_ctr *k;
	int r = 1;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_find(c, req->container_id);
	if (!k) {
		*ret = msg_own(&(Runtime__V1__RemoveContainerResponse)
		                    RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT.base);
		r = 0;
	} else if (k->call) {
		r = busy(err, "container", k->id);
	} else {
		k->removing = true;
		ctr_stop_start(k, call, 0);
	}
	runtime__v1__remove_container_request__free_unpacked(req, NULL);
	return r;
}

/* ---- ContainerStatus, ListContainers ---- */

void ctr_status_fill(const struct cri_ctr *k, struct ctr_status_parts *sp)
{
	Runtime__V1__ContainerStatus *st = &sp->st;
	runtime__v1__container_status__init(st);
	runtime__v1__image_spec__init(&sp->img);
	runtime__v1__container_resources__init(&sp->res);
	st->id = k->id;
	st->metadata = k->config->metadata;
	st->state = k->state;
	st->created_at = k->created_at;
	st->started_at = k->started_at;
	st->finished_at = k->finished_at;
	st->exit_code = k->exit_code;
	sp->img.image = k->image_name;
	st->image = &sp->img;
	st->image_ref = k->image_id;
	st->image_id = k->image_id;
	st->reason = k->reason ? k->reason : (char *)"";
	st->message = k->message ? k->message : (char *)"";
	st->n_labels = k->config->n_labels;
	st->labels = kv_copy(&runtime__v1__container_status__labels_entry__descriptor,
	                     (void *const *)k->config->labels, k->config->n_labels);
	st->n_annotations = k->config->n_annotations;
	st->annotations = kv_copy(&runtime__v1__container_status__annotations_entry__descriptor,
	                          (void *const *)k->config->annotations, k->config->n_annotations);
	st->n_mounts = k->config->n_mounts;
	st->mounts = k->config->mounts;
	st->log_path = k->log_path ? k->log_path : (char *)"";
	if (k->config->linux && k->config->linux->resources) {
		sp->res.linux = k->config->linux->resources;
		st->resources = &sp->res;
	}
}

void ctr_status_done(struct ctr_status_parts *sp)
{
	kv_free(sp->st.labels, sp->st.n_labels);
	kv_free(sp->st.annotations, sp->st.n_annotations);
}

int m_ctr_status(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ContainerStatusRequest *req =
	    runtime__v1__container_status_request__unpack(NULL, len, msg);
	Runtime__V1__ContainerStatusResponse resp = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
	Runtime__V1__ContainerStatusResponse__InfoEntry info =
	    RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
	Runtime__V1__ContainerStatusResponse__InfoEntry *infos[1] = {&info};
	struct ctr_status_parts sp;
	_cleanup_free_ char *info_json = NULL;
	struct cri_ctr *k;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_find(c, req->container_id);
	if (!k || k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN) {
		int r =
		    hull_error_set(err, -ENOENT, "container '%.80s' not found", req->container_id);
		runtime__v1__container_status_request__free_unpacked(req, NULL);
		return r;
	}
	ctr_status_fill(k, &sp);
	resp.status = &sp.st;
	if (req->verbose) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "pid", json_object_new_int64(k->pid));
		json_object_object_add(o, "sandboxID", json_object_new_string(k->pod->id));
		json_object_object_add(o, "bundle", json_object_new_string(k->dir));
		info_json = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		info.key = (char *)"info";
		info.value = info_json;
		resp.n_info = 1;
		resp.info = infos;
	}
	*ret = msg_own(&resp.base);
	ctr_status_done(&sp);
	runtime__v1__container_status_request__free_unpacked(req, NULL);
	return 0;
}

/* ---- UpdateContainerResources: the new limits as OCI linux.resources, through the
 * shim's Update into the guest's cgroup; kept in the container's config (its status
 * reports them) ---- */

static char *resources_json(const Runtime__V1__LinuxContainerResources *r)
{
	json_object *o = json_object_new_object(), *cpu = json_object_new_object(),
	            *mem = json_object_new_object();
	if (r->cpu_shares > 0)
		json_object_object_add(cpu, "shares", json_object_new_int64(r->cpu_shares));
	if (r->cpu_quota != 0)
		json_object_object_add(cpu, "quota", json_object_new_int64(r->cpu_quota));
	if (r->cpu_period > 0)
		json_object_object_add(cpu, "period", json_object_new_int64(r->cpu_period));
	if (*r->cpuset_cpus)
		json_object_object_add(cpu, "cpus", json_object_new_string(r->cpuset_cpus));
	if (*r->cpuset_mems)
		json_object_object_add(cpu, "mems", json_object_new_string(r->cpuset_mems));
	if (r->memory_limit_in_bytes > 0)
		json_object_object_add(mem, "limit",
		                       json_object_new_int64(r->memory_limit_in_bytes));
	if (r->memory_swap_limit_in_bytes > 0)
		json_object_object_add(mem, "swap",
		                       json_object_new_int64(r->memory_swap_limit_in_bytes));
	json_object_object_add(o, "cpu", cpu);
	json_object_object_add(o, "memory", mem);
	if (r->n_unified) {
		json_object *u = json_object_new_object();
		for (size_t i = 0; i < r->n_unified; i++)
			json_object_object_add(u, r->unified[i]->key,
			                       json_object_new_string(r->unified[i]->value));
		json_object_object_add(o, "unified", u);
	}
	char *text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return text;
}

/* The container's config.json with linux.resources' cpu, memory and unified replaced
 * by those of json. */
static int patch_spec_resources(const struct cri_ctr *k, const char *json, struct hull_error **err)
{
	_cleanup_free_ char *path = xasprintf("%s/config.json", k->dir);
	_cleanup_free_ char *text = read_small(k->dir, "config.json");
	json_object *root, *linux_, *res, *upd, *v;
	int r;

	if (!text)
		return hull_error_set_errno(err, -errno, "read '%s'", path);
	if (json_parse(text, strlen(text), 64, true, &root, err) < 0)
		return hull_error_prefix(err, "'%s'", path);
	if (json_parse(json, strlen(json), 8, true, &upd, err) < 0) {
		json_object_put(root);
		return r = -EINVAL;
	}
	if (!json_object_object_get_ex(root, "linux", &linux_)) {
		linux_ = json_object_new_object();
		json_object_object_add(root, "linux", linux_);
	}
	if (!json_object_object_get_ex(linux_, "resources", &res)) {
		res = json_object_new_object();
		json_object_object_add(linux_, "resources", res);
	}
	for (const char *const *key = (const char *const[]){"cpu", "memory", "unified", NULL}; *key;
	     key++)
		if (json_object_object_get_ex(upd, *key, &v))
			json_object_object_add(res, *key, json_object_get(v));
	r = write_file(path, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), err);
	json_object_put(root);
	json_object_put(upd);
	return r;
}

struct update_ctx {
	struct cri *c;
	struct grpc_call *call;
	char *ctr_id;
	Runtime__V1__LinuxContainerResources *res;
};

static void on_updated(struct ttrpc_client *tc, int code, const char *message,
                       const uint8_t *payload, size_t len, void *userdata)
{
	struct update_ctx *u = userdata;
	struct cri_ctr *k = ctr_find(u->c, u->ctr_id);
	(void)tc, (void)payload, (void)len;

	if (code != TTRPC_OK) {
		struct hull_error e = {
		    .code = ttrpc_errno_from_code(code),
		    .msg = xasprintf("update container '%s': %s", u->ctr_id, message)};
		grpc_call_reply(u->call, e.code, &e, NULL);
		free(e.msg);
		runtime__v1__linux_container_resources__free_unpacked(u->res, NULL);
	} else {
		if (k) {
			if (!k->config->linux) {
				k->config->linux = xcalloc(1, sizeof(*k->config->linux));
				runtime__v1__linux_container_config__init(k->config->linux);
			}
			if (k->config->linux->resources)
				runtime__v1__linux_container_resources__free_unpacked(
				    k->config->linux->resources, NULL);
			k->config->linux->resources = u->res;
			cri_ctr_save(k);
		} else {
			runtime__v1__linux_container_resources__free_unpacked(u->res, NULL);
		}
		grpc_call_reply(u->call, 0, NULL, NULL);
	}
	free(u->ctr_id);
	free(u);
}

int m_update_ctr(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__UpdateContainerResourcesRequest *req =
	    runtime__v1__update_container_resources_request__unpack(NULL, len, msg);
	Hull__Task__UpdateTaskRequest ur = HULL__TASK__UPDATE_TASK_REQUEST__INIT;
	Hull__Task__Any any = HULL__TASK__ANY__INIT;
	_cleanup_free_ char *json = NULL;
	struct cri_ctr *k;
	int r = 1;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, false, err);
	if (!k) {
		r = (*err)->code;
	} else if (!req->linux) {
		r = invalid(err, "linux", "no resources given");
	} else if (req->linux->cpu_shares < 0 || req->linux->cpu_period < 0 ||
	           req->linux->memory_limit_in_bytes < 0) {
		r = invalid(err, "linux", "negative resources");
	} else if (k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING &&
	           k->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED) {
		r = hull_error_set(err, grpc_error_code(TTRPC_FAILED_PRECONDITION),
		                   "container '%s' is not running", k->id);
	} else if (!k->in_shim) {
		/* Created, not started: the new limits go into its spec, read at start. */
		json = resources_json(req->linux);
		r = patch_spec_resources(k, json, err);
		if (r < 0)
			goto out;
		if (!k->config->linux) {
			k->config->linux = xcalloc(1, sizeof(*k->config->linux));
			runtime__v1__linux_container_config__init(k->config->linux);
		}
		if (k->config->linux->resources)
			runtime__v1__linux_container_resources__free_unpacked(
			    k->config->linux->resources, NULL);
		k->config->linux->resources = msg_dup(&req->linux->base);
		cri_ctr_save(k);
		*ret = msg_own(&(Runtime__V1__UpdateContainerResourcesResponse)
		                    RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_RESPONSE__INIT.base);
		r = 0;
	} else {
		free(json);
		struct update_ctx *u = xcalloc(1, sizeof(*u));
		json = resources_json(req->linux);
		any.type_url =
		    (char *)"types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
		any.value.data = (uint8_t *)json;
		any.value.len = strlen(json);
		ur.id = k->id;
		ur.resources = &any;
		u->c = c;
		u->call = call;
		u->ctr_id = xstrdup(k->id);
		u->res = msg_dup(&req->linux->base);
		if (!shim_call(k->pod, "Update", &ur.base, SHIM_CALL_TIMEOUT_MS, on_updated, u)) {
			runtime__v1__linux_container_resources__free_unpacked(u->res, NULL);
			free(u->ctr_id);
			free(u);
			r = hull_error_set(err, -EIO, "the pod's shim is gone");
		}
	}
out:
	runtime__v1__update_container_resources_request__free_unpacked(req, NULL);
	return r;
}

int m_list_ctrs(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ListContainersRequest *req =
	    runtime__v1__list_containers_request__unpack(NULL, len, msg);
	Runtime__V1__ListContainersResponse resp = RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
	const Runtime__V1__ContainerFilter *f;
	size_t n = 0, i = 0;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	f = req->filter;
	for (struct cri_ctr *k = c->ctrs; k; k = k->next)
		n++;
	Runtime__V1__Container *items = xcalloc(n + 1, sizeof(*items));
	Runtime__V1__ImageSpec *imgs = xcalloc(n + 1, sizeof(*imgs));
	resp.containers = xcalloc(n + 1, sizeof(*resp.containers));
	for (struct cri_ctr *k = c->ctrs; k; k = k->next) {
		if (k->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN)
			continue; /* still being created */
		if (f && *f->id && strncmp(k->id, f->id, strlen(f->id)) != 0)
			continue;
		if (f && *f->pod_sandbox_id &&
		    strncmp(k->pod->id, f->pod_sandbox_id, strlen(f->pod_sandbox_id)) != 0)
			continue;
		if (f && f->state && f->state->state != k->state)
			continue;
		if (f && !labels_match((void *const *)k->config->labels, k->config->n_labels,
		                       (void *const *)f->label_selector, f->n_label_selector))
			continue;
		Runtime__V1__Container *it = &items[i];
		runtime__v1__container__init(it);
		runtime__v1__image_spec__init(&imgs[i]);
		imgs[i].image = k->image_name;
		it->id = k->id;
		it->pod_sandbox_id = k->pod->id;
		it->metadata = k->config->metadata;
		it->image = &imgs[i];
		it->image_ref = k->image_id;
		it->image_id = k->image_id;
		it->state = k->state;
		it->created_at = k->created_at;
		it->n_labels = k->config->n_labels;
		it->labels = kv_copy(&runtime__v1__container__labels_entry__descriptor,
		                     (void *const *)k->config->labels, k->config->n_labels);
		it->n_annotations = k->config->n_annotations;
		it->annotations =
		    kv_copy(&runtime__v1__container__annotations_entry__descriptor,
		            (void *const *)k->config->annotations, k->config->n_annotations);
		resp.containers[i++] = it;
	}
	resp.n_containers = i;
	*ret = msg_own(&resp.base);
	for (size_t j = 0; j < i; j++) {
		kv_free(items[j].labels, items[j].n_labels);
		kv_free(items[j].annotations, items[j].n_annotations);
	}
	free(items);
	free(imgs);
	free(resp.containers);
	runtime__v1__list_containers_request__free_unpacked(req, NULL);
	return 0;
}

int m_reopen_log(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                 ProtobufCMessage **ret, struct hull_error **err)
{
	struct cri *c = userdata;
	Runtime__V1__ReopenContainerLogRequest *req =
	    runtime__v1__reopen_container_log_request__unpack(NULL, len, msg);
	struct cri_ctr *k;
	int r = 0;
	(void)call;

	if (!req)
		return hull_error_set(err, -EINVAL, "the request does not decode");
	k = ctr_get(c, req->container_id, true, err);
	if (!k)
		r = (*err)->code;
	else if (k->log_path)
		r = cri_log_reopen(k->log, err);
	if (r == 0)
		*ret = msg_own(&(Runtime__V1__ReopenContainerLogResponse)
		                    RUNTIME__V1__REOPEN_CONTAINER_LOG_RESPONSE__INIT.base);
	runtime__v1__reopen_container_log_request__free_unpacked(req, NULL);
	return r;
}
