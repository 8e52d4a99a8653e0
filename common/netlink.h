/* SPDX-License-Identifier: MIT */
/* rtnetlink without a library: build a request, send it, read its ack or its dump.
 * Used by the agent (the guest's network) and the host (taps and tc in a pod's netns). */
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stddef.h>
#include <stdint.h>

struct nl_req {
	union {
		struct nlmsghdr h;
		char raw[2048];
	};
};

/* Start a request of type with flags (NLM_F_REQUEST|NLM_F_ACK are added on send); the
 * family header (ifinfomsg, tcmsg, ...) of hdrlen bytes follows, zeroed. */
void *nl_init(struct nl_req *r, uint16_t type, uint16_t flags, size_t hdrlen);
void nl_attr(struct nl_req *r, unsigned short type, const void *data, size_t len);
void nl_attr_str(struct nl_req *r, unsigned short type, const char *s);
struct rtattr *nl_nest_begin(struct nl_req *r, unsigned short type);
void nl_nest_end(struct nl_req *r, struct rtattr *nest);

/* A NETLINK_ROUTE socket in the caller's network namespace, or -errno. */
int nl_open(void);
/* Send r on fd (or a fresh socket when fd < 0) and read its ack: 0 or -errno. */
int nl_talk(int fd, struct nl_req *r);
/* Send a dump request and call cb for every message until NLMSG_DONE; a negative cb
 * return stops the dump and is returned. */
int nl_dump(int fd, struct nl_req *r, int (*cb)(const struct nlmsghdr *h, void *userdata),
            void *userdata);
/* tb[type] = the attribute of that type (the last one), for type <= max. */
void nl_parse(struct rtattr **tb, int max, struct rtattr *rta, int len);
