/* The worker's task executor (worker/task_*.c) against the emulator: the
 * test plays the link and the supervisor (it claims the task itself and
 * routes it with a TASK frame), the worker runs the fake claude / codex
 * CLIs of tests/agents. What is asserted is what the server saw, in order,
 * and what the agent got (its recorded argv, cwd and environment). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/api.h"
#include "common/api_task.h"
#include "common/clock.h"
#include "tests/support/fp_tasks.h"
#include "tests/support/worker_fixture.h"


static struct fixture F;
static char ROOT[256];      /* the test's temp dir: work/ and state/ below */
static char WORK[300], STATE[300];
static struct mc_builtin BUILTINS[2];

static void setup_dirs(void)
{
	strlcpy(ROOT, "/tmp/mc-texec-XXXXXX", sizeof ROOT);
	cr_assert_not_null(mkdtemp(ROOT));
	snprintf(WORK, sizeof WORK, "%s/work", ROOT);
	snprintf(STATE, sizeof STATE, "%s/state", ROOT);
	cr_assert_eq(mkdir(WORK, 0700), 0);
	cr_assert_eq(mkdir(STATE, 0700), 0);
}

static void fini(void)
{
	fx_stop(&F);
	if (ROOT[0])
		wh_rmtree(ROOT);
}

/* The emulator, and a worker whose claude (and codex) built-ins are the
 * fake CLIs; both built-in rows registered. */
static void start(long idle_ms)
{
	setup_dirs();
	fx_start_plane(&F, "[]");
	BUILTINS[0] = (struct mc_builtin){ "claude", "Claude", "2.1.197", FAKE_CLAUDE_BIN };
	BUILTINS[1] = (struct mc_builtin){ "codex", "Codex", "0.171.0", FAKE_CODEX_BIN };
	struct wh_opts o = { .builtins = BUILTINS, .n_builtins = 2, .workspaces_root = WORK,
			     .state_dir = STATE, .task_idle_timeout_ms = idle_ms,
			     .task_stop_grace_ms = 1000 };
	fx_start_worker_opts(&F, o);
	cr_assert(wh_wait_report_n(&F.h, 2, 8000), "the worker did not register claude and codex");
}

static char *runtime_of(const char *provider)
{
	cJSON *st = fp_state(&F.fp);
	cJSON *rt;
	char *id = NULL;
	cJSON_ArrayForEach(rt, cJSON_GetObjectItem(st, "runtimes")) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(rt, "provider"));
		if (p != NULL && strcmp(p, provider) == 0)
			id = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(rt, "id")));
	}
	cJSON_Delete(st);
	cr_assert_not_null(id, "no %s row", provider);
	return id;
}

static const char *queue_task(const char *runtime_id, const char *env, const char *extra)
{
	static char id[40];
	fpt_queue(&F.fp, runtime_id, env, extra, id);
	return id;
}

/* Claims (as the link would) and routes the claimed task to the worker.
 * Returns the task token (static). */
static const char *claim_and_route(const char *runtime_id, int slot)
{
	static char tok[128];
	struct mc_secret *t = mc_secret_new(TOKEN, strlen(TOKEN));
	struct mc_api_config ac = { .server_url = F.fp.url, .token = t,
				    .client_version = "test" };
	struct mc_api *api = mc_api_new(&ac);
	mc_secret_free(t);
	cr_assert_not_null(api);
	const char *ids[] = { runtime_id };
	struct mc_call *c = mc_call_claim_tasks(api, "test-daemon", 1, ids, 1);
	cr_assert_eq(mc_call_perform(c), 0, "claim: %s", mc_call_error(c)->message);
	struct mc_claimed cl = { 0 };
	cr_assert_eq(mc_call_take_claimed(c, &cl), 0);
	cr_assert_eq(cl.n, 1, "claimed %zu tasks", cl.n);
	strlcpy(tok, mc_secret_open(cl.v[0].token), sizeof tok);
	mc_secret_close(cl.v[0].token);
	cr_assert_eq(wh_send_task(&F.h, slot, tok, cl.v[0].task), 0);
	mc_claimed_clear(&cl);
	mc_call_free(c);
	mc_api_free(api);
	return tok;
}

static void pump(void)
{
	wh_pump(&F.h, 20);
}

static cJSON *task_detail(const char *id)
{
	return fpt_detail(&F.fp, id);
}

static char *task_status(const char *id)
{
	return fpt_field(&F.fp, id, "status");
}

static bool wait_status(const char *id, const char *want, int timeout_ms)
{
	return fpt_wait_status(&F.fp, id, want, timeout_ms, pump);
}

static void calls_of(const char *id, char *out, size_t n)
{
	fpt_calls(&F.fp, id, out, n);
}

#define count_op fpt_count_op
#define group_alive fpt_group_alive

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static bool wait_file(const char *path, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (access(path, F_OK) != 0) {
		if (mc_now_ms() >= until)
			return false;
		wh_pump(&F.h, 20);
	}
	return true;
}

/* A task of the agent env given on the provider's runtime, queued,
 * claimed and routed to slot 0; its id into tid. Returns the runtime id
 * (malloc'd). */
static char *route_new(const char *provider, const char *env, char tid[40])
{
	char *rid = runtime_of(provider);
	strlcpy(tid, queue_task(rid, env, ""), 40);
	claim_and_route(rid, 0);
	return rid;
}

/* The task row's failure_reason equals want. */
static void assert_reason(const char *tid, const char *want)
{
	char *why = fpt_field(&F.fp, tid, "failure_reason");
	cr_assert_str_eq(why, want);
	free(why);
}

TestSuite(texec, .fini = fini, .timeout = 60);

Test(texec, claude_task_runs_to_completed_with_messages_usage_and_session)
{
	start(0);
	char *rid = runtime_of("claude");
	char rec[400], env[600];
	snprintf(rec, sizeof rec, "%s/agent.rec", ROOT);
	snprintf(env, sizeof env, "\"FAKE_AGENT_MODE\":\"tool\",\"FAKE_AGENT_RECORD\":\"%s\"", rec);
	const char *id = queue_task(rid, env, "");
	char tid[40];
	strlcpy(tid, id, sizeof tid);
	const char *tok = claim_and_route(rid, 3);
	char token[128];
	strlcpy(token, tok, sizeof token);
	cr_assert(wait_status(tid, "completed", 20000), "the task did not complete");
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_ENDED, 5000), "no 'ended' state");
	cr_assert_str_eq(wh_task(&F.h, tid)->outcome, "completed");

	char calls[2048];
	calls_of(tid, calls, sizeof calls);
	cr_assert(strncmp(calls, "start,", 6) == 0, "start must come first: %s", calls);
	cr_assert_eq(count_op(calls, "complete"), 1, "calls: %s", calls);
	cr_assert_eq(count_op(calls, "fail"), 0, "calls: %s", calls);
	cr_assert(strstr(calls, "usage") != NULL && strstr(calls, "usage") < strstr(calls, "complete"),
		  "usage before complete: %s", calls);
	cr_assert(strstr(calls, "session") != NULL, "session pinned: %s", calls);
	cr_assert_eq(count_op(calls, "progress"), 2, "Launching, then Finishing: %s", calls);

	cJSON *j = task_detail(tid);
	cJSON *msgs = cJSON_GetObjectItem(j, "messages"), *m;
	long last = 0;
	bool tool_use = false, text = false;
	cJSON_ArrayForEach(m, msgs) {
		long seq = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "seq"));
		cr_assert_gt(seq, last, "seq must increase strictly");
		last = seq;
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(m, "type"));
		tool_use |= type && strcmp(type, "tool_use") == 0;
		text |= type && strcmp(type, "text") == 0;
	}
	cr_assert(tool_use && text, "messages: a tool_use and text expected");
	cJSON_Delete(j);

	/* What the agent got: its work dir as cwd, the task token, no daemon token. */
	cr_assert(wait_file(rec, 2000));
	char *r = read_file(rec);
	cr_assert_not_null(r);
	char want[512];
	snprintf(want, sizeof want, "env\tMULTICA_TOKEN=%s\n", token);
	cr_assert(strstr(r, want) != NULL, "MULTICA_TOKEN must be the claimed task token");
	cr_assert(strncmp(token, "mat_", 4) == 0);
	cr_assert(strstr(r, TOKEN) == NULL, "the daemon token reached the agent");
	cr_assert(strstr(r, "env\tMULTICA_TASK_SLOT=3\n") != NULL);
	snprintf(want, sizeof want, "cwd\t%s/%s/", WORK, WS);
	cr_assert(strstr(r, want) != NULL, "cwd under workspaces_root/<ws>/: %s", r);
	cr_assert(strstr(r, "argv\t--output-format\nargv\tstream-json\n") != NULL);
	free(rid);
}

Test(texec, failing_agent_is_reported_with_fail_never_complete)
{
	start(0);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"error\"", tid);
	cr_assert(wait_status(tid, "failed", 20000), "the task did not fail");
	char calls[2048];
	calls_of(tid, calls, sizeof calls);
	cr_assert_eq(count_op(calls, "complete"), 0, "calls: %s", calls);
	cr_assert_eq(count_op(calls, "fail"), 1, "calls: %s", calls);
	free(rid);
}

Test(texec, crash_mid_stream_fails_the_task)
{
	start(0);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"crash\"", tid);
	cr_assert(wait_status(tid, "failed", 20000));
	free(rid);
}

Test(texec, codex_task_runs_to_completed)
{
	start(0);
	char tid[40];
	char *rid = route_new("codex", "\"FAKE_AGENT_MODE\":\"tool\"", tid);
	cr_assert(wait_status(tid, "completed", 20000), "the codex task did not complete");
	free(rid);
}

Test(texec, cancel_while_running_stops_the_group_and_acks)
{
	start(0);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"grandchild\"", tid);
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_RUNNING, 10000), "never running");
	int pid = wh_task(&F.h, tid)->pid;
	cr_assert_gt(pid, 0);
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", tid);
	cr_assert_eq(fx_admin(&F, "POST", path, "{}"), 200);
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_ENDED, 20000), "the task did not end");
	char calls[2048];
	calls_of(tid, calls, sizeof calls);
	cr_assert_eq(count_op(calls, "cancel-ack"), 1, "calls: %s", calls);
	cr_assert_eq(count_op(calls, "complete") + count_op(calls, "fail"), 0, "calls: %s", calls);
	cr_assert(!group_alive(pid), "the agent's group outlived the cancel");
	free(rid);
}

Test(texec, deleted_task_stops_the_agent)
{
	start(0);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"hang\"", tid);
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_RUNNING, 10000));
	int pid = wh_task(&F.h, tid)->pid;
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", tid);
	cr_assert_eq(fx_admin(&F, "DELETE", path, NULL), 200);
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_ENDED, 20000));
	cr_assert(!group_alive(pid), "the agent's group outlived its task");
	free(rid);
}

Test(texec, idle_agent_is_stopped_and_failed_as_timeout)
{
	start(1500);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"hang\"", tid);
	cr_assert(wait_status(tid, "failed", 20000));
	assert_reason(tid, "timeout");
	free(rid);
}

Test(texec, stop_fails_running_tasks_runtime_offline_then_deregisters)
{
	start(0);
	char tid[40];
	char *rid = route_new("claude", "\"FAKE_AGENT_MODE\":\"hang\"", tid);
	cr_assert(wh_wait_task_state(&F.h, tid, MC_TS_RUNNING, 10000));
	int pid = wh_task(&F.h, tid)->pid;
	cr_assert_eq(wh_stop(&F.h, 15000), 0, "the worker did not stop cleanly");
	char *s = task_status(tid);
	cr_assert_str_eq(s, "failed");
	free(s);
	assert_reason(tid, "runtime_offline");
	cr_assert(!group_alive(pid), "the agent's group outlived its task");
	cr_assert(fx_wait_status(&F, rid, "offline", 3000), "deregistered after the fail");
	free(rid);
}

Test(texec, complete_retried_on_502_then_delivered_once)
{
	start(0);
	char *rid = runtime_of("claude");
	const char *id = queue_task(rid, "", "");
	char tid[40];
	strlcpy(tid, id, sizeof tid);
	char fault[256];
	snprintf(fault, sizeof fault,
		 "{\"method\":\"POST\",\"path_prefix\":\"/api/daemon/tasks/%s/complete\",\"status\":502,\"count\":1}",
		 tid);
	cr_assert_eq(fp_fault(&F.fp, fault), 200);
	claim_and_route(rid, 0);
	cr_assert(wait_status(tid, "completed", 30000), "not completed after the retry");
	free(rid);
}

Test(texec, task_token_not_task_scoped_is_refused_before_start)
{
	start(0);
	char *rid = runtime_of("claude");
	const char *id = queue_task(rid, "", "\"auth_token\":\"mul_not_a_task_token\"");
	char tid[40];
	strlcpy(tid, id, sizeof tid);
	claim_and_route(rid, 0);
	cr_assert(wait_status(tid, "failed", 20000));
	char calls[2048];
	calls_of(tid, calls, sizeof calls);
	cr_assert_eq(count_op(calls, "start"), 0, "never started: %s", calls);
	free(rid);
}

/* A family multica knows but multicad cannot run is never registered as a
 * runtime (its tasks would wait for nobody): it goes to failed_profiles
 * with the reason. */
Test(texec, family_without_backend_goes_to_failed_profiles)
{
	setup_dirs();
	const char *prof =
		"[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\",\"display_name\":\"Open\","
		"\"protocol_family\":\"opencode\",\"command_name\":\"my-claude\",\"fixed_args\":[],"
		"\"visibility\":\"workspace\",\"enabled\":true}]";
	fx_start_plane(&F, prof);
	BUILTINS[0] = (struct mc_builtin){ "claude", "Claude", "2.1.197", FAKE_CLAUDE_BIN };
	BUILTINS[1] = (struct mc_builtin){ "opencode", "OpenCode", "1.0.0", "/bin/true" };
	struct wh_opts o = { .builtins = BUILTINS, .n_builtins = 2, .workspaces_root = WORK,
			     .state_dir = STATE };
	fx_start_worker_opts(&F, o);
	cr_assert(fx_wait_jcount(&F, "POST", REG_PATH, 200, -1, "no task backend in multicad", 1,
				 8000), "the opencode profile must be a failed profile");
	cr_assert(wh_wait_report_n(&F.h, 1, 5000), "only the claude built-in is registered");
	cr_assert_eq(fx_jcount(&F, "POST", REG_PATH, FX_ANY_STATUS, -1, "\"opencode\""), 0,
		     "no runtime of type opencode may be registered");
}

/* The follow-up of a task resumes its session in its work dir; when the
 * CLI refuses the resume (and no tool ran), one fresh session runs
 * instead and the task still completes (upstream
 * TestExecuteAndDrain_ResumeFailureFallback). */
Test(texec, rejected_resume_is_retried_with_a_fresh_session)
{
	start(0);
	char *rid = runtime_of("claude");
	char t1[40], t2[40], rec[400], env[600];
	strlcpy(t1, queue_task(rid, "", ""), sizeof t1);
	claim_and_route(rid, 0);
	cr_assert(wait_status(t1, "completed", 20000));
	char *sid = fpt_field(&F.fp, t1, "session_id"), *wd = fpt_field(&F.fp, t1, "work_dir");
	cr_assert(sid[0] && wd[0], "the first task pinned no session/work dir");
	char extra[1024];
	snprintf(extra, sizeof extra, "\"prior_session_id\":\"%s\",\"prior_work_dir\":\"%s\"", sid,
		 wd);
	snprintf(rec, sizeof rec, "%s/agent2.rec", ROOT);
	snprintf(env, sizeof env, "\"FAKE_AGENT_MODE\":\"resume_reject\",\"FAKE_AGENT_RECORD\":\"%s\"",
		 rec);
	strlcpy(t2, queue_task(rid, env, extra), sizeof t2);
	claim_and_route(rid, 1);
	cr_assert(wait_status(t2, "completed", 20000), "the fresh-session retry did not complete");
	char *wd2 = fpt_field(&F.fp, t2, "work_dir"), *sid2 = fpt_field(&F.fp, t2, "session_id");
	cr_assert_str_eq(wd2, wd, "the prior work dir was not reused");
	cr_assert_str_neq(sid2, sid, "the refused session id was reported");
	char *r = read_file(rec);
	cr_assert_not_null(r);
	cr_assert(strstr(r, "argv\t--resume\n") == NULL, "the retry still asked to resume");
	cr_assert(fpt_seqs_increase(&F.fp, t2));
	free(sid);
	free(wd);
	free(wd2);
	free(sid2);
	free(rid);
}

/* A custom profile's runtime runs the profile's resolved command with its
 * fixed_args as the launch prefix, before the family's own arguments. */
Test(texec, custom_profile_runs_its_command_with_fixed_args_first)
{
	setup_dirs();
	char prof[1024];
	snprintf(prof, sizeof prof,
		 "[{\"id\":\"" PROF1 "\",\"workspace_id\":\"" WS "\",\"display_name\":\"Mine\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"%s\","
		 "\"fixed_args\":[\"--fixed-one\",\"two\"],\"visibility\":\"workspace\",\"enabled\":true}]",
		 FAKE_CLAUDE_BIN);
	fx_start_plane(&F, prof);
	struct wh_opts o = { .workspaces_root = WORK, .state_dir = STATE };
	fx_start_worker_opts(&F, o);
	cr_assert(wh_wait_report_n(&F.h, 1, 8000), "the profile's runtime was not registered");
	char *rid = fx_runtime_of(&F, PROF1);
	cr_assert_not_null(rid);
	char rec[400], env[600], tid[40];
	snprintf(rec, sizeof rec, "%s/agent.rec", ROOT);
	snprintf(env, sizeof env, "\"FAKE_AGENT_RECORD\":\"%s\"", rec);
	strlcpy(tid, queue_task(rid, env, ""), sizeof tid);
	claim_and_route(rid, 0);
	cr_assert(wait_status(tid, "completed", 20000));
	char *r = read_file(rec);
	cr_assert_not_null(r);
	char want[4300];
	snprintf(want, sizeof want, "argv\t%s\nargv\t--fixed-one\nargv\ttwo\nargv\t-p\n", FAKE_CLAUDE_BIN);
	cr_assert(strstr(r, want) != NULL, "launch prefix not first:\n%s", r);
	free(rid);
}
