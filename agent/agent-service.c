/* SPDX-License-Identifier: MIT */
/*
 * The agent service on the shared ttrpc server (common/ttrpc-server.c): thin handlers
 * (decode -> validate -> agent_* in agent-process.c and agent-stdio.c); the server
 * turns errno into the wire status in one place. Everything the host sends is
 * validated before the container engine sees it. Handlers that wait for a child or a
 * stream keep their call and answer it later; none of them blocks.
 */
#include "agent.h"

#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "agent-net.h"
#include "log.h"
#include "util.h"

#define AGENT_API_VERSION 1

/* Unpack the request payload or refuse it. */
#define DECODE(type, unpack)                                                                    \
	({                                                                                      \
		type *_m = unpack(NULL, len, payload);                                          \
		if (!_m)                                                                        \
			return hull_error_set(err, -EINVAL, "request payload does not decode"); \
		_m;                                                                             \
	})

static ProtobufCMessage *empty_reply(void)
{
	Hull__Agent__V1__Empty *e = xmalloc(sizeof(*e));
	hull__agent__v1__empty__init(e);
	return &e->base;
}

static int lookup(struct agent *a, const char *id, struct agent_container **ret,
                  struct hull_error **err)
{
	*ret = agent_container_find(a, id);
	if (!*ret)
		return hull_error_set(err, -ENOENT, "container '%.64s' not found", id);
	return 0;
}

/* The process (id, exec_id) names; exec_id "" is the container's init. */
static int lookup_process(struct agent *a, const char *id, const char *exec_id,
                          struct agent_process **ret, struct hull_error **err)
{
	struct agent_container *c;
	int r = lookup(a, id, &c, err);
	if (r < 0)
		return r;
	*ret = agent_process_find(c, exec_id ? exec_id : "");
	if (!*ret)
		return hull_error_set(err, -ENOENT, "container '%.64s': no process '%.64s'", id,
		                      exec_id);
	return 0;
}

/* Decode a ContainerRequest and find its process: the shape of most handlers. */
static int process_from_request(struct agent *a, const uint8_t *payload, size_t len,
                                struct agent_process **ret, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest *req =
	    DECODE(Hull__Agent__V1__ContainerRequest, hull__agent__v1__container_request__unpack);
	int r = lookup_process(a, req->id, req->exec_id, ret, err);
	hull__agent__v1__container_request__free_unpacked(req, NULL);
	return r;
}

/* Decode a ContainerRequest and find its container. */
static int container_from_request(struct agent *a, const uint8_t *payload, size_t len,
                                  struct agent_container **ret, struct hull_error **err)
{
	Hull__Agent__V1__ContainerRequest *req =
	    DECODE(Hull__Agent__V1__ContainerRequest, hull__agent__v1__container_request__unpack);
	int r = lookup(a, req->id, ret, err);
	hull__agent__v1__container_request__free_unpacked(req, NULL);
	return r;
}

static int do_check(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent *a = userdata;
	Hull__Agent__V1__CheckResponse *resp = xmalloc(sizeof(*resp));

	(void)call, (void)payload, (void)len, (void)err;
	hull__agent__v1__check_response__init(resp);
	resp->version = xstrdup(HULL_VERSION);
	resp->api_version = AGENT_API_VERSION;
	resp->uptime_ms = agent_now_ms() - a->start_ms;
	*ret = &resp->base;
	return 0;
}

/* Answered when the child reports READY or its error. */
static int do_create(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__CreateContainerRequest *req =
	    DECODE(Hull__Agent__V1__CreateContainerRequest,
	           hull__agent__v1__create_container_request__unpack);
	struct container_spec spec;
	int r;

	(void)ret;
	r = agent_spec_from_request(req, &spec, err);
	hull__agent__v1__create_container_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	return agent_container_create(userdata, &spec, call, err);
}

/* Answered once exec succeeded (or failed). */
static int do_start(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_process *p;
	int r;

	(void)ret;
	r = process_from_request(userdata, payload, len, &p, err);
	if (r < 0)
		return r;
	return agent_process_start(p, call, err);
}

static int do_exec(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ExecProcessRequest *req = DECODE(
	    Hull__Agent__V1__ExecProcessRequest, hull__agent__v1__exec_process_request__unpack);
	struct agent_container *c;
	int r;

	(void)ret;
	r = lookup(userdata, req->id, &c, err);
	if (r == 0 && !id_is_valid(req->exec_id))
		r = hull_error_set(err, -EINVAL, "exec_id: '%.64s' is not a valid id",
		                   req->exec_id);
	if (r == 0)
		r = agent_process_exec(c, req->exec_id, (const char *)req->process.data,
		                       req->process.len, call, err);
	hull__agent__v1__exec_process_request__free_unpacked(req, NULL);
	return r;
}

static int do_start_process(void *userdata, struct ttrpc_call *call, const uint8_t *payload,
                            size_t len, ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__StartProcessRequest *req = DECODE(
	    Hull__Agent__V1__StartProcessRequest, hull__agent__v1__start_process_request__unpack);
	struct agent_process *p;
	int r;

	(void)ret;
	r = lookup_process(userdata, req->id, req->exec_id, &p, err);
	hull__agent__v1__start_process_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	return agent_process_start(p, call, err);
}

static int do_wait(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_process *p;
	int r;

	(void)ret;
	r = process_from_request(userdata, payload, len, &p, err);
	if (r < 0)
		return r;
	return agent_process_wait(p, call, err);
}

static int do_attach(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__AttachRequest *req =
	    DECODE(Hull__Agent__V1__AttachRequest, hull__agent__v1__attach_request__unpack);
	struct agent_process *p;
	int r;

	(void)ret;
	r = lookup_process(userdata, req->id, req->exec_id, &p, err);
	hull__agent__v1__attach_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	return agent_stdio_attach(p, call, err);
}

static int do_signal(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__SignalRequest *req =
	    DECODE(Hull__Agent__V1__SignalRequest, hull__agent__v1__signal_request__unpack);
	struct agent_process *p;
	uint32_t sig = req->signal;
	int r;

	(void)call;
	r = lookup_process(userdata, req->id, req->exec_id, &p, err);
	hull__agent__v1__signal_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	if (sig == 0 || sig >= (uint32_t)NSIG)
		return hull_error_set(err, -EINVAL, "signal %u out of range", sig);
	if (!agent_process_running(p))
		return hull_error_set(err, -ESRCH, "container '%s' is not running",
		                      p->container->id);
	r = container_signal(&p->proc, (int)sig);
	if (r < 0)
		return hull_error_set_errno(err, r, "signal container '%s'", p->container->id);
	*ret = empty_reply();
	return 0;
}

static int do_resize(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ResizeRequest *req =
	    DECODE(Hull__Agent__V1__ResizeRequest, hull__agent__v1__resize_request__unpack);
	struct agent_process *p;
	struct winsize ws = {0};
	int r;

	(void)call;
	r = lookup_process(userdata, req->id, req->exec_id, &p, err);
	ws.ws_row = (unsigned short)MIN(req->rows, 65535u);
	ws.ws_col = (unsigned short)MIN(req->cols, 65535u);
	hull__agent__v1__resize_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	/* The pty master: stdin's dup of it, or stdout's when the host never asked for
	 * stdin (a terminal exec that only prints: kubectl exec -t without -i). */
	int master = p->proc.stdin_fd >= 0 ? p->proc.stdin_fd : p->proc.stdout_fd;
	if (!p->proc.terminal || master < 0)
		return hull_error_set(err, -ENOTTY, "container '%s' has no terminal",
		                      p->container->id);
	if (ioctl(master, TIOCSWINSZ, &ws) < 0)
		return hull_error_set_errno(err, -errno, "resize terminal");
	*ret = empty_reply();
	return 0;
}

/* Kills what is left of it (a container being set up too); its kept calls are
 * answered CANCELLED. */
static int do_remove(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_container *c;
	int r;

	(void)call;
	r = container_from_request(userdata, payload, len, &c, err);
	if (r < 0)
		return r;
	r = agent_container_remove(c, err);
	if (r < 0)
		return r;
	*ret = empty_reply();
	return 0;
}

static int do_stats(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__StatsResponse *resp;
	struct container_stats st;
	struct agent_container *c;
	int r;

	(void)call;
	r = container_from_request(userdata, payload, len, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_stats(c->id, &st);
	if (r < 0)
		return hull_error_set_errno(err, r, "stats of container '%s'", c->id);
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__stats_response__init(resp);
	resp->cpu_usage_usec = st.cpu_usage_usec;
	resp->memory_current = st.memory_current;
	resp->memory_limit = st.memory_limit;
	resp->pids_current = st.pids_current;
	resp->pids_limit = st.pids_limit;
	resp->oom_kills = st.oom_kills;
	*ret = &resp->base;
	return 0;
}

static int do_update(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__UpdateRequest *req =
	    DECODE(Hull__Agent__V1__UpdateRequest, hull__agent__v1__update_request__unpack);
	struct agent_container *c;
	int r;

	(void)call;
	r = lookup(userdata, req->id, &c, err);
	if (r == 0)
		r = container_cgroup_update(c->id, (const char *)req->resources.data,
		                            req->resources.len, err);
	hull__agent__v1__update_request__free_unpacked(req, NULL);
	if (r < 0)
		return hull_error_prefix(err, "update container");
	*ret = empty_reply();
	return 0;
}

static int freeze(struct agent *a, const uint8_t *payload, size_t len, bool frozen,
                  ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent_container *c;
	int r = container_from_request(a, payload, len, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_freeze(c->id, frozen, err);
	if (r < 0)
		return r;
	*ret = empty_reply();
	return 0;
}

static int do_pause(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                    ProtobufCMessage **ret, struct hull_error **err)
{
	(void)call;
	return freeze(userdata, payload, len, true, ret, err);
}

static int do_resume(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                     ProtobufCMessage **ret, struct hull_error **err)
{
	(void)call;
	return freeze(userdata, payload, len, false, ret, err);
}

static int do_pids(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__PidsResponse *resp;
	struct agent_container *c;
	uint32_t *pids = NULL;
	size_t n = 0;
	int r;

	(void)call;
	r = container_from_request(userdata, payload, len, &c, err);
	if (r < 0)
		return r;
	r = container_cgroup_pids(c->id, &pids, &n);
	if (r < 0)
		return hull_error_set_errno(err, r, "processes of container '%s'", c->id);
	resp = xmalloc(sizeof(*resp));
	hull__agent__v1__pids_response__init(resp);
	resp->pids = pids;
	resp->n_pids = n;
	*ret = &resp->base;
	return 0;
}

static int do_network(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__ConfigureNetworkRequest *req;
	int r;

	(void)userdata, (void)call;
	req = hull__agent__v1__configure_network_request__unpack(NULL, len, payload);
	if (!req)
		return hull_error_set(err, -EINVAL, "ConfigureNetwork: request does not decode");
	r = net_configure(req, err);
	hull__agent__v1__configure_network_request__free_unpacked(req, NULL);
	if (r < 0)
		return r;
	*ret = empty_reply();
	return 0;
}

/* First after every boot and restore: nothing the workload draws or reads comes from a
 * template's clock, RNG or identity. */
static int do_sync(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__SyncRequest *req =
	    DECODE(Hull__Agent__V1__SyncRequest, hull__agent__v1__sync_request__unpack);
	int r;

	(void)userdata, (void)call;
	r = agent_sync_check(req, err);
	if (r == 0)
		r = agent_sync_apply(req, err);
	hull__agent__v1__sync_request__free_unpacked(req, NULL);
	if (r < 0)
		return hull_error_prefix(err, "Sync");
	*ret = empty_reply();
	return 0;
}

/* Answered when the guest side closes (or the host cancels). */
static int do_port_forward(void *userdata, struct ttrpc_call *call, const uint8_t *payload,
                           size_t len, ProtobufCMessage **ret, struct hull_error **err)
{
	Hull__Agent__V1__PortForwardRequest *req;
	unsigned port;

	(void)ret;
	req = hull__agent__v1__port_forward_request__unpack(NULL, len, payload);
	if (!req)
		return hull_error_set(err, -EINVAL, "PortForward: request does not decode");
	port = req->port;
	hull__agent__v1__port_forward_request__free_unpacked(req, NULL);
	if (port < 1 || port > 65535)
		return hull_error_set(err, -EINVAL, "port %u: want 1..65535", port);
	return agent_port_forward(userdata, port, call, err);
}

static int do_destroy(void *userdata, struct ttrpc_call *call, const uint8_t *payload, size_t len,
                      ProtobufCMessage **ret, struct hull_error **err)
{
	struct agent *a = userdata;

	(void)call, (void)payload, (void)len, (void)err;
	a->shutdown_requested = true;
	*ret = empty_reply();
	return 0;
}

static const struct ttrpc_method methods[] = {
    {AGENT_SERVICE, "Check", do_check},
    {AGENT_SERVICE, "CreateContainer", do_create},
    {AGENT_SERVICE, "StartContainer", do_start},
    {AGENT_SERVICE, "ExecProcess", do_exec},
    {AGENT_SERVICE, "StartProcess", do_start_process},
    {AGENT_SERVICE, "StatsContainer", do_stats},
    {AGENT_SERVICE, "UpdateContainer", do_update},
    {AGENT_SERVICE, "PauseContainer", do_pause},
    {AGENT_SERVICE, "ResumeContainer", do_resume},
    {AGENT_SERVICE, "ListProcesses", do_pids},
    {AGENT_SERVICE, "AttachStdio", do_attach},
    {AGENT_SERVICE, "WaitProcess", do_wait},
    {AGENT_SERVICE, "SignalProcess", do_signal},
    {AGENT_SERVICE, "ResizePty", do_resize},
    {AGENT_SERVICE, "RemoveContainer", do_remove},
    {AGENT_SERVICE, "DestroySandbox", do_destroy},
    {AGENT_SERVICE, "Sync", do_sync},
    {AGENT_SERVICE, "ConfigureNetwork", do_network},
    {AGENT_SERVICE, "PortForward", do_port_forward},
};

int agent_service_start(struct agent *a, int fd, bool listening)
{
	a->forwards.agent = a;
	a->forwards.id = (char *)"port-forward";
	a->server = ttrpc_server_new(a->loop, methods, ELEMENTSOF(methods), a);
	ttrpc_server_set_drain_cb(a->server, agent_stdio_drained, a);
	if (listening)
		return ttrpc_server_listen_fd(a->server, fd);
	/* Kept: a virtio-serial port reports HUP while no host is connected. */
	return ttrpc_server_add_fd(a->server, fd, TTRPC_FD_KEEP);
}

void agent_service_stop(struct agent *a)
{
	agent_free_containers(a);
	agent_stdio_stop(a);
	a->server = ttrpc_server_free(a->server);
}
