/* The failure classifier (common/classify.h), row by row with the texts
 * the real agent CLIs print (tests/agents/README.md and tests/integration/test_real_cli.c) and the
 * errors of our own API client, plus the retryable reasons. */
#include <stddef.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/classify.h"

TestSuite(classify, .timeout = 30);

#define E(x) "agent_error." x
#define AUTH     E("provider_auth_or_access")
#define QUOTA    E("provider_quota_limit")
#define RATE     E("provider_capacity_or_rate_limit")
#define SERVER   E("provider_server_error")
#define NET      E("provider_network")
#define CONTEXT  E("context_overflow")
#define MODEL    E("model_not_found_or_unavailable")
#define NOEXEC   E("runtime_missing_executable")
#define PROCESS  E("process_failure")
#define OUTPUT   E("empty_or_unparseable_output")
#define TIMEOUT  E("agent_timeout")
#define UNKNOWN  E("unknown")

struct row {
	const char *text;
	const char *want;
};

static void check(const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_expect_str_eq(mc_failure_classify(rows[i].text), rows[i].want, "row %zu: %s", i,
				 rows[i].text);
}

#define CHECK(rows) check(rows, sizeof rows / sizeof rows[0])

Test(classify, provider_auth_or_access)
{
	static const struct row rows[] = {
		/* claude -p stream-json result on a 401 */
		{ "Failed to authenticate. API Error: 401 fake 401 for testing", AUTH },
		/* claude without an API key */
		{ "Not logged in · Please run /login", AUTH },
		/* codex error event */
		{ "unexpected status 401 Unauthorized: fake 401 for testing, url: http://127.0.0.1:4000/v1/responses",
		  AUTH },
		{ "API Error: 403 {\"type\":\"error\",\"error\":{\"type\":\"permission_error\"}}",
		  AUTH },
		{ "Invalid API key · Fix external API key", AUTH },
		/* the CLI's exit does not hide the reason */
		{ "claude exited with code 1: Failed to authenticate. API Error: 401",
		  AUTH },
	};
	CHECK(rows);
}

Test(classify, provider_quota_limit)
{
	static const struct row rows[] = {
		{ "unexpected status 429 Too Many Requests: You exceeded your current quota, please check "
		  "your plan and billing details. (insufficient_quota)", QUOTA },
		{ "API Error: 400 Your credit balance is too low to access the Anthropic API.",
		  QUOTA },
		{ "Claude AI usage limit reached|1767225600", QUOTA },
	};
	CHECK(rows);
}

Test(classify, provider_capacity_or_rate_limit)
{
	static const struct row rows[] = {
		/* claude on a 429 */
		{ "API Error: Request rejected (429) · fake 429 for testing", RATE },
		{ "API Error: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
		  RATE },
		{ "rate limit exceeded, retry later", RATE },
		/* codex on a 500 from the model API */
		{ "We\u2019re currently experiencing high demand, which may cause temporary errors.",
		  RATE },
	};
	CHECK(rows);
}

Test(classify, provider_server_error)
{
	static const struct row rows[] = {
		/* claude on a 500 */
		{ "API Error: 500 fake 500 for testing. This is a server-side issue, usually temporary",
		  SERVER },
		{ "unexpected status 502 Bad Gateway", SERVER },
		{ "Internal Server Error", SERVER },
		/* reference 8.2 item 13: a platform 503 on /start */
		{ "POST /api/daemon/tasks/0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f/start: 503 service restarting",
		  SERVER },
	};
	CHECK(rows);
}

Test(classify, provider_network)
{
	static const struct row rows[] = {
		/* claude with its model API down */
		{ "API Error: Unable to connect to API (ConnectionRefused)", NET },
		{ "connect ECONNREFUSED 127.0.0.1:4000", NET },
		{ "read ECONNRESET", NET },
		/* codex: never an error of its own, our idle watchdog's text names it */
		{ "stream disconnected before completion: Reconnecting... waiting for network",
		  NET },
		/* our API client: a timed-out /start (reference 8.2 item 13) */
		{ "POST /api/daemon/tasks/0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f/start: timed out: "
		  "Operation timed out after 5000 milliseconds with 0 bytes received", NET },
		{ "Post \"https://x/api\": context deadline exceeded", NET },
		{ "getaddrinfo ENOTFOUND api.anthropic.com", NET },
	};
	CHECK(rows);
}

Test(classify, context_overflow)
{
	static const struct row rows[] = {
		{ "API Error: 400 prompt is too long: 210000 tokens > 200000 maximum", CONTEXT },
		{ "Your input exceeds the context window of this model.", CONTEXT },
		{ "context_length_exceeded", CONTEXT },
	};
	CHECK(rows);
}

Test(classify, model_not_found_or_unavailable)
{
	static const struct row rows[] = {
		{ "API Error: 404 {\"type\":\"not_found_error\",\"message\":\"model: claude-x\"} model_not_found",
		  MODEL },
		{ "The model `gpt-9` does not exist or you do not have access to it. (model not found)",
		  MODEL },
		/* codex for a model it has no metadata for */
		{ "Model metadata for `x` not found", MODEL },
	};
	CHECK(rows);
}

Test(classify, runtime_missing_executable)
{
	static const struct row rows[] = {
		{ "exec: \"claude\": executable file not found in $PATH", NOEXEC },
		{ "execve /opt/bin/ccms: No such file or directory", NOEXEC },
		{ "spawn codex ENOENT", NOEXEC },
		{ "sh: 1: codex: command not found", NOEXEC },
	};
	CHECK(rows);
}

Test(classify, process_failure)
{
	static const struct row rows[] = {
		{ "claude exited with code 1", PROCESS },
		{ "agent killed by signal 9 (SIGKILL)", PROCESS },
		{ "codex: exit status 101", PROCESS },
		{ "Segmentation fault (core dumped)", PROCESS },
	};
	CHECK(rows);
}

Test(classify, empty_or_unparseable_output)
{
	static const struct row rows[] = {
		{ "stream ended without terminal result", OUTPUT },
		{ "claude stream ended without a result event", OUTPUT },
		{ "failed to parse agent output", OUTPUT },
	};
	CHECK(rows);
}

Test(classify, agent_timeout)
{
	static const struct row rows[] = {
		{ "agent timed out after 2h0m0s", TIMEOUT },
		{ "task timed out waiting for the agent", TIMEOUT },
	};
	CHECK(rows);
}

Test(classify, unknown_and_edges)
{
	static const struct row rows[] = {
		{ "", UNKNOWN },
		{ "something odd happened", UNKNOWN },
		/* numbers inside other tokens are no status codes */
		{ "wrote 5000 bytes to 127.0.0.1:4290", UNKNOWN },
		{ "task 0c6e1f4a-8a51-4d27-a500-1b2a3c4d5e6f: odd", UNKNOWN },
		{ "version 1.401.2 odd", UNKNOWN },
		/* case does not matter */
		{ "CONNECTION REFUSED", NET },
	};
	CHECK(rows);
	cr_expect_str_eq(mc_failure_classify(NULL), UNKNOWN);
}

Test(classify, retryable)
{
	static const char *const yes[] = {
		"runtime_offline", "runtime_recovery", "timeout", "codex_semantic_inactivity",
		E("provider_network"), "skill_bundle_unavailable",
	};
	static const char *const no[] = {
		"cancelled", "idle_watchdog", SERVER, UNKNOWN,
		E("provider_capacity_or_rate_limit"), "runtime_offline2", "", "Timeout",
	};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		cr_expect(mc_failure_reason_retryable(yes[i]), "%s", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		cr_expect_not(mc_failure_reason_retryable(no[i]), "%s", no[i]);
	cr_expect_not(mc_failure_reason_retryable(NULL));
	/* what the classifier says for a network error is retried by the server */
	cr_expect(mc_failure_reason_retryable(mc_failure_classify("connect ECONNREFUSED")));
}
