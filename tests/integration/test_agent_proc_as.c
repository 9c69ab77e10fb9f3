/* An agent spawned as another identity (issue 11): what the kernel says
 * about the child (/proc/<pid>/status), the directories it makes as the
 * agent, and the named errors of the steps between fork and exec. As
 * root (CI); skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/clock.h"
#include "worker/agent_proc.h"

#define AGENT_UID 61950
#define AGENT_GID 61951
#define EXTRA_GID 61952

static char dir[64];
static struct mc_agent *A;
static const struct mc_identity AS = { .sw = true, .uid = AGENT_UID, .gid = AGENT_GID,
				       .extra_gid = EXTRA_GID };

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0)
		cr_skip_test("needs root: spawns as uid %d", AGENT_UID);
	snprintf(dir, sizeof dir, "/tmp/mc-agentas-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	/* the agent's group may create in it, as in a workspace's dir */
	cr_assert_eq(chown(dir, 0, AGENT_GID), 0);
	cr_assert_eq(chmod(dir, 02770), 0);
}

static void teardown(void)
{
	mc_agent_free(A);
	A = NULL;
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
}

TestSuite(agent_as, .init = setup, .fini = teardown, .timeout = 60);

/* The value of "Key:" in /proc/pid/status, into out. */
static bool status_field(pid_t pid, const char *key, char *out, size_t size)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	bool found = false;
	size_t kl = strlen(key);
	while (!found && fgets(buf, sizeof buf, f) != NULL) {
		if (strncmp(buf, key, kl) != 0 || buf[kl] != ':')
			continue;
		char *v = buf + kl + 1;
		while (*v == '\t' || *v == ' ')
			v++;
		size_t n = strcspn(v, "\n");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		v[n] = '\0';
		snprintf(out, size, "%s", v);
		found = true;
	}
	fclose(f);
	return found;
}

static void path_of(char *out, size_t size, const char *leaf)
{
	snprintf(out, size, "%s/%s", dir, leaf);
}

Test(agent_as, child_runs_as_the_identity_without_powers)
{
	char home[128], tmp[128], env_home[160];
	path_of(home, sizeof home, "home");
	path_of(tmp, sizeof tmp, "tmp");
	snprintf(env_home, sizeof env_home, "HOME=%s", home);
	char *argv[] = { "sleep", "30", NULL };
	/* a bare name: found on the agent's PATH by the child */
	char *envp[] = { "PATH=/nonexistent:/usr/bin:/bin", env_home, NULL };
	struct mc_agent_dir dirs[] = { { .label = "HOME", .path = home },
				       { .label = "TMPDIR", .path = tmp } };
	struct mc_agent_spec spec = { .path = "sleep", .argv = argv, .envp = envp, .cwd = home,
				      .as = &AS, .dirs = dirs, .n_dirs = 2 };
	char err[256];
	A = mc_agent_spawn(&spec, err, sizeof err);
	cr_assert_not_null(A, "spawn: %s", err);
	pid_t pid = mc_agent_pid(A);
	char v[256], want[128];
	/* exec'd: the status is the program's, not the forked worker's */
	mc_ms_t until = mc_now_ms() + 5000;
	while (mc_now_ms() < until && (!status_field(pid, "Name", v, sizeof v) ||
				       strcmp(v, "sleep") != 0))
		usleep(10000);
	cr_assert_str_eq(v, "sleep");
	snprintf(want, sizeof want, "%d\t%d\t%d\t%d", AGENT_UID, AGENT_UID, AGENT_UID, AGENT_UID);
	cr_assert(status_field(pid, "Uid", v, sizeof v));
	cr_assert_str_eq(v, want);
	snprintf(want, sizeof want, "%d\t%d\t%d\t%d", AGENT_GID, AGENT_GID, AGENT_GID, AGENT_GID);
	cr_assert(status_field(pid, "Gid", v, sizeof v));
	cr_assert_str_eq(v, want);
	cr_assert(status_field(pid, "Groups", v, sizeof v));
	snprintf(want, sizeof want, "%d %d", AGENT_GID, EXTRA_GID);
	cr_assert_str_eq(v, want, "supplementary groups: %s", v);
	static const char *const caps[] = { "CapEff", "CapPrm", "CapInh", "CapAmb" };
	for (size_t i = 0; i < 4; i++) {
		cr_assert(status_field(pid, caps[i], v, sizeof v));
		cr_assert_str_eq(v, "0000000000000000", "%s: %s", caps[i], v);
	}
	cr_assert(status_field(pid, "NoNewPrivs", v, sizeof v));
	cr_assert_str_eq(v, "1");
	/* in a session and group of its own */
	cr_assert_eq(getpgid(pid), pid);
	cr_assert_eq(getsid(pid), pid);
	/* HOME and TMPDIR made by the agent: its own, private */
	const char *made[] = { home, tmp };
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		cr_assert_eq(lstat(made[i], &st), 0, "%s", made[i]);
		cr_assert(S_ISDIR(st.st_mode));
		cr_assert_eq(st.st_uid, (uid_t)AGENT_UID, "%s owner %u", made[i], st.st_uid);
		cr_assert_eq(st.st_mode & 07777, 0700, "%s mode %o", made[i], st.st_mode & 07777);
	}
	/* the worker (root here; CAP_KILL in production) stops it as a group */
	mc_agent_stop(A, 0, mc_now_ms());
	until = mc_now_ms() + 5000;
	while (!mc_agent_done(A) && mc_now_ms() < until) {
		mc_agent_service(A, mc_now_ms(), NULL, NULL);
		usleep(10000);
	}
	cr_assert(mc_agent_done(A), "a stopped agent of another uid is gone");
}

Test(agent_as, home_of_another_owner_is_a_named_error)
{
	char home[128];
	path_of(home, sizeof home, "home");
	cr_assert_eq(mkdir(home, 0700), 0); /* root's, not the agent's */
	char *argv[] = { "true", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct mc_agent_dir dirs[] = { { .label = "HOME", .path = home } };
	struct mc_agent_spec spec = { .path = "/bin/true", .argv = argv, .envp = envp, .as = &AS,
				      .dirs = dirs, .n_dirs = 1 };
	char err[256], want[256];
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	snprintf(want, sizeof want, "HOME %s is not the agent's (owner uid 0)", home);
	cr_assert_str_eq(err, want);
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "the child was reaped");

	/* one of the agent's already there: kept, no error */
	cr_assert_eq(chown(home, AGENT_UID, AGENT_GID), 0);
	A = mc_agent_spawn(&spec, err, sizeof err);
	cr_assert_not_null(A, "%s", err);
}

Test(agent_as, switch_failure_and_missing_command_are_named)
{
	char *argv[] = { "x", NULL };
	char *envp[] = { "PATH=/nonexistent:/also-not", NULL };
	struct mc_identity root = { .sw = true, .uid = 0, .gid = 0, .extra_gid = (gid_t)-1 };
	struct mc_agent_spec spec = { .path = "/bin/true", .argv = argv, .envp = envp, .as = &root };
	char err[256];
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	cr_assert_str_eq(err, "switch to uid 0: Invalid argument");
	spec.as = &AS;
	spec.path = "no-such-agent-cli";
	cr_assert_null(mc_agent_spawn(&spec, err, sizeof err));
	cr_assert_eq(errno, ENOENT);
	cr_assert_str_eq(err, "exec no-such-agent-cli: No such file or directory");
}

Test(agent_as, new_home_is_seeded_from_the_template_as_the_agent)
{
	char tmpl[128], home[128], f[200];
	path_of(tmpl, sizeof tmpl, "template");
	path_of(home, sizeof home, "home");
	cr_assert_eq(mkdir(tmpl, 0755), 0);
	snprintf(f, sizeof f, "%s/.clirc", tmpl);
	FILE *fp = fopen(f, "we");
	cr_assert_not_null(fp);
	fputs("key = 1\n", fp);
	fclose(fp);
	cr_assert_eq(chmod(f, 0644), 0);
	char *argv[] = { "true", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct mc_agent_dir dirs[] = { { .label = "HOME", .path = home,
					 .seed_kind = MC_SEED_TREE, .seed = tmpl } };
	struct mc_agent_spec spec = { .path = "true", .argv = argv, .envp = envp, .as = &AS,
				      .dirs = dirs, .n_dirs = 1 };
	char err[256];
	A = mc_agent_spawn(&spec, err, sizeof err);
	cr_assert_not_null(A, "%s", err);
	snprintf(f, sizeof f, "%s/.clirc", home);
	struct stat st;
	cr_assert_eq(lstat(f, &st), 0);
	cr_assert_eq(st.st_uid, (uid_t)AGENT_UID);
	cr_assert_eq(st.st_mode & 0777, 0640, "0644 less the agent's umask 007: %o",
		     st.st_mode & 0777);
}
