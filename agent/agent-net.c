/* SPDX-License-Identifier: MIT */
/* The guest's network with rtnetlink, no shell-outs: links up, addresses, routes. */
#include "agent-net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

struct nlreq {
	struct nlmsghdr h;
	union {
		struct ifinfomsg ifi;
		struct ifaddrmsg ifa;
		struct rtmsg rt;
	};
	char attrs[256];
};

static void add_attr(struct nlreq *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send one request and read its ack: 0 or -errno. */
static int talk(struct nlreq *r)
{
	_cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	char buf[4096];
	ssize_t n;

	if (fd < 0)
		return -errno;
	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->h.nlmsg_seq = 1;
	if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
	     h = NLMSG_NEXT(h, n))
		if (h->nlmsg_type == NLMSG_ERROR)
			return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	return -EIO;
}

static int link_up(int index, unsigned mtu)
{
	struct nlreq r = {
	    .h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_NEWLINK}};
	r.ifi.ifi_family = AF_UNSPEC;
	r.ifi.ifi_index = index;
	r.ifi.ifi_flags = IFF_UP;
	r.ifi.ifi_change = IFF_UP;
	if (mtu)
		add_attr(&r, IFLA_MTU, &mtu, sizeof(mtu));
	return talk(&r);
}

int net_loopback_up(struct hull_error **err)
{
	int idx = (int)if_nametoindex("lo");
	int r = idx ? link_up(idx, 0) : -ENODEV;
	return r < 0 ? hull_error_set_errno(err, r, "bring lo up") : 0;
}

int net_configure(const Hull__Agent__V1__ConfigureNetworkRequest *req, struct hull_error **err)
{
	unsigned char a[16];
	int fam, idx[NET_MAX_IFACES] = {0}, r;
	unsigned prefix;

	r = net_validate(req, idx, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->n_interfaces; i++) {
		const Hull__Agent__V1__NetworkInterface *it = req->interfaces[i];
		for (size_t k = 0; k < it->n_addresses; k++) {
			struct nlreq m = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)),
			                        .nlmsg_type = RTM_NEWADDR,
			                        .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE}};
			(void)net_parse_cidr(it->addresses[k], &fam, a, &prefix);
			m.ifa.ifa_family = (unsigned char)fam;
			m.ifa.ifa_prefixlen = (unsigned char)prefix;
			m.ifa.ifa_index = (unsigned)idx[i];
			add_attr(&m, IFA_LOCAL, a, fam == AF_INET ? 4 : 16);
			add_attr(&m, IFA_ADDRESS, a, fam == AF_INET ? 4 : 16);
			r = talk(&m);
			if (r < 0)
				return hull_error_set_errno(err, r, "address %s", it->addresses[k]);
		}
		r = link_up(idx[i], it->mtu);
		if (r < 0)
			return hull_error_set_errno(err, r, "bring %s up", it->mac);
	}
	for (size_t i = 0; i < req->n_routes; i++) {
		const Hull__Agent__V1__Route *rt = req->routes[i];
		struct nlreq m = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)),
		                        .nlmsg_type = RTM_NEWROUTE,
		                        .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE}};
		unsigned char g[16];
		int gfam = AF_INET;
		if (rt->gateway[0] && inet_pton(AF_INET, rt->gateway, g) != 1) {
			(void)inet_pton(AF_INET6, rt->gateway, g);
			gfam = AF_INET6;
		}
		if (strcmp(rt->destination, "default") == 0) {
			fam = gfam;
			prefix = 0;
		} else {
			(void)net_parse_cidr(rt->destination, &fam, a, &prefix);
		}
		m.rt.rtm_family = (unsigned char)fam;
		m.rt.rtm_dst_len = (unsigned char)prefix;
		m.rt.rtm_table = RT_TABLE_MAIN;
		m.rt.rtm_protocol = RTPROT_STATIC;
		m.rt.rtm_scope = rt->gateway[0] ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
		m.rt.rtm_type = RTN_UNICAST;
		if (prefix)
			add_attr(&m, RTA_DST, a, fam == AF_INET ? 4 : 16);
		if (rt->gateway[0])
			add_attr(&m, RTA_GATEWAY, g, gfam == AF_INET ? 4 : 16);
		r = talk(&m);
		if (r < 0)
			return hull_error_set_errno(err, r, "route %s via %s", rt->destination,
			                            rt->gateway[0] ? rt->gateway : "-");
	}
	return 0;
}
