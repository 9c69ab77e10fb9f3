/* The worker's state, shared by its modules (registrar, heartbeat, peer,
 * loop). Single-threaded: only the loop's callbacks touch it. */
#ifndef MC_WORKER_INT_H
#define MC_WORKER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "common/api.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/profile.h"
#include "common/secret.h"
#include "common/signature.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "worker/dropped.h"
#include "worker/gone_slot.h"
#include "worker/payload.h"
#include "worker/task_int.h"
#include "worker/tracked.h"
#include "worker/vprobe.h"

#define MC_WORKER_IPC_FD 3
#define MC_WORKER_HOLD_FD 4
#define MC_WORKER_STOP_BUDGET_MS 5000
#define MC_WORKER_BEAT_WAIT_MS 1500
/* The token is judged over time: give up only when every answer for at
 * least clamp(2 x heartbeat_interval, MIN, MAX) was a rejection, and at
 * least REJECTS_MIN of them (auth.c mc_worker_note_auth). */
#define MC_WORKER_AUTH_REJECTS_MIN 3
#define MC_WORKER_AUTH_WINDOW_MIN_MS 5000
#define MC_WORKER_AUTH_WINDOW_MAX_MS 60000

/* Handshake with the supervisor: HELLO sent, then CONFIG, TOKEN, PROBES. */
enum mc_peer_state {
	PEER_WAIT_CONFIG,
	PEER_WAIT_TOKEN,
	PEER_WAIT_PROBES,
	PEER_READY,
};

/* The serialized register step (multica's per-workspace register lock):
 * at most one of fetch -> probe -> register -> deregister-dropped runs. */
enum mc_reg_state {
	REG_IDLE,
	REG_FETCHING,        /* GET runtime-profiles in flight */
	REG_PROBING,         /* custom-profile version probes running */
	REG_REGISTERING,     /* POST register in flight */
	REG_DRAINING,        /* dropped ids: their beats still out, DEREG after */
	REG_DEREGISTERING,   /* POST deregister of dropped ids in flight */
	REG_STOPPING,        /* final DEREG in flight (or waiting to send it) */
	REG_DONE,            /* stopped; the loop exits */
	REG_STATE_COUNT,
};

enum mc_reg_purpose {
	PURPOSE_FIRST,       /* first registration of the worker's life */
	PURPOSE_DRIFT,       /* periodic profile check */
	PURPOSE_RECOVERY,    /* a runtime is gone on the server */
	PURPOSE_BUILTINS,    /* the supervisor's probe result changed */
	PURPOSE_COUNT,
};

enum mc_reg_event {
	EV_KICK,             /* something may be pending: start it if idle */
	EV_FETCH_DONE,
	EV_PROBES_DONE,
	EV_REG_DONE,
	EV_DEREG_DONE,
	EV_STOP,
	EV_STOP_DEADLINE,
	EV_BEATS_DONE,       /* the beats being waited for have landed */
	EV_COUNT,
};

struct mc_worker {
	/* peer */
	int fd;
	enum mc_peer_state peer;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	bool peer_gone;                 /* EOF or write error on fd 3 */
	struct mc_worker_config cfg;
	struct mc_secret *token;
	struct mc_probes builtins;

	/* server */
	struct mc_api *api;
	CURLM *multi;

	/* what we host */
	struct mc_tracked tracked;
	struct mc_signature sig;        /* of cached_profiles; unknown until a fetch works */
	struct mc_profile_list cached_profiles;
	bool cached_profiles_known;
	bool ro_on_next_reg;            /* true until the first successful REG */
	unsigned char resolution_fp[MC_PAYLOAD_FP_BYTES]; /* of the last payload sent */
	bool resolution_known;

	/* the register step */
	enum mc_reg_state reg;
	enum mc_reg_purpose purpose;
	struct mc_call *reg_call;       /* the step's request in flight */
	struct mc_profile_list fetched; /* the list this step registers */
	bool fetched_ok;
	struct mc_signature fetched_sig;
	struct mc_payload payload;
	char **ids_before;              /* recovery: tracked ids when the REG was sent */
	size_t n_ids_before;
	struct mc_dropped dropped;      /* dropped ids until a DEREG of them works */
	mc_ms_t drain_deadline;         /* DRAINING: DEREG by then, landed or not */

	/* heartbeats of dropped runtimes still on the wire (heartbeat.c) */
	struct mc_call **stray_beats;
	size_t n_stray_beats;

	/* what is pending for the register step */
	bool first_done;                /* first registration happened (or nothing to host) */
	bool drift_due;
	mc_ms_t next_drift_at;
	mc_ms_t last_check_at;          /* the poll's last tick or the last SYNC_NOW (push.c) */
	bool push_up;                   /* the host's websocket is up: the poll stretches */
	bool recovery_due;
	bool recovery_retry;            /* a recovery failed: retry when the slot allows */
	bool builtins_changed;
	mc_ms_t builtins_due_at;        /* builtins_changed: re-register from then (jitter) */
	unsigned builtins_gen;          /* bumped by every changed PROBES set */
	/* The id list of the last REPORT sent: an unchanged one is not sent
	 * again (a workspace whose profiles change many times a second would
	 * otherwise trip the supervisor's REPORT rate limit). */
	bool report_sent;
	unsigned char report_fp[16];
	unsigned payload_builtins_gen;  /* ... the one the step's payload was built from */
	struct mc_gone_slot gone;
	struct mc_backoff step_backoff; /* consecutive failed steps */
	mc_ms_t step_retry_at;          /* no new step before this */

	/* recover-orphans calls: fire and forget, cancelled on stop */
	size_t n_ro;
	struct mc_call **ro;
	bool first_ro_sent;             /* the first registration's are out */
	bool tasks_ready_sent;          /* ... and all answered: TASKS_READY sent */

	/* version probes */
	struct mc_vprobe_cache *vprobes;

	/* stop */
	bool stop_requested;
	mc_ms_t stop_deadline;
	bool stop_deregistered;
	char **final_ids;               /* in the final DEREG */
	size_t n_final_ids;
	bool waiting_beats;             /* stopping: letting in-flight beats land first */
	int exit_code;
	bool exit_now;

	/* tasks (task_exec.c) */
	struct mc_exec exec;
	bool exec_started;

	unsigned auth_rejects;          /* 401/403/"workspace not found" since the last success */
	mc_ms_t auth_first_reject_at;   /* when that streak began */
	int sigfd;
};

/* faults.c: true when the test build's fault hook `name` is configured.
 * Hooks: "exit_after_register" (die between the REG answer and the report),
 * "exit_after_register_done" (die right after the REG answer was handled),
 * "ipc_garbage", "ipc_oversize", "ipc_silent", "ipc_pong_flood" (valid PONGs
 * as fast as the socket takes them), "ipc_report_flood" (likewise REPORTs),
 * "ipc_frame_over_max" (a header one byte past MC_IPC_MAX_PAYLOAD),
 * "ipc_report_over_max" (a REPORT of MC_MAX_REPORT + 1 ids) (misbehave on
 * the first PING); "ipc_report_at_max" (once, at a PING after the first
 * REG: a valid REPORT blank-padded to exactly MC_IPC_MAX_PAYLOAD bytes).
 * Task stages (the worker dies with _exit(99), test_tasks_faults):
 * "exit_before_start" (task_fsm.c: routed and prepared, /start not sent),
 * "exit_before_spawn" (task_fsm.c: /start answered, the agent not spawned),
 * "exit_after_result" (task_fsm.c: the agent's result read and its group
 * gone, before usage, the final check and the terminal call),
 * "exit_after_outbox" (task_report.c: the report in the outbox, not sent). */
#ifdef MC_TEST_HOOKS
bool mc_worker_fault(const struct mc_worker *w, const char *name);
#else
/* Production: no hook, and no hook name left in the binary. */
#define mc_worker_fault(w, name) ((void)(w), false)
#endif

/* registrar.c */
void mc_registrar_event(struct mc_worker *w, enum mc_reg_event ev);
void mc_registrar_runtime_gone(struct mc_worker *w, const char *runtime_id, mc_ms_t entry_at);
mc_ms_t mc_registrar_next_deadline(const struct mc_worker *w);
void mc_registrar_timers(struct mc_worker *w, mc_ms_t now);
void mc_worker_fatal(struct mc_worker *w, const char *reason);

/* push.c: the push channel (PUSH_STATE, SYNC_NOW; ipc/ws_msgs.h). */
/* The poll's next drift check from now (jittered, stretched while the
 * socket is up); notes now as the last check. */
mc_ms_t mc_push_next_drift_at(struct mc_worker *w, mc_ms_t now);
/* 0, or -1 with why in err (a payload that does not parse). */
int mc_push_on_frame(struct mc_worker *w, const struct mc_ipc_frame *f, char *err,
		     size_t err_size);

/* auth.c: records an answer (any request's) for the token's judgement;
 * returns true when the worker must give up with a configuration error. */
bool mc_worker_note_auth(struct mc_worker *w, const struct mc_api_error *err);

/* orphans.c: recover-orphans for the ids the last REG answer calls for
 * (FIRST: all; RECOVERY: the new ones), and their cancellation. */
void mc_orphans_after_register(struct mc_worker *w);
void mc_orphans_cancel(struct mc_worker *w);

/* heartbeat.c */
void mc_heartbeat_tick(struct mc_worker *w, mc_ms_t now);
mc_ms_t mc_heartbeat_next_deadline(const struct mc_worker *w);
/* Cancels every beat in flight, strays included. */
void mc_heartbeat_cancel_all(struct mc_worker *w);
/* True while any beat is out, strays included. */
bool mc_heartbeat_in_flight(const struct mc_worker *w);
/* Before runtimes leave the tracked set (keep: the set that stays, NULL
 * for none): their beats in flight become strays, left to land rather
 * than cancelled. A cancelled request may still reach the server, after
 * the DEREG that follows, and a heartbeat revives an offline row. */
void mc_heartbeat_detach_dropped(struct mc_worker *w, const struct mc_runtime_list *keep);
bool mc_heartbeat_strays_in_flight(const struct mc_worker *w);

/* peer.c */
/* Queues a REPORT of every id we answer for (tracked and dropped-pending)
 * and writes it at once, before the caller's next step: what does not fit
 * in the socket stays queued for the loop's flush. */
int mc_peer_report(struct mc_worker *w);
void mc_peer_on_readable(struct mc_worker *w);
void mc_peer_flush(struct mc_worker *w);

/* loop.c */
int mc_worker_start_call(struct mc_worker *w, struct mc_call *call,
			 void (*done)(struct mc_call *, void *));

#endif
