/* SPDX-License-Identifier: MIT */
/* The guest's network with rtnetlink, no shell-outs: links up, addresses, routes,
 * static neighbours. */
#include "agent-net.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "netlink.h"
#include "util.h"

static int link_up(int index, unsigned mtu)
{
	struct nl_req r;
	struct ifinfomsg *ifi = nl_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	if (mtu)
		nl_attr(&r, IFLA_MTU, &mtu, sizeof(mtu));
	return nl_talk(-1, &r);
}

int net_loopback_up(struct hull_error **err)
{
	int idx = (int)if_nametoindex("lo");
	int r = idx ? link_up(idx, 0) : -ENODEV;
	return r < 0 ? hull_error_set_errno(err, r, "bring lo up") : 0;
}

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static int add_address(int index, const char *cidr)
{
	struct nl_req r;
	struct ifaddrmsg *ifa =
	    nl_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
	unsigned char a[16];
	unsigned prefix;
	int fam;

	(void)net_parse_cidr(cidr, &fam, a, &prefix);
	ifa->ifa_family = (unsigned char)fam;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_index = (unsigned)index;
	nl_attr(&r, IFA_LOCAL, a, alen(fam));
	nl_attr(&r, IFA_ADDRESS, a, alen(fam));
	if (fam == AF_INET6) {
		/* The pod's namespace already owns this address; the guest takes it over
		 * without duplicate address detection, as the namespace did. */
		uint32_t flags = IFA_F_NODAD;
		nl_attr(&r, IFA_FLAGS, &flags, sizeof(flags));
	}
	return nl_talk(-1, &r);
}

static int add_route(const Hull__Agent__V1__Route *rt, int oif)
{
	struct nl_req r;
	struct rtmsg *m = nl_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*m));
	unsigned char a[16], g[16];
	unsigned prefix = 0;
	int fam = AF_INET, gfam = 0;

	if (rt->gateway[0])
		(void)net_parse_ip(rt->gateway, &gfam, g);
	if (strcmp(rt->destination, "default") == 0)
		fam = gfam ? gfam : AF_INET;
	else
		(void)net_parse_cidr(rt->destination, &fam, a, &prefix);
	m->rtm_family = (unsigned char)fam;
	m->rtm_dst_len = (unsigned char)prefix;
	m->rtm_table = RT_TABLE_MAIN;
	m->rtm_protocol = RTPROT_STATIC;
	m->rtm_scope = gfam ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	m->rtm_type = RTN_UNICAST;
	if (prefix)
		nl_attr(&r, RTA_DST, a, alen(fam));
	if (gfam)
		nl_attr(&r, RTA_GATEWAY, g, alen(gfam));
	if (oif)
		nl_attr(&r, RTA_OIF, &oif, sizeof(oif));
	return nl_talk(-1, &r);
}

static int add_neighbor(const Hull__Agent__V1__Neighbor *n, int index)
{
	struct nl_req r;
	struct ndmsg *nd = nl_init(&r, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, sizeof(*nd));
	unsigned char a[16], mac[6];
	int fam;

	(void)net_parse_ip(n->address, &fam, a);
	(void)sscanf(n->mac, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx", &mac[0], &mac[1], &mac[2],
	             &mac[3], &mac[4], &mac[5]);
	nd->ndm_family = (unsigned char)fam;
	nd->ndm_ifindex = index;
	nd->ndm_state = NUD_PERMANENT;
	nl_attr(&r, NDA_DST, a, alen(fam));
	nl_attr(&r, NDA_LLADDR, mac, sizeof(mac));
	return nl_talk(-1, &r);
}

int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err)
{
	struct net_plan plan;
	int r;

	r = net_validate(req, &plan, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->n_interfaces; i++) {
		const Hull__Agent__V1__NetworkInterface *it = req->interfaces[i];
		/* Up first: IPv6 addresses on a down link are kept but routes are not. */
		r = link_up(plan.iface[i], it->mtu);
		if (r < 0)
			return hull_error_set_errno(err, r, "bring %s up", it->mac);
		for (size_t k = 0; k < it->n_addresses; k++) {
			r = add_address(plan.iface[i], it->addresses[k]);
			if (r < 0)
				return hull_error_set_errno(err, r, "address %s", it->addresses[k]);
		}
	}
	for (size_t i = 0; i < req->n_neighbors; i++) {
		r = add_neighbor(req->neighbors[i], plan.neigh_if[i]);
		if (r < 0)
			return hull_error_set_errno(err, r, "neighbour %s",
			                            req->neighbors[i]->address);
	}
	for (size_t i = 0; i < req->n_routes; i++) {
		const Hull__Agent__V1__Route *rt = req->routes[i];
		r = add_route(rt, plan.route_oif[i]);
		if (r < 0)
			return hull_error_set_errno(err, r, "route %s via %s", rt->destination,
			                            rt->gateway[0] ? rt->gateway
			                                           : rt->interface_mac);
	}
	return 0;
}

int net_dial_local(unsigned port, struct hull_error **err)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6,
	                          .sin6_port = htons((uint16_t)port),
	                          .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int e = 0;

	for (int i = 0; i < 2; i++) {
		int fd = socket(i ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* Loopback: connect answers at once, yes or no. */
		if (fd >= 0 && connect(fd, i ? (struct sockaddr *)&v6 : (struct sockaddr *)&v4,
		                       i ? sizeof(v6) : sizeof(v4)) == 0)
			return fd;
		if (!e || errno != EAFNOSUPPORT)
			e = errno;
		if (fd >= 0)
			close(fd);
	}
	return hull_error_set_errno(err, -e, "port %u in the sandbox", port);
}
