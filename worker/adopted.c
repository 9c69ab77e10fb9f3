/* What an agent leaves behind. The worker is a child subreaper: a
 * process that escaped its agent's process group (claude runs its Bash
 * tool in a session of its own) and outlived its parent becomes the
 * worker's child. A sweep, every second and whenever a task ends, reaps
 * such children that died, and kills the ones whose task (named by the
 * MULTICA_TASK_ID they inherited) no longer runs here: no agent outlives
 * its task.
 *
 * The worker's own children are its agents' leaders (known by pid), its
 * version probes and the remover of expired task dirs (agent_id.h):
 * none is touched.
 *
 * Under isolation an agent's process is of another uid, whose environ the
 * worker cannot read (EACCES without CAP_SYS_PTRACE): such a process is
 * left alone while any task runs here, and killed once none does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bsd/string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/task_int.h"
#include "worker/worker_int.h"

#define SWEEP_EVERY_MS 1000
#define CHILDREN_MAX 4096

void mc_adopted_enable(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		mc_log(MC_LOG_WARN, "cannot become a child subreaper: an agent's escaped processes "
		       "are left to init", "error", strerror(errno), NULL);
}

/* State and process group of pid, from /proc/pid/stat. */
static bool proc_stat(pid_t pid, char *state, pid_t *pgid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	int ppid, pg;
	if (p == NULL || sscanf(p + 1, " %c %d %d", state, &ppid, &pg) != 3)
		return false;
	*pgid = pg;
	return true;
}

/* The MULTICA_TASK_ID the process inherited, into id (40 bytes).
 * *unreadable: its environ could not be opened (another uid's). */
static bool task_of(pid_t pid, char id[40], bool *unreadable)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*unreadable = fd < 0 && (errno == EACCES || errno == EPERM);
	if (fd < 0)
		return false;
	static char buf[64 * 1024];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	static const char key[] = "MULTICA_TASK_ID=";
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (strncmp(p, key, sizeof key - 1) == 0) {
			strlcpy(id, p + sizeof key - 1, 40);
			return true;
		}
	return false;
}

static bool is_leader(const struct mc_worker *w, pid_t pid)
{
	for (const struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		if (mc_xt_agent_pid(x) == pid)
			return true;
	return false;
}

static bool task_running(const struct mc_worker *w, const char *id)
{
	for (const struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		if (strcmp(x->t.id, id) == 0 && mc_xt_agent_pid(x) > 0)
			return true;
	return false;
}

static bool any_agent(const struct mc_worker *w)
{
	for (const struct mc_xtask *x = w->exec.head; x != NULL; x = x->next)
		if (mc_xt_agent_pid(x) > 0)
			return true;
	return false;
}

static size_t children(pid_t *out, size_t max)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
	FILE *f = fopen(path, "re");
	size_t n = 0;
	int pid;
	while (f != NULL && n < max && fscanf(f, "%d", &pid) == 1)
		out[n++] = pid;
	if (f != NULL)
		fclose(f);
	return n;
}

static void handle_child(struct mc_worker *w, pid_t pid, pid_t own_pgid)
{
	char st;
	pid_t pgid;
	if (is_leader(w, pid) || mc_agent_id_helper(w, pid) || !proc_stat(pid, &st, &pgid) ||
	    pgid == own_pgid)
		return;
	if (st == 'Z') {
		waitpid(pid, NULL, WNOHANG);
		return;
	}
	char id[40];
	bool unreadable;
	bool known = task_of(pid, id, &unreadable);
	if (known && task_running(w, id))
		return;
	if (!known && unreadable && any_agent(w))
		return; /* an agent's, of a task we cannot name: kept while agents run */
	mc_log(MC_LOG_INFO, "killing what an ended task's agent left running",
	       "task", known ? id : "?", "pid", MC_LOG_NUM(pid), NULL);
	kill(-pgid, SIGKILL);
	kill(pid, SIGKILL);
}

void mc_adopted_sweep(struct mc_worker *w, mc_ms_t now, bool force)
{
	if (!force && now < w->exec.next_sweep_at)
		return;
	w->exec.next_sweep_at = now + SWEEP_EVERY_MS;
	static pid_t pids[CHILDREN_MAX];
	size_t n = children(pids, CHILDREN_MAX);
	pid_t own = getpgrp();
	for (size_t i = 0; i < n; i++)
		handle_child(w, pids[i], own);
}
