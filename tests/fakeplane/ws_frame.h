/* multica-fakeplane: RFC 6455 framing, written by hand on purpose: the
 * emulator must also be able to build frames no library would (bad
 * opcodes, reserved bits, lengths it never sends). Shared with the tests'
 * tiny client. No state, no I/O.
 *
 * Error convention: parse returns 0 for "need more bytes", -1 for a header
 * that can never be valid (a 64-bit length with the top bit set), else the
 * header length. */
#ifndef FP_WS_FRAME_H
#define FP_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	FP_WS_CONT = 0x0, FP_WS_TEXT = 0x1, FP_WS_BINARY = 0x2,
	FP_WS_CLOSE = 0x8, FP_WS_PING = 0x9, FP_WS_PONG = 0xA,
};

#define FP_WS_HEADER_MAX 14
#define FP_WS_ACCEPT_LEN 28   /* base64 of a SHA-1 */

struct fp_ws_header {
	bool fin;
	unsigned rsv;        /* the three reserved bits, 0..7 */
	unsigned opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;        /* payload length as declared */
};

/* Parses the header at buf[0..n). */
int fp_ws_header_parse(const uint8_t *buf, size_t n, struct fp_ws_header *h);
/* Writes a header for h into out; returns its length. */
size_t fp_ws_header_encode(uint8_t out[FP_WS_HEADER_MAX], const struct fp_ws_header *h);
/* XORs data with the mask, starting at byte offset off of the payload. */
void fp_ws_mask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t off);
/* Allocates one whole frame (header + payload, masked when mask != NULL);
 * *out_len gets its size. */
uint8_t *fp_ws_frame_build(unsigned opcode, bool fin, const void *payload, size_t len,
			   const uint8_t *mask, size_t *out_len);
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)). */
void fp_ws_accept(const char *key, char out[FP_WS_ACCEPT_LEN + 1]);
/* SHA-1 (the handshake needs it and nothing here links a library for it). */
void fp_ws_sha1(const void *data, size_t len, uint8_t out[20]);

#endif
