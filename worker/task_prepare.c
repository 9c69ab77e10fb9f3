/* The pre-flight and the work dir of a task (steps 4-6): the runtime is
 * still hosted here and has a backend and an executable, the task is who
 * it says it is with a task-scoped token, and its directories and brief
 * exist before /start is sent. A failure fails the task itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/log.h"
#include "worker/backend.h"
#include "worker/task_int.h"
#include "worker/workdir.h"
#include "worker/worker_int.h"

static int refuse(struct mc_xtask *x, const char *error, const char *reason)
{
	mc_xt_fail(x, error, reason);
	return -1;
}

static int take_launch(struct mc_xtask *x)
{
	const struct mc_launch *l = mc_launch_find(&x->w->exec.launch, x->t.runtime_id);
	if (l == NULL || mc_tracked_find(&x->w->tracked, x->t.runtime_id) < 0)
		return refuse(x, "runtime went offline before the task started", "runtime_offline");
	char e[256];
	if ((x->family = strdup(l->family)) == NULL)
		return refuse(x, "out of memory", NULL);
	if ((x->ops = mc_backend_find(l->family)) == NULL) {
		snprintf(e, sizeof e, "no agent backend for provider \"%s\" in multicad", l->family);
		return refuse(x, e, "agent_error.runtime_version_unsupported");
	}
	if (l->path == NULL) {
		snprintf(e, sizeof e, "no agent configured for provider \"%s\": executable not found",
			 l->family);
		return refuse(x, e, "agent_error.runtime_missing_executable");
	}
	if ((x->exe = strdup(l->path)) == NULL)
		return refuse(x, "out of memory", NULL);
	if (l->n_args > 0) {
		if ((x->prefix = calloc(l->n_args, sizeof *x->prefix)) == NULL)
			return refuse(x, "out of memory", NULL);
		for (size_t i = 0; i < l->n_args; i++, x->n_prefix++)
			if ((x->prefix[i] = strdup(l->args[i])) == NULL)
				return refuse(x, "out of memory", NULL);
	}
	return 0;
}

static int check_identity(struct mc_xtask *x)
{
	if (strcmp(x->t.workspace_id, x->w->cfg.workspace_id) != 0)
		return refuse(x, "task belongs to another workspace", "invalid_task_identity");
	if (x->token == NULL)
		return refuse(x, "server did not provide task-scoped auth token",
			      "invalid_task_identity");
	if (!mc_task_token_scoped(x->token))
		return refuse(x, "server provided a non-task-scoped auth token",
			      "invalid_task_identity");
	return 0;
}

/* The names of the task dirs in use, so a reuse never takes a live one. */
static const char **busy_names(struct mc_xtask *x, size_t *n)
{
	const char **v = calloc(x->w->exec.n + 1, sizeof *v);
	*n = 0;
	for (struct mc_xtask *o = x->w->exec.head; v != NULL && o != NULL; o = o->next)
		if (o != x && o->task_name != NULL)
			v[(*n)++] = o->task_name;
	return v;
}

static int make_dirs(struct mc_xtask *x)
{
	struct mc_workdir wd;
	char err[512];
	size_t n_busy;
	const char **busy = busy_names(x, &n_busy);
	const struct mc_identity *as = mc_agent_id_as(x->w);
	struct mc_workdir_req req = { .root = x->w->cfg.workspaces_root, .task = &x->t,
				      .provider = x->family, .busy = busy, .n_busy = n_busy,
				      .shared = as != NULL, .gid = as != NULL ? as->gid : 0 };
	int rc = mc_workdir_prepare(&req, &wd, err, sizeof err);
	free(busy);
	if (rc == 0)
		rc = mc_workdir_write_brief(&wd, &x->t, x->family, err, sizeof err);
	if (rc < 0) {
		char e[600];
		snprintf(e, sizeof e, "preparing the work dir failed: %s", err);
		return refuse(x, e, NULL);
	}
	x->task_dir = strdup(wd.task_dir);
	x->task_name = strdup(wd.name);
	x->work_dir = strdup(wd.workdir);
	x->tmp_dir = strdup(wd.tmp);
	x->config_root = strdup(wd.config_root);
	x->codex_home = wd.codex_home[0] ? strdup(wd.codex_home) : NULL;
	if (x->task_dir == NULL || x->task_name == NULL || x->work_dir == NULL ||
	    x->tmp_dir == NULL || x->config_root == NULL)
		return refuse(x, "out of memory", NULL);
	/* Resume only in the work dir the session lived in (step 11.2). */
	if (x->t.prior_session_id != NULL && x->t.prior_session_id[0]) {
		if (wd.reused)
			x->resume_id = strdup(x->t.prior_session_id);
		else
			x->resume_dropped = true;
	}
	return 0;
}

#define SEED_MAX (1u << 20)

/* Reads at most SEED_MAX bytes of path into a malloc'd buffer; NULL when
 * absent or unreadable. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = malloc(SEED_MAX + 1);
	size_t n = 0;
	ssize_t r;
	while (buf != NULL && n < SEED_MAX &&
	       ((r = read(fd, buf + n, SEED_MAX - n)) > 0 || (r < 0 && errno == EINTR)))
		if (r > 0)
			n += (size_t)r;
	close(fd);
	if (buf != NULL)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static int put(const char *dir, const char *name, const char *head, const char *data, size_t n)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int rc = 0;
	if (head != NULL && write(fd, head, strlen(head)) != (ssize_t)strlen(head))
		rc = -1;
	if (rc == 0 && n > 0 && write(fd, data, n) != (ssize_t)n)
		rc = -1;
	close(fd);
	return rc;
}

/* A codex task has a CODEX_HOME of its own (its sessions stay with the
 * task): seeded with the operator's config.toml and auth.json (from the
 * daemon's CODEX_HOME, else ~/.codex), so it reaches the same model
 * provider, and with the sandbox multica's daemon uses when none is set:
 * the agent works in its own work dir, unattended. */
static void seed_codex_home(struct mc_xtask *x)
{
	char src[4096];
	const char *ch = getenv("CODEX_HOME"), *home = getenv("HOME");
	if (ch != NULL && ch[0])
		strlcpy(src, ch, sizeof src);
	else if (home != NULL && home[0])
		snprintf(src, sizeof src, "%s/.codex", home);
	else
		src[0] = '\0';
	static const char *const files[] = { "config.toml", "auth.json" };
	for (size_t i = 0; i < 2; i++) {
		char path[4200];
		size_t n = 0;
		snprintf(path, sizeof path, "%s/%s", src, files[i]);
		char *data = src[0] ? slurp(path, &n) : NULL;
		const char *head = NULL;
		if (i == 0 && (data == NULL || strstr(data, "sandbox_mode") == NULL))
			head = "sandbox_mode = \"danger-full-access\"\n";
		if ((data != NULL || head != NULL) && put(x->codex_home, files[i], head, data, n) < 0)
			mc_log(MC_LOG_WARN, "cannot seed the task's CODEX_HOME", "task", x->t.id,
			       "file", files[i], "error", strerror(errno), NULL);
		if (data != NULL)
			explicit_bzero(data, n); /* auth.json holds a key */
		free(data);
	}
}

int mc_xt_prepare(struct mc_xtask *x)
{
	mc_xt_report_state(x, MC_TS_PREPARING);
	if (take_launch(x) < 0 || check_identity(x) < 0 || make_dirs(x) < 0)
		return -1;
	/* Under isolation the agent's own child makes and seeds it (from the
	 * agent's HOME: task_agent.c), so the daemon's is never copied. */
	if (x->codex_home != NULL && mc_agent_id_as(x->w) == NULL)
		seed_codex_home(x);
	return 0;
}
