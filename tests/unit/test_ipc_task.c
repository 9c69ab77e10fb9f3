/* The task frames of the IPC protocol (ipc/task_msgs.h) and what they
 * changed in the framing: per-type maximum, the writer's allowance for big
 * frames, memory given back, the token beside (never inside) the JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/secret.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"

#define TID "11111111-2222-4333-8444-555555555555"
#define RID "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define WS  "0c6e7a1e-1111-4a4a-8b8b-000000000001"
#define TOKEN "mat_0123456789abcdef"

TestSuite(ipc_task, .timeout = 60);

static void make_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* Writes what w holds into sv[0] and reads it from sv[1] into r, both
 * sides non-blocking, until w is empty and r has a frame. */
static void pump_one(struct mc_ipc_writer *w, int sv[2], struct mc_ipc_reader *r,
		     struct mc_ipc_frame *f)
{
	for (int i = 0; i < 200000; i++) {
		cr_assert_geq(mc_ipc_writer_flush(w, sv[0]), 0);
		mc_ipc_reader_fill(r, sv[1]);
		int got = mc_ipc_reader_next(r, f);
		cr_assert_geq(got, 0, "reader refused the frame: %s", strerror(errno));
		if (got == 1)
			return;
	}
	cr_assert_fail("no frame came through");
}

static cJSON *sample_task(size_t pad)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "id", TID);
	cJSON_AddStringToObject(t, "runtime_id", RID);
	cJSON_AddStringToObject(t, "agent_id", "a");
	if (pad > 0) {
		char *p = malloc(pad + 1);
		memset(p, 'x', pad);
		p[pad] = '\0';
		cJSON_AddStringToObject(t, "chat_history", p);
		free(p);
	}
	return t;
}

static struct mc_ipc_frame frame_of(uint16_t type, const void *payload, size_t len)
{
	return (struct mc_ipc_frame){ .type = type, .len = (uint32_t)len, .payload = payload };
}

Test(ipc_task, task_round_trip_through_the_supervisor_forward)
{
	int sv[2];
	make_pair(sv);
	struct mc_ipc_writer w;
	struct mc_ipc_reader r;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_from_link), 0);
	struct mc_secret *tok = mc_secret_new(TOKEN, strlen(TOKEN));
	cJSON *task = sample_task(200 * 1024); /* over the 64 KiB of other frames */
	cr_assert_eq(mc_ipc_send_task(&w, -1, tok, task), 0, "%s", strerror(errno));
	struct mc_ipc_frame f;
	pump_one(&w, sv, &r, &f);
	cr_assert_eq(f.type, MC_IPC_TASK);
	cr_assert_gt(f.len, MC_IPC_MAX_PAYLOAD);

	char tid[40], rid[40], err[256] = "";
	int slot = 7;
	cr_assert_eq(mc_ipc_peek_task(&f, tid, rid, &slot, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(tid, TID);
	cr_assert_str_eq(rid, RID);
	cr_assert_eq(slot, -1, "the link sends no slot");

	/* The supervisor re-slots it for the worker without printing it again. */
	struct mc_ipc_writer fw;
	mc_ipc_writer_init(&fw);
	cr_assert_eq(mc_ipc_forward_task(&fw, &f, 5), 0);
	struct mc_ipc_frame g = frame_of(MC_IPC_TASK, fw.buf + fw.head + MC_IPC_HEADER_SIZE,
					 mc_ipc_writer_pending(&fw) - MC_IPC_HEADER_SIZE);
	cJSON *got = NULL;
	struct mc_secret *gtok = NULL;
	cr_assert_eq(mc_ipc_parse_task(&g, &slot, &got, &gtok, err, sizeof err), 0, "%s", err);
	cr_assert_eq(slot, 5);
	cr_assert(cJSON_Compare(got, task, true), "the task arrives as the server sent it");
	cr_assert_not_null(gtok);
	cr_assert(mc_secret_equal(gtok, tok), "the token arrives beside it");
	cJSON_Delete(got);
	mc_secret_free(gtok);
	mc_ipc_writer_free(&fw);
	cJSON_Delete(task);
	mc_secret_free(tok);
	mc_ipc_writer_free(&w);
	mc_ipc_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

Test(ipc_task, token_is_never_in_the_json_part)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	struct mc_secret *tok = mc_secret_new(TOKEN, strlen(TOKEN));
	cJSON *task = sample_task(0);
	cr_assert_eq(mc_ipc_send_task(&w, -1, tok, task), 0);
	const uint8_t *p = w.buf + w.head + MC_IPC_HEADER_SIZE;
	size_t len = mc_ipc_writer_pending(&w) - MC_IPC_HEADER_SIZE;
	uint32_t tl = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	cr_assert_eq(tl, strlen(TOKEN));
	cr_assert_eq(memcmp(p + 4, TOKEN, tl), 0);
	const char *json = (const char *)p + 4 + tl;
	size_t jl = len - 4 - tl;
	cr_assert_null(memmem(json, jl, "mat_", 4), "the JSON part holds no token");
	cr_assert_null(memmem(json, jl, "auth_token", 10));
	cr_assert_eq(strncmp(json, "{\"slot\":-1,\"task\":{", 19), 0, "%.*s", (int)jl, json);
	mc_ipc_writer_free(&w);

	/* A task still holding its token is refused, not sent. */
	mc_ipc_writer_init(&w);
	cJSON_AddStringToObject(task, "auth_token", TOKEN);
	errno = 0;
	cr_assert_eq(mc_ipc_send_task(&w, -1, tok, task), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(mc_ipc_writer_pending(&w), 0);
	mc_ipc_writer_free(&w);
	cJSON_Delete(task);
	mc_secret_free(tok);
}

Test(ipc_task, per_type_maximum)
{
	uint8_t h[MC_IPC_HEADER_SIZE];
	uint16_t type;
	uint32_t len;
	mc_ipc_header_encode(h, MC_IPC_TASK, MC_IPC_TASK_MAX);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_worker, &type, &len), 0);
	mc_ipc_header_encode(h, MC_IPC_TASK, MC_IPC_TASK_MAX + 1);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_worker, &type, &len), -1);
	cr_assert_eq(errno, EMSGSIZE);
	mc_ipc_header_encode(h, MC_IPC_TASK_STATE, MC_IPC_MAX_PAYLOAD + 1);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_supervisor, &type, &len), -1);
	cr_assert_eq(errno, EMSGSIZE, "every other type keeps MC_IPC_MAX_PAYLOAD");
	/* TASK is a type only its receivers know. */
	mc_ipc_header_encode(h, MC_IPC_TASK, 10);
	cr_assert_eq(mc_ipc_header_decode(h, mc_ipc_type_ok_for_link, &type, &len), -1);
	cr_assert_eq(errno, EPROTO);

	/* A task that cannot fit: EMSGSIZE, nothing queued. */
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cJSON *big = sample_task(MC_IPC_TASK_MAX);
	errno = 0;
	cr_assert_eq(mc_ipc_send_task(&w, -1, NULL, big), -1);
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert_eq(mc_ipc_writer_pending(&w), 0);
	cJSON_Delete(big);
	mc_ipc_writer_free(&w);
}

Test(ipc_task, big_frames_have_their_own_allowance_and_give_memory_back)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cJSON *t = sample_task(7u * 1024 * 1024);
	int n = 0;
	while (mc_ipc_send_task(&w, -1, NULL, t) == 0)
		n++;
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_eq(n, 4, "32 MiB of 7 MiB tasks");
	/* The small frames' queue is untouched by them. */
	cr_assert_eq(mc_ipc_send_ping(&w, 1), 0);
	cr_assert_leq(mc_ipc_writer_pending(&w),
		      (size_t)MC_IPC_BIG_WQUEUE_MAX + MC_IPC_WQUEUE_MAX);
	mc_ipc_writer_free(&w);

	/* Through a socket: once everything is sent and read, both sides are
	 * small again. */
	int sv[2];
	make_pair(sv);
	mc_ipc_writer_init(&w);
	struct mc_ipc_reader r;
	cr_assert_eq(mc_ipc_reader_init(&r, mc_ipc_type_ok_for_worker), 0);
	cr_assert_eq(mc_ipc_send_task(&w, 3, NULL, t), 0);
	struct mc_ipc_frame f;
	pump_one(&w, sv, &r, &f);
	cr_assert_gt(r.cap, 7u * 1024 * 1024);
	cr_assert_eq(mc_ipc_writer_pending(&w), 0);
	cr_assert_eq(w.cap, 0, "the writer gave its big buffer back");
	cr_assert_eq(mc_ipc_reader_next(&r, &f), 0);
	cr_assert_leq(r.cap, 4096, "the reader gave its big buffer back: %zu", r.cap);
	cJSON_Delete(t);
	mc_ipc_writer_free(&w);
	mc_ipc_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

static void refused(uint16_t type, const void *payload, size_t len, const char *why)
{
	struct mc_ipc_frame f = frame_of(type, payload, len);
	char err[256] = "", a[40], b[40], c[64], d[256];
	int i;
	size_t n;
	char (*ids)[40] = NULL;
	cJSON *task = NULL;
	struct mc_secret *tok = NULL;
	struct mc_task_state_msg m;
	int rc = -2;
	errno = 0;
	switch (type) {
	case MC_IPC_TASK: rc = mc_ipc_parse_task(&f, &i, &task, &tok, err, sizeof err); break;
	case MC_IPC_SLOTS_REQ: rc = mc_ipc_parse_slots_req(&f, &i, err, sizeof err); break;
	case MC_IPC_SLOTS: rc = mc_ipc_parse_slots(&f, &i, err, sizeof err); break;
	case MC_IPC_RUNTIMES: rc = mc_ipc_parse_runtimes(&f, a, &n, &ids, err, sizeof err); break;
	case MC_IPC_TASK_FAIL:
		rc = mc_ipc_parse_task_fail(&f, a, b, c, sizeof c, d, sizeof d, err, sizeof err);
		break;
	case MC_IPC_TASK_STATE: rc = mc_ipc_parse_task_state(&f, &m, err, sizeof err); break;
	default: break;
	}
	cr_assert_eq(rc, -1, "%s accepted: %.*s", mc_ipc_type_name(type), (int)len,
		     (const char *)payload);
	cr_assert_eq(errno, EPROTO);
	cr_assert_null(task);
	cr_assert_null(tok);
	free(ids);
	cr_assert(strstr(err, why) != NULL, "reason \"%s\" lacks \"%s\"", err, why);
}

static void refused_str(uint16_t type, const char *s, const char *why)
{
	refused(type, s, strlen(s), why);
}

Test(ipc_task, bad_payloads_are_refused_with_a_reason)
{
	static const uint8_t short_tok[] = { 0, 0, 0, 50, 'm', 'a' };
	refused(MC_IPC_TASK, short_tok, sizeof short_tok, "token length 50 out of range");
	refused(MC_IPC_TASK, "\0\0", 2, "shorter than its token length");
	static const char notask[] = "\0\0\0\0{\"task\":{},\"slot\":1}";
	refused(MC_IPC_TASK, notask, sizeof notask - 1, "does not start with");
	static const char noid[] = "\0\0\0\0{\"slot\":1,\"task\":{\"runtime_id\":\"" RID "\"}}";
	refused(MC_IPC_TASK, noid, sizeof noid - 1, "task.id");
	static const char tokin[] = "\0\0\0\0{\"slot\":1,\"task\":{\"id\":\"" TID "\",\"runtime_id\":\""
				    RID "\",\"auth_token\":\"mat_x\"}}";
	refused(MC_IPC_TASK, tokin, sizeof tokin - 1, "auth_token");
	static const char notjson[] = "\0\0\0\0{\"slot\":1,\"task\":{nope}";
	refused(MC_IPC_TASK, notjson, sizeof notjson - 1, "not a JSON object");
	refused_str(MC_IPC_SLOTS_REQ, "{\"want\":0}", "want: out of range");
	refused_str(MC_IPC_SLOTS_REQ, "{\"want\":3,\"x\":1}", "unexpected fields");
	refused_str(MC_IPC_SLOTS, "{\"grant\":-1}", "grant");
	refused_str(MC_IPC_RUNTIMES, "{\"workspace_id\":\"" WS "\",\"runtime_ids\":[\"nope\"]}",
		    "runtime_ids[0]: not a UUID");
	refused_str(MC_IPC_RUNTIMES, "{\"workspace_id\":\"x\",\"runtime_ids\":[]}",
		    "workspace_id: not a UUID");
	refused_str(MC_IPC_TASK_FAIL, "{\"task_id\":\"" TID "\",\"runtime_id\":\"" RID "\",\"error\":\"\"}",
		    "reason: missing");
	refused_str(MC_IPC_TASK_STATE, "{\"task_id\":\"" TID "\",\"runtime_id\":\"" RID "\","
		    "\"state\":\"dancing\",\"pid\":0,\"pgid\":0,\"family\":\"\",\"last_output\":\"\","
		    "\"outcome\":\"\"}", "\"dancing\" is not a task state");
}

Test(ipc_task, small_frames_round_trip)
{
	struct mc_ipc_writer w;
	char err[256] = "";
	int v;
#define LAST() frame_of(0, NULL, 0)
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_slots_req(&w, 32), 0);
	struct mc_ipc_frame f = frame_of(MC_IPC_SLOTS_REQ, w.buf + MC_IPC_HEADER_SIZE,
					 w.tail - MC_IPC_HEADER_SIZE);
	cr_assert_eq(mc_ipc_parse_slots_req(&f, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(v, 32);
	mc_ipc_writer_free(&w);

	mc_ipc_writer_init(&w);
	const char *ids[] = { RID, TID };
	cr_assert_eq(mc_ipc_send_runtimes(&w, WS, 2, ids), 0);
	f = frame_of(MC_IPC_RUNTIMES, w.buf + MC_IPC_HEADER_SIZE, w.tail - MC_IPC_HEADER_SIZE);
	char ws[40];
	size_t n;
	char (*got)[40];
	cr_assert_eq(mc_ipc_parse_runtimes(&f, ws, &n, &got, err, sizeof err), 0, "%s", err);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(ws, WS);
	cr_assert_str_eq(got[1], TID);
	free(got);
	mc_ipc_writer_free(&w);

	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_task_fail(&w, TID, RID, "runtime_offline",
					   "runtime went offline before the task started"), 0);
	f = frame_of(MC_IPC_TASK_FAIL, w.buf + MC_IPC_HEADER_SIZE, w.tail - MC_IPC_HEADER_SIZE);
	char a[40], b[40], reason[64], error[256];
	cr_assert_eq(mc_ipc_parse_task_fail(&f, a, b, reason, sizeof reason, error, sizeof error,
					    err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(reason, "runtime_offline");
	cr_assert_str_eq(error, "runtime went offline before the task started");
	mc_ipc_writer_free(&w);

	mc_ipc_writer_init(&w);
	struct mc_task_state_msg m = { .task_id = TID, .runtime_id = RID, .state = MC_TS_RUNNING,
				       .pid = 42, .pgid = 42, .family = "claude",
				       .last_output = "line one\nline\ttwo" };
	cr_assert_eq(mc_ipc_send_task_state(&w, &m), 0);
	f = frame_of(MC_IPC_TASK_STATE, w.buf + MC_IPC_HEADER_SIZE, w.tail - MC_IPC_HEADER_SIZE);
	struct mc_task_state_msg back;
	cr_assert_eq(mc_ipc_parse_task_state(&f, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.state, MC_TS_RUNNING);
	cr_assert_eq(back.pgid, 42);
	cr_assert_str_eq(back.last_output, "line one line two", "control bytes become blanks");
	mc_ipc_writer_free(&w);
#undef LAST
}

Test(ipc_task, each_side_accepts_only_its_frames)
{
	cr_assert(mc_ipc_type_ok_for_worker(MC_IPC_TASK));
	cr_assert(!mc_ipc_type_ok_for_worker(MC_IPC_SLOTS));
	cr_assert(mc_ipc_type_ok_for_supervisor(MC_IPC_TASK_STATE));
	cr_assert(!mc_ipc_type_ok_for_supervisor(MC_IPC_TASK));
	cr_assert(mc_ipc_type_ok_for_link(MC_IPC_SLOTS) && mc_ipc_type_ok_for_link(MC_IPC_TASK_FAIL));
	cr_assert(!mc_ipc_type_ok_for_link(MC_IPC_TASK) && !mc_ipc_type_ok_for_link(MC_IPC_PROBES));
	cr_assert(mc_ipc_type_ok_from_link(MC_IPC_TASK) && mc_ipc_type_ok_from_link(MC_IPC_CLAIM_DONE));
	cr_assert(!mc_ipc_type_ok_from_link(MC_IPC_REPORT), "the link reports no runtimes");
	cr_assert_str_eq(mc_ipc_type_name(MC_IPC_TASK_STATE), "TASK_STATE");
}

Test(ipc_task, worst_case_probes_with_paths_fit_one_frame)
{
	struct mc_probes p = { .n = MC_MAX_BUILTINS };
	for (size_t i = 0; i < p.n; i++) {
		struct mc_builtin *b = &p.v[i];
		memset(b->provider, 'a', sizeof b->provider - 1);
		b->provider[0] = (char)('a' + i % 26);
		b->provider[1] = (char)('a' + i / 26);
		memset(b->name, '"', sizeof b->name - 1);
		memset(b->version, '"', sizeof b->version - 1);
		memset(b->path, 'p', MC_BUILTIN_PATH_MAX);
		b->path[0] = '/';
	}
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_probes(&w, &p), 0, "%s", strerror(errno));
	cr_log_info("longest PROBES: %zu of %u bytes", w.tail - MC_IPC_HEADER_SIZE,
		    MC_IPC_MAX_PAYLOAD);
	struct mc_ipc_frame f = frame_of(MC_IPC_PROBES, w.buf + MC_IPC_HEADER_SIZE,
					 w.tail - MC_IPC_HEADER_SIZE);
	struct mc_probes back;
	char err[256] = "";
	cr_assert_eq(mc_ipc_parse_probes(&f, &back, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(back.v[31].path, p.v[31].path);
	mc_ipc_writer_free(&w);

	/* A path that would print longer than itself is refused by both sides. */
	p.v[3].path[10] = '"';
	cr_assert(!mc_ipc_builtin_path_ok(p.v[3].path));
	cr_assert_lt(mc_ipc_probes_check(&p, err, sizeof err), 0);
	cr_assert(strstr(err, "builtins[3].path") != NULL, "%s", err);
	cr_assert(mc_ipc_builtin_path_ok(""));
	cr_assert(!mc_ipc_builtin_path_ok("claude"), "relative");
}
