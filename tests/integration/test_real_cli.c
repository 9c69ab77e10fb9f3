/* The real claude and codex CLIs (the pinned versions that
 * scripts/install-agent-clis.sh installs), run exactly as multica runs
 * them, against our fake model APIs on loopback (tests/agents/): a plain
 * reply, a tool call round trip, a resume that keeps the session, a resume
 * of an unknown session, an API error, and a cancel that leaves no
 * process. What these tests pin down is what multicad's backends parse.
 * Only a missing npm registry skips them (and each skip says so). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/real_cli.h"
#include "tests/support/real_cli_proc.h"

/* Each CLI run takes about a second; the bounds are for a busy 2-core host. */
#define STEP_MS 60000
#define EXIT_MS 20000
#define GONE_MS 15000
#define MAX_TREE 64

static struct rc_clis clis;
static struct rc_sandbox sb;
static struct rc_fake fake;
static struct rc_proc proc;
static char **env;
/* The processes of a cancel test, killed in fini should the test fail. */
static struct rc_pidinfo tree[MAX_TREE];
static size_t tree_n;

static void fini(void)
{
	for (size_t i = 0; i < tree_n; i++)
		if (rc_pidinfo_alive(&tree[i]))
			kill(tree[i].pid, SIGKILL);
	tree_n = 0;
	rc_proc_free(&proc);
	/* As a subreaper (the cancel tests) orphans may be ours to reap. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	rc_env_free(env);
	env = NULL;
	rc_fake_stop(&fake);
	rc_sandbox_free(&sb);
}

TestSuite(real_claude, .timeout = 150, .fini = fini);
TestSuite(real_codex, .timeout = 150, .fini = fini);

/* Finds the CLIs (or skips: no registry), makes the sandbox and starts the
 * fake model API the CLI of api talks to. */
static void begin(enum rc_api api)
{
	char why[1024];
	enum rc_avail a = rc_find(&clis, why, sizeof why);
	if (a == RC_NO_REGISTRY)
		cr_skip_test("skipped: %s", why);
	cr_assert_eq(a, RC_READY, "%s", why);
	cr_assert_eq(rc_sandbox_new(&sb), 0);
	cr_assert_eq(rc_fake_start(&fake, api, sb.root), 0);
	if (api == RC_API_OPENAI)
		cr_assert_eq(rc_codex_home_seed(sb.codex_home, &fake), 0);
	env = rc_cli_env(&clis, &sb, api == RC_API_ANTHROPIC ? &fake : NULL,
			 api == RC_API_OPENAI ? &fake : NULL);
	cr_assert_not_null(env);
}

static const char *str_at(const cJSON *j, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItem(j, a);
	return cJSON_GetStringValue(b ? cJSON_GetObjectItem(x, b) : x);
}

static void random_uuid(char *out, size_t size)
{
	FILE *f = fopen("/proc/sys/kernel/random/uuid", "re");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(out, (int)size, f));
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/* The last request body the fake logged for path, as text (allocates). */
static char *last_body(const char *path)
{
	cJSON *reqs = rc_fake_requests(&fake), *r, *last = NULL;
	cr_assert_not_null(reqs);
	cJSON_ArrayForEach(r, reqs) {
		const char *p = str_at(r, "path", NULL);
		if (p && strncmp(p, path, strlen(path)) == 0)
			last = cJSON_GetObjectItem(r, "body");
	}
	char *s = last ? cJSON_PrintUnformatted(last) : NULL;
	cJSON_Delete(reqs);
	return s;
}

/* Waits for a process named comm below the CLI, handing what the CLI
 * prints to on (it may need answers before it starts the tool); then
 * snapshots the whole tree. */
static void wait_for_tool_process(const char *comm, void (*on)(void *, const cJSON *),
				  void *ctx)
{
	for (int waited = 0; waited < STEP_MS; waited += 50) {
		cJSON *msg = rc_proc_next_json(&proc, 50);
		if (msg != NULL)
			on(ctx, msg);
		cJSON_Delete(msg);
		tree_n = rc_tree(proc.pid, tree, MAX_TREE);
		for (size_t i = 0; i < tree_n; i++)
			if (strcmp(tree[i].comm, comm) == 0)
				return;
	}
	cr_assert_fail("no %s process below the CLI within %d ms", comm, STEP_MS);
}

/* The processes of tree[0..n) still alive, as " comm(pid)" into buf. */
static size_t survivors(size_t n, char *buf, size_t size)
{
	size_t alive = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!rc_pidinfo_alive(&tree[i]))
			continue;
		alive++;
		size_t len = strlen(buf);
		snprintf(buf + len, size - len, " %s(pid %d, session %d)", tree[i].comm,
			 (int)tree[i].pid, (int)tree[i].sid);
	}
	return alive;
}

/* Becomes what multicad's supervisor is (a child subreaper), so that
 * whatever a stopped CLI leaves behind is re-parented to us, not to init. */
static void be_subreaper(void)
{
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

/* A cancel as multicad does it: SIGTERM to the CLI's process group; the
 * CLI must exit. A tool the CLI started in a session of its own may
 * outlive it (claude's Bash tool does when the SIGTERM comes while the
 * tool starts up): it must then be ours to find (re-parented to the
 * subreaper), and SIGTERM / SIGKILL to its group must end it. Nothing of
 * the tree is left afterwards. */
static void cancel_and_check(const char *cli)
{
	char left[1024];
	size_t n = tree_n;
	cr_assert_eq(kill(-proc.pid, SIGTERM), 0);
	cr_assert_eq(rc_proc_wait(&proc, GONE_MS), 0, "%s outlived SIGTERM by %d ms", cli, GONE_MS);
	/* The CLI's own clean-up may still be under way. */
	rc_wait_gone(tree, n, 3000);
	if (survivors(n, left, sizeof left) > 0) {
		cr_log_info("%s exited on SIGTERM but left its tool running:%s", cli, left);
		struct rc_pidinfo ours[MAX_TREE];
		size_t k = rc_tree(getpid(), ours, MAX_TREE);
		for (size_t i = 0; i < n; i++) {
			bool found = false;
			for (size_t j = 0; j < k && !found; j++)
				found = ours[j].pid == tree[i].pid && ours[j].start == tree[i].start;
			cr_assert(found || !rc_pidinfo_alive(&tree[i]),
				  "pid %d escaped the subreaper", (int)tree[i].pid);
			if (found)
				kill(-tree[i].pgid, SIGTERM);
		}
		if (!rc_wait_gone(tree, n, GONE_MS))
			for (size_t i = 0; i < n; i++)
				if (rc_pidinfo_alive(&tree[i]))
					kill(-tree[i].pgid, SIGKILL);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	cr_assert(rc_wait_gone(tree, n, GONE_MS), "left after the sweep:%s",
		  (survivors(n, left, sizeof left), left));
	cr_assert_eq(rc_count_in_session(proc.pid), 0);
}

/* ---- claude ---- */

struct claude_run {
	char session[128];     /* the last session_id seen */
	char tool_cmd[256];    /* the Bash tool_use's command */
	char tool_out[256];    /* its tool_result */
	cJSON *result;         /* the result event (owned) */
	int exit_code;
};

static void claude_start(const char *prompt, const char *resume)
{
	const char *argv[16] = { clis.claude, "-p", "--output-format", "stream-json",
				 "--input-format", "stream-json", "--verbose",
				 "--permission-mode", "bypassPermissions",
				 "--disallowedTools", "AskUserQuestion", NULL };
	if (resume != NULL) {
		argv[11] = "--resume";
		argv[12] = resume;
	}
	cr_assert_eq(rc_proc_spawn(&proc, argv, env, sb.work), 0);
	/* The prompt as one stream-json user frame; stdin stays open. */
	cJSON *frame = cJSON_Parse("{\"type\":\"user\",\"message\":{\"role\":\"user\","
				   "\"content\":[{\"type\":\"text\"}]}}");
	cJSON *block = cJSON_GetArrayItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(frame, "message"), "content"), 0);
	cJSON_AddStringToObject(block, "text", prompt);
	cr_assert_eq(rc_proc_send_json(&proc, frame), 0);
	cJSON_Delete(frame);
}

/* Answers a control request as multica does: allow, input echoed. */
static void claude_control(const cJSON *ev)
{
	cJSON *resp = cJSON_CreateObject(), *r = cJSON_AddObjectToObject(resp, "response");
	cJSON_AddStringToObject(resp, "type", "control_response");
	cJSON_AddStringToObject(r, "subtype", "success");
	cJSON_AddStringToObject(r, "request_id", str_at(ev, "request_id", NULL));
	cJSON *in = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "request"), "input");
	cJSON *allow = cJSON_AddObjectToObject(r, "response");
	cJSON_AddStringToObject(allow, "behavior", "allow");
	cJSON_AddItemToObject(allow, "updatedInput",
			      in ? cJSON_Duplicate(in, 1) : cJSON_CreateObject());
	rc_proc_send_json(&proc, resp);
	cJSON_Delete(resp);
}

static void claude_note(struct claude_run *r, const cJSON *ev)
{
	const char *type = str_at(ev, "type", NULL), *sid = str_at(ev, "session_id", NULL);
	if (sid != NULL)
		snprintf(r->session, sizeof r->session, "%s", sid);
	if (type != NULL && strcmp(type, "control_request") == 0)
		claude_control(ev);
	const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "message"), "content");
	const cJSON *b;
	cJSON_ArrayForEach(b, content) {
		const char *bt = str_at(b, "type", NULL);
		if (bt && strcmp(bt, "tool_use") == 0)
			snprintf(r->tool_cmd, sizeof r->tool_cmd, "%s",
				 str_at(b, "input", "command") ?: "");
		if (bt && strcmp(bt, "tool_result") == 0 && str_at(b, "content", NULL))
			snprintf(r->tool_out, sizeof r->tool_out, "%s", str_at(b, "content", NULL));
	}
}

static void claude_on(void *r, const cJSON *ev)
{
	claude_note(r, ev);
}

/* Reads events until one of type `until` (returned, owned) or EOF. */
static cJSON *claude_until(struct claude_run *r, const char *until)
{
	cJSON *ev;
	while ((ev = rc_proc_next_json(&proc, STEP_MS)) != NULL) {
		claude_note(r, ev);
		const char *type = str_at(ev, "type", NULL);
		if (type && strcmp(type, until) == 0)
			return ev;
		cJSON_Delete(ev);
	}
	return NULL;
}

/* The rest of a run: the result line, then stdin closed and the exit. */
static void claude_finish(struct claude_run *r)
{
	r->result = claude_until(r, "result");
	cr_assert_not_null(r->result, "no result line; stderr: %s",
			   proc.err.data ? proc.err.data : "");
	rc_proc_close_stdin(&proc);
	cr_assert_eq(rc_proc_wait(&proc, EXIT_MS), 0, "claude did not exit after stdin closed");
	r->exit_code = rc_proc_exit_code(&proc);
}

static void claude_run(struct claude_run *r, const char *prompt, const char *resume)
{
	memset(r, 0, sizeof *r);
	claude_start(prompt, resume);
	claude_finish(r);
}

static void claude_run_free(struct claude_run *r)
{
	cJSON_Delete(r->result);
	r->result = NULL;
	rc_proc_free(&proc);
}

static bool result_is_error(const struct claude_run *r)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(r->result, "is_error"));
}

Test(real_claude, plain_reply)
{
	struct claude_run r;
	begin(RC_API_ANTHROPIC);
	claude_run(&r, "say hi", NULL);
	cr_assert_eq(r.exit_code, 0);
	cr_assert_not(result_is_error(&r));
	cr_assert_str_eq(str_at(r.result, "result", NULL), "hi from fake anthropic");
	cr_assert_gt(strlen(r.session), 0);
	cr_assert_str_eq(str_at(r.result, "session_id", NULL), r.session);
	const cJSON *usage = cJSON_GetObjectItem(r.result, "usage");
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(usage, "input_tokens")), 11);
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(usage, "output_tokens")), 7);
	cr_assert_not_null(cJSON_GetObjectItem(r.result, "modelUsage"));
	/* It reached our fake, with our key, and nothing else answered it. */
	cr_assert_geq(rc_fake_count(&fake, "POST", "/v1/messages"), 1);
	char *body = last_body("/v1/messages");
	cr_assert_not_null(body);
	cr_assert_not_null(strstr(body, "say hi"));
	free(body);
	claude_run_free(&r);
}

Test(real_claude, tool_call_round_trip)
{
	struct claude_run r;
	char path[PATH_MAX + 16], buf[64] = "";
	begin(RC_API_ANTHROPIC);
	claude_run(&r, "USE_TOOL RUN: echo $((6*7)) > out.txt && cat out.txt", NULL);
	cr_assert_eq(r.exit_code, 0, "stderr: %s", proc.err.data ? proc.err.data : "");
	cr_assert_not(result_is_error(&r));
	cr_assert_str_eq(r.tool_cmd, "echo $((6*7)) > out.txt && cat out.txt");
	cr_assert_str_eq(r.tool_out, "42");
	cr_assert_str_eq(str_at(r.result, "result", NULL), "The command printed 42. Done.");
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.result, "num_turns")), 2);
	/* The tool ran in the CLI's cwd. */
	snprintf(path, sizeof path, "%s/out.txt", sb.work);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "the tool did not write %s", path);
	cr_assert_not_null(fgets(buf, sizeof buf, f));
	fclose(f);
	cr_assert_str_eq(buf, "42\n");
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/messages"), 2);
	claude_run_free(&r);
}

Test(real_claude, resume_keeps_the_session)
{
	struct claude_run r1, r2;
	begin(RC_API_ANTHROPIC);
	claude_run(&r1, "remember the word PAPAYA-7", NULL);
	cr_assert_eq(r1.exit_code, 0);
	char sid[128];
	snprintf(sid, sizeof sid, "%s", r1.session);
	claude_run_free(&r1);

	claude_run(&r2, "say hi again", sid);
	cr_assert_eq(r2.exit_code, 0, "stderr: %s", proc.err.data ? proc.err.data : "");
	cr_assert_not(result_is_error(&r2));
	cr_assert_str_eq(str_at(r2.result, "session_id", NULL), sid);
	/* The history went to the model again: the first prompt is in it. */
	char *body = last_body("/v1/messages");
	cr_assert_not_null(body);
	cr_assert_not_null(strstr(body, "PAPAYA-7"), "the resumed run sent no history");
	cr_assert_not_null(strstr(body, "say hi again"));
	free(body);
	claude_run_free(&r2);
}

Test(real_claude, resume_of_an_unknown_session_fails)
{
	struct claude_run r;
	char sid[64], want[128];
	begin(RC_API_ANTHROPIC);
	random_uuid(sid, sizeof sid);
	claude_run(&r, "say hi", sid);
	cr_assert_eq(r.exit_code, 1);
	cr_assert(result_is_error(&r));
	cr_assert_str_eq(str_at(r.result, "subtype", NULL), "error_during_execution");
	/* What multicad's resume-rejection check looks for. */
	snprintf(want, sizeof want, "No conversation found with session ID: %s", sid);
	cr_assert_not_null(proc.err.data);
	cr_assert_not_null(strstr(proc.err.data, want), "stderr: %s", proc.err.data);
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/messages"), 0);
	claude_run_free(&r);
}

Test(real_claude, api_error_is_an_error_result)
{
	struct claude_run r;
	begin(RC_API_ANTHROPIC);
	claude_run(&r, "FAIL401", NULL);
	cr_assert_eq(r.exit_code, 1);
	/* subtype says "success": is_error is what tells. */
	cr_assert(result_is_error(&r));
	cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.result, "api_error_status")), 401);
	cr_assert_not_null(strstr(str_at(r.result, "result", NULL), "fake 401 for testing"));
	/* CLAUDE_CODE_MAX_RETRIES=0: one request, no backoff. */
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/messages"), 1);
	claude_run_free(&r);
}

Test(real_claude, cancel_leaves_no_process)
{
	struct claude_run r;
	memset(&r, 0, sizeof r);
	begin(RC_API_ANTHROPIC);
	be_subreaper();
	claude_start("USE_TOOL RUN: sleep 300", NULL);
	wait_for_tool_process("sleep", claude_on, &r);
	cancel_and_check("claude");
	claude_run_free(&r);
}

/* ---- codex ---- */

struct codex_run {
	int next_id;
	char thread[128];
	char agent_text[256];    /* the last agentMessage */
	char cmd_out[256];       /* the last commandExecution's aggregatedOutput */
	int cmd_exit;
	int approvals;           /* server requests we accepted */
	double input_tokens;     /* from thread/tokenUsage/updated */
	cJSON *turn;             /* turn/completed params.turn (owned) */
};

static void codex_start(struct codex_run *r)
{
	const char *argv[] = { clis.codex, "app-server", "--listen", "stdio://", NULL };
	memset(r, 0, sizeof *r);
	cr_assert_eq(rc_proc_spawn(&proc, argv, env, sb.work), 0);
}

/* Sends a request (params consumed); returns its id. */
static int codex_request(struct codex_run *r, const char *method, cJSON *params)
{
	cJSON *req = cJSON_CreateObject();
	int id = ++r->next_id;
	cJSON_AddStringToObject(req, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(req, "id", id);
	cJSON_AddStringToObject(req, "method", method);
	cJSON_AddItemToObject(req, "params", params ? params : cJSON_CreateObject());
	cr_assert_eq(rc_proc_send_json(&proc, req), 0);
	cJSON_Delete(req);
	return id;
}

/* A server->client request: approvals accepted (multica's answers),
 * anything else refused. */
static void codex_answer(struct codex_run *r, const cJSON *msg)
{
	const char *m = str_at(msg, "method", NULL);
	cJSON *resp = cJSON_CreateObject();
	cJSON_AddStringToObject(resp, "jsonrpc", "2.0");
	cJSON_AddItemToObject(resp, "id", cJSON_Duplicate(cJSON_GetObjectItem(msg, "id"), 1));
	size_t n = strlen(m), k = strlen("requestApproval");
	if ((n >= k && strcmp(m + n - k, "requestApproval") == 0 &&
	     strcmp(m, "item/permissions/requestApproval") != 0) ||
	    strcmp(m, "execCommandApproval") == 0 || strcmp(m, "applyPatchApproval") == 0) {
		cJSON_AddStringToObject(cJSON_AddObjectToObject(resp, "result"), "decision", "accept");
		r->approvals++;
	} else {
		cJSON *e = cJSON_AddObjectToObject(resp, "error");
		cJSON_AddNumberToObject(e, "code", -32601);
		cJSON_AddStringToObject(e, "message", "unsupported codex app-server request");
		cr_log_warn("codex asked %s: refused", m);
	}
	rc_proc_send_json(&proc, resp);
	cJSON_Delete(resp);
}

static void codex_note(struct codex_run *r, const cJSON *msg)
{
	const char *m = str_at(msg, "method", NULL);
	const cJSON *p = cJSON_GetObjectItem(msg, "params");
	const cJSON *item = cJSON_GetObjectItem(p, "item");
	const char *it = str_at(item, "type", NULL);
	if (strcmp(m, "item/completed") == 0 && it && strcmp(it, "agentMessage") == 0)
		snprintf(r->agent_text, sizeof r->agent_text, "%s", str_at(item, "text", NULL) ?: "");
	if (strcmp(m, "item/completed") == 0 && it && strcmp(it, "commandExecution") == 0) {
		snprintf(r->cmd_out, sizeof r->cmd_out, "%s",
			 str_at(item, "aggregatedOutput", NULL) ?: "");
		r->cmd_exit = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(item, "exitCode"));
	}
	if (strcmp(m, "thread/tokenUsage/updated") == 0) {
		const cJSON *total = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "tokenUsage"), "total");
		r->input_tokens = cJSON_GetNumberValue(cJSON_GetObjectItem(total, "inputTokens"));
	}
	if (strcmp(m, "turn/completed") == 0 && r->turn == NULL)
		r->turn = cJSON_Duplicate(cJSON_GetObjectItem(p, "turn"), 1);
}

/* A message that is not the awaited response: a server request is
 * answered, a notification noted. */
static void codex_on(void *ctx, const cJSON *msg)
{
	struct codex_run *r = ctx;
	if (str_at(msg, "method", NULL) == NULL)
		return;
	if (cJSON_GetObjectItem(msg, "id") != NULL)
		codex_answer(r, msg);
	else
		codex_note(r, msg);
}

/* Reads until the response to id (returned, owned) or, with id 0, until
 * turn/completed (NULL then; r->turn holds it). */
static cJSON *codex_until(struct codex_run *r, int id)
{
	cJSON *msg;
	while ((msg = rc_proc_next_json(&proc, STEP_MS)) != NULL) {
		const cJSON *mid = cJSON_GetObjectItem(msg, "id");
		if (id != 0 && str_at(msg, "method", NULL) == NULL &&
		    cJSON_GetNumberValue(mid) == id)
			return msg;
		codex_on(r, msg);
		cJSON_Delete(msg);
		if (id == 0 && r->turn != NULL)
			return NULL;
	}
	cr_assert_fail("codex ended before %s; stderr: %s", id ? "the response" : "turn/completed",
		       proc.err.data ? proc.err.data : "");
	return NULL;
}

/* initialize, then the initialized notification. */
static void codex_handshake(struct codex_run *r)
{
	cJSON *p = cJSON_Parse("{\"clientInfo\":{\"name\":\"multicad-test\",\"title\":\"multicad\","
			       "\"version\":\"0.1\"},\"capabilities\":{\"experimentalApi\":true}}");
	cJSON *res = codex_until(r, codex_request(r, "initialize", p));
	cr_assert_not_null(cJSON_GetObjectItem(res, "result"), "initialize failed");
	cJSON_Delete(res);
	cr_assert_eq(rc_proc_send(&proc, "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\"}"), 0);
}

/* thread/start, or thread/resume of resume; returns the response (owned). */
static cJSON *codex_thread(struct codex_run *r, const char *resume)
{
	cJSON *p = cJSON_CreateObject();
	if (resume != NULL)
		cJSON_AddStringToObject(p, "threadId", resume);
	cJSON_AddStringToObject(p, "cwd", sb.work);
	cJSON_AddNullToObject(p, "model");
	cJSON_AddNullToObject(p, "approvalPolicy");
	cJSON_AddStringToObject(p, "sandbox", "danger-full-access");
	if (resume == NULL) {
		cJSON_AddFalseToObject(p, "experimentalRawEvents");
		cJSON_AddTrueToObject(p, "persistExtendedHistory");
	}
	cJSON *res = codex_until(r, codex_request(r, resume ? "thread/resume" : "thread/start", p));
	const char *tid = str_at(cJSON_GetObjectItem(res, "result"), "thread", "id");
	if (tid != NULL)
		snprintf(r->thread, sizeof r->thread, "%s", tid);
	return res;
}

static void codex_turn_start(struct codex_run *r, const char *prompt)
{
	cJSON *p = cJSON_CreateObject(), *in = cJSON_AddArrayToObject(p, "input");
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "threadId", r->thread);
	cJSON_AddStringToObject(t, "type", "text");
	cJSON_AddStringToObject(t, "text", prompt);
	cJSON_AddItemToArray(in, t);
	cJSON *res = codex_until(r, codex_request(r, "turn/start", p));
	cr_assert_not_null(cJSON_GetObjectItem(res, "result"), "turn/start failed");
	cJSON_Delete(res);
}

/* A whole run: handshake, thread (resumed or new), one turn, stdin
 * closed, exit. */
static void codex_run(struct codex_run *r, const char *prompt, const char *resume)
{
	codex_start(r);
	codex_handshake(r);
	cJSON *res = codex_thread(r, resume);
	cr_assert_not_null(cJSON_GetObjectItem(res, "result"), "thread start/resume failed");
	cJSON_Delete(res);
	codex_turn_start(r, prompt);
	codex_until(r, 0);
	rc_proc_close_stdin(&proc);
	cr_assert_eq(rc_proc_wait(&proc, EXIT_MS), 0, "codex did not exit after stdin closed");
}

static void codex_run_free(struct codex_run *r)
{
	cJSON_Delete(r->turn);
	r->turn = NULL;
	rc_proc_free(&proc);
}

static const char *turn_status(const struct codex_run *r)
{
	return str_at(r->turn, "status", NULL);
}

Test(real_codex, plain_reply)
{
	struct codex_run r;
	begin(RC_API_OPENAI);
	codex_run(&r, "say hi", NULL);
	cr_assert_str_eq(turn_status(&r), "completed");
	cr_assert_str_eq(r.agent_text, "hi from fake openai");
	cr_assert_gt(strlen(r.thread), 0);
	cr_assert_eq(r.input_tokens, 13);
	cr_assert_eq(rc_proc_exit_code(&proc), 0);
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/responses"), 1);
	char *body = last_body("/v1/responses");
	cr_assert_not_null(body);
	cr_assert_not_null(strstr(body, "say hi"));
	free(body);
	codex_run_free(&r);
}

Test(real_codex, tool_call_round_trip)
{
	struct codex_run r;
	char path[PATH_MAX + 16], buf[64] = "";
	begin(RC_API_OPENAI);
	codex_run(&r, "USE_TOOL RUN: echo $((6*7)) > out.txt && cat out.txt", NULL);
	cr_assert_str_eq(turn_status(&r), "completed");
	cr_assert_str_eq(r.cmd_out, "42\n");
	cr_assert_eq(r.cmd_exit, 0);
	cr_assert_str_eq(r.agent_text, "The command printed 42. Done.");
	snprintf(path, sizeof path, "%s/out.txt", sb.work);
	FILE *f = fopen(path, "re");
	cr_assert_not_null(f, "the tool did not write %s", path);
	cr_assert_not_null(fgets(buf, sizeof buf, f));
	fclose(f);
	cr_assert_str_eq(buf, "42\n");
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/responses"), 2);
	cr_log_info("approvals answered: %d", r.approvals);
	codex_run_free(&r);
}

Test(real_codex, resume_keeps_the_thread)
{
	struct codex_run r1, r2;
	char tid[128];
	begin(RC_API_OPENAI);
	codex_run(&r1, "remember the word PAPAYA-7", NULL);
	cr_assert_str_eq(turn_status(&r1), "completed");
	snprintf(tid, sizeof tid, "%s", r1.thread);
	codex_run_free(&r1);

	codex_run(&r2, "say hi again", tid);
	cr_assert_str_eq(r2.thread, tid);
	cr_assert_str_eq(turn_status(&r2), "completed");
	cr_assert_str_eq(r2.agent_text, "hi from fake openai");
	char *body = last_body("/v1/responses");
	cr_assert_not_null(body);
	cr_assert_not_null(strstr(body, "PAPAYA-7"), "the resumed thread sent no history");
	cr_assert_not_null(strstr(body, "say hi again"));
	free(body);
	codex_run_free(&r2);
}

Test(real_codex, resume_of_an_unknown_thread_fails)
{
	struct codex_run r;
	char tid[64], want[128];
	begin(RC_API_OPENAI);
	random_uuid(tid, sizeof tid);
	codex_start(&r);
	codex_handshake(&r);
	cJSON *res = codex_thread(&r, tid);
	/* A JSON-RPC error, not a result: multicad falls back to thread/start. */
	cr_assert_null(cJSON_GetObjectItem(res, "result"));
	const char *msg = str_at(cJSON_GetObjectItem(res, "error"), "message", NULL);
	snprintf(want, sizeof want, "no rollout found for thread id %s", tid);
	cr_assert_not_null(msg);
	cr_assert_not_null(strstr(msg, want), "error: %s", msg);
	cJSON_Delete(res);
	rc_proc_close_stdin(&proc);
	cr_assert_eq(rc_proc_wait(&proc, EXIT_MS), 0);
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/responses"), 0);
	codex_run_free(&r);
}

Test(real_codex, api_error_fails_the_turn)
{
	struct codex_run r;
	begin(RC_API_OPENAI);
	codex_run(&r, "FAIL401", NULL);
	cr_assert_str_eq(turn_status(&r), "failed");
	const char *msg = str_at(cJSON_GetObjectItem(r.turn, "error"), "message", NULL);
	cr_assert_not_null(msg);
	cr_assert_not_null(strstr(msg, "401"), "error: %s", msg);
	/* request_max_retries = 0: one request. */
	cr_assert_eq(rc_fake_count(&fake, "POST", "/v1/responses"), 1);
	codex_run_free(&r);
}

Test(real_codex, cancel_leaves_no_process)
{
	struct codex_run r;
	begin(RC_API_OPENAI);
	be_subreaper();
	codex_start(&r);
	codex_handshake(&r);
	cJSON *res = codex_thread(&r, NULL);
	cJSON_Delete(res);
	codex_turn_start(&r, "USE_TOOL RUN: sleep 300");
	wait_for_tool_process("sleep", codex_on, &r);
	cancel_and_check("codex");
	codex_run_free(&r);
}
