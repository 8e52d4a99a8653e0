/* SPDX-License-Identifier: MIT */
/*
 * Sync: what the guest takes from the host after every boot and every restore, before
 * any workload runs. The wall clock (there is no RTC: a clone wakes with its template's
 * time), fresh entropy and a forced CRNG reseed (a clone wakes with its template's RNG
 * state, and microvm without ACPI has no VM generation id to tell the kernel), the
 * VM's host name, and, after a restore, the sandbox's own MACs.
 */
#include "agent.h"

#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "log.h"
#include "netlink.h"
#include "util.h"

static int add_entropy(const uint8_t *data, size_t len)
{
	_Alignas(struct rand_pool_info) uint8_t raw[sizeof(struct rand_pool_info) + 512];
	struct rand_pool_info *p = (struct rand_pool_info *)raw;
	_cleanup_close_ int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (len > sizeof(raw) - sizeof(*p))
		return -EINVAL;
	p->entropy_count = (int)(len * 8);
	p->buf_size = (int)len;
	memcpy(raw + sizeof(*p), data, len);
	/* Credited, then the CRNG reseeds from the pool now rather than at its next
	 * interval: nothing drawn after this answer comes from the template's state. */
	if (ioctl(fd, RNDADDENTROPY, p) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		return -errno;
	return 0;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	return sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx", &mac[0], &mac[1], &mac[2], &mac[3],
	              &mac[4], &mac[5]) == 6
	           ? 0
	           : -EINVAL;
}

/* The NIC that has from's MAC takes to's (it is down: a template never configures its
 * network). */
static int rename_mac(const char *from, const char *to, struct hull_error **err)
{
	_cleanup_free_ char *name = sysfs_find("/sys/class/net", "address", from);
	unsigned char mac[6];
	struct nl_req r;
	struct ifinfomsg *ifi;
	int idx, rc;

	idx = name ? (int)if_nametoindex(name) : 0;
	if (!idx)
		return hull_error_set(err, -ENODEV, "no interface with MAC %s", from);
	if (parse_mac(to, mac) < 0)
		return hull_error_set(err, -EINVAL, "MAC '%s'", to);
	ifi = nl_init(&r, RTM_NEWLINK, 0, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = idx;
	nl_attr(&r, IFLA_ADDRESS, mac, sizeof(mac));
	rc = nl_talk(-1, &r);
	if (rc < 0)
		return hull_error_set_errno(err, rc, "set %s's MAC to %s", name, to);
	return 0;
}

int agent_sync_apply(const Hull__Agent__V1__SyncRequest *req, struct hull_error **err)
{
	struct timespec ts = {.tv_sec = (time_t)(req->realtime_ns / 1000000000),
	                      .tv_nsec = (long)(req->realtime_ns % 1000000000)};
	int r;

	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return hull_error_set_errno(err, -errno, "set the clock");
	r = add_entropy(req->entropy.data, req->entropy.len);
	if (r < 0)
		return hull_error_set_errno(err, r, "reseed the kernel's random generator");
	if (req->hostname[0] && sethostname(req->hostname, strlen(req->hostname)) < 0)
		return hull_error_set_errno(err, -errno, "set the host name");
	for (size_t i = 0; i < req->n_nics; i++) {
		r = rename_mac(req->nics[i]->from_mac, req->nics[i]->to_mac, err);
		if (r < 0)
			return r;
	}
	log_debug("synced: clock, entropy, identity");
	return 0;
}
