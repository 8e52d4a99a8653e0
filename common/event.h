/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* A small epoll loop: one callback per fd. Agent and host sides are single-threaded
 * and run everything from one of these. */
struct event_loop;
typedef void (*event_cb)(struct event_loop *loop, int fd, uint32_t revents, void *userdata);

struct event_loop *event_loop_new(void);
struct event_loop *event_loop_free(struct event_loop *loop);
int event_add(struct event_loop *loop, int fd, uint32_t events, event_cb cb, void *userdata);
int event_mod(struct event_loop *loop, int fd, uint32_t events);
void event_del(struct event_loop *loop, int fd);
/* Run fn(userdata) once, after the callbacks of the current round (or at the start of
 * the next round when called outside one), before the loop waits again: work that must
 * not run inside the callback that asks for it (freeing the object whose callback is
 * running). */
typedef void (*event_defer_cb)(void *userdata);
void event_defer(struct event_loop *loop, event_defer_cb fn, void *userdata);
/* Forget deferred calls of fn with userdata (the object they would touch is gone). */
void event_defer_cancel(struct event_loop *loop, event_defer_cb fn, void *userdata);
/* For a serving process: SIGTERM, SIGINT and SIGHUP through a signalfd on loop, each
 * logged and setting *stop; SIGPIPE blocked (writes to a gone peer fail with EPIPE).
 * Returns the signalfd (the caller closes it after event_loop_free) or -errno. */
int event_add_stop_signals(struct event_loop *loop, bool *stop);
/* Run one round: the deferred calls if there are any (and return: the caller checks
 * what they changed), else wait up to timeout_ms (-1 forever) and dispatch. 0 or
 * -errno. */
int event_loop_once(struct event_loop *loop, int timeout_ms);
