/* SPDX-License-Identifier: MIT */
/* Port-forward into a sandbox (what kubectl port-forward needs of a runtime): bytes of
 * a host fd (a client's connection) carried to a TCP port on the guest's loopback over
 * the agent's PortForward stream, with credit both ways so neither side can flood the
 * other. Runs from the caller's event loop, which must also pump the agent client
 * (agent_client_io) as the shim does; one call per connection. */
#pragma once

#include "agent-client.h"
#include "event.h"

struct port_forward;
/* err: 0 once the guest side has closed and all it sent is written to fd (then shut
 * for writing), else -errno with msg (the guest's reason). */
typedef void (*port_forward_done_cb)(struct port_forward *pf, int err, const char *msg,
                                     void *userdata);

/* Start carrying fd (a connected socket, made non-blocking here; still the caller's to
 * close after done) to port in the guest. */
struct port_forward *port_forward_start(struct event_loop *loop, struct agent_client *ac,
                                        unsigned port, int fd, port_forward_done_cb done,
                                        void *userdata);
/* Stop watching fd and free. The agent stream ends when the guest side closes. */
void port_forward_free(struct port_forward *pf);
