/* SPDX-License-Identifier: MIT */
/* What kubelet sends hull-cri, decoded as hull-cri decodes it and turned into OCI specs:
 * a RunPodSandboxRequest and a CreateContainerRequest (the input split at its first
 * two bytes, a big-endian length), through cri_sandbox_spec() and cri_container_spec();
 * and the input as a cri.toml. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cri-spec.h"
#include "cri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Runtime__V1__RunPodSandboxRequest *pod = NULL;
	Runtime__V1__CreateContainerRequest *ctr = NULL;
	struct hull_error *err = NULL;
	struct cri_config cfg;
	char *json = NULL;
	size_t split;

	cri_config_defaults(&cfg);
	(void)cri_config_parse((const char *)data, size, "fuzz.toml", &cfg, &err);
	cri_config_done(&cfg);
	err = hull_error_free(err);

	if (size < 2)
		return 0;
	split = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	if (split > size)
		split = size;
	pod = runtime__v1__run_pod_sandbox_request__unpack(NULL, split, data);
	ctr = runtime__v1__create_container_request__unpack(NULL, size - split, data + split);
	if (pod && pod->config) {
		struct cri_spec_pod sp = {
		    .id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		    .config = pod->config,
		    .netns_path = "/var/run/netns/cni-x",
		    .sandbox_pid = 7,
		    .cgroup_driver = data[0] & 1 ? "systemd" : "cgroupfs",
		    .hosts_path = "/run/p/hosts",
		    .resolv_path = "/run/p/resolv.conf"};
		if (cri_sandbox_spec(&sp, "/pause", &json, &err) == 0)
			free(json);
		err = hull_error_free(err);
		if (ctr && ctr->config) {
			struct image_config ic = {0};
			char *env[] = {(char *)"PATH=/bin", (char *)"A=b", NULL};
			char *cmd[] = {(char *)"sh", NULL};
			struct cri_spec_users users = {
			    .passwd = "root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/:/bin/sh\n",
			    .group = "root:x:0:\nu:x:1000:u,root\n"};
			ic.env = env;
			ic.cmd = cmd;
			ic.user = (char *)(data[0] & 2 ? "u" : "1000:1000");
			if (cri_container_spec_users(
			        &sp,
			        "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
			        ctr->config, &ic, "docker.io/library/busybox:latest",
			        data[0] & 4 ? &users : NULL, &json, &err) == 0)
				free(json);
			err = hull_error_free(err);
		}
	}
	if (pod)
		runtime__v1__run_pod_sandbox_request__free_unpacked(pod, NULL);
	if (ctr)
		runtime__v1__create_container_request__free_unpacked(ctr, NULL);
	return 0;
}
