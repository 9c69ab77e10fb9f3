/* The link's state, shared by its modules (link.c: set-up and loop;
 * link_peer.c: the supervisor socket; claim.c: the claim cycle; fails.c:
 * failing tasks at the server; runtimes.c: the runtime ids it claims for).
 * Single-threaded. */
#ifndef MC_LINK_INT_H
#define MC_LINK_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "common/api.h"
#include "common/api_task.h"
#include "common/clock.h"
#include "ipc/frame.h"
#include "ipc/messages.h"

struct mc_ws;

#define MC_LINK_IPC_FD 3
#define MC_LINK_WANT MC_CLAIM_MAX_TASKS     /* SLOTS_REQ: a claim's worth */
#define MC_LINK_STOP_BUDGET_MS 5000         /* TASK_FAIL calls at a stop, at most */

enum mc_link_peer {
	LP_WAIT_CONFIG,
	LP_WAIT_TOKEN,
	LP_READY,
};

/* The claim cycle (claim.c has the state x event table). */
enum mc_claim_state {
	CS_IDLE,          /* waiting for a WAKE or the poll interval */
	CS_WANT_SLOTS,    /* SLOTS_REQ sent */
	CS_CLAIMING,      /* a claim request in flight (batch, or one legacy call) */
	CS_STOPPED,       /* stopping: no more claims */
	CS_COUNT,
};

enum mc_claim_event {
	CE_WAKE,          /* WAKE from the supervisor, or the runtime set changed */
	CE_TIMER,         /* the poll interval passed */
	CE_SLOTS,         /* SLOTS arrived (grant in l->grant) */
	CE_ANSWER,        /* the claim request finished (l->answer) */
	CE_STOP,
	CE_COUNT,
};

/* One workspace's claimable runtime ids (RUNTIMES). */
struct mc_link_ws {
	char ws[40];
	size_t n;
	char (*ids)[40];                /* heap */
};

/* A task to fail at the server (TASK_FAIL, or one the link could not hand
 * over), retried 4/8/16/32/64 s on transient errors. */
struct mc_link_fail {
	char task_id[40];
	char *body;                     /* {"error","failure_reason"}: heap */
	unsigned attempt;               /* calls made */
	mc_ms_t retry_at;               /* 0: not waiting */
	struct mc_call *call;           /* in flight, or NULL */
	struct mc_link_fail *next;
};

struct mc_link {
	/* peer */
	int fd;
	enum mc_link_peer peer;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	bool peer_gone;
	struct mc_worker_config cfg;

	/* server */
	struct mc_api *api;
	CURLM *multi;

	/* what it claims for */
	struct mc_link_ws *ws;
	size_t n_ws, cap_ws;

	/* the claim cycle */
	enum mc_claim_state cs;
	bool wake_pending;              /* a WAKE came while a cycle ran */
	mc_ms_t next_claim_at;          /* IDLE: the poll */
	int grant;                      /* SLOTS of this cycle */
	bool batch_unsupported;         /* a 404 on the batch route: legacy until restart */
	struct mc_call *claim_call;
	struct mc_claimed got;          /* this cycle's tasks so far */
	char (*legacy_ids)[40];         /* legacy: the runtime ids of this cycle */
	size_t n_legacy, legacy_next;
	bool answer_failed;             /* the cycle's claim failed (CE_ANSWER) */

	/* failing tasks at the server */
	struct mc_link_fail *fails;

	/* the websocket push channel (ws.h): heap, NULL when it could not be made
	 * ("ws" above is the workspaces') */
	struct mc_ws *push;
	mc_ms_t idle_since;             /* the claim cycle went IDLE: the poll counts from here */

	/* stop */
	bool stop_requested;
	mc_ms_t stop_deadline;
	bool exit_now;
	int exit_code;
	int sigfd;
};

/* link.c */
int mc_link_start_call(struct mc_link *l, struct mc_call *call,
		       void (*done)(struct mc_call *, void *));

/* link_peer.c */
void mc_link_peer_on_readable(struct mc_link *l);
/* Flushes what is queued; a write error marks the peer gone (a stop). */
void mc_link_peer_flush(struct mc_link *l);
/* Queues a frame (rc of mc_ipc_send_*): a failure is logged. */
void mc_link_queued(struct mc_link *l, int rc, const char *what);
void mc_link_stop(struct mc_link *l, const char *why);

/* claim.c */
void mc_claim_event(struct mc_link *l, enum mc_claim_event ev);
void mc_claim_on_slots(struct mc_link *l, int grant);
void mc_claim_timers(struct mc_link *l, mc_ms_t now);
mc_ms_t mc_claim_next_deadline(const struct mc_link *l);
/* The socket went down: the stretched poll is due no later than one normal
 * interval after the cycle went IDLE. */
void mc_claim_unstretch(struct mc_link *l);
void mc_claim_free(struct mc_link *l);

/* fails.c */
/* Fails task_id at the server with reason (a multica failure_reason) and
 * error text; the call and its retries run in the background. */
void mc_fails_add(struct mc_link *l, const char *task_id, const char *reason, const char *error);
void mc_fails_timers(struct mc_link *l, mc_ms_t now);
mc_ms_t mc_fails_next_deadline(const struct mc_link *l);
/* Stopping: every waiting retry goes now (the budget is short). */
void mc_fails_hurry(struct mc_link *l);
bool mc_fails_idle(const struct mc_link *l);
void mc_fails_free(struct mc_link *l);

/* runtimes.c */
/* Replaces ws's ids (n 0: forgets ws). 1: the set changed, 0: same, -1. */
int mc_link_set_runtimes(struct mc_link *l, const char *ws, size_t n, char (*ids)[40]);
/* Every id, workspace by workspace (allocated; caller frees); *n 0: none. */
char (*mc_link_all_runtimes(const struct mc_link *l, size_t *n))[40];
size_t mc_link_n_runtimes(const struct mc_link *l);
void mc_link_runtimes_free(struct mc_link *l);

#endif
