/* The worker's task executor: runs the tasks the supervisor routes to this
 * workspace (reference/multica-task-execution.md section 1), on the
 * worker's event loop. */
#ifndef MC_WORKER_TASK_EXEC_H
#define MC_WORKER_TASK_EXEC_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/clock.h"
#include "common/secret.h"

struct mc_worker;

/* A TASK frame arrived: takes ownership of task and token (both freed by
 * the executor, also on refusal). The executor reports every step with
 * TASK_STATE frames, "ended" last. */
void mc_exec_accept(struct mc_worker *w, int slot, cJSON *task, struct mc_secret *token);
/* Loop integration: timers, pipes, and the fds to poll. */
void mc_exec_tick(struct mc_worker *w, mc_ms_t now);
mc_ms_t mc_exec_next_deadline(const struct mc_worker *w);
unsigned mc_exec_waitfds(struct mc_worker *w, struct curl_waitfd *fds, unsigned max);
/* Right after the poll: the revents of the fds (the slice that
 * mc_exec_waitfds filled, from its start). */
void mc_exec_set_ready(struct mc_worker *w, const struct curl_waitfd *fds);
void mc_exec_service(struct mc_worker *w);
/* Stop (STOP, SIGTERM, parent gone): every agent is stopped and its task
 * failed with runtime_offline; true once nothing is left to do, so the
 * final DEREG may go. */
void mc_exec_stop(struct mc_worker *w);
bool mc_exec_idle(const struct mc_worker *w);
/* A STOP while tasks run: they are ended first (mc_exec_stop); true when
 * the registrar must wait for the executor to raise EV_STOP again. */
bool mc_exec_defer_stop(struct mc_worker *w);
/* A REG answer was applied: what each runtime launches is taken from the
 * payload it was registered with. */
void mc_exec_registered(struct mc_worker *w);
size_t mc_exec_running(const struct mc_worker *w);
/* At start: deliver what a previous life left in the outbox first. */
void mc_exec_start(struct mc_worker *w);
void mc_exec_free(struct mc_worker *w);

#endif
