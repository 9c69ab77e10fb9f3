/* The isolation tests' set-up and checks (test_isolation.h). */
#include "tests/integration/test_isolation.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <criterion/criterion.h>

#include "tests/support/fp_tasks.h"

extern char **environ;

struct iso ISO;

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap + 1);
	for (;;) {
		if (n == cap)
			b = realloc(b, (cap *= 2) + 1);
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	if (len != NULL)
		*len = n;
	return b;
}

static void put(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

void iso_setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("skipped: the isolation tests need root (agents run as other users)");
	strlcpy(ISO.dir, "/tmp/mc-iso-XXXXXX", sizeof ISO.dir);
	cr_assert_not_null(mkdtemp(ISO.dir));
	cr_assert_eq(chmod(ISO.dir, 0711), 0);
	snprintf(ISO.bin, sizeof ISO.bin, "%s/bin", ISO.dir);
	snprintf(ISO.root, sizeof ISO.root, "%s/work", ISO.dir);
	snprintf(ISO.release, sizeof ISO.release, "%s/release", ISO.dir);
	snprintf(ISO.plan, sizeof ISO.plan, "%s/plan.txt", ISO.dir);
	snprintf(ISO.claude, sizeof ISO.claude, "%s/claude", ISO.bin);
	cr_assert_eq(mkdir(ISO.bin, 0755), 0);
	cr_assert_eq(chmod(ISO.bin, 0755), 0);
	size_t len;
	char *b = slurp(FAKE_CLAUDE_BIN, &len);
	cr_assert_not_null(b, "cannot read %s", FAKE_CLAUDE_BIN);
	put(ISO.claude, b, len, 0755);
	free(b);
}

void iso_fini(void)
{
	/* A failed test must not leave B's sleeper waiting its 120 s. */
	if (ISO.dir[0] != '\0') {
		int fd = open(ISO.release, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
	dfx_fini();
	if (ISO.dir[0] != '\0') {
		const char *argv[] = { "/bin/rm", "-rf", "--", ISO.dir, NULL };
		int code;
		free(iso_run(argv, &code));
	}
}

static void sh(const char *cmd)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int code;
	char *out = iso_run(argv, &code);
	cr_assert_eq(code, 0, "%s: %s", cmd, out);
	free(out);
}

/* A bare repository with one commit on main, readable by every uid. */
static void make_repo(void)
{
	char cmd[2048], cfg[300];
	snprintf(cfg, sizeof cfg, "%s/gitconfig", ISO.dir);
	FILE *g = fopen(cfg, "w");
	cr_assert_not_null(g);
	fputs("[safe]\n\tdirectory = *\n", g);
	fclose(g);
	cr_assert_eq(chmod(cfg, 0644), 0);
	setenv("GIT_CONFIG_GLOBAL", cfg, 1); /* the daemon and its agents inherit it */
	snprintf(cmd, sizeof cmd,
		 "set -e; cd %s; git init -q --bare -b main remote.git; git init -q -b main seed;"
		 "git -C seed -c user.name=T -c user.email=t@example.com commit -q --allow-empty -m first;"
		 "git -C seed push -q ../remote.git main; chmod -R a+rX remote.git",
		 ISO.dir);
	sh(cmd);
	snprintf(ISO.repo_url, sizeof ISO.repo_url, "file://%s/remote.git", ISO.dir);
}

void iso_start(const char *daemon_extra)
{
	dfx_start_plane(2, NULL, NULL, NULL);
	make_repo();
	char body[600], path[128];
	snprintf(body, sizeof body, "{\"repos\":[{\"url\":\"%s\",\"description\":\"B's code\"}]}",
		 ISO.repo_url);
	snprintf(path, sizeof path, "/_admin/repos/%s", WS[2]);
	cr_assert_eq(dfx_admin("POST", path, body), 200);
	static struct dp_config c;
	static char extra[2048], providers[400];
	memset(&c, 0, sizeof c);
	c.workspaces = dfx_ws_list(1, 2);
	snprintf(extra, sizeof extra, "task_poll_interval = 300ms\ntask_stop_grace = 1s\n"
		 "workspaces_root = %s\n%s", ISO.root, daemon_extra);
	snprintf(providers, sizeof providers, "claude = %s\n", ISO.claude);
	c.daemon_extra = extra;
	c.providers = providers;
	c.stop_timeout = "8s";
	dfx_prepare_daemon(&c, NULL);
	cr_assert_eq(chmod(D.dir, 0711), 0);
	cr_assert_eq(dp_start(&D), 0);
	for (int i = 1; i <= 2; i++)
		dfx_wait_ws_ready(i, 1, 20000);
}

/* The live process whose environment has MULTICA_TASK_ID=id, or 0. */
static pid_t task_pid(const char *id)
{
	char want[80];
	int wl = snprintf(want, sizeof want, "MULTICA_TASK_ID=%s", id);
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (d != NULL && found == 0 && (e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || !dp_pid_alive((pid_t)pid))
			continue;
		char p[64];
		snprintf(p, sizeof p, "/proc/%ld/environ", pid);
		size_t len;
		char *env = slurp(p, &len);
		for (size_t off = 0; env != NULL && off < len; off += strlen(env + off) + 1)
			if (strncmp(env + off, want, (size_t)wl) == 0 && env[off + wl] == '\0')
				found = (pid_t)pid;
		free(env);
	}
	if (d != NULL)
		closedir(d);
	return found;
}

/* The first *.git directory in dir into ISO.b_bare. */
static bool bare_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	while (d != NULL && !found && (e = readdir(d)) != NULL) {
		size_t k = strlen(e->d_name);
		if (k > 4 && strcmp(e->d_name + k - 4, ".git") == 0) {
			snprintf(ISO.b_bare, sizeof ISO.b_bare, "%s/%s", dir, e->d_name);
			found = true;
		}
	}
	if (d != NULL)
		closedir(d);
	return found;
}

void iso_start_sleeper(void)
{
	char rid[DP_ID_LEN + 1], env[1000];
	dfx_runtime_of(2, rid);
	snprintf(env, sizeof env,
		 "\"FAKE_AGENT_MODE\":\"wait_file\",\"FAKE_AGENT_WAIT_FILE\":\"%s\","
		 "\"FAKE_AGENT_REPO_URL\":\"%s\"", ISO.release, ISO.repo_url);
	fpt_queue(&FP, rid, env, "", ISO.b_task);
	DFX_WAIT_UP((ISO.b_agent = task_pid(ISO.b_task)) > 0, 20000, "B's sleeper never ran");
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/cwd", (int)ISO.b_agent);
	ssize_t n = readlink(p, ISO.b_workdir, sizeof ISO.b_workdir - 1);
	cr_assert_gt(n, 0, "B's agent has no cwd: %s", strerror(errno));
	ISO.b_workdir[n] = '\0';
	cr_assert(fpt_wait_status(&FP, ISO.b_task, "running", 5000, NULL));
	/* The checkout made B's cache: <root>/.repos/<B>/<something>.git. */
	char dir[400];
	snprintf(dir, sizeof dir, "%s/.repos/%s", ISO.root, WS[2]);
	DFX_WAIT_UP(bare_in(dir), 30000, "B's checkout made no repository cache in %s", dir);
}

void iso_finish_sleeper(void)
{
	put(ISO.release, "go\n", 3, 0644);
	cr_assert(fpt_wait_status(&FP, ISO.b_task, "completed", 20000, NULL),
		  "B's task did not complete after A's attack");
}

pid_t iso_link_pid(void)
{
	static pid_t kids[64];
	size_t n = dp_children(&D, kids, 64);
	for (size_t i = 0; i < n && i < 64; i++) {
		char t[128];
		if (dp_proc_title(kids[i], t, sizeof t) == 0 && strcmp(t, "multicad: link") == 0)
			return kids[i];
	}
	return 0;
}

/* The forbidden labels and whether ENOENT also counts (a path that may not
 * exist yet: the repository cache before any checkout). */
static const struct {
	const char *label;
	bool enoent;
} DENIED[] = {
	{ "token_file", false }, { "agent_ids", false }, { "ledger_file", false },
	{ "pid_file", false }, { "outbox", false }, { "ls_state", false },
	{ "ls_ledger", false }, { "ls_root", false }, { "ls_b_ws", false },
	{ "ls_b_workdir", false }, { "ls_b_repos", false }, { "open_b_workdir", false },
	{ "ls_b_bare", false }, { "open_b_bare", false }, { "read_b_bare_head", false },
	{ "write_b_bare", false },
	{ "write_b_workdir", false }, { "control_socket", false }, { "kill_worker", false },
	{ "kill_b_worker", false }, { "kill_sv", false }, { "kill_link", false },
	{ "ptrace_worker", false }, { "ptrace_sv", false }, { "ptrace_link", false },
	{ "worker_environ", false }, { "sv_mem", false }, { "worker_fd", false },
	{ "sv_environ", false }, { "parent_environ", false }, { "sv_environ_dump", false },
};
static const char *const ALLOWED[] = { "write_cwd", "write_home", "write_tmp", "exec_true",
				       "self_environ" };

void iso_write_plan(const char *more)
{
	char *p = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&p, &len);
	const char *st = D.state_dir;
	pid_t wa = dp_worker_pid(&D, WS[1]), wb = dp_worker_pid(&D, WS[2]), link = iso_link_pid();
	cr_assert(wa > 0 && wb > 0 && link > 0, "worker A %d, worker B %d, link %d", (int)wa,
		  (int)wb, (int)link);
	fprintf(f, "token_file\tread_file\t%s\n", D.token_path);
	fprintf(f, "agent_ids\tread_file\t%s/agent-ids\n", st);
	fprintf(f, "ledger_file\tread_file\t%s/ledger/%s\n", st, WS[2]);
	fprintf(f, "pid_file\tread_file\t%s/multicad.pid\n", st);
	fprintf(f, "outbox\tlist_dir\t%s/outbox\n", st);
	fprintf(f, "ls_state\tlist_dir\t%s\n", st);
	fprintf(f, "ls_ledger\tlist_dir\t%s/ledger\n", st);
	fprintf(f, "ls_root\tlist_dir\t%s\n", ISO.root);
	fprintf(f, "ls_b_ws\tlist_dir\t%s/%s\n", ISO.root, WS[2]);
	fprintf(f, "ls_b_workdir\tlist_dir\t%s\n", ISO.b_workdir);
	fprintf(f, "ls_b_repos\tlist_dir\t%s/.repos/%s\n", ISO.root, WS[2]);
	fprintf(f, "ls_b_bare\tlist_dir\t%s\n", ISO.b_bare);
	fprintf(f, "open_b_bare\topen_dir_path\t%s/objects\n", ISO.b_bare);
	fprintf(f, "read_b_bare_head\tread_file\t%s/HEAD\n", ISO.b_bare);
	fprintf(f, "write_b_bare\twrite_file\t%s/hooks/post-checkout\n", ISO.b_bare);
	fprintf(f, "open_b_workdir\topen_dir_path\t%s\n", ISO.b_workdir);
	fprintf(f, "write_b_workdir\twrite_file\t%s/pwned\n", ISO.b_workdir);
	fprintf(f, "control_socket\tconnect_unix\t%s\n", D.sock_path);
	fprintf(f, "kill_worker\tkill0\t%d\nkill_b_worker\tkill0\t%d\n", (int)wa, (int)wb);
	fprintf(f, "kill_sv\tkill0\t%d\nkill_link\tkill0\t%d\n", (int)D.pid, (int)link);
	fprintf(f, "kill_b_agent\tkill0\t%d\n", (int)ISO.b_agent);
	fprintf(f, "ptrace_worker\tptrace_attach\t%d\nptrace_sv\tptrace_attach\t%d\n", (int)wa,
		(int)D.pid);
	fprintf(f, "ptrace_link\tptrace_attach\t%d\n", (int)link);
	fprintf(f, "ptrace_b_agent\tptrace_attach\t%d\n", (int)ISO.b_agent);
	fprintf(f, "worker_environ\tread_proc\t/proc/%d/environ\n", (int)wa);
	fprintf(f, "sv_mem\tread_proc\t/proc/%d/mem\n", (int)D.pid);
	fprintf(f, "worker_fd\tread_proc\t/proc/%d/fd\n", (int)wa);
	fprintf(f, "sv_environ\tread_proc\t/proc/%d/environ\n", (int)D.pid);
	fprintf(f, "self_environ\tdump\t/proc/self/environ\nself_cmdline\tdump\t/proc/self/cmdline\n");
	fprintf(f, "parent_environ\tdump\t/proc/ppid/environ\nparent_cmdline\tdump\t/proc/ppid/cmdline\n");
	fprintf(f, "sv_environ_dump\tdump\t/proc/%d/environ\nsv_cmdline\tdump\t/proc/%d/cmdline\n",
		(int)D.pid, (int)D.pid);
	fprintf(f, "scan_daemon_dir\tscan\t%s\nscan_root\tscan\t%s\nscan_home\tscan\t$HOME\n", D.dir,
		ISO.root);
	fprintf(f, "write_cwd\twrite_file\t$CWD/ok.txt\nwrite_home\twrite_file\t$HOME/ok.txt\n");
	fprintf(f, "write_tmp\twrite_file\t$TMPDIR/ok.txt\nexec_true\texec\t/bin/true\n");
	fprintf(f, "%s", more);
	fclose(f);
	put(ISO.plan, p, len, 0644);
	free(p);
}

cJSON *iso_attack(char id[40])
{
	char rid[DP_ID_LEN + 1], env[400];
	dfx_runtime_of(1, rid);
	snprintf(env, sizeof env, "\"FAKE_AGENT_MODE\":\"attack\",\"FAKE_ATTACK_PLAN\":\"%s\"",
		 ISO.plan);
	fpt_queue(&FP, rid, env, "", id);
	bool done = fpt_wait_status(&FP, id, "completed", 30000, NULL);
	cJSON *j = fpt_detail(&FP, id);
	cJSON *row = cJSON_GetObjectItem(j, "task");
	cJSON *res = cJSON_GetObjectItem(row ? row : j, "result");
	const char *out = cJSON_GetStringValue(cJSON_GetObjectItem(res, "output"));
	cr_assert(done, "A's attack task did not complete: %s / %s", fpt_field(&FP, id, "status"),
		  fpt_field(&FP, id, "error"));
	cr_assert_not_null(out, "no output in the result");
	cJSON *r = cJSON_Parse(out);
	cr_assert_not_null(r, "the output is not the report: %.300s", out);
	/* What the attacker saw, for the reader of a failure (never the
	 * token: iso_assert_no_token). */
	fprintf(stderr, "attack report of %s: %s\n", id, out);
	cJSON_Delete(j);
	cr_assert_null(cJSON_GetObjectItem(r, "error"), "the fake could not run its plan: %s",
		       cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")));
	return r;
}

cJSON *iso_result(const cJSON *report, const char *label)
{
	cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(report, "results")) {
		const char *l = cJSON_GetStringValue(cJSON_GetObjectItem(e, "label"));
		if (l != NULL && strcmp(l, label) == 0)
			return e;
	}
	cr_assert_fail("no result for %s", label);
	return NULL;
}

static const char *str(const cJSON *e, const char *k)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(e, k));
	return s ? s : "";
}

void iso_assert_denied(const cJSON *report, const char *label, bool allow_enoent)
{
	cJSON *e = iso_result(report, label);
	const char *en = str(e, "errno");
	cr_assert(!cJSON_IsTrue(cJSON_GetObjectItem(e, "ok")), "%s (%s %s) worked for the agent",
		  label, str(e, "action"), str(e, "target"));
	cr_assert(strcmp(en, "EACCES") == 0 || strcmp(en, "EPERM") == 0 ||
		  (allow_enoent && strcmp(en, "ENOENT") == 0),
		  "%s (%s %s) failed with %s, not EACCES/EPERM", label, str(e, "action"),
		  str(e, "target"), en);
}

void iso_assert_allowed(const cJSON *report, const char *label)
{
	cJSON *e = iso_result(report, label);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "ok")), "%s (%s %s) failed for the agent: %s",
		  label, str(e, "action"), str(e, "target"), str(e, "errno"));
}

void iso_assert_plan(const cJSON *report)
{
	for (size_t i = 0; i < sizeof DENIED / sizeof DENIED[0]; i++) {
		/* ENOENT only for a path that is really not there (seen as root). */
		const char *t = str(iso_result(report, DENIED[i].label), "target");
		struct stat st;
		bool absent = DENIED[i].enoent && lstat(t, &st) < 0 && errno == ENOENT;
		iso_assert_denied(report, DENIED[i].label, absent);
	}
	for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++)
		iso_assert_allowed(report, ALLOWED[i]);
}

static int b64v(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decoded bytes of s (malloc'd), *n their count. */
static unsigned char *unb64(const char *s, size_t *n)
{
	size_t len = strlen(s);
	unsigned char *o = malloc(len / 4 * 3 + 3);
	unsigned v = 0;
	int bits = 0;
	*n = 0;
	for (size_t i = 0; i < len; i++) {
		int d = b64v(s[i]);
		if (d < 0)
			continue;
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[(*n)++] = (unsigned char)(v >> bits);
		}
	}
	return o;
}

void iso_assert_no_token(const cJSON *report)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/attack.json", str(report, "cwd"));
	char *full = slurp(path, NULL);
	cr_assert_not_null(full, "no %s", path);
	cr_assert(strstr(full, DP_TOKEN) == NULL, "the token is in the attacker's report");
	cJSON *r = cJSON_Parse(full);
	free(full);
	cr_assert_not_null(r);
	cJSON *e;
	int dumps = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "results")) {
		const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(e, "data"));
		if (d == NULL)
			continue;
		size_t n;
		unsigned char *b = unb64(d, &n);
		dumps += n > 0;
		cr_assert_null(memmem(b, n, DP_TOKEN, strlen(DP_TOKEN)),
			       "the daemon token is in what the agent read: %s %s", str(e, "action"),
			       str(e, "target"));
		free(b);
	}
	cJSON *self = iso_result(r, "self_environ");
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(self, "ok")) && dumps > 0,
		  "the agent read nothing: the search proves nothing");
	cJSON_Delete(r);
}

long iso_slot(const char *ws)
{
	char p[400];
	snprintf(p, sizeof p, "%s/agent-ids", D.state_dir);
	char *t = slurp(p, NULL);
	if (t == NULL)
		return -1;
	long slot = -1;
	for (char *l = t; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t k = strlen(ws);
		if (strncmp(l, ws, k) == 0 && l[k] == ' ')
			slot = strtol(l + k + 1, NULL, 10);
	}
	free(t);
	return slot;
}

long iso_proc_uid(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	char *t = slurp(p, NULL);
	const char *u = t ? strstr(t, "\nUid:") : NULL;
	long v = u ? strtol(u + 5, NULL, 10) : -1;
	free(t);
	return v;
}

char *iso_run(const char *const *argv, int *code)
{
	char out[256];
	snprintf(out, sizeof out, "%s.run-XXXXXX", ISO.dir[0] ? ISO.dir : "/tmp/mc-iso");
	int fd = mkstemp(out);
	cr_assert_geq(fd, 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_adddup2(&fa, fd, 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fd);
	cr_assert_eq(rc, 0, "cannot run %s: %s", argv[0], strerror(rc));
	int st = 0;
	int64_t until = dp_now_ms() + 20000;
	*code = -1;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (dp_now_ms() >= until) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			st = -1;
			break;
		}
		dp_sleep_ms(20);
	}
	if (st != -1 && WIFEXITED(st))
		*code = WEXITSTATUS(st);
	char *t = slurp(out, NULL);
	unlink(out);
	return t ? t : strdup("");
}
