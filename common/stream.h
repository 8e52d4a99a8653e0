/* SPDX-License-Identifier: MIT */
#pragma once

/* The stdio and port-forward stream protocol both ends follow (docs/agent-protocol.md,
 * docs/decisions.md): StdioData frames on a call's ttrpc stream, credit based both ways.
 * A receiver grants STREAM_WINDOW bytes up front and grants again what it has consumed
 * once that reaches STREAM_REGRANT, so a sender never has more than the window in flight
 * and a receiver never buffers more than it. Bytes beyond the credit a sender holds are
 * a protocol violation: the receiver cuts the stream. */
#define STREAM_WINDOW (4u << 20)
#define STREAM_REGRANT (STREAM_WINDOW / 4)
/* The largest data payload one StdioData frame carries. */
#define STREAM_CHUNK (256u << 10)
