#include "ipc/frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

/* Frames are small; a reader starts small and grows only for a large one
 * (a thousand idle workers' readers stay a few MiB in the supervisor). */
#define READER_INITIAL 4096
/* A buffer past this grew for a big frame: given back once empty. */
#define KEEP_MAX (MC_IPC_HEADER_SIZE + MC_IPC_MAX_PAYLOAD)
/* The writer keeps up to this much once empty (a normal queue's peak). */
#define WRITER_KEEP_MAX (2 * KEEP_MAX)

void mc_ipc_header_encode(uint8_t out[MC_IPC_HEADER_SIZE], uint16_t type, uint32_t len)
{
	out[0] = (uint8_t)(type >> 8);
	out[1] = (uint8_t)type;
	out[2] = 0;
	out[3] = 0;
	out[4] = (uint8_t)(len >> 24);
	out[5] = (uint8_t)(len >> 16);
	out[6] = (uint8_t)(len >> 8);
	out[7] = (uint8_t)len;
}

int mc_ipc_header_decode(const uint8_t in[MC_IPC_HEADER_SIZE], mc_ipc_type_ok_fn type_ok,
			 uint16_t *type, uint32_t *len)
{
	uint16_t t = (uint16_t)((in[0] << 8) | in[1]);
	uint32_t l = ((uint32_t)in[4] << 24) | ((uint32_t)in[5] << 16) |
		     ((uint32_t)in[6] << 8) | (uint32_t)in[7];
	if (in[2] != 0 || in[3] != 0 || (type_ok != NULL && !type_ok(t))) {
		errno = EPROTO;
		return -1;
	}
	if (l > mc_ipc_type_max_payload(t)) {
		errno = EMSGSIZE;
		return -1;
	}
	*type = t;
	*len = l;
	return 0;
}

int mc_ipc_reader_init(struct mc_ipc_reader *r, mc_ipc_type_ok_fn type_ok)
{
	memset(r, 0, sizeof *r);
	r->buf = malloc(READER_INITIAL);
	if (r->buf == NULL)
		return -1;
	r->cap = READER_INITIAL;
	r->type_ok = type_ok;
	return 0;
}

void mc_ipc_reader_free(struct mc_ipc_reader *r)
{
	if (r->buf != NULL) {
		sodium_memzero(r->buf, r->cap);
		free(r->buf);
	}
	r->buf = NULL;
	r->cap = r->used = r->consumed = 0;
}

/* A buffer that grew for a big frame goes back to its initial size once
 * what it holds fits (a thousand workers must not each keep 8 MiB). */
static void reader_shrink(struct mc_ipc_reader *r)
{
	if (r->cap <= KEEP_MAX || r->used > READER_INITIAL)
		return;
	uint8_t *nb = malloc(READER_INITIAL);
	if (nb == NULL)
		return; /* keep the big one */
	memcpy(nb, r->buf, r->used);
	sodium_memzero(r->buf, r->cap);
	free(r->buf);
	r->buf = nb;
	r->cap = READER_INITIAL;
}

/* Drops the frames already handed out, wiping them, so the buffer has room. */
static void reader_compact(struct mc_ipc_reader *r)
{
	if (r->consumed == 0)
		return;
	size_t rest = r->used - r->consumed;
	memmove(r->buf, r->buf + r->consumed, rest);
	sodium_memzero(r->buf + rest, r->used - rest);
	r->used = rest;
	r->consumed = 0;
	reader_shrink(r);
}

/* Grows the buffer to hold the frame whose header is buffered. Returns 0,
 * or -1 when it needs no room (complete, or an invalid header that
 * mc_ipc_reader_next will report) or memory ran out. */
static int reader_grow(struct mc_ipc_reader *r)
{
	uint16_t type;
	uint32_t len;
	if (r->used < MC_IPC_HEADER_SIZE ||
	    mc_ipc_header_decode(r->buf, r->type_ok, &type, &len) < 0)
		return -1;
	size_t need = MC_IPC_HEADER_SIZE + (size_t)len;
	if (need <= r->cap)
		return -1;
	uint8_t *nb = malloc(need);
	if (nb == NULL)
		return -1;
	memcpy(nb, r->buf, r->used);
	sodium_memzero(r->buf, r->cap); /* may hold the token */
	free(r->buf);
	r->buf = nb;
	r->cap = need;
	return 0;
}

int mc_ipc_reader_fill(struct mc_ipc_reader *r, int fd)
{
	reader_compact(r);
	if (r->used == r->cap && reader_grow(r) < 0)
		return 0; /* a whole frame (or a bad header) is buffered: take it */
	for (;;) {
		ssize_t n = read(fd, r->buf + r->used, r->cap - r->used);
		if (n > 0) {
			r->used += (size_t)n;
			return 1;
		}
		if (n == 0) {
			r->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

int mc_ipc_reader_next(struct mc_ipc_reader *r, struct mc_ipc_frame *f)
{
	if (r->consumed == r->used && r->cap > KEEP_MAX)
		reader_compact(r); /* all handed out: a big buffer goes back now */
	size_t avail = r->used - r->consumed;
	if (avail < MC_IPC_HEADER_SIZE)
		return 0;
	const uint8_t *p = r->buf + r->consumed;
	uint16_t type;
	uint32_t len;
	if (mc_ipc_header_decode(p, r->type_ok, &type, &len) < 0)
		return -1;
	if (avail < MC_IPC_HEADER_SIZE + (size_t)len)
		return 0;
	f->type = type;
	f->len = len;
	f->payload = p + MC_IPC_HEADER_SIZE;
	r->consumed += MC_IPC_HEADER_SIZE + (size_t)len;
	return 1;
}

size_t mc_ipc_reader_pending(const struct mc_ipc_reader *r)
{
	return r->used - r->consumed;
}

void mc_ipc_writer_init(struct mc_ipc_writer *w)
{
	memset(w, 0, sizeof *w);
}

void mc_ipc_writer_free(struct mc_ipc_writer *w)
{
	if (w->buf != NULL) {
		sodium_memzero(w->buf, w->cap);
		free(w->buf);
	}
	memset(w, 0, sizeof *w);
}

/* Drops the frames wholly sent, wiping them. A frame partly sent keeps its
 * header (frame_at), so the accounting can still read its type. */
static void writer_compact(struct mc_ipc_writer *w)
{
	if (w->frame_at == 0)
		return;
	size_t rest = w->tail - w->frame_at;
	memmove(w->buf, w->buf + w->frame_at, rest);
	sodium_memzero(w->buf + rest, w->tail - rest);
	w->head -= w->frame_at;
	w->tail = rest;
	w->frame_at = 0;
}

/* Makes room for need more bytes at the tail, compacting first, growing
 * geometrically up to both allowances. */
static int writer_reserve(struct mc_ipc_writer *w, size_t need)
{
	writer_compact(w);
	const size_t max = (size_t)MC_IPC_WQUEUE_MAX + MC_IPC_BIG_WQUEUE_MAX + MC_IPC_HEADER_SIZE;
	if (w->tail + need <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->tail + need)
		cap *= 2;
	if (cap > max)
		cap = max;
	uint8_t *nb = malloc(cap);
	if (nb == NULL)
		return -1;
	if (w->buf != NULL) {
		memcpy(nb, w->buf, w->tail);
		sodium_memzero(w->buf, w->cap);
		free(w->buf);
	}
	w->buf = nb;
	w->cap = cap;
	return 0;
}

static bool is_big(uint16_t type)
{
	return mc_ipc_type_max_payload(type) > MC_IPC_MAX_PAYLOAD;
}

int mc_ipc_writer_queue(struct mc_ipc_writer *w, uint16_t type, const void *payload,
			uint32_t len)
{
	if (len > mc_ipc_type_max_payload(type)) {
		errno = EMSGSIZE;
		return -1;
	}
	size_t need = MC_IPC_HEADER_SIZE + (size_t)len;
	bool big = is_big(type);
	if ((big && w->big_bytes + need > MC_IPC_BIG_WQUEUE_MAX) ||
	    (!big && w->small_bytes + need > MC_IPC_WQUEUE_MAX)) {
		errno = ENOBUFS;
		return -1;
	}
	if (writer_reserve(w, need) < 0)
		return -1;
	mc_ipc_header_encode(w->buf + w->tail, type, len);
	if (len > 0)
		memcpy(w->buf + w->tail + MC_IPC_HEADER_SIZE, payload, len);
	w->tail += need;
	if (big)
		w->big_bytes += need;
	else
		w->small_bytes += need;
	return 0;
}

/* The frames head has passed leave their allowance. */
static void writer_account(struct mc_ipc_writer *w)
{
	while (w->frame_at + MC_IPC_HEADER_SIZE <= w->tail) {
		const uint8_t *h = w->buf + w->frame_at;
		uint16_t type = (uint16_t)((h[0] << 8) | h[1]);
		size_t len = ((size_t)h[4] << 24) | ((size_t)h[5] << 16) | ((size_t)h[6] << 8) | h[7];
		size_t size = MC_IPC_HEADER_SIZE + len;
		if (w->frame_at + size > w->head)
			return;
		if (is_big(type))
			w->big_bytes -= size;
		else
			w->small_bytes -= size;
		w->frame_at += size;
	}
}

ssize_t mc_ipc_writer_flush(struct mc_ipc_writer *w, int fd)
{
	while (w->head < w->tail) {
		/* send() with MSG_NOSIGNAL: a dead peer is EPIPE, not SIGPIPE. */
		ssize_t n = send(fd, w->buf + w->head, w->tail - w->head,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		w->head += (size_t)n;
	}
	writer_account(w);
	if (w->head == w->tail && w->tail > 0) {
		sodium_memzero(w->buf, w->tail); /* sent frames may have held the token */
		w->head = w->tail = w->frame_at = 0;
		w->big_bytes = w->small_bytes = 0;
		if (w->cap > WRITER_KEEP_MAX) {
			/* grew for big frames: given back */
			free(w->buf);
			w->buf = NULL;
			w->cap = 0;
		}
	}
	return (ssize_t)(w->tail - w->head);
}

size_t mc_ipc_writer_pending(const struct mc_ipc_writer *w)
{
	return w->tail - w->head;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mc_ipc_writer_drain(struct mc_ipc_writer *w, int fd, int budget_ms)
{
	long long until = mono_ms() + budget_ms;
	while (mc_ipc_writer_pending(w) > 0 && mono_ms() < until) {
		if (mc_ipc_writer_flush(w, fd) < 0)
			break;
		if (mc_ipc_writer_pending(w) > 0)
			usleep(1000);
	}
}
