/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "event.h"

/* A container's log at the CRI's log_path, in the format kubelet reads:
 * "2026-12-02T06:14:31.123456789Z stdout F message\n", one record per line; a line
 * longer than CRI_LOG_MAX_LINE goes out as "P" (partial) records and a final "F"; the
 * tail of a stream that ends without a newline is an "F" record. Records of stdout and
 * stderr never interleave within one. */
#define CRI_LOG_MAX_LINE (16u << 10)

struct cri_log;

/* Open (create, append) path; the log is shared by the container's streams. */
struct cri_log *cri_log_open(const char *path, struct hull_error **err);
/* ReopenContainerLog: the file was rotated away; start a new one at the same path. */
int cri_log_reopen(struct cri_log *l, struct hull_error **err);
struct cri_log *cri_log_ref(struct cri_log *l);
struct cri_log *cri_log_unref(struct cri_log *l);

/* Read the FIFO fd (taken; non-blocking) on loop into l as stream "stdout" or
 * "stderr" until EOF, then call eof(userdata) once (may be NULL). */
struct cri_log_reader;
struct cri_log_reader *cri_log_reader_new(struct event_loop *loop, int fd, struct cri_log *l,
                                          const char *stream, void (*eof)(void *userdata),
                                          void *userdata);
/* What the reader reads is also handed to fn (attach sessions), until removed. */
typedef void (*cri_log_tap_fn)(void *userdata, const uint8_t *p, size_t n);
void cri_log_reader_add_tap(struct cri_log_reader *r, cri_log_tap_fn fn, void *userdata);
void cri_log_reader_remove_tap(struct cri_log_reader *r, void *userdata);
/* Stop reading (what is buffered is written first). Accepts NULL; returns NULL. */
struct cri_log_reader *cri_log_reader_free(struct cri_log_reader *r);
bool cri_log_reader_done(const struct cri_log_reader *r);

/* One record into out (at least 64 + n bytes): the format above, for time ns since the
 * epoch. Returns its length. */
size_t cri_log_format(char *out, int64_t ns, const char *stream, bool partial, const void *msg,
                      size_t n);
