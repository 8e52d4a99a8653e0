/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* An OCI runtime-spec config.json, parsed and validated into typed fields before the
 * engine acts on any of it (Firecracker's rule: parse into a typed action first).
 * Unknown fields are ignored; a wrong type or value fails with the field's path. */

#define OCI_MAX_CONFIG (1u << 20)

enum oci_cap_set {
	OCI_CAP_BOUNDING,
	OCI_CAP_EFFECTIVE,
	OCI_CAP_INHERITABLE,
	OCI_CAP_PERMITTED,
	OCI_CAP_AMBIENT,
	_OCI_CAP_SET_MAX,
};

struct oci_rlimit {
	int resource; /* RLIMIT_* */
	uint64_t soft, hard;
};

struct oci_mount {
	char *destination;
	char *type;
	char *source;
	unsigned long flags;       /* MS_* from options */
	unsigned long propagation; /* MS_PRIVATE/MS_SLAVE/MS_SHARED (|MS_REC), or 0 */
	char *data;                /* options that are not flags, comma-joined */
	bool bind;
};

struct oci_namespace {
	int type;   /* CLONE_NEW* */
	char *path; /* join this one, or NULL to create */
};

/* linux.uidMappings / gidMappings entry. */
struct oci_id_mapping {
	uint32_t container_id, host_id, size;
};

struct oci_device {
	char *path;
	char type; /* 'c', 'b', 'u', 'p' */
	uint32_t major, minor;
	uint32_t mode; /* 0: 0666 */
	uint32_t uid, gid;
};

enum oci_seccomp_op {
	OCI_OP_NE,
	OCI_OP_LT,
	OCI_OP_LE,
	OCI_OP_EQ,
	OCI_OP_GE,
	OCI_OP_GT,
	OCI_OP_MASKED_EQ,
	_OCI_OP_MAX,
};

struct oci_seccomp_arg {
	unsigned index;
	uint64_t value, value_two;
	enum oci_seccomp_op op;
};

struct oci_seccomp_rule {
	char **names;
	uint32_t action; /* SCMP_ACT_* as the spec names them, mapped by the loader */
	char *action_name;
	bool has_errno;
	uint32_t errno_ret;
	struct oci_seccomp_arg *args;
	size_t n_args;
};

struct oci_seccomp {
	char *default_action;
	bool has_default_errno;
	uint32_t default_errno;
	char **architectures;
	char **flags;
	struct oci_seccomp_rule *rules;
	size_t n_rules;
};

struct oci_resources {
	bool has_memory_limit, has_memory_swap, has_memory_reservation;
	int64_t memory_limit, memory_swap, memory_reservation;
	bool has_cpu_shares, has_cpu_quota, has_cpu_period;
	uint64_t cpu_shares, cpu_period;
	int64_t cpu_quota;
	char *cpuset_cpus, *cpuset_mems;
	bool has_pids_limit;
	int64_t pids_limit;
};

struct oci_spec {
	/* process */
	char **args;
	char **env;
	char *cwd;
	uint32_t uid, gid;
	uint32_t *additional_gids;
	size_t n_additional_gids;
	bool has_umask;
	uint32_t umask;
	bool terminal;
	uint32_t rows, cols;
	struct oci_rlimit *rlimits;
	size_t n_rlimits;
	bool has_caps;
	uint64_t caps[_OCI_CAP_SET_MAX]; /* bit N = capability N */
	bool no_new_privileges;
	bool has_oom_score_adj;
	int oom_score_adj;
	/* root, hostname */
	char *root_path;
	bool root_readonly;
	char *hostname;
	struct oci_mount *mounts;
	size_t n_mounts;
	/* linux */
	struct oci_namespace *namespaces;
	size_t n_namespaces;
	struct oci_id_mapping *uid_mappings, *gid_mappings;
	size_t n_uid_mappings, n_gid_mappings;
	char **masked_paths;
	char **readonly_paths;
	struct oci_device *devices;
	size_t n_devices;
	char **sysctl_keys, **sysctl_values;
	unsigned long rootfs_propagation;
	bool has_resources;
	struct oci_resources resources;
	struct oci_seccomp *seccomp;
	char **annotation_keys, **annotation_values;
};

/* Parse and validate len bytes of config.json. On success *ret is filled (free with
 * oci_spec_done); on failure *err names the field: "process.user.uid: ...". */
int oci_spec_parse(const char *json, size_t len, struct oci_spec *ret, struct hull_error **err);
/* Only a "process" object (what ExecProcess carries), checked as in a full spec. */
int oci_process_parse(const char *json, size_t len, struct oci_spec *ret, struct hull_error **err);
/* Only a linux.resources object (what UpdateContainer carries). */
int oci_resources_parse(const char *json, size_t len, struct oci_spec *ret,
                        struct hull_error **err);
void oci_spec_done(struct oci_spec *spec);
/* "CAP_SYS_ADMIN" -> 21, -EINVAL when unknown. */
int oci_cap_from_name(const char *name);
