/* SPDX-License-Identifier: MIT */
/* The host's end of an agent stream (pod/pod-stream.c) against a scripted guest on a
 * socketpair: the window it grants, what it holds for a sink that does not read, the
 * guest cut off one byte past its credit, input sent in chunks within the guest's
 * credit, the end of a stream, and cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "agent.pb-c.h"
#include "pod-stream.h"
#include "stream.h"
#include "ttrpc-msg.h"
#include "util.h"

struct mem_sink {
	struct stream_sink base;
	struct buf got;
	bool stuck, closed;
};

static ssize_t mem_write(struct stream_sink *s, const void *p, size_t n)
{
	struct mem_sink *m = (struct mem_sink *)s;
	if (m->stuck)
		return -EAGAIN;
	buf_append(&m->got, p, n);
	return (ssize_t)n;
}

static void mem_close(struct stream_sink *s)
{
	((struct mem_sink *)s)->closed = true; /* the test owns and frees it */
}

/* The guest side: frames from the host, decoded. */
struct guest {
	int fd;
	struct ttrpc_decoder dec;
	uint32_t sid;      /* the stream's, from its request */
	uint64_t credit;   /* what the host granted us */
	uint64_t in_bytes; /* stdin bytes the host sent */
	size_t max_chunk;  /* the largest stdin frame */
	bool in_eof, cancelled;
};

struct fixture {
	struct event_loop *loop;
	struct ttrpc_client *c;
	struct guest g;
	struct mem_sink out, err;
	struct stream *st;
	bool done;
	int r;
	char msg[512];
	int source[2]; /* stdin: the test writes [1], the stream reads [0] */
};

static void on_done(struct stream *st, int r, const struct hull_error *err, void *userdata)
{
	struct fixture *f = userdata;
	(void)st;
	f->done = true;
	f->r = r;
	snprintf(f->msg, sizeof(f->msg), "%s", err ? err->msg : "");
}

static const struct stream_ops ops = {.done = on_done};

/* Read what the host sent the guest, as far as there is. */
static void guest_read(struct guest *g)
{
	uint8_t tmp[1 << 16];
	struct ttrpc_frame fr;
	ssize_t n;

	while ((n = recv(g->fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
		ttrpc_decoder_feed(&g->dec, tmp, (size_t)n);
		while (ttrpc_decoder_next(&g->dec, &fr) == 1) {
			if (fr.type == TTRPC_TYPE_REQUEST) {
				g->sid = fr.stream_id;
				continue;
			}
			Hull__Agent__V1__StdioData *d =
			    hull__agent__v1__stdio_data__unpack(NULL, fr.length, fr.payload);
			assert_non_null(d);
			g->credit += d->credit;
			g->in_bytes += d->data.len;
			g->max_chunk = MAX(g->max_chunk, d->data.len);
			g->in_eof |= d->eof;
			g->cancelled |= d->cancel;
			hull__agent__v1__stdio_data__free_unpacked(d, NULL);
		}
	}
}

static void guest_send(struct guest *g, uint32_t fd, size_t len, bool eof, uint64_t credit)
{
	Hull__Agent__V1__StdioData d = HULL__AGENT__V1__STDIO_DATA__INIT;
	struct buf b = {0};
	uint8_t *data = xmalloc(len + 1);
	memset(data, 'x', len);
	d.fd = fd;
	d.data.data = data;
	d.data.len = len;
	d.eof = eof;
	d.credit = credit;
	ttrpc_data_append(&b, g->sid, 0, &d.base);
	assert_int_equal(write_all(g->fd, buf_head(&b), b.len), 0);
	buf_release(&b);
	free(data);
}

static void guest_reply(struct guest *g)
{
	struct buf b = {0};
	ttrpc_response_append(&b, g->sid, 0, NULL, NULL);
	assert_int_equal(write_all(g->fd, buf_head(&b), b.len), 0);
	buf_release(&b);
}

/* Turn the loop until nothing moves (and the guest has read what came). */
static void turn(struct fixture *f)
{
	for (int i = 0; i < 64; i++) {
		assert_int_equal(event_loop_once(f->loop, 5), 0);
		guest_read(&f->g);
	}
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	Hull__Agent__V1__AttachRequest att = HULL__AGENT__V1__ATTACH_REQUEST__INIT;
	struct stream_config sc = {.what = "container 't'", .source = -1};
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* Room for a whole window in flight each way. */
	int big = 16 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	f->loop = event_loop_new();
	f->c = ttrpc_client_new(sv[0], "hull.agent.v1.Agent");
	assert_int_equal(ttrpc_client_attach(f->c, f->loop, NULL, NULL), 0);
	f->g.fd = sv[1];
	f->out.base = (struct stream_sink){.write = mem_write, .close = mem_close, .fd = -1};
	f->err.base = f->out.base;
	assert_int_equal(pipe2(f->source, O_CLOEXEC), 0);
	sc.sink[1] = &f->out.base;
	sc.sink[2] = &f->err.base;
	sc.source = f->source[0];
	att.id = (char *)"t";
	f->st = stream_open(f->loop, f->c, "AttachStdio", &att.base, &sc, &ops, f);
	assert_non_null(f->st);
	turn(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	stream_free(f->st);
	ttrpc_client_free(f->c);
	event_loop_free(f->loop);
	close(f->g.fd);
	if (f->source[1] >= 0)
		close(f->source[1]);
	ttrpc_decoder_release(&f->g.dec);
	buf_release(&f->out.got);
	buf_release(&f->err.got);
	free(f);
	return 0;
}

/* The host grants the window, once, up front; output reaches its sink in order. */
static void test_window_then_regrant(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->g.credit, STREAM_WINDOW);
	guest_send(&f->g, 1, STREAM_CHUNK, false, 0);
	guest_send(&f->g, 2, 10, false, 0);
	turn(f);
	assert_int_equal(f->out.got.len, STREAM_CHUNK);
	assert_int_equal(f->err.got.len, 10);
	/* Less than a quarter window consumed: nothing granted yet. */
	assert_int_equal(f->g.credit, STREAM_WINDOW);
	for (int i = 0; i < 4; i++)
		guest_send(&f->g, 1, STREAM_CHUNK, false, 0);
	turn(f);
	/* Granted again when what was taken reached a quarter window (4 chunks and 10
	 * bytes), that much; the fifth chunk waits for the next quarter. */
	assert_int_equal(f->g.credit, STREAM_WINDOW + 4 * STREAM_CHUNK + 10);
	assert_false(f->done);
}

/* A sink that does not read holds the guest back: nothing is granted beyond the
 * window, the host holds at most the window, and one byte more is a violation that
 * cuts the stream and tells the agent. */
static void test_stuck_sink_holds_at_most_the_window(void **state)
{
	struct fixture *f = *state;
	uint64_t sent = 0;

	f->out.stuck = true;
	while (sent + STREAM_CHUNK <= STREAM_WINDOW) {
		guest_send(&f->g, 1, STREAM_CHUNK, false, 0);
		sent += STREAM_CHUNK;
	}
	turn(f);
	assert_int_equal(stream_buffered(f->st), STREAM_WINDOW);
	assert_int_equal(f->g.credit, STREAM_WINDOW); /* nothing more granted */
	assert_false(f->done);
	guest_send(&f->g, 1, 1, false, 0);
	turn(f);
	assert_true(f->done);
	assert_int_equal(f->r, -EPROTO);
	assert_non_null(strstr(f->msg, "protocol violation: container 't'"));
	assert_non_null(strstr(f->msg, "with 0 bytes of credit left"));
	assert_true(f->g.cancelled);
	assert_true(f->out.closed);
	/* What comes after the cut is dropped: nothing more is buffered or granted. */
	guest_send(&f->g, 1, STREAM_CHUNK, false, 0);
	turn(f);
	assert_int_equal(stream_buffered(f->st), 0);
	assert_int_equal(f->g.credit, STREAM_WINDOW);
}

/* A frame bigger than the credit left is refused whole, before it is buffered. */
static void test_past_credit_by_a_frame(void **state)
{
	struct fixture *f = *state;
	f->out.stuck = true;
	for (int i = 0; i < 15; i++)
		guest_send(&f->g, 1, STREAM_CHUNK, false, 0);
	guest_send(&f->g, 1, 300000, false, 0);
	turn(f);
	assert_true(f->done);
	assert_int_equal(f->r, -EPROTO);
	assert_non_null(strstr(f->msg, "sent 300000 bytes with 262144 bytes of credit left"));
	assert_int_equal(stream_buffered(f->st), 0);
}

static void test_bad_frames_are_violations(void **state)
{
	struct fixture *f = *state;
	guest_send(&f->g, 3, 5, false, 0);
	turn(f);
	assert_int_equal(f->r, -EPROTO);
	assert_non_null(strstr(f->msg, "output for fd 3"));
}

/* Stdin goes in chunks of at most STREAM_CHUNK and never past the guest's credit; more
 * credit lets the rest go; EOF of the source is the guest's EOF. */
static void test_input_within_credit(void **state)
{
	struct fixture *f = *state;
	size_t total = 3 * STREAM_CHUNK + 7, off = 65536;
	uint8_t *data = xcalloc(1, total);

	/* The guest grants 300000 bytes. */
	guest_send(&f->g, 0, 0, false, 300000);
	fd_set_nonblock(f->source[1], 1);
	assert_int_equal(write(f->source[1], data, 65536), 65536);
	turn(f);
	assert_int_equal(f->g.in_bytes, 65536);
	/* More is waiting in the pipe than the guest allows: the host stops at the credit. */
	while (off < total && f->g.in_bytes < 300000) {
		ssize_t n = write(f->source[1], data + off, total - off);
		if (n > 0)
			off += (size_t)n;
		turn(f);
	}
	turn(f);
	assert_int_equal(f->g.in_bytes, 300000);
	assert_true(f->g.max_chunk <= STREAM_CHUNK);
	/* The rest once granted; then EOF. */
	guest_send(&f->g, 0, 0, false, 1 << 20);
	while (off < total) {
		ssize_t n = write(f->source[1], data + off, total - off);
		if (n > 0)
			off += (size_t)n;
		turn(f);
	}
	turn(f);
	close(f->source[1]);
	f->source[1] = -1;
	turn(f);
	assert_int_equal(f->g.in_bytes, total);
	assert_true(f->g.in_eof);
	free(data);
}

/* EOF on both fds and the reply: done once the sinks have everything. */
static void test_end(void **state)
{
	struct fixture *f = *state;
	guest_send(&f->g, 1, 100, true, 0);
	guest_send(&f->g, 2, 0, true, 0);
	guest_reply(&f->g);
	turn(f);
	assert_true(f->done);
	assert_int_equal(f->r, 0);
	assert_int_equal(f->out.got.len, 100);
	assert_true(f->out.closed && f->err.closed);
	assert_true(stream_is_done(f->st));
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	stream_cancel(f->st);
	turn(f);
	assert_true(f->g.cancelled);
	assert_true(f->done);
	assert_int_equal(f->r, -ECANCELED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_window_then_regrant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stuck_sink_holds_at_most_the_window, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_past_credit_by_a_frame, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_frames_are_violations, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_input_within_credit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
