/* Tasks through the whole daemon with the REAL claude and codex CLIs
 * (installed pinned from npm by the real_cli_install fixture) against our
 * fake model APIs on loopback: a task with a tool call ends completed with
 * its messages and usage at the emulator; a second one resumes the first
 * one's session in its work dir; a third is cancelled mid-turn and leaves
 * no process. Skipped, saying so, only when the npm registry could not be
 * reached. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "tests/support/daemon_fixture.h"
#include "tests/support/fp_tasks.h"
#include "tests/support/real_cli.h"

static struct rc_clis CLIS;
static struct rc_sandbox SB;
static struct rc_fake ANT, OAI;
static char **ENV;

static void fini(void)
{
	dfx_fini();
	rc_fake_stop(&ANT);
	rc_fake_stop(&OAI);
	rc_env_free(ENV);
	rc_sandbox_free(&SB);
}

TestSuite(real_daemon, .fini = fini, .timeout = 240);

static void start(void)
{
	char why[512];
	enum rc_avail a = rc_find(&CLIS, why, sizeof why);
	if (a == RC_NO_REGISTRY)
		cr_skip_test("skipped: the npm registry cannot be reached, so the real CLIs are not installed (%s)", why);
	cr_assert_eq(a, RC_READY, "the real CLIs are not usable: %s", why);
	cr_assert_eq(rc_sandbox_new(&SB), 0);
	cr_assert_eq(rc_fake_start(&ANT, RC_API_ANTHROPIC, SB.root), 0);
	cr_assert_eq(rc_fake_start(&OAI, RC_API_OPENAI, SB.root), 0);
	cr_assert_eq(rc_codex_home_seed(SB.codex_home, &OAI), 0);
	ENV = rc_fake_env(&SB, &ANT, &OAI);
	cr_assert_not_null(ENV);

	dfx_start_plane(1, NULL, NULL, NULL);
	static char providers[2 * 4200];
	cr_assert_eq(rc_providers_config(&CLIS, providers, sizeof providers), 0);
	struct dp_config c = { .workspaces = dfx_ws_list(1, 1), .providers = providers,
			       .daemon_extra = "task_poll_interval = 300ms\ntask_stop_grace = 2s\n",
			       .stop_timeout = "10s", .http_timeout = "10s" };
	dfx_prepare_daemon(&c, NULL);
	D.extra_env = (const char *const *)ENV;
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 2, 30000);
}

static void runtime(const char *provider, char out[DP_ID_LEN + 1])
{
	cr_assert(dp_runtime_id(&FP, WS[1], provider, NULL, out), "no %s row", provider);
}

/* A chat task (its message steers the fake model); prior: the task whose
 * session and work dir it continues, or NULL. */
static void queue_chat(const char *rid, const char *message, const char *prior, char id[40])
{
	char extra[2048];
	int n = snprintf(extra, sizeof extra,
			 "\"chat_session_id\":\"e1111111-1111-4111-8111-111111111111\","
			 "\"chat_message\":\"%s\"", message);
	if (prior != NULL) {
		char *sid = fpt_field(&FP, prior, "session_id");
		char *wd = fpt_field(&FP, prior, "work_dir");
		cr_assert(sid[0] && wd[0], "the first task left no session (%s) or work dir (%s)",
			  sid, wd);
		snprintf(extra + n, sizeof extra - (size_t)n,
			 ",\"prior_session_id\":\"%s\",\"prior_work_dir\":\"%s\"", sid, wd);
		free(sid);
		free(wd);
	}
	fpt_queue(&FP, rid, "", extra, id);
}

static bool has_message(const char *id, const char *type)
{
	cJSON *j = fpt_detail(&FP, id), *m;
	bool found = false;
	cJSON_ArrayForEach(m, cJSON_GetObjectItem(j, "messages")) {
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(m, "type"));
		found |= t != NULL && strcmp(t, type) == 0;
	}
	cJSON_Delete(j);
	return found;
}

static bool has_usage(const char *id)
{
	cJSON *j = fpt_detail(&FP, id);
	cJSON *u = cJSON_GetObjectItem(j, "usage");
	bool ok = cJSON_GetArraySize(u) > 0;
	cJSON_Delete(j);
	return ok;
}

static void run_family(const char *provider)
{
	start();
	char rid[DP_ID_LEN + 1], t1[40], t2[40], t3[40];
	runtime(provider, rid);

	queue_chat(rid, "USE_TOOL RUN: echo hello", NULL, t1);
	cr_assert(fpt_wait_status(&FP, t1, "completed", 90000, NULL),
		  "the %s task with a tool call did not complete", provider);
	cr_assert(has_message(t1, "tool_use"), "no tool_use message");
	cr_assert(has_message(t1, "text"), "no text message");
	cr_assert(has_usage(t1), "no usage reported");
	cr_assert(fpt_seqs_increase(&FP, t1));

	/* The follow-up resumes the session in the same work dir. */
	queue_chat(rid, "and again", t1, t2);
	cr_assert(fpt_wait_status(&FP, t2, "completed", 90000, NULL), "the resumed task failed");
	char *s1 = fpt_field(&FP, t1, "session_id"), *s2 = fpt_field(&FP, t2, "session_id");
	char *w1 = fpt_field(&FP, t1, "work_dir"), *w2 = fpt_field(&FP, t2, "work_dir");
	cr_assert_str_eq(s2, s1, "the session was not resumed");
	cr_assert_str_eq(w2, w1, "the work dir was not reused");
	free(s1);
	free(s2);
	free(w1);
	free(w2);

	/* Cancelled mid-turn: cancel-ack, and nothing of the agent is left. */
	queue_chat(rid, "HANG", NULL, t3);
	DFX_WAIT_UP(fpt_count_task_procs(t3) > 0, 60000, "the cancel test's agent never ran");
	cr_assert(fpt_wait_status(&FP, t3, "running", 30000, NULL));
	sleep(1);
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", t3);
	cr_assert_eq(dfx_admin("POST", path, "{}"), 200);
	int left = 1;
	for (int i = 0; i < 300 && (left = fpt_count_task_procs(t3)) > 0; i++)
		usleep(50000);
	cr_assert_eq(left, 0, "%d processes of the cancelled %s task are left", left, provider);
	char calls[4096];
	for (int i = 0; i < 200; i++) {
		fpt_calls(&FP, t3, calls, sizeof calls);
		if (fpt_count_op(calls, "cancel-ack") > 0)
			break;
		usleep(50000);
	}
	cr_assert_eq(fpt_count_op(calls, "cancel-ack"), 1, "calls: %s", calls);
}

Test(real_daemon, claude_task_tool_call_resume_and_cancel)
{
	run_family("claude");
}

Test(real_daemon, codex_task_tool_call_resume_and_cancel)
{
	run_family("codex");
}
