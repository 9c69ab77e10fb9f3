/* What an agent's child does to the file system as the agent (issue 11):
 * seeding a new HOME from a template and a CODEX_HOME (seedtree.h),
 * removing an expired task dir the agent filled (rmtree.h); and the
 * operator's agent_env_file (envfile.h). The identity parts need root
 * (CI) and are skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/identity.h"
#include "worker/envfile.h"
#include "worker/rmtree.h"
#include "worker/seedtree.h"

#define AGENT_UID 61960
#define AGENT_GID 61960

static char dir[64];
static const struct mc_identity AS = { .sw = true, .uid = AGENT_UID, .gid = AGENT_GID,
				       .extra_gid = (gid_t)-1 };

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/mc-agentfs-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0755), 0); /* the agent may pass */
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(seedtree, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(rmtree, .init = setup, .fini = teardown, .timeout = 30);
TestSuite(envfile, .timeout = 30);

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: switches to uid %d", AGENT_UID);
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cr_assert_eq(chmod(path, mode), 0);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static void sub(char *out, const char *leaf)
{
	snprintf(out, 256, "%s/%s", dir, leaf);
}

/* Runs fn(arg) in a child as AS (or as ourselves when as is NULL);
 * returns the child's exit code. */
static int as_agent(const struct mc_identity *as, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (as != NULL && mc_identity_enter(as) < 0)
			_exit(100);
		_exit(fn(arg) == 0 ? 0 : 10 + (errno & 0x3f));
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

struct seed_args {
	const char *src, *dst;
};

static int do_seed(void *p)
{
	struct seed_args *a = p;
	if (mkdir(a->dst, 0700) < 0)
		return -1;
	int fd = open(a->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -1 : mc_seed_tree(a->src, fd);
}

/* A template of a file, a private file, a subdir with a file, a symlink
 * (to somewhere the agent may not read) and a fifo. */
static void make_template(const char *t)
{
	char p[300];
	cr_assert_eq(mkdir(t, 0755), 0);
	snprintf(p, sizeof p, "%s/.clirc", t);
	put(p, "theme = dark\n", 0644);
	snprintf(p, sizeof p, "%s/script.sh", t);
	put(p, "#!/bin/sh\n", 0755);
	snprintf(p, sizeof p, "%s/.config", t);
	cr_assert_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/.config/settings.json", t);
	put(p, "{\"a\":1}", 0644);
	snprintf(p, sizeof p, "%s/link", t);
	cr_assert_eq(symlink("/etc/shadow", p), 0);
	snprintf(p, sizeof p, "%s/fifo", t);
	cr_assert_eq(mkfifo(p, 0644), 0);
}

Test(seedtree, copies_files_dirs_symlinks_as_the_agent_owner_and_umask)
{
	need_root();
	char t[256], h[256], p[300];
	sub(t, "template");
	sub(h, "home");
	make_template(t);
	cr_assert_eq(chown(dir, 0, AGENT_GID) == 0 && chmod(dir, 0770) == 0, true);
	struct seed_args a = { t, h };
	cr_assert_eq(as_agent(&AS, do_seed, &a), 0);
	struct { const char *leaf; mode_t mode; char type; } want[] = {
		{ "", 0700, 'd' },
		{ "/.clirc", 0640, 'f' },       /* 0644 less umask 007 */
		{ "/script.sh", 0750, 'f' },
		{ "/.config", 0750, 'd' },
		{ "/.config/settings.json", 0640, 'f' },
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		struct stat st;
		snprintf(p, sizeof p, "%s%s", h, want[i].leaf);
		cr_assert_eq(lstat(p, &st), 0, "%s", p);
		cr_assert_eq(st.st_uid, (uid_t)AGENT_UID, "%s: owner %u", p, st.st_uid);
		cr_assert_eq(st.st_gid, (gid_t)AGENT_GID, "%s: group %u", p, st.st_gid);
		cr_assert_eq(st.st_mode & 07777, want[i].mode, "%s: mode %o", p, st.st_mode & 07777);
		cr_assert(want[i].type == 'd' ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode), "%s", p);
	}
	snprintf(p, sizeof p, "%s/.config/settings.json", h);
	cr_assert_str_eq(slurp(p), "{\"a\":1}");
	char target[64] = "";
	snprintf(p, sizeof p, "%s/link", h);
	cr_assert_gt(readlink(p, target, sizeof target - 1), 0, "a symlink stays a symlink");
	cr_assert_str_eq(target, "/etc/shadow");
	snprintf(p, sizeof p, "%s/fifo", h);
	cr_assert_eq(access(p, F_OK), -1, "no fifo seeded");
}

static int do_seed_deep(void *p)
{
	return do_seed(p);
}

Test(seedtree, refuses_a_tree_deeper_than_the_limit)
{
	char t[256], h[256], p[300 + 4 * (MC_SEED_MAX_DEPTH + 2)];
	sub(t, "template");
	sub(h, "home");
	cr_assert_eq(mkdir(t, 0755), 0);
	size_t off = (size_t)snprintf(p, sizeof p, "%s", t);
	for (int i = 0; i <= MC_SEED_MAX_DEPTH; i++) {
		off += (size_t)snprintf(p + off, sizeof p - off, "/d");
		cr_assert_eq(mkdir(p, 0755), 0);
	}
	struct seed_args a = { t, h };
	cr_assert_eq(as_agent(NULL, do_seed_deep, &a), 10 + ELOOP);
}

static int do_codex(void *p)
{
	struct seed_args *a = p;
	if (mkdir(a->dst, 0700) < 0 && errno != EEXIST)
		return -1;
	int fd = open(a->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -1 : mc_seed_codex(a->src, fd);
}

Test(seedtree, codex_home_gets_config_and_auth_only_with_the_sandbox)
{
	char src[256], dst[256], p[300];
	sub(src, "dotcodex");
	sub(dst, "codex-home");
	cr_assert_eq(mkdir(src, 0700), 0);
	snprintf(p, sizeof p, "%s/config.toml", src);
	put(p, "model = \"o3\"\n", 0600);
	snprintf(p, sizeof p, "%s/auth.json", src);
	put(p, "{\"key\":\"sk-test\"}", 0600);
	snprintf(p, sizeof p, "%s/history.jsonl", src);
	put(p, "old sessions\n", 0600);
	struct seed_args a = { src, dst };
	cr_assert_eq(as_agent(NULL, do_codex, &a), 0);
	snprintf(p, sizeof p, "%s/config.toml", dst);
	cr_assert_str_eq(slurp(p), "sandbox_mode = \"danger-full-access\"\nmodel = \"o3\"\n");
	snprintf(p, sizeof p, "%s/auth.json", dst);
	cr_assert_str_eq(slurp(p), "{\"key\":\"sk-test\"}");
	struct stat st;
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	snprintf(p, sizeof p, "%s/history.jsonl", dst);
	cr_assert_eq(access(p, F_OK), -1, "only config.toml and auth.json");
	/* a symlink planted in CODEX_HOME is replaced, not written through */
	char victim[256];
	sub(victim, "victim");
	put(victim, "keep", 0644);
	snprintf(p, sizeof p, "%s/auth.json", dst);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(symlink(victim, p), 0);
	/* a config that sets its own sandbox keeps it */
	snprintf(p, sizeof p, "%s/config.toml", src);
	put(p, "sandbox_mode = \"workspace-write\"\n", 0600);
	cr_assert_eq(as_agent(NULL, do_codex, &a), 0);
	cr_assert_str_eq(slurp(victim), "keep");
	snprintf(p, sizeof p, "%s/config.toml", dst);
	cr_assert_str_eq(slurp(p), "sandbox_mode = \"workspace-write\"\n");
	/* no source at all: the sandbox line alone */
	a.src = NULL;
	cr_assert_eq(as_agent(NULL, do_codex, &a), 0);
	cr_assert_str_eq(slurp(p), "sandbox_mode = \"danger-full-access\"\n");
}

struct rm_args {
	int dfd;
	const char *name;
};

static int do_rm(void *p)
{
	struct rm_args *a = p;
	return mc_rmtree_at(a->dfd, a->name);
}

static int do_fill(void *p)
{
	/* what an agent leaves: files, a deep path, a read-only dir with
	 * files, a symlink out of the tree */
	const char *base = p;
	char q[400];
	snprintf(q, sizeof q, "%s/work/a/b/c", base);
	char cmd[4096];
	snprintf(cmd, sizeof cmd,
		 "mkdir -p '%s' && echo x > '%s/f' && mkdir '%s/work/ro' && echo y > '%s/work/ro/g' "
		 "&& chmod 0555 '%s/work/ro' && chmod 0755 '%s/work' && ln -s '%s/../outside' '%s/work/out'",
		 q, q, base, base, base, base, base, base);
	return system(cmd) == 0 ? 0 : -1;
}

Test(rmtree, removes_what_the_agent_left_as_the_agent_never_through_a_symlink)
{
	need_root();
	char task[256], outside[256];
	sub(task, ".gc-task1");
	sub(outside, "outside");
	put(outside, "not ours", 0644);
	/* the task dir: the daemon's, with the agent's group (as workdir.c makes it) */
	cr_assert_eq(mkdir(task, 02770), 0);
	cr_assert_eq(chown(task, 0, AGENT_GID), 0);
	cr_assert_eq(chmod(task, 02770), 0);
	cr_assert_eq(chown(dir, 0, AGENT_GID) == 0 && chmod(dir, 02770) == 0, true);
	cr_assert_eq(as_agent(&AS, do_fill, task), 0);
	struct stat st;
	char ro[300];
	snprintf(ro, sizeof ro, "%s/work/ro", task);
	cr_assert_eq(stat(ro, &st), 0);
	cr_assert_eq(st.st_uid, (uid_t)AGENT_UID);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
	struct rm_args a = { dfd, ".gc-task1" };
	cr_assert_eq(as_agent(&AS, do_rm, &a), 0);
	close(dfd);
	cr_assert_eq(lstat(task, &st), -1, "the task dir is gone");
	cr_assert_str_eq(slurp(outside), "not ours", "the symlink's target stays");
}

static int do_rm_prefixed(void *p)
{
	return mc_rmtree_prefixed(*(int *)p, ".gc-");
}

Test(rmtree, prefixed_removes_only_the_expired)
{
	char p[300];
	const char *names[] = { ".gc-a", ".gc-b", "live", ".managed" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
		snprintf(p, sizeof p, "%s/%s/file", dir, names[i]);
		put(p, "z", 0600);
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_eq(as_agent(NULL, do_rm_prefixed, &dfd), 0);
	close(dfd);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		cr_assert_eq(access(p, F_OK) == 0, i >= 2, "%s", names[i]);
	}
	int dfd2 = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_eq(mc_rmtree_at(dfd2, "absent"), 0);
	cr_assert_eq(mc_rmtree_at(dfd2, "../x"), -1);
	cr_assert_eq(errno, EINVAL);
	close(dfd2);
}

static const char *var(const struct mc_envfile *f, const char *key)
{
	size_t k = strlen(key);
	for (char *const *v = mc_envfile_vars(f); v != NULL && *v != NULL; v++)
		if (strncmp(*v, key, k) == 0 && (*v)[k] == '=')
			return *v + k + 1;
	return NULL;
}

Test(envfile, parses_keys_values_comments_and_skips_bad_lines)
{
	static const char text[] =
		"# credentials for the agents\n"
		"\n"
		"ANTHROPIC_API_KEY=sk-ant-123\n"
		"  OPENAI_API_KEY = \"sk-o 456\"  \n"
		"QUOTED_INNER=a\"b\"\n"
		"EMPTY=\n"
		"1BAD=x\n"
		"no equals sign\n"
		"MULTICA_TOKEN=stolen\n"
		"PATH=/evil\n"
		"HOME=/root\n"
		"DUP=1\r\n"
		"DUP=2\n";
	struct mc_envfile f;
	mc_envfile_init(&f, "");
	cr_assert_eq(mc_envfile_parse(&f, "agents.env", text, sizeof text - 1), 0);
	cr_assert_str_eq(var(&f, "ANTHROPIC_API_KEY"), "sk-ant-123");
	cr_assert_str_eq(var(&f, "OPENAI_API_KEY"), "sk-o 456");
	cr_assert_str_eq(var(&f, "QUOTED_INNER"), "a\"b\"");
	cr_assert_str_eq(var(&f, "EMPTY"), "");
	cr_assert_str_eq(var(&f, "DUP"), "2", "a later line wins");
	cr_assert_null(var(&f, "1BAD"));
	cr_assert_null(var(&f, "MULTICA_TOKEN"), "MULTICA_* refused");
	cr_assert_null(var(&f, "PATH"), "blocked keys refused");
	cr_assert_null(var(&f, "HOME"));
	cr_assert_eq(f.n, 5);
	mc_envfile_clear(&f);
	cr_assert_null(mc_envfile_vars(&f));
}

Test(envfile, rereads_only_when_the_file_changed)
{
	char d[] = "/tmp/mc-envfile-XXXXXX", p[64];
	cr_assert_not_null(mkdtemp(d));
	snprintf(p, sizeof p, "%s/agents.env", d);
	put(p, "A=1\n", 0600);
	struct mc_envfile f;
	mc_envfile_init(&f, p);
	cr_assert_eq(mc_envfile_refresh(&f), 0);
	cr_assert_str_eq(var(&f, "A"), "1");
	cr_assert_eq(mc_envfile_refresh(&f), 0);
	cr_assert_str_eq(var(&f, "A"), "1");
	put(p, "A=22\nB=3\n", 0600); /* another size: seen even within one mtime tick */
	cr_assert_eq(mc_envfile_refresh(&f), 0);
	cr_assert_str_eq(var(&f, "A"), "22");
	cr_assert_str_eq(var(&f, "B"), "3");
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(mc_envfile_refresh(&f), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_null(var(&f, "A"), "an unreadable file gives nothing");
	put(p, "C=4\n", 0600);
	cr_assert_eq(mc_envfile_refresh(&f), 0);
	cr_assert_str_eq(var(&f, "C"), "4");
	mc_envfile_clear(&f);
	unlink(p);
	rmdir(d);
}
