/* SPDX-License-Identifier: MIT */
/* What the host asks of the guest's network, checked before anything changes (pure
 * but for finding interfaces by MAC in /sys; fuzzed through the agent's requests). */
#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <string.h>

#include "agent-net.h"
#include "util.h"

int net_parse_ip(const char *s, int *family, unsigned char addr[16])
{
	if (inet_pton(AF_INET, s, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, s, addr) == 1)
		*family = AF_INET6;
	else
		return -EINVAL;
	return 0;
}

/* "addr/prefix" into family, bytes, prefix. */
int net_parse_cidr(const char *s, int *family, unsigned char addr[16], unsigned *prefix)
{
	char buf[64];
	char *slash, *end;
	unsigned long p;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	p = strtoul(slash + 1, &end, 10);
	if (*end || end == slash + 1 || !isdigit((unsigned char)slash[1]))
		return -EINVAL;
	if (net_parse_ip(buf, family, addr) < 0 || p > (*family == AF_INET ? 32u : 128u))
		return -EINVAL;
	*prefix = (unsigned)p;
	return 0;
}

static bool mac_ok(const char *m)
{
	unsigned v[6];
	char tail;
	return strlen(m) == 17 && sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
	                                 &v[4], &v[5], &tail) == 6;
}

/* The index of the interface with this MAC: > 0, or an error naming field. */
static int iface_by_mac(const char *mac, const char *field, size_t i, struct hull_error **err)
{
	_cleanup_free_ char *name = NULL;
	int idx;

	if (!mac_ok(mac))
		return hull_error_set(err, -EINVAL, "%s[%zu]: MAC '%.32s'", field, i, mac);
	name = sysfs_find("/sys/class/net", "address", mac);
	idx = name ? (int)if_nametoindex(name) : 0;
	if (!idx)
		return hull_error_set(err, -ENODEV, "%s[%zu]: no interface with MAC %s", field, i,
		                      mac);
	return idx;
}

int net_validate(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct net_plan *plan,
                 struct hull_error **err)
{
	unsigned char a[16];
	unsigned prefix;
	int fam;

	memset(plan, 0, sizeof(*plan));
	if (req->n_interfaces > NET_MAX_IFACES || req->n_routes > NET_MAX_ROUTES ||
	    req->n_neighbors > NET_MAX_NEIGHS)
		return hull_error_set(err, -E2BIG,
		                      "network: at most %d interfaces, %d routes, %d neighbours",
		                      NET_MAX_IFACES, NET_MAX_ROUTES, NET_MAX_NEIGHS);
	/* Everything checked first: nothing half-configured by a bad request. */
	for (size_t i = 0; i < req->n_interfaces; i++) {
		const Hull__Agent__V1__NetworkInterface *it = req->interfaces[i];
		if (it->n_addresses > NET_MAX_ADDRS ||
		    (it->mtu && (it->mtu < 68 || it->mtu > 65535)))
			return hull_error_set(err, -EINVAL, "interfaces[%zu]: bad addresses or mtu",
			                      i);
		for (size_t k = 0; k < it->n_addresses; k++)
			if (net_parse_cidr(it->addresses[k], &fam, a, &prefix) < 0)
				return hull_error_set(
				    err, -EINVAL,
				    "interfaces[%zu].addresses[%zu]: '%.64s' is not "
				    "an address/prefix",
				    i, k, it->addresses[k]);
		plan->iface[i] = iface_by_mac(it->mac, "interfaces", i, err);
		if (plan->iface[i] < 0)
			return plan->iface[i];
	}
	for (size_t i = 0; i < req->n_routes; i++) {
		const Hull__Agent__V1__Route *rt = req->routes[i];
		int gfam = 0;
		if (strcmp(rt->destination, "default") != 0 &&
		    net_parse_cidr(rt->destination, &fam, a, &prefix) < 0)
			return hull_error_set(err, -EINVAL, "routes[%zu].destination: '%.64s'", i,
			                      rt->destination);
		if (!rt->gateway[0] && !rt->interface_mac[0])
			return hull_error_set(err, -EINVAL,
			                      "routes[%zu]: neither a gateway nor an interface", i);
		if (rt->gateway[0] && net_parse_ip(rt->gateway, &gfam, a) < 0)
			return hull_error_set(err, -EINVAL, "routes[%zu].gateway: '%.64s'", i,
			                      rt->gateway);
		if (rt->interface_mac[0]) {
			plan->route_oif[i] = iface_by_mac(rt->interface_mac, "routes", i, err);
			if (plan->route_oif[i] < 0)
				return plan->route_oif[i];
		}
	}
	for (size_t i = 0; i < req->n_neighbors; i++) {
		const Hull__Agent__V1__Neighbor *n = req->neighbors[i];
		if (net_parse_ip(n->address, &fam, a) < 0)
			return hull_error_set(err, -EINVAL, "neighbors[%zu].address: '%.64s'", i,
			                      n->address);
		if (!mac_ok(n->mac))
			return hull_error_set(err, -EINVAL, "neighbors[%zu].mac: '%.32s'", i,
			                      n->mac);
		plan->neigh_if[i] = iface_by_mac(n->interface_mac, "neighbors", i, err);
		if (plan->neigh_if[i] < 0)
			return plan->neigh_if[i];
	}
	return 0;
}
