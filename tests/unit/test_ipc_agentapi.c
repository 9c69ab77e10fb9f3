/* The agent-api frames (ipc/agentapi_msgs.h), the local API's fields of
 * TASK_STATE (ipc/task_msgs.h) and the task's repos (common/task.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "common/task.h"
#include "ipc/agentapi_msgs.h"
#include "ipc/messages.h"
#include "ipc/task_msgs.h"

#define TID  "11111111-2222-4333-8444-555555555555"
#define RID  "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define WS   "0c6e7a1e-1111-4a4a-8b8b-000000000001"
#define AID  "0c6e7a1e-2222-4a4a-8b8b-000000000002"
#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

TestSuite(ipc_agentapi, .timeout = 60);

static struct mc_ipc_frame frame_of(uint16_t type, const void *p, size_t len)
{
	return (struct mc_ipc_frame){ .type = type, .len = (uint32_t)len, .payload = p };
}

static struct mc_ipc_frame frame_str(uint16_t type, const char *s)
{
	return frame_of(type, s, strlen(s));
}

static struct mc_ipc_frame queued(const struct mc_ipc_writer *w, uint16_t type)
{
	return frame_of(type, w->buf + MC_IPC_HEADER_SIZE, w->tail - MC_IPC_HEADER_SIZE);
}

/* heap: 50 KiB */
static struct mc_agent_task *running_task(void)
{
	struct mc_agent_task *t = calloc(1, sizeof *t);
	cr_assert_not_null(t);
	t->event = MC_AGENT_RUNNING;
	strlcpy(t->task_id, TID, sizeof t->task_id);
	strlcpy(t->workspace_id, WS, sizeof t->workspace_id);
	strlcpy(t->agent_id, AID, sizeof t->agent_id);
	strlcpy(t->agent_name, "Claude \"dev\"", sizeof t->agent_name);
	strlcpy(t->work_dir, "/var/lib/multicad/ws/x/workdir", sizeof t->work_dir);
	strlcpy(t->token_hash, HASH, sizeof t->token_hash);
	t->n_repos = 2;
	strlcpy(t->repos[0].url, "https://github.com/acme/api.git", sizeof t->repos[0].url);
	strlcpy(t->repos[0].ref, "main", sizeof t->repos[0].ref);
	strlcpy(t->repos[1].url, "/tmp/repos/web", sizeof t->repos[1].url);
	return t;
}

Test(ipc_agentapi, agent_task_round_trips)
{
	struct mc_agent_task *t = running_task(), *back = calloc(1, sizeof *back);
	char err[256] = "";
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), 0);
	struct mc_ipc_frame f = queued(&w, MC_IPC_AGENT_TASK);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back->event, MC_AGENT_RUNNING);
	cr_assert_str_eq(back->agent_name, "Claude \"dev\"");
	cr_assert_str_eq(back->work_dir, t->work_dir);
	cr_assert_str_eq(back->token_hash, HASH);
	cr_assert_eq(back->n_repos, 2);
	cr_assert_str_eq(back->repos[0].ref, "main");
	cr_assert_str_eq(back->repos[1].url, "/tmp/repos/web");
	cr_assert_str_eq(back->repos[1].ref, "");
	mc_ipc_writer_free(&w);

	mc_ipc_writer_init(&w);
	struct mc_agent_task ended = { .event = MC_AGENT_ENDED, .task_id = TID };
	cr_assert_eq(mc_ipc_send_agent_task(&w, &ended), 0);
	f = queued(&w, MC_IPC_AGENT_TASK);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back->event, MC_AGENT_ENDED);
	cr_assert_str_eq(back->task_id, TID);
	mc_ipc_writer_free(&w);
	free(t);
	free(back);
}

Test(ipc_agentapi, the_largest_agent_task_fits_its_frame)
{
	struct mc_agent_task *t = running_task(), *back = calloc(1, sizeof *back);
	t->n_repos = MC_TASK_REPOS_MAX;
	for (size_t i = 0; i < t->n_repos; i++) {
		memset(t->repos[i].url, '"', sizeof t->repos[i].url - 1); /* escaped: twice */
		t->repos[i].url[sizeof t->repos[i].url - 1] = '\0';
		memset(t->repos[i].ref, '\\', sizeof t->repos[i].ref - 1);
		t->repos[i].ref[sizeof t->repos[i].ref - 1] = '\0';
	}
	memset(t->agent_name, '"', sizeof t->agent_name - 1);
	memset(t->work_dir + 1, '"', sizeof t->work_dir - 2);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), 0, "%s", strerror(errno));
	cr_assert_gt(w.tail, MC_IPC_MAX_PAYLOAD, "a big frame");
	char err[256] = "";
	struct mc_ipc_frame f = queued(&w, MC_IPC_AGENT_TASK);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back->n_repos, MC_TASK_REPOS_MAX);
	mc_ipc_writer_free(&w);
	free(t);
	free(back);
}

Test(ipc_agentapi, sender_refuses_what_the_parser_would)
{
	struct mc_agent_task *t = running_task();
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	strlcpy(t->token_hash, "mat_secret", sizeof t->token_hash);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), -1, "never a token value");
	cr_assert_eq(errno, EINVAL);
	strlcpy(t->token_hash, HASH, sizeof t->token_hash);
	strlcpy(t->work_dir, "relative", sizeof t->work_dir);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), -1);
	strlcpy(t->work_dir, "/w", sizeof t->work_dir);
	t->n_repos = MC_TASK_REPOS_MAX + 1;
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), -1);
	t->n_repos = 1;
	t->repos[0].url[0] = '\0';
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), -1, "an empty url");
	cr_assert_eq(w.tail, 0, "nothing queued");
	mc_ipc_writer_free(&w);
	free(t);
}

Test(ipc_agentapi, parser_refuses_bad_payloads)
{
	static const char *const bad[] = {
		"", "[]", "{}",
		"{\"event\":\"paused\",\"task_id\":\"" TID "\"}",
		"{\"event\":\"ended\",\"task_id\":\"nope\"}",
		"{\"event\":\"running\",\"task_id\":\"" TID "\"}",
		"{\"event\":\"running\",\"task_id\":\"" TID "\",\"workspace_id\":\"" WS "\","
		"\"agent_id\":\"" AID "\",\"agent_name\":\"a\",\"work_dir\":\"/w\","
		"\"token_hash\":\"ABCDEF\"}",
		"{\"event\":\"running\",\"task_id\":\"" TID "\",\"workspace_id\":\"" WS "\","
		"\"agent_id\":\"" AID "\",\"agent_name\":\"a\",\"work_dir\":\"/w\","
		"\"token_hash\":\"" HASH "\",\"repos\":{}}",
		"{\"event\":\"running\",\"task_id\":\"" TID "\",\"workspace_id\":\"" WS "\","
		"\"agent_id\":\"" AID "\",\"agent_name\":\"a\",\"work_dir\":\"/w\","
		"\"token_hash\":\"" HASH "\",\"repos\":[{\"url\":\"\"}]}",
		"{\"event\":\"running\",\"task_id\":\"" TID "\",\"workspace_id\":\"" WS "\","
		"\"agent_id\":\"" AID "\",\"agent_name\":\"a\\u0001\",\"work_dir\":\"/w\","
		"\"token_hash\":\"" HASH "\"}",
	};
	struct mc_agent_task *t = calloc(1, sizeof *t);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[256] = "";
		struct mc_ipc_frame f = frame_str(MC_IPC_AGENT_TASK, bad[i]);
		cr_assert_eq(mc_ipc_parse_agent_task(&f, t, err, sizeof err), -1, "accepted %s", bad[i]);
		cr_assert_eq(errno, EPROTO);
		cr_assert_neq(err[0], '\0');
	}
	/* 65 repos */
	char *big = malloc(65 * 32 + 512);
	size_t n = (size_t)snprintf(big, 512, "{\"event\":\"running\",\"task_id\":\"" TID
				    "\",\"workspace_id\":\"" WS "\",\"agent_id\":\"" AID
				    "\",\"agent_name\":\"a\",\"work_dir\":\"/w\",\"token_hash\":\""
				    HASH "\",\"repos\":[");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(big + n, 32, "%s{\"url\":\"u%d\"}", i ? "," : "", i);
	memcpy(big + n, "]}", 3);
	char err[256];
	struct mc_ipc_frame f = frame_str(MC_IPC_AGENT_TASK, big);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, t, err, sizeof err), -1);
	cr_assert(strstr(err, "more than 64") != NULL, "%s", err);
	free(big);
	free(t);
}

Test(ipc_agentapi, agent_status_round_trips_and_is_checked)
{
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	struct mc_agent_status s = { .repo_cache_bytes = 123456789012ull, .checkouts_running = 3 };
	cr_assert_eq(mc_ipc_send_agent_status(&w, &s), 0);
	struct mc_agent_status back;
	char err[256] = "";
	struct mc_ipc_frame f = queued(&w, MC_IPC_AGENT_STATUS);
	cr_assert_eq(mc_ipc_parse_agent_status(&f, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.repo_cache_bytes, 123456789012ull);
	cr_assert_eq(back.checkouts_running, 3);
	mc_ipc_writer_free(&w);
	static const char *const bad[] = {
		"{}", "{\"repo_cache_bytes\":-1,\"checkouts_running\":0}",
		"{\"repo_cache_bytes\":1.5,\"checkouts_running\":0}",
		"{\"repo_cache_bytes\":\"1\",\"checkouts_running\":0}",
		"{\"repo_cache_bytes\":1,\"checkouts_running\":-2}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = frame_str(MC_IPC_AGENT_STATUS, bad[i]);
		cr_assert_eq(mc_ipc_parse_agent_status(&f, &back, err, sizeof err), -1, "%s", bad[i]);
	}
}

Test(ipc_agentapi, each_side_accepts_only_its_frames)
{
	cr_assert(mc_ipc_type_ok_for_agentapi(MC_IPC_AGENT_TASK));
	cr_assert(mc_ipc_type_ok_for_agentapi(MC_IPC_CONFIG) && mc_ipc_type_ok_for_agentapi(MC_IPC_TOKEN));
	cr_assert(!mc_ipc_type_ok_for_agentapi(MC_IPC_AGENT_STATUS));
	cr_assert(!mc_ipc_type_ok_for_agentapi(MC_IPC_TASK), "never a task token");
	cr_assert(mc_ipc_type_ok_from_agentapi(MC_IPC_AGENT_STATUS));
	cr_assert(mc_ipc_type_ok_from_agentapi(MC_IPC_HELLO) && mc_ipc_type_ok_from_agentapi(MC_IPC_PONG));
	cr_assert(!mc_ipc_type_ok_from_agentapi(MC_IPC_AGENT_TASK));
	cr_assert(!mc_ipc_type_ok_from_agentapi(MC_IPC_TASK));
	cr_assert(!mc_ipc_type_ok_for_worker(MC_IPC_AGENT_TASK));
	cr_assert(!mc_ipc_type_ok_from_link(MC_IPC_AGENT_STATUS));
	cr_assert_str_eq(mc_ipc_type_name(MC_IPC_AGENT_TASK), "AGENT_TASK");
	cr_assert_str_eq(mc_ipc_type_name(MC_IPC_AGENT_STATUS), "AGENT_STATUS");
}

Test(ipc_agentapi, task_state_carries_the_local_api_fields_when_running)
{
	struct mc_task_state_msg *m = calloc(1, sizeof *m), *back = calloc(1, sizeof *back);
	strlcpy(m->task_id, TID, sizeof m->task_id);
	strlcpy(m->runtime_id, RID, sizeof m->runtime_id);
	m->state = MC_TS_RUNNING;
	strlcpy(m->work_dir, "/w/x/workdir", sizeof m->work_dir);
	strlcpy(m->agent_id, AID, sizeof m->agent_id);
	strlcpy(m->agent_name, "Claude", sizeof m->agent_name);
	strlcpy(m->token_hash, HASH, sizeof m->token_hash);
	m->n_repos = 1;
	strlcpy(m->repos[0].url, "/srv/git/api", sizeof m->repos[0].url);
	strlcpy(m->repos[0].ref, "dev", sizeof m->repos[0].ref);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_task_state(&w, m), 0);
	char err[256] = "";
	struct mc_ipc_frame f = queued(&w, MC_IPC_TASK_STATE);
	cr_assert_eq(mc_ipc_parse_task_state(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(back->work_dir, "/w/x/workdir");
	cr_assert_str_eq(back->token_hash, HASH);
	cr_assert_eq(back->n_repos, 1);
	cr_assert_str_eq(back->repos[0].ref, "dev");
	mc_ipc_writer_free(&w);

	m->state = MC_TS_ENDED; /* not carried past running */
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_task_state(&w, m), 0);
	f = queued(&w, MC_IPC_TASK_STATE);
	cr_assert_eq(mc_ipc_parse_task_state(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(back->token_hash, "");
	cr_assert_eq(back->n_repos, 0);
	mc_ipc_writer_free(&w);

	static const char *const bad =
		"{\"task_id\":\"" TID "\",\"runtime_id\":\"" RID "\",\"state\":\"running\",\"pid\":1,"
		"\"pgid\":1,\"family\":\"\",\"last_output\":\"\",\"outcome\":\"\",\"work_dir\":\"/w\","
		"\"agent_id\":\"" AID "\",\"agent_name\":\"\",\"token_hash\":\"mat_x\"}";
	f = frame_str(MC_IPC_TASK_STATE, bad);
	cr_assert_eq(mc_ipc_parse_task_state(&f, back, err, sizeof err), -1);
	free(m);
	free(back);
}

Test(ipc_agentapi, task_repos_are_decoded_bounded)
{
	struct mc_task t;
	char err[256] = "";
	const char *ok = "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\"" RID
			 "\",\"workspace_id\":\"" WS "\",\"agent\":{\"id\":\"" AID "\",\"name\":\"A\"},"
			 "\"repos\":[{\"url\":\"  /srv/git/api \",\"ref\":\"main\",\"description\":\"x\"},"
			 "{\"url\":\"https://h/w.git\"}]}";
	cr_assert_eq(mc_task_parse(ok, strlen(ok), &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.n_repos, 2);
	cr_assert_str_eq(t.repos[0].url, "/srv/git/api", "trimmed");
	cr_assert_str_eq(t.repos[0].ref, "main");
	cr_assert_str_eq(t.repos[1].ref, "");
	mc_task_clear(&t);

	const char *none = "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\"" RID
			   "\",\"workspace_id\":\"" WS "\",\"agent\":{\"id\":\"" AID "\"},\"repos\":null}";
	cr_assert_eq(mc_task_parse(none, strlen(none), &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.n_repos, 0);
	mc_task_clear(&t);

	const char *bad = "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\"" RID
			  "\",\"workspace_id\":\"" WS "\",\"agent\":{\"id\":\"" AID "\"},"
			  "\"repos\":[{\"url\":\"a\"},{\"ref\":\"main\"}]}";
	cr_assert_eq(mc_task_parse(bad, strlen(bad), &t, err, sizeof err), -1);
	cr_assert(strstr(err, "repos[1].url") != NULL, "%s", err);
}

/* Issue 11: the workspace's agent identity rides AGENT_TASK "running". */
Test(ipc_agentapi, agent_task_carries_the_workspace_identity)
{
	struct mc_agent_task *t = running_task(), *back = calloc(1, sizeof *back);
	t->agent_switch = true;
	t->agent_uid = 61960;
	t->agent_gid = 62001;
	t->agent_extra_gid = 998;
	char err[256] = "";
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), 0, "%s", strerror(errno));
	struct mc_ipc_frame f = queued(&w, MC_IPC_AGENT_TASK);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert(back->agent_switch);
	cr_assert_eq(back->agent_uid, 61960);
	cr_assert_eq(back->agent_gid, 62001);
	cr_assert_eq(back->agent_extra_gid, 998);
	mc_ipc_writer_free(&w);

	/* the fallback: sent as false and -1 whatever the ids say */
	t->agent_switch = false;
	t->agent_uid = 0;
	mc_ipc_writer_init(&w);
	cr_assert_eq(mc_ipc_send_agent_task(&w, t), 0);
	f = queued(&w, MC_IPC_AGENT_TASK);
	cr_assert(memmem(f.payload, f.len, "\"agent_switch\":false", 20) != NULL);
	cr_assert_eq(mc_ipc_parse_agent_task(&f, back, err, sizeof err), 0, "%s", err);
	cr_assert(!back->agent_switch);
	cr_assert_eq(back->agent_uid, -1);
	cr_assert_eq(back->agent_gid, -1);
	cr_assert_eq(back->agent_extra_gid, -1);
	mc_ipc_writer_free(&w);

	/* never root, never an id out of range */
	static const long bad[][3] = {
		{ 0, 62001, -1 }, { 61960, 0, -1 }, { 61960, 62001, 0 }, { -1, 62001, -1 },
		{ 61960, 4294967295L, -1 }, { 61960, 62001, -2 },
	};
	mc_ipc_writer_init(&w);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t->agent_switch = true;
		t->agent_uid = bad[i][0];
		t->agent_gid = bad[i][1];
		t->agent_extra_gid = bad[i][2];
		cr_assert_eq(mc_ipc_send_agent_task(&w, t), -1, "sent case %zu", i);
		cr_assert_eq(errno, EINVAL);
	}
	cr_assert_eq(w.tail, 0, "nothing queued");
	mc_ipc_writer_free(&w);
	free(t);
	free(back);

#define RUNNING "{\"event\":\"running\",\"task_id\":\"" TID "\",\"workspace_id\":\"" WS "\"," \
		"\"agent_id\":\"" AID "\",\"agent_name\":\"a\",\"work_dir\":\"/w\"," \
		"\"token_hash\":\"" HASH "\""
	static const char *const refused[] = {
		RUNNING ",\"agent_switch\":\"yes\"}",
		RUNNING ",\"agent_switch\":true}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":61960,\"agent_gid\":62001}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":0,\"agent_gid\":62001,"
			"\"agent_extra_gid\":-1}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":61960,\"agent_gid\":0,"
			"\"agent_extra_gid\":-1}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":61960,\"agent_gid\":62001,"
			"\"agent_extra_gid\":0}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":61960.5,\"agent_gid\":62001,"
			"\"agent_extra_gid\":-1}",
		RUNNING ",\"agent_switch\":true,\"agent_uid\":4294967295,\"agent_gid\":62001,"
			"\"agent_extra_gid\":-1}",
	};
	struct mc_agent_task *p = calloc(1, sizeof *p);
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		char e[256] = "";
		struct mc_ipc_frame rf = frame_str(MC_IPC_AGENT_TASK, refused[i]);
		cr_assert_eq(mc_ipc_parse_agent_task(&rf, p, e, sizeof e), -1, "accepted %s",
			     refused[i]);
		cr_assert_eq(errno, EPROTO);
		cr_assert_neq(e[0], '\0');
	}
	/* absent: the daemon's own user (an older sender) */
	struct mc_ipc_frame ok = frame_str(MC_IPC_AGENT_TASK, RUNNING "}");
	char e[256] = "";
	cr_assert_eq(mc_ipc_parse_agent_task(&ok, p, e, sizeof e), 0, "%s", e);
	cr_assert(!p->agent_switch);
	cr_assert_eq(p->agent_uid, -1);
#undef RUNNING
	free(p);
}
