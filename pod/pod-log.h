/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "pod-stream.h"

/* A size-capped log with rotation, docker's max-size/max-file: PATH is written until
 * the next write would take it past max_size, then PATH.1 becomes PATH.2 (and so on up
 * to max_files - 1, the oldest dropped) and PATH starts over. At most
 * max_size * max_files bytes, whatever a guest writes: `hull run -d` keeps its job's
 * output in one in the state directory (tmpfs on most hosts, so host RAM). */
#define LOGFILE_DEFAULT_MAX_SIZE (10u << 20)
#define LOGFILE_DEFAULT_MAX_FILES 3u

struct logfile;

struct logfile *logfile_open(const char *path, uint64_t max_size, unsigned max_files,
                             struct hull_error **err);
/* Append (our own messages). */
void logfile_write(struct logfile *l, const void *p, size_t n);
/* A stream sink into it; the logfile lives while a sink does. */
struct stream_sink *logfile_sink(struct logfile *l);
/* Drop a reference (the opener's). Accepts NULL; returns NULL. */
struct logfile *logfile_unref(struct logfile *l);
