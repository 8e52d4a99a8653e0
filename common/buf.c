/* SPDX-License-Identifier: MIT */
#include "buf.h"

#include <string.h>

#include "macros.h"

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->start > 0 && b->start + b->len + n > b->cap) {
		/* Compact before growing: the queue drains from the head. */
		memmove(b->data, b->data + b->start, b->len);
		b->start = 0;
	}
	if (b->start + b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->start + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->len += n;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->start = 0;
		b->len = 0;
		return;
	}
	b->start += n;
	b->len -= n;
}

void buf_release(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}
