/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>

#include "error.h"

/* A QMP client. Every call is make command -> send -> check error. Replies come from
 * a process that runs guest-influenced code, so each message is size-capped. */
#define QMP_MAX_MESSAGE (1u << 20)

typedef void (*qmp_event_cb)(const char *event, json_object *data, void *userdata);

struct qmp {
	int fd;
	char *in;
	size_t in_len, in_cap;
	size_t max_message;
	uint64_t next_id;
	qmp_event_cb on_event;
	void *userdata;
};

/* Take over a connected socket (tests pass a socketpair end). */
struct qmp *qmp_new(int fd);
struct qmp *qmp_free(struct qmp *q);
/* Connect to a unix socket path. */
int qmp_connect(const char *path, struct qmp **ret, struct hull_error **err);
/* Read the greeting and negotiate capabilities. */
int qmp_handshake(struct qmp *q, int timeout_ms, struct hull_error **err);
/* Run cmd with args (borrowed, may be NULL). Events seen meanwhile go to on_event.
 * On success *ret_return (may be NULL) holds the "return" value (caller puts it). */
int qmp_execute(struct qmp *q, const char *cmd, json_object *args, json_object **ret_return,
                int timeout_ms, struct hull_error **err);
/* The same, passing fd (>= 0) with the command (SCM_RIGHTS): "getfd". */
int qmp_execute_fd(struct qmp *q, const char *cmd, json_object *args, int fd,
                   json_object **ret_return, int timeout_ms, struct hull_error **err);
/* Non-blocking: read what is there and dispatch events. -ECONNRESET at EOF. */
int qmp_poll_events(struct qmp *q, struct hull_error **err);
/* Parse one QMP message (a line without its newline): exposed for the fuzzer. */
int qmp_parse_message(const char *line, size_t len, json_object **ret, struct hull_error **err);
