/* SPDX-License-Identifier: MIT */
#include "netlink.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macros.h"

void *nl_init(struct nl_req *r, uint16_t type, uint16_t flags, size_t hdrlen)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = (uint32_t)NLMSG_LENGTH(hdrlen);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = flags;
	return NLMSG_DATA(&r->h);
}

void nl_attr(struct nl_req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)(r->raw + NLMSG_ALIGN(r->h.nlmsg_len));
	/* Requests are built from fixed shapes; overflowing is a bug, not input. */
	if (NLMSG_ALIGN(r->h.nlmsg_len) + RTA_SPACE(len) > sizeof(r->raw))
		abort();
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

void nl_attr_str(struct nl_req *r, unsigned short type, const char *s)
{
	nl_attr(r, type, s, strlen(s) + 1);
}

struct rtattr *nl_nest_begin(struct nl_req *r, unsigned short type)
{
	struct rtattr *a = (struct rtattr *)(r->raw + NLMSG_ALIGN(r->h.nlmsg_len));
	nl_attr(r, type, NULL, 0);
	return a;
}

void nl_nest_end(struct nl_req *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)(r->raw + r->h.nlmsg_len - (char *)nest);
}

int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	return fd < 0 ? -errno : fd;
}

static int send_req(int fd, struct nl_req *r, uint16_t flags)
{
	static uint32_t seq;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

	r->h.nlmsg_flags |= NLM_F_REQUEST | flags;
	r->h.nlmsg_seq = ++seq;
	if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

static ssize_t recv_retry(int fd, char *buf, size_t len)
{
	ssize_t n;
	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int nl_talk(int fd, struct nl_req *r)
{
	_cleanup_close_ int own = -1;
	char buf[8192];
	int ret;

	if (fd < 0) {
		own = fd = nl_open();
		if (fd < 0)
			return fd;
	}
	ret = send_req(fd, r, NLM_F_ACK);
	if (ret < 0)
		return ret;
	for (;;) {
		ssize_t n = recv_retry(fd, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n))
			if (h->nlmsg_seq == r->h.nlmsg_seq && h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
}

int nl_dump(int fd, struct nl_req *r, int (*cb)(const struct nlmsghdr *h, void *userdata),
            void *userdata)
{
	char buf[32768];
	int ret = send_req(fd, r, NLM_F_DUMP);
	bool failed = false;

	if (ret < 0)
		return ret;
	/* Read to NLMSG_DONE even after cb fails: the socket is reused. */
	for (;;) {
		ssize_t n = recv_retry(fd, buf, sizeof(buf));
		if (n < 0)
			return (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != r->h.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return failed ? ret : 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				int e = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
				return failed ? ret : (e ? e : -EIO);
			}
			if (!failed) {
				int c = cb(h, userdata);
				if (c < 0) {
					ret = c;
					failed = true;
				}
			}
		}
	}
}

void nl_parse(struct rtattr **tb, int max, struct rtattr *rta, int len)
{
	memset(tb, 0, sizeof(*tb) * (size_t)(max + 1));
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type <= max)
			tb[rta->rta_type] = rta;
}
