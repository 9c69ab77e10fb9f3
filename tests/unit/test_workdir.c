/* worker/workdir (+ safefs): the task's directories, brief, reuse, retention. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "worker/safefs.h"
#include "worker/workdir.h"

TestSuite(workdir, .timeout = 30);

#define WS "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"
#define AGENT "11111111-2222-4333-8444-555555555555"
#define ISSUE "99999999-8888-4777-8666-555555555555"

static char base[64], root[128];

static void setup(void)
{
	snprintf(base, sizeof base, "/tmp/mc-workdir-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(root, sizeof root, "%s/root", base);
}

static void teardown(void)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", base, base);
	cr_expect_eq(system(cmd), 0);
}

static void make_task(struct mc_task *t, const char *id, const char *key)
{
	memset(t, 0, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", id);
	snprintf(t->agent_id, sizeof t->agent_id, AGENT);
	snprintf(t->workspace_id, sizeof t->workspace_id, WS);
	snprintf(t->key, sizeof t->key, "%s", key);
	t->kind = MC_TASK_ASSIGNMENT;
	t->issue_id = (char *)ISSUE;
	t->agent_name = (char *)"Builder";
	t->agent_instructions = (char *)"Always run the tests.";
}

static int prepare(const struct mc_task *t, const char *provider, struct mc_workdir *wd,
		   const char *const *busy, size_t n_busy)
{
	struct mc_workdir_req req = {.root = root, .task = t, .provider = provider,
				     .busy = busy, .n_busy = n_busy};
	char err[256] = "";
	int rc = mc_workdir_prepare(&req, wd, err, sizeof err);
	if (rc < 0)
		cr_log_info("prepare: %s", err);
	return rc;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0, "%s exists", path);
	cr_assert(S_ISDIR(st.st_mode), "%s is a directory", path);
	return st.st_mode & 07777;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

Test(workdir, fresh_layout_and_modes, .init = setup, .fini = teardown)
{
	struct mc_task t;
	struct mc_workdir wd;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "000000000001");
	cr_assert_eq(prepare(&t, "codex", &wd, NULL, 0), 0);
	cr_assert_not(wd.reused);
	char real[PATH_MAX], want[PATH_MAX + 64];
	cr_assert_not_null(realpath(root, real));
	snprintf(want, sizeof want, "%s/" WS "/000000000001", real);
	cr_assert_str_eq(wd.task_dir, want);
	cr_assert_str_eq(wd.name, "000000000001");
	const char *dirs[] = {wd.task_dir, wd.workdir, wd.output, wd.logs, wd.tmp,
			      wd.config_root, wd.codex_home};
	for (size_t i = 0; i < 7; i++)
		cr_assert_eq(mode_of(dirs[i]), 0700, "%s is 0700", dirs[i]);
	cr_assert_str_eq(strrchr(wd.workdir, '/'), "/workdir");
	cr_assert_str_eq(strrchr(wd.tmp, '/'), "/tmp");
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/.managed_env.json", wd.task_dir);
	cr_assert_not_null(strstr(slurp(p), ISSUE));
	snprintf(p, sizeof p, "%s/.multica/daemon_task_context.json", wd.workdir);
	cr_assert_not_null(strstr(slurp(p), AGENT));

	struct mc_workdir wd2;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000002", "000000000002");
	cr_assert_eq(prepare(&t, "claude", &wd2, NULL, 0), 0);
	cr_assert_str_eq(wd2.codex_home, "", "no codex home for claude");
}

Test(workdir, symlink_in_path_refused, .init = setup, .fini = teardown)
{
	char outside[128], link[192];
	snprintf(outside, sizeof outside, "%s/outside", base);
	cr_assert_eq(mkdir(outside, 0700), 0);
	cr_assert_eq(mkdir(root, 0700), 0);
	snprintf(link, sizeof link, "%s/" WS, root);
	cr_assert_eq(symlink(outside, link), 0);      /* the workspace dir is a symlink */
	struct mc_task t;
	struct mc_workdir wd;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "000000000001");
	cr_assert_lt(prepare(&t, "claude", &wd, NULL, 0), 0, "refused");
	char probe[256];
	snprintf(probe, sizeof probe, "%s/000000000001", outside);
	cr_assert_neq(access(probe, F_OK), 0, "nothing created through the symlink");

	/* the same one level lower: the task dir is a symlink */
	cr_assert_eq(unlink(link), 0);
	cr_assert_eq(mkdir(link, 0700), 0);
	snprintf(probe, sizeof probe, "%s/000000000001", link);
	cr_assert_eq(symlink(outside, probe), 0);
	cr_assert_lt(prepare(&t, "claude", &wd, NULL, 0), 0);
	snprintf(probe, sizeof probe, "%s/workdir", outside);
	cr_assert_neq(access(probe, F_OK), 0);

	/* and workdir/ inside a real task dir */
	snprintf(probe, sizeof probe, "%s/000000000001", link);
	cr_assert_eq(unlink(probe), 0);
	cr_assert_eq(mkdir(probe, 0700), 0);
	char wdl[320];
	snprintf(wdl, sizeof wdl, "%s/workdir", probe);
	cr_assert_eq(symlink(outside, wdl), 0);
	cr_assert_lt(prepare(&t, "claude", &wd, NULL, 0), 0);
	snprintf(probe, sizeof probe, "%s/.multica", outside);
	cr_assert_neq(access(probe, F_OK), 0);
}

Test(workdir, brief_block_replaced_not_duplicated, .init = setup, .fini = teardown)
{
	struct mc_task t;
	struct mc_workdir wd;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "000000000001");
	t.workspace_context = (char *)"We ship on Fridays.";
	t.project_title = (char *)"Apollo";
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	char err[128];
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "claude", err, sizeof err), 0, "%s", err);
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/CLAUDE.md", wd.workdir);
	char *s = slurp(path);
	cr_assert_not_null(strstr(s, "Builder"));
	cr_assert_not_null(strstr(s, AGENT));
	cr_assert_not_null(strstr(s, WS));
	cr_assert_not_null(strstr(s, ISSUE));
	cr_assert_not_null(strstr(s, "Always run the tests."));
	cr_assert_not_null(strstr(s, "multica issue get " ISSUE " --output json"));
	cr_assert_not_null(strstr(s, "We ship on Fridays."));
	cr_assert_not_null(strstr(s, "Apollo"));

	/* the user's own lines around the block survive; the block is replaced */
	FILE *f = fopen(path, "w");
	fprintf(f, "# my notes\n\n%s\n" MC_WORKDIR_BEGIN "\nold stuff\n" MC_WORKDIR_END "\ntrailer\n",
		"keep me");
	fclose(f);
	t.agent_instructions = (char *)"New instructions.";
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "claude", err, sizeof err), 0);
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "claude", err, sizeof err), 0);
	s = slurp(path);
	cr_assert_eq(count(s, MC_WORKDIR_BEGIN), 1, "%s", s);
	cr_assert_eq(count(s, "New instructions."), 1);
	cr_assert_null(strstr(s, "old stuff"));
	cr_assert_not_null(strstr(s, "keep me"));
	cr_assert_not_null(strstr(s, "trailer"));
	cr_assert_eq(strstr(s, "# my notes"), s, "user content first");

	snprintf(path, sizeof path, "%s/AGENTS.md", wd.workdir);
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "codex", err, sizeof err), 0);
	cr_assert_eq(access(path, F_OK), 0, "codex gets AGENTS.md");
}

Test(workdir, brief_symlink_replaced_not_followed, .init = setup, .fini = teardown)
{
	struct mc_task t;
	struct mc_workdir wd;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "000000000001");
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	char victim[128], path[PATH_MAX + 16];
	snprintf(victim, sizeof victim, "%s/victim", base);
	FILE *f = fopen(victim, "w");
	fputs("precious\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/CLAUDE.md", wd.workdir);
	cr_assert_eq(symlink(victim, path), 0);
	char err[128];
	cr_assert_eq(mc_workdir_write_brief(&wd, &t, "claude", err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(slurp(victim), "precious\n", "the symlink's target is untouched");
	struct stat st;
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISREG(st.st_mode), "the brief is a regular file now");
}

/* A finished first task whose work dir the second may take over. */
static void first_task(struct mc_workdir *wd)
{
	struct mc_task t;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "000000000001");
	cr_assert_eq(prepare(&t, "claude", wd, NULL, 0), 0);
	char err[128];
	cr_assert_eq(mc_workdir_finish(wd, &t, 1000, err, sizeof err), 0, "%s", err);
}

Test(workdir, reuse_rules, .init = setup, .fini = teardown)
{
	struct mc_workdir first, wd;
	first_task(&first);
	struct mc_task t;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000002", "000000000002");
	t.prior_work_dir = first.workdir;
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert(wd.reused, "same workspace, agent and issue: reused");
	cr_assert_str_eq(wd.workdir, first.workdir);
	cr_assert_str_eq(wd.name, "000000000001");
	char meta[PATH_MAX + 32];
	snprintf(meta, sizeof meta, "%s/.gc_meta.json", wd.task_dir);
	cr_assert_neq(access(meta, F_OK), 0, "a reused dir is live again: no gc meta");

	const char *busy[] = {"000000000001"};
	cr_assert_eq(prepare(&t, "claude", &wd, busy, 1), 0);
	cr_assert_not(wd.reused, "a dir in use by a running task is not shared");
	cr_assert_str_eq(wd.name, "000000000002");

	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000003", "000000000003");
	t.prior_work_dir = first.workdir;
	t.issue_id = (char *)"99999999-8888-4777-8666-000000000000";
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert_not(wd.reused, "another issue: fresh");

	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000004", "000000000004");
	t.prior_work_dir = first.workdir;
	snprintf(t.agent_id, sizeof t.agent_id, "11111111-2222-4333-8444-000000000000");
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert_not(wd.reused, "another agent: fresh");

	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000005", "000000000005");
	t.prior_work_dir = (char *)"/tmp";
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert_not(wd.reused, "outside the root: fresh");

	/* a symlink to the prior work dir resolves into the root: fine */
	char alias[128];
	snprintf(alias, sizeof alias, "%s/alias", base);
	cr_assert_eq(symlink(first.workdir, alias), 0);
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000006", "000000000006");
	t.prior_work_dir = alias;
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert(wd.reused);

	/* a tampered marker: fresh */
	char marker[PATH_MAX + 64];
	snprintf(marker, sizeof marker, "%s/.multica/daemon_task_context.json", first.workdir);
	FILE *f = fopen(marker, "w");
	fputs("{\"agent_id\":\"someone else\"}", f);
	fclose(f);
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000007", "000000000007");
	t.prior_work_dir = first.workdir;
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	cr_assert_not(wd.reused);
}

static void make_finished(const char *key, int64_t ended)
{
	struct mc_task t;
	struct mc_workdir wd;
	char id[40];
	snprintf(id, sizeof id, "aaaaaaaa-bbbb-4ccc-8ddd-%s", key);
	make_task(&t, id, key);
	cr_assert_eq(prepare(&t, "claude", &wd, NULL, 0), 0);
	char err[128];
	cr_assert_eq(mc_workdir_finish(&wd, &t, ended, err, sizeof err), 0);
}

static bool exists_key(const char *key)
{
	char p[256];
	snprintf(p, sizeof p, "%s/" WS "/%s", root, key);
	return access(p, F_OK) == 0;
}

Test(workdir, retention_removes_old_keeps_active_and_recent, .init = setup, .fini = teardown)
{
	int64_t day = 86400000;
	make_finished("000000000001", 1 * day);
	make_finished("000000000002", 1 * day);
	make_finished("000000000003", 9 * day);
	/* a symlink inside an expired task dir: its target must survive */
	char outside[128], link[256];
	snprintf(outside, sizeof outside, "%s/outside", base);
	cr_assert_eq(mkdir(outside, 0700), 0);
	char keep[192];
	snprintf(keep, sizeof keep, "%s/keep.txt", outside);
	FILE *f = fopen(keep, "w");
	fputs("x", f);
	fclose(f);
	snprintf(link, sizeof link, "%s/" WS "/000000000001/workdir/escape", root);
	cr_assert_eq(symlink(outside, link), 0);

	const char *active[] = {"000000000002"};
	size_t cursor = 0;
	int n = mc_workdir_gc(root, WS, 7 * day, 10 * day, active, 1, &cursor);
	cr_assert_eq(n, 1, "only the old idle one expires");
	cr_assert_not(exists_key("000000000001"));
	cr_assert(exists_key("000000000002"), "active is kept");
	cr_assert(exists_key("000000000003"), "recent is kept");
	cr_assert_eq(access(keep, F_OK), 0, "removal never follows a symlink");
	char gone[256];
	snprintf(gone, sizeof gone, "%s/" WS "/.gc-000000000001", root);
	cr_assert_neq(access(gone, F_OK), 0, "removed completely");
	cr_assert_eq(mc_workdir_gc(root, WS, 7 * day, 10 * day, NULL, 0, &cursor), 1);
	cr_assert_not(exists_key("000000000002"), "no longer active: expires");
	cr_assert_eq(mc_workdir_gc("/nonexistent", WS, 1, 2, NULL, 0, &cursor), 0);
}

Test(workdir, retention_is_bounded_per_call, .init = setup, .fini = teardown)
{
	size_t n = MC_WORKDIR_GC_SCAN * 2 + 5;
	for (size_t i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof key, "%012zu", i);
		make_finished(key, 0);
	}
	size_t cursor = 0, total = 0;
	int calls = 0;
	for (; calls < 10 && total < n; calls++) {
		int k = mc_workdir_gc(root, WS, 1, 100, NULL, 0, &cursor);
		cr_assert_geq(k, 0);
		cr_assert_leq((size_t)k, MC_WORKDIR_GC_SCAN, "at most %d per call", MC_WORKDIR_GC_SCAN);
		total += (size_t)k;
	}
	cr_assert_eq(total, n, "all expire over a few calls");
	cr_assert_geq(calls, 3);
}

Test(workdir, remove_tree_budget_and_deep_trees, .init = setup, .fini = teardown)
{
	/* a chain deeper than the removal recursion, plus files */
	char path[8192];
	int len = snprintf(path, sizeof path, "%s/deep", base);
	cr_assert_eq(mkdir(path, 0700), 0);
	for (int i = 0; i < 100; i++) {
		len += snprintf(path + len, sizeof path - (size_t)len, "/d");
		cr_assert_eq(mkdir(path, 0700), 0, "%s", strerror(errno));
	}
	int dfd = open(base, O_RDONLY | O_DIRECTORY);
	int rc = 1, rounds = 0;
	while (rc == 1 && rounds++ < 1000) {
		size_t budget = 16;
		rc = mc_fs_remove_tree(dfd, "deep", &budget);
		cr_assert_geq(rc, 0, "%s", strerror(errno));
	}
	cr_assert_eq(rc, 0);
	cr_assert_gt(rounds, 1, "the budget split the work");
	char probe[128];
	snprintf(probe, sizeof probe, "%s/deep", base);
	cr_assert_neq(access(probe, F_OK), 0);
	close(dfd);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(workdir, no_fd_leaks_on_any_path, .init = setup, .fini = teardown)
{
	int before = open_fds();
	struct mc_workdir first, wd;
	first_task(&first);
	struct mc_task t;
	make_task(&t, "aaaaaaaa-bbbb-4ccc-8ddd-000000000002", "000000000002");
	t.prior_work_dir = first.workdir;
	char err[128];
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(prepare(&t, "codex", &wd, NULL, 0), 0);
		cr_assert_eq(mc_workdir_write_brief(&wd, &t, "codex", err, sizeof err), 0);
	}
	/* failing paths: a symlinked workspace dir, a root that is a file */
	char link[192];
	snprintf(link, sizeof link, "%s/" WS, root);
	char moved[192];
	snprintf(moved, sizeof moved, "%s/moved", base);
	cr_assert_eq(rename(link, moved), 0);
	cr_assert_eq(symlink(moved, link), 0);
	cr_assert_lt(prepare(&t, "codex", &wd, NULL, 0), 0);
	cr_assert_eq(unlink(link), 0);
	cr_assert_eq(rename(moved, link), 0);
	size_t cursor = 0;
	cr_assert_geq(mc_workdir_gc(root, WS, 0, INT64_MAX / 2, NULL, 0, &cursor), 1);
	cr_assert_eq(open_fds(), before, "every fd closed");
}
