/* The fork server (forkserver.h): its process, the protocol, and the
 * supervisor's side (start, requests with a deadline, loss, restart).
 *
 * Why CLONE_PARENT rather than a double fork under a subreaper, or exit
 * statuses relayed over the socket: the worker's parent is the supervisor
 * from the first instruction, so nothing about a worker changes for the
 * supervisor (waitid(P_PIDFD), wk_death.c) or for the worker (PDEATHSIG
 * names the supervisor's thread, getppid() == parent holds), no orphan is
 * ever reparented to the supervisor, and the pidfd comes from clone itself
 * (CLONE_PIDFD), so the pid can never be recycled before it is held. */
#include "supervisor/forkserver.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/unistd.h>

#include "common/api.h"
#include "common/child.h"
#include "common/log.h"
#include "common/proctitle.h"
#include "worker/worker.h"

#define FS_MAGIC        0x4d435a31u     /* "MCZ1" */
#define FS_REPLY_MS     750             /* a clone takes < 1 ms; the loop must not stall 1 s */
#define FS_STR_(x)      #x
#define FS_STR(x)       FS_STR_(x)
#define FS_EXEC_FD      3
#define FS_RESTART_MIN_MS 1000          /* between restarts of one that never served */
#define FS_RESTART_MAX_MS 60000
#define FS_MAX_FDS      2
#define FS_STOP_MS      500             /* its own exit at supervisor exit, then SIGKILL */

/* A request (pid: the supervisor), an answer (pid: the worker; err: errno
 * when none was made) or READY (seq 0, pid: the fork server). */
struct fs_msg {
	uint32_t magic;
	uint32_t seq;
	int32_t pid;
	int32_t err;
};

/* ---- the protocol ---- */

static int send_msg(int fd, const struct fs_msg *m, const int *fds, int nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * FS_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof *m };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	memset(&ctl, 0, sizeof ctl);
	if (nfds > 0) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t r;
	while ((r = sendmsg(fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return r == (ssize_t)sizeof *m ? 0 : -1;
}

/* One message and up to FS_MAX_FDS fds (close-on-exec; any beyond are
 * closed). The message's size, 0 at EOF, -1 with errno. A message of the
 * wrong size, or whose fds did not fit, comes back as EPROTO with no fd. */
static ssize_t recv_msg(int fd, struct fs_msg *m, int *fds, int *nfds, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * (FS_MAX_FDS + 2))];
	} ctl;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof *m };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf };
	*nfds = 0;
	ssize_t r;
	while ((r = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		return r;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
			if (*nfds < FS_MAX_FDS)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	if (r != (ssize_t)sizeof *m || m->magic != FS_MAGIC ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		while (*nfds > 0)
			close(fds[--(*nfds)]);
		errno = EPROTO;
		return -1;
	}
	return r;
}

/* ---- the fork server's process ---- */

/* A child whose parent is our parent, and its pidfd. clone3 first; the
 * legacy clone where a seccomp filter refuses clone3 (systemd's
 * RestrictNamespaces= makes it ENOSYS). Like fork for everything else: no
 * CLONE_VM, the child continues on its copy of this stack. */
static pid_t clone_parent(int *pidfd)
{
	static bool legacy;
	if (!legacy) {
		struct clone_args a;
		memset(&a, 0, sizeof a);
		a.flags = CLONE_PARENT | CLONE_PIDFD;
		a.pidfd = (uint64_t)(uintptr_t)pidfd;
		a.exit_signal = 0; /* with CLONE_PARENT the kernel uses ours (SIGCHLD) */
		long r = syscall(SYS_clone3, &a, sizeof a);
		if (r >= 0 || (errno != ENOSYS && errno != EPERM))
			return (pid_t)r;
		legacy = true;
	}
#if defined(__x86_64__) || defined(__aarch64__)
	/* Both put the parent tid pointer (CLONE_PIDFD's int) third. */
	return (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_PARENT | CLONE_PIDFD), 0UL, pidfd,
			      NULL, 0UL);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static void answer(int fd, uint32_t seq, pid_t pid, int err, const int *fds, int nfds)
{
	struct fs_msg m = { .magic = FS_MAGIC, .seq = seq, .pid = (int32_t)pid, .err = err };
	if (send_msg(fd, &m, fds, nfds) < 0 && nfds == 2)
		mc_pidfd_kill(fds[1], SIGKILL); /* nobody would watch it */
}

#ifdef MC_TEST_HOOKS
/* MC_TEST_FS_EXIT_AFTER_CLONE=N: the fork server dies between its N-th
 * clone and the answer (a worker nobody holds a pidfd of). */
static void test_exit_after_clone(void)
{
	static long served;
	const char *v = getenv("MC_TEST_FS_EXIT_AFTER_CLONE");
	char *end;
	long n = v != NULL ? strtol(v, &end, 10) : 0;
	if (v != NULL && *end == '\0' && n > 0 && ++served == n)
		_exit(70);
}
#else
static void test_exit_after_clone(void)
{
}
#endif

/* One request: a worker on a fresh socketpair, cloned as the supervisor's
 * child. gen is the generation lock fd for the worker (or -1). */
static void serve_one(int fd, const struct fs_msg *req, int gen)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
		answer(fd, req->seq, 0, errno, NULL, 0);
		return;
	}
	int pidfd = -1;
	pid_t pid = clone_parent(&pidfd);
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		answer(fd, req->seq, 0, e, NULL, 0);
		return;
	}
	if (pid == 0) {
		/* mc_worker_main closes every fd but stdio, the socket and gen. */
		mc_child_exit(mc_worker_main(sp[1], (pid_t)req->pid, gen));
	}
	test_exit_after_clone();
	close(sp[1]);
	int out[2] = { sp[0], pidfd };
	answer(fd, req->seq, pid, 0, out, 2);
	close(sp[0]);
	close(pidfd);
}

/* Serves requests on fd until the supervisor's end closes. Holds nothing
 * per request once it is answered. */
__attribute__((noreturn)) static void serve(int fd)
{
	mc_log_set_context("forkserver", NULL);
	mc_proctitle_set("mc-forkserver", "multicad: forkserver");
	pid_t parent = getppid();
	answer(fd, 0, getpid(), 0, NULL, 0); /* READY */
	for (;;) {
		struct fs_msg req;
		int fds[FS_MAX_FDS], nfds = 0;
		ssize_t r = recv_msg(fd, &req, fds, &nfds, 0);
		if (r == 0 || (r < 0 && errno != EPROTO))
			mc_child_exit(0); /* the supervisor is gone or closing */
		if (r < 0 || nfds > 1 || req.pid != (int32_t)parent) {
			while (nfds > 0)
				close(fds[--nfds]);
			answer(fd, r < 0 ? 0 : req.seq, 0, EPROTO, NULL, 0);
			continue;
		}
		serve_one(fd, &req, nfds == 1 ? fds[0] : -1);
		if (nfds == 1)
			close(fds[0]);
	}
}

/* After fork, in the new fork server: die with the supervisor, default
 * signals, the socket on FS_EXEC_FD and nothing else but stdio. */
static void child_setup(int sock, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the supervisor died before PDEATHSIG was armed */
	mc_child_reset_signals();
	/* dup2 clears close-on-exec; a socket already on FS_EXEC_FD keeps it. */
	if ((sock != FS_EXEC_FD && dup2(sock, FS_EXEC_FD) < 0) ||
	    fcntl(FS_EXEC_FD, F_SETFD, 0) < 0)
		_exit(1);
	closefrom(FS_EXEC_FD + 1);
}

void mc_fs_exec_main(void)
{
	if (mc_api_global_init() < 0) {
		mc_log(MC_LOG_ERROR, "fork server: library initialisation failed", NULL);
		mc_child_exit(1);
	}
	serve(FS_EXEC_FD);
}

/* ---- the supervisor's side ---- */

enum fs_state {
	FS_DOWN,        /* none; restart at restart_at */
	FS_STARTING,    /* running, READY not seen yet */
	FS_READY,
};

/* One per supervisor. Static rather than in struct mc_sv: the first one
 * is forked before the supervisor's state is initialised. */
static struct {
	enum fs_state state;
	pid_t pid;
	int pidfd;
	int fd;                 /* our end of the socketpair */
	uint32_t seq;
	bool served;            /* made a worker since it started */
	bool watched;           /* pidfd in the epoll set */
	struct mc_src src;
	struct mc_backoff backoff;
	mc_ms_t restart_at;
} fs = {
	.pidfd = -1,
	.fd = -1,
	.src = { SRC_FORKSERVER, NULL },
	.backoff = { FS_RESTART_MIN_MS, FS_RESTART_MAX_MS, 0 },
};

/* Forks a fork server: serving at once from this image (exec false: the
 * first one, before any per-workspace state exists), or re-executing
 * multicad (a restart: this image holds the configuration and the token). */
static int fs_fork(bool exec)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -1;
	pid_t parent = getpid();
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		child_setup(sp[1], parent);
		if (!exec)
			serve(FS_EXEC_FD);
		char arg0[] = "multicad", arg1[] = MC_FS_EXEC_ARG;
		char *argv[] = { arg0, arg1, NULL };
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sp[1]);
	int fl = fcntl(sp[0], F_GETFL);
	fs.pidfd = mc_pidfd_open(pid); /* our child, unreaped: its pid is stable */
	if (fs.pidfd < 0 || fl < 0 || fcntl(sp[0], F_SETFL, fl | O_NONBLOCK) < 0) {
		if (fs.pidfd < 0 || mc_pidfd_kill(fs.pidfd, SIGKILL) < 0)
			kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (fs.pidfd >= 0)
			close(fs.pidfd);
		fs.pidfd = -1;
		close(sp[0]);
		return -1;
	}
	fs.pid = pid;
	fs.fd = sp[0];
	fs.state = FS_STARTING;
	fs.served = false;
	return 0;
}

void mc_fs_start(void)
{
	if (fs_fork(false) < 0)
		mc_log(MC_LOG_ERROR, "cannot start the fork server; forking workers directly",
		       "error", strerror(errno), NULL);
}

void mc_fs_watch(struct mc_sv *sv)
{
	if (fs.pidfd < 0 || fs.watched)
		return;
	if (mc_sv_epoll_add(sv, fs.pidfd, EPOLLIN, &fs.src) == 0)
		fs.watched = true;
	else
		mc_log(MC_LOG_WARN, "cannot watch the fork server", "error", strerror(errno), NULL);
}

static void restart(struct mc_sv *sv)
{
	if (fs_fork(true) < 0) {
		mc_ms_t d = mc_backoff_next(&fs.backoff);
		fs.restart_at = mc_now_ms() + d;
		mc_log(MC_LOG_ERROR, "cannot restart the fork server", "error", strerror(errno),
		       "retry_in_ms", MC_LOG_NUM(d), NULL);
		return;
	}
	mc_log(MC_LOG_INFO, "fork server restarted", "forkserver_pid", MC_LOG_NUM(fs.pid), NULL);
	mc_fs_watch(sv);
}

/* Gone: the next restart now if it had proved itself, else after backoff
 * (one that dies at start would otherwise be re-executed in a loop). */
static void schedule_restart(struct mc_sv *sv)
{
	if (fs.served)
		mc_backoff_reset(&fs.backoff);
	fs.restart_at = fs.served ? 0 : mc_now_ms() + mc_backoff_next(&fs.backoff);
	if (!sv->shutting_down && mc_now_ms() >= fs.restart_at)
		restart(sv);
}

static void close_ours(struct mc_sv *sv)
{
	if (fs.watched)
		mc_sv_epoll_del(sv, fs.pidfd);
	fs.watched = false;
	if (fs.pidfd >= 0)
		close(fs.pidfd);
	if (fs.fd >= 0)
		close(fs.fd);
	fs.pidfd = fs.fd = -1;
	fs.pid = 0;
	fs.state = FS_DOWN;
}

/* SIGKILL and reap a child of ours through its pidfd (a SIGKILLed
 * process is gone at once: the wait is short, as in wk.c's unwatchable). */
static void kill_reap(int pidfd)
{
	mc_pidfd_kill(pidfd, SIGKILL);
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
}

/* A worker made for an answer nobody waits for any more: killed, reaped
 * (it is our child), its socket closed. */
static void disown(const int *fds, int nfds)
{
	if (nfds == 2)
		kill_reap(fds[1]);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* Whatever the socket still holds, disowned. */
static void drain(void)
{
	for (;;) {
		struct fs_msg m;
		int fds[FS_MAX_FDS], nfds;
		ssize_t r = recv_msg(fs.fd, &m, fds, &nfds, MSG_DONTWAIT);
		if (r > 0)
			disown(fds, nfds);
		else if (r == 0 || errno != EPROTO)
			return; /* EPROTO: a malformed one, its fds closed; read on */
	}
}

/* Children the fork server cloned but never answered for (it died between
 * its clone and its answer): ours, unwatched. Named by what they inherited
 * (comm mc-forkserver) or set (mc-worker), and by no worker holding their
 * pid: killed and reaped. */
static bool is_ours(struct mc_sv *sv, pid_t pid)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->pid == pid)
			return true;
	return false;
}

static bool cloned_worker(pid_t pid)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	bool got = fgets(comm, sizeof comm, f) != NULL;
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return got && (strcmp(comm, "mc-forkserver") == 0 || strcmp(comm, "mc-worker") == 0);
}

static void sweep_strays(struct mc_sv *sv)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)sv->pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return;
	long v;
	while (fscanf(f, "%ld", &v) == 1) {
		pid_t pid = (pid_t)v;
		if (pid <= 0 || is_ours(sv, pid) || !cloned_worker(pid))
			continue;
		int pidfd = mc_pidfd_open(pid); /* our child, unreaped: the pid is stable */
		if (pidfd < 0)
			continue;
		mc_log(MC_LOG_WARN, "killing a worker the lost fork server left unanswered", "pid",
		       MC_LOG_NUM(pid), NULL);
		kill_reap(pidfd);
		close(pidfd);
	}
	fclose(f);
}

/* Dead, stuck or confused: killed, reaped, whatever it still sent drained,
 * then restarted (or scheduled). in_request: an answer was due, so a
 * worker may exist that no answer names. */
static void lose(struct mc_sv *sv, const char *why, bool in_request)
{
	mc_log(MC_LOG_WARN, "fork server lost; forking workers directly until it is back",
	       "reason", why, "forkserver_pid", MC_LOG_NUM(fs.pid), NULL);
	if (fs.pidfd >= 0)
		kill_reap(fs.pidfd);
	drain();
	close_ours(sv);
	if (in_request)
		sweep_strays(sv);
	schedule_restart(sv);
}

/* Waits until `until` for the answer to seq (0: READY). 1: it came (fds
 * set); 0: the fork server is lost (logged, handled). in_request: a clone
 * may have happened. */
static int await_answer(struct mc_sv *sv, uint32_t seq, mc_ms_t until, struct fs_msg *m,
			int *fds, int *nfds, bool in_request)
{
	for (;;) {
		ssize_t r = recv_msg(fs.fd, m, fds, nfds, MSG_DONTWAIT);
		if (r > 0 && m->seq == seq)
			return 1;
		if (r > 0) {
			disown(fds, *nfds); /* an older answer */
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			lose(sv, r == 0 ? "the fork server closed its socket"
				 : "unreadable answer from the fork server", in_request);
			return 0;
		}
		mc_ms_t left = until - mc_now_ms();
		if (left <= 0) {
			lose(sv, "no answer within " FS_STR(FS_REPLY_MS) " ms", in_request);
			return 0;
		}
		struct pollfd p = { .fd = fs.fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			lose(sv, "cannot poll the fork server", in_request);
			return 0;
		}
	}
}

/* STARTING: its READY, waited for like an answer (the first one is up in
 * a few ms; a restarted one has exec'd multicad and initialised the
 * libraries). */
static bool await_ready(struct mc_sv *sv)
{
	struct fs_msg m;
	int fds[FS_MAX_FDS], nfds = 0;
	if (!await_answer(sv, 0, mc_now_ms() + FS_REPLY_MS, &m, fds, &nfds, false))
		return false;
	if (nfds != 0 || m.pid != (int32_t)fs.pid) {
		disown(fds, nfds);
		lose(sv, "no READY from the fork server", false);
		return false;
	}
	fs.state = FS_READY;
	return true;
}

int mc_fs_spawn(struct mc_sv *sv, pid_t *pid, int *sock, int *pidfd)
{
	if (fs.state == FS_DOWN && !sv->shutting_down && mc_now_ms() >= fs.restart_at)
		restart(sv);
	if (fs.state == FS_DOWN || (fs.state == FS_STARTING && !await_ready(sv)))
		return 0;
	if (++fs.seq == 0)
		fs.seq = 1; /* 0 is READY's */
	struct fs_msg req = { .magic = FS_MAGIC, .seq = fs.seq, .pid = (int32_t)sv->pid };
	if (send_msg(fs.fd, &req, &sv->gen_fd, sv->gen_fd >= 0 ? 1 : 0) < 0) {
		lose(sv, "cannot send to the fork server", false);
		return 0;
	}
	struct fs_msg m;
	int fds[FS_MAX_FDS], nfds = 0;
	if (!await_answer(sv, req.seq, mc_now_ms() + FS_REPLY_MS, &m, fds, &nfds, true))
		return 0;
	if (m.err != 0 || nfds != 2 || m.pid <= 0) {
		int e = m.err != 0 ? m.err : EPROTO;
		disown(fds, nfds);
		if (m.err == 0) {
			lose(sv, "the fork server's answer holds no worker", true);
			return 0;
		}
		errno = e;
		return -1;
	}
	fs.served = true;
	*pid = (pid_t)m.pid;
	*sock = fds[0];
	*pidfd = fds[1];
	return 1;
}

void mc_fs_on_exit(struct mc_sv *sv)
{
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (fs.pidfd < 0 ||
	    waitid((idtype_t)P_PIDFD, (id_t)fs.pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	char how[96];
	if (si.si_code == CLD_EXITED)
		snprintf(how, sizeof how, "exited with status %d", si.si_status);
	else
		snprintf(how, sizeof how, "killed by signal %d (%s)", si.si_status,
			 strsignal(si.si_status));
	mc_log(sv->shutting_down ? MC_LOG_INFO : MC_LOG_WARN, "fork server exited", "how", how,
	       "forkserver_pid", MC_LOG_NUM(fs.pid), NULL);
	drain();
	close_ours(sv);
	schedule_restart(sv);
}

void mc_fs_stop(struct mc_sv *sv)
{
	/* Our end closed, it exits by itself (and, under the sanitizers, runs
	 * its leak check); SIGKILL if it lingers (stopped, say). */
	if (fs.fd >= 0)
		close(fs.fd);
	fs.fd = -1;
	if (fs.pidfd >= 0) {
		struct pollfd p = { .fd = fs.pidfd, .events = POLLIN };
		while (poll(&p, 1, FS_STOP_MS) < 0 && errno == EINTR)
			;
		kill_reap(fs.pidfd);
	}
	close_ours(sv);
}
