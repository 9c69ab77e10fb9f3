/* Server-defined commands run only as the agents' identity (issue 11): the
 * version probe of a custom profile, a command_name that is a path, and
 * agent_env_file's variables reaching the agents and probes but never the
 * daemon's own processes. Root only (test_isolation.h). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/integration/test_isolation.h"

TestSuite(isolation_probe, .init = iso_setup, .fini = iso_fini, .timeout = 150);

#define PROF "a8000000-0000-4000-8000-000000000001"
#define ENV_VAR "ISO_AGENT_ONLY_VAR"
#define ENV_VAL "from-the-agent-env-file"

static char probe[300], probe_out[300];

/* A claude-family profile of workspace 1 whose command_name is a script
 * that records who ran it (id -u, id -g, $ENV_VAR) into probe_out and
 * answers --version like the fake claude. */
static char *profile_with_script(void)
{
	dfx_ws_ids();
	snprintf(probe, sizeof probe, "%s/bin/iso-probe", ISO.dir);
	snprintf(probe_out, sizeof probe_out, "%s/out", ISO.dir);
	cr_assert_eq(mkdir(probe_out, 01777), 0);
	cr_assert_eq(chmod(probe_out, 01777), 0);
	FILE *f = fopen(probe, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nf=%s/probe.$$\n{ id -u; id -g; echo \"${" ENV_VAR ":-unset}\"; } > $f\n"
		   "echo '2.1.197 (Claude Code)'\n", probe_out);
	fclose(f);
	cr_assert_eq(chmod(probe, 0755), 0);
	static char profiles[1024];
	snprintf(profiles, sizeof profiles,
		 "[{\"id\":\"" PROF "\",\"workspace_id\":\"%s\",\"display_name\":\"Iso probe\","
		 "\"protocol_family\":\"claude\",\"command_name\":\"%s\",\"fixed_args\":[],"
		 "\"visibility\":\"workspace\",\"enabled\":true}]", WS[1], probe);
	return profiles;
}

/* The daemon with the profile; tail: [workspace] lines (may be ""). */
static void start_with(const char *profiles, const char *daemon_extra, const char *tail, int rows)
{
	dfx_ws_ids();
	dfx_start_plane(1, NULL, profiles, NULL);
	static struct dp_config c;
	static char extra[1200], providers[400];
	c.workspaces = dfx_ws_list(1, 1);
	snprintf(extra, sizeof extra, "task_poll_interval = 300ms\nworkspaces_root = %s\n%s",
		 ISO.root, daemon_extra);
	snprintf(providers, sizeof providers, "claude = %s\n", ISO.claude);
	c.daemon_extra = extra;
	c.providers = providers;
	c.tail = tail;
	dfx_prepare_daemon(&c, NULL);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, rows, 20000);
}

/* The first record the probe script left: "uid\ngid\nvar\n" (malloc'd). */
static char *probe_record(void)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "cat %s/probe.* 2>/dev/null | head -3", probe_out);
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int code;
	return iso_run(argv, &code);
}

static uid_t user_uid(void)
{
	struct passwd *pw = getpwnam(ISO_USER);
	cr_assert_not_null(pw, "no user %s: the agent_users fixture did not run", ISO_USER);
	return pw->pw_uid;
}

Test(isolation_probe, command_name_path_needs_allow_profile_paths_or_an_override)
{
	const char *profiles = profile_with_script();
	start_with(profiles, "agent_user = " ISO_USER "\nagent_gid_range = 62400-62499\n", "", 1);
	cr_assert(DP_WAIT(dp_journal_match(&FP, 0, "POST", "/api/daemon/register",
					   "command_name is a path", 0) > 0, 10000),
		  "the profile is not in failed_profiles with the reason");
	char *rec = probe_record();
	cr_assert_str_eq(rec, "", "the path was probed anyway: %s", rec);
	free(rec);
}

Test(isolation_probe, probe_runs_as_the_agent_identity_with_the_agents_env)
{
	const char *profiles = profile_with_script();
	char envf[300], tail[700], extra[600];
	snprintf(envf, sizeof envf, "%s/agents.env", ISO.dir);
	FILE *f = fopen(envf, "w");
	cr_assert_not_null(f);
	fputs("# for the agents only\n" ENV_VAR "=" ENV_VAL "\n", f);
	fclose(f);
	cr_assert_eq(chmod(envf, 0600), 0);
	snprintf(extra, sizeof extra, "agent_user = " ISO_USER "\nagent_gid_range = 62500-62599\n"
		 "agent_env_file = %s\n", envf);
	snprintf(tail, sizeof tail, "[workspace %s]\nprofile_command." PROF " = %s\n", WS[1], probe);
	start_with(profiles, extra, tail, 2);
	char *rec = NULL;
	cr_assert(DP_WAIT((free(rec), rec = probe_record(), rec[0] != '\0'), 10000),
		  "the probe never ran");
	long slot = iso_slot(WS[1]);
	char want[200];
	snprintf(want, sizeof want, "%ld\n%ld\n" ENV_VAL "\n", (long)user_uid(), 62500 + slot);
	cr_assert_str_eq(rec, want, "the probe ran as (uid, gid, " ENV_VAR ")");
	free(rec);
}

/* The variable reaches the agent, never the worker or the supervisor. */
static bool environ_has(pid_t pid, const char *needle)
{
	char p[64], cmd[200];
	snprintf(p, sizeof p, "/proc/%d/environ", (int)pid);
	snprintf(cmd, sizeof cmd, "tr '\\0' '\\n' < %s", p);
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int code;
	char *env = iso_run(argv, &code);
	cr_assert_eq(code, 0, "cannot read %s", p);
	bool has = strstr(env, needle) != NULL;
	free(env);
	return has;
}

Test(isolation_probe, agent_env_file_reaches_agents_only)
{
	char envf[300], extra[600];
	snprintf(envf, sizeof envf, "%s/agents.env", ISO.dir);
	FILE *f = fopen(envf, "w");
	cr_assert_not_null(f);
	fputs(ENV_VAR "=\"" ENV_VAL "\"\n", f);
	fclose(f);
	cr_assert_eq(chmod(envf, 0600), 0);
	snprintf(extra, sizeof extra, "agent_uid_range = 61600-61699\nagent_env_file = %s\n", envf);
	start_with(NULL, extra, "", 1);
	FILE *pf = fopen(ISO.plan, "w");
	cr_assert_not_null(pf);
	fputs("var\tgetenv\t" ENV_VAR "\n", pf);
	fclose(pf);
	cr_assert_eq(chmod(ISO.plan, 0644), 0);
	char id[40];
	cJSON *r = iso_attack(id);
	cJSON *e = iso_result(r, "var");
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(e, "value"));
	cr_assert(v != NULL && strcmp(v, ENV_VAL) == 0, "the agent got %s", v ? v : "nothing");
	cJSON_Delete(r);
	pid_t w = dp_worker_pid(&D, WS[1]);
	cr_assert_gt(w, 0);
	cr_assert(!environ_has(w, ENV_VAL), "the worker's environment has it");
	cr_assert(!environ_has(D.pid, ENV_VAL), "the supervisor's environment has it");
	cr_assert(!dp_log_has(&D, ENV_VAL, NULL, NULL, NULL), "the value is in the log");
}
