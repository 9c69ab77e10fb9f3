/* The supervisor's side of the agents' identity (supervisor/agents.c), as
 * an operator sees it: status --json "agents", the text status's warning
 * line, the start-up log, multicad -t, state_dir's modes, the agent-ids
 * file, a workspace past the range parked as config-error and started by a
 * reload that widens it, a reload into isolation restarting the worker.
 * The isolated cases need root (CI runs as root): skipped otherwise; the
 * fallback of a daemon without capabilities runs it as an ordinary uid. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common/identity.h"
#include "tests/support/daemon_fixture.h"

#define READY_MS 15000
#define UNPRIV_UID 61990   /* the daemon as an ordinary user: no capabilities */

TestSuite(sv_agents, .timeout = 120, .fini = dfx_fini);

static void need_root(void)
{
	if (geteuid() != 0 || !mc_identity_can_switch())
		cr_skip_test("needs root with CAP_SETUID (CI runs as root)");
}

/* status --json, parsed (caller deletes). */
static cJSON *status(void)
{
	char *reply = NULL;
	cr_assert_eq(dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000), 0, "no status reply");
	cJSON *o = cJSON_Parse(reply);
	free(reply);
	cr_assert_not_null(o);
	return o;
}

static const cJSON *agents_of(const cJSON *st)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "agents");
	cr_assert(cJSON_IsObject(a), "status has no \"agents\" object");
	return a;
}

static const char *str_of(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* The state and last_error of workspace i in status. */
static bool ws_state(int i, char *state, size_t n, char *err, size_t en)
{
	char *reply = NULL;
	if (dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000) < 0)
		return false; /* not listening yet */
	cJSON *st = cJSON_Parse(reply);
	free(reply);
	const cJSON *w;
	bool found = false;
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(st, "workspaces")) {
		if (strcmp(str_of(w, "id"), WS[i]) != 0)
			continue;
		snprintf(state, n, "%s", str_of(w, "state") ? str_of(w, "state") : "");
		const char *e = str_of(w, "last_error");
		snprintf(err, en, "%s", e ? e : "");
		found = true;
	}
	cJSON_Delete(st);
	return found;
}

static bool ws_in_state(int i, const char *want)
{
	char s[32], e[512];
	return ws_state(i, s, sizeof s, e, sizeof e) && strcmp(s, want) == 0;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

/* Runs multicad -t on the daemon's config: its stderr into out, the exit
 * status returned. */
static int check_config(char *out, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' -t -c '%s' 2>&1", MULTICAD_BIN, D.conf_path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t used = fread(out, 1, n - 1, p);
	out[used] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(sv_agents, explicit_fallback_is_said_everywhere)
{
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = WS[1], .daemon_extra = "agent_user =\n" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);

	cJSON *st = status();
	const cJSON *a = agents_of(st);
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "isolated")));
	cr_assert_str_eq(str_of(a, "mode"), "daemon");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "user")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "uid_range")));
	cr_assert_str_eq(str_of(a, "warning"), MC_IDENTITY_FALLBACK_WARNING ": agent_user is empty");
	cJSON_Delete(st);

	cr_assert(dp_log_has(&D, "level=warn", MC_IDENTITY_FALLBACK_WARNING,
			     "reason=\"agent_user is empty\"", NULL),
		  "no warning in the start-up log");
	char out[2048];
	cr_assert_eq(check_config(out, sizeof out), 0, "multicad -t: %s", out);
	cr_assert_not_null(strstr(out, "multicad: warning: " MC_IDENTITY_FALLBACK_WARNING
				       " (agent_user is empty)"), "%s", out);
	/* nothing to reach through: state_dir stays private */
	cr_assert_eq(mode_of(D.state_dir), 0700);
}

/* A daemon run by an ordinary user: no CAP_SETUID, the fallback with the
 * reason, and still a working daemon. */
Test(sv_agents, without_capabilities_agents_run_as_the_daemon_and_it_says_so)
{
	need_root(); /* to start the daemon as another uid */
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = WS[1], .daemon_extra = "agent_user = nobody\n" };
	dfx_prepare_daemon(&c, NULL);
	/* The unprivileged uid must reach the binary: the build dir may sit
	 * under a 0700 directory (CI clones into mktemp -d). */
	static char bindir[] = "/tmp/mc-svbin-XXXXXX";
	static char bin[64], cmd[1200];
	cr_assert_not_null(mkdtemp(bindir));
	chmod(bindir, 0755);
	snprintf(bin, sizeof bin, "%s/multicad", bindir);
	snprintf(cmd, sizeof cmd, "cp '%s' %s && chmod 0755 %s", MULTICAD_BIN, bin, bin);
	cr_assert_eq(system(cmd), 0);
	D.exec_path = bin;
	cr_assert_eq(dp_run_as(&D, UNPRIV_UID, UNPRIV_UID), 0);
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, READY_MS);
	cJSON *st = status();
	const cJSON *a = agents_of(st);
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "isolated")));
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(a, "uid")->valuedouble, UNPRIV_UID);
	cr_assert_not_null(strstr(str_of(a, "warning"), MC_IDENTITY_FALLBACK_WARNING
						     ": the daemon lacks CAP_SETUID"),
			   "%s", str_of(a, "warning"));
	cJSON_Delete(st);
	cr_assert(dp_log_has(&D, "level=warn", MC_IDENTITY_FALLBACK_WARNING, "lacks CAP_SETUID",
			     NULL));
	snprintf(cmd, sizeof cmd, "rm -rf %s", bindir);
	cr_expect_eq(system(cmd), 0);
}

Test(sv_agents, one_agent_user_isolates_and_closes_state_dir)
{
	need_root();
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = WS[1], .daemon_extra = "agent_user = nobody\n" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);

	cJSON *st = status();
	const cJSON *a = agents_of(st);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "isolated")));
	cr_assert_str_eq(str_of(a, "mode"), "user");
	cr_assert_str_eq(str_of(a, "user"), "nobody");
	cr_assert_eq(cJSON_GetObjectItemCaseSensitive(a, "uid")->valuedouble, 65534);
	cr_assert_str_eq(str_of(a, "gid_range"), "62000-62999");
	cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "warning")));
	cJSON_Delete(st);
	cr_assert_not(dp_log_has(&D, MC_IDENTITY_FALLBACK_WARNING, NULL, NULL, NULL));
	cr_assert(dp_log_has(&D, "agents run apart from the daemon", "mode=user", "user=nobody",
			     NULL));

	/* the workspace's slot, kept in state_dir, private */
	char path[400], text[256] = "";
	snprintf(path, sizeof path, "%s/agent-ids", D.state_dir);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no %s", path);
	cr_assert_not_null(fgets(text, sizeof text, f));
	fclose(f);
	char want[80];
	snprintf(want, sizeof want, "%s 0\n", WS[1]);
	cr_assert_str_eq(text, want);
	cr_assert_eq(mode_of(path), 0600);
	/* workspaces_root (state_dir/work) is inside: state_dir is passable,
	 * nothing else in it open to others */
	cr_assert_eq(mode_of(D.state_dir), 0711);
	snprintf(path, sizeof path, "%s/ledger", D.state_dir);
	cr_assert_eq(mode_of(path) & 077, 0);
	snprintf(path, sizeof path, "%s/multicad.pid", D.state_dir);
	cr_assert_eq(mode_of(path) & 077, 0);

	/* the text status has no warning line */
	char cmd[1024], out[4096];
	snprintf(cmd, sizeof cmd, "'%s' -s '%s' status 2>&1", MULTICACTL_BIN, D.sock_path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t used = fread(out, 1, sizeof out - 1, p);
	out[used] = '\0';
	pclose(p);
	cr_assert_null(strstr(out, "warning:"), "%s", out);
}

Test(sv_agents, a_workspace_past_the_range_waits_for_a_wider_one)
{
	need_root();
	dfx_start_plane(2, NULL, NULL, NULL);
	char extra[128];
	snprintf(extra, sizeof extra, "agent_uid_range = 61950-61950\n");
	struct dp_config c = { .workspaces = dfx_ws_list(1, 2), .daemon_extra = extra };
	dfx_start_daemon(&c, NULL);
	/* which one gets the slot depends on the start order: one runs, the
	 * other is parked naming the range */
	int parked = 0;
	DFX_WAIT_UP((ws_in_state(1, "config-error") && (parked = 1)) ||
		    (ws_in_state(2, "config-error") && (parked = 2)), READY_MS,
		    "no workspace parked past the range");
	int other = parked == 1 ? 2 : 1;
	dfx_wait_ws_ready(other, 1, READY_MS);
	char s[32], e[512];
	cr_assert(ws_state(parked, s, sizeof s, e, sizeof e));
	cr_assert_not_null(strstr(e, "agent_uid_range 61950-61950 is exhausted"), "%s", e);

	snprintf(extra, sizeof extra, "agent_uid_range = 61950-61951\n");
	cr_assert_eq(dp_reload(&D, &c), 0);
	dfx_wait_ws_ready(parked, 1, READY_MS);
	dfx_wait_ws_ready(other, 1, READY_MS);
}

Test(sv_agents, a_reload_into_isolation_restarts_the_worker)
{
	need_root();
	dfx_start_plane(1, NULL, NULL, NULL);
	struct dp_config c = { .workspaces = WS[1], .daemon_extra = "agent_user =\n" };
	dfx_start_daemon(&c, NULL);
	dfx_wait_ws_ready(1, 1, READY_MS);
	pid_t before = dp_worker_pid(&D, WS[1]);

	c.daemon_extra = "agent_user = nobody\n";
	cr_assert_eq(dp_reload(&D, &c), 0);
	DFX_WAIT_UP(dp_worker_pid(&D, WS[1]) != 0 && dp_worker_pid(&D, WS[1]) != before, READY_MS,
		    "the worker was not restarted");
	cJSON *st = status();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(agents_of(st), "isolated")));
	cJSON_Delete(st);
	cr_assert(dp_log_has(&D, "agents run apart from the daemon", NULL, NULL, NULL));

	/* an agent_user given and unknown: the reload is refused, nothing changes */
	c.daemon_extra = "agent_user = mc-no-such-user-7\n";
	cr_assert_eq(dp_reload(&D, &c), 0);
	DFX_WAIT_UP(dp_log_has(&D, "agent_user mc-no-such-user-7: no such user", NULL, NULL, NULL),
		    5000, "the refused reload is not in the log");
	st = status();
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(agents_of(st), "isolated")));
	cr_assert_str_eq(str_of(agents_of(st), "user"), "nobody");
	cJSON_Delete(st);
}
