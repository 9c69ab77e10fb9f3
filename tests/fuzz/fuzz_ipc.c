/* libFuzzer target: the IPC byte stream as either side reads it. The input
 * goes through a pipe into an mc_ipc_reader (so the reader's buffering,
 * compaction and header checks run as in production); every frame is handed
 * to the decoder of its type, and whatever decodes is encoded again and must
 * decode to the same value (both directions of every codec). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc/frame.h"
#include "ipc/messages.h"

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond))                                                            \
			abort(); /* a round trip changed the value: a finding */        \
	} while (0)

static int any_type(uint16_t type)
{
	return mc_ipc_type_ok_for_worker(type) || mc_ipc_type_ok_for_supervisor(type);
}

/* The one frame queued on w, as a reader would hand it out. */
static struct mc_ipc_frame queued_frame(const struct mc_ipc_writer *w)
{
	uint16_t type = 0;
	uint32_t len = 0;
	CHECK(w->tail - w->head >= MC_IPC_HEADER_SIZE);
	CHECK(mc_ipc_header_decode(w->buf + w->head, any_type, &type, &len) == 0);
	CHECK(w->tail - w->head == MC_IPC_HEADER_SIZE + len);
	return (struct mc_ipc_frame){ type, len, w->buf + w->head + MC_IPC_HEADER_SIZE };
}

static void roundtrip_config(const struct mc_worker_config *c)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	char err[256];
	if (mc_ipc_send_config(&w, c) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		struct mc_worker_config d;
		memset(&d, 0, sizeof d);
		CHECK(mc_ipc_parse_config(&g, &d, err, sizeof err) == 0);
		CHECK(strcmp(d.workspace_id, c->workspace_id) == 0);
		CHECK(strcmp(d.server_url, c->server_url) == 0);
		CHECK(strcmp(d.device_name, c->device_name) == 0);
		CHECK(d.heartbeat_interval_ms == c->heartbeat_interval_ms);
		CHECK(d.n_overrides == c->n_overrides);
		for (size_t i = 0; i < d.n_overrides; i++)
			CHECK(strcmp(d.overrides[i].path, c->overrides[i].path) == 0);
		mc_worker_config_clear(&d);
	}
	mc_ipc_writer_free(&w);
}

static void roundtrip_probes(const struct mc_probes *p)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	char err[256];
	if (mc_ipc_send_probes(&w, p) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		static struct mc_probes d;
		CHECK(mc_ipc_parse_probes(&g, &d, err, sizeof err) == 0);
		CHECK(d.n == p->n);
		for (size_t i = 0; i < d.n; i++) {
			CHECK(strcmp(d.v[i].provider, p->v[i].provider) == 0);
			CHECK(strcmp(d.v[i].name, p->v[i].name) == 0);
			CHECK(strcmp(d.v[i].version, p->v[i].version) == 0);
		}
	}
	mc_ipc_writer_free(&w);
}

static void roundtrip_report(const struct mc_report *r)
{
	const char **ids = calloc(r->n ? r->n : 1, sizeof *ids);
	if (ids == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		ids[i] = r->ids[i];
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	char err[256];
	if (mc_ipc_send_report(&w, r->n, ids) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		struct mc_report d = { 0 };
		CHECK(mc_ipc_parse_report(&g, &d, err, sizeof err) == 0);
		CHECK(d.n == r->n);
		for (size_t i = 0; i < d.n; i++)
			CHECK(strcmp(d.ids[i], r->ids[i]) == 0);
		mc_report_clear(&d);
	}
	mc_ipc_writer_free(&w);
	free(ids);
}

static void roundtrip_seq(uint64_t seq)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	char err[256];
	uint64_t back = 0;
	if (mc_ipc_send_ping(&w, seq) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(mc_ipc_parse_seq(&g, &back, err, sizeof err) == 0);
		CHECK(back == seq);
	}
	mc_ipc_writer_free(&w);
}

static void roundtrip_fatal(const char *reason)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	char err[256], back[512];
	if (mc_ipc_send_fatal(&w, reason) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(mc_ipc_parse_fatal(&g, back, sizeof back, err, sizeof err) == 0);
		CHECK(strcmp(back, reason) == 0);
	}
	mc_ipc_writer_free(&w);
}

static void decode(const struct mc_ipc_frame *f)
{
	char err[256];
	int a, b;
	uint64_t seq;
	bool flag;
	switch (f->type) {
	case MC_IPC_HELLO:
		mc_ipc_parse_hello(f, &a, &b, err, sizeof err);
		break;
	case MC_IPC_CONFIG: {
		struct mc_worker_config c;
		memset(&c, 0, sizeof c);
		if (mc_ipc_parse_config(f, &c, err, sizeof err) == 0)
			roundtrip_config(&c);
		mc_worker_config_clear(&c);
		break;
	}
	case MC_IPC_PROBES: {
		static struct mc_probes p;
		if (mc_ipc_parse_probes(f, &p, err, sizeof err) == 0)
			roundtrip_probes(&p);
		break;
	}
	case MC_IPC_PING:
	case MC_IPC_PONG:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) == 0)
			roundtrip_seq(seq);
		break;
	case MC_IPC_REPORT: {
		struct mc_report r = { 0 };
		if (mc_ipc_parse_report(f, &r, err, sizeof err) == 0)
			roundtrip_report(&r);
		mc_report_clear(&r);
		break;
	}
	case MC_IPC_STOP:
		mc_ipc_parse_empty(f, err, sizeof err);
		break;
	case MC_IPC_STOPPED:
		mc_ipc_parse_stopped(f, &flag, err, sizeof err);
		break;
	case MC_IPC_FATAL: {
		char reason[512];
		if (mc_ipc_parse_fatal(f, reason, sizeof reason, err, sizeof err) == 0)
			roundtrip_fatal(reason);
		break;
	}
	default:
		break; /* TOKEN is raw bytes */
	}
}

/* Drains complete frames; false once the stream is broken. */
static bool drain(struct mc_ipc_reader *r)
{
	struct mc_ipc_frame f;
	int got;
	while ((got = mc_ipc_reader_next(r, &f)) == 1)
		decode(&f);
	return got == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return 0;
	struct mc_ipc_reader r;
	if (mc_ipc_reader_init(&r, any_type) < 0) {
		close(p[0]);
		close(p[1]);
		return 0;
	}
	size_t off = 0;
	bool ok = true;
	while (ok && off < size) {
		ssize_t w = write(p[1], data + off, size - off);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		while (mc_ipc_reader_fill(&r, p[0]) > 0)
			;
		ok = drain(&r);
	}
	close(p[1]);
	while (ok && mc_ipc_reader_fill(&r, p[0]) > 0)
		ok = drain(&r);
	if (ok)
		drain(&r);
	mc_ipc_reader_free(&r);
	close(p[0]);
	return 0;
}
