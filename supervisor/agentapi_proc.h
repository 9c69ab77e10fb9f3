/* The agent-api process (the agents' local API, agentapi/) as the
 * supervisor holds it: the listening socket bound at start, the process
 * spawned, handshaken, pinged, respawned with backoff and stopped at
 * shutdown like the link (link_proc.c), and the running tasks it is told
 * about (AGENT_TASK), sent again to a respawned process.
 *
 * Error convention: 0 / -1 with a message in err (mc_aapi_listen); the
 * rest logs and returns nothing. */
#ifndef MC_SV_AGENTAPI_PROC_H
#define MC_SV_AGENTAPI_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc/task_msgs.h"
#include "supervisor/sv.h"

struct cJSON;

/* At start, before any workspace starts: binds 127.0.0.1:<agent_api_port>
 * (close-on-exec, so no helper inherits it; forked peers close it) unless
 * it is off. -1 with "cannot listen on 127.0.0.1:P: <why> (agent_api_listen)". */
int mc_aapi_listen(struct mc_sv *sv, char *err, size_t err_size);
/* The port bound (what workers' CONFIG gives agents as MULTICA_DAEMON_PORT);
 * 0 when off. */
int mc_aapi_port(const struct mc_sv *sv);
/* Once per loop turn: spawns the process when it should run. */
void mc_aapi_tick(struct mc_sv *sv);
void mc_aapi_on_ipc(struct mc_sv *sv, uint32_t events);
void mc_aapi_on_exit(struct mc_sv *sv);
void mc_aapi_on_timer(struct mc_sv *sv);
/* Shutdown: STOP; done once it exited; kill at the stop timeout. */
void mc_aapi_stop(struct mc_sv *sv);
bool mc_aapi_done(const struct mc_sv *sv);
void mc_aapi_kill(struct mc_sv *sv);
void mc_aapi_free(struct mc_sv *sv);

/* A worker of workspace ws reported m (route.c): state running with a
 * token_hash registers the task (AGENT_TASK running); ended drops it. */
void mc_aapi_task_state(struct mc_sv *sv, const char *ws, const struct mc_task_state_msg *m);
/* ws's worker died: its tasks end (AGENT_TASK ended each). */
void mc_aapi_drop_ws(struct mc_sv *sv, const char *ws);

/* status --json: "agent_api" {"listen","pid","state","restarts",
 * "repo_cache_bytes","checkouts_running","tasks","last_error"}. */
void mc_aapi_status(struct mc_sv *sv, struct cJSON *root);

#endif
