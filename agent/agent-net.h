/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "agent.pb-c.h"
#include "error.h"

#define NET_MAX_IFACES 16
#define NET_MAX_ADDRS 16
#define NET_MAX_ROUTES 64

/* "addr/prefix" (IPv4 or IPv6) into family, bytes, prefix length. */
int net_parse_cidr(const char *s, int *family, unsigned char addr[16], unsigned *prefix);
/* Check every field; idx gets each interface's index (found by MAC). */
int net_validate(const Hull__Agent__V1__ConfigureNetworkRequest *req, int idx[NET_MAX_IFACES],
                 struct hull_error **err);
/* Bring the loopback interface up (every sandbox has one). */
int net_loopback_up(struct hull_error **err);
/* Interfaces (by MAC), addresses and routes as the host asks, with rtnetlink. Checks
 * every string before anything is changed. */
int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err);
