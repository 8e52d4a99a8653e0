/* SPDX-License-Identifier: MIT */
/* A layer tar (any compression) applied onto a scratch directory: names, links,
 * whiteouts and devices as a hostile layer would write them. The input becomes a
 * file, the scratch tree is made anew each time, and nothing may appear outside it
 * (a canary directory beside it is checked). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "image.h"
#include "util.h"

static char base[] = "/tmp/hull-fuzz-layer.XXXXXX";

/* The scratch dir goes when the fuzzer (or replay) exits. */
static void remove_base(void)
{
	rm_tree(base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct hull_error *err = NULL;
	char *blob, *root, *canary;
	int fd, dirfd;

	if (!ready) {
		if (!mkdtemp(base))
			abort();
		atexit(remove_base);
		ready = true;
	}
	blob = xasprintf("%s/layer", base);
	root = xasprintf("%s/root", base);
	canary = xasprintf("%s/canary", base);
	rm_tree(root);
	rm_tree(canary);
	if (mkdir(root, 0755) < 0 || mkdir(canary, 0755) < 0)
		abort();
	fd = open(blob, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	close(fd);
	dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	(void)image_apply_layer(dirfd, blob, size && (data[0] & 1) ? IMAGE_LAYER_OVERLAY : 0, NULL,
	                        &err);
	close(dirfd);
	hull_error_free(err);
	/* A layer may only ever write below root. */
	if (rmdir(canary) < 0)
		abort();
	free(blob);
	free(root);
	free(canary);
	return 0;
}
