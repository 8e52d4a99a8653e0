/* SPDX-License-Identifier: MIT */
/* CNI for `hull run --net=cni:NAME`: a network namespace of our own, the network's
 * plugins run on it (ADD, and DEL in reverse at the end), as the CNI spec has a runtime
 * do. The VM then joins the namespace like a pod's (sandbox-net.c). */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "error.h"

/* What a plugin's result says that hull uses. */
struct cni_result {
	char **ips;         /* "10.88.0.5/16", "fd00::5/64" */
	char **nameservers; /* dns.nameservers */
	char **search;      /* dns.search */
	char **options;     /* dns.options */
};

/* A network's config (a .conflist, or a single plugin's .conf made a list of one) as
 * hull uses it: plugins with a type each, a cniVersion. Outside input: fuzzed. */
int cni_conf_list(json_object *conf, const char *file, json_object **ret, struct hull_error **err);
/* Parse a plugin's stdout (a CNI result, spec 0.3.0 to 1.0.0). Outside input: fuzzed. */
int cni_parse_result(const char *json, size_t len, struct cni_result *ret, struct hull_error **err);
/* A plugin's error output ({"code":N,"msg":...,"details":...}) as one line; NULL when it
 * is not one. Caller frees. */
char *cni_parse_error(const char *json, size_t len);
void cni_result_done(struct cni_result *r);
/* resolv.conf text for the result's DNS; NULL when it names no nameserver. */
char *cni_resolv_conf(const struct cni_result *r);

struct cni {
	char *name, *file; /* the network and the file it came from */
	json_object *list; /* the conflist (a single .conf is made one) */
	char *netns;       /* the namespace we made */
	char *record;      /* netns + ".cni": what a sweep needs to DEL after a crash */
	char *conf_dir;
	char *container_id;         /* CNI_CONTAINERID: the sandbox's name */
	char *ifname;               /* CNI_IFNAME: eth0 */
	json_object *result;        /* the last plugin's result, prevResult of the next */
	json_object *port_mappings; /* runtimeConfig for plugins with that capability */
	size_t n_added;             /* plugins ADD ran on, for DEL */
	struct cni_result res;
};

/* Find network name (NULL: the first, in file name order) in conf_dir
 * ($HULL_CNI_CONF_DIR or /etc/cni/net.d), make a network
 * namespace under state_root/.netns/, run every plugin's ADD (binaries from $CNI_PATH,
 * else /usr/lib/cni and /opt/cni/bin). port_mappings (may be NULL; borrowed) is CNI's
 * portMappings array, given as runtimeConfig to the plugins that declare the
 * capability (portmap); one must when it is not empty. On failure everything done is
 * undone. */
int cni_setup(const char *name, const char *id, const char *state_root, json_object *port_mappings,
              struct cni **ret, struct hull_error **err);
/* DEL in reverse order, remove the namespace, free. Accepts NULL; returns NULL. */
struct cni *cni_teardown(struct cni *c);
/* Free without tearing down: the network stays (its owner outlives us, as a pod
 * outlives a restarting hull-cri; its record lets a later sweep or DEL find it).
 * Accepts NULL; returns NULL. */
struct cni *cni_forget(struct cni *c);
/* A network set up earlier under state_root/.netns/ID, rebuilt from its record (a
 * restarted owner takes it back: its addresses, and what DEL needs). NULL when there is
 * neither record nor namespace. */
struct cni *cni_restore(const char *state_root, const char *id);
/* Tear down what a killed `hull run --net=cni` left under state_root/.netns: DEL from
 * its record, the namespace removed. Only where owner(state_root/ID) says the sandbox's
 * owner is gone (0) and the record is over two minutes old (a run may be between ADD
 * and boot). */
void cni_sweep(const char *state_root, int (*owner)(const char *state_dir));
