/* A task's directories (reference/multica-task-execution.md steps 6, 11.1
 * and 17):
 *
 *   <root>/<workspace_id>/<task key>/      the task dir (env root), 0700
 *     .managed_env.json                    who it belongs to (reuse check)
 *     .gc_meta.json                        written when the task ends
 *     workdir/                             the agent's cwd
 *       CLAUDE.md | AGENTS.md              brief, inside a marker block
 *       .multica/daemon_task_context.json  who it belongs to (reuse check)
 *     output/  logs/
 *     tmp/                                 TMPDIR/TMP/TEMP (0700; goes with the task dir)
 *     multica-config/                      MULTICA_TASK_CONFIG_ROOT
 *     codex-home/                          CODEX_HOME, codex only
 *
 * With an agent group (issue 11, req.shared): root 0711 (agents pass,
 * never list), <ws> and everything of the task 02770 owned by the daemon
 * with the workspace's group (setgid: what is created inside inherits it),
 * the files 0640 (the brief 0660); tmp/ and codex-home/ are not made here
 * but by the agent's own child (agent_proc.h), so they are the agent's.
 *
 * Everything below root is created and opened without following a
 * symlink, so nothing of a task lands outside root.
 *
 * Error convention: 0, or -1 with errno and a reason in err. */
#ifndef MC_WORKER_WORKDIR_H
#define MC_WORKER_WORKDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/task.h"

#define MC_WORKDIR_MODE      0700
#define MC_WORKDIR_ROOT_SHARED 0711   /* with an agent group */
#define MC_WORKDIR_SHARED    02770
#define MC_WORKDIR_SHARED_FILE 0660
#define MC_WORKDIR_MARKER_SHARED 0640
#define MC_WORKDIR_BRIEF_MAX (1u << 20)   /* an existing brief file read back */
#define MC_WORKDIR_BEGIN     "<!-- multicad:begin - managed by multicad, rewritten for each task -->"
#define MC_WORKDIR_END       "<!-- multicad:end -->"

struct mc_workdir {
	char task_dir[PATH_MAX];      /* realpath(root)/<ws>/<name> */
	char name[64];                /* the task dir's name: the key of the task that made it */
	char workdir[PATH_MAX];
	char output[PATH_MAX];
	char logs[PATH_MAX];
	char tmp[PATH_MAX];
	char config_root[PATH_MAX];
	char codex_home[PATH_MAX];    /* "" unless provider is codex */
	bool reused;                  /* prior_work_dir was taken over */
	bool shared;                  /* made for an agent group (req.shared) */
};

struct mc_workdir_req {
	const char *root;             /* workspaces_root */
	const struct mc_task *task;
	const char *provider;         /* "claude", "codex", ... */
	const char *const *busy;      /* task dir names in use by running tasks */
	size_t n_busy;
	bool shared;                  /* agents of another uid: the group below, 02770 */
	unsigned gid;                 /* the workspace's agent group, when shared */
};

/* Prepares the task's directories: the prior task's work dir when
 * mc_workdir_reusable says so and it is not busy, else a fresh one at the
 * task's key (an existing one of the same task is kept). Writes both
 * ownership markers. Fills wd. */
int mc_workdir_prepare(const struct mc_workdir_req *req, struct mc_workdir *wd, char *err,
		       size_t err_size);

/* True when t's prior_work_dir may be reused (step 11.1): an issue or chat
 * task; prior_work_dir resolves to <realpath(root)>/<ws>/<x>/workdir with
 * no symlink below root; both markers name t's workspace, agent and
 * issue (or chat session). name (may be NULL, 64 bytes) gets <x>. */
bool mc_workdir_reusable(const char *root, const struct mc_task *t, char *name);

/* "CLAUDE.md" for claude, "AGENTS.md" for every other provider. */
const char *mc_workdir_brief_name(const char *provider);
/* The brief block (markers included) for t; malloc'd, caller frees; NULL
 * on ENOMEM. */
char *mc_workdir_brief_text(const struct mc_task *t, const char *provider);
/* Writes the brief into wd->workdir: an existing file keeps everything
 * outside our marker block, whose content is replaced (never duplicated). */
int mc_workdir_write_brief(const struct mc_workdir *wd, const struct mc_task *t,
			   const char *provider, char *err, size_t err_size);

/* Writes .gc_meta.json (the task ended at wall-clock ms ended_ms) into the
 * task dir: from then on mc_workdir_gc may remove it after the retention. */
int mc_workdir_finish(const struct mc_workdir *wd, const struct mc_task *t, int64_t ended_ms,
		      char *err, size_t err_size);

/* Bounded retention sweep of <root>/<workspace_id>/: per call it looks at
 * no more than MC_WORKDIR_GC_SCAN task dirs (resuming where *cursor says;
 * keep it between calls, start at 0) and unlinks no more than
 * MC_WORKDIR_GC_UNLINKS entries, so it never holds a loop long. A task dir
 * goes when it is not active and its .gc_meta.json (without one: the dir's
 * own mtime) is older than retention_ms at now_ms (wall clock). Expired
 * dirs are first renamed ".gc-<name>" (gone from the namespace at once),
 * then removed, possibly over several calls; never through a symlink.
 * Returns the number of task dirs expired in this call, or -1. */
#define MC_WORKDIR_GC_SCAN    64
#define MC_WORKDIR_GC_UNLINKS 4096
int mc_workdir_gc(const char *root, const char *workspace_id, int64_t retention_ms,
		  int64_t now_ms, const char *const *active, size_t n_active, size_t *cursor);
/* The same sweep without the removal: expired dirs are only renamed
 * ".gc-<name>", for a remover running as the agent (rmtree.h) whose files
 * they hold. Returns the number expired, or -1. */
int mc_workdir_gc_expire(const char *root, const char *workspace_id, int64_t retention_ms,
			 int64_t now_ms, const char *const *active, size_t n_active,
			 size_t *cursor);
/* The name of the agents' HOME below <root>/<ws> with agent_uid_range:
 * never a task dir (the sweep leaves it). */
#define MC_WORKDIR_HOME_NAME "home"

#endif
