/* SPDX-License-Identifier: MIT */
/* Pod networking the way Kata's tcfilter mode does it: the namespace keeps its veth
 * (and its addresses, so CNI DEL finds what it made), every frame arriving on the veth
 * is redirected to a tap and every frame QEMU writes to the tap is redirected out of
 * the veth. The guest takes the veth's MAC and addresses, so to the rest of the network
 * the VM is the pod. All of it with rtnetlink; no shell-outs. */
#include "sandbox-net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "log.h"
#include "netlink.h"
#include "util.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#define TAP_PREFIX "hull-tap"

static void fmt_mac(char out[18], const unsigned char *m)
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static struct sandbox_nic *nic_by_index(struct sandbox_net *net, int index)
{
	for (size_t i = 0; i < net->n_nics; i++)
		if (net->nics[i].index == index)
			return &net->nics[i];
	return NULL;
}

/* ---- what the namespace has ---- */

struct scan {
	struct sandbox_net *net;
	struct hull_error **err;
};

static int on_link(const struct nlmsghdr *h, void *userdata)
{
	struct scan *s = userdata;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	struct rtattr *tb[IFLA_MAX + 1], *info[IFLA_INFO_MAX + 1];
	const char *name, *kind = NULL;
	struct sandbox_nic *nic;

	nl_parse(tb, IFLA_MAX, IFLA_RTA(ifi), (int)IFLA_PAYLOAD(h));
	if ((ifi->ifi_flags & IFF_LOOPBACK) || !tb[IFLA_IFNAME])
		return 0;
	name = RTA_DATA(tb[IFLA_IFNAME]);
	if (tb[IFLA_LINKINFO]) {
		nl_parse(info, IFLA_INFO_MAX, RTA_DATA(tb[IFLA_LINKINFO]),
		         (int)RTA_PAYLOAD(tb[IFLA_LINKINFO]));
		if (info[IFLA_INFO_KIND])
			kind = RTA_DATA(info[IFLA_INFO_KIND]);
	}
	if (strncmp(name, TAP_PREFIX, strlen(TAP_PREFIX)) == 0)
		return hull_error_set(s->err, -EBUSY,
		                      "network namespace already has a VM's tap '%s': is another "
		                      "sandbox running in it?",
		                      name);
	/* Frames are redirected whole, so anything Ethernet that carries traffic out of
	 * the namespace works; a tun, a tunnel or a dummy would only swallow them. */
	if (ifi->ifi_type != ARPHRD_ETHER || !tb[IFLA_ADDRESS] ||
	    RTA_PAYLOAD(tb[IFLA_ADDRESS]) != 6 ||
	    (kind && strcmp(kind, "veth") != 0 && strcmp(kind, "macvlan") != 0 &&
	     strcmp(kind, "ipvlan") != 0 && strcmp(kind, "macvtap") != 0))
		return hull_error_set(s->err, -EPROTONOSUPPORT,
		                      "interface '%s' (%s) cannot be connected to a VM: hull "
		                      "bridges Ethernet interfaces (veth, macvlan, ipvlan or a "
		                      "moved NIC)",
		                      name, kind ? kind : "not Ethernet");
	if (s->net->n_nics == SANDBOX_NET_MAX_NICS)
		return hull_error_set(s->err, -E2BIG, "more than %d interfaces",
		                      SANDBOX_NET_MAX_NICS);
	nic = &s->net->nics[s->net->n_nics++];
	snprintf(nic->name, sizeof(nic->name), "%s", name);
	nic->index = ifi->ifi_index;
	nic->tap_fd = -1;
	fmt_mac(nic->mac, RTA_DATA(tb[IFLA_ADDRESS]));
	nic->mtu = tb[IFLA_MTU] ? *(unsigned *)RTA_DATA(tb[IFLA_MTU]) : 1500;
	return 0;
}

static int on_addr(const struct nlmsghdr *h, void *userdata)
{
	struct scan *s = userdata;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	struct rtattr *tb[IFA_MAX + 1];
	struct sandbox_nic *nic = nic_by_index(s->net, (int)ifa->ifa_index);
	struct rtattr *a;
	char ip[INET6_ADDRSTRLEN];

	nl_parse(tb, IFA_MAX, IFA_RTA(ifa), (int)IFA_PAYLOAD(h));
	a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
	/* Link-local addresses the guest derives itself, from the same MAC. */
	if (!nic || !a || ifa->ifa_scope != RT_SCOPE_UNIVERSE ||
	    (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return 0;
	if (!inet_ntop(ifa->ifa_family, RTA_DATA(a), ip, sizeof(ip)))
		return 0;
	strv_push(&nic->addrs, xasprintf("%s/%u", ip, ifa->ifa_prefixlen));
	nic->n_addrs++;
	return 0;
}

static int on_route(const struct nlmsghdr *h, void *userdata)
{
	struct scan *s = userdata;
	const struct rtmsg *rt = NLMSG_DATA(h);
	struct rtattr *tb[RTA_MAX + 1];
	struct sandbox_net_route *out;
	struct sandbox_nic *nic;
	char ip[INET6_ADDRSTRLEN];
	uint32_t table;

	nl_parse(tb, RTA_MAX, RTM_RTA(rt), (int)RTM_PAYLOAD(h));
	table = tb[RTA_TABLE] ? *(uint32_t *)RTA_DATA(tb[RTA_TABLE]) : rt->rtm_table;
	/* The guest's kernel makes the connected routes of the addresses itself. */
	if (table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST ||
	    rt->rtm_protocol == RTPROT_KERNEL || !tb[RTA_OIF] ||
	    (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6))
		return 0;
	nic = nic_by_index(s->net, *(int *)RTA_DATA(tb[RTA_OIF]));
	if (!nic)
		return 0;
	if (s->net->n_routes == SANDBOX_NET_MAX_ROUTES)
		return hull_error_set(s->err, -E2BIG, "more than %d routes",
		                      SANDBOX_NET_MAX_ROUTES);
	out = &s->net->routes[s->net->n_routes];
	if (!rt->rtm_dst_len || !tb[RTA_DST])
		snprintf(out->dst, sizeof(out->dst), "default");
	else if (inet_ntop(rt->rtm_family, RTA_DATA(tb[RTA_DST]), ip, sizeof(ip)))
		snprintf(out->dst, sizeof(out->dst), "%s/%u", ip, rt->rtm_dst_len);
	else
		return 0;
	/* IPv6 link-local prefixes: the guest's kernel has its own. */
	if (rt->rtm_family == AF_INET6 && strncmp(out->dst, "fe80:", 5) == 0)
		return 0;
	if (tb[RTA_GATEWAY] &&
	    !inet_ntop(rt->rtm_family, RTA_DATA(tb[RTA_GATEWAY]), out->gw, sizeof(out->gw)))
		return 0;
	out->mac = nic->mac;
	s->net->n_routes++;
	return 0;
}

static int on_neigh(const struct nlmsghdr *h, void *userdata)
{
	struct scan *s = userdata;
	const struct ndmsg *nd = NLMSG_DATA(h);
	struct rtattr *tb[NDA_MAX + 1];
	struct sandbox_nic *nic = nic_by_index(s->net, nd->ndm_ifindex);
	struct sandbox_net_neigh *out;

	nl_parse(tb, NDA_MAX, (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(*nd))),
	         (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*nd))));
	/* Only what was set by hand (CNI's static entries); the rest the guest learns. */
	if (!nic || !(nd->ndm_state & NUD_PERMANENT) || !tb[NDA_DST] || !tb[NDA_LLADDR] ||
	    RTA_PAYLOAD(tb[NDA_LLADDR]) != 6 || s->net->n_neighs == SANDBOX_NET_MAX_ROUTES)
		return 0;
	out = &s->net->neighs[s->net->n_neighs];
	if (!inet_ntop(nd->ndm_family, RTA_DATA(tb[NDA_DST]), out->addr, sizeof(out->addr)))
		return 0;
	fmt_mac(out->lladdr, RTA_DATA(tb[NDA_LLADDR]));
	out->mac = nic->mac;
	s->net->n_neighs++;
	return 0;
}

static int dump(struct sandbox_net *net, uint16_t type, size_t hdrlen,
                int (*cb)(const struct nlmsghdr *, void *), struct hull_error **err,
                const char *what)
{
	struct scan s = {.net = net, .err = err};
	struct nl_req r;
	int ret;

	(void)nl_init(&r, type, 0, hdrlen); /* family AF_UNSPEC: both */
	ret = nl_dump(net->nl, &r, cb, &s);
	if (ret < 0 && !(err && *err))
		hull_error_set_errno(err, ret, "list the namespace's %s", what);
	return ret;
}

/* ---- wiring ---- */

static int qdisc(int nl, int ifindex, uint16_t type, uint16_t flags)
{
	struct nl_req r;
	struct tcmsg *t = nl_init(&r, type, flags, sizeof(*t));
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = ifindex;
	t->tcm_handle = TC_H_MAKE(TC_H_INGRESS, 0);
	t->tcm_parent = TC_H_INGRESS;
	nl_attr_str(&r, TCA_KIND, "ingress");
	return nl_talk(nl, &r);
}

/* Everything arriving on from is sent out of to: u32 matching every frame, action
 * mirred egress redirect (cls_matchall is not in every kernel; u32 is). */
static int redirect(int nl, int from, int to)
{
	struct nl_req r;
	struct tcmsg *t = nl_init(&r, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, sizeof(*t));
	struct {
		struct tc_u32_sel sel;
		struct tc_u32_key key;
	} sel = {.sel = {.flags = TC_U32_TERMINAL, .nkeys = 1}};
	struct tc_mirred mirred = {
	    .action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = (uint32_t)to};
	struct rtattr *opts, *acts, *act, *aopts;

	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = from;
	t->tcm_parent = TC_H_MAKE(TC_H_INGRESS, 0);
	t->tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL));
	nl_attr_str(&r, TCA_KIND, "u32");
	opts = nl_nest_begin(&r, TCA_OPTIONS);
	nl_attr(&r, TCA_U32_SEL, &sel, sizeof(sel));
	acts = nl_nest_begin(&r, TCA_U32_ACT);
	act = nl_nest_begin(&r, 1);
	nl_attr_str(&r, TCA_ACT_KIND, "mirred");
	aopts = nl_nest_begin(&r, TCA_ACT_OPTIONS);
	nl_attr(&r, TCA_MIRRED_PARMS, &mirred, sizeof(mirred));
	nl_nest_end(&r, aopts);
	nl_nest_end(&r, act);
	nl_nest_end(&r, acts);
	nl_nest_end(&r, opts);
	return nl_talk(nl, &r);
}

static int link_set(int nl, int index, unsigned mtu)
{
	struct nl_req r;
	struct ifinfomsg *ifi = nl_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	nl_attr(&r, IFLA_MTU, &mtu, sizeof(mtu));
	return nl_talk(nl, &r);
}

static int link_del(int nl, int index)
{
	struct nl_req r;
	struct ifinfomsg *ifi = nl_init(&r, RTM_DELLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	return nl_talk(nl, &r);
}

/* In the pod's namespace (the caller's thread is in it): a tap per interface. */
static int make_taps(struct sandbox_net *net, struct hull_error **err)
{
	for (size_t i = 0; i < net->n_nics; i++) {
		struct sandbox_nic *nic = &net->nics[i];
		struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};

		snprintf(nic->tap, sizeof(nic->tap), TAP_PREFIX "%zu", i);
		memcpy(ifr.ifr_name, nic->tap, sizeof(nic->tap));
		nic->tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (nic->tap_fd < 0)
			return hull_error_set_errno(err, -errno, "open /dev/net/tun");
		if (ioctl(nic->tap_fd, TUNSETIFF, &ifr) < 0)
			return hull_error_set_errno(err, -errno, "create tap '%s'", nic->tap);
		nic->tap_index = (int)if_nametoindex(nic->tap);
		if (!nic->tap_index)
			return hull_error_set_errno(err, -errno, "find tap '%s'", nic->tap);
	}
	return 0;
}

struct netns_step {
	struct sandbox_net *net;
	int (*fn)(struct sandbox_net *, struct hull_error **);
	struct hull_error **err;
};

static int run_step(void *userdata)
{
	struct netns_step *s = userdata;
	return s->fn(s->net, s->err);
}

/* Enter the namespace at fd in this thread, run fn, come back. */
static int in_netns(int fd, struct sandbox_net *net,
                    int (*fn)(struct sandbox_net *, struct hull_error **), struct hull_error **err)
{
	struct netns_step s = {.net = net, .fn = fn, .err = err};
	int r = netns_run(fd, run_step, &s);
	/* fn says why it failed; otherwise the namespace could not be entered. */
	if (r < 0 && err && !*err)
		return hull_error_set_errno(err, r, "enter network namespace '%s'",
		                            net->netns_path);
	return r;
}

/* Inside the namespace, once: an rtnetlink socket that stays bound to it, the
 * interfaces, and a tap for each (a tap is created in the namespace that opens it). */
static int enter_and_make(struct sandbox_net *net, struct hull_error **err)
{
	int r;
	net->nl = nl_open();
	if (net->nl < 0)
		return hull_error_set_errno(err, net->nl, "netlink socket");
	r = dump(net, RTM_GETLINK, sizeof(struct ifinfomsg), on_link, err, "interfaces");
	return r < 0 ? r : make_taps(net, err);
}

static bool same_ns(int fd, const char *other)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(other, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

int sandbox_net_attach(const char *netns_path, struct sandbox_net **ret, struct hull_error **err)
{
	struct sandbox_net *net = xcalloc(1, sizeof(*net));
	_cleanup_close_ int fd = -1;
	struct statfs sfs;
	int r;

	net->netns_path = xstrdup(netns_path);
	net->nl = -1;
	fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = hull_error_set_errno(err, -errno, "network namespace '%s'", netns_path);
		goto fail;
	}
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC) {
		r = hull_error_set(err, -EINVAL, "'%s' is not a network namespace", netns_path);
		goto fail;
	}
	/* Every frame of the namespace's interfaces goes to the VM: never the host's. */
	if (same_ns(fd, "/proc/thread-self/ns/net") || same_ns(fd, "/proc/1/ns/net")) {
		r = hull_error_set(err, -EPERM,
		                   "'%s' is the host's network namespace: hull would take its "
		                   "interfaces away from the host",
		                   netns_path);
		goto fail;
	}
	r = in_netns(fd, net, enter_and_make, err);
	if (r < 0)
		goto fail;
	r = dump(net, RTM_GETADDR, sizeof(struct ifaddrmsg), on_addr, err, "addresses");
	if (r >= 0)
		r = dump(net, RTM_GETROUTE, sizeof(struct rtmsg), on_route, err, "routes");
	if (r >= 0)
		r = dump(net, RTM_GETNEIGH, sizeof(struct ndmsg), on_neigh, err, "neighbours");
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < net->n_nics; i++) {
		struct sandbox_nic *nic = &net->nics[i];
		r = link_set(net->nl, nic->tap_index, nic->mtu);
		if (r < 0) {
			hull_error_set_errno(err, r, "bring tap '%s' up", nic->tap);
			goto fail;
		}
		r = qdisc(net->nl, nic->index, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL);
		if (r == -EEXIST) {
			/* No VM's tap is here (on_link would have refused): the qdisc was
			 * left by a sandbox killed before it could take it off. */
			log_info("'%s' in '%s' has a stale ingress qdisc: replacing it", nic->name,
			         netns_path);
			(void)qdisc(net->nl, nic->index, RTM_DELQDISC, 0);
			r = qdisc(net->nl, nic->index, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL);
		}
		if (r < 0) {
			hull_error_set_errno(err, r, "ingress qdisc on '%s'", nic->name);
			goto fail;
		}
		r = qdisc(net->nl, nic->tap_index, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL);
		if (r >= 0)
			r = redirect(net->nl, nic->index, nic->tap_index);
		if (r >= 0)
			r = redirect(net->nl, nic->tap_index, nic->index);
		if (r < 0) {
			hull_error_set_errno(err, r, "tc redirect between '%s' and '%s'", nic->name,
			                     nic->tap);
			goto fail;
		}
		log_debug("netns %s: %s (%s, mtu %u, %zu addresses) <-> %s", netns_path, nic->name,
		          nic->mac, nic->mtu, nic->n_addrs, nic->tap);
	}
	*ret = net;
	return 0;
fail:
	sandbox_net_detach(net);
	return r;
}

static int enter_and_list(struct sandbox_net *net, struct hull_error **err)
{
	net->nl = nl_open();
	if (net->nl < 0)
		return hull_error_set_errno(err, net->nl, "netlink socket");
	return dump(net, RTM_GETLINK, sizeof(struct ifinfomsg), on_link, err, "interfaces");
}

int sandbox_net_sweep(const char *netns_path)
{
	struct sandbox_net *net = xcalloc(1, sizeof(*net));
	_cleanup_close_ int fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	struct statfs sfs;
	int r, removed = 0;

	net->nl = -1;
	net->netns_path = xstrdup(netns_path);
	if (fd < 0 || fstatfs(fd, &sfs) < 0 || sfs.f_type != NSFS_MAGIC ||
	    same_ns(fd, "/proc/thread-self/ns/net") || same_ns(fd, "/proc/1/ns/net")) {
		r = fd < 0 ? -errno : -EINVAL;
		goto out;
	}
	/* A VM's tap in it (on_link refuses then) means a live sandbox: leave it. */
	r = in_netns(fd, net, enter_and_list, NULL);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < net->n_nics; i++)
		if (qdisc(net->nl, net->nics[i].index, RTM_DELQDISC, 0) == 0)
			removed++;
	if (removed)
		log_info("removed %d stale ingress qdisc(s) in '%s'", removed, netns_path);
	r = removed;
out:
	net->n_nics = 0;
	sandbox_net_detach(net);
	return r;
}

void sandbox_net_detach(struct sandbox_net *net)
{
	if (!net)
		return;
	for (size_t i = 0; i < net->n_nics; i++) {
		struct sandbox_nic *nic = &net->nics[i];
		if (net->nl >= 0 && nic->tap_index) {
			/* The veth outlives us (CNI DEL removes it): take our qdisc off it. A
			 * namespace already gone took everything with it. */
			(void)qdisc(net->nl, nic->index, RTM_DELQDISC, 0);
			(void)link_del(net->nl, nic->tap_index);
		}
		if (nic->tap_fd >= 0)
			close(nic->tap_fd);
		strv_free(nic->addrs);
	}
	if (net->nl >= 0)
		close(net->nl);
	free(net->netns_path);
	free(net);
}

/* ---- what the guest is told ---- */

Hull__Agent__V1__ConfigureNetworkRequest *sandbox_net_request(const struct sandbox_net *net)
{
	Hull__Agent__V1__ConfigureNetworkRequest *req = xcalloc(1, sizeof(*req));
	size_t k = 0;

	hull__agent__v1__configure_network_request__init(req);
	req->n_interfaces = net->n_nics;
	req->interfaces = xcalloc(net->n_nics + 1, sizeof(*req->interfaces));
	for (size_t i = 0; i < net->n_nics; i++) {
		Hull__Agent__V1__NetworkInterface *it = xcalloc(1, sizeof(*it));
		hull__agent__v1__network_interface__init(it);
		it->mac = (char *)net->nics[i].mac;
		it->mtu = net->nics[i].mtu;
		it->addresses = net->nics[i].addrs;
		it->n_addresses = net->nics[i].n_addrs;
		req->interfaces[i] = it;
	}
	/* Directly connected routes first: a gateway must be reachable when its route is
	 * added. */
	req->n_routes = net->n_routes;
	req->routes = xcalloc(net->n_routes + 1, sizeof(*req->routes));
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < net->n_routes; i++) {
			const struct sandbox_net_route *s = &net->routes[i];
			Hull__Agent__V1__Route *rt;
			if ((pass == 0) != (s->gw[0] == '\0'))
				continue;
			rt = xcalloc(1, sizeof(*rt));
			hull__agent__v1__route__init(rt);
			rt->destination = (char *)s->dst;
			rt->gateway = (char *)s->gw;
			rt->interface_mac = (char *)s->mac;
			req->routes[k++] = rt;
		}
	req->n_neighbors = net->n_neighs;
	req->neighbors = xcalloc(net->n_neighs + 1, sizeof(*req->neighbors));
	for (size_t i = 0; i < net->n_neighs; i++) {
		Hull__Agent__V1__Neighbor *n = xcalloc(1, sizeof(*n));
		hull__agent__v1__neighbor__init(n);
		n->address = (char *)net->neighs[i].addr;
		n->mac = (char *)net->neighs[i].lladdr;
		n->interface_mac = (char *)net->neighs[i].mac;
		req->neighbors[i] = n;
	}
	return req;
}

void sandbox_net_request_free(Hull__Agent__V1__ConfigureNetworkRequest *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->n_interfaces; i++)
		free(req->interfaces[i]);
	for (size_t i = 0; i < req->n_routes; i++)
		free(req->routes[i]);
	for (size_t i = 0; i < req->n_neighbors; i++)
		free(req->neighbors[i]);
	free(req->interfaces);
	free(req->routes);
	free(req->neighbors);
	free(req);
}
