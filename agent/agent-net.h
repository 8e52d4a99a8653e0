/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "agent.pb-c.h"
#include "error.h"

#define NET_MAX_IFACES 16
#define NET_MAX_ADDRS 16
#define NET_MAX_ROUTES 64
#define NET_MAX_NEIGHS 64

/* What a checked request resolves to: interface indexes found by MAC (0: none given). */
struct net_plan {
	int iface[NET_MAX_IFACES];
	int route_oif[NET_MAX_ROUTES];
	int neigh_if[NET_MAX_NEIGHS];
};

/* "addr/prefix" (IPv4 or IPv6) into family, bytes, prefix length. */
int net_parse_cidr(const char *s, int *family, unsigned char addr[16], unsigned *prefix);
/* Check every field and find every interface named by MAC. */
int net_validate(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct net_plan *plan,
                 struct hull_error **err);
/* An IPv4 or IPv6 address (no prefix) into family and bytes. */
int net_parse_ip(const char *s, int *family, unsigned char addr[16]);
/* A TCP connection to port on the guest's loopback (127.0.0.1, then ::1): a socket fd,
 * or -errno with *err saying why. */
int net_dial_local(unsigned port, struct hull_error **err);
/* Bring the loopback interface up (every sandbox has one). */
int net_loopback_up(struct hull_error **err);
/* Interfaces (by MAC), addresses, routes and static neighbours as the host asks, with rtnetlink.
 * Checks every string before anything is changed. */
int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err);
