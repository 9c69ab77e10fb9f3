/* IPC framing between the supervisor and a worker, on a stream socketpair.
 *
 * Every frame is an 8-byte header followed by a payload:
 *   u16 type (big-endian) | u16 reserved, must be 0 | u32 payload length (big-endian)
 * A length over MC_IPC_MAX_PAYLOAD, a non-zero reserved field or an unknown
 * type is a protocol error: the receiving side treats the peer as broken
 * (the supervisor kills that worker; a worker exits).
 *
 * Both directions are non-blocking. The writer keeps a queue with a hard
 * cap: a peer that stops reading until the cap is reached is treated as hung.
 *
 * Error convention: 0 / -1 with errno; EPROTO for a protocol violation,
 * EMSGSIZE for an oversized frame, ENOBUFS for a full write queue. */
#ifndef MC_IPC_FRAME_H
#define MC_IPC_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MC_IPC_HEADER_SIZE   8
#define MC_IPC_MAX_PAYLOAD   (64u * 1024u)
#define MC_IPC_WQUEUE_MAX    (1024u * 1024u)

/* A decoded frame; payload points into the reader's buffer and is valid until
 * the next mc_ipc_reader_* call. */
struct mc_ipc_frame {
	uint16_t type;
	uint32_t len;
	const uint8_t *payload;
};

/* type_ok(type) says whether a type number is known to this side. */
typedef int (*mc_ipc_type_ok_fn)(uint16_t type);

struct mc_ipc_reader {
	uint8_t *buf;           /* heap; grows to the frame at hand, at most
				   MC_IPC_HEADER_SIZE + MC_IPC_MAX_PAYLOAD */
	size_t cap;
	size_t used;            /* bytes in buf */
	size_t consumed;        /* bytes of buf already returned as frames */
	mc_ipc_type_ok_fn type_ok;
	int eof;
};

/* Allocates the reader's buffer. Free with mc_ipc_reader_free. */
int mc_ipc_reader_init(struct mc_ipc_reader *r, mc_ipc_type_ok_fn type_ok);
/* Wipes (payloads may hold the token) and frees the buffer. */
void mc_ipc_reader_free(struct mc_ipc_reader *r);

/* Reads what fd has without blocking. Returns 1 if data arrived, 0 if none
 * (EAGAIN) or at EOF (r->eof set), -1 with errno on a read error. */
int mc_ipc_reader_fill(struct mc_ipc_reader *r, int fd);

/* Takes the next complete frame from the buffer. Returns 1 and fills *f, 0
 * when no complete frame is buffered, -1 with errno EPROTO/EMSGSIZE when the
 * next header is invalid. Payloads handed out are wiped when the buffer is
 * compacted (on the next fill) and on free. */
int mc_ipc_reader_next(struct mc_ipc_reader *r, struct mc_ipc_frame *f);

/* Bytes buffered that do not yet form a frame (EOF with leftovers is a
 * truncated frame). */
size_t mc_ipc_reader_pending(const struct mc_ipc_reader *r);

struct mc_ipc_writer {
	uint8_t *buf;   /* heap, grows up to MC_IPC_WQUEUE_MAX */
	size_t cap;
	size_t head;    /* first unsent byte */
	size_t tail;    /* end of queued data */
};

void mc_ipc_writer_init(struct mc_ipc_writer *w);
/* Wipes and frees the queue. */
void mc_ipc_writer_free(struct mc_ipc_writer *w);

/* Queues one frame (copies the payload). -1 with EMSGSIZE when len is over
 * the maximum, ENOBUFS when the queue would exceed its cap, ENOMEM. */
int mc_ipc_writer_queue(struct mc_ipc_writer *w, uint16_t type, const void *payload,
			uint32_t len);
/* Writes as much as fd accepts without blocking. Returns the bytes still
 * queued (0: all sent), or -1 with errno (EPIPE, ECONNRESET, ...). */
ssize_t mc_ipc_writer_flush(struct mc_ipc_writer *w, int fd);
size_t mc_ipc_writer_pending(const struct mc_ipc_writer *w);

/* Header codec, exposed for tests and fuzzing. */
void mc_ipc_header_encode(uint8_t out[MC_IPC_HEADER_SIZE], uint16_t type, uint32_t len);
/* 0, or -1 with EPROTO (reserved != 0, unknown type) or EMSGSIZE. */
int mc_ipc_header_decode(const uint8_t in[MC_IPC_HEADER_SIZE], mc_ipc_type_ok_fn type_ok,
			 uint16_t *type, uint32_t *len);

#endif
