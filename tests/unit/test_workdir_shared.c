/* worker/workdir with an agent group (issue 11): the modes and group of a
 * task's tree when agents run as another uid, and the retention sweep
 * that leaves removal to the agent's remover (and never takes HOME). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "worker/workdir.h"

#define WS "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define GID 61980

static char base[64], root[128];

static void setup(void)
{
	snprintf(base, sizeof base, "/tmp/mc-wdshared-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(root, sizeof root, "%s/root", base);
}

static void teardown(void)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(workdir_shared, .init = setup, .fini = teardown, .timeout = 30);

static void check(const char *path, mode_t mode, bool dir)
{
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0, "%s exists", path);
	cr_assert(dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode), "%s type", path);
	cr_assert_eq(st.st_mode & 07777, mode, "%s: mode %o, want %o", path, st.st_mode & 07777,
		     mode);
	if (mode != 0711)
		cr_assert_eq(st.st_gid, (gid_t)GID, "%s: group %u", path, st.st_gid);
	cr_assert_eq(st.st_mode & 07, 0, "%s: nothing for others but root's pass", path);
}

Test(workdir_shared, task_tree_is_the_workspace_groups_and_nothing_else)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: gives directories group %d", GID);
	struct mc_task t;
	memset(&t, 0, sizeof t);
	snprintf(t.id, sizeof t.id, "tid-1");
	snprintf(t.agent_id, sizeof t.agent_id, "agent-1");
	snprintf(t.workspace_id, sizeof t.workspace_id, WS);
	snprintf(t.key, sizeof t.key, "key-1");
	t.kind = MC_TASK_ASSIGNMENT;
	t.issue_id = (char *)"issue-1";
	struct mc_workdir_req req = { .root = root, .task = &t, .provider = "codex",
				      .shared = true, .gid = GID };
	struct mc_workdir wd;
	char err[256] = "", p[4200];
	/* an existing root of another mode is fixed */
	cr_assert_eq(mkdir(root, 0755), 0);
	cr_assert_eq(mc_workdir_prepare(&req, &wd, err, sizeof err), 0, "%s", err);
	cr_assert(wd.shared);
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "codex", err, sizeof err), 0, "%s", err);
	struct stat st;
	cr_assert_eq(stat(root, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0711, "root: agents pass, never list");
	snprintf(p, sizeof p, "%s/%s", root, WS);
	check(p, 02770, true);
	check(wd.task_dir, 02770, true);
	check(wd.workdir, 02770, true);
	check(wd.output, 02770, true);
	check(wd.logs, 02770, true);
	check(wd.config_root, 02770, true);
	snprintf(p, sizeof p, "%s/.multica", wd.workdir);
	check(p, 02770, true);
	snprintf(p, sizeof p, "%s/.managed_env.json", wd.task_dir);
	check(p, 0640, false);
	snprintf(p, sizeof p, "%s/.multica/daemon_task_context.json", wd.workdir);
	check(p, 0640, false);
	snprintf(p, sizeof p, "%s/AGENTS.md", wd.workdir);
	check(p, 0660, false);
	/* the agent's own child makes these, as the agent */
	cr_assert_eq(access(wd.tmp, F_OK), -1, "tmp/ is not made by the daemon");
	cr_assert_eq(access(wd.codex_home, F_OK), -1, "codex-home/ neither");
	cr_assert_neq(wd.tmp[0], '\0');
	cr_assert_neq(wd.codex_home[0], '\0');
}

Test(workdir_shared, expire_renames_only_and_never_takes_home)
{
	char ws[256], p[300];
	cr_assert_eq(mkdir(root, 0700), 0);
	snprintf(ws, sizeof ws, "%s/%s", root, WS);
	cr_assert_eq(mkdir(ws, 0700), 0);
	const char *names[] = { "old-task", MC_WORKDIR_HOME_NAME };
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s", ws, names[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
	}
	size_t cursor = 0;
	int64_t far = (int64_t)time(NULL) * 1000 + 30LL * 86400000;
	cr_assert_eq(mc_workdir_gc_expire(root, WS, 1000, far, NULL, 0, &cursor), 1);
	snprintf(p, sizeof p, "%s/.gc-old-task", ws);
	cr_assert_eq(access(p, F_OK), 0, "renamed, left for the agent's remover");
	snprintf(p, sizeof p, "%s/" MC_WORKDIR_HOME_NAME, ws);
	cr_assert_eq(access(p, F_OK), 0, "the agents' HOME is never a task dir");
	/* the daemon's own sweep (fallback) removes what is expired */
	cr_assert_eq(mc_workdir_gc(root, WS, 1000, far, NULL, 0, &cursor), 0);
	snprintf(p, sizeof p, "%s/.gc-old-task", ws);
	cr_assert_eq(access(p, F_OK), -1);
}
