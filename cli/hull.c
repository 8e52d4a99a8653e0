/* SPDX-License-Identifier: MIT */
/* hull: the command line. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: hull COMMAND [OPTIONS]\n"
	    "\n"
	    "Run containers inside lightweight VMs.\n"
	    "\n"
	    "commands:\n"
	    "  run [OPTIONS] --rootfs DIR -- CMD [ARG...]   run CMD in a fresh VM\n"
	    "  run [OPTIONS] --bundle DIR                   run an OCI bundle in a fresh VM\n"
	    "  run -d [--name N] [OPTIONS] ...              the same, in the background\n"
	    "  ps                                           list detached sandboxes\n"
	    "  exec [-i] [-t] NAME CMD [ARG...]             run CMD in a detached sandbox\n"
	    "  logs [-f] NAME                               the job's output\n"
	    "  kill [-s SIGNAL] NAME                        signal the job (default KILL)\n"
	    "  rm [-f] NAME                                 stop the VM, remove the sandbox\n"
	    "  inspect NAME                                 the sandbox's state as JSON\n"
	    "  pull [-q] NAME[:TAG|@DIGEST]                 fetch an image from its registry\n"
	    "  load -i FILE|DIR                             import images (OCI layout, archives)\n"
	    "  save -o FILE NAME...                         export images (an oci-archive)\n"
	    "  images [-q]                                  list the images in the store\n"
	    "  rmi NAME...                                  remove images\n"
	    "  image inspect NAME | image prune             an image's config; drop unused data\n"
	    "  template create|ls|rm|prune                  VMs restored instead of booted\n"
	    "  check                                        what this host offers (KVM, vsock)\n"
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
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} commands[] = {{"check", cli_check},     {"ps", cli_ps},
	                {"exec", cli_exec},       {"logs", cli_logs},
	                {"kill", cli_kill},       {"rm", cli_rm},
	                {"inspect", cli_inspect}, {"load", cli_load},
	                {"images", cli_images},   {"rmi", cli_rmi},
	                {"image", cli_image},     {"pull", cli_pull},
	                {"save", cli_save},       {"template", cli_template}};
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
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
