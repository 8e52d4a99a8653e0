/* SPDX-License-Identifier: MIT */
/* What the Task service changes in a container's config.json before the guest sees it.
 * - Mounts at the same destination: the last one wins. containerd's CRI plugin writes
 *   both its default /dev/shm tmpfs and the pod's /dev/shm bind; runc mounts them in
 *   order, so the last one covers the first. The agent refuses duplicates (a bundle
 *   given to `hull run` gets that check), so the shim resolves them as runc would.
 * - The VM is the pod's network namespace, so a network namespace path (the netns CNI
 *   set up on the host, e.g. /var/run/netns/cni-...) means "the VM's own": dropped. Other
 * namespace paths are left alone: the CRI plugin names them /proc/PID/ns/TYPE with the
 * pid this shim reported for the sandbox container, which is the guest pid, so they
 * resolve in the guest. */
#include <string.h>

#include "json.h"
#include "task-spec.h"
#include "util.h"

/* Equal paths but for trailing slashes ("/dev/shm" and "/dev/shm/"). */
static bool same_path(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

int task_spec_for_guest(const char *json, size_t len, char **out, size_t *out_len,
                        struct hull_error **err)
{
	json_object *root, *linux_, *nss, *mounts;
	const char *s;

	if (json_parse(json, len, 64, true, &root, err) < 0)
		return hull_error_prefix(err, "config.json");
	if (json_object_object_get_ex(root, "mounts", &mounts) &&
	    json_object_is_type(mounts, json_type_array)) {
		for (size_t i = json_object_array_length(mounts); i-- > 0;) {
			const char *d =
			    json_get_string(json_object_array_get_idx(mounts, i), "destination");
			for (size_t k = i + 1; d && k < json_object_array_length(mounts); k++) {
				const char *dk = json_get_string(
				    json_object_array_get_idx(mounts, k), "destination");
				if (dk && same_path(d, dk)) {
					json_object_array_del_idx(mounts, i, 1);
					break;
				}
			}
		}
	}
	if (json_object_object_get_ex(root, "linux", &linux_) &&
	    json_object_object_get_ex(linux_, "namespaces", &nss) &&
	    json_object_is_type(nss, json_type_array)) {
		for (size_t i = json_object_array_length(nss); i-- > 0;) {
			json_object *ns = json_object_array_get_idx(nss, i), *type, *path;
			if (json_object_object_get_ex(ns, "type", &type) &&
			    json_object_is_type(type, json_type_string) &&
			    strcmp(json_object_get_string(type), "network") == 0 &&
			    json_object_object_get_ex(ns, "path", &path))
				json_object_array_del_idx(nss, i, 1);
		}
	}
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	*out_len = strlen(s);
	*out = xstrndup(s, *out_len);
	json_object_put(root);
	return 0;
}
