/* Agents run without the daemon's powers, and one workspace's agents cannot
 * reach another's (issue 11). The attacker-mode fake claude (tests/agents/
 * fake_attack.h) runs in workspace A while workspace B's agent sleeps, tries
 * every forbidden action and reports each errno to the server; the tests
 * assert what the server saw. Root only (the agent_users fixture makes
 * multicad-test-agent); each test has its own uid/gid sub-range. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "common/identity.h"
#include "tests/integration/test_isolation.h"
#include "tests/support/fp_tasks.h"

TestSuite(isolation, .init = iso_setup, .fini = iso_fini, .timeout = 150);

static uid_t user_uid(void)
{
	struct passwd *pw = getpwnam(ISO_USER);
	cr_assert_not_null(pw, "no user %s: the agent_users fixture did not run", ISO_USER);
	return pw->pw_uid;
}

static long num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	cr_assert(cJSON_IsNumber(v), "no %s in the report", k);
	return (long)cJSON_GetNumberValue(v);
}

Test(isolation, agent_user_keeps_workspaces_apart_by_group)
{
	iso_start("agent_user = " ISO_USER "\nagent_gid_range = 62100-62199\n");
	iso_start_sleeper();
	iso_write_plan("");
	char id[40];
	cJSON *r = iso_attack(id);
	iso_assert_plan(r);
	cr_assert_eq(num(r, "uid"), (long)user_uid(), "the agent runs as " ISO_USER);
	cr_assert_eq(num(r, "euid"), (long)user_uid());
	long slot = iso_slot(WS[1]);
	cr_assert_geq(slot, 0, "A has no slot in agent-ids");
	cr_assert_eq(num(r, "gid"), 62100 + slot, "the agent's group is A's");
	cr_assert_neq(iso_slot(WS[2]), slot, "A and B share a group");
	/* One agent user: processes are not apart (the uid range does that). */
	iso_assert_no_token(r);
	cJSON_Delete(r);
	iso_finish_sleeper();
}

Test(isolation, uid_range_keeps_agents_apart_as_processes_and_persists)
{
	char tmpl[300], seed[340], extra[700];
	snprintf(tmpl, sizeof tmpl, "%s/tmpl", ISO.dir);
	cr_assert_eq(mkdir(tmpl, 0755), 0);
	snprintf(seed, sizeof seed, "%s/seed.txt", tmpl);
	FILE *f = fopen(seed, "w");
	cr_assert_not_null(f);
	fputs("seeded\n", f);
	fclose(f);
	cr_assert_eq(chmod(seed, 0644), 0);
	snprintf(extra, sizeof extra, "agent_uid_range = 61100-61199\nagent_home_template = %s\n",
		 tmpl);
	iso_start(extra);
	iso_start_sleeper();
	iso_write_plan("");
	char id[40];
	cJSON *r = iso_attack(id);
	iso_assert_plan(r);
	iso_assert_denied(r, "kill_b_agent", false);
	iso_assert_denied(r, "ptrace_b_agent", false);
	long slot_a = iso_slot(WS[1]), slot_b = iso_slot(WS[2]);
	cr_assert(slot_a >= 0 && slot_b >= 0 && slot_a != slot_b, "slots %ld %ld", slot_a, slot_b);
	long uid_a = num(r, "uid"), uid_b = iso_proc_uid(ISO.b_agent);
	cr_assert_eq(uid_a, 61100 + slot_a, "A's uid from its slot");
	cr_assert_eq(num(r, "gid"), 61100 + slot_a, "gid = uid in the uid range");
	cr_assert_eq(uid_b, 61100 + slot_b, "B's uid from its slot");
	cr_assert_neq(uid_a, uid_b);

	/* HOME: A's own, 0700, seeded from the template. */
	const char *home = cJSON_GetStringValue(cJSON_GetObjectItem(r, "home"));
	cr_assert(home != NULL && home[0] == '/', "no HOME");
	struct stat st;
	cr_assert_eq(lstat(home, &st), 0, "%s: %s", home, strerror(errno));
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq((long)st.st_uid, uid_a, "HOME %s is uid %ld's", home, (long)st.st_uid);
	cr_assert_eq(st.st_mode & 07777, 0700, "HOME mode %o", st.st_mode & 07777);
	char p[4200];
	snprintf(p, sizeof p, "%s/seed.txt", home);
	cr_assert_eq(lstat(p, &st), 0, "the template was not seeded into %s", home);
	cr_assert_eq((long)st.st_uid, uid_a, "the seeded file is the agent's");
	iso_assert_no_token(r);
	cJSON_Delete(r);
	iso_finish_sleeper();

	/* Restart: the same slots, so the same uid for A. */
	cr_assert(dp_stop(&D, 12000), "the daemon did not stop");
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, 20000);
	cr_assert_eq(iso_slot(WS[1]), slot_a, "A's slot changed across a restart");
	cr_assert_eq(iso_slot(WS[2]), slot_b, "B's slot changed across a restart");
	FILE *pf = fopen(ISO.plan, "w");
	cr_assert_not_null(pf);
	fputs("exec_true\texec\t/bin/true\n", pf);
	fclose(pf);
	r = iso_attack(id);
	cr_assert_eq(num(r, "uid"), uid_a, "A's uid after the restart");
	cJSON_Delete(r);
}

/* The fallback, said plainly everywhere: -t, the log, status (JSON and text). */
static void assert_fallback_said(const char *wrapper)
{
	cr_assert(DP_WAIT(dp_log_has(&D, MC_IDENTITY_FALLBACK_WARNING, NULL, NULL, NULL), 5000),
		  "the start-up log does not say it");
	char *reply = NULL;
	cr_assert_eq(dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000), 0);
	cJSON *j = cJSON_Parse(reply);
	cJSON *a = cJSON_GetObjectItem(j, "agents");
	cr_assert_not_null(a, "no agents object in status: %.300s", reply);
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(a, "isolated")), "%.400s", reply);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "mode")), "daemon");
	const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(a, "warning"));
	cr_assert(w != NULL && strstr(w, MC_IDENTITY_FALLBACK_WARNING) != NULL, "warning: %s",
		  w ? w : "null");
	cJSON_Delete(j);
	free(reply);
	int code;
	const char *ctl[] = { MULTICACTL_BIN, "-s", D.sock_path, "status", NULL };
	char *out = iso_run(ctl, &code);
	cr_assert_eq(code, 0, "multicactl status: %s", out);
	cr_assert(strstr(out, MC_IDENTITY_FALLBACK_WARNING) != NULL, "multicactl status: %s", out);
	free(out);
	const char *t[] = { wrapper ? wrapper : MULTICAD_BIN, "-t", "-c", D.conf_path, NULL };
	out = iso_run(t, &code);
	cr_assert_eq(code, 0, "multicad -t: %s", out);
	cr_assert(strstr(out, MC_IDENTITY_FALLBACK_WARNING) != NULL, "multicad -t: %s", out);
	free(out);
}

static void run_as_daemon_user(void)
{
	FILE *pf = fopen(ISO.plan, "w");
	cr_assert_not_null(pf);
	fputs("exec_true\texec\t/bin/true\nwrite_cwd\twrite_file\t$CWD/ok.txt\n", pf);
	fprintf(pf, "token_file\tread_file\t%s\n", D.token_path);
	fclose(pf);
	char id[40];
	cJSON *r = iso_attack(id);
	cr_assert_eq(num(r, "uid"), (long)geteuid(), "the agent runs as the daemon's user");
	iso_assert_allowed(r, "exec_true");
	iso_assert_allowed(r, "write_cwd");
	/* What the warning says is true (and the fake's read_file can succeed). */
	iso_assert_allowed(r, "token_file");
	cJSON_Delete(r);
}

Test(isolation, empty_agent_user_runs_agents_as_the_daemon_and_says_so)
{
	iso_start("agent_user =\n");
	run_as_daemon_user();
	assert_fallback_said(NULL);
}

Test(isolation, without_setuid_capabilities_agents_run_as_the_daemon_and_it_says_so)
{
	/* Root without CAP_SETUID/CAP_SETGID: dropped from the bounding and
	 * inheritable sets before the exec, so the exec'd root gets neither in
	 * its permitted or effective set (a container's root, say). */
	static char wrapper[300];
	snprintf(wrapper, sizeof wrapper, "%s/nocaps", ISO.dir);
	FILE *f = fopen(wrapper, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\nexec /usr/bin/setpriv --bounding-set=-setuid,-setgid "
		   "--inh-caps=-setuid,-setgid -- %s \"$@\"\n", MULTICAD_BIN);
	fclose(f);
	cr_assert_eq(chmod(wrapper, 0755), 0);
	dfx_start_plane(2, NULL, NULL, NULL);
	static struct dp_config c;
	static char extra[600], providers[400];
	c.workspaces = dfx_ws_list(1, 2);
	snprintf(extra, sizeof extra, "task_poll_interval = 300ms\nworkspaces_root = %s\n"
		 "agent_user = " ISO_USER "\nagent_gid_range = 62300-62399\n", ISO.root);
	snprintf(providers, sizeof providers, "claude = %s\n", ISO.claude);
	c.daemon_extra = extra;
	c.providers = providers;
	dfx_prepare_daemon(&c, NULL);
	D.exec_path = wrapper;
	cr_assert_eq(dp_start(&D), 0);
	dfx_wait_ws_ready(1, 1, 20000);
	char st[64];
	snprintf(st, sizeof st, "/proc/%d/status", (int)D.pid);
	FILE *sf = fopen(st, "r");
	char line[256];
	unsigned long long eff = ~0ull;
	while (sf != NULL && fgets(line, sizeof line, sf) != NULL)
		if (strncmp(line, "CapEff:", 7) == 0)
			eff = strtoull(line + 7, NULL, 16);
	if (sf != NULL)
		fclose(sf);
	cr_assert_eq(eff & ((1ull << 6) | (1ull << 7)), 0, "the daemon still has CAP_SETUID/GID");
	run_as_daemon_user();
	assert_fallback_said(wrapper);
	cr_assert(dp_log_has(&D, MC_IDENTITY_FALLBACK_WARNING, "CAP_SET", NULL, NULL),
		  "the reason names the missing capability");
}
