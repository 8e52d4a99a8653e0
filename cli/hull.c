/* SPDX-License-Identifier: MIT */
/* hull: the command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hull COMMAND [OPTIONS]\n"
	           "\n"
	           "Run containers inside lightweight VMs.\n"
	           "\n"
	           "commands:\n"
	           "  run [OPTIONS] --rootfs DIR -- CMD [ARG...]   run CMD in a fresh VM\n"
	           "  check                                        what this host can do (KVM, "
	           "vsock, QEMU)\n"
	           "  version                                      print the version\n"
	           "\n"
	           "See 'hull run --help' and docs/cli.md.\n");
}

int main(int argc, char **argv)
{
	log_setup("hull", LOG_LEVEL_WARN);
	if (argc < 2) {
		usage(stderr);
		return EXIT_HULL_ERROR;
	}
	if (strcmp(argv[1], "run") == 0)
		return cli_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cli_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("hull %s\n", HULL_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "hull: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_HULL_ERROR;
}
