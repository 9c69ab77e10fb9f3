/* libFuzzer target: the task frames of the IPC protocol (ipc/task_msgs.h)
 * as each reader sees them. The first byte picks the reading side (worker,
 * supervisor, link, or the supervisor's end of the link); the rest goes
 * through a pipe into an mc_ipc_reader of that side, and every frame is
 * handed to the parsers of its type. What parses is sent again and must
 * parse to the same value; a TASK frame is also peeked and forwarded as the
 * supervisor does, and the forwarded frame must carry the same task and
 * token with the new slot. Properties: no crash, no leak, round trips
 * exact, a refused frame names a reason. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/secret.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"
#include "ipc/ws_msgs.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			abort();        \
	} while (0)

static int any_type(uint16_t type)
{
	return mc_ipc_type_ok_for_worker(type) || mc_ipc_type_ok_for_supervisor(type) ||
	       mc_ipc_type_ok_for_link(type) || mc_ipc_type_ok_from_link(type);
}

static const mc_ipc_type_ok_fn SIDES[] = {
	mc_ipc_type_ok_for_worker,
	mc_ipc_type_ok_for_supervisor,
	mc_ipc_type_ok_for_link,
	mc_ipc_type_ok_from_link,
};

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

/* The same JSON as the receiver will see it: printed alike (a number
 * cJSON cannot print, such as 1e999, goes as null either way). */
static bool same_json(const cJSON *a, const cJSON *b)
{
	char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
	CHECK(x != NULL && y != NULL);
	bool same = strcmp(x, y) == 0;
	free(x);
	free(y);
	return same;
}

static bool same_token(struct mc_secret *a, struct mc_secret *b)
{
	if (a == NULL || b == NULL)
		return (a == NULL || mc_secret_len(a) == 0) && (b == NULL || mc_secret_len(b) == 0);
	return mc_secret_equal(a, b);
}

/* ---- TASK ---- */

static void check_reparse(const struct mc_ipc_frame *g, int slot, const cJSON *task,
			  struct mc_secret *tok)
{
	char err[256] = "";
	int s2 = -2;
	cJSON *t2 = NULL;
	struct mc_secret *k2 = NULL;
	CHECK(mc_ipc_parse_task(g, &s2, &t2, &k2, err, sizeof err) == 0);
	CHECK(s2 == slot && same_json(t2, task) && same_token(k2, tok));
	cJSON_Delete(t2);
	mc_secret_free(k2);
}

static void task_frame(const struct mc_ipc_frame *f)
{
	char err[256] = "", id[40], rid[40];
	int slot = -2, pslot = -2;
	cJSON *task = NULL;
	struct mc_secret *tok = NULL;
	int rc = mc_ipc_parse_task(f, &slot, &task, &tok, err, sizeof err);
	int prc = mc_ipc_peek_task(f, id, rid, &pslot, err, sizeof err);
	CHECK(rc == prc); /* the supervisor and the worker agree on what is a task */
	if (rc < 0) {
		CHECK(task == NULL && tok == NULL && err[0] != '\0');
		return;
	}
	CHECK(slot == pslot && slot >= -1);
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(task, "id");
	CHECK(cJSON_IsString(jid) && strcmp(jid->valuestring, id) == 0 && mc_is_uuid(rid));
	CHECK(cJSON_GetObjectItemCaseSensitive(task, "auth_token") == NULL);
	/* The supervisor re-slots it without parsing. */
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	int ns = (slot + 7) & 63;
	if (mc_ipc_forward_task(&w, f, ns) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		check_reparse(&g, ns, task, tok);
	}
	mc_ipc_writer_free(&w);
	/* The link sends it again from the parsed parts. */
	mc_ipc_writer_init(&w);
	if (mc_ipc_send_task(&w, slot, tok, task) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		check_reparse(&g, slot, task, tok);
	}
	mc_ipc_writer_free(&w);
	cJSON_Delete(task);
	mc_secret_free(tok);
}

/* ---- the small ones ---- */

typedef int (*send_int_fn)(struct mc_ipc_writer *w, int v);
typedef int (*parse_int_fn)(const struct mc_ipc_frame *f, int *v, char *err, size_t err_size);

static void int_frame(const struct mc_ipc_frame *f, send_int_fn send, parse_int_fn parse)
{
	char err[256] = "";
	int v = -12345, back = -12345;
	if (parse(f, &v, err, sizeof err) < 0) {
		CHECK(err[0] != '\0');
		return;
	}
	CHECK(v >= 0 && v <= 1000);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	if (send(&w, v) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(parse(&g, &back, err, sizeof err) == 0 && back == v);
	}
	mc_ipc_writer_free(&w);
}

static void runtimes_frame(const struct mc_ipc_frame *f)
{
	char err[256] = "", ws[40], ws2[40];
	size_t n = 0, n2 = 0;
	char(*ids)[40] = NULL, (*ids2)[40] = NULL;
	if (mc_ipc_parse_runtimes(f, ws, &n, &ids, err, sizeof err) < 0) {
		CHECK(err[0] != '\0' && ids == NULL && n == 0);
		return;
	}
	CHECK(mc_is_uuid(ws) && (n == 0) == (ids == NULL));
	const char **v = calloc(n ? n : 1, sizeof *v);
	CHECK(v != NULL);
	for (size_t i = 0; i < n; i++) {
		CHECK(mc_is_uuid(ids[i]));
		v[i] = ids[i];
	}
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	if (mc_ipc_send_runtimes(&w, ws, n, v) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(mc_ipc_parse_runtimes(&g, ws2, &n2, &ids2, err, sizeof err) == 0);
		CHECK(strcmp(ws, ws2) == 0 && n2 == n);
		for (size_t i = 0; i < n; i++)
			CHECK(strcmp(ids[i], ids2[i]) == 0);
		free(ids2);
	}
	mc_ipc_writer_free(&w);
	free(v);
	free(ids);
}

static void wake_frame(const struct mc_ipc_frame *f)
{
	char err[256] = "", reason[128], back[128];
	if (mc_ipc_parse_wake(f, reason, sizeof reason, err, sizeof err) < 0) {
		CHECK(err[0] != '\0');
		return;
	}
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	if (mc_ipc_send_wake(&w, reason) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(mc_ipc_parse_wake(&g, back, sizeof back, err, sizeof err) == 0);
		CHECK(strcmp(reason, back) == 0);
	}
	mc_ipc_writer_free(&w);
}

static void fail_frame(const struct mc_ipc_frame *f)
{
	char err[256] = "", id[40], rid[40], reason[64], error[512];
	char id2[40], rid2[40], reason2[64], error2[512];
	if (mc_ipc_parse_task_fail(f, id, rid, reason, sizeof reason, error, sizeof error, err,
				   sizeof err) < 0) {
		CHECK(err[0] != '\0');
		return;
	}
	CHECK(mc_is_uuid(id) && mc_is_uuid(rid));
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	if (mc_ipc_send_task_fail(&w, id, rid, reason, error) == 0) {
		struct mc_ipc_frame g = queued_frame(&w);
		CHECK(mc_ipc_parse_task_fail(&g, id2, rid2, reason2, sizeof reason2, error2,
					     sizeof error2, err, sizeof err) == 0);
		CHECK(strcmp(id, id2) == 0 && strcmp(rid, rid2) == 0);
		CHECK(strcmp(reason, reason2) == 0 && strcmp(error, error2) == 0);
	} else {
		CHECK(reason[0] == '\0'); /* the only thing the sender refuses */
	}
	mc_ipc_writer_free(&w);
}

static void state_frame(const struct mc_ipc_frame *f)
{
	char err[256] = "";
	struct mc_task_state_msg m, back;
	if (mc_ipc_parse_task_state(f, &m, err, sizeof err) < 0) {
		CHECK(err[0] != '\0');
		return;
	}
	CHECK(mc_is_uuid(m.task_id) && mc_is_uuid(m.runtime_id));
	CHECK((unsigned)m.state < MC_TS_COUNT && m.pid >= 0 && m.pgid >= 0);
	CHECK(strcmp(mc_task_state_name(m.state), "unknown") != 0);
	CHECK(mc_task_state_from_name(mc_task_state_name(m.state)) == (int)m.state);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	CHECK(mc_ipc_send_task_state(&w, &m) == 0);
	struct mc_ipc_frame g = queued_frame(&w);
	CHECK(mc_ipc_parse_task_state(&g, &back, err, sizeof err) == 0);
	CHECK(strcmp(m.task_id, back.task_id) == 0 && strcmp(m.runtime_id, back.runtime_id) == 0);
	CHECK(m.state == back.state && m.pid == back.pid && m.pgid == back.pgid);
	CHECK(strcmp(m.family, back.family) == 0 && strcmp(m.outcome, back.outcome) == 0);
	/* last_output: control bytes become blanks on the way, nothing else. */
	CHECK(strlen(m.last_output) == strlen(back.last_output));
	for (size_t i = 0; m.last_output[i]; i++) {
		unsigned char c = (unsigned char)m.last_output[i];
		CHECK(back.last_output[i] == (c < 0x20 ? ' ' : (char)c));
	}
	mc_ipc_writer_free(&w);
}

/* The push channel's frames (ipc/ws_msgs.h): parse, send again, same. */
static void push_frames(const struct mc_ipc_frame *f)
{
	char err[256] = "";
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	if (f->type == MC_IPC_PUSH) {
		struct mc_push_msg m, back;
		if (mc_ipc_parse_push(f, &m, err, sizeof err) < 0) {
			CHECK(err[0] != '\0');
		} else {
			CHECK(mc_ipc_send_push(&w, &m) == 0);
			struct mc_ipc_frame g = queued_frame(&w);
			CHECK(mc_ipc_parse_push(&g, &back, err, sizeof err) == 0);
			CHECK(m.event == back.event && strcmp(m.workspace_id, back.workspace_id) == 0);
		}
	} else if (f->type == MC_IPC_PUSH_STATE) {
		bool up = false, back = false;
		if (mc_ipc_parse_push_state(f, &up, err, sizeof err) < 0) {
			CHECK(err[0] != '\0');
		} else {
			CHECK(mc_ipc_send_push_state(&w, up) == 0);
			struct mc_ipc_frame g = queued_frame(&w);
			CHECK(mc_ipc_parse_push_state(&g, &back, err, sizeof err) == 0 && up == back);
		}
	} else {
		char reason[MC_SYNC_REASON_MAX], back[MC_SYNC_REASON_MAX];
		if (mc_ipc_parse_sync_now(f, reason, sizeof reason, err, sizeof err) < 0) {
			CHECK(err[0] != '\0');
		} else if (mc_ipc_send_sync_now(&w, reason) == 0) {
			struct mc_ipc_frame g = queued_frame(&w);
			CHECK(mc_ipc_parse_sync_now(&g, back, sizeof back, err, sizeof err) == 0);
			CHECK(strcmp(reason, back) == 0);
		}
	}
	mc_ipc_writer_free(&w);
}

static void decode(const struct mc_ipc_frame *f)
{
	switch (f->type) {
	case MC_IPC_TASK:
		task_frame(f);
		break;
	case MC_IPC_SLOTS_REQ: {
		char err[256] = "";
		int want = 0;
		if (mc_ipc_parse_slots_req(f, &want, err, sizeof err) == 0) {
			CHECK(want >= 1 && want <= 1000);
			struct mc_ipc_writer w;
			mc_ipc_writer_init(&w);
			CHECK(mc_ipc_send_slots_req(&w, want) == 0);
			struct mc_ipc_frame g = queued_frame(&w);
			int back = 0;
			CHECK(mc_ipc_parse_slots_req(&g, &back, err, sizeof err) == 0 && back == want);
			mc_ipc_writer_free(&w);
		}
		break;
	}
	case MC_IPC_SLOTS:
		int_frame(f, mc_ipc_send_slots, mc_ipc_parse_slots);
		break;
	case MC_IPC_CLAIM_DONE:
		int_frame(f, mc_ipc_send_claim_done, mc_ipc_parse_claim_done);
		break;
	case MC_IPC_RUNTIMES:
		runtimes_frame(f);
		break;
	case MC_IPC_WAKE:
		wake_frame(f);
		break;
	case MC_IPC_TASK_FAIL:
		fail_frame(f);
		break;
	case MC_IPC_PUSH:
	case MC_IPC_PUSH_STATE:
	case MC_IPC_SYNC_NOW:
		push_frames(f);
		break;
	case MC_IPC_TASK_STATE:
		state_frame(f);
		break;
	default:
		break; /* the other types: fuzz_ipc */
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
	if (size < 1)
		return 0;
	mc_ipc_type_ok_fn side = SIDES[data[0] % 4];
	data++;
	size--;
	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		return 0;
	struct mc_ipc_reader r;
	if (mc_ipc_reader_init(&r, side) < 0) {
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
