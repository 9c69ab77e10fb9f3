/* A fake `codex` CLI: `codex app-server --listen stdio://` speaking the
 * JSON-RPC 2.0 of codex-cli 0.171.0 (v2 notifications) as
 * tests/agents/README.md and tests/integration/test_real_cli.c show it: initialize, initialized,
 * thread/start or thread/resume, turn/start, then notifications until
 * turn/completed; exits at stdin EOF. Scripted by FAKE_AGENT_MODE
 * (fake_common.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_common.h"

static char THREAD[128];
static const char *MODEL = "gpt-fake";
static bool RESUMED;
static int EXIT_CODE;

static void emit(cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (s != NULL)
		fa_line(s);
	free(s);
}

static void respond(const cJSON *id, cJSON *result)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "jsonrpc", "2.0");
	cJSON_AddItemToObject(j, "id", cJSON_Duplicate(id, 1));
	cJSON_AddItemToObject(j, "result", result);
	emit(j);
}

static void respond_error(const cJSON *id, int code, const char *msg)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "jsonrpc", "2.0");
	cJSON_AddItemToObject(j, "id", cJSON_Duplicate(id, 1));
	cJSON *e = cJSON_AddObjectToObject(j, "error");
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	emit(j);
}

/* A notification; params gets our threadId (or thread_id if given). */
static void notify(const char *method, cJSON *params, const char *thread_id)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "jsonrpc", "2.0");
	cJSON_AddStringToObject(j, "method", method);
	if (params == NULL)
		params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "threadId", thread_id != NULL ? thread_id : THREAD);
	cJSON_AddItemToObject(j, "params", params);
	emit(j);
}

static void item(const char *method, cJSON *it)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "turnId", "turn-1");
	cJSON_AddItemToObject(p, "item", it);
	notify(method, p, NULL);
}

static void agent_message(const char *text)
{
	static int n;
	char id[32];
	snprintf(id, sizeof id, "msg_%d", ++n);
	cJSON *it = cJSON_CreateObject();
	cJSON_AddStringToObject(it, "type", "agentMessage");
	cJSON_AddStringToObject(it, "id", id);
	cJSON_AddStringToObject(it, "text", text);
	item("item/completed", it);
}

static cJSON *usage_obj(int in, int cached, int out)
{
	cJSON *u = cJSON_CreateObject();
	cJSON_AddNumberToObject(u, "inputTokens", in);
	cJSON_AddNumberToObject(u, "cachedInputTokens", cached);
	cJSON_AddNumberToObject(u, "outputTokens", out);
	cJSON_AddNumberToObject(u, "reasoningOutputTokens", 0);
	cJSON_AddNumberToObject(u, "totalTokens", in + out);
	return u;
}

/* This turn used 26 in (4 cached) / 10 out; a resumed thread's total also
 * holds its earlier turns. */
static void token_usage(void)
{
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "turnId", "turn-1");
	cJSON *tu = cJSON_AddObjectToObject(p, "tokenUsage");
	cJSON_AddItemToObject(tu, "total", RESUMED ? usage_obj(126, 4, 60) : usage_obj(26, 4, 10));
	cJSON_AddItemToObject(tu, "last", usage_obj(26, 4, 10));
	notify("thread/tokenUsage/updated", p, NULL);
}

static void turn_completed(const char *status, const char *error)
{
	cJSON *p = cJSON_CreateObject();
	cJSON *t = cJSON_AddObjectToObject(p, "turn");
	cJSON_AddStringToObject(t, "id", "turn-1");
	cJSON_AddStringToObject(t, "status", status);
	if (error != NULL) {
		cJSON *e = cJSON_AddObjectToObject(t, "error");
		cJSON_AddStringToObject(e, "message", error);
	}
	notify("turn/completed", p, NULL);
}

static void command(bool done)
{
	cJSON *it = cJSON_CreateObject();
	cJSON_AddStringToObject(it, "type", "commandExecution");
	cJSON_AddStringToObject(it, "id", "call_1");
	cJSON_AddStringToObject(it, "command", "/bin/bash -lc 'echo hello'");
	cJSON_AddStringToObject(it, "status", done ? "completed" : "inProgress");
	if (done) {
		cJSON_AddStringToObject(it, "aggregatedOutput", "hello\n");
		cJSON_AddNumberToObject(it, "exitCode", 0);
	}
	item(done ? "item/completed" : "item/started", it);
}

/* Asks for approval of the command; the answer must be "accept". */
static bool approval(void)
{
	fa_line("{\"jsonrpc\":\"2.0\",\"id\":900,\"method\":\"item/commandExecution/requestApproval\","
		"\"params\":{\"itemId\":\"call_1\",\"command\":\"echo hello\"}}");
	char *l = fa_read_line();
	cJSON *j = l != NULL ? cJSON_Parse(l) : NULL;
	free(l);
	cJSON *id = cJSON_GetObjectItem(j, "id");
	const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "decision"));
	bool ok = cJSON_IsNumber(id) && id->valueint == 900 && d != NULL && strcmp(d, "accept") == 0;
	cJSON_Delete(j);
	return ok;
}

static void turn_body(void)
{
	if (fa_mode_is("tool")) {
		if (!approval()) {
			turn_completed("failed", "fake codex: approval not accepted");
			return;
		}
		command(false);
		command(true);
		agent_message("The command printed hello. Done.");
	} else if (fa_mode_is("error")) {
		const char *m = "unexpected status 401 Unauthorized: fake 401 for testing";
		cJSON *p = cJSON_CreateObject();
		cJSON *e = cJSON_AddObjectToObject(p, "error");
		cJSON_AddStringToObject(e, "message", m);
		cJSON_AddFalseToObject(p, "willRetry");
		cJSON_AddStringToObject(p, "turnId", "turn-1");
		notify("error", p, NULL);
		turn_completed("failed", m);
		EXIT_CODE = 1;
		return;
	} else if (fa_mode_is("crash")) {
		agent_message("about to crash");
		exit(3);
	} else if (fa_mode_is("hang")) {
		fa_hang();
	} else if (fa_mode_is("grandchild")) {
		fa_spawn_grandchild();
		fa_hang();
	} else if (fa_mode_is("huge_line")) {
		char pre[256];
		snprintf(pre, sizeof pre,
			 "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":"
			 "\"%s\",\"item\":{\"type\":\"agentMessage\",\"id\":\"huge\",\"text\":\"", THREAD);
		fa_huge_line(pre, "\"}}}");
		agent_message("hi from fake codex");
	} else if (fa_mode_is("bad_bytes")) {
		char l[512];
		int n = snprintf(l, sizeof l,
				 "{\"jsonrpc\":\"2.0\",\"method\":\"item/completed\",\"params\":{\"threadId\":"
				 "\"%s\",\"item\":{\"type\":\"agentMessage\",\"id\":\"bad\",\"text\":"
				 "\"bad \xff\xfe bytes\\u0000 and NUL\"}}}", THREAD);
		fa_raw_line(l, (size_t)n);
	} else if (fa_mode_is("flood")) {
		char t[64];
		for (unsigned long i = 0;; i++) {
			snprintf(t, sizeof t, "flood line %lu", i);
			agent_message(t);
		}
	} else if (fa_mode_is("slow")) {
		for (int i = 1; i <= 5; i++) {
			char t[32];
			snprintf(t, sizeof t, "slow line %d", i);
			agent_message(t);
		}
	} else {
		agent_message("hi from fake codex");
	}
	token_usage();
	turn_completed("completed", NULL);
}

static void turn(const cJSON *id)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *t = cJSON_AddObjectToObject(r, "turn");
	cJSON_AddStringToObject(t, "id", "turn-1");
	cJSON_AddStringToObject(t, "status", "inProgress");
	respond(id, r);
	cJSON *p = cJSON_CreateObject();
	cJSON *tt = cJSON_AddObjectToObject(p, "turn");
	cJSON_AddStringToObject(tt, "id", "turn-1");
	notify("turn/started", p, NULL);
	/* A subagent's thread: the client must not take it for ours. */
	cJSON *sp = cJSON_CreateObject();
	cJSON *it = cJSON_AddObjectToObject(sp, "item");
	cJSON_AddStringToObject(it, "type", "agentMessage");
	cJSON_AddStringToObject(it, "id", "sub");
	cJSON_AddStringToObject(it, "text", "subagent noise");
	notify("item/completed", sp, "other-thread");
	turn_body();
}

static cJSON *thread_result(void)
{
	cJSON *r = cJSON_CreateObject();
	cJSON *t = cJSON_AddObjectToObject(r, "thread");
	cJSON_AddStringToObject(t, "id", THREAD);
	cJSON_AddStringToObject(r, "model", MODEL);
	return r;
}

static void handle(const cJSON *j)
{
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(j, "method"));
	const cJSON *id = cJSON_GetObjectItem(j, "id");
	const cJSON *params = cJSON_GetObjectItem(j, "params");
	if (m == NULL || id == NULL)
		return; /* "initialized", or an answer nobody waits for */
	if (strcmp(m, "initialize") == 0) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "userAgent", "fake-codex/0.171.0");
		respond(id, r);
		/* Before any turn: must be ignored by the client. */
		fa_line("{\"jsonrpc\":\"2.0\",\"method\":\"configWarning\",\"params\":{\"summary\":"
			"\"bubblewrap not on PATH\"}}");
	} else if (strcmp(m, "thread/start") == 0) {
		const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(params, "model"));
		if (model != NULL)
			MODEL = strdup(model);
		fa_uuid(THREAD);
		respond(id, thread_result());
	} else if (strcmp(m, "thread/resume") == 0) {
		const char *tid = cJSON_GetStringValue(cJSON_GetObjectItem(params, "threadId"));
		if (fa_mode_is("resume_reject") || tid == NULL) {
			char msg[256];
			snprintf(msg, sizeof msg, "no rollout found for thread id %s", tid ? tid : "");
			respond_error(id, -32600, msg);
			return;
		}
		snprintf(THREAD, sizeof THREAD, "%s", tid);
		RESUMED = true;
		respond(id, thread_result());
	} else if (strcmp(m, "thread/name/set") == 0) {
		respond(id, cJSON_CreateObject());
	} else if (strcmp(m, "turn/start") == 0) {
		turn(id);
	} else {
		respond_error(id, -32601, "method not found");
	}
}

int main(int argc, char **argv)
{
	bool app = false, listen = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("codex-cli 0.171.0\n");
			return 0;
		}
		if (strcmp(argv[i], "app-server") == 0)
			app = true;
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen = strcmp(argv[++i], "stdio://") == 0;
	}
	fa_record(argc, argv);
	if (!app || !listen) {
		fprintf(stderr, "fake codex: needs app-server --listen stdio://\n");
		return 2;
	}
	char *l;
	while ((l = fa_read_line()) != NULL) {
		cJSON *j = cJSON_Parse(l);
		free(l);
		if (j != NULL)
			handle(j);
		cJSON_Delete(j);
	}
	return EXIT_CODE;
}
