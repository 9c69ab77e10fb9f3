/* IPC framing between the supervisor and a worker, on a stream socketpair.
 *
 * Every frame is an 8-byte header followed by a payload:
 *   u16 type (big-endian) | u16 reserved, must be 0 | u32 payload length (big-endian)
 * A length over the type's maximum (mc_ipc_type_max_payload: MC_IPC_MAX_PAYLOAD,
 * or MC_IPC_TASK_MAX for a TASK), a non-zero reserved field or an unknown
 * type is a protocol error: the receiving side treats the peer as broken
 * (the supervisor kills that worker; a worker exits).
 *
 * Both directions are non-blocking. The writer keeps a queue with a hard
 * cap: a peer that stops reading until the cap is reached is treated as hung.
 * Big frames (TASK) have an allowance of their own (MC_IPC_BIG_WQUEUE_MAX)
 * beside the MC_IPC_WQUEUE_MAX of the others, so a few large tasks never
 * crowd out a PING. A reader or writer that grew for a big frame gives the
 * memory back once it is empty.
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
#define MC_IPC_BIG_WQUEUE_MAX (32u * 1024u * 1024u)  /* queued big (TASK) frames */

/* The largest payload of a type (ipc/messages.c knows the types). */
uint32_t mc_ipc_type_max_payload(uint16_t type);

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
	uint8_t *buf;           /* heap; grows to the frame at hand (at most
				   the header and its type's maximum), shrinks
				   back once that frame is consumed */
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
	uint8_t *buf;   /* heap, grows up to both allowances; freed when empty
			   after it grew past a normal queue's size */
	size_t cap;
	size_t head;    /* first unsent byte */
	size_t tail;    /* end of queued data */
	size_t frame_at;   /* start of the first frame not wholly sent (<= head) */
	size_t big_bytes;  /* bytes of queued frames over MC_IPC_MAX_PAYLOAD's class */
	size_t small_bytes;/* ... and of the others */
};

void mc_ipc_writer_init(struct mc_ipc_writer *w);
/* Wipes and frees the queue. */
void mc_ipc_writer_free(struct mc_ipc_writer *w);

/* Queues one frame (copies the payload). -1 with EMSGSIZE when len is over
 * the type's maximum, ENOBUFS when the queue would exceed its allowance
 * (big frames: MC_IPC_BIG_WQUEUE_MAX; others: MC_IPC_WQUEUE_MAX), ENOMEM. */
int mc_ipc_writer_queue(struct mc_ipc_writer *w, uint16_t type, const void *payload,
			uint32_t len);
/* Writes as much as fd accepts without blocking. Returns the bytes still
 * queued (0: all sent), or -1 with errno (EPIPE, ECONNRESET, ...). */
ssize_t mc_ipc_writer_flush(struct mc_ipc_writer *w, int fd);
size_t mc_ipc_writer_pending(const struct mc_ipc_writer *w);
/* At exit: writes what is queued, waiting for the peer at most budget_ms
 * (a process's last frames: REPORT, STOPPED). */
void mc_ipc_writer_drain(struct mc_ipc_writer *w, int fd, int budget_ms);

/* Header codec, exposed for tests and fuzzing. */
void mc_ipc_header_encode(uint8_t out[MC_IPC_HEADER_SIZE], uint16_t type, uint32_t len);
/* 0, or -1 with EPROTO (reserved != 0, unknown type) or EMSGSIZE (over the
 * type's maximum). */
int mc_ipc_header_decode(const uint8_t in[MC_IPC_HEADER_SIZE], mc_ipc_type_ok_fn type_ok,
			 uint16_t *type, uint32_t *len);

#endif
