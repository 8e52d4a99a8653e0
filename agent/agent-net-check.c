/* SPDX-License-Identifier: MIT */
/* What the host asks of the guest's network, checked before anything changes (pure
 * but for finding interfaces by MAC in /sys; fuzzed through the agent's requests). */
#include <arpa/inet.h>
#include <net/if.h>
#include <string.h>

#include "agent-net.h"
#include "util.h"

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
	if (*end || end == slash + 1)
		return -EINVAL;
	if (inet_pton(AF_INET, buf, addr) == 1 && p <= 32)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, buf, addr) == 1 && p <= 128)
		*family = AF_INET6;
	else
		return -EINVAL;
	*prefix = (unsigned)p;
	return 0;
}

static int ifindex_by_mac(const char *mac)
{
	_cleanup_free_ char *name = sysfs_find("/sys/class/net", "address", mac);
	return name ? (int)if_nametoindex(name) : 0;
}

static bool mac_ok(const char *m)
{
	unsigned v[6];
	char tail;
	return strlen(m) == 17 && sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
	                                 &v[4], &v[5], &tail) == 6;
}

int net_validate(const Hull__Agent__V1__ConfigureNetworkRequest *req, int idx[NET_MAX_IFACES],
                 struct hull_error **err)
{
	unsigned char a[16];
	unsigned prefix;
	int fam;

	if (req->n_interfaces > NET_MAX_IFACES || req->n_routes > NET_MAX_ROUTES)
		return hull_error_set(err, -E2BIG, "network: at most %d interfaces, %d routes",
		                      NET_MAX_IFACES, NET_MAX_ROUTES);
	/* Everything checked first: nothing half-configured by a bad request. */
	for (size_t i = 0; i < req->n_interfaces; i++) {
		const Hull__Agent__V1__NetworkInterface *it = req->interfaces[i];
		if (!mac_ok(it->mac))
			return hull_error_set(err, -EINVAL, "interfaces[%zu].mac: '%.32s'", i,
			                      it->mac);
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
		idx[i] = ifindex_by_mac(it->mac);
		if (!idx[i])
			return hull_error_set(
			    err, -ENODEV, "interfaces[%zu]: no interface with MAC %s", i, it->mac);
	}
	for (size_t i = 0; i < req->n_routes; i++) {
		const Hull__Agent__V1__Route *rt = req->routes[i];
		unsigned char g[16];
		if (strcmp(rt->destination, "default") != 0 &&
		    net_parse_cidr(rt->destination, &fam, a, &prefix) < 0)
			return hull_error_set(err, -EINVAL, "routes[%zu].destination: '%.64s'", i,
			                      rt->destination);
		if (rt->gateway[0] && inet_pton(AF_INET, rt->gateway, g) != 1 &&
		    inet_pton(AF_INET6, rt->gateway, g) != 1)
			return hull_error_set(err, -EINVAL, "routes[%zu].gateway: '%.64s'", i,
			                      rt->gateway);
	}
	return 0;
}
