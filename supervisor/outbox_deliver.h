/* Delivery of a workspace's outbox by the supervisor's cleanup helpers:
 * <state_dir>/outbox/<workspace_id>/<task_id>.json, each holding one
 * terminal report the worker wrote before sending it
 * ({"op":"complete"|"fail"|"cancel-ack","task_id","runtime_id","body",...},
 * body the exact JSON of the request): the format of worker/outbox.h,
 * whose reader this uses (a corrupt file is set aside there, as .bad).
 *
 * Runs in a forked helper with blocking calls (never in the supervisor's
 * loop, except mc_outbox_pending, which only lists a directory).
 *
 * Error convention: counts, never -1; what failed is logged. */
#ifndef MC_SV_OUTBOX_DELIVER_H
#define MC_SV_OUTBOX_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

struct mc_api;

/* Most files one helper run delivers; the rest waits for the retry. */
#define MC_OUTBOX_DELIVER_MAX 64

/* Report files waiting in ws's outbox (at most max counted). */
size_t mc_outbox_pending(const char *state_dir, const char *ws, size_t max);

struct mc_outbox_result {
	size_t delivered;      /* 2xx: removed */
	size_t refused;        /* permanent 4xx: logged and removed */
	size_t kept;           /* transient error (or unreadable for now): kept */
};

/* POSTs each report to /api/daemon/tasks/{id}/<op>, oldest first, at most
 * MC_OUTBOX_DELIVER_MAX. */
void mc_outbox_deliver(struct mc_api *api, const char *state_dir, const char *ws,
		       struct mc_outbox_result *res);

/* The names of the workspace directories under <state_dir>/outbox that
 * hold at least one report (cb for each; a non-UUID name is skipped). */
void mc_outbox_foreach_ws(const char *state_dir, void (*cb)(const char *ws, void *arg),
			  void *arg);

#endif
