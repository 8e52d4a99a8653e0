/* SPDX-License-Identifier: MIT */
#include "ttrpc.h"

#include <errno.h>
#include <string.h>

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void ttrpc_decoder_feed(struct ttrpc_decoder *d, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (d->discard > 0) {
		size_t skip = d->discard < n ? (size_t)d->discard : n;
		d->discard -= skip;
		p += skip;
		n -= skip;
	}
	buf_append(&d->in, p, n);
}

int ttrpc_decoder_next(struct ttrpc_decoder *d, struct ttrpc_frame *ret)
{
	uint32_t cap = d->max_payload ? d->max_payload : TTRPC_MAX_PAYLOAD;
	const uint8_t *h;
	struct ttrpc_frame f;

	if (d->discard > 0 || d->in.len < TTRPC_HEADER_SIZE)
		return 0;
	h = buf_head(&d->in);
	f.length = be32(h);
	f.stream_id = be32(h + 4);
	f.type = h[8];
	f.flags = h[9];
	f.payload = NULL;

	if (f.length > cap) {
		/* Never buffer a payload we will refuse: drop what is here, skip the rest. */
		size_t have = d->in.len - TTRPC_HEADER_SIZE;
		buf_consume(&d->in, TTRPC_HEADER_SIZE);
		if (have >= f.length) {
			buf_consume(&d->in, f.length);
		} else {
			buf_consume(&d->in, have);
			d->discard = f.length - have;
		}
		*ret = f;
		return -EMSGSIZE;
	}
	if (d->in.len - TTRPC_HEADER_SIZE < f.length)
		return 0;
	f.payload = h + TTRPC_HEADER_SIZE;
	/* The bytes stay in place until the next feed/next call. */
	buf_consume(&d->in, TTRPC_HEADER_SIZE + f.length);
	*ret = f;
	return 1;
}

void ttrpc_decoder_release(struct ttrpc_decoder *d)
{
	buf_release(&d->in);
	d->discard = 0;
}

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], uint32_t length, uint32_t stream_id,
                         uint8_t type, uint8_t flags)
{
	put_be32(out, length);
	put_be32(out + 4, stream_id);
	out[8] = type;
	out[9] = flags;
}

void ttrpc_frame_append(struct buf *out, uint32_t stream_id, uint8_t type, uint8_t flags,
                        const void *payload, size_t len)
{
	uint8_t *p = buf_reserve(out, TTRPC_HEADER_SIZE + len);
	ttrpc_header_encode(p, (uint32_t)len, stream_id, type, flags);
	if (len)
		memcpy(p + TTRPC_HEADER_SIZE, payload, len);
	buf_commit(out, TTRPC_HEADER_SIZE + len);
}

enum ttrpc_code ttrpc_code_from_errno(int r)
{
	switch (-r) {
	case 0:
		return TTRPC_OK;
	case ENOENT:
	case ESRCH:
		return TTRPC_NOT_FOUND;
	case EEXIST:
		return TTRPC_ALREADY_EXISTS;
	case EINVAL:
	case E2BIG:
	case ENAMETOOLONG:
		return TTRPC_INVALID_ARGUMENT;
	case EPERM:
	case EACCES:
		return TTRPC_PERMISSION_DENIED;
	case ENOMEM:
	case ENOSPC:
	case EMSGSIZE:
	case EMFILE:
		return TTRPC_RESOURCE_EXHAUSTED;
	case EBUSY:
	case ENOTEMPTY:
	case EALREADY:
		return TTRPC_FAILED_PRECONDITION;
	case ETIMEDOUT:
		return TTRPC_DEADLINE_EXCEEDED;
	case EOPNOTSUPP:
	case ENOSYS:
		return TTRPC_UNIMPLEMENTED;
	case ECANCELED:
		return TTRPC_CANCELLED;
	case ECONNRESET:
	case EPIPE:
		return TTRPC_UNAVAILABLE;
	default:
		return TTRPC_INTERNAL;
	}
}

int ttrpc_errno_from_code(int code)
{
	switch (code) {
	case TTRPC_OK:
		return 0;
	case TTRPC_NOT_FOUND:
		return -ENOENT;
	case TTRPC_ALREADY_EXISTS:
		return -EEXIST;
	case TTRPC_INVALID_ARGUMENT:
		return -EINVAL;
	case TTRPC_PERMISSION_DENIED:
		return -EACCES;
	case TTRPC_RESOURCE_EXHAUSTED:
		return -EMSGSIZE;
	case TTRPC_FAILED_PRECONDITION:
		return -EBUSY;
	case TTRPC_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case TTRPC_UNIMPLEMENTED:
		return -EOPNOTSUPP;
	case TTRPC_CANCELLED:
		return -ECANCELED;
	case TTRPC_UNAVAILABLE:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

const char *ttrpc_code_name(int code)
{
	static const char *const names[_TTRPC_CODE_MAX] = {
	    "OK",
	    "CANCELLED",
	    "UNKNOWN",
	    "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED",
	    "NOT_FOUND",
	    "ALREADY_EXISTS",
	    "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION",
	    "ABORTED",
	    "OUT_OF_RANGE",
	    "UNIMPLEMENTED",
	    "INTERNAL",
	    "UNAVAILABLE",
	};
	if (code < 0 || code >= _TTRPC_CODE_MAX)
		return "UNKNOWN";
	return names[code];
}
