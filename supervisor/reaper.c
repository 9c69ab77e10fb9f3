/* The supervisor as a child subreaper (PR_SET_CHILD_SUBREAPER): whatever a
 * dead worker leaves of its agents becomes a child of the supervisor, not
 * of init, so nothing of a worker outlives it unseen.
 *
 * Two jobs:
 *  - killing: when a worker dies, every process group of its tasks (the
 *    pgid its TASK_STATE reported) gets SIGKILL at once; each group is then
 *    checked empty every REAPER_CHECK_MS (and killed again: a member may
 *    have forked in between) until kill(-pgid, 0) says ESRCH;
 *  - reaping: on SIGCHLD, every exited child that is not ours to wait for
 *    (workers, helpers, the fork server, the link: whatever the supervisor
 *    holds a pidfd of and reaps through it) is reaped with waitpid. Reaping
 *    one of those would steal its exit status from waitid(P_PIDFD).
 *
 * Children are found in /proc/self/task/<tid>/children when the kernel has
 * it (CONFIG_PROC_CHILDREN), else by a scan of /proc/<pid>/stat for our
 * pid as the parent; only zombies are candidates. Both are cheap next to
 * what a SIGCHLD means (a process ended), and only run then. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "supervisor/sv.h"

#define REAPER_CHECK_MS   100     /* a killed group is checked this often */
#define REAPER_WARN_MS    1000    /* not empty by then: say so (once) */
#define REAPER_GIVEUP_MS  30000   /* stop watching (a D-state process) */
#define REAPER_MAX_GROUPS 4096    /* watched at once; more are killed unwatched */

struct group {
	pid_t pgid;
	mc_ms_t killed_at;
	bool warned;
	char ws[MC_ID_MAX];
};

struct mc_reaper {
	struct mc_timer timer;
	struct group *v;              /* heap; n used of cap */
	size_t n, cap;
};

/* Allocates sv->reaper (freed by mc_reaper_free) and makes the supervisor a
 * subreaper. A failure to become one is logged: the rest still works, the
 * orphans then go to init. */
int mc_reaper_init(struct mc_sv *sv)
{
	sv->reaper = calloc(1, sizeof *sv->reaper);
	if (sv->reaper == NULL)
		return -1;
	mc_timer_init(&sv->reaper->timer, TIMER_REAPER, sv->reaper);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		mc_log(MC_LOG_WARN, "cannot become a child subreaper; a dead worker's agents go to "
		       "init", "error", strerror(errno), NULL);
		return -1;
	}
	return 0;
}

void mc_reaper_free(struct mc_sv *sv)
{
	if (sv->reaper == NULL)
		return;
	mc_timerq_cancel(&sv->timers, &sv->reaper->timer);
	free(sv->reaper->v);
	free(sv->reaper);
	sv->reaper = NULL;
}

/* ---- "is this pid mine" ---- */

struct pidset {
	pid_t *v;
	size_t n, cap;
	bool failed;                  /* could not tell: nothing is reaped */
};

static void pidset_add(struct pidset *s, pid_t pid)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		pid_t *nv = realloc(s->v, cap * sizeof *nv);
		if (nv == NULL) {
			s->failed = true;
			return;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = pid;
}

static bool pidset_has(const struct pidset *s, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == pid)
			return true;
	return false;
}

/* The pids of every pidfd among our fds (/proc/self/fdinfo "Pid:"): the
 * general answer for any child the supervisor reaps itself. */
static void pidfd_pids(struct pidset *out)
{
	DIR *d = opendir("/proc/self/fdinfo");
	if (d == NULL) {
		out->failed = true;
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		char buf[512];
		ssize_t r;
		do
			r = read(fd, buf, sizeof buf - 1);
		while (r < 0 && errno == EINTR);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		const char *p = strstr(buf, "\nPid:\t");
		if (p == NULL)
			continue;
		long v = strtol(p + 6, NULL, 10);
		if (v > 0)
			pidset_add(out, (pid_t)v);
	}
	closedir(d);
}

static bool known_child(struct mc_sv *sv, pid_t pid)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->pid == pid)
			return true;
	for (struct mc_helper *h = sv->helpers; h != NULL; h = h->next)
		if (!h->dead && h->pid == pid)
			return true;
	return false;
}

bool mc_reaper_pid_is_mine(struct mc_sv *sv, pid_t pid)
{
	if (known_child(sv, pid))
		return true;
	/* The fork server, the link, anything else watched by pidfd. */
	struct pidset s = { 0 };
	pidfd_pids(&s);
	bool mine = s.failed || pidset_has(&s, pid);
	free(s.v);
	return mine;
}

/* ---- finding zombie children ---- */

/* From "pid (comm) S ppid ...": the state and the parent. -1 if unreadable. */
static int read_stat(const char *path, char *state, pid_t *ppid)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char buf[512];
	ssize_t r;
	do
		r = read(fd, buf, sizeof buf - 1);
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (p == NULL || p[1] != ' ' || p[2] == '\0')
		return -1;
	*state = p[2];
	char *end;
	long v = strtol(p + 3, &end, 10);
	if (end == p + 3 || v < 0)
		return -1;
	*ppid = (pid_t)v;
	return 0;
}

static bool is_zombie_child(pid_t pid, pid_t self)
{
	char path[64], st = 0;
	pid_t pp = 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	return read_stat(path, &st, &pp) == 0 && st == 'Z' && pp == self;
}

/* Our zombie children, from /proc/self/task/<tid>/children; false when
 * the kernel has no such files. */
static bool zombies_from_children_files(pid_t self, struct pidset *out)
{
	DIR *d = opendir("/proc/self/task");
	if (d == NULL)
		return false;
	struct dirent *de;
	bool any = false;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char path[96];
		snprintf(path, sizeof path, "%.32s/children", de->d_name);
		int fd = openat(dirfd(d), path, O_RDONLY | O_CLOEXEC);
		FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (f == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		any = true;
		long v;
		while (fscanf(f, "%ld", &v) == 1)
			if (v > 0 && is_zombie_child((pid_t)v, self))
				pidset_add(out, (pid_t)v);
		fclose(f);
	}
	closedir(d);
	return any;
}

static void zombies_from_proc_scan(pid_t self, struct pidset *out)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (*end == '\0' && v > 0 && is_zombie_child((pid_t)v, self))
			pidset_add(out, (pid_t)v);
	}
	closedir(d);
}

void mc_reaper_on_sigchld(struct mc_sv *sv)
{
	pid_t self = getpid();
	struct pidset z = { 0 }, mine = { 0 };
	if (!zombies_from_children_files(self, &z))
		zombies_from_proc_scan(self, &z);
	bool scanned = false;
	for (size_t i = 0; i < z.n; i++) {
		pid_t pid = z.v[i];
		if (known_child(sv, pid))
			continue;
		if (!scanned) {
			pidfd_pids(&mine); /* once per pass, only when needed */
			scanned = true;
		}
		if (mine.failed || pidset_has(&mine, pid))
			continue;
		int status = 0;
		pid_t r;
		do
			r = waitpid(pid, &status, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r == pid)
			mc_log(MC_LOG_DEBUG, "reaped an adopted process", "pid", MC_LOG_NUM(pid), NULL);
	}
	free(z.v);
	free(mine.v);
}

/* ---- killing a dead worker's agents ---- */

static void watch_group(struct mc_sv *sv, pid_t pgid, const char *ws, mc_ms_t now)
{
	struct mc_reaper *r = sv->reaper;
	if (r == NULL || r->n >= REAPER_MAX_GROUPS)
		return;
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].pgid == pgid)
			return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct group *nv = realloc(r->v, cap * sizeof *nv);
		if (nv == NULL)
			return;
		r->v = nv;
		r->cap = cap;
	}
	struct group *g = &r->v[r->n++];
	memset(g, 0, sizeof *g);
	g->pgid = pgid;
	g->killed_at = now;
	snprintf(g->ws, sizeof g->ws, "%s", ws);
	if (!mc_timer_armed(&r->timer))
		mc_timerq_arm(&sv->timers, &r->timer, now + REAPER_CHECK_MS);
}

struct kill_ctx {
	struct mc_sv *sv;
	mc_ms_t now;
	unsigned n;
};

static void kill_task_group(struct mc_sv_task *task, void *arg)
{
	struct kill_ctx *k = arg;
	/* pgid 1 or our own group would be a disaster: only a real group. */
	if (task->pgid <= 1 || task->pgid == getpgrp())
		return;
	if (kill(-task->pgid, SIGKILL) < 0) {
		if (errno != ESRCH)
			mc_log(MC_LOG_WARN, "cannot kill a dead worker's agent group", "ws", task->ws,
			       "pgid", MC_LOG_NUM(task->pgid), "error", strerror(errno), NULL);
		return;
	}
	k->n++;
	mc_log(MC_LOG_INFO, "killed the agent of a dead worker's task", "ws", task->ws, "task",
	       task->id, "pgid", MC_LOG_NUM(task->pgid), NULL);
	watch_group(k->sv, task->pgid, task->ws, k->now);
}

void mc_reaper_kill_ws_agents(struct mc_sv *sv, const char *ws)
{
	struct kill_ctx k = { sv, mc_now_ms(), 0 };
	mc_sv_tasks_foreach_ws(&sv->tasks, ws, kill_task_group, &k);
}

/* One check of every watched group: empty ones are dropped, the rest
 * killed again. */
void mc_reaper_on_timer(struct mc_sv *sv)
{
	struct mc_reaper *r = sv->reaper;
	if (r == NULL)
		return;
	mc_reaper_on_sigchld(sv); /* the killed members are zombies of ours by now */
	mc_ms_t now = mc_now_ms();
	size_t i = 0;
	while (i < r->n) {
		struct group *g = &r->v[i];
		bool empty = kill(-g->pgid, 0) < 0 && errno == ESRCH;
		if (!empty && now - g->killed_at >= REAPER_GIVEUP_MS)
			mc_log(MC_LOG_ERROR, "an agent group survives SIGKILL; no longer watching it",
			       "ws", g->ws, "pgid", MC_LOG_NUM(g->pgid), NULL);
		if (empty || now - g->killed_at >= REAPER_GIVEUP_MS) {
			r->v[i] = r->v[--r->n];
			continue;
		}
		kill(-g->pgid, SIGKILL);
		if (!g->warned && now - g->killed_at >= REAPER_WARN_MS) {
			g->warned = true;
			mc_log(MC_LOG_WARN, "a dead worker's agent group is not empty yet", "ws", g->ws,
			       "pgid", MC_LOG_NUM(g->pgid), NULL);
		}
		i++;
	}
	if (r->n > 0)
		mc_timerq_arm(&sv->timers, &r->timer, now + REAPER_CHECK_MS);
}
