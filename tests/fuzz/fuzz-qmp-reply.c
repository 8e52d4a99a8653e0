/* SPDX-License-Identifier: MIT */
/* QMP messages as QEMU (a process running guest-influenced code) could send them:
 * the message parser, then the client's handshake and one command over a socket whose
 * peer sent exactly these bytes. */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "qmp.h"
#include "util.h"

static void ignore_event(const char *event, json_object *data, void *userdata)
{
	(void)event;
	(void)data;
	(void)userdata;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *o = NULL, *ret = NULL;
	struct qmp *q;
	int sv[2];

	if (qmp_parse_message((const char *)data, size, &o, NULL) == 0)
		json_object_put(o);
	/* Socket buffers hold this much without a reader. */
	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (write_all(sv[1], data, size) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	close(sv[1]);
	q = qmp_new(sv[0]);
	q->max_message = 4096;
	q->on_event = ignore_event;
	if (qmp_handshake(q, 1000, NULL) == 0 &&
	    qmp_execute(q, "query-status", NULL, &ret, 1000, NULL) == 0)
		json_object_put(ret);
	(void)qmp_poll_events(q, NULL);
	qmp_free(q);
	return 0;
}
