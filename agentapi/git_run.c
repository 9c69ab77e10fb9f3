/* git as a child process: see git_run.h. */
#include "agentapi/git_run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/identity.h"

extern char **environ;

#define GRACE_MS 1000
#define DRAIN_MS 5000

/* ---- environment ---- */

static size_t key_len(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

static bool key_is(const char *kv, const char *key)
{
	size_t n = strlen(key);
	return key_len(kv) == n && strncmp(kv, key, n) == 0;
}

/* True when an earlier entry of base[0..i) has the same key. */
static bool seen_before(char *const *base, size_t i)
{
	size_t n = key_len(base[i]);
	for (size_t j = 0; j < i; j++)
		if (key_len(base[j]) == n && strncmp(base[j], base[i], n) == 0)
			return true;
	return false;
}

static long config_count(char *const *base)
{
	for (size_t i = 0; base[i]; i++) {
		if (!key_is(base[i], "GIT_CONFIG_COUNT"))
			continue;
		char *end = NULL;
		errno = 0;
		long v = strtol(strchr(base[i], '=') + 1, &end, 10);
		if (errno || end == strchr(base[i], '=') + 1 || *end || v < 0 || v > 1000)
			return 0;
		return v;
	}
	return 0;
}

static char *dup_kv(const char *fmt_key, long idx, const char *value)
{
	char key[64];
	if (idx >= 0)
		snprintf(key, sizeof(key), "%s%ld", fmt_key, idx);
	else
		snprintf(key, sizeof(key), "%s", fmt_key);
	size_t len = strlen(key) + 1 + strlen(value) + 1;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s=%s", key, value);
	return s;
}

char **mc_git_env(char *const *base)
{
	static char *const empty[] = {NULL};
	if (!base)
		base = empty;
	size_t n = 0;
	while (base[n])
		n++;
	long cc = config_count(base);
	char keyn[64], valn[64];
	snprintf(keyn, sizeof(keyn), "GIT_CONFIG_KEY_%ld", cc);
	snprintf(valn, sizeof(valn), "GIT_CONFIG_VALUE_%ld", cc);
	char **env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	bool counted = false;
	for (size_t i = 0; i < n; i++) {
		const char *kv = base[i];
		if (!strchr(kv, '=') || seen_before(base, i) || key_is(kv, "GIT_TERMINAL_PROMPT") ||
		    key_is(kv, keyn) || key_is(kv, valn))
			continue;
		if (key_is(kv, "GIT_CONFIG_COUNT")) {
			char num[24];
			snprintf(num, sizeof(num), "%ld", cc + 1);
			env[k] = dup_kv("GIT_CONFIG_COUNT", -1, num);
			counted = true;
		} else {
			env[k] = strdup(kv);
		}
		if (!env[k++])
			goto fail;
	}
	if (!counted && !(env[k++] = dup_kv("GIT_CONFIG_COUNT", -1, "1")))
		goto fail;
	if (!(env[k++] = dup_kv("GIT_TERMINAL_PROMPT", -1, "0")) ||
	    !(env[k++] = dup_kv("GIT_CONFIG_KEY_", cc, "safe.directory")) ||
	    !(env[k++] = dup_kv("GIT_CONFIG_VALUE_", cc, "*")))
		goto fail;
	return env;
fail:
	mc_git_env_free(env);
	return NULL;
}

void mc_git_env_free(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}

/* ---- output buffers ---- */

struct sink {
	char buf[MC_GIT_OUT_MAX + 1];
	size_t len;
	int fd;
};

/* Reads what fd has; closes it at EOF or on a hard error. */
static void sink_read(struct sink *s)
{
	for (;;) {
		char tmp[4096];
		ssize_t r = read(s->fd, tmp, sizeof(tmp));
		if (r > 0) {
			size_t room = MC_GIT_OUT_MAX - s->len;
			size_t take = (size_t)r < room ? (size_t)r : room;
			memcpy(s->buf + s->len, tmp, take);
			s->len += take;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close(s->fd);
		s->fd = -1;
		return;
	}
}

/* ---- spawning ---- */

static int spawn_git(const char *const *argv, char **env, int out_w, int err_w, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		return rc;
	if ((rc = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	sigset_t none, defs;
	sigemptyset(&none);
	sigfillset(&defs);
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
	if (!rc)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						       POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setpgroup(&at, 0);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&at, &defs);
	if (!rc)
		rc = posix_spawnp(pid, argv[0], &fa, &at, (char *const *)argv, env);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

static int open_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	int fl = fcntl(p[0], F_GETFL);
	if (fl < 0 || fcntl(p[0], F_SETFL, fl | O_NONBLOCK) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return 0;
}

/* ---- waiting ---- */

struct run {
	pid_t pid;
	int pidfd;           /* -1: no pidfd (old kernel), polled instead */
	struct sink so, se;
	bool exited;
};

static bool child_exited(struct run *r)
{
	if (r->exited)
		return true;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* WNOWAIT: the zombie keeps the pid (and the group id) reserved until
	 * the group has been killed. */
	if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == r->pid)
		r->exited = true;
	return r->exited;
}

/* Polls the pipes and the pidfd until the child exits or until deadline
 * (absolute ms, <= 0: none). Returns true when it exited. */
static bool pump(struct run *r, int64_t deadline)
{
	while (!child_exited(r)) {
		int64_t now = mc_now_ms();
		if (deadline > 0 && now >= deadline)
			return false;
		struct pollfd p[3];
		nfds_t n = 0;
		if (r->so.fd >= 0)
			p[n++] = (struct pollfd){.fd = r->so.fd, .events = POLLIN};
		if (r->se.fd >= 0)
			p[n++] = (struct pollfd){.fd = r->se.fd, .events = POLLIN};
		if (r->pidfd >= 0)
			p[n++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
		int cap = r->pidfd >= 0 ? 60000 : 20;
		int rc = poll(p, n, mc_ms_wait(deadline, now, cap));
		if (rc < 0 && errno != EINTR)
			return child_exited(r);
		if (r->so.fd >= 0)
			sink_read(&r->so);
		if (r->se.fd >= 0)
			sink_read(&r->se);
	}
	return true;
}

static void drain(struct run *r)
{
	int64_t deadline = mc_now_ms() + DRAIN_MS;
	while ((r->so.fd >= 0 || r->se.fd >= 0) && mc_now_ms() < deadline) {
		struct pollfd p[2];
		nfds_t n = 0;
		if (r->so.fd >= 0)
			p[n++] = (struct pollfd){.fd = r->so.fd, .events = POLLIN};
		if (r->se.fd >= 0)
			p[n++] = (struct pollfd){.fd = r->se.fd, .events = POLLIN};
		if (poll(p, n, mc_ms_wait(deadline, mc_now_ms(), 100)) < 0 && errno != EINTR)
			break;
		if (r->so.fd >= 0)
			sink_read(&r->so);
		if (r->se.fd >= 0)
			sink_read(&r->se);
	}
}

static int reap(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs to the end: on deadline SIGTERM the group, grace, SIGKILL. Always
 * kills leftovers, drains the pipes and reaps. Returns the exit status or
 * -1, *timed_out set. */
static int finish(struct run *r, int64_t deadline, bool *timed_out)
{
	*timed_out = false;
	if (!pump(r, deadline)) {
		*timed_out = true;
		kill(-r->pid, SIGTERM);
		if (!pump(r, mc_now_ms() + GRACE_MS))
			kill(-r->pid, SIGKILL);
		pump(r, 0);
	}
	kill(-r->pid, SIGKILL); /* leftovers; ESRCH when none */
	drain(r);
	int st = reap(r->pid);
	return *timed_out ? -1 : st;
}

/* ---- public ---- */

static void fill_out(struct mc_git_out *out, struct run *r, int status, bool timed_out)
{
	if (!out)
		return;
	r->so.buf[r->so.len] = '\0';
	r->se.buf[r->se.len] = '\0';
	out->status = status;
	out->timed_out = timed_out;
	out->out = strndup(r->so.buf, r->so.len);
	out->out_len = out->out ? r->so.len : 0;
	out->err = strndup(r->se.buf, r->se.len);
	out->err_len = out->err ? r->se.len : 0;
}

/* ---- forking as an identity ---- */

/* The program execve runs: argv0 itself when it holds a '/', else the
 * first executable PATH entry (execvp's search, done before the fork:
 * the child may not allocate). 0 or -1 (ENOENT). */
static int find_program(const char *argv0, char *out, size_t out_size)
{
	if (strchr(argv0, '/') != NULL) {
		snprintf(out, out_size, "%s", argv0);
		return 0;
	}
	const char *path = getenv("PATH");
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");
		int len = snprintf(out, out_size, "%.*s%s%s", (int)n, p, n ? "/" : "", argv0);
		if (len > 0 && (size_t)len < out_size && access(out, X_OK) == 0)
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	errno = ENOENT;
	return -1;
}

enum { ST_FDS = 1, ST_IDENTITY, ST_EXEC };

/* In the child: async-signal-safe calls only. Never returns. */
static void child_exec(const struct mc_identity *id, const char *prog, const char *const *argv,
		       char **env, int out_w, int err_w, int report_w)
{
	int stage = ST_FDS;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL, SIGSTOP, glibc's own */
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (setpgid(0, 0) < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 ||
	    dup2(err_w, 2) < 0)
		goto fail;
	/* Every other fd of the agent-api (its sockets) closes at exec. */
	if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) < 0)
		for (int fd = 3; fd < 4096; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	stage = ST_IDENTITY;
	if (mc_identity_enter(id) < 0 || chdir("/") < 0)
		goto fail;
	stage = ST_EXEC;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(prog, (char *const *)argv, env);
fail:;
	int msg[2] = { stage, errno };
	ssize_t w;
	do
		w = write(report_w, msg, sizeof msg);
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* 0 when the child exec'd; else its errno (the child is reaped), *stage
 * set. */
static int child_report(int report_r, pid_t pid, int *stage)
{
	int msg[2];
	size_t got = 0;
	while (got < sizeof msg) {
		ssize_t r = read(report_r, (char *)msg + got, sizeof msg - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < sizeof msg)
		return 0; /* EOF: execve closed the pipe */
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*stage = msg[0];
	return msg[1] ? msg[1] : EIO;
}

static int fork_git(const struct mc_identity *id, const char *const *argv, char **env,
		    int out_w, int err_w, pid_t *pid, int *stage)
{
	char prog[4096];
	*stage = ST_EXEC;
	if (find_program(argv[0], prog, sizeof prog) < 0)
		return errno;
	int rp[2];
	if (pipe2(rp, O_CLOEXEC) < 0)
		return errno;
	pid_t p = fork();
	if (p == 0)
		child_exec(id, prog, argv, env, out_w, err_w, rp[1]);
	int e = errno;
	close(rp[1]);
	if (p < 0) {
		close(rp[0]);
		return e;
	}
	int rc = child_report(rp[0], p, stage);
	close(rp[0]);
	if (rc == 0)
		*pid = p;
	return rc;
}

static const char *stage_name(int stage)
{
	return stage == ST_FDS ? "set-up" : stage == ST_IDENTITY ? "switch identity" : "exec";
}

static int start(struct run *r, const struct mc_identity *id, const char *const *argv, char *err,
		 size_t err_size)
{
	int po[2], pe[2];
	if (open_pipe(po) < 0) {
		snprintf(err, err_size, "git: pipe: %s", strerror(errno));
		return -1;
	}
	if (open_pipe(pe) < 0) {
		snprintf(err, err_size, "git: pipe: %s", strerror(errno));
		close(po[0]);
		close(po[1]);
		return -1;
	}
	bool as = id != NULL && id->sw;
	int stage = 0;
	char **env = mc_git_env(environ);
	int rc = !env ? ENOMEM : as ? fork_git(id, argv, env, po[1], pe[1], &r->pid, &stage)
				    : spawn_git(argv, env, po[1], pe[1], &r->pid);
	mc_git_env_free(env);
	close(po[1]);
	close(pe[1]);
	r->so.fd = po[0];
	r->se.fd = pe[0];
	if (rc) {
		if (as && stage == ST_IDENTITY)
			snprintf(err, err_size, "git: cannot run %s as uid %u gid %u: %s: %s",
				 argv[0], (unsigned)id->uid, (unsigned)id->gid, stage_name(stage),
				 strerror(rc));
		else
			snprintf(err, err_size, "git: cannot run %s: %s", argv[0], strerror(rc));
		close(po[0]);
		close(pe[0]);
		return -1;
	}
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
	return 0;
}

int mc_git_run(const char *const *argv, int64_t deadline_ms, struct mc_git_out *out,
	       char *err, size_t err_size)
{
	return mc_git_run_as(NULL, argv, deadline_ms, out, err, err_size);
}

int mc_git_run_as(const struct mc_identity *id, const char *const *argv, int64_t deadline_ms,
		  struct mc_git_out *out, char *err, size_t err_size)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (err_size)
		err[0] = '\0';
	/* Sinks are 64 KiB each: on the heap, not on a thread's stack. */
	struct run *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, err_size, "git: out of memory");
		return -1;
	}
	r->pidfd = -1;
	if (start(r, id, argv, err, err_size) < 0) {
		free(r);
		if (out)
			out->status = -1;
		return -1;
	}
	int64_t cap = mc_now_ms() + MC_GIT_TIMEOUT_MS;
	int64_t deadline = mc_ms_earliest(deadline_ms, cap);
	bool timed_out = false;
	int st = finish(r, deadline, &timed_out);
	fill_out(out, r, st, timed_out);
	if (r->pidfd >= 0)
		close(r->pidfd);
	free(r);
	if (timed_out) {
		snprintf(err, err_size, "git command timed out after %s: context deadline exceeded",
			 deadline == cap ? "10m0s" : "its deadline");
		return -1;
	}
	if (st < 0) {
		snprintf(err, err_size, "git: killed by a signal");
		return -1;
	}
	return st == 0 ? 0 : 1;
}

void mc_git_out_free(struct mc_git_out *out)
{
	if (!out)
		return;
	free(out->out);
	free(out->err);
	out->out = out->err = NULL;
	out->out_len = out->err_len = 0;
}

/* "worktree add" from "git -C <p> worktree add ...". */
static void label(const char *const *argv, char *dst, size_t n)
{
	size_t i = 1;
	while (argv[i] && strcmp(argv[i], "-C") == 0 && argv[i + 1])
		i += 2;
	const char *sub = argv[i] ? argv[i] : "";
	bool two = argv[i] && argv[i + 1] && argv[i + 1][0] != '-' &&
		   (!strcmp(sub, "worktree") || !strcmp(sub, "remote"));
	snprintf(dst, n, "%s%s%s", sub, two ? " " : "", two ? argv[i + 1] : "");
}

static void trim_copy(const char *s, char *dst, size_t n)
{
	if (!s)
		s = "";
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r' ||
		       s[len - 1] == '\t'))
		len--;
	snprintf(dst, n, "%.*s", (int)len, s);
}

void mc_git_describe(const char *const *argv, const struct mc_git_out *out, char *dst,
		     size_t dst_size)
{
	char lab[64], text[1024];
	label(argv, lab, sizeof(lab));
	const char *said = out && out->err && out->err[0] ? out->err : out ? out->out : NULL;
	trim_copy(said, text, sizeof(text));
	snprintf(dst, dst_size, "git %s: %s: exit status %d", lab, text, out ? out->status : -1);
}
