/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A byte queue: append at the tail, consume from the head. */
struct buf {
	uint8_t *data;
	size_t start; /* first unconsumed byte */
	size_t len;   /* bytes after start */
	size_t cap;
};

static inline const uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->start;
}
void buf_append(struct buf *b, const void *p, size_t n);
/* Reserve n writable bytes at the tail; commit with buf_commit() after filling. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_release(struct buf *b);
