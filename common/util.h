/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "macros.h"

size_t strv_length(char *const *l);
/* Append s (taking ownership) to the NULL-terminated vector *l. */
void strv_push(char ***l, char *s);
/* Nanoseconds: since the epoch (what events and statuses report), and on the monotonic
 * clock (deadlines, timeouts). */
uint64_t realtime_ns(void);
uint64_t monotonic_ns(void);

/* Write all of buf, retrying on EINTR and waiting on EAGAIN. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Like write_all() on a socket, without SIGPIPE when the peer is gone. */
int send_all(int fd, const void *buf, size_t len);
/* Read up to len bytes, stopping early only at EOF. Returns bytes read or -errno. */
ssize_t read_all(int fd, void *buf, size_t len);
int fd_set_nonblock(int fd, int on);

/* "512", "512M", "2GiB", "1g" -> bytes. -EINVAL on junk, -ERANGE on overflow. */
int parse_size(const char *s, uint64_t *ret);
/* "90", "1.5s", "500ms", "2m", "1h30m" -> milliseconds (bare numbers are seconds). */
int parse_duration_ms(const char *s, uint64_t *ret);
int mkdir_p(const char *path, mode_t mode);
/* Remove path and everything below it, never crossing into another filesystem (a
 * mount below it is left, as is its mountpoint) and never following symlinks;
 * read-only directories are made writable first. Best effort. */
void rm_tree(const char *path);
/* The one rule for names hull accepts as path components and ids (sandboxes,
 * containers, execs): 1 to 64 of [A-Za-z0-9_.-], not starting with '.'. */
bool id_is_valid(const char *s);
/* A relative path inside a share: 1-8 id_is_valid() names joined by '/'. */
bool subpath_is_valid(const char *s);
/* The entry of a sysfs class directory (/sys/block, /sys/class/net) whose attribute
 * file (serial, address) holds value, compared without case; NULL when none does.
 * Caller frees. */
char *sysfs_find(const char *dir, const char *attr, const char *value);
/* "TERM", "SIGTERM" or "15" -> 15; -EINVAL for anything else. */
int signal_from_string(const char *s);

/* 64-bit FNV-1a of data, continuing from h (FNV1A_INIT to start): short stable names
 * and checksums, not security. */
#define FNV1A_INIT 0xcbf29ce484222325ull
uint64_t fnv1a(uint64_t h, const void *data, size_t len);
/* The program name (or path) as execvp() would find it, made absolute by realpath();
 * NULL when there is none. Caller frees. */
char *find_program(const char *name);
/* The mount points strictly below dir in our mount namespace, octal escapes decoded,
 * in mount order (later ones are on top or deeper); NULL when there are none. */
char **mounts_below(const char *dir);
/* Run fn(userdata) with this thread in the network namespace at netns_fd, then come
 * back; a failure to come back aborts (carrying on there would put the host's sockets
 * in it). -errno without running fn when a namespace cannot be entered; else what fn
 * returns. */
int netns_run(int netns_fd, int (*fn)(void *userdata), void *userdata);
