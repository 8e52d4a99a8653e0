/* SPDX-License-Identifier: MIT */
/* GetContainerEvents: a server stream per subscriber (kubelet's evented PLEG), each
 * container event with the container's status and its pod's, as containerd sends
 * them. A subscriber that goes away is dropped; one that does not read is bounded by
 * the gRPC connection's output cap. */
#include <stdlib.h>
#include <string.h>

#include "cri-internal.h"
#include "log.h"
#include "util.h"

struct subscriber {
	struct cri *c;
	struct grpc_call *call;
	struct subscriber *next;
};

static struct subscriber *subscribers;

static void sub_drop(struct subscriber *s)
{
	for (struct subscriber **pp = &subscribers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	grpc_call_set_gone_cb(s->call, NULL, NULL);
	grpc_call_reply(s->call, 0, NULL, NULL);
	free(s);
}

static void on_gone(struct grpc_call *call, void *userdata)
{
	(void)call;
	sub_drop(userdata);
}

int cri_get_events(void *userdata, struct grpc_call *call, const uint8_t *msg, size_t len,
                   ProtobufCMessage **ret, struct hull_error **err)
{
	struct subscriber *s = xcalloc(1, sizeof(*s));
	(void)msg, (void)len, (void)ret, (void)err;
	s->c = userdata;
	s->call = call;
	s->next = subscribers;
	subscribers = s;
	grpc_call_set_gone_cb(call, on_gone, s);
	log_debug("events: a subscriber");
	return 1;
}

void cri_event(struct cri_ctr *k, Runtime__V1__ContainerEventType type)
{
	Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
	Runtime__V1__PodSandboxStatus ps = RUNTIME__V1__POD_SANDBOX_STATUS__INIT;
	Runtime__V1__ContainerStatus *sts[1];
	struct ctr_status_parts sp;

	if (!subscribers)
		return;
	ctr_status_fill(k, &sp);
	sts[0] = &sp.st;
	ps.id = k->pod->id;
	ps.metadata = k->pod->config->metadata;
	ps.state = k->pod->state;
	ps.created_at = k->pod->created_at;
	ps.runtime_handler = k->pod->handler;
	ev.container_id = k->id;
	ev.container_event_type = type;
	ev.created_at = cri_now_ns();
	ev.pod_sandbox_status = &ps;
	ev.n_containers_statuses = 1;
	ev.containers_statuses = sts;
	for (struct subscriber *s = subscribers, *next; s; s = next) {
		next = s->next;
		if (grpc_call_gone(s->call))
			sub_drop(s);
		else
			grpc_call_send(s->call, &ev.base);
	}
	ctr_status_done(&sp);
}

void cri_events_done(struct cri *c)
{
	(void)c;
	while (subscribers)
		sub_drop(subscribers);
}
