/* The codex backend fed what `codex app-server` 0.171.0 prints
 * (tests/agents/README.md and tests/integration/test_real_cli.c): the JSON-RPC sequence it writes for
 * a fresh thread and for a resume that fails, the approvals it answers,
 * both notification dialects, and the one result. */
#include <criterion/criterion.h>

#include "backend_capture.h"

static struct cap C;
static struct mc_backend_session *S;

static void open_with(const struct mc_backend_opts *o)
{
	struct mc_backend_sink sink = cap_sink(&C);
	S = mc_backend_session_new(&mc_backend_codex, o, &sink);
	cr_assert_not_null(S);
	mc_backend_session_start(S);
}

static void open_session(const char *resume)
{
	struct mc_backend_opts o = { .prompt = "do it", .resume_id = resume, .cwd = "/w/t1",
				     .model = "gpt-5.5", .thread_name = "Fix the bug",
				     .resume_fallback_notice = "NOTICE: a new session" };
	open_with(&o);
}

static void close_session(void)
{
	mc_backend_session_free(S);
	S = NULL;
}

TestSuite(backend_codex, .fini = close_session, .timeout = 10);

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	cr_assert(cJSON_IsNumber(v), "%s is not a number", k);
	return v->valuedouble;
}

/* Written frame i: a request with that method (and id), or a notification. */
static cJSON *expect_frame(int i, const char *method, int id)
{
	cJSON *f = cap_written(&C, i);
	cr_assert_not_null(f, "no frame %d written", i);
	cr_assert_str_eq(jstr(f, "jsonrpc"), "2.0");
	cr_assert_str_eq(jstr(f, "method"), method, "frame %d", i);
	if (id > 0)
		cr_assert_eq((int)jnum(f, "id"), id, "frame %d", i);
	else
		cr_assert_null(cJSON_GetObjectItem(f, "id"), "a notification has no id");
	return f;
}

#define TH "019a1b2c-3d4e-7f00-8a9b-0c1d2e3f4a5b"

static void handshake_fresh(void)
{
	cJSON *f = expect_frame(0, "initialize", 1);
	cr_assert_str_eq(jstr(f, "params.clientInfo.name"), "multicad");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(f, "params"), "capabilities"), "experimentalApi")));
	cJSON_Delete(f);
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"configWarning\",\"params\":{\"summary\":\"x\"}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"userAgent\":\"codex/0.171.0\"}}");
	cJSON_Delete(expect_frame(1, "initialized", 0));
	f = expect_frame(2, "thread/start", 2);
	cr_assert_str_eq(jstr(f, "params.cwd"), "/w/t1");
	cr_assert_str_eq(jstr(f, "params.model"), "gpt-5.5");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "params"), "persistExtendedHistory")));
	cJSON_Delete(f);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"thread\":{\"id\":\"" TH "\"},\"model\":\"gpt-5.5\"}}");
}

static void turn_started(void)
{
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"turn\":{\"id\":\"turn-1\",\"status\":\"inProgress\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"turn/started\",\"params\":{\"threadId\":\"" TH "\","
		"\"turn\":{\"id\":\"turn-1\"}}}");
}

Test(backend_codex, TestCodexStartOrResumeThread_Fresh__a_tool_turn)
{
	open_session(NULL);
	handshake_fresh();
	cr_assert_eq(C.n_sids, 1);
	cr_assert_str_eq(C.sids[0], TH);
	cJSON *f = expect_frame(3, "thread/name/set", 3);
	cr_assert_str_eq(jstr(f, "params.name"), "Fix the bug");
	cJSON_Delete(f);
	f = expect_frame(4, "turn/start", 4);
	cr_assert_str_eq(jstr(f, "params.threadId"), TH);
	cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "params"), "input"), 0);
	cr_assert_str_eq(jstr(in, "type"), "text");
	cr_assert_str_eq(jstr(in, "text"), "do it");
	cJSON_Delete(f);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}");
	turn_started();
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/started\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"userMessage\",\"id\":\"u\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/started\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"commandExecution\",\"id\":\"call_1\",\"command\":\"/bin/bash -lc 'echo hello'\","
		"\"status\":\"inProgress\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"commandExecution\",\"id\":\"call_1\",\"command\":\"/bin/bash -lc 'echo hello'\","
		"\"aggregatedOutput\":\"hello\\n\",\"exitCode\":0,\"status\":\"completed\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":\"sub-thread\","
		"\"item\":{\"type\":\"agentMessage\",\"id\":\"s\",\"text\":\"from a subagent\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"agentMessage\",\"id\":\"m\",\"text\":\"The command printed hello. Done.\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"thread/tokenUsage/updated\",\"params\":{\"threadId\":\"" TH "\","
		"\"tokenUsage\":{\"total\":{\"inputTokens\":26,\"cachedInputTokens\":4,\"outputTokens\":10,"
		"\"reasoningOutputTokens\":0},\"last\":{\"inputTokens\":26,\"cachedInputTokens\":4,\"outputTokens\":10}}}}");
	cr_assert_eq(C.closes, 0);
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"turn/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"turn\":{\"id\":\"turn-1\",\"status\":\"completed\"}}}");
	cr_assert_eq(C.closes, 1, "the end of the turn closes stdin");
	cr_assert(mc_backend_session_turn_done(S));

	cr_assert_eq(C.n_msgs, 3);
	cr_assert_eq(C.msgs[0].type, MC_MSG_TOOL_USE);
	cr_assert_str_eq(C.msgs[0].tool, "exec_command");
	cr_assert_str_eq(C.msgs[0].input, "{\"command\":\"/bin/bash -lc 'echo hello'\"}");
	cr_assert_eq(C.msgs[1].type, MC_MSG_TOOL_RESULT);
	cr_assert_str_eq(C.msgs[1].text, "hello\n");
	cr_assert_str_eq(C.msgs[1].call_id, "call_1");
	cr_assert_eq(C.msgs[2].type, MC_MSG_TEXT);
	cr_assert_str_eq(C.msgs[2].text, "The command printed hello. Done.");

	finish_exit(S, 0, "WARNING: proceeding, even though ...");
	cr_assert_eq(C.n_results, 1);
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(C.out, "The command printed hello. Done.");
	cr_assert_str_eq(C.sid, TH);
	cr_assert(C.r.tool_ran);
	cr_assert_eq(C.n_usage, 1);
	cr_assert_str_eq(C.usage[0].model, "gpt-5.5");
	cr_assert_eq(C.usage[0].u.input, 22, "stored input excludes cached input");
	cr_assert_eq(C.usage[0].u.cache_read, 4);
	cr_assert_eq(C.usage[0].u.output, 10);
}

Test(backend_codex, TestCodexStartOrResumeThread_ResumeErrorFallsBackToStart)
{
	open_session("old-thread");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	cJSON *f = expect_frame(2, "thread/resume", 2);
	cr_assert_str_eq(jstr(f, "params.threadId"), "old-thread");
	cr_assert_str_eq(jstr(f, "params.cwd"), "/w/t1");
	cJSON_Delete(f);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32600,\"message\":\"no rollout found "
		"for thread id old-thread\"}}");
	cJSON_Delete(expect_frame(3, "thread/start", 3));
	cr_assert_eq(C.n_results, 0, "a protocol error is not the end");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"thread\":{\"id\":\"" TH "\"}}}");
	cJSON_Delete(expect_frame(4, "thread/name/set", 4));
	f = expect_frame(5, "turn/start", 5);
	cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "params"), "input"), 0);
	cr_assert_str_eq(jstr(in, "text"), "NOTICE: a new session\n\ndo it",
			 "a fresh thread where a resume was expected carries the notice");
	cJSON_Delete(f);
	cr_assert_str_eq(C.sids[0], TH);
}

Test(backend_codex, resume_accepted_counts_only_this_runs_usage)
{
	open_session(TH);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"thread\":{\"id\":\"" TH "\"}}}");
	cJSON *f = expect_frame(4, "turn/start", 4);
	cJSON *in = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "params"), "input"), 0);
	cr_assert_str_eq(jstr(in, "text"), "do it");
	cJSON_Delete(f);
	turn_started();
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"thread/tokenUsage/updated\",\"params\":{\"threadId\":\"" TH "\","
		"\"tokenUsage\":{\"total\":{\"inputTokens\":126,\"cachedInputTokens\":4,\"outputTokens\":60},"
		"\"last\":{\"inputTokens\":26,\"cachedInputTokens\":4,\"outputTokens\":10}}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"thread/tokenUsage/updated\",\"params\":{\"threadId\":\"" TH "\","
		"\"tokenUsage\":{\"total\":{\"inputTokens\":156,\"cachedInputTokens\":4,\"outputTokens\":65},"
		"\"last\":{\"inputTokens\":30,\"cachedInputTokens\":0,\"outputTokens\":5}}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"agentMessage\",\"id\":\"m\",\"text\":\"ok\",\"phase\":\"final_answer\"}}}");
	cr_assert_eq(C.closes, 1, "a final answer ends the turn");
	finish_exit(S, 0, NULL);
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(C.out, "ok");
	cr_assert_eq(C.usage[0].u.input, 52);
	cr_assert_eq(C.usage[0].u.cache_read, 4);
	cr_assert_eq(C.usage[0].u.output, 15);
}

Test(backend_codex, TestCodexTurnNotificationGate)
{
	open_session(NULL);
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"turn/completed\",\"params\":{\"turn\":{\"id\":\"x\","
		"\"status\":\"failed\",\"error\":{\"message\":\"early\"}}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"item\":{\"type\":"
		"\"agentMessage\",\"id\":\"m\",\"text\":\"early\"}}}");
	cr_assert_eq(C.n_msgs, 0);
	cr_assert_eq(C.closes, 0);
	handshake_fresh();
	cr_assert_eq(C.n_results, 0);
}

Test(backend_codex, TestCodexHandleServerRequest)
{
	open_session(NULL);
	handshake_fresh();
	turn_started();
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"item/commandExecution/requestApproval\","
		"\"params\":{\"itemId\":\"call_1\"}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":\"a2\",\"method\":\"applyPatchApproval\",\"params\":{}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":902,\"method\":\"item/permissions/requestApproval\","
		"\"params\":{\"permissions\":{\"network\":{\"enabled\":true}}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":903,\"method\":\"mcpServer/elicitation/request\",\"params\":{}}");
	int base = cap_n_written(&C) - 4;
	cJSON *r = cap_written(&C, base);
	cr_assert_eq((int)jnum(r, "id"), 900);
	cr_assert_str_eq(jstr(r, "result.decision"), "accept");
	cJSON_Delete(r);
	r = cap_written(&C, base + 1);
	cr_assert_str_eq(jstr(r, "id"), "a2", "the id is echoed as sent");
	cr_assert_str_eq(jstr(r, "result.decision"), "accept");
	cJSON_Delete(r);
	r = cap_written(&C, base + 2);
	cr_assert_str_eq(jstr(r, "result.scope"), "turn");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
		cJSON_GetObjectItem(r, "result"), "permissions"), "network"), "enabled")));
	cJSON_Delete(r);
	r = cap_written(&C, base + 3);
	cr_assert_str_eq(jstr(r, "result.action"), "accept");
	cJSON_Delete(r);
	cr_assert_eq(C.closes, 0);

	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":904,\"method\":\"item/tool/requestUserInput\",\"params\":{}}");
	r = cap_written(&C, cap_n_written(&C) - 1);
	cr_assert_eq((int)jnum(cJSON_GetObjectItem(r, "error"), "code"), -32601);
	cr_assert_str_eq(jstr(r, "error.message"),
			 "unsupported codex app-server request: item/tool/requestUserInput");
	cJSON_Delete(r);
	cr_assert_eq(C.closes, 1, "an unsupported request fails the turn");
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "unsupported codex app-server request: item/tool/requestUserInput");
	cr_assert_str_eq(C.sid, TH, "a failed turn still reports its thread");
}

Test(backend_codex, TestCodexRawTurnCompleted_Failed)
{
	open_session(NULL);
	handshake_fresh();
	turn_started();
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"error\",\"params\":{\"threadId\":\"" TH "\","
		"\"error\":{\"message\":\"retrying\"},\"willRetry\":true}}");
	cr_assert_eq(C.closes, 0, "an error codex retries is not terminal");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"turn/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"turn\":{\"id\":\"turn-1\",\"status\":\"failed\",\"error\":{\"message\":\"unexpected status "
		"401 Unauthorized: fake 401 for testing\",\"codexErrorInfo\":{\"httpConnectionFailed\":"
		"{\"httpStatusCode\":401}}}}}}");
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "unexpected status 401 Unauthorized: fake 401 for testing");
}

Test(backend_codex, TestCodexRawTurnCompleted_Interrupted)
{
	open_session(NULL);
	handshake_fresh();
	turn_started();
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"turn/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"turn\":{\"id\":\"turn-1\",\"status\":\"interrupted\"}}}");
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_ABORTED);
}

Test(backend_codex, legacy_dialect_locks_out_v2)
{
	open_session(NULL);
	handshake_fresh();
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"codex/event/task_started\",\"params\":{\"msg\":{\"type\":\"task_started\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"codex/event/exec_command_begin\",\"params\":{\"msg\":{"
		"\"type\":\"exec_command_begin\",\"call_id\":\"c1\",\"command\":[\"bash\",\"-lc\",\"ls\"]}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"codex/event/exec_command_end\",\"params\":{\"msg\":{"
		"\"type\":\"exec_command_end\",\"call_id\":\"c1\",\"aggregated_output\":\"a b\",\"exit_code\":0}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":\"" TH "\","
		"\"item\":{\"type\":\"agentMessage\",\"id\":\"m\",\"text\":\"v2 duplicate\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"codex/event/agent_message\",\"params\":{\"msg\":{"
		"\"type\":\"agent_message\",\"message\":\"listed\"}}}");
	feed(S, "{\"jsonrpc\":\"2.0\",\"method\":\"codex/event/task_complete\",\"params\":{\"msg\":{"
		"\"type\":\"task_complete\",\"last_agent_message\":\"listed\",\"usage\":{\"input_tokens\":9,"
		"\"cached_input_tokens\":2,\"output_tokens\":3}}}}");
	cr_assert_eq(C.n_msgs, 3);
	cr_assert_eq(C.msgs[0].type, MC_MSG_TOOL_USE);
	cr_assert_str_eq(C.msgs[0].input, "{\"command\":\"bash -lc ls\"}");
	cr_assert_eq(C.msgs[1].type, MC_MSG_TOOL_RESULT);
	cr_assert_str_eq(C.msgs[1].text, "a b");
	cr_assert_str_eq(C.msgs[2].text, "listed");
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(C.out, "listed");
	cr_assert_eq(C.usage[0].u.input, 7);
	cr_assert_eq(C.usage[0].u.output, 3);
}

Test(backend_codex, initialize_error_fails_without_session)
{
	open_session(NULL);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000,\"message\":\"boom\"}}");
	cr_assert_eq(C.closes, 1);
	finish_exit(S, 1, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "initialize: boom (code=-32000)");
	cr_assert_str_eq(C.sid, "");
}

Test(backend_codex, exit_mid_turn_is_failed)
{
	open_session(NULL);
	handshake_fresh();
	turn_started();
	finish_exit(S, 3, "thread 'main' panicked");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "codex app-server exited during the turn (exit status 3); codex stderr: "
				"thread 'main' panicked");
	cr_assert_str_eq(C.sid, TH);
}

Test(backend_codex, oversized_resume_answer_is_a_rejected_resume)
{
	open_session("old");
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	char cut[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"thread\":{\"id\":\"old\",\"turns\":[";
	mc_backend_session_line(S, cut, strlen(cut), true);
	cr_assert_eq(C.closes, 1);
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert(C.r.resume_rejected);
	cr_assert_str_eq(C.sid, "");
}

Test(backend_codex, argv_prefix_and_filters)
{
	char *fixed[] = { "--listen", "ws://x", "-c", "model=\"o3\"", "--profile", "p" };
	char *custom[] = { "--listen=tcp://y", "-c", "shell_environment_policy.inherit=all",
			   "--config=shell_environment_policy.x=1", "-c", "foo=1", "--listen", "z", "--enable", "x" };
	struct mc_backend_opts o = { .custom_args = custom, .n_custom_args = 10, .codex_home_set = true };
	struct mc_argv a = { 0 };
	cr_assert_eq(mc_backend_codex.build_argv("/usr/bin/codex", fixed, 6, &o, &a), 0);
	static const char *const want[] = { "/usr/bin/codex", "-c", "model=\"o3\"", "--profile", "p",
					    "app-server", "--listen", "stdio://", "-c", "foo=1",
					    "--enable", "x", NULL };
	for (size_t i = 0; want[i] != NULL; i++) {
		cr_assert_lt(i, a.n);
		cr_assert_str_eq(a.v[i], want[i], "argv[%zu]", i);
	}
	cr_assert_eq(a.n, 12);
	mc_argv_free(&a);
	o.codex_home_set = false;
	cr_assert_eq(mc_backend_codex.build_argv("codex", NULL, 0, &o, &a), 0);
	cr_assert_eq(a.n, 11, "without CODEX_HOME the shell policy overrides stay");
	mc_argv_free(&a);
}

Test(backend_codex, handshake_rpc_without_answer_times_out)
{
	struct mc_backend_opts o = { .prompt = "p", .rpc_timeout_ms = 50 };
	open_with(&o);
	mc_ms_t d = mc_backend_session_next_deadline(S);
	cr_assert_gt(d, 0, "initialize is bounded");
	mc_backend_session_tick(S, d - 1);
	cr_assert_eq(C.closes, 0);
	feed(S, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	mc_ms_t d2 = mc_backend_session_next_deadline(S);
	cr_assert_geq(d2, d, "thread/start has its own bound");
	mc_backend_session_tick(S, d2);
	cr_assert_eq(C.closes, 1);
	cr_assert(mc_backend_session_turn_done(S));
	struct mc_backend_end e = { .cause = MC_END_EXIT, .exited = false };
	mc_backend_session_finish(S, &e);
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "thread/start: no answer within 50 ms");
	cr_assert_eq(mc_backend_session_next_deadline(S), -1);
}
