/* The claude backend fed the lines the real Claude Code 2.1.197 prints
 * (tests/agents/README.md and tests/integration/test_real_cli.c): what the sink sees is what the
 * executor reports to the server. */
#include <criterion/criterion.h>

#include "backend_capture.h"

#define SID "11db5f9c-4a57-4f3e-9d6b-0c1a2b3c4d5e"

static const char *INIT =
	"{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":\"/tmp/w\",\"session_id\":\"" SID "\","
	"\"tools\":[\"Task\",\"Bash\"],\"mcp_servers\":[],\"model\":\"claude-opus-4-8[1m]\","
	"\"permissionMode\":\"bypassPermissions\",\"apiKeySource\":\"ANTHROPIC_API_KEY\","
	"\"claude_code_version\":\"2.1.197\",\"uuid\":\"u-1\"}";
static const char *TEXT =
	"{\"type\":\"assistant\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":"
	"\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\",\"text\":"
	"\"Running a command.\"}],\"stop_reason\":null,\"usage\":{\"input_tokens\":11,"
	"\"output_tokens\":1}},\"parent_tool_use_id\":null,\"session_id\":\"" SID "\",\"uuid\":\"u-2\"}";
static const char *TOOL_USE =
	"{\"type\":\"assistant\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":"
	"\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	"\"toolu_01\",\"name\":\"Bash\",\"input\":{\"command\":\"echo hello\",\"description\":"
	"\"say hello\"}}],\"usage\":{\"input_tokens\":11,\"output_tokens\":1}},\"session_id\":\"" SID "\"}";
static const char *TOOL_RESULT =
	"{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu_01\","
	"\"type\":\"tool_result\",\"content\":\"hello\",\"is_error\":false}]},\"parent_tool_use_id\":null,"
	"\"session_id\":\"" SID "\",\"timestamp\":\"2026-12-01T10:00:00Z\",\"tool_use_result\":{"
	"\"stdout\":\"hello\",\"stderr\":\"\",\"interrupted\":false}}";
static const char *FINAL_TEXT =
	"{\"type\":\"assistant\",\"message\":{\"id\":\"msg_02\",\"type\":\"message\",\"role\":"
	"\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\",\"text\":"
	"\"The command printed hello. Done.\"}],\"usage\":{\"input_tokens\":11,\"output_tokens\":13}},"
	"\"session_id\":\"" SID "\"}";
static const char *RESULT =
	"{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"api_error_status\":null,"
	"\"duration_ms\":187,\"duration_api_ms\":78,\"num_turns\":2,\"result\":\"The command printed "
	"hello. Done.\",\"stop_reason\":\"end_turn\",\"session_id\":\"" SID "\",\"total_cost_usd\":"
	"0.000276,\"usage\":{\"input_tokens\":22,\"output_tokens\":14,\"cache_creation_input_tokens\":0,"
	"\"cache_read_input_tokens\":0},\"modelUsage\":{\"claude-sonnet-4-5\":{\"inputTokens\":22,"
	"\"outputTokens\":14,\"cacheReadInputTokens\":7,\"cacheCreationInputTokens\":3,\"costUSD\":"
	"0.000276,\"contextWindow\":200000}},\"permission_denials\":[],\"terminal_reason\":"
	"\"completed\",\"uuid\":\"u-9\"}";

static struct cap C;
static struct mc_backend_session *S;

static struct mc_backend_session *open_session(const char *resume)
{
	struct mc_backend_sink sink = cap_sink(&C);
	struct mc_backend_opts o = { .prompt = "say \"hi\"\nplease", .resume_id = resume,
				     .cwd = "/tmp/w" };
	S = mc_backend_session_new(&mc_backend_claude, &o, &sink);
	cr_assert_not_null(S);
	mc_backend_session_start(S);
	return S;
}

static void close_session(void)
{
	mc_backend_session_free(S);
	S = NULL;
}

TestSuite(backend_claude, .fini = close_session, .timeout = 10);

Test(backend_claude, table_has_claude_and_codex_only)
{
	cr_assert_eq(mc_backend_find("claude"), &mc_backend_claude);
	cr_assert_eq(mc_backend_find("codex"), &mc_backend_codex);
	cr_assert_null(mc_backend_find("opencode"));
	cr_assert_null(mc_backend_find(NULL));
	cr_assert_str_eq(mc_backend_claude.brief_file, "CLAUDE.md");
	cr_assert_str_eq(mc_backend_codex.brief_file, "AGENTS.md");
}

Test(backend_claude, TestClaudeHandleAssistantText__TestBuildClaudeInputEncodesUserMessage)
{
	open_session(NULL);
	cr_assert_eq(cap_n_written(&C), 1);
	cJSON *f = cap_written(&C, 0);
	cr_assert_str_eq(jstr(f, "type"), "user");
	cr_assert_str_eq(jstr(f, "message.role"), "user");
	cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "message"), "content"), 0);
	cr_assert_str_eq(jstr(b, "type"), "text");
	cr_assert_str_eq(jstr(b, "text"), "say \"hi\"\nplease");
	cJSON_Delete(f);

	feed(S, INIT);
	cr_assert_eq(C.n_sids, 1);
	cr_assert_str_eq(C.sids[0], SID);
	feed(S, TEXT);
	cr_assert_eq(C.n_msgs, 1);
	cr_assert_eq(C.msgs[0].type, MC_MSG_TEXT);
	cr_assert_str_eq(C.msgs[0].text, "Running a command.");
	cr_assert_eq(C.closes, 0);
	cr_assert_not(mc_backend_session_turn_done(S));
	feed(S, RESULT);
	cr_assert_eq(C.closes, 1, "a result line ends the run: stdin is closed");
	cr_assert(mc_backend_session_turn_done(S));
	cr_assert_eq(C.n_results, 0, "the result waits for the exit status");
	finish_exit(S, 0, "");
	cr_assert_eq(C.n_results, 1);
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(C.out, "The command printed hello. Done.");
	cr_assert_str_eq(C.err, "");
	cr_assert_str_eq(C.sid, SID);
	cr_assert_not(C.r.tool_ran);
	/* modelUsage replaces what the assistant lines summed */
	cr_assert_eq(C.n_usage, 1);
	cr_assert_str_eq(C.usage[0].model, "claude-sonnet-4-5");
	cr_assert_eq(C.usage[0].u.input, 22);
	cr_assert_eq(C.usage[0].u.output, 14);
	cr_assert_eq(C.usage[0].u.cache_read, 7);
	cr_assert_eq(C.usage[0].u.cache_write, 3);
	finish_exit(S, 0, "");
	cr_assert_eq(C.n_results, 1, "exactly one result");
}

Test(backend_claude, TestClaudeHandleToolUse__UserToolResult)
{
	open_session(NULL);
	feed(S, INIT);
	feed(S, TEXT);
	feed(S, TOOL_USE);
	feed(S, TOOL_RESULT);
	feed(S, FINAL_TEXT);
	cr_assert_eq(C.n_msgs, 4);
	cr_assert_eq(C.msgs[1].type, MC_MSG_TOOL_USE);
	cr_assert_str_eq(C.msgs[1].tool, "Bash");
	cr_assert_str_eq(C.msgs[1].call_id, "toolu_01");
	cJSON *in = cJSON_Parse(C.msgs[1].input);
	cr_assert_str_eq(jstr(in, "command"), "echo hello");
	cr_assert_str_eq(jstr(in, "description"), "say hello");
	cJSON_Delete(in);
	cr_assert_eq(C.msgs[2].type, MC_MSG_TOOL_RESULT);
	cr_assert_str_eq(C.msgs[2].tool, "Bash", "the tool is found by its call id");
	cr_assert_str_eq(C.msgs[2].text, "hello");
	cr_assert_eq(C.msgs[3].type, MC_MSG_TEXT);
	/* no result line: output falls back to the last text-only turn, but a
	 * stream without result is a failure */
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "claude stream ended without terminal result");
	cr_assert_str_eq(C.out, "", "failed runs have no output");
	cr_assert(C.r.tool_ran);
	/* usage summed per message (msg_01 counted once, msg_02 once) */
	cr_assert_eq(C.n_usage, 1);
	cr_assert_eq(C.usage[0].u.input, 22);
	cr_assert_eq(C.usage[0].u.output, 14);
}

Test(backend_claude, output_falls_back_to_last_text_turn_without_tool)
{
	open_session(NULL);
	feed(S, INIT);
	feed(S, TEXT);
	feed(S, TOOL_USE);
	feed(S, FINAL_TEXT);
	feed(S, "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"" SID "\"}");
	finish_exit(S, 0, NULL);
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED);
	cr_assert_str_eq(C.out, "The command printed hello. Done.");
}

static void error_result(int status, const char *text)
{
	open_session(NULL);
	feed(S, INIT);
	feed(S, "{\"type\":\"assistant\",\"message\":{\"id\":\"x\",\"model\":\"<synthetic>\",\"role\":"
		"\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"API Error\"}]},"
		"\"error\":\"server_error\"}");
	char line[1024];
	snprintf(line, sizeof line,
		 "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":%d,"
		 "\"num_turns\":1,\"result\":\"%s\",\"session_id\":\"" SID "\"}", status, text);
	feed(S, line);
	finish_exit(S, 1, "some warning\n");
	cr_assert_eq(C.n_results, 1);
	cr_assert_eq(C.r.status, MC_RESULT_FAILED, "is_error means failed although subtype is success");
	char want[1024];
	snprintf(want, sizeof want, "%s; claude stderr: some warning", text);
	cr_assert_str_eq(C.err, want);
	cr_assert_str_eq(C.out, "");
	cr_assert_not(C.r.resume_rejected);
	cr_assert_str_eq(C.sid, SID);
	cr_assert_eq(C.n_usage, 0, "a synthetic message has no usage");
}

Test(backend_claude, is_error_401)
{
	error_result(401, "Failed to authenticate. API Error: 401 fake 401 for testing");
}

Test(backend_claude, is_error_500)
{
	error_result(500, "API Error: 500 fake 500 for testing. This is a server-side issue");
}

Test(backend_claude, is_error_429)
{
	error_result(429, "API Error: Request rejected (429) · fake 429 for testing");
}

Test(backend_claude, error_max_turns_reads_errors_array)
{
	open_session(NULL);
	feed(S, "{\"type\":\"result\",\"subtype\":\"error_max_turns\",\"is_error\":true,\"num_turns\":2,"
		"\"stop_reason\":\"tool_use\",\"terminal_reason\":\"max_turns\",\"errors\":[\"Reached "
		"maximum number of turns (1)\"],\"session_id\":\"" SID "\"}");
	finish_exit(S, 1, "");
	cr_assert_str_eq(C.err, "Reached maximum number of turns (1)");
}

Test(backend_claude, TestClaudeTerminalReasonFailure)
{
	open_session(NULL);
	feed(S, "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"terminal_reason\":"
		"\"prompt_too_long\",\"result\":\"x\",\"session_id\":\"" SID "\"}");
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert(strstr(C.err, "\"prompt_too_long\"") != NULL, "%s", C.err);
}

Test(backend_claude, TestResumeWasRejected_NoConversationFound)
{
	open_session("0b7d2c6e-1111-2222-3333-444455556666");
	feed(S, "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"is_error\":true,"
		"\"num_turns\":0,\"session_id\":\"0b7d2c6e-1111-2222-3333-444455556666\"}");
	finish_exit(S, 1, "No conversation found with session ID: 0b7d2c6e-1111-2222-3333-444455556666\n");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert(C.r.resume_rejected);
	cr_assert_str_eq(C.sid, "", "a rejected session id is never reported");
	cr_assert(strstr(C.err, "claude returned an error result without details") != NULL, "%s", C.err);
	cr_assert(strstr(C.err, "; claude stderr: No conversation found") != NULL, "%s", C.err);
}

Test(backend_claude, TestResumeWasRejected_DifferentSessionID)
{
	open_session("aaaaaaaa-1111-2222-3333-444455556666");
	feed(S, INIT);
	feed(S, "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"result\":\"API Error\","
		"\"session_id\":\"" SID "\"}");
	finish_exit(S, 1, "");
	cr_assert(C.r.resume_rejected);
}

Test(backend_claude, failed_fresh_run_is_not_a_resume_rejection)
{
	open_session(NULL);
	feed(S, "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"is_error\":true}");
	finish_exit(S, 1, "No conversation found with session ID: x");
	cr_assert_not(C.r.resume_rejected);
}

Test(backend_claude, TestClaudeControlRequestAutoApproves)
{
	open_session(NULL);
	feed(S, "{\"type\":\"control_request\",\"request_id\":\"req-7\",\"request\":{\"subtype\":"
		"\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":{\"command\":\"sleep 1\","
		"\"run_in_background\":true}}}");
	cr_assert_eq(cap_n_written(&C), 2);
	cJSON *r = cap_written(&C, 1);
	cr_assert_str_eq(jstr(r, "type"), "control_response");
	cr_assert_str_eq(jstr(r, "response.subtype"), "success");
	cr_assert_str_eq(jstr(r, "response.request_id"), "req-7");
	cr_assert_str_eq(jstr(r, "response.response.behavior"), "allow");
	cJSON *upd = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "response"), "response"),
					 "updatedInput");
	cr_assert_str_eq(jstr(upd, "command"), "sleep 1");
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(upd, "run_in_background")));
	cJSON_Delete(r);
}

Test(backend_claude, crash_is_failed_with_exit_status)
{
	open_session(NULL);
	feed(S, INIT);
	feed(S, TEXT);
	finish_exit(S, 3, "panic: boom");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "claude exited with error: exit status 3; claude stderr: panic: boom");
	cr_assert_eq(C.n_usage, 1, "usage of the partial run is still reported");
	cr_assert_eq(C.usage[0].u.input, 11);
}

Test(backend_claude, cancel_and_timeout)
{
	open_session(NULL);
	feed(S, INIT);
	struct mc_backend_end e = { .cause = MC_END_CANCEL, .exited = true, .wstatus = 9 };
	mc_backend_session_finish(S, &e);
	cr_assert_eq(C.r.status, MC_RESULT_ABORTED);
	cr_assert_str_eq(C.err, "execution cancelled");
	close_session();
	open_session(NULL);
	e = (struct mc_backend_end){ .cause = MC_END_TIMEOUT, .timeout_text = "claude timed out after 1s" };
	mc_backend_session_finish(S, &e);
	cr_assert_eq(C.r.status, MC_RESULT_TIMEOUT);
	cr_assert_str_eq(C.err, "claude timed out after 1s");
}

Test(backend_claude, async_launch_failure)
{
	open_session(NULL);
	feed(S, TOOL_USE);
	feed(S, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":"
		"\"toolu_01\",\"type\":\"tool_result\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]},"
		"\"tool_use_result\":{\"status\":\"async_launched\"}}");
	feed(S, RESULT);
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert(strstr(C.err, "async background task") != NULL);
	cr_assert_str_eq(C.msgs[1].text, "[{\"type\":\"text\",\"text\":\"x\"}]",
			 "a non-string tool result is its JSON text");
}

Test(backend_claude, nul_escapes_stripped_and_garbage_skipped)
{
	open_session(NULL);
	feed(S, "not json at all");
	feed(S, "{\"no\":\"type\"}");
	feed(S, "{\"type\":\"assistant\",\"message\":{\"id\":\"m\",\"model\":\"m1\",\"content\":[{\"type\":"
		"\"text\",\"text\":\"a\\u0000b\\\\u0000c\"}]}}");
	cr_assert_eq(mc_backend_session_bad_lines(S), 2);
	cr_assert_eq(C.n_msgs, 1);
	cr_assert_str_eq(C.msgs[0].text, "ab\\u0000c", "a NUL escape goes, an escaped backslash stays");
	char cut[] = "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"xx";
	mc_backend_session_line(S, cut, strlen(cut), true);
	cr_assert_eq(mc_backend_session_bad_lines(S), 3);
	cr_assert_eq(C.n_msgs, 1, "a truncated line is skipped");
}

Test(backend_claude, broken_stdin_before_any_session)
{
	struct mc_backend_sink sink = cap_sink(&C);
	C.fail_writes = true;
	struct mc_backend_opts o = { .prompt = "p" };
	S = mc_backend_session_new(&mc_backend_claude, &o, &sink);
	mc_backend_session_start(S);
	finish_exit(S, 0, "");
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert(strstr(C.err, "stdin") != NULL, "%s", C.err);
}

static void argv_eq(const struct mc_argv *a, const char *const *want)
{
	size_t n = 0;
	for (; want[n] != NULL; n++) {
		cr_assert_lt(n, a->n, "argv too short at %zu (%s)", n, want[n]);
		cr_assert_str_eq(a->v[n], want[n], "argv[%zu]", n);
	}
	cr_assert_eq(a->n, n, "argv has %zu entries, want %zu", a->n, n);
	cr_assert_null(a->v[a->n]);
}

Test(backend_claude, TestBuildClaudeArgs__TestFilterCustomArgs)
{
	char *fixed[] = { "--setting-sources", "user", "--output-format", "json", "-p", "--verbose" };
	char *custom[] = { "--permission-mode", "plan", "--effort=high", "'--max-turns'", "\"7\"",
			   "--append-system-prompt=\"be brief\"", "--mcp-config", "--strict", "-p",
			   "positional" };
	struct mc_backend_opts o = { .model = "claude-sonnet-4-5", .resume_id = "sid-1",
				     .custom_args = custom, .n_custom_args = 10 };
	struct mc_argv a = { 0 };
	cr_assert_eq(mc_backend_claude.build_argv("/opt/ccms", fixed, 6, &o, &a), 0);
	static const char *const want[] = {
		"/opt/ccms", "--setting-sources", "user", "--verbose",
		"-p", "--output-format", "stream-json", "--input-format", "stream-json", "--verbose",
		"--permission-mode", "bypassPermissions", "--disallowedTools", "AskUserQuestion",
		"--model", "claude-sonnet-4-5", "--resume", "sid-1",
		"--max-turns", "7", "--append-system-prompt=be brief", "--strict", "positional", NULL
	};
	argv_eq(&a, want);
	mc_argv_free(&a);
	struct mc_backend_opts bare = { 0 };
	cr_assert_eq(mc_backend_claude.build_argv("claude", NULL, 0, &bare, &a), 0);
	cr_assert_eq(a.n, 11, "no --model, no --resume without them");
	mc_argv_free(&a);
}

Test(backend_claude, killed_after_a_clean_result_is_still_completed)
{
	open_session(NULL);
	feed(S, INIT);
	feed(S, RESULT);
	struct mc_backend_end e = { .cause = MC_END_EXIT, .exited = true, .wstatus = 9 /* SIGKILL */ };
	mc_backend_session_finish(S, &e);
	cr_assert_eq(C.r.status, MC_RESULT_COMPLETED, "%s", C.err);
	close_session();
	open_session(NULL);
	feed(S, INIT);
	mc_backend_session_finish(S, &e);
	cr_assert_eq(C.r.status, MC_RESULT_FAILED);
	cr_assert_str_eq(C.err, "claude exited with error: signal: Killed");
}
