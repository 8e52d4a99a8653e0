/* SPDX-License-Identifier: MIT */
/* A pod's network namespace (made by CNI, containerd's or ours) joined to a VM: a tap
 * per interface, wired to it with tc ingress + mirred redirect both ways, and what the
 * guest must be told (the interface's MAC, addresses, routes, static neighbours). */
#pragma once

#include <net/if.h>
#include <stddef.h>

#include "agent.pb-c.h"
#include "error.h"

#define SANDBOX_NET_MAX_NICS 8
#define SANDBOX_NET_MAX_ROUTES 64

struct sandbox_nic {
	char name[IF_NAMESIZE]; /* in the pod's namespace: "eth0" */
	int index;
	char mac[18];
	unsigned mtu;
	char tap[IF_NAMESIZE];
	int tap_index;
	int tap_fd; /* given to QEMU as -netdev tap,fd= */
	char **addrs;
	size_t n_addrs;
};

struct sandbox_net_route {
	char dst[64], gw[64];
	const char *mac; /* the nic's */
};

struct sandbox_net_neigh {
	char addr[64], lladdr[18];
	const char *mac;
};

struct sandbox_net {
	char *netns_path;
	int nl; /* rtnetlink socket inside the pod's namespace */
	struct sandbox_nic nics[SANDBOX_NET_MAX_NICS];
	size_t n_nics;
	struct sandbox_net_route routes[SANDBOX_NET_MAX_ROUTES];
	size_t n_routes;
	struct sandbox_net_neigh neighs[SANDBOX_NET_MAX_ROUTES];
	size_t n_neighs;
};

/* Look at the namespace at netns_path, make and wire a tap for each of its interfaces.
 * An interface hull cannot carry (not Ethernet, or a kind other than veth, macvlan,
 * ipvlan or a plain NIC) is refused with its name and kind; on any failure nothing made
 * is left. */
int sandbox_net_attach(const char *netns_path, struct sandbox_net **ret, struct hull_error **err);
/* What a sandbox killed before its teardown left in the namespace at netns_path: the
 * ingress qdiscs (and so the redirects) on its interfaces, unless a VM's tap shows a
 * live sandbox there. Returns how many were removed, or -errno. */
int sandbox_net_sweep(const char *netns_path);
/* Remove the taps and filters (the namespace itself is its owner's). Accepts NULL. */
void sandbox_net_detach(struct sandbox_net *net);
/* The ConfigureNetwork request for the guest; free with sandbox_net_request_free. */
Hull__Agent__V1__ConfigureNetworkRequest *sandbox_net_request(const struct sandbox_net *net);
void sandbox_net_request_free(Hull__Agent__V1__ConfigureNetworkRequest *req);
