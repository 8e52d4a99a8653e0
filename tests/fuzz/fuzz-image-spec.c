/* SPDX-License-Identifier: MIT */
/* What a registry or an archive hands the image code: references, manifests and
 * indexes, image configs, auth challenges. The first byte picks the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hull_error *err = NULL;
	const char *text;

	if (size < 1)
		return 0;
	text = (const char *)data + 1;
	size--;
	switch (data[0] % 4) {
	case 3: {
		/* A registry's WWW-Authenticate challenge. */
		struct auth_challenge ch;
		char *s = strndup(text, size);
		if (s)
			(void)image_parse_challenge(s, &ch);
		free(s);
		break;
	}
	case 0: {
		struct image_manifest m;
		if (image_parse_manifest(text, size, &m, &err) == 0) {
			(void)image_index_select(&m, "linux", "amd64");
			image_manifest_done(&m);
		}
		break;
	}
	case 1: {
		struct image_config c;
		if (image_parse_config(text, size, &c, &err) == 0)
			image_config_done(&c);
		break;
	}
	default: {
		struct image_ref r;
		char *s = strndup(text, size);
		if (s && image_ref_parse(s, &r, &err) == 0) {
			free(image_ref_string(&r));
			image_ref_done(&r);
		}
		free(s);
		break;
	}
	}
	hull_error_free(err);
	return 0;
}
