/* The worker's agent identity: groups, HOME, USER, env file, probes, GC. */
#include "worker/agent_id.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/log.h"
#include "worker/agent_env.h"
#include "worker/rmtree.h"
#include "worker/safefs.h"
#include "worker/task_int.h"
#include "worker/vprobe.h"
#include "worker/workdir.h"
#include "worker/worker_int.h"

extern char **environ;

#define GROUPS_MAX 256
#define GC_PREFIX ".gc-"

/* The worker joins the agents' group: it creates its workspace's
 * directories with that group (fchown to a group of ours needs no
 * CAP_CHOWN) and removes what agents leave group-writable. */
static void join_group(gid_t gid)
{
	gid_t g[GROUPS_MAX + 1];
	int n = getgroups(GROUPS_MAX, g);
	if (n < 0) {
		mc_log(MC_LOG_WARN, "cannot read the worker's groups", "error", strerror(errno), NULL);
		return;
	}
	for (int i = 0; i < n; i++)
		if (g[i] == gid)
			return;
	g[n++] = gid;
	if (setgroups((size_t)n, g) < 0)
		mc_log(MC_LOG_ERROR, "cannot join the agents' group: their directories cannot be "
		       "given it", "gid", MC_LOG_NUM(gid), "error", strerror(errno), NULL);
}

static void fill_user(struct mc_agent_id *a)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(a->as.uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL &&
	    strlen(pw.pw_name) < sizeof a->user)
		strlcpy(a->user, pw.pw_name, sizeof a->user);
	else
		snprintf(a->user, sizeof a->user, "multicad-agent-%u", (unsigned)a->as.uid);
}

/* The probes' environment: the agents' base (vprobe.h runas.env). */
static char **probe_env(void *ctx)
{
	struct mc_worker *w = ctx;
	struct mc_agent_id *a = &w->exec.aid;
	mc_envfile_refresh(&a->envfile);
	return mc_agent_env_base_build(environ, mc_envfile_vars(&a->envfile),
				       a->home[0] ? a->home : NULL, a->user[0] ? a->user : NULL,
				       w->token);
}

void mc_agent_id_setup(struct mc_worker *w)
{
	struct mc_agent_id *a = &w->exec.aid;
	const struct mc_worker_config *c = &w->cfg;
	memset(a, 0, sizeof *a);
	mc_envfile_init(&a->envfile, c->agent_env_file);
	if (c->agent_env_file[0])
		mc_envfile_refresh(&a->envfile);
	if (!c->agent_switch)
		return;
	a->sw = true;
	a->as = (struct mc_identity){ .sw = true, .uid = (uid_t)c->agent_uid,
				      .gid = (gid_t)c->agent_gid,
				      .extra_gid = c->agent_extra_gid < 0 ? (gid_t)-1
									  : (gid_t)c->agent_extra_gid };
	join_group(a->as.gid);
	fill_user(a);
	if (c->agent_home[0]) {
		strlcpy(a->home, c->agent_home, sizeof a->home);
	} else {
		a->home_made = true;
		snprintf(a->home, sizeof a->home, "%s/%s/" MC_WORKDIR_HOME_NAME,
			 c->workspaces_root[0] ? c->workspaces_root : "/nonexistent", c->workspace_id);
	}
	char who[128];
	mc_identity_describe(&a->as, who, sizeof who);
	mc_log(MC_LOG_INFO, "agents and probes run as", "identity", who, "user", a->user,
	       "home", a->home, NULL);
	if (w->vprobes != NULL) {
		struct mc_vprobe_runas r = { .as = &a->as, .env = probe_env, .ctx = w };
		mc_vprobe_set_runas(w->vprobes, &r);
	}
}

void mc_agent_id_free(struct mc_worker *w)
{
	struct mc_agent_id *a = &w->exec.aid;
	if (a->gc_pid > 0) {
		kill(a->gc_pid, SIGKILL);
		while (waitpid(a->gc_pid, NULL, 0) < 0 && errno == EINTR)
			;
		a->gc_pid = 0;
	}
	mc_envfile_clear(&a->envfile);
}

const struct mc_identity *mc_agent_id_as(const struct mc_worker *w)
{
	return w->exec.aid.sw ? &w->exec.aid.as : NULL;
}

bool mc_agent_id_home(const struct mc_worker *w, const char *task_dir, char *out, size_t size)
{
	const struct mc_agent_id *a = &w->exec.aid;
	if (!a->sw)
		return false;
	if (!a->home_made || task_dir == NULL) {
		strlcpy(out, a->home, size);
		return true;
	}
	/* beside the task dir: <rroot>/<ws>/home, the path the work dir has */
	const char *slash = strrchr(task_dir, '/');
	size_t n = slash != NULL ? (size_t)(slash - task_dir) : 0;
	if ((size_t)snprintf(out, size, "%.*s/" MC_WORKDIR_HOME_NAME, (int)n, task_dir) >= size)
		strlcpy(out, a->home, size);
	return true;
}

bool mc_agent_id_helper(const struct mc_worker *w, pid_t pid)
{
	return (w->exec.aid.gc_pid > 0 && pid == w->exec.aid.gc_pid) ||
	       (w->vprobes != NULL && mc_vprobe_owns(w->vprobes, pid));
}

static void reap_remover(struct mc_agent_id *a)
{
	if (a->gc_pid <= 0)
		return;
	int st;
	pid_t r = waitpid(a->gc_pid, &st, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return;
	a->gc_failed = r == a->gc_pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (a->gc_failed)
		mc_log(MC_LOG_INFO, "the agent could not remove all of the expired task dirs: "
		       "the worker tries too next round", "status", MC_LOG_NUM(st), NULL);
	a->gc_pid = 0;
}

/* Is there anything ".gc-*" in wsfd? */
static bool leftovers(int wsfd)
{
	DIR *d = mc_fs_opendir(wsfd);
	bool any = false;
	struct dirent *de;
	while (d != NULL && !any && (de = readdir(d)) != NULL)
		any = strncmp(de->d_name, GC_PREFIX, strlen(GC_PREFIX)) == 0;
	if (d != NULL)
		closedir(d);
	return any;
}

/* The remover: a child as the agent, never waited for here. */
static void start_remover(struct mc_worker *w)
{
	struct mc_agent_id *a = &w->exec.aid;
	int rfd = open(w->cfg.workspaces_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int wsfd = rfd < 0 ? -1 : mc_fs_subdir(rfd, w->cfg.workspace_id, false, 0, false);
	if (rfd >= 0)
		close(rfd);
	if (wsfd < 0)
		return;
	if (!leftovers(wsfd)) {
		close(wsfd);
		return;
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* async-signal-safe from here: the worker may have threads */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* nothing of the worker's stays open (its socket least of all:
		 * the supervisor must see a dead worker's EOF at once) */
		if (wsfd != 3 && dup2(wsfd, 3) < 0)
			_exit(125);
		closefrom(4);
		if (mc_identity_enter(&a->as) < 0)
			_exit(126);
		_exit(mc_rmtree_prefixed(3, GC_PREFIX) == 0 ? 0 : 1);
	}
	if (pid < 0)
		mc_log(MC_LOG_WARN, "cannot start the remover of expired task dirs",
		       "error", strerror(errno), NULL);
	else
		a->gc_pid = pid;
	close(wsfd);
}

void mc_agent_id_gc(struct mc_worker *w, bool due, const char *const *active, size_t n_active)
{
	struct mc_agent_id *a = &w->exec.aid;
	reap_remover(a);
	if (!due)
		return;
	if (!a->sw) {
		mc_workdir_gc(w->cfg.workspaces_root, w->cfg.workspace_id, w->cfg.task_retention_ms,
			      mc_wall_ms(), active, n_active, &w->exec.gc_cursor);
		return;
	}
	/* The agent removes what it made (its 0755 dirs are not ours to
	 * empty); what it could not (a dir of before the isolation, of the
	 * daemon's alone) the worker removes itself on the next round. */
	if (a->gc_failed && a->gc_pid == 0)
		mc_workdir_gc(w->cfg.workspaces_root, w->cfg.workspace_id, w->cfg.task_retention_ms,
			      mc_wall_ms(), active, n_active, &w->exec.gc_cursor);
	else
		mc_workdir_gc_expire(w->cfg.workspaces_root, w->cfg.workspace_id,
				     w->cfg.task_retention_ms, mc_wall_ms(), active, n_active,
				     &w->exec.gc_cursor);
	a->gc_failed = false;
	if (a->gc_pid == 0)
		start_remover(w);
}
