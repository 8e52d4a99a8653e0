/* SPDX-License-Identifier: MIT */
/* What a CNI plugin prints (its result on success, its error otherwise): outside input
 * that becomes a container's resolv.conf. The same bytes as a network config file. */
#include <stdint.h>
#include <stdlib.h>

#include "cni.h"
#include "json.h"
#include "util.h"

static size_t count_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cni_result r;
	struct hull_error *err = NULL;

	if (cni_parse_result((const char *)data, size, &r, &err) == 0) {
		char *text = cni_resolv_conf(&r);
		/* A line per nameserver, one for search, one for options: nothing the plugin
		 * says adds lines of its own. */
		size_t want = strv_length(r.nameservers) + (r.search ? 1 : 0) + (r.options ? 1 : 0);
		if (text && count_lines(text) != want)
			abort();
		free(text);
		cni_result_done(&r);
	}
	hull_error_free(err);
	err = NULL;
	free(cni_parse_error((const char *)data, size));
	json_object *conf, *list;
	if (json_parse((const char *)data, size, 64, true, &conf, NULL) == 0) {
		if (cni_conf_list(conf, "fuzz.conflist", &list, &err) == 0)
			json_object_put(list);
		json_object_put(conf);
	}
	hull_error_free(err);
	return 0;
}
