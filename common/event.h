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
/* Run one round: wait up to timeout_ms (-1 forever) and dispatch. 0 or -errno. */
int event_loop_once(struct event_loop *loop, int timeout_ms);
