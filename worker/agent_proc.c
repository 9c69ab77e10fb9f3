#include "worker/agent_proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/child.h"
#include "worker/seedtree.h"

/* How often a stop (or an exited leader's leftovers) re-checks the group. */
#define GROUP_POLL_MS 20
#define LEFTOVER_POLL_MS 200
/* Without a pidfd, how often the leader is looked at. */
#define REAP_POLL_MS 100
/* Once the group is gone, how long stdout may stay open (a process that
 * escaped the group holds it) before the agent counts as done anyway. */
#define EOF_GRACE_MS 1000

enum {
	STAGE_CHDIR = 1, STAGE_EXEC = 2, STAGE_DUP = 3,
	STAGE_IDENTITY = 4,    /* mc_identity_enter */
	STAGE_MKDIR = 5,       /* a spec dir: mkdir or open */
	STAGE_NOT_OURS = 6,    /* a spec dir exists but is not the agent's: extra = its uid */
	STAGE_SEED = 7,        /* a spec dir's seed */
};

/* What the child writes on the status pipe when a step fails. */
struct child_status {
	int stage, err, index, extra;
};

struct mc_agent {
	pid_t pid;              /* leader, and so the pgid */
	int in_fd, out_fd, err_fd, pidfd;
	int wstatus;
	bool reaped, out_eof, stdin_failed, close_pending;
	bool stopping, kill_sent, group_empty, done;
	/* Once the loop reports readiness (mc_agent_set_ready), a service
	 * touches only the fds that are ready: a flood of lines must not cost
	 * every agent's reads and waits on every wake-up. */
	bool gated, out_ready, err_ready, pid_ready;
	mc_ms_t kill_at, last_now, empty_at, group_checked_at;
	char *q;                /* stdin queue: q[q_off..q_len) unsent */
	size_t q_off, q_len, q_cap;
	struct mc_linebuf lb;
	size_t err_len;
	char err_tail[MC_AGENT_STDERR_TAIL + 1];
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* A CLOEXEC pipe whose both ends are >= 3, so the child's dup2 onto 0-2
 * can never clobber a source. */
static int pipe_hi(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 3)
			continue;
		int hi = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
		if (hi < 0) {
			int e = errno;
			close(p[0]);
			close(p[1]);
			errno = e;
			return -1;
		}
		close(p[i]);
		p[i] = hi;
	}
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

__attribute__((noreturn)) static void child_fail_at(int fd, int stage, int index, int extra)
{
	struct child_status m = { stage, errno, index, extra };
	ssize_t r = write(fd, &m, sizeof m);
	(void)r;
	_exit(127);
}

__attribute__((noreturn)) static void child_fail(int fd, int stage)
{
	child_fail_at(fd, stage, 0, 0);
}

int mc_agent_execve(const char *path, char *const *argv, char *const *envp)
{
	if (strchr(path, '/') != NULL) {
		execve(path, argv, envp);
		return -1;
	}
	const char *pe = "/usr/local/bin:/usr/bin:/bin";
	for (char *const *e = envp; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0) {
			pe = *e + 5;
			break;
		}
	size_t nl = strlen(path);
	bool denied = false;
	int last = ENOENT;
	for (const char *p = pe; *p != '\0';) {
		const char *end = strchr(p, ':');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char cand[4096];
		/* relative entries never: the cwd must not decide what runs */
		if (len > 0 && p[0] == '/' && len + 1 + nl < sizeof cand) {
			memcpy(cand, p, len);
			cand[len] = '/';
			memcpy(cand + len + 1, path, nl + 1);
			execve(cand, argv, envp);
			if (errno == EACCES)
				denied = true;
			else if (errno != ENOENT && errno != ENOTDIR)
				return -1;
			last = errno;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	errno = denied ? EACCES : last;
	return -1;
}

/* A spec dir: made (0700 less nothing: the agent's umask keeps owner
 * bits), or an existing directory of the agent's uid; seeded. */
static void child_dir(const struct mc_agent_dir *d, int index, int st_w)
{
	bool made = mkdir(d->path, 0700) == 0;
	if (!made && errno != EEXIST)
		child_fail_at(st_w, STAGE_MKDIR, index, 0);
	struct stat st;
	if (lstat(d->path, &st) < 0)
		child_fail_at(st_w, STAGE_MKDIR, index, 0);
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		child_fail_at(st_w, STAGE_MKDIR, index, 0);
	}
	if (st.st_uid != geteuid()) {
		errno = EPERM;
		child_fail_at(st_w, STAGE_NOT_OURS, index, (int)st.st_uid);
	}
	/* exactly 0700: a setgid parent (a workspace's dir) would pass its bit on */
	if (made && (st.st_mode & 07777) != 0700 && chmod(d->path, 0700) < 0)
		child_fail_at(st_w, STAGE_MKDIR, index, 0);
	if (d->seed_kind == MC_SEED_NONE ||
	    (d->seed_kind == MC_SEED_TREE && (d->seed == NULL || !made)))
		return;
	int fd = open(d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		child_fail_at(st_w, STAGE_MKDIR, index, 0);
	int rc = d->seed_kind == MC_SEED_TREE ? mc_seed_tree(d->seed, fd) : mc_seed_codex(d->seed, fd);
	if (rc < 0 && !(d->seed_kind == MC_SEED_TREE && errno == ENOENT))
		child_fail_at(st_w, STAGE_SEED, index, 0);
	close(fd);
}

/* In the child, between fork and exec: async-signal-safe calls only. */
__attribute__((noreturn)) static void child_exec(const struct mc_agent_spec *spec,
						  int in_r, int out_w, int err_w, int st_w)
{
	setsid();
	mc_child_reset_signals();
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* SIGPIPE too: the agent is a normal program */
	if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
		child_fail(st_w, STAGE_DUP);
	if (st_w != 3) {
		if (dup2(st_w, 3) < 0)
			child_fail(st_w, STAGE_DUP);
		st_w = 3;
	}
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		child_fail(3, STAGE_DUP);
	closefrom(4);
	if (spec->as != NULL && mc_identity_enter(spec->as) < 0)
		child_fail(3, STAGE_IDENTITY);
	for (size_t i = 0; i < spec->n_dirs && i < MC_AGENT_DIRS_MAX; i++)
		child_dir(&spec->dirs[i], (int)i, 3);
	if (spec->cwd != NULL && chdir(spec->cwd) < 0)
		child_fail(3, STAGE_CHDIR);
	mc_agent_execve(spec->path, spec->argv, spec->envp);
	child_fail(3, STAGE_EXEC);
}

/* The named reason of a failed child step, into err. */
static void describe_failure(const struct mc_agent_spec *spec, const struct child_status *m,
			     char *err, size_t err_size)
{
	const struct mc_agent_dir *d =
		m->index >= 0 && (size_t)m->index < spec->n_dirs ? &spec->dirs[m->index] : NULL;
	const char *e = strerror(m->err);
	switch (m->stage) {
	case STAGE_CHDIR: snprintf(err, err_size, "chdir %s: %s", spec->cwd, e); break;
	case STAGE_DUP: snprintf(err, err_size, "set up fds for %s: %s", spec->path, e); break;
	case STAGE_IDENTITY:
		snprintf(err, err_size, "switch to uid %u: %s",
			 spec->as != NULL ? (unsigned)spec->as->uid : 0u, e);
		break;
	case STAGE_MKDIR:
		snprintf(err, err_size, "mkdir %s %s: %s", d ? d->label : "?", d ? d->path : "?", e);
		break;
	case STAGE_NOT_OURS:
		snprintf(err, err_size, "%s %s is not the agent's (owner uid %u)", d ? d->label : "?",
			 d ? d->path : "?", (unsigned)m->extra);
		break;
	case STAGE_SEED:
		snprintf(err, err_size, "seed %s %s from %s: %s", d ? d->label : "?",
			 d ? d->path : "?", d && d->seed ? d->seed : "?", e);
		break;
	default: snprintf(err, err_size, "exec %s: %s", spec->path, e); break;
	}
}

/* Waits for the status pipe: EOF means the exec succeeded. Returns 0, or
 * -1 with errno and err filled. */
static int await_exec(const struct mc_agent_spec *spec, int st_r, pid_t pid, char *err,
		      size_t err_size)
{
	struct child_status m;
	size_t got = 0;
	while (got < sizeof m) {
		ssize_t r = read(st_r, (char *)&m + got, sizeof m - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	if (got == 0)
		return 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof m)
		m = (struct child_status){ STAGE_EXEC, EIO, 0, 0 };
	describe_failure(spec, &m, err, err_size);
	errno = m.err;
	return -1;
}

static void close_pipes(int p[4][2])
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 2; j++)
			close_fd(&p[i][j]);
}

struct mc_agent *mc_agent_spawn(const struct mc_agent_spec *spec, char *err, size_t err_size)
{
	int p[4][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } }; /* in out err status */
	struct mc_agent *a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(err, err_size, "spawn %s: out of memory", spec->path);
		return NULL;
	}
	for (int i = 0; i < 4; i++) {
		if (pipe_hi(p[i]) < 0) {
			int e = errno;
			snprintf(err, err_size, "spawn %s: pipe: %s", spec->path, strerror(e));
			close_pipes(p);
			free(a);
			errno = e;
			return NULL;
		}
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		snprintf(err, err_size, "spawn %s: fork: %s", spec->path, strerror(e));
		close_pipes(p);
		free(a);
		errno = e;
		return NULL;
	}
	if (pid == 0)
		child_exec(spec, p[0][0], p[1][1], p[2][1], p[3][1]);
	close_fd(&p[0][0]);
	close_fd(&p[1][1]);
	close_fd(&p[2][1]);
	close_fd(&p[3][1]);
	int rc = await_exec(spec, p[3][0], pid, err, err_size);
	close_fd(&p[3][0]);
	if (rc < 0) {
		int e = errno;
		close_pipes(p);
		free(a);
		errno = e;
		return NULL;
	}
	a->pid = pid;
	a->in_fd = p[0][1];
	a->out_fd = p[1][0];
	a->err_fd = p[2][0];
	/* Only our ends are non-blocking: the agent sees ordinary pipes. */
	set_nonblock(a->in_fd);
	set_nonblock(a->out_fd);
	set_nonblock(a->err_fd);
	a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (a->pidfd < 0)
		a->pidfd = -1; /* old kernel: reaps are polled */
	a->last_now = mc_now_ms();
	mc_linebuf_init(&a->lb, MC_AGENT_LINE_MAX);
	return a;
}

pid_t mc_agent_pid(const struct mc_agent *a)
{
	return a->pid;
}

/* Signals the group, unless it is known to be gone (its id may then belong
 * to someone else). EPERM (a member changed uid): the leader at least. */
static void signal_group(struct mc_agent *a, int sig)
{
	if (a->group_empty)
		return;
	if (kill(-a->pid, sig) < 0) {
		if (errno == ESRCH) {
			if (a->reaped)
				a->group_empty = true;
		} else if (!a->reaped) {
			kill(a->pid, sig);
		}
	}
}

/* Reaps the leader and any member of the group that is our child (when
 * the worker is a subreaper, orphaned members come back to it). */
static void reap(struct mc_agent *a)
{
	for (;;) {
		int st;
		pid_t r = waitpid(-a->pid, &st, WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (r == a->pid) {
			a->reaped = true;
			a->wstatus = st;
		}
	}
	if (!a->reaped) { /* not in its group any more? ask for it alone */
		int st;
		pid_t r;
		while ((r = waitpid(a->pid, &st, WNOHANG)) < 0 && errno == EINTR)
			;
		if (r == a->pid) {
			a->reaped = true;
			a->wstatus = st;
		}
	}
	if (a->reaped)
		close_fd(&a->pidfd);
}

/* Is any process with this pgid alive (not a zombie)? Zombies whose
 * parent has not reaped them yet still answer kill(0), so /proc decides. */
static bool proc_group_has_live(pid_t pgid)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return true; /* cannot tell: assume alive, kill(0) said so */
	bool live = false;
	struct dirent *de;
	while (!live && (de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		char state;
		long ppid, pgrp;
		if (rp == NULL || sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3)
			continue;
		if (pgrp == (long)pgid && state != 'Z' && state != 'X')
			live = true;
	}
	closedir(d);
	return live;
}

bool mc_agent_group_alive(const struct mc_agent *a)
{
	if (a->group_empty)
		return false;
	if (!a->reaped)
		return true;
	if (kill(-a->pid, 0) < 0 && errno == ESRCH)
		return false;
	return proc_group_has_live(a->pid);
}

/* Rate-limited: a leftover member would otherwise cost a /proc scan per
 * loop iteration. */
static void check_group(struct mc_agent *a, mc_ms_t now)
{
	if (!a->reaped || a->group_empty)
		return;
	if (a->group_checked_at != 0 && now - a->group_checked_at < GROUP_POLL_MS)
		return;
	a->group_checked_at = now;
	if (!mc_agent_group_alive(a)) {
		a->group_empty = true;
		a->empty_at = now;
	}
}

static void read_stdout(struct mc_agent *a, mc_line_fn fn, void *ctx)
{
	char chunk[16384];
	size_t budget = MC_AGENT_READ_BUDGET;
	while (a->out_fd >= 0 && budget > 0) {
		ssize_t r = read(a->out_fd, chunk, sizeof chunk);
		if (r > 0) {
			mc_linebuf_feed(&a->lb, chunk, (size_t)r, fn, ctx);
			budget = (size_t)r < budget ? budget - (size_t)r : 0;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		close_fd(&a->out_fd); /* EOF, or an error that ends the stream */
		a->out_eof = true;
		mc_linebuf_finish(&a->lb, fn, ctx);
	}
}

static void tail_append(struct mc_agent *a, const char *p, size_t n)
{
	if (n >= MC_AGENT_STDERR_TAIL) {
		p += n - MC_AGENT_STDERR_TAIL;
		n = MC_AGENT_STDERR_TAIL;
		a->err_len = 0;
	} else if (a->err_len + n > MC_AGENT_STDERR_TAIL) {
		size_t drop = a->err_len + n - MC_AGENT_STDERR_TAIL;
		memmove(a->err_tail, a->err_tail + drop, a->err_len - drop);
		a->err_len -= drop;
	}
	for (size_t i = 0; i < n; i++)
		a->err_tail[a->err_len + i] = p[i] != '\0' ? p[i] : ' ';
	a->err_len += n;
	a->err_tail[a->err_len] = '\0';
}

static void read_stderr(struct mc_agent *a)
{
	char chunk[4096];
	size_t budget = MC_AGENT_READ_BUDGET;
	while (a->err_fd >= 0 && budget > 0) {
		ssize_t r = read(a->err_fd, chunk, sizeof chunk);
		if (r > 0) {
			tail_append(a, chunk, (size_t)r);
			budget = (size_t)r < budget ? budget - (size_t)r : 0;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		close_fd(&a->err_fd);
	}
}

static void drop_queue(struct mc_agent *a)
{
	free(a->q);
	a->q = NULL;
	a->q_off = a->q_len = a->q_cap = 0;
}

/* Writes what the pipe takes. */
static void flush_stdin(struct mc_agent *a)
{
	while (a->in_fd >= 0 && a->q_off < a->q_len) {
		ssize_t w = write(a->in_fd, a->q + a->q_off, a->q_len - a->q_off);
		if (w > 0) {
			a->q_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		a->stdin_failed = true; /* EPIPE: the agent closed it or died */
		close_fd(&a->in_fd);
	}
	if (a->q_off == a->q_len)
		drop_queue(a); /* an idle agent holds no queue memory */
	if (a->close_pending && a->q_len == 0)
		close_fd(&a->in_fd);
}

int mc_agent_write(struct mc_agent *a, const void *data, size_t n)
{
	if (a->in_fd < 0 || a->close_pending) {
		errno = EPIPE;
		return -1;
	}
	size_t pending = a->q_len - a->q_off;
	if (n > MC_AGENT_STDIN_MAX - pending) {
		errno = ENOBUFS;
		return -1;
	}
	if (a->q_off > 0) { /* compact before growing */
		memmove(a->q, a->q + a->q_off, pending);
		a->q_len = pending;
		a->q_off = 0;
	}
	if (a->q_len + n > a->q_cap) {
		size_t cap = a->q_cap ? a->q_cap : 4096;
		while (cap < a->q_len + n)
			cap *= 2;
		char *nq = realloc(a->q, cap);
		if (nq == NULL) {
			errno = ENOMEM;
			return -1;
		}
		a->q = nq;
		a->q_cap = cap;
	}
	memcpy(a->q + a->q_len, data, n);
	a->q_len += n;
	flush_stdin(a);
	if (a->stdin_failed && a->in_fd < 0) {
		errno = EPIPE;
		return -1;
	}
	return 0;
}

void mc_agent_close_stdin(struct mc_agent *a)
{
	a->close_pending = true;
	flush_stdin(a);
}

size_t mc_agent_stdin_pending(const struct mc_agent *a)
{
	return a->q_len - a->q_off;
}

bool mc_agent_stdin_failed(const struct mc_agent *a)
{
	return a->stdin_failed;
}

void mc_agent_stop(struct mc_agent *a, mc_ms_t grace_ms, mc_ms_t now)
{
	drop_queue(a);
	a->close_pending = true;
	close_fd(&a->in_fd);
	if (a->reaped)
		check_group(a, now);
	mc_ms_t at = now + (grace_ms > 0 ? grace_ms : 0);
	if (!a->stopping) {
		a->stopping = true;
		a->kill_at = at;
		if (grace_ms > 0)
			signal_group(a, SIGTERM);
	} else if (at < a->kill_at) {
		a->kill_at = at;
	}
	if (!a->kill_sent && now >= a->kill_at) {
		a->kill_sent = true;
		signal_group(a, SIGKILL);
	}
}

unsigned mc_agent_waitfds(const struct mc_agent *a, struct curl_waitfd *fds, unsigned max)
{
	unsigned k = 0;
	if (a->out_fd >= 0 && k < max)
		fds[k++] = (struct curl_waitfd){ .fd = a->out_fd, .events = CURL_WAIT_POLLIN };
	if (a->err_fd >= 0 && k < max)
		fds[k++] = (struct curl_waitfd){ .fd = a->err_fd, .events = CURL_WAIT_POLLIN };
	if (a->in_fd >= 0 && a->q_off < a->q_len && k < max)
		fds[k++] = (struct curl_waitfd){ .fd = a->in_fd, .events = CURL_WAIT_POLLOUT };
	if (a->pidfd >= 0 && k < max)
		fds[k++] = (struct curl_waitfd){ .fd = a->pidfd, .events = CURL_WAIT_POLLIN };
	return k;
}

void mc_agent_set_ready(struct mc_agent *a, const struct curl_waitfd *fds, unsigned n)
{
	a->gated = true;
	for (unsigned i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		if (fds[i].fd == a->out_fd)
			a->out_ready = true;
		else if (fds[i].fd == a->err_fd)
			a->err_ready = true;
		else if (fds[i].fd == a->pidfd)
			a->pid_ready = true;
	}
}

void mc_agent_service(struct mc_agent *a, mc_ms_t now, mc_line_fn fn, void *ctx)
{
	a->last_now = now;
	bool all = !a->gated;
	if (all || a->out_ready)
		read_stdout(a, fn, ctx);
	if (all || a->err_ready)
		read_stderr(a);
	flush_stdin(a);
	if (a->stopping && !a->kill_sent && now >= a->kill_at) {
		a->kill_sent = true;
		signal_group(a, SIGKILL);
	}
	/* Without a pidfd the leader is looked at on every call (the
	 * deadline paces them); what is left of a group after its leader
	 * exited, likewise. */
	if ((!a->reaped && (all || a->pidfd < 0 || a->pid_ready)) ||
	    (a->reaped && !a->group_empty))
		reap(a);
	a->out_ready = a->err_ready = a->pid_ready = false;
	check_group(a, now);
	if (a->group_empty && !a->out_eof) {
		read_stdout(a, fn, ctx); /* what the last writers left */
		if (!a->out_eof && now - a->empty_at >= EOF_GRACE_MS) {
			close_fd(&a->out_fd); /* held by a process that left the group */
			a->out_eof = true;
			mc_linebuf_finish(&a->lb, fn, ctx);
		}
	}
	if (a->reaped && a->group_empty && a->out_eof && !a->done) {
		a->done = true;
		close_fd(&a->in_fd);
		close_fd(&a->err_fd);
	}
}

mc_ms_t mc_agent_next_deadline(const struct mc_agent *a)
{
	if (a->done)
		return -1;
	mc_ms_t d = -1;
	if (a->stopping && !a->kill_sent)
		d = a->kill_at;
	mc_ms_t poll = -1;
	if (a->group_empty)
		poll = a->last_now + GROUP_POLL_MS * 5; /* waiting for EOF */
	else if (a->reaped)
		poll = a->last_now + (a->stopping ? GROUP_POLL_MS : LEFTOVER_POLL_MS);
	else if (a->pidfd < 0 || a->kill_sent)
		poll = a->last_now + (a->kill_sent ? GROUP_POLL_MS : REAP_POLL_MS);
	if (poll >= 0 && (d < 0 || poll < d))
		d = poll;
	return d;
}

bool mc_agent_exited(const struct mc_agent *a, int *wstatus)
{
	if (a->reaped && wstatus != NULL)
		*wstatus = a->wstatus;
	return a->reaped;
}

bool mc_agent_eof(const struct mc_agent *a)
{
	return a->out_eof;
}

bool mc_agent_done(const struct mc_agent *a)
{
	return a->done;
}

bool mc_agent_killed(const struct mc_agent *a)
{
	return a->kill_sent;
}

const char *mc_agent_stderr_tail(const struct mc_agent *a)
{
	const char *p = a->err_tail;
	/* A cut in the middle of a UTF-8 sequence: start at the next one. */
	for (int i = 0; i < 3 && ((unsigned char)*p & 0xc0) == 0x80; i++)
		p++;
	return p;
}

size_t mc_agent_linebuf_cap(const struct mc_agent *a)
{
	return a->lb.cap;
}

size_t mc_agent_linebuf_peak(const struct mc_agent *a)
{
	return a->lb.peak_cap;
}

void mc_agent_describe_status(int wstatus, char *out, size_t out_size)
{
	if (WIFEXITED(wstatus))
		snprintf(out, out_size, "exit %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus))
		snprintf(out, out_size, "signal %d (%s)", WTERMSIG(wstatus),
			 strsignal(WTERMSIG(wstatus)));
	else
		snprintf(out, out_size, "status 0x%x", (unsigned)wstatus);
}

void mc_agent_free(struct mc_agent *a)
{
	if (a == NULL)
		return;
	if (!a->done) {
		signal_group(a, SIGKILL);
		while (!a->reaped) {
			int st = 0;
			pid_t r = waitpid(a->pid, &st, 0);
			if (r == a->pid || (r < 0 && errno != EINTR)) {
				a->reaped = true;
				a->wstatus = st;
			}
		}
	}
	close_fd(&a->in_fd);
	close_fd(&a->out_fd);
	close_fd(&a->err_fd);
	close_fd(&a->pidfd);
	drop_queue(a);
	mc_linebuf_clear(&a->lb);
	free(a);
}
