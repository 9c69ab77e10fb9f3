/* The claimed-task decoder (common/task.h): the happy path, every required
 * field's error with its path, custom_env / custom_args shapes and
 * bounds, the key, the kind, and the task token taken out of the JSON
 * with cJSON's copy wiped. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/secret.h"
#include "common/task.h"

TestSuite(task, .timeout = 30);

#define TID "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define AID "a9e00000-0000-4000-8000-00000000a9e0"
#define RID "77770000-0000-4000-8000-000000007777"
#define WID "0c6e0000-0000-4000-8000-000000000001"
#define TOKEN "mat_4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"

/* A complete task as the server sends it; %s is spliced into the agent. */
static char *task_json(const char *agent_extra, const char *top_extra)
{
	char *s = NULL;
	int n = asprintf(&s,
		"{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\"" RID "\","
		" \"workspace_id\":\"" WID "\",\"issue_id\":\"15500000-0000-4000-8000-000000000155\","
		" \"auth_token\":\"" TOKEN "\",\"status\":\"dispatched\",\"priority\":3,"
		" \"delivered_comment_ids\":[],"
		" \"agent\":{\"id\":\"" AID "\",\"name\":\"Reviewer\",\"instructions\":\"Be brief.\","
		"   \"model\":\"claude-sonnet-4-5\",\"skills\":[]%s},"
		" \"prior_session_id\":\"sess-1\",\"prior_work_dir\":\"/w/1\"%s}",
		agent_extra, top_extra);
	cr_assert_gt(n, 0);
	return s;
}

/* Decodes text; returns rc, err filled. */
static int parse(const char *text, struct mc_task *t, char *err, size_t n)
{
	err[0] = '\0';
	return mc_task_parse(text, strlen(text), t, err, n);
}

static void expect_error(const char *text, const char *want)
{
	struct mc_task t;
	char err[256];
	cr_assert_eq(parse(text, &t, err, sizeof err), -1, "accepted: %s", text);
	cr_assert_str_eq(err, want, "for %s", text);
	/* nothing of a value leaks into the message */
	cr_assert_null(strstr(err, "mat_"));
}

Test(task, happy_path)
{
	char *s = task_json(",\"custom_env\":{\"FOO\":\"1\",\"ANTHROPIC_API_KEY\":\"sk-x\"},"
			    "\"custom_args\":[\"--max-turns\",\"5\"]",
			    ",\"unknown_field\":{\"nested\":[1,2]},\"thread_name\":\"Fix it\","
			    "\"coalesced_comments\":[{\"id\":\"c1\",\"author_type\":\"member\","
			    "\"author_name\":\"Ann\",\"content\":\"also this\",\"created_at\":\"t\"}]");
	struct mc_task t;
	char err[256];
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	free(s);
	cr_assert_str_eq(t.id, TID);
	cr_assert_str_eq(t.agent_id, AID);
	cr_assert_str_eq(t.runtime_id, RID);
	cr_assert_str_eq(t.workspace_id, WID);
	cr_assert_str_eq(t.key, "1b2a3c4d5e6f");
	cr_assert_eq(t.kind, MC_TASK_ASSIGNMENT);
	cr_assert_str_eq(t.issue_id, "15500000-0000-4000-8000-000000000155");
	cr_assert_str_eq(t.agent_name, "Reviewer");
	cr_assert_str_eq(t.agent_instructions, "Be brief.");
	cr_assert_str_eq(t.model, "claude-sonnet-4-5");
	cr_assert_str_eq(t.thinking_level, "");
	cr_assert_eq(t.n_custom_env, 2);
	cr_assert_str_eq(t.custom_env[0].key, "FOO");
	cr_assert_str_eq(t.custom_env[0].value, "1");
	cr_assert_str_eq(t.custom_env[1].key, "ANTHROPIC_API_KEY");
	cr_assert_str_eq(t.custom_env[1].value, "sk-x");
	cr_assert_eq(t.n_custom_args, 2);
	cr_assert_str_eq(t.custom_args[0], "--max-turns");
	cr_assert_str_eq(t.custom_args[1], "5");
	cr_assert_str_eq(t.prior_session_id, "sess-1");
	cr_assert_str_eq(t.prior_work_dir, "/w/1");
	cr_assert_not(t.prior_session_resume_unavailable);
	cr_assert_str_eq(t.thread_name, "Fix it");
	cr_assert_str_eq(t.chat_session_id, "");
	cr_assert_str_eq(t.regenerate_quick_actions_for, "");
	cr_assert_eq(t.n_coalesced, 1);
	cr_assert_str_eq(t.coalesced[0].author_name, "Ann");
	cr_assert_str_eq(t.coalesced[0].content, "also this");
	mc_task_clear(&t);
	mc_task_clear(&t); /* idempotent */
}

Test(task, minimal_task_reads_empty_strings)
{
	const char *s = "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\"" RID "\","
			"\"workspace_id\":\"" WID "\",\"agent\":{\"id\":\"" AID "\"},"
			"\"issue_id\":null,\"custom\":1}";
	struct mc_task t;
	char err[256];
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(t.issue_id, "");
	cr_assert_str_eq(t.agent_name, "");
	cr_assert_eq(t.n_custom_env, 0);
	cr_assert_null(t.custom_env);
	cr_assert_eq(t.n_custom_args, 0);
	cr_assert_eq(t.n_coalesced, 0);
	mc_task_clear(&t);
}

Test(task, required_fields_name_their_path)
{
	static const struct { const char *key, *want_missing, *bad, *want_bad; } f[] = {
		{ "id", "id: missing", "\"" TID "x\"", "id: not a UUID" },
		{ "agent_id", "agent_id: missing", "7", "agent_id: expected string, got number" },
		{ "runtime_id", "runtime_id: missing", "\"\"", "runtime_id: must not be empty" },
		{ "workspace_id", "workspace_id: missing", "null",
		  "workspace_id: expected string, got null" },
		{ "agent", "agent: missing", "[]", "agent: expected object, got array" },
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		char *s = task_json("", "");
		cJSON *o = cJSON_Parse(s);
		free(s);
		cr_assert_not_null(o);
		cJSON_DeleteItemFromObjectCaseSensitive(o, f[i].key);
		char *missing = cJSON_PrintUnformatted(o);
		expect_error(missing, f[i].want_missing);
		free(missing);
		cJSON_AddItemToObject(o, f[i].key, cJSON_Parse(f[i].bad));
		char *bad = cJSON_PrintUnformatted(o);
		expect_error(bad, f[i].want_bad);
		free(bad);
		cJSON_Delete(o);
	}
}

Test(task, agent_fields)
{
	char *s = NULL;
	cr_assert_gt(asprintf(&s, "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\""
			      RID "\",\"workspace_id\":\"" WID "\",\"agent\":{\"name\":\"x\"}}"), 0);
	expect_error(s, "agent.id: missing");
	free(s);
	cr_assert_gt(asprintf(&s, "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\""
			      RID "\",\"workspace_id\":\"" WID "\",\"agent\":{\"id\":\"" RID "\"}}"),
		     0);
	expect_error(s, "agent.id: does not match agent_id");
	free(s);
	s = task_json(",\"model\":5", "");
	/* a duplicate key is refused by the parser before the decoder */
	expect_error(s, "agent: duplicate key \"model\"");
	free(s);
	cr_assert_gt(asprintf(&s, "{\"id\":\"" TID "\",\"agent_id\":\"" AID "\",\"runtime_id\":\""
			      RID "\",\"workspace_id\":\"" WID "\",\"agent\":{\"id\":\"" AID "\","
			      "\"instructions\":[\"x\"]}}"), 0);
	expect_error(s, "agent.instructions: expected string, got array");
	free(s);
	s = task_json("", ",\"prior_session_resume_unavailable\":\"yes\"");
	expect_error(s, "prior_session_resume_unavailable: expected bool, got string");
	free(s);
	s = task_json("", ",\"coalesced_comments\":[{\"id\":\"c\"},3]");
	expect_error(s, "coalesced_comments[1]: expected object, got number");
	free(s);
}

Test(task, custom_env_shapes)
{
	char *s = task_json(",\"custom_env\":[\"A=1\"]", "");
	expect_error(s, "agent.custom_env: expected object, got array");
	free(s);
	s = task_json(",\"custom_env\":{\"OK\":\"1\",\"PORT\":8080}", "");
	expect_error(s, "agent.custom_env.PORT: expected string, got number");
	free(s);
	s = task_json(",\"custom_env\":{\"SECRET\":{\"v\":\"sk-live-123\"}}", "");
	expect_error(s, "agent.custom_env.SECRET: expected string, got object");
	free(s);
	s = task_json(",\"custom_env\":{\"\":\"x\"}", "");
	expect_error(s, "agent.custom_env.: empty variable name");
	free(s);
	s = task_json(",\"custom_env\":null,\"custom_args\":null", "");
	struct mc_task t;
	char err[256];
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.n_custom_env, 0);
	cr_assert_eq(t.n_custom_args, 0);
	mc_task_clear(&t);
	free(s);
	s = task_json(",\"custom_args\":[\"--x\",1]", "");
	expect_error(s, "agent.custom_args[1]: expected string, got number");
	free(s);
	s = task_json(",\"custom_args\":\"--x\"", "");
	expect_error(s, "agent.custom_args: expected array, got string");
	free(s);
}

/* n entries of custom_env (env) or custom_args. */
static char *many(bool env, int n)
{
	size_t cap = 64 + (size_t)n * 24;
	char *b = malloc(cap);
	cr_assert_not_null(b);
	size_t at = (size_t)snprintf(b, cap, ",\"%s\":%c", env ? "custom_env" : "custom_args",
				     env ? '{' : '[');
	for (int i = 0; i < n; i++)
		at += (size_t)(env ? snprintf(b + at, cap - at, "%s\"K%d\":\"v\"", i ? "," : "", i)
			       : snprintf(b + at, cap - at, "%s\"a%d\"", i ? "," : "", i));
	snprintf(b + at, cap - at, "%c", env ? '}' : ']');
	char *s = task_json(b, "");
	free(b);
	return s;
}

Test(task, bounds)
{
	struct mc_task t;
	char err[256];
	for (int env = 0; env < 2; env++) {
		char *s = many(env, 256);
		cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
		cr_assert_eq(env ? t.n_custom_env : t.n_custom_args, 256);
		mc_task_clear(&t);
		free(s);
		s = many(env, 257);
		expect_error(s, env ? "agent.custom_env: 257 entries, more than the 256 allowed"
			     : "agent.custom_args: 257 entries, more than the 256 allowed");
		free(s);
	}
}

Test(task, key_and_kind)
{
	struct mc_task t;
	char err[256];
	char *s = task_json("", ",\"trigger_comment_id\":\"c-1\",\"trigger_comment_content\":\"hi\"");
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.kind, MC_TASK_COMMENT);
	cr_assert_str_eq(t.trigger_comment_content, "hi");
	mc_task_clear(&t);
	free(s);
	s = task_json("", ",\"trigger_comment_id\":\"c-1\",\"chat_session_id\":\"chat-9\"");
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	cr_assert_eq(t.kind, MC_TASK_CHAT, "chat wins over a comment");
	mc_task_clear(&t);
	free(s);
	/* upper-case hex: accepted, the key is lower-case */
	s = strdup("{\"id\":\"0C6E1F4A-8A51-4D27-9D3C-ABCDEF012345\",\"agent_id\":\"" AID "\","
		   "\"runtime_id\":\"" RID "\",\"workspace_id\":\"" WID "\","
		   "\"agent\":{\"id\":\"" AID "\"}}");
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(t.key, "abcdef012345");
	cr_assert_eq(strlen(t.key), MC_TASK_KEY_LEN);
	mc_task_clear(&t);
	free(s);
	cr_assert(mc_task_is_uuid(TID));
	cr_assert_not(mc_task_is_uuid("0c6e1f4a8a514d279d3c1b2a3c4d5e6f"));
	cr_assert_not(mc_task_is_uuid("0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6g"));
	cr_assert_not(mc_task_is_uuid(NULL));
}

Test(task, not_an_object)
{
	expect_error("[1]", "task: expected object, got array");
	expect_error("{\"id\":", "invalid JSON at byte 5");
}

/* ---- the token leaves the JSON, wiped ---- */

/* cJSON's allocator for this test: every block cJSON frees is searched for
 * the token first. */
static int freed_with_token;

static void *hook_malloc(size_t n)
{
	return malloc(n);
}

static void hook_free(void *p)
{
	if (p != NULL && memmem(p, malloc_usable_size(p), "mat_4f1c", 8) != NULL)
		freed_with_token++;
	free(p);
}

Test(task, take_token_wipes_and_removes)
{
	cJSON_Hooks hooks = { hook_malloc, hook_free };
	cJSON_InitHooks(&hooks);
	char *s = task_json("", "");
	cJSON *j = cJSON_Parse(s);
	free(s);
	cr_assert_not_null(j);
	struct mc_secret *tok = mc_task_take_token(j);
	cr_assert_not_null(tok);
	cr_assert_eq(mc_secret_len(tok), strlen(TOKEN));
	cr_assert_str_eq(mc_secret_open(tok), TOKEN);
	mc_secret_close(tok);
	cr_assert(mc_task_token_scoped(tok));
	cr_assert_null(cJSON_GetObjectItem(j, "auth_token"), "auth_token still in the JSON");
	char *rest = cJSON_PrintUnformatted(j);
	cr_assert_null(strstr(rest, "mat_"), "token in the printed task");
	cJSON_free(rest);
	/* the task still decodes without it */
	struct mc_task t;
	char err[256];
	cr_assert_eq(mc_task_decode(j, &t, err, sizeof err), 0, "%s", err);
	mc_task_clear(&t);
	cJSON_Delete(j);
	cr_assert_eq(freed_with_token, 0, "cJSON freed %d unwiped copies of the token",
		     freed_with_token);
	/* a second take finds none */
	j = cJSON_Parse("{\"id\":1}");
	errno = 0;
	cr_assert_null(mc_task_take_token(j));
	cr_assert_eq(errno, EINVAL);
	cJSON_Delete(j);
	mc_secret_free(tok);
	cJSON_InitHooks(NULL);
}

Test(task, take_token_not_a_string)
{
	cJSON *j = cJSON_Parse("{\"auth_token\":42,\"id\":1}");
	errno = 0;
	cr_assert_null(mc_task_take_token(j));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(cJSON_GetObjectItem(j, "auth_token"), "a bad token is removed too");
	cJSON_Delete(j);
}

Test(task, token_scope)
{
	static const struct { const char *tok; bool scoped; } v[] = {
		{ TOKEN, true }, { "mat_", false }, { "mul_0123", false }, { "MAT_abc", false },
		{ "xmat_abc", false },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct mc_secret *s = mc_secret_new(v[i].tok, strlen(v[i].tok));
		cr_assert_not_null(s);
		cr_assert_eq(mc_task_token_scoped(s), v[i].scoped, "%s", v[i].tok);
		mc_secret_free(s);
	}
	cr_assert_not(mc_task_token_scoped(NULL));
}

Test(task, parse_wipes_a_token_it_was_given)
{
	cJSON_Hooks hooks = { hook_malloc, hook_free };
	cJSON_InitHooks(&hooks);
	freed_with_token = 0;
	char *s = task_json("", ",\"remote_mcp_daemon_token\":\"mat_4f1c-daemon\"");
	struct mc_task t;
	char err[256];
	cr_assert_eq(parse(s, &t, err, sizeof err), 0, "%s", err);
	free(s);
	mc_task_clear(&t);
	cr_assert_eq(freed_with_token, 0, "%d unwiped copies freed", freed_with_token);
	cJSON_InitHooks(NULL);
}
