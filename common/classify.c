/* The failure classifier (classify.h): one ordered table, first match
 * wins. The order is the point: the most specific classes come first, so
 * "exited with code 1: API Error: 401 ..." is an authentication problem,
 * not a process failure, and a quota 429 is a quota limit, not a rate
 * limit. Texts are the agent CLIs' own (claude's result text, codex's
 * error events) and our API errors ("POST .../start: 503 ..." is a
 * server error, "...: timed out: ..." a network one, as in multica). */
#include "common/classify.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#define E(x) "agent_error." x

enum match { SUB, CODE };

struct rule {
	const char *reason;
	enum match how;     /* SUB: case-insensitive substring; CODE: a 3-digit
	                       HTTP status standing alone ("(429)", "API Error: 500") */
	const char *text;
};

static const struct rule rules[] = {
	/* The context is full: a retry with the same prompt fails the same way. */
	{ E("context_overflow"), SUB, "prompt is too long" },
	{ E("context_overflow"), SUB, "context window" },
	{ E("context_overflow"), SUB, "context length" },
	{ E("context_overflow"), SUB, "context_length_exceeded" },
	{ E("context_overflow"), SUB, "maximum context" },
	{ E("context_overflow"), SUB, "input is too long" },
	/* Quota before rate limits: OpenAI's insufficient_quota comes as a 429. */
	{ E("provider_quota_limit"), SUB, "insufficient_quota" },
	{ E("provider_quota_limit"), SUB, "exceeded your current quota" },
	{ E("provider_quota_limit"), SUB, "quota" },
	{ E("provider_quota_limit"), SUB, "credit balance" },
	{ E("provider_quota_limit"), SUB, "billing" },
	{ E("provider_quota_limit"), SUB, "usage limit" },
	{ E("provider_quota_limit"), SUB, "spending limit" },
	{ E("provider_quota_limit"), CODE, "402" },
	/* Model before access: "does not exist or you do not have access to it". */
	{ E("model_not_found_or_unavailable"), SUB, "model_not_found" },
	{ E("model_not_found_or_unavailable"), SUB, "model not found" },
	{ E("model_not_found_or_unavailable"), SUB, "unknown model" },
	{ E("model_not_found_or_unavailable"), SUB, "invalid model" },
	{ E("model_not_found_or_unavailable"), SUB, "no such model" },
	{ E("model_not_found_or_unavailable"), SUB, "model metadata for" },
	{ E("model_not_found_or_unavailable"), SUB, "model is not available" },
	{ E("model_not_found_or_unavailable"), SUB, "model unavailable" },
	{ E("provider_auth_or_access"), CODE, "401" },
	{ E("provider_auth_or_access"), CODE, "403" },
	{ E("provider_auth_or_access"), SUB, "authenticate" },
	{ E("provider_auth_or_access"), SUB, "authentication" },
	{ E("provider_auth_or_access"), SUB, "unauthorized" },
	{ E("provider_auth_or_access"), SUB, "forbidden" },
	{ E("provider_auth_or_access"), SUB, "not logged in" },
	{ E("provider_auth_or_access"), SUB, "/login" },
	{ E("provider_auth_or_access"), SUB, "invalid api key" },
	{ E("provider_auth_or_access"), SUB, "invalid x-api-key" },
	{ E("provider_auth_or_access"), SUB, "invalid_api_key" },
	{ E("provider_auth_or_access"), SUB, "permission_error" },
	{ E("provider_capacity_or_rate_limit"), CODE, "429" },
	{ E("provider_capacity_or_rate_limit"), CODE, "529" },
	{ E("provider_capacity_or_rate_limit"), SUB, "rate limit" },
	{ E("provider_capacity_or_rate_limit"), SUB, "rate_limit" },
	{ E("provider_capacity_or_rate_limit"), SUB, "too many requests" },
	{ E("provider_capacity_or_rate_limit"), SUB, "overloaded" },
	{ E("provider_capacity_or_rate_limit"), SUB, "high demand" },
	{ E("provider_capacity_or_rate_limit"), SUB, "capacity" },
	{ E("provider_server_error"), CODE, "500" },
	{ E("provider_server_error"), CODE, "502" },
	{ E("provider_server_error"), CODE, "503" },
	{ E("provider_server_error"), CODE, "504" },
	{ E("provider_server_error"), SUB, "server-side issue" },
	{ E("provider_server_error"), SUB, "internal server error" },
	{ E("provider_server_error"), SUB, "server_error" },
	{ E("provider_server_error"), SUB, "bad gateway" },
	{ E("provider_server_error"), SUB, "service unavailable" },
	/* The agent's own time limits, before the network's "timed out". */
	{ E("agent_timeout"), SUB, "agent timed out" },
	{ E("agent_timeout"), SUB, "agent timeout" },
	{ E("agent_timeout"), SUB, "task timed out" },
	{ E("agent_timeout"), SUB, "idle timeout" },
	{ E("agent_timeout"), SUB, "time limit" },
	{ E("provider_network"), SUB, "connection refused" },
	{ E("provider_network"), SUB, "connectionrefused" },
	{ E("provider_network"), SUB, "econnrefused" },
	{ E("provider_network"), SUB, "unable to connect" },
	{ E("provider_network"), SUB, "timed out" },
	{ E("provider_network"), SUB, "etimedout" },
	{ E("provider_network"), SUB, "deadline exceeded" },
	{ E("provider_network"), SUB, "econnreset" },
	{ E("provider_network"), SUB, "connection reset" },
	{ E("provider_network"), SUB, "socket hang up" },
	{ E("provider_network"), SUB, "getaddrinfo" },
	{ E("provider_network"), SUB, "enotfound" },
	{ E("provider_network"), SUB, "eai_again" },
	{ E("provider_network"), SUB, "name resolution" },
	{ E("provider_network"), SUB, "no route to host" },
	{ E("provider_network"), SUB, "tls handshake" },
	{ E("provider_network"), SUB, "fetch failed" },
	{ E("provider_network"), SUB, "network" },
	{ E("runtime_missing_executable"), SUB, "executable file not found" },
	{ E("runtime_missing_executable"), SUB, "executable not found" },
	{ E("runtime_missing_executable"), SUB, "command not found" },
	{ E("runtime_missing_executable"), SUB, "no such file or directory" },
	{ E("runtime_missing_executable"), SUB, "enoent" },
	{ E("runtime_version_unsupported"), SUB, "unsupported version" },
	{ E("runtime_version_unsupported"), SUB, "version is not supported" },
	{ E("runtime_version_unsupported"), SUB, "please upgrade" },
	{ E("missing_config"), SUB, "missing configuration" },
	{ E("missing_config"), SUB, "config file not found" },
	{ E("missing_config"), SUB, "not configured" },
	{ E("empty_or_unparseable_output"), SUB, "without terminal result" },
	{ E("empty_or_unparseable_output"), SUB, "without a result" },
	{ E("empty_or_unparseable_output"), SUB, "unparseable" },
	{ E("empty_or_unparseable_output"), SUB, "could not parse" },
	{ E("empty_or_unparseable_output"), SUB, "failed to parse" },
	{ E("empty_or_unparseable_output"), SUB, "invalid json" },
	{ E("empty_or_unparseable_output"), SUB, "empty output" },
	{ E("empty_or_unparseable_output"), SUB, "no output" },
	/* Last: a CLI that failed for any reason above also exited non-zero. */
	{ E("process_failure"), SUB, "exited with" },
	{ E("process_failure"), SUB, "exit status" },
	{ E("process_failure"), SUB, "exit code" },
	{ E("process_failure"), SUB, "signal" },
	{ E("process_failure"), SUB, "killed" },
	{ E("process_failure"), SUB, "segmentation fault" },
	{ E("process_failure"), SUB, "core dumped" },
	{ E("process_failure"), SUB, "crashed" },
	{ E("process_failure"), SUB, "panic" },
};

/* Characters that may touch a status code: not part of a longer token
 * (a port "127.0.0.1:5000", a UUID "...-a500-...", "v1.429"). */
static bool code_boundary(char c)
{
	return c == '\0' || !(isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_' ||
			      c == '/');
}

static bool has_code(const char *text, const char *code)
{
	size_t n = strlen(code);
	for (const char *p = text; (p = strstr(p, code)) != NULL; p++)
		if ((p == text || code_boundary(p[-1])) && code_boundary(p[n]))
			return true;
	return false;
}

static bool rule_matches(const struct rule *r, const char *text)
{
	return r->how == CODE ? has_code(text, r->text) : strcasestr(text, r->text) != NULL;
}

const char *mc_failure_classify(const char *error_text)
{
	if (error_text == NULL || error_text[0] == '\0')
		return E("unknown");
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
		if (rule_matches(&rules[i], error_text))
			return rules[i].reason;
	return E("unknown");
}

bool mc_failure_reason_retryable(const char *reason)
{
	static const char *const retryable[] = {
		"runtime_offline", "runtime_recovery", "timeout", "codex_semantic_inactivity",
		E("provider_network"), "skill_bundle_unavailable",
	};
	if (reason == NULL)
		return false;
	for (size_t i = 0; i < sizeof retryable / sizeof retryable[0]; i++)
		if (strcmp(reason, retryable[i]) == 0)
			return true;
	return false;
}
