/* SPDX-License-Identifier: MIT */
/* SPDY/3.1 for the streaming server, as kubelet speaks it through spdystream and
 * k8s.io/apimachinery's httpstream/spdy: the client opens every stream (SYN_STREAM,
 * headers inflated on one zlib stream per direction primed with SPDY's dictionary),
 * the server answers each with a SYN_REPLY of no headers, data flows in DATA frames,
 * a FIN half-closes, RST_STREAM resets; PINGs are answered, SETTINGS and GOAWAY
 * heeded, and WINDOW_UPDATEs both kept and sent.
 *
 * Flow control: spdystream, the Go library behind kubelet, client-go and the API
 * server, keeps no windows: it never sends a WINDOW_UPDATE, and a server that waited
 * for one would stall every exec after 64 KiB. So the client's windows bound what we
 * send once the client shows that it keeps them (a WINDOW_UPDATE, or SETTINGS with an
 * initial window size): per stream from then on, and for the session once it updated
 * the session's window (stream 0). Until then what we send is bounded by the
 * session's 1 MiB queue alone. What we receive we give back at once (WINDOW_UPDATE for
 * the stream and the session every 32 KiB): data reaches the backend as it arrives.
 *
 * On top: exec/attach (kubelet's remotecommand httpstream.go: the session starts when
 * the error stream and the requested stdin, stdout, stderr and resize (v3+, with a
 * terminal) streams have arrived, within 30 s) and port-forward (portforward
 * httpstream.go: a data and an error stream per requestID, each with a port). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cri-stream-internal.h"
#include "log.h"
#include "macros.h"

/* ---- the codec ---- */

const uint8_t spdy_dictionary[SPDY_DICTIONARY_SIZE] = {
    0x00, 0x00, 0x00, 0x07, 0x6f, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x00, 0x00, 0x00, 0x04, 0x68,
    0x65, 0x61, 0x64, 0x00, 0x00, 0x00, 0x04, 0x70, 0x6f, 0x73, 0x74, 0x00, 0x00, 0x00, 0x03, 0x70,
    0x75, 0x74, 0x00, 0x00, 0x00, 0x06, 0x64, 0x65, 0x6c, 0x65, 0x74, 0x65, 0x00, 0x00, 0x00, 0x05,
    0x74, 0x72, 0x61, 0x63, 0x65, 0x00, 0x00, 0x00, 0x06, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x00,
    0x00, 0x00, 0x0e, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x63, 0x68, 0x61, 0x72, 0x73, 0x65,
    0x74, 0x00, 0x00, 0x00, 0x0f, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x65, 0x6e, 0x63, 0x6f,
    0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x0f, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74, 0x2d, 0x6c,
    0x61, 0x6e, 0x67, 0x75, 0x61, 0x67, 0x65, 0x00, 0x00, 0x00, 0x0d, 0x61, 0x63, 0x63, 0x65, 0x70,
    0x74, 0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x73, 0x00, 0x00, 0x00, 0x03, 0x61, 0x67, 0x65, 0x00,
    0x00, 0x00, 0x05, 0x61, 0x6c, 0x6c, 0x6f, 0x77, 0x00, 0x00, 0x00, 0x0d, 0x61, 0x75, 0x74, 0x68,
    0x6f, 0x72, 0x69, 0x7a, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0d, 0x63, 0x61, 0x63,
    0x68, 0x65, 0x2d, 0x63, 0x6f, 0x6e, 0x74, 0x72, 0x6f, 0x6c, 0x00, 0x00, 0x00, 0x0a, 0x63, 0x6f,
    0x6e, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0c, 0x63, 0x6f, 0x6e, 0x74,
    0x65, 0x6e, 0x74, 0x2d, 0x62, 0x61, 0x73, 0x65, 0x00, 0x00, 0x00, 0x10, 0x63, 0x6f, 0x6e, 0x74,
    0x65, 0x6e, 0x74, 0x2d, 0x65, 0x6e, 0x63, 0x6f, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x10,
    0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x61, 0x6e, 0x67, 0x75, 0x61, 0x67, 0x65,
    0x00, 0x00, 0x00, 0x0e, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x65, 0x6e, 0x67,
    0x74, 0x68, 0x00, 0x00, 0x00, 0x10, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x6c, 0x6f,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x0b, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e,
    0x74, 0x2d, 0x6d, 0x64, 0x35, 0x00, 0x00, 0x00, 0x0d, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74,
    0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00, 0x0c, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e,
    0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x00, 0x00, 0x00, 0x04, 0x64, 0x61, 0x74, 0x65, 0x00, 0x00,
    0x00, 0x04, 0x65, 0x74, 0x61, 0x67, 0x00, 0x00, 0x00, 0x06, 0x65, 0x78, 0x70, 0x65, 0x63, 0x74,
    0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x70, 0x69, 0x72, 0x65, 0x73, 0x00, 0x00, 0x00, 0x04, 0x66,
    0x72, 0x6f, 0x6d, 0x00, 0x00, 0x00, 0x04, 0x68, 0x6f, 0x73, 0x74, 0x00, 0x00, 0x00, 0x08, 0x69,
    0x66, 0x2d, 0x6d, 0x61, 0x74, 0x63, 0x68, 0x00, 0x00, 0x00, 0x11, 0x69, 0x66, 0x2d, 0x6d, 0x6f,
    0x64, 0x69, 0x66, 0x69, 0x65, 0x64, 0x2d, 0x73, 0x69, 0x6e, 0x63, 0x65, 0x00, 0x00, 0x00, 0x0d,
    0x69, 0x66, 0x2d, 0x6e, 0x6f, 0x6e, 0x65, 0x2d, 0x6d, 0x61, 0x74, 0x63, 0x68, 0x00, 0x00, 0x00,
    0x08, 0x69, 0x66, 0x2d, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00, 0x13, 0x69, 0x66, 0x2d,
    0x75, 0x6e, 0x6d, 0x6f, 0x64, 0x69, 0x66, 0x69, 0x65, 0x64, 0x2d, 0x73, 0x69, 0x6e, 0x63, 0x65,
    0x00, 0x00, 0x00, 0x0d, 0x6c, 0x61, 0x73, 0x74, 0x2d, 0x6d, 0x6f, 0x64, 0x69, 0x66, 0x69, 0x65,
    0x64, 0x00, 0x00, 0x00, 0x08, 0x6c, 0x6f, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00,
    0x0c, 0x6d, 0x61, 0x78, 0x2d, 0x66, 0x6f, 0x72, 0x77, 0x61, 0x72, 0x64, 0x73, 0x00, 0x00, 0x00,
    0x06, 0x70, 0x72, 0x61, 0x67, 0x6d, 0x61, 0x00, 0x00, 0x00, 0x12, 0x70, 0x72, 0x6f, 0x78, 0x79,
    0x2d, 0x61, 0x75, 0x74, 0x68, 0x65, 0x6e, 0x74, 0x69, 0x63, 0x61, 0x74, 0x65, 0x00, 0x00, 0x00,
    0x13, 0x70, 0x72, 0x6f, 0x78, 0x79, 0x2d, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x61,
    0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x05, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x00, 0x00, 0x00,
    0x07, 0x72, 0x65, 0x66, 0x65, 0x72, 0x65, 0x72, 0x00, 0x00, 0x00, 0x0b, 0x72, 0x65, 0x74, 0x72,
    0x79, 0x2d, 0x61, 0x66, 0x74, 0x65, 0x72, 0x00, 0x00, 0x00, 0x06, 0x73, 0x65, 0x72, 0x76, 0x65,
    0x72, 0x00, 0x00, 0x00, 0x02, 0x74, 0x65, 0x00, 0x00, 0x00, 0x07, 0x74, 0x72, 0x61, 0x69, 0x6c,
    0x65, 0x72, 0x00, 0x00, 0x00, 0x11, 0x74, 0x72, 0x61, 0x6e, 0x73, 0x66, 0x65, 0x72, 0x2d, 0x65,
    0x6e, 0x63, 0x6f, 0x64, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x07, 0x75, 0x70, 0x67, 0x72, 0x61,
    0x64, 0x65, 0x00, 0x00, 0x00, 0x0a, 0x75, 0x73, 0x65, 0x72, 0x2d, 0x61, 0x67, 0x65, 0x6e, 0x74,
    0x00, 0x00, 0x00, 0x04, 0x76, 0x61, 0x72, 0x79, 0x00, 0x00, 0x00, 0x03, 0x76, 0x69, 0x61, 0x00,
    0x00, 0x00, 0x07, 0x77, 0x61, 0x72, 0x6e, 0x69, 0x6e, 0x67, 0x00, 0x00, 0x00, 0x10, 0x77, 0x77,
    0x77, 0x2d, 0x61, 0x75, 0x74, 0x68, 0x65, 0x6e, 0x74, 0x69, 0x63, 0x61, 0x74, 0x65, 0x00, 0x00,
    0x00, 0x06, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x00, 0x00, 0x00, 0x03, 0x67, 0x65, 0x74, 0x00,
    0x00, 0x00, 0x06, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x00, 0x00, 0x00, 0x06, 0x32, 0x30, 0x30,
    0x20, 0x4f, 0x4b, 0x00, 0x00, 0x00, 0x07, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x00,
    0x00, 0x08, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x00, 0x00, 0x00, 0x03, 0x75, 0x72,
    0x6c, 0x00, 0x00, 0x00, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0x00, 0x00, 0x00, 0x0a, 0x73,
    0x65, 0x74, 0x2d, 0x63, 0x6f, 0x6f, 0x6b, 0x69, 0x65, 0x00, 0x00, 0x00, 0x0a, 0x6b, 0x65, 0x65,
    0x70, 0x2d, 0x61, 0x6c, 0x69, 0x76, 0x65, 0x00, 0x00, 0x00, 0x06, 0x6f, 0x72, 0x69, 0x67, 0x69,
    0x6e, 0x31, 0x30, 0x30, 0x31, 0x30, 0x31, 0x32, 0x30, 0x31, 0x32, 0x30, 0x32, 0x32, 0x30, 0x35,
    0x32, 0x30, 0x36, 0x33, 0x30, 0x30, 0x33, 0x30, 0x32, 0x33, 0x30, 0x33, 0x33, 0x30, 0x34, 0x33,
    0x30, 0x35, 0x33, 0x30, 0x36, 0x33, 0x30, 0x37, 0x34, 0x30, 0x32, 0x34, 0x30, 0x35, 0x34, 0x30,
    0x36, 0x34, 0x30, 0x37, 0x34, 0x30, 0x38, 0x34, 0x30, 0x39, 0x34, 0x31, 0x30, 0x34, 0x31, 0x31,
    0x34, 0x31, 0x32, 0x34, 0x31, 0x33, 0x34, 0x31, 0x34, 0x34, 0x31, 0x35, 0x34, 0x31, 0x36, 0x34,
    0x31, 0x37, 0x35, 0x30, 0x32, 0x35, 0x30, 0x34, 0x35, 0x30, 0x35, 0x32, 0x30, 0x33, 0x20, 0x4e,
    0x6f, 0x6e, 0x2d, 0x41, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x74, 0x61, 0x74, 0x69, 0x76, 0x65,
    0x20, 0x49, 0x6e, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x32, 0x30, 0x34, 0x20,
    0x4e, 0x6f, 0x20, 0x43, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x33, 0x30, 0x31, 0x20, 0x4d, 0x6f,
    0x76, 0x65, 0x64, 0x20, 0x50, 0x65, 0x72, 0x6d, 0x61, 0x6e, 0x65, 0x6e, 0x74, 0x6c, 0x79, 0x34,
    0x30, 0x30, 0x20, 0x42, 0x61, 0x64, 0x20, 0x52, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74, 0x34, 0x30,
    0x31, 0x20, 0x55, 0x6e, 0x61, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x65, 0x64, 0x34, 0x30,
    0x33, 0x20, 0x46, 0x6f, 0x72, 0x62, 0x69, 0x64, 0x64, 0x65, 0x6e, 0x34, 0x30, 0x34, 0x20, 0x4e,
    0x6f, 0x74, 0x20, 0x46, 0x6f, 0x75, 0x6e, 0x64, 0x35, 0x30, 0x30, 0x20, 0x49, 0x6e, 0x74, 0x65,
    0x72, 0x6e, 0x61, 0x6c, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, 0x20, 0x45, 0x72, 0x72, 0x6f,
    0x72, 0x35, 0x30, 0x31, 0x20, 0x4e, 0x6f, 0x74, 0x20, 0x49, 0x6d, 0x70, 0x6c, 0x65, 0x6d, 0x65,
    0x6e, 0x74, 0x65, 0x64, 0x35, 0x30, 0x33, 0x20, 0x53, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x20,
    0x55, 0x6e, 0x61, 0x76, 0x61, 0x69, 0x6c, 0x61, 0x62, 0x6c, 0x65, 0x4a, 0x61, 0x6e, 0x20, 0x46,
    0x65, 0x62, 0x20, 0x4d, 0x61, 0x72, 0x20, 0x41, 0x70, 0x72, 0x20, 0x4d, 0x61, 0x79, 0x20, 0x4a,
    0x75, 0x6e, 0x20, 0x4a, 0x75, 0x6c, 0x20, 0x41, 0x75, 0x67, 0x20, 0x53, 0x65, 0x70, 0x74, 0x20,
    0x4f, 0x63, 0x74, 0x20, 0x4e, 0x6f, 0x76, 0x20, 0x44, 0x65, 0x63, 0x20, 0x30, 0x30, 0x3a, 0x30,
    0x30, 0x3a, 0x30, 0x30, 0x20, 0x4d, 0x6f, 0x6e, 0x2c, 0x20, 0x54, 0x75, 0x65, 0x2c, 0x20, 0x57,
    0x65, 0x64, 0x2c, 0x20, 0x54, 0x68, 0x75, 0x2c, 0x20, 0x46, 0x72, 0x69, 0x2c, 0x20, 0x53, 0x61,
    0x74, 0x2c, 0x20, 0x53, 0x75, 0x6e, 0x2c, 0x20, 0x47, 0x4d, 0x54, 0x63, 0x68, 0x75, 0x6e, 0x6b,
    0x65, 0x64, 0x2c, 0x74, 0x65, 0x78, 0x74, 0x2f, 0x68, 0x74, 0x6d, 0x6c, 0x2c, 0x69, 0x6d, 0x61,
    0x67, 0x65, 0x2f, 0x70, 0x6e, 0x67, 0x2c, 0x69, 0x6d, 0x61, 0x67, 0x65, 0x2f, 0x6a, 0x70, 0x67,
    0x2c, 0x69, 0x6d, 0x61, 0x67, 0x65, 0x2f, 0x67, 0x69, 0x66, 0x2c, 0x61, 0x70, 0x70, 0x6c, 0x69,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x78, 0x6d, 0x6c, 0x2c, 0x61, 0x70, 0x70, 0x6c, 0x69,
    0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x78, 0x68, 0x74, 0x6d, 0x6c, 0x2b, 0x78, 0x6d, 0x6c,
    0x2c, 0x74, 0x65, 0x78, 0x74, 0x2f, 0x70, 0x6c, 0x61, 0x69, 0x6e, 0x2c, 0x74, 0x65, 0x78, 0x74,
    0x2f, 0x6a, 0x61, 0x76, 0x61, 0x73, 0x63, 0x72, 0x69, 0x70, 0x74, 0x2c, 0x70, 0x75, 0x62, 0x6c,
    0x69, 0x63, 0x70, 0x72, 0x69, 0x76, 0x61, 0x74, 0x65, 0x6d, 0x61, 0x78, 0x2d, 0x61, 0x67, 0x65,
    0x3d, 0x67, 0x7a, 0x69, 0x70, 0x2c, 0x64, 0x65, 0x66, 0x6c, 0x61, 0x74, 0x65, 0x2c, 0x73, 0x64,
    0x63, 0x68, 0x63, 0x68, 0x61, 0x72, 0x73, 0x65, 0x74, 0x3d, 0x75, 0x74, 0x66, 0x2d, 0x38, 0x63,
    0x68, 0x61, 0x72, 0x73, 0x65, 0x74, 0x3d, 0x69, 0x73, 0x6f, 0x2d, 0x38, 0x38, 0x35, 0x39, 0x2d,
    0x31, 0x2c, 0x75, 0x74, 0x66, 0x2d, 0x2c, 0x2a, 0x2c, 0x65, 0x6e, 0x71, 0x3d, 0x30, 0x2e,
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void buf_put32(struct buf *b, uint32_t v)
{
	put32(buf_reserve(b, 4), v);
	buf_commit(b, 4);
}

int spdy_frame_parse(const uint8_t *p, size_t n, uint32_t max_data, uint32_t max_ctrl,
                     struct spdy_frame *ret, size_t *ret_size)
{
	struct spdy_frame f = {0};
	uint32_t w0, w1;

	if (n < 8)
		return 0;
	w0 = be32(p);
	w1 = be32(p + 4);
	f.control = (w0 & 0x80000000u) != 0;
	f.flags = (uint8_t)(w1 >> 24);
	f.length = w1 & 0xffffffu;
	if (f.control) {
		f.version = (uint16_t)(w0 >> 16 & 0x7fff);
		f.type = (uint16_t)(w0 & 0xffff);
		if (f.length > max_ctrl)
			return -EMSGSIZE;
	} else {
		f.stream_id = w0 & 0x7fffffffu;
		if (f.length > max_data)
			return -EMSGSIZE;
	}
	if (n - 8 < f.length)
		return 0;
	f.payload = p + 8;
	*ret = f;
	*ret_size = 8 + (size_t)f.length;
	return 1;
}

void spdy_z_init(struct spdy_zstream *zs, bool inflate)
{
	memset(zs, 0, sizeof(*zs));
	zs->inflate = inflate;
	if (inflate) {
		if (inflateInit(&zs->z) != Z_OK)
			abort();
	} else {
		/* As Go's spdy framer: best compression, the dictionary set up front. */
		if (deflateInit(&zs->z, Z_BEST_COMPRESSION) != Z_OK ||
		    deflateSetDictionary(&zs->z, spdy_dictionary, SPDY_DICTIONARY_SIZE) != Z_OK)
			abort();
	}
}

void spdy_z_end(struct spdy_zstream *zs)
{
	if (zs->inflate)
		inflateEnd(&zs->z);
	else
		deflateEnd(&zs->z);
}

int spdy_z_inflate(struct spdy_zstream *zs, const uint8_t *p, size_t n, size_t cap, struct buf *out)
{
	size_t start = out->len;
	/* One byte more than the cap: inflating into it means the block is too big. */
	uint8_t *dst = buf_reserve(out, cap + 1);

	zs->z.next_in = (uint8_t *)p;
	zs->z.avail_in = (uInt)n;
	zs->z.next_out = dst;
	zs->z.avail_out = (uInt)(cap + 1);
	while (zs->z.avail_in > 0) {
		int r = inflate(&zs->z, Z_SYNC_FLUSH);
		if (r == Z_NEED_DICT) {
			if (inflateSetDictionary(&zs->z, spdy_dictionary, SPDY_DICTIONARY_SIZE) !=
			    Z_OK)
				return -EBADMSG;
			continue;
		}
		if (r == Z_BUF_ERROR && zs->z.avail_out == 0)
			return -EMSGSIZE;
		if (r != Z_OK)
			return -EBADMSG; /* Z_STREAM_END too: the stream goes on for every block */
		if (zs->z.avail_out == 0)
			return -EMSGSIZE;
	}
	size_t got = cap + 1 - zs->z.avail_out;
	if (got > cap)
		return -EMSGSIZE;
	(void)start;
	buf_commit(out, got);
	return 0;
}

void spdy_z_deflate(struct spdy_zstream *zs, const uint8_t *p, size_t n, struct buf *out)
{
	zs->z.next_in = (uint8_t *)p;
	zs->z.avail_in = (uInt)n;
	do {
		size_t room = deflateBound(&zs->z, (uLong)n) + 64;
		uint8_t *dst = buf_reserve(out, room);
		zs->z.next_out = dst;
		zs->z.avail_out = (uInt)room;
		if (deflate(&zs->z, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
			abort();
		buf_commit(out, room - zs->z.avail_out);
	} while (zs->z.avail_out == 0);
}

int spdy_headers_parse(const uint8_t *p, size_t n, struct spdy_header *hdrs, size_t max,
                       size_t *ret_n)
{
	size_t off = 4;
	uint32_t count;

	if (n < 4)
		return -EBADMSG;
	count = be32(p);
	if (count > max)
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t nl, vl;
		if (n - off < 4)
			return -EBADMSG;
		nl = be32(p + off);
		off += 4;
		if (nl == 0 || n - off < nl)
			return -EBADMSG;
		hdrs[i].name = p + off;
		hdrs[i].name_len = nl;
		off += nl;
		if (n - off < 4)
			return -EBADMSG;
		vl = be32(p + off);
		off += 4;
		if (n - off < vl)
			return -EBADMSG;
		hdrs[i].value = p + off;
		hdrs[i].value_len = vl;
		off += vl;
	}
	if (off != n)
		return -EBADMSG;
	*ret_n = count;
	return 0;
}

const char *spdy_header_get(const struct spdy_header *hdrs, size_t n, const char *name, char *v,
                            size_t vn)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++) {
		if (hdrs[i].name_len != len || strncasecmp((const char *)hdrs[i].name, name, len))
			continue;
		const uint8_t *nul = memchr(hdrs[i].value, 0, hdrs[i].value_len);
		size_t l = nul ? (size_t)(nul - hdrs[i].value) : hdrs[i].value_len;
		if (l >= vn)
			return NULL;
		memcpy(v, hdrs[i].value, l);
		v[l] = '\0';
		return v;
	}
	return NULL;
}

void spdy_headers_put(struct buf *b, const char *const *nv, size_t n_pairs)
{
	buf_put32(b, (uint32_t)n_pairs);
	for (size_t i = 0; i < 2 * n_pairs; i++) {
		size_t l = strlen(nv[i]);
		buf_put32(b, (uint32_t)l);
		buf_append(b, nv[i], l);
	}
}

void spdy_put_control(struct buf *b, uint16_t type, uint8_t flags, const uint8_t *payload, size_t n)
{
	uint8_t h[8];
	put32(h, 0x80000000u | (uint32_t)SPDY_VERSION << 16 | type);
	put32(h + 4, (uint32_t)flags << 24 | (uint32_t)n);
	buf_append(b, h, 8);
	buf_append(b, payload, n);
}

void spdy_put_data(struct buf *b, uint32_t stream_id, uint8_t flags, const uint8_t *p, size_t n)
{
	uint8_t h[8];
	put32(h, stream_id & 0x7fffffffu);
	put32(h + 4, (uint32_t)flags << 24 | (uint32_t)n);
	buf_append(b, h, 8);
	buf_append(b, p, n);
}

void spdy_put_headers_frame(struct buf *b, struct spdy_zstream *z, uint16_t type,
                            uint32_t stream_id, uint8_t flags, const char *const *nv,
                            size_t n_pairs)
{
	struct buf raw = {0}, payload = {0};

	spdy_headers_put(&raw, nv, n_pairs);
	buf_put32(&payload, stream_id & 0x7fffffffu);
	if (type == SPDY_SYN_STREAM) {
		buf_put32(&payload, 0);          /* associated-to */
		buf_append(&payload, "\0\0", 2); /* priority, slot */
	}
	spdy_z_deflate(z, raw.data, raw.len, &payload);
	spdy_put_control(b, type, flags, payload.data, payload.len);
	buf_release(&raw);
	buf_release(&payload);
}

void spdy_put_u32_pair(struct buf *b, uint16_t type, uint32_t a, uint32_t v)
{
	uint8_t p[8];
	put32(p, a);
	put32(p + 4, v);
	spdy_put_control(b, type, 0, p, 8);
}

void spdy_put_ping(struct buf *b, uint32_t id)
{
	uint8_t p[4];
	put32(p, id);
	spdy_put_control(b, SPDY_PING, 0, p, 4);
}

void spdy_put_settings(struct buf *b, const uint32_t *ids, const uint32_t *values, size_t n)
{
	struct buf p = {0};
	buf_put32(&p, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		buf_put32(&p, ids[i] & 0xffffffu);
		buf_put32(&p, values[i]);
	}
	spdy_put_control(b, SPDY_SETTINGS, 0, p.data, p.len);
	buf_release(&p);
}

/* ---- the session ---- */

enum {
	ROLE_NONE = -1, /* accepted, replied, not used (as kubelet does unknown types) */
	/* 0..4: the remotecommand channels (enum cri_stream_channel) */
	ROLE_PF_DATA = 10,
	ROLE_PF_ERROR = 11,
};

struct spdy_pair;

struct spdy_stream {
	uint32_t id;
	int role;
	bool remote_closed; /* the client's FIN or RST */
	bool local_closed;  /* our FIN went out (or the stream was reset) */
	bool fin_due;       /* our FIN follows the pending bytes */
	int64_t window;     /* what we may send (when the client keeps windows) */
	uint32_t unacked;   /* received, not yet given back */
	struct buf pending; /* output held back by the window */
	struct buf held;    /* input before the session (or its pair) started */
	struct spdy_pair *pair;
	struct spdy_stream *next;
};

struct spdy_pair {
	char *request_id;
	struct spdy_stream *data, *error;
	uint64_t deadline; /* until both streams are there */
	int channel;       /* the backend's connection number once open, else -1 */
	uint16_t port;
	bool done; /* no more callbacks: failed, refused or timed out */
	struct spdy_pair *next;
};

struct cs_spdy {
	struct spdy_zstream in_z, out_z;
	struct buf hb; /* an inflated header block */
	struct spdy_stream *streams;
	size_t n_streams;
	uint32_t last_id; /* the newest client stream */
	struct spdy_stream *role[5];
	unsigned expected, arrived;
	uint64_t streams_deadline;
	struct spdy_pair *pairs;
	bool goaway_received, goaway_sent;
	bool fc_stream, fc_session; /* the client keeps windows: honour them */
	int64_t initial_window;
	int64_t session_window;
	uint32_t session_unacked;
	size_t pending_total;
	bool finishing; /* finish() done: GOAWAY and close once pending is out */
	/* Inside a feed, the timer or a backend callback: streams and pairs are freed
	 * only when this is 0 (spdy_gc), so that no pointer on the stack dangles. */
	int busy;
};

static struct spdy_stream *stream_find(struct cs_spdy *sp, uint32_t id)
{
	for (struct spdy_stream *st = sp->streams; st; st = st->next)
		if (st->id == id)
			return st;
	return NULL;
}

static void stream_unlink_free(struct cri_stream_session *s, struct spdy_stream *st)
{
	struct cs_spdy *sp = s->spdy;

	for (struct spdy_stream **pp = &sp->streams; *pp; pp = &(*pp)->next)
		if (*pp == st) {
			*pp = st->next;
			sp->n_streams--;
			break;
		}
	sp->pending_total -= MIN(sp->pending_total, st->pending.len);
	if (st->held.len)
		cs_session_hold(s, -(ssize_t)st->held.len);
	buf_release(&st->pending);
	buf_release(&st->held);
	free(st);
}

static void put_rst(struct cri_stream_session *s, uint32_t id, uint32_t status)
{
	spdy_put_u32_pair(&s->conn->out, SPDY_RST_STREAM, id & 0x7fffffffu, status);
}

/* A protocol violation that ends the connection: GOAWAY(PROTOCOL_ERROR), as a SPDY
 * session error calls for, then the close. */
static void session_error(struct cri_stream_session *s, const char *why)
{
	struct cs_spdy *sp = s->spdy;

	if (!sp->goaway_sent) {
		spdy_put_u32_pair(&s->conn->out, SPDY_GOAWAY, sp->last_id,
		                  SPDY_GOAWAY_PROTOCOL_ERROR);
		sp->goaway_sent = true;
	}
	cs_session_abort(s, why);
}

static bool fc_active(const struct cs_spdy *sp)
{
	return sp->fc_stream || sp->fc_session;
}

static size_t send_room(const struct cs_spdy *sp, const struct spdy_stream *st)
{
	int64_t room = INT64_MAX;
	if (sp->fc_stream)
		room = MIN(room, st->window);
	if (sp->fc_session)
		room = MIN(room, sp->session_window);
	return room <= 0 ? 0 : (size_t)room;
}

/* Send from p (and FIN when fin and everything is out): as much as the windows let
 * out, in frames of at most 32 KiB; returns the bytes sent. */
static size_t stream_emit(struct cri_stream_session *s, struct spdy_stream *st, const uint8_t *p,
                          size_t n, bool fin)
{
	struct cs_spdy *sp = s->spdy;
	size_t sent = 0;

	while (sent < n) {
		size_t chunk = MIN(n - sent, (size_t)CS_SPDY_DATA_CHUNK);
		if (fc_active(sp))
			chunk = MIN(chunk, send_room(sp, st));
		if (chunk == 0)
			break;
		bool last = fin && sent + chunk == n;
		spdy_put_data(&s->conn->out, st->id, last ? SPDY_FLAG_FIN : 0, p + sent, chunk);
		st->window -= (int64_t)chunk;
		sp->session_window -= (int64_t)chunk;
		sent += chunk;
		if (last)
			st->local_closed = true;
	}
	if (fin && n == 0 && !st->local_closed) {
		spdy_put_data(&s->conn->out, st->id, SPDY_FLAG_FIN, NULL, 0);
		st->local_closed = true;
	}
	return sent;
}

static void stream_send(struct cri_stream_session *s, struct spdy_stream *st, const uint8_t *p,
                        size_t n, bool fin)
{
	struct cs_spdy *sp = s->spdy;
	size_t sent = 0;

	if (!st || st->local_closed || st->fin_due)
		return;
	/* Behind pending bytes, everything waits its turn. */
	if (st->pending.len == 0)
		sent = stream_emit(s, st, p, n, fin);
	if (sent < n) {
		buf_append(&st->pending, p + sent, n - sent);
		sp->pending_total += n - sent;
	}
	if (fin && !st->local_closed)
		st->fin_due = true; /* the FIN follows the pending bytes */
}

static bool stream_done(const struct spdy_stream *st)
{
	return !st || (st->remote_closed && st->local_closed && st->pending.len == 0);
}

static bool pair_finished(const struct spdy_pair *p)
{
	return (!p->deadline || p->done) && stream_done(p->data) && stream_done(p->error);
}

/* Free the pairs whose streams are closed both ways, and the unused streams. */
static void spdy_gc(struct cri_stream_session *s)
{
	struct cs_spdy *sp = s->spdy;

	if (!sp || sp->busy)
		return;
	for (struct spdy_pair **pp = &sp->pairs; *pp;) {
		struct spdy_pair *p = *pp;
		if (!pair_finished(p)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (p->data)
			stream_unlink_free(s, p->data);
		if (p->error)
			stream_unlink_free(s, p->error);
		free(p->request_id);
		free(p);
	}
	for (struct spdy_stream *st = sp->streams, *next; st; st = next) {
		next = st->next;
		if (st->role == ROLE_NONE && !st->pair && stream_done(st))
			stream_unlink_free(s, st);
	}
}

/* What the windows held back, now that they opened (or the session finishes). */
static void flush_pending(struct cri_stream_session *s)
{
	struct cs_spdy *sp = s->spdy;

	for (struct spdy_stream *st = sp->streams, *next; st; st = next) {
		next = st->next;
		if (st->pending.len == 0)
			continue;
		size_t n = st->pending.len;
		size_t sent = stream_emit(s, st, buf_head(&st->pending), n, st->fin_due);
		buf_consume(&st->pending, sent);
		sp->pending_total -= MIN(sp->pending_total, sent);
		if (st->pending.len == 0) {
			buf_release(&st->pending);
			st->fin_due = false;
		}
	}
	if (sp->finishing && sp->pending_total == 0 && !sp->goaway_sent) {
		spdy_put_u32_pair(&s->conn->out, SPDY_GOAWAY, sp->last_id, SPDY_GOAWAY_OK);
		sp->goaway_sent = true;
		cs_session_close(s);
	}
}

/* The streams we no longer send on: the pending bytes go, the FIN is as good as sent. */
static void stream_reset_local(struct cri_stream_session *s, struct spdy_stream *st)
{
	struct cs_spdy *sp = s->spdy;
	sp->pending_total -= MIN(sp->pending_total, st->pending.len);
	buf_release(&st->pending);
	st->fin_due = false;
	st->local_closed = true;
}

/* ---- port-forward pairs ---- */

static struct spdy_pair *pair_by_channel(const struct cs_spdy *sp, int channel)
{
	for (struct spdy_pair *p = sp->pairs; p; p = p->next)
		if (p->channel == channel)
			return p;
	return NULL;
}

/* The pair's last words: msg on its error stream (when it has one), FIN on both. */
static void pair_close(struct cri_stream_session *s, struct spdy_pair *p, const char *msg)
{
	if (p->error) {
		if (msg)
			stream_send(s, p->error, (const uint8_t *)msg, strlen(msg), false);
		stream_send(s, p->error, NULL, 0, true);
	}
	if (p->data)
		stream_send(s, p->data, NULL, 0, true);
	p->done = true;
	p->deadline = 0;
}

/* Both streams are there: a new connection for the backend. */
static void pair_open(struct cri_stream_session *s, struct spdy_pair *p)
{
	struct spdy_stream *d = p->data;
	_cleanup_free_ char *msg = NULL;

	p->deadline = 0;
	cs_server_rearm(s->conn->srv);
	if (!cs_session_port_allowed(s, p->port)) {
		msg = xasprintf("port %u is not forwarded by this port-forward request", p->port);
		pair_close(s, p, msg);
		return;
	}
	p->channel = s->next_conn++;
	cs_deliver_port_open(s, p->channel);
	if (s->ended || p->done)
		return;
	if (d->held.len) {
		size_t n = d->held.len;
		cs_deliver_data(s, p->channel, buf_head(&d->held), n);
		buf_release(&d->held);
		cs_session_hold(s, -(ssize_t)n);
	}
	if (!s->ended && !p->done && d->remote_closed)
		cs_deliver_close_input(s, p->channel);
}

static void pf_stream(struct cri_stream_session *s, uint32_t id, uint8_t flags,
                      const struct spdy_header *h, size_t nh)
{
	struct cs_spdy *sp = s->spdy;
	char type[16], port_s[16], rid[128];
	_cleanup_free_ char *err = NULL;
	unsigned long port;
	char *end;

	/* kubelet's httpStreamReceived: a port and a stream type, or the stream is
	 * reset (spdystream's Reset: RST_STREAM CANCEL). */
	if (!spdy_header_get(h, nh, "port", port_s, sizeof(port_s)) || !*port_s ||
	    !spdy_header_get(h, nh, "streamtype", type, sizeof(type))) {
		put_rst(s, id, SPDY_RST_CANCEL);
		return;
	}
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (*end || errno || port < 1 || port > 65535 || port_s[0] == '-' || port_s[0] == '+' ||
	    (strcmp(type, "data") != 0 && strcmp(type, "error") != 0)) {
		put_rst(s, id, SPDY_RST_CANCEL);
		return;
	}
	bool is_data = strcmp(type, "data") == 0;
	if (!spdy_header_get(h, nh, "requestid", rid, sizeof(rid)) || !*rid) {
		/* Old clients send no requestID: kubelet pairs the error stream N with the
		 * data stream N+2. */
		snprintf(rid, sizeof(rid), "%u", is_data ? id - 2 : id);
	}

	struct spdy_stream *st = xcalloc(1, sizeof(*st));
	st->id = id;
	st->role = is_data ? ROLE_PF_DATA : ROLE_PF_ERROR;
	st->window = sp->initial_window;
	st->remote_closed = flags & SPDY_FLAG_FIN;
	st->local_closed = flags & SPDY_FLAG_UNIDIRECTIONAL;
	st->next = sp->streams;
	sp->streams = st;
	sp->n_streams++;
	spdy_put_headers_frame(&s->conn->out, &sp->out_z, SPDY_SYN_REPLY, id, 0, NULL, 0);

	struct spdy_pair *p = NULL;
	for (p = sp->pairs; p; p = p->next)
		if (strcmp(p->request_id, rid) == 0 && !p->done)
			break;
	if (!p) {
		p = xcalloc(1, sizeof(*p));
		p->request_id = xstrdup(rid);
		p->channel = -1;
		p->deadline = cs_now_ms() + cs_server_stream_timeout(s->conn->srv);
		p->next = sp->pairs;
		sp->pairs = p;
		cs_server_rearm(s->conn->srv);
	}
	if ((is_data && p->data) || (!is_data && p->error) || p->channel >= 0) {
		/* kubelet writes this to the pair's error stream; the stream itself is kept
		 * (replied) and unused. */
		st->role = ROLE_NONE;
		err =
		    xasprintf("error processing stream for request %s: %s stream already assigned",
		              rid, type);
		if (p->error && !p->error->local_closed)
			stream_send(s, p->error, (const uint8_t *)err, strlen(err), false);
		return;
	}
	st->pair = p;
	if (is_data) {
		p->data = st;
		p->port = (uint16_t)port;
	} else {
		p->error = st;
	}
	if (p->data && p->error)
		pair_open(s, p);
}

/* A remotecommand stream (kubelet's waitForStreams). */
static void rc_stream(struct cri_stream_session *s, uint32_t id, uint8_t flags,
                      const struct spdy_header *h, size_t nh)
{
	static const char *const types[] = {"stdin", "stdout", "stderr", "error", "resize"};
	struct cs_spdy *sp = s->spdy;
	char type[16];
	int role = ROLE_NONE;

	if (spdy_header_get(h, nh, "streamtype", type, sizeof(type)))
		for (int i = 0; i < 5; i++)
			if (strcmp(type, types[i]) == 0)
				role = i;
	/* Only the streams the request asked for count (and each once). */
	if (role >= 0) {
		bool wanted = role < 3                ? s->reg->want[role]
		              : role == CRI_CH_RESIZE ? s->reg->tty && s->version >= 3
		                                      : true;
		if (!wanted || sp->role[role] || s->start_called)
			role = ROLE_NONE;
	}

	struct spdy_stream *st = xcalloc(1, sizeof(*st));
	st->id = id;
	st->role = role;
	st->window = sp->initial_window;
	st->remote_closed = flags & SPDY_FLAG_FIN;
	st->local_closed = flags & SPDY_FLAG_UNIDIRECTIONAL;
	st->next = sp->streams;
	sp->streams = st;
	sp->n_streams++;
	spdy_put_headers_frame(&s->conn->out, &sp->out_z, SPDY_SYN_REPLY, id, 0, NULL, 0);
	if (role == ROLE_NONE)
		return;
	sp->role[role] = st;
	if (role < 3)
		s->has[role] = true;
	if (++sp->arrived < sp->expected)
		return;

	cs_server_rearm(s->conn->srv); /* the streams' deadline is no more */
	cs_session_start(s);
	/* What came before the start. */
	struct spdy_stream *in = sp->role[CRI_CH_STDIN], *rs = sp->role[CRI_CH_RESIZE];
	if (in && in->held.len && !s->ended) {
		size_t n = in->held.len;
		cs_deliver_data(s, CRI_CH_STDIN, buf_head(&in->held), n);
		buf_release(&in->held);
		cs_session_hold(s, -(ssize_t)n);
	}
	if (in && in->remote_closed && !s->ended)
		cs_deliver_close_input(s, CRI_CH_STDIN);
	if (rs && rs->held.len && !s->ended) {
		size_t n = rs->held.len;
		cs_deliver_resize(s, buf_head(&rs->held), n);
		buf_release(&rs->held);
		cs_session_hold(s, -(ssize_t)n);
	}
}

/* Inflate a frame's header block (every one, to keep the shared zlib stream in step)
 * and split it. false: the session is ended. */
static bool frame_headers(struct cri_stream_session *s, const uint8_t *p, size_t n,
                          struct spdy_header *h, size_t *nh)
{
	struct cs_spdy *sp = s->spdy;
	int r;

	sp->hb.start = sp->hb.len = 0;
	r = spdy_z_inflate(&sp->in_z, p, n, CS_SPDY_HEADERS_MAX, &sp->hb);
	if (r == -EMSGSIZE) {
		session_error(s, "a SPDY header block inflates beyond 16 KiB");
		return false;
	}
	if (r < 0 ||
	    spdy_headers_parse(buf_head(&sp->hb), sp->hb.len, h, CS_SPDY_MAX_HEADERS, nh) < 0) {
		session_error(s, "a SPDY header block does not decode");
		return false;
	}
	return true;
}

static void on_syn_stream(struct cri_stream_session *s, const struct spdy_frame *f)
{
	struct cs_spdy *sp = s->spdy;
	struct spdy_header h[CS_SPDY_MAX_HEADERS];
	size_t nh = 0;
	uint32_t id;

	if (f->length < 10) {
		session_error(s, "a SYN_STREAM shorter than its fields");
		return;
	}
	id = be32(f->payload) & 0x7fffffffu;
	if (!frame_headers(s, f->payload + 10, f->length - 10, h, &nh))
		return;
	/* spdystream's validateStreamId: client streams are odd and increasing. */
	if (id == 0 || id % 2 == 0 || id <= sp->last_id) {
		put_rst(s, id, SPDY_RST_PROTOCOL_ERROR);
		return;
	}
	sp->last_id = id;
	if (sp->goaway_received || s->ended || sp->finishing ||
	    sp->n_streams >= CS_SPDY_MAX_STREAMS) {
		put_rst(s, id, SPDY_RST_REFUSED_STREAM);
		return;
	}
	if (s->reg->kind == CRI_STREAM_PORTFORWARD)
		pf_stream(s, id, f->flags, h, nh);
	else
		rc_stream(s, id, f->flags, h, nh);
}

/* The client is done sending on st (FIN, or RST when reset). The backend hears of it
 * last: it may do anything then. */
static void stream_remote_end(struct cri_stream_session *s, struct spdy_stream *st, bool reset)
{
	struct spdy_pair *p = st->pair;
	bool was_closed = st->remote_closed;

	if (was_closed && !reset)
		return;
	st->remote_closed = true;
	if (reset)
		stream_reset_local(s, st);
	if (p && p->channel < 0 && reset) {
		pair_close(s, p, NULL); /* half a pair reset: abandoned */
		return;
	}
	if (st->role == CRI_CH_STDIN && !was_closed && s->started) {
		cs_deliver_close_input(s, CRI_CH_STDIN);
	} else if (st->role == ROLE_PF_DATA && p && p->channel >= 0 && !p->done) {
		if (reset) {
			p->done = true;
			if (p->error)
				stream_send(s, p->error, NULL, 0, true);
			cs_deliver_port_reset(s, p->channel);
		} else if (!was_closed) {
			cs_deliver_close_input(s, p->channel);
		}
	}
}

static void on_data(struct cri_stream_session *s, const struct spdy_frame *f)
{
	struct cs_spdy *sp = s->spdy;
	struct spdy_stream *st = stream_find(sp, f->stream_id);

	/* Give back what arrived, whatever becomes of it. */
	sp->session_unacked += f->length;
	if (sp->session_unacked >= CS_SPDY_WINDOW / 2) {
		spdy_put_u32_pair(&s->conn->out, SPDY_WINDOW_UPDATE, 0, sp->session_unacked);
		sp->session_unacked = 0;
	}
	if (!st || st->remote_closed)
		return; /* spdystream drops these too */
	st->unacked += f->length;
	if (st->unacked >= CS_SPDY_WINDOW / 2 && !(f->flags & SPDY_FLAG_FIN)) {
		spdy_put_u32_pair(&s->conn->out, SPDY_WINDOW_UPDATE, st->id, st->unacked);
		st->unacked = 0;
	}
	if (f->length) {
		if (st->role == CRI_CH_STDIN || st->role == CRI_CH_RESIZE) {
			if (!s->start_called) {
				if (!cs_session_hold(s, (ssize_t)f->length))
					return;
				buf_append(&st->held, f->payload, f->length);
			} else if (st->role == CRI_CH_STDIN) {
				cs_deliver_data(s, CRI_CH_STDIN, f->payload, f->length);
			} else {
				cs_deliver_resize(s, f->payload, f->length);
			}
		} else if (st->role == ROLE_PF_DATA && st->pair && !st->pair->done) {
			if (st->pair->channel < 0) {
				if (!cs_session_hold(s, (ssize_t)f->length))
					return;
				buf_append(&st->held, f->payload, f->length);
			} else {
				cs_deliver_data(s, st->pair->channel, f->payload, f->length);
			}
		}
	}
	if (f->flags & SPDY_FLAG_FIN)
		stream_remote_end(s, st, false);
}

static void on_window_update(struct cri_stream_session *s, const struct spdy_frame *f)
{
	struct cs_spdy *sp = s->spdy;
	uint32_t id, delta;

	if (f->length != 8) {
		session_error(s, "a WINDOW_UPDATE of the wrong size");
		return;
	}
	id = be32(f->payload) & 0x7fffffffu;
	delta = be32(f->payload + 4) & 0x7fffffffu;
	if (delta == 0)
		return;
	if (id == 0) {
		sp->fc_session = true;
		sp->session_window += delta;
		if (sp->session_window > 0x7fffffff) {
			session_error(s, "the session's flow-control window overflowed");
			return;
		}
	} else {
		struct spdy_stream *st = stream_find(sp, id);
		sp->fc_stream = true;
		if (!st)
			return;
		st->window += delta;
		if (st->window > 0x7fffffff) {
			put_rst(s, id, SPDY_RST_FLOW_CONTROL_ERROR);
			stream_remote_end(s, st, true);
			return;
		}
	}
	flush_pending(s);
}

static void on_settings(struct cri_stream_session *s, const struct spdy_frame *f)
{
	struct cs_spdy *sp = s->spdy;
	uint32_t n;

	if (f->length < 4 || (n = be32(f->payload), (uint64_t)n * 8 + 4 != f->length)) {
		session_error(s, "a SETTINGS frame of the wrong size");
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = be32(f->payload + 4 + 8 * i) & 0xffffffu;
		uint32_t v = be32(f->payload + 8 + 8 * i);
		if (id != SPDY_SETTINGS_INITIAL_WINDOW_SIZE)
			continue;
		if (v > 0x7fffffff) {
			session_error(s, "an initial window size over 2^31-1");
			return;
		}
		int64_t delta = (int64_t)v - sp->initial_window;
		sp->initial_window = v;
		sp->fc_stream = true;
		for (struct spdy_stream *st = sp->streams; st; st = st->next)
			st->window += delta;
	}
	flush_pending(s);
}

static void on_control(struct cri_stream_session *s, const struct spdy_frame *f)
{
	struct cs_spdy *sp = s->spdy;
	struct spdy_header h[CS_SPDY_MAX_HEADERS];
	size_t nh;

	switch (f->type) {
	case SPDY_SYN_STREAM:
		on_syn_stream(s, f);
		break;
	case SPDY_SYN_REPLY:
	case SPDY_HEADERS:
		/* We open no streams; HEADERS add nothing we use. Inflated all the same. */
		if (f->length < 4) {
			session_error(s, "a header frame shorter than its fields");
			return;
		}
		if (!frame_headers(s, f->payload + 4, f->length - 4, h, &nh))
			return;
		if (f->type == SPDY_HEADERS && (f->flags & SPDY_FLAG_FIN)) {
			struct spdy_stream *st = stream_find(sp, be32(f->payload) & 0x7fffffffu);
			if (st)
				stream_remote_end(s, st, false);
		}
		break;
	case SPDY_RST_STREAM: {
		if (f->length != 8) {
			session_error(s, "a RST_STREAM of the wrong size");
			return;
		}
		struct spdy_stream *st = stream_find(sp, be32(f->payload) & 0x7fffffffu);
		if (st)
			stream_remote_end(s, st, true);
		break;
	}
	case SPDY_SETTINGS:
		on_settings(s, f);
		break;
	case SPDY_PING:
		if (f->length != 4) {
			session_error(s, "a PING of the wrong size");
			return;
		}
		/* Odd ids are the client's pings; even ones would answer ours (we send
		 * none). */
		if (be32(f->payload) & 1)
			spdy_put_ping(&s->conn->out, be32(f->payload));
		break;
	case SPDY_GOAWAY:
		sp->goaway_received = true;
		break;
	case SPDY_WINDOW_UPDATE:
		on_window_update(s, f);
		break;
	default:
		break; /* unknown control frames are ignored (SPDY/3 2.2.1) */
	}
}

void cs_spdy_feed(struct cri_stream_session *s)
{
	struct cs_conn *c = s->conn;

	s->spdy->busy++;
	while (!c->dead && c->in.len >= 8) {
		struct spdy_frame f;
		size_t size;
		int r;

		if (c->in_paused && c->state == CS_UPGRADED)
			break;
		if (s->ended && !(s->spdy->finishing && !s->spdy->goaway_sent))
			break; /* nothing more to read for: the close is due */
		r = spdy_frame_parse(buf_head(&c->in), c->in.len, CS_SPDY_DATA_MAX,
		                     CS_SPDY_CTRL_MAX, &f, &size);
		if (r == 0)
			break;
		if (r < 0) {
			const uint8_t *h = buf_head(&c->in);
			_cleanup_free_ char *why =
			    xasprintf("a SPDY %s frame of %u bytes is over the limit",
			              (h[0] & 0x80) ? "control" : "DATA", be32(h + 4) & 0xffffffu);
			buf_consume(&c->in, c->in.len);
			session_error(s, why);
			break;
		}
		if (f.control)
			on_control(s, &f);
		else
			on_data(s, &f);
		buf_consume(&c->in, size);
	}
	s->spdy->busy--;
	spdy_gc(s);
}

/* ---- the session's API ---- */

void cs_spdy_open(struct cri_stream_session *s)
{
	struct cs_spdy *sp = xcalloc(1, sizeof(*sp));

	spdy_z_init(&sp->in_z, true);
	spdy_z_init(&sp->out_z, false);
	sp->initial_window = CS_SPDY_WINDOW;
	sp->session_window = CS_SPDY_WINDOW;
	s->spdy = sp;
	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		sp->busy++;
		cs_session_start(s);
		sp->busy--;
		return;
	}
	sp->expected = 1;
	for (int i = 0; i < 3; i++)
		sp->expected += s->reg->want[i];
	if (s->reg->tty && s->version >= 3)
		sp->expected++;
	sp->streams_deadline = cs_now_ms() + cs_server_stream_timeout(s->conn->srv);
	cs_server_rearm(s->conn->srv);
}

void cs_spdy_write(struct cri_stream_session *s, int channel, const uint8_t *p, size_t n)
{
	struct cs_spdy *sp = s->spdy;

	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		struct spdy_pair *pr = pair_by_channel(sp, channel);
		if (pr && !pr->done)
			stream_send(s, pr->data, p, n, false);
	} else if (channel == CRI_CH_STDOUT || channel == CRI_CH_STDERR) {
		stream_send(s, sp->role[channel], p, n, false);
	}
	spdy_gc(s);
}

void cs_spdy_close_output(struct cri_stream_session *s, int channel)
{
	struct cs_spdy *sp = s->spdy;

	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		struct spdy_pair *pr = pair_by_channel(sp, channel);
		if (!pr || pr->done)
			return;
		/* kubelet closes both streams when the forward is over. */
		stream_send(s, pr->data, NULL, 0, true);
		stream_send(s, pr->error, NULL, 0, true);
	} else if (channel == CRI_CH_STDOUT || channel == CRI_CH_STDERR) {
		stream_send(s, sp->role[channel], NULL, 0, true);
	}
	spdy_gc(s);
}

void cs_spdy_port_error(struct cri_stream_session *s, int channel, const char *msg)
{
	struct spdy_pair *pr = pair_by_channel(s->spdy, channel);

	if (!pr || pr->done)
		return;
	pair_close(s, pr, msg);
	spdy_gc(s);
}

void cs_spdy_finish(struct cri_stream_session *s, const char *status, bool goaway_error)
{
	struct cs_spdy *sp = s->spdy;

	if (sp->finishing)
		return;
	if (s->reg->kind == CRI_STREAM_PORTFORWARD) {
		for (struct spdy_pair *p = sp->pairs, *next; p; p = next) {
			next = p->next;
			if (!p->done)
				pair_close(s, p, status);
		}
	} else if (status && sp->role[CRI_CH_ERROR]) {
		stream_send(s, sp->role[CRI_CH_ERROR], (const uint8_t *)status, strlen(status),
		            false);
	}
	/* Everything we can send on gets its FIN (after its pending bytes). */
	for (struct spdy_stream *st = sp->streams; st; st = st->next)
		stream_send(s, st, NULL, 0, true);
	sp->finishing = true;
	if (goaway_error) {
		session_error(s, NULL);
		return;
	}
	flush_pending(s);
}

size_t cs_spdy_pending(const struct cri_stream_session *s)
{
	return s->spdy ? s->spdy->pending_total : 0;
}

uint16_t cs_spdy_port_of(const struct cri_stream_session *s, int channel)
{
	struct spdy_pair *p = pair_by_channel(s->spdy, channel);
	return p ? p->port : 0;
}

uint64_t cs_spdy_deadline(const struct cri_stream_session *s)
{
	struct cs_spdy *sp = s->spdy;
	uint64_t d = 0;

	if (s->ended)
		return 0;
	if (s->reg->kind != CRI_STREAM_PORTFORWARD && !s->start_called)
		d = sp->streams_deadline;
	for (struct spdy_pair *p = sp->pairs; p; p = p->next)
		if (p->deadline && !p->done && (!d || p->deadline < d))
			d = p->deadline;
	return d;
}

void cs_spdy_timer(struct cri_stream_session *s, uint64_t now)
{
	struct cs_spdy *sp = s->spdy;

	if (s->ended || sp->busy)
		return;
	if (s->reg->kind != CRI_STREAM_PORTFORWARD && !s->start_called &&
	    sp->streams_deadline <= now) {
		struct hull_error e = {-ETIMEDOUT,
		                       (char *)"timed out waiting for client to create streams"};
		log_warn("cri: stream: %s session: the client opened %u of %u streams in %u ms",
		         s->reg->kind == CRI_STREAM_EXEC ? "exec" : "attach", sp->arrived,
		         sp->expected, cs_server_stream_timeout(s->conn->srv));
		/* Never started: unused() follows, not gone(). */
		cri_stream_session_end(s, 0, &e);
		return;
	}
	for (struct spdy_pair *p = sp->pairs, *next; p; p = next) {
		next = p->next;
		if (!p->deadline || p->done || p->deadline > now)
			continue;
		_cleanup_free_ char *msg =
		    xasprintf("(request=%s) timed out waiting for streams", p->request_id);
		pair_close(s, p, msg);
		if (p->data && !p->data->remote_closed) {
			put_rst(s, p->data->id, SPDY_RST_CANCEL);
			p->data->remote_closed = true;
		}
	}
	spdy_gc(s);
}

void cs_spdy_free(struct cri_stream_session *s)
{
	struct cs_spdy *sp = s->spdy;

	if (!sp)
		return;
	while (sp->pairs) {
		struct spdy_pair *p = sp->pairs;
		sp->pairs = p->next;
		free(p->request_id);
		free(p);
	}
	while (sp->streams) {
		struct spdy_stream *st = sp->streams;
		sp->streams = st->next;
		buf_release(&st->pending);
		buf_release(&st->held);
		free(st);
	}
	spdy_z_end(&sp->in_z);
	spdy_z_end(&sp->out_z);
	buf_release(&sp->hb);
	free(sp);
	s->spdy = NULL;
}
