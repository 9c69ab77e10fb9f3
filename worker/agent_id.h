/* The worker's side of the agents' identity (issue 11, common/identity.h):
 * who its agents and probes run as, their HOME and USER, the operator's
 * agent_env_file, and the removal of expired task dirs as that identity.
 * Set up once at CONFIG (mc_agent_id_setup); in the fallback (no
 * agent_switch) only the env file is used and everything else stays the
 * daemon's, as before. */
#ifndef MC_WORKER_AGENT_ID_H
#define MC_WORKER_AGENT_ID_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/identity.h"
#include "worker/envfile.h"

struct mc_worker;

struct mc_agent_id {
	bool sw;                       /* cfg.agent_switch */
	struct mc_identity as;         /* sw: the agents' */
	char home[PATH_MAX];           /* the agents' HOME; "" (fallback): the daemon's */
	bool home_made;                /* agent_uid_range: <root>/<ws>/home, made by the agent */
	char user[64];                 /* USER and LOGNAME; "" (fallback): the daemon's */
	struct mc_envfile envfile;
	pid_t gc_pid;                  /* the remover of expired task dirs, 0: none */
	bool gc_failed;                /* it left something: the daemon tries too */
};

/* At CONFIG: fills w->exec.aid from w->cfg; with agent_switch adds the
 * agents' group to the worker's own supplementary groups (so it may give
 * its workspace's directories that group) and makes the version probes run
 * as the agents (vprobe.h). Logs what fails; never fatal (tasks then fail
 * with the named reason). */
void mc_agent_id_setup(struct mc_worker *w);
/* Kills a remover still running, frees the env file. */
void mc_agent_id_free(struct mc_worker *w);

/* NULL in the fallback: what agent_proc's spec.as takes. */
const struct mc_identity *mc_agent_id_as(const struct mc_worker *w);

/* The agents' HOME for a task whose dir is task_dir (<rroot>/<ws>/<name>),
 * into out; false when the daemon's own HOME is kept (fallback). */
bool mc_agent_id_home(const struct mc_worker *w, const char *task_dir, char *out, size_t size);

/* Once per loop turn: reaps the remover; once per GC round (due): expires
 * task dirs past the retention and, under isolation, starts the remover
 * as the agent (not waited for). */
void mc_agent_id_gc(struct mc_worker *w, bool due, const char *const *active, size_t n_active);

/* True for a child of the worker that is one of its helpers (the remover,
 * a version probe): the adopted-children sweep leaves it alone. */
bool mc_agent_id_helper(const struct mc_worker *w, pid_t pid);

#endif
