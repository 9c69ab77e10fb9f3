/* A fake `claude` CLI speaking Claude Code 2.1.197's stream-json, as
 * tests/agents/README.md and tests/integration/test_real_cli.c show it: the prompt arrives on stdin
 * as a user frame, events go to stdout one JSON object per line, and the
 * CLI exits once stdin reaches EOF after its result. Scripted by
 * FAKE_AGENT_MODE (fake_common.h; attack and wait_file: fake_attack.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_attack.h"
#include "fake_common.h"

static char SID[128];
static const char *MODEL = "claude-fake-model";
static int MSG_N;

static void emit(cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (s != NULL)
		fa_line(s);
	free(s);
}

static cJSON *assistant(void)
{
	char id[64];
	snprintf(id, sizeof id, "msg_fake_%d", ++MSG_N);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "assistant");
	cJSON *m = cJSON_AddObjectToObject(j, "message");
	cJSON_AddStringToObject(m, "id", id);
	cJSON_AddStringToObject(m, "type", "message");
	cJSON_AddStringToObject(m, "role", "assistant");
	cJSON_AddStringToObject(m, "model", MODEL);
	cJSON_AddArrayToObject(m, "content");
	cJSON_AddNullToObject(m, "stop_reason");
	cJSON *u = cJSON_AddObjectToObject(m, "usage");
	cJSON_AddNumberToObject(u, "input_tokens", 11);
	cJSON_AddNumberToObject(u, "output_tokens", 1);
	cJSON_AddNullToObject(j, "parent_tool_use_id");
	cJSON_AddStringToObject(j, "session_id", SID);
	return j;
}

static cJSON *content_of(cJSON *a)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(a, "message"), "content");
}

static void say(const char *text)
{
	cJSON *a = assistant();
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "text");
	cJSON_AddStringToObject(b, "text", text);
	cJSON_AddItemToArray(content_of(a), b);
	emit(a);
}

static void init_line(void)
{
	char cwd[4096] = "";
	if (getcwd(cwd, sizeof cwd) == NULL)
		cwd[0] = '\0';
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "system");
	cJSON_AddStringToObject(j, "subtype", "init");
	cJSON_AddStringToObject(j, "cwd", cwd);
	cJSON_AddStringToObject(j, "session_id", SID);
	cJSON *tools = cJSON_AddArrayToObject(j, "tools");
	cJSON_AddItemToArray(tools, cJSON_CreateString("Bash"));
	cJSON_AddItemToArray(tools, cJSON_CreateString("Read"));
	cJSON_AddArrayToObject(j, "mcp_servers");
	cJSON_AddStringToObject(j, "model", MODEL);
	cJSON_AddStringToObject(j, "permissionMode", "bypassPermissions");
	cJSON_AddStringToObject(j, "apiKeySource", "ANTHROPIC_API_KEY");
	cJSON_AddStringToObject(j, "claude_code_version", "2.1.197");
	emit(j);
}

/* The result line; is_error results keep subtype "success" as the real CLI. */
static void result(const char *subtype, bool is_error, const char *text, int api_status)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "result");
	cJSON_AddStringToObject(j, "subtype", subtype);
	cJSON_AddBoolToObject(j, "is_error", is_error);
	if (api_status > 0)
		cJSON_AddNumberToObject(j, "api_error_status", api_status);
	else
		cJSON_AddNullToObject(j, "api_error_status");
	cJSON_AddNumberToObject(j, "duration_ms", 12);
	cJSON_AddNumberToObject(j, "num_turns", 1);
	if (text != NULL)
		cJSON_AddStringToObject(j, "result", text);
	cJSON_AddStringToObject(j, "stop_reason", "end_turn");
	cJSON_AddStringToObject(j, "session_id", SID);
	cJSON_AddNumberToObject(j, "total_cost_usd", 0.000276);
	cJSON *u = cJSON_AddObjectToObject(j, "usage");
	cJSON_AddNumberToObject(u, "input_tokens", 22);
	cJSON_AddNumberToObject(u, "output_tokens", 14);
	cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 3);
	cJSON_AddNumberToObject(u, "cache_read_input_tokens", 5);
	cJSON *mu = cJSON_AddObjectToObject(j, "modelUsage");
	cJSON *m = cJSON_AddObjectToObject(mu, MODEL);
	cJSON_AddNumberToObject(m, "inputTokens", 22);
	cJSON_AddNumberToObject(m, "outputTokens", 14);
	cJSON_AddNumberToObject(m, "cacheReadInputTokens", 5);
	cJSON_AddNumberToObject(m, "cacheCreationInputTokens", 3);
	cJSON_AddNumberToObject(m, "costUSD", 0.000276);
	cJSON_AddArrayToObject(j, "permission_denials");
	cJSON_AddStringToObject(j, "terminal_reason", is_error ? "error" : "completed");
	fa_times("result");
	emit(j);
}

/* A control_request for the tool, answered (allow, run_in_background off)
 * before the tool runs; any other answer fails the run. */
static bool ask_permission(void)
{
	fa_line("{\"type\":\"control_request\",\"request_id\":\"req-1\",\"request\":{\"subtype\":"
		"\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":{\"command\":\"echo hello\","
		"\"run_in_background\":true}}}");
	char *l = fa_read_line();
	cJSON *j = l != NULL ? cJSON_Parse(l) : NULL;
	free(l);
	cJSON *r = cJSON_GetObjectItem(j, "response");
	cJSON *in = cJSON_GetObjectItem(r, "response");
	cJSON *upd = cJSON_GetObjectItem(in, "updatedInput");
	cJSON *bg = cJSON_GetObjectItem(upd, "run_in_background");
	const char *rid = cJSON_GetStringValue(cJSON_GetObjectItem(r, "request_id"));
	const char *beh = cJSON_GetStringValue(cJSON_GetObjectItem(in, "behavior"));
	bool ok = rid != NULL && strcmp(rid, "req-1") == 0 && beh != NULL &&
		  strcmp(beh, "allow") == 0 && cJSON_IsFalse(bg);
	cJSON_Delete(j);
	return ok;
}

static void tool_run(void)
{
	if (!ask_permission()) {
		result("success", true, "fake claude: control_request not approved", 0);
		exit(1);
	}
	say("Running a command.");
	cJSON *a = assistant();
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "tool_use");
	cJSON_AddStringToObject(b, "id", "toolu_fake_1");
	cJSON_AddStringToObject(b, "name", "Bash");
	cJSON *in = cJSON_AddObjectToObject(b, "input");
	cJSON_AddStringToObject(in, "command", "echo hello");
	cJSON_AddItemToArray(content_of(a), b);
	emit(a);
	fa_line("{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":"
		"\"toolu_fake_1\",\"type\":\"tool_result\",\"content\":\"hello\",\"is_error\":false}]},"
		"\"parent_tool_use_id\":null,\"tool_use_result\":{\"stdout\":\"hello\",\"stderr\":\"\","
		"\"interrupted\":false}}");
	say("The command printed hello. Done.");
	result("success", false, "The command printed hello. Done.", 0);
}

static void bad_bytes(void)
{
	char line[512];
	int n = snprintf(line, sizeof line,
			 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_bad\",\"type\":\"message\","
			 "\"role\":\"assistant\",\"model\":\"%s\",\"content\":[{\"type\":\"text\","
			 "\"text\":\"bad \xff\xfe bytes\\u0000 and NUL\"}]},\"session_id\":\"%s\"}",
			 MODEL, SID);
	fa_raw_line(line, (size_t)n);
	n = snprintf(line, sizeof line,
		     "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":"
		     "\"done \xc3( \\u0000end\",\"session_id\":\"%s\",\"modelUsage\":{\"%s\":{"
		     "\"inputTokens\":1,\"outputTokens\":1,\"cacheReadInputTokens\":0,"
		     "\"cacheCreationInputTokens\":0}}}",
		     SID, MODEL);
	fa_raw_line(line, (size_t)n);
}

static void run(void)
{
	if (fa_mode_is("tool")) {
		tool_run();
	} else if (fa_mode_is("error")) {
		fa_line("{\"type\":\"assistant\",\"message\":{\"id\":\"msg_synth\",\"model\":"
			"\"<synthetic>\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
			"\"Failed to authenticate. API Error: 401 fake 401 for testing\"}]},"
			"\"error\":\"authentication_failed\"}");
		result("success", true, "Failed to authenticate. API Error: 401 fake 401 for testing",
		       401);
		exit(1);
	} else if (fa_mode_is("crash")) {
		say("about to crash");
		exit(3);
	} else if (fa_mode_is("hang")) {
		fa_hang();
	} else if (fa_mode_is("grandchild")) {
		fa_spawn_grandchild();
		fa_hang();
	} else if (fa_mode_is("huge_line")) {
		char pre[256];
		snprintf(pre, sizeof pre,
			 "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_huge\",\"model\":\"%s\","
			 "\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"", MODEL);
		fa_huge_line(pre, "\"}]}}");
		say("after the huge line");
		result("success", false, "hi from fake claude", 0);
	} else if (fa_mode_is("bad_bytes")) {
		bad_bytes();
	} else if (fa_mode_is("flood")) {
		char t[64];
		for (unsigned long i = 0;; i++) {
			snprintf(t, sizeof t, "flood line %lu", i);
			say(t);
		}
	} else if (fa_mode_is("rate")) {
		long per_s = fa_lines_per_s(), total = per_s * fa_seconds();
		long long t0 = fa_mono_ns();
		char t[48];
		for (long i = 0; i < total; i++) {
			fa_pace(t0, (unsigned long)i, per_s);
			snprintf(t, sizeof t, "rl#%ld;", i);
			say(t);
		}
		result("success", false, "hi from fake claude", 0);
	} else if (fa_mode_is("checkout")) {
		long st;
		const char *path = fa_checkout(&st);
		char t[4200];
		snprintf(t, sizeof t, "checked out into %s", path[0] ? path : "(failed)");
		say(t);
		result("success", false, path[0] ? "checked out and committed" : "checkout failed", 0);
		if (!path[0])
			exit(1);
	} else if (fa_mode_is("attack")) {
		char *report = fa_attack();
		say(report);
		result("success", false, report, 0);
		free(report);
	} else if (fa_mode_is("wait_file")) {
		long st;
		if (getenv("FAKE_AGENT_REPO_URL") != NULL)
			(void)fa_checkout(&st);
		fa_wait_file();
		say("hi from fake claude");
		result("success", false, "hi from fake claude", 0);
	} else if (fa_mode_is("slow")) {
		for (int i = 1; i <= 5; i++) {
			char t[32];
			snprintf(t, sizeof t, "slow line %d", i);
			say(t);
		}
		result("success", false, "hi from fake claude", 0);
	} else {
		say("hi from fake claude");
		result("success", false, "hi from fake claude", 0);
	}
}

int main(int argc, char **argv)
{
	fa_times("exec");
	const char *resume = NULL;
	bool stream_in = false, stream_out = false, print = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("2.1.197 (Claude Code)\n");
			return 0;
		}
		if (strcmp(argv[i], "-p") == 0)
			print = true;
		else if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc)
			resume = argv[++i];
		else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
			MODEL = argv[++i];
		else if (strcmp(argv[i], "--input-format") == 0 && i + 1 < argc)
			stream_in = strcmp(argv[++i], "stream-json") == 0;
		else if (strcmp(argv[i], "--output-format") == 0 && i + 1 < argc)
			stream_out = strcmp(argv[++i], "stream-json") == 0;
	}
	fa_record(argc, argv);
	if (!print || !stream_in || !stream_out) {
		fprintf(stderr, "fake claude: needs -p --input-format stream-json --output-format stream-json\n");
		return 2;
	}
	if (resume != NULL)
		snprintf(SID, sizeof SID, "%s", resume);
	else
		fa_uuid(SID);
	if (resume != NULL && fa_mode_is("resume_reject")) {
		fprintf(stderr, "No conversation found with session ID: %s\n", resume);
		char l[512];
		snprintf(l, sizeof l,
			 "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"is_error\":true,"
			 "\"num_turns\":0,\"session_id\":\"%s\"}", resume);
		fa_line(l);
		return 1;
	}
	char *first = fa_read_line();
	cJSON *u = first != NULL ? cJSON_Parse(first) : NULL;
	free(first);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(u, "type"));
	bool ok = type != NULL && strcmp(type, "user") == 0;
	cJSON_Delete(u);
	if (!ok) {
		fprintf(stderr, "fake claude: expected a user frame on stdin\n");
		return 1;
	}
	init_line();
	run();
	fa_exit_at_eof(0);
}
