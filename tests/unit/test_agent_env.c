/* worker/agent_env: the agent's environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "common/secret.h"
#include "worker/agent_env.h"

TestSuite(agent_env, .timeout = 30);

#define WS "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define AGENT "11111111-2222-4333-8444-555555555555"
#define TASK "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define DAEMON_TOKEN "mul_daemon_secret_0123456789"

static struct mc_kv custom[8];
static struct mc_task task;

static void init_task(size_t n_custom)
{
	cr_assert_geq(sodium_init(), 0);
	memset(&task, 0, sizeof task);
	snprintf(task.id, sizeof task.id, "%s", TASK);
	snprintf(task.agent_id, sizeof task.agent_id, "%s", AGENT);
	snprintf(task.workspace_id, sizeof task.workspace_id, "%s", WS);
	task.agent_name = (char *)"Builder";
	task.custom_env = custom;
	task.n_custom_env = n_custom;
}

static size_t count_key(char **envp, const char *key)
{
	size_t n = 0, k = strlen(key);
	for (; *envp; envp++)
		if (strncmp(*envp, key, k) == 0 && (*envp)[k] == '=')
			n++;
	return n;
}

static char **build(char *const *base, struct mc_secret *forbidden, const char *codex_home)
{
	struct mc_secret *tok = mc_secret_new("mat_task_token", 14);
	struct mc_agent_env_in in = {
		.base = base, .task = &task, .task_token = tok, .forbidden = forbidden,
		.server_url = "http://127.0.0.1:9", .daemon_port = "19514", .slot = 3,
		.config_root = "/w/t/multica-config", .workspaces_root = "/w",
		.tmpdir = "/w/t/tmp", .codex_home = codex_home,
	};
	char err[128] = "";
	char **env = mc_agent_env_build(&in, err, sizeof err);
	cr_assert_not_null(env, "%s", err);
	mc_secret_free(tok);
	return env;
}

Test(agent_env, task_facts_present_once)
{
	init_task(0);
	char *base[] = {"PATH=/usr/bin", "HOME=/home/d", "TMPDIR=/tmp", "LANG=C", NULL};
	char **env = build(base, NULL, NULL);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TOKEN"), "mat_task_token");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_SERVER_URL"), "http://127.0.0.1:9");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_DAEMON_PORT"), "19514");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_WORKSPACE_ID"), WS);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_AGENT_ID"), AGENT);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_AGENT_NAME"), "Builder");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TASK_ID"), TASK);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TASK_SLOT"), "3");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TASK_CONFIG_ROOT"), "/w/t/multica-config");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TASK_WORKSPACES_ROOT"), "/w");
	cr_assert_str_eq(mc_agent_env_get(env, "TMPDIR"), "/w/t/tmp", "the task's temp dir wins");
	cr_assert_str_eq(mc_agent_env_get(env, "TMP"), "/w/t/tmp");
	cr_assert_str_eq(mc_agent_env_get(env, "TEMP"), "/w/t/tmp");
	cr_assert_str_eq(mc_agent_env_get(env, "HOME"), "/home/d", "HOME untouched");
	cr_assert_str_eq(mc_agent_env_get(env, "LANG"), "C");
	cr_assert_null(mc_agent_env_get(env, "CODEX_HOME"), "claude gets no CODEX_HOME");
	for (char **p = env; *p; p++) {
		char key[128];
		size_t k = strcspn(*p, "=");
		memcpy(key, *p, k);
		key[k] = '\0';
		cr_assert_eq(count_key(env, key), 1, "%s once", key);
	}
	mc_agent_env_free(env);
	env = build(base, NULL, "/w/t/codex-home");
	cr_assert_str_eq(mc_agent_env_get(env, "CODEX_HOME"), "/w/t/codex-home");
	mc_agent_env_free(env);
}

Test(agent_env, daemon_multica_and_claude_markers_removed)
{
	init_task(0);
	char *base[] = {"MULTICA_TOKEN=mul_inherited", "MULTICA_FOO=1", "MULTICA_WORKSPACES_ROOT=/x",
			"CLAUDECODE=1", "CLAUDE_CODE_ENTRYPOINT=cli", "CLAUDE_CODE_SSE_PORT=1",
			"CLAUDE_CODE_SESSION_ID=s", "CLAUDE_CODE_EXECPATH=/c", "CLAUDECODE_X=1",
			"CLAUDE_CONFIG_DIR=/keep", "KEEP=1", "NOEQUALS", "=novalue", NULL};
	char **env = build(base, NULL, NULL);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TOKEN"), "mat_task_token",
			 "the inherited MULTICA_TOKEN never reaches the agent");
	cr_assert_null(mc_agent_env_get(env, "MULTICA_FOO"));
	cr_assert_null(mc_agent_env_get(env, "MULTICA_WORKSPACES_ROOT"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDECODE"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDE_CODE_ENTRYPOINT"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDE_CODE_SSE_PORT"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDE_CODE_SESSION_ID"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDE_CODE_EXECPATH"));
	cr_assert_null(mc_agent_env_get(env, "CLAUDECODE_X"));
	cr_assert_str_eq(mc_agent_env_get(env, "CLAUDE_CONFIG_DIR"), "/keep");
	cr_assert_str_eq(mc_agent_env_get(env, "KEEP"), "1");
	for (char **p = env; *p; p++)
		cr_assert(strchr(*p, '=') && **p != '=', "malformed entry %s", *p);
	mc_agent_env_free(env);
}

/* systemd's hand-over to the daemon (sd_notify socket, watchdog, socket
 * activation) is the daemon's alone. */
Test(agent_env, service_manager_variables_removed)
{
	init_task(0);
	char *base[] = {"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=30000000",
			"WATCHDOG_PID=1", "LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=x",
			"JOURNAL_STREAM=8:1", NULL};
	char **env = build(base, NULL, NULL);
	cr_assert_null(mc_agent_env_get(env, "NOTIFY_SOCKET"));
	cr_assert_null(mc_agent_env_get(env, "WATCHDOG_USEC"));
	cr_assert_null(mc_agent_env_get(env, "WATCHDOG_PID"));
	cr_assert_null(mc_agent_env_get(env, "LISTEN_FDS"));
	cr_assert_null(mc_agent_env_get(env, "LISTEN_PID"));
	cr_assert_null(mc_agent_env_get(env, "LISTEN_FDNAMES"));
	cr_assert_str_eq(mc_agent_env_get(env, "JOURNAL_STREAM"), "8:1");
	mc_agent_env_free(env);
}

Test(agent_env, duplicates_resolved_last_wins)
{
	init_task(2);
	custom[0] = (struct mc_kv){"LANG", "de_DE.UTF-8"};
	custom[1] = (struct mc_kv){"EDITOR", "vi"};
	char *base[] = {"LANG=C", "EDITOR=nano", "LANG=en_US.UTF-8", NULL};
	char **env = build(base, NULL, NULL);
	cr_assert_eq(count_key(env, "LANG"), 1);
	cr_assert_eq(count_key(env, "EDITOR"), 1);
	cr_assert_str_eq(mc_agent_env_get(env, "LANG"), "de_DE.UTF-8", "custom_env wins");
	cr_assert_str_eq(mc_agent_env_get(env, "EDITOR"), "vi");
	mc_agent_env_free(env);
}

Test(agent_env, blocked_custom_env_keys_ignored)
{
	init_task(8);
	custom[0] = (struct mc_kv){"MULTICA_TOKEN", "mat_stolen"};
	custom[1] = (struct mc_kv){"MULTICA_SERVER_URL", "http://evil"};
	custom[2] = (struct mc_kv){"HOME", "/evil"};
	custom[3] = (struct mc_kv){"PATH", "/evil"};
	custom[4] = (struct mc_kv){"TMPDIR", "/evil"};
	custom[5] = (struct mc_kv){"CODEX_HOME", "/evil"};
	custom[6] = (struct mc_kv){"BAD=KEY", "x"};
	custom[7] = (struct mc_kv){"ANTHROPIC_BASE_URL", "http://127.0.0.1:1"};
	char *base[] = {"PATH=/usr/bin", "HOME=/home/d", NULL};
	char **env = build(base, NULL, NULL);
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_TOKEN"), "mat_task_token");
	cr_assert_str_eq(mc_agent_env_get(env, "MULTICA_SERVER_URL"), "http://127.0.0.1:9");
	cr_assert_str_eq(mc_agent_env_get(env, "HOME"), "/home/d");
	cr_assert_str_eq(mc_agent_env_get(env, "PATH"), "/usr/bin");
	cr_assert_str_eq(mc_agent_env_get(env, "TMPDIR"), "/w/t/tmp");
	cr_assert_null(mc_agent_env_get(env, "CODEX_HOME"));
	cr_assert_null(mc_agent_env_get(env, "BAD"));
	cr_assert_str_eq(mc_agent_env_get(env, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:1");
	for (char **p = env; *p; p++)
		cr_assert_null(strstr(*p, "evil"), "%s", *p);
	mc_agent_env_free(env);
	cr_assert(mc_agent_env_blocked("MULTICA_ANYTHING"));
	cr_assert(mc_agent_env_blocked("SHELL"));
	cr_assert_not(mc_agent_env_blocked("ANTHROPIC_API_KEY"));
}

Test(agent_env, daemon_token_value_never_in_env)
{
	init_task(2);
	custom[0] = (struct mc_kv){"LEAK", "Bearer " DAEMON_TOKEN};
	custom[1] = (struct mc_kv){"FINE", "x"};
	char *base[] = {"OLD_TOKEN=" DAEMON_TOKEN, "LEAK=harmless", "MY=1", NULL};
	struct mc_secret *daemon = mc_secret_new(DAEMON_TOKEN, strlen(DAEMON_TOKEN));
	char **env = build(base, daemon, NULL);
	for (char **p = env; *p; p++)
		cr_assert_null(strstr(*p, DAEMON_TOKEN), "%s", *p);
	cr_assert_null(mc_agent_env_get(env, "OLD_TOKEN"));
	cr_assert_null(mc_agent_env_get(env, "LEAK"), "the earlier LEAK goes too");
	cr_assert_str_eq(mc_agent_env_get(env, "FINE"), "x");
	cr_assert_str_eq(mc_agent_env_get(env, "MY"), "1");
	mc_agent_env_free(env);

	/* a task token that carries the daemon token is refused altogether */
	struct mc_secret *tok = mc_secret_new("mat_" DAEMON_TOKEN, 4 + strlen(DAEMON_TOKEN));
	struct mc_agent_env_in in = {.task = &task, .task_token = tok, .forbidden = daemon,
				     .server_url = "http://x", .tmpdir = "/t"};
	char err[128] = "";
	cr_assert_null(mc_agent_env_build(&in, err, sizeof err));
	cr_assert_neq(err[0], '\0');
	mc_secret_free(tok);
	mc_secret_free(daemon);
}
