/* SPDX-License-Identifier: MIT */
#pragma once

#include "sandbox.h"

/* Exit codes of the hull CLI (docs/cli.md). CMD's own status passes through. */
enum {
	EXIT_HULL_TIMEOUT = 124,  /* --timeout fired, the job was killed */
	EXIT_HULL_ERROR = 125,    /* hull itself failed: bad usage, VM, agent */
	EXIT_CMD_NOT_EXEC = 126,  /* CMD exists but cannot be executed */
	EXIT_CMD_NOT_FOUND = 127, /* CMD not found in the container */
};

int cli_run(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_ps(int argc, char **argv);
int cli_exec(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_kill(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_load(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_save(int argc, char **argv);
int cli_images(int argc, char **argv);
int cli_rmi(int argc, char **argv);
int cli_image(int argc, char **argv);
int cli_template(int argc, char **argv);

struct image_store;
/* An image name or digest as the user wrote it: the store holding it, its full name
 * and manifest digest. The embedded busybox image is loaded on first use. */
int cli_image_resolve(const char *arg, struct image_store **store, char **name, char **digest,
                      struct hull_error **err);
