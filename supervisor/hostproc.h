/* One supervised host-level process (the link, the agent-api process): its
 * life seen from the supervisor, the same for both, parameterised by a
 * small ops table (what it runs, what it may send, what it is told).
 *
 * State x event (hostproc.c does exactly this, one switch per event):
 *
 *              start      HELLO ok   stop       exit            timer          kill
 *   DOWN       STARTING*  -          DONE       -               -              -
 *   STARTING   -          RUNNING    STOPPING   BACKOFF|DOWN**  kill (10 s)    DONE
 *   RUNNING    -          kill       STOPPING   BACKOFF|DOWN**  ping/liveness  DONE
 *   STOPPING   -          kill       -          DONE            kill (timeout) DONE
 *   BACKOFF    -          -          DONE       -               STARTING*      -
 *   DONE       -          -          -          -               -              -
 *
 *   *  a fork or watch failure goes to BACKOFF instead.
 *   ** DOWN (then STARTING at once) when it was stopped for a restart
 *      (mc_hostproc.restart); DONE when the supervisor is shutting down.
 *   A HELLO out of STARTING, any other frame in STARTING, a bad frame, a
 *   missed liveness deadline: SIGKILL ("kill"); the exit follows.
 *
 * Forked directly (the fork server makes workers only): mc_sv_child_forget
 * drops the token first, then ops->child_main runs and closes every fd but
 * its own. Single-threaded (the supervisor's loop). Error convention: 0 /
 * -1 with errno (mc_hp_queued); the rest logs and returns nothing. */
#ifndef MC_SV_HOSTPROC_H
#define MC_SV_HOSTPROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/backoff.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "supervisor/sv.h"

struct cJSON;
struct mc_hostproc;

enum mc_hp_state {
	MC_HP_DOWN,      /* not started yet */
	MC_HP_STARTING,  /* forked; handshake in progress */
	MC_HP_RUNNING,
	MC_HP_STOPPING,  /* STOP sent (shutdown, or a restart) */
	MC_HP_BACKOFF,   /* dead; respawned at the timer */
	MC_HP_DONE,      /* stopped for good (shutdown) */
	MC_HP_COUNT,
};

struct mc_hostproc_ops {
	const char *name;         /* in logs: "link" ("the link exited" ...) */
	const char *pid_key;      /* the log key of its pid: "link_pid" */
	mc_ipc_type_ok_fn type_ok; /* the frame types it may send */
	/* In the child after fork, the token dropped: its main, given its end
	 * of the socket and hp->extra_fd; returns the exit status. */
	int (*child_main)(int fd, int extra_fd, pid_t parent);
	/* Every frame past the HELLO check (HELLO included): its own types,
	 * and HELLO/PONG/STOPPED passed to mc_hp_on_hello... (or mc_hp_frame). */
	void (*frame)(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f);
	/* Fills the CONFIG sent after its HELLO (the TOKEN follows). */
	void (*config)(struct mc_sv *sv, struct mc_hostproc *hp, struct mc_worker_config *c);
	/* Optional (NULL: nothing). */
	void (*spawned)(struct mc_sv *sv, struct mc_hostproc *hp); /* forked, not yet watched */
	void (*ready)(struct mc_sv *sv, struct mc_hostproc *hp);   /* RUNNING: what it is sent next */
	void (*pinged)(struct mc_sv *sv, struct mc_hostproc *hp);  /* a PING was queued */
	void (*gone)(struct mc_sv *sv, struct mc_hostproc *hp);    /* died or killed (not a restart) */
};

struct mc_hostproc {
	/* First, in this order: link_proc.h names these for route.c (the
	 * common initial sequence of a union there). */
	enum mc_hp_state state;
	int fd;                         /* the supervisor's end of the socket; -1 */
	struct mc_ipc_writer wr;
	bool untrusted;                 /* broke the protocol: killed, frames ignored */
	bool stopped_msg;               /* its STOPPED was seen */

	const struct mc_hostproc_ops *ops;
	pid_t pid;                      /* 0: none */
	int pidfd;
	int extra_fd;                   /* handed to the child (not owned; -1: none) */
	struct mc_src ipc_src, pid_src;
	struct mc_ipc_reader rd;
	bool rd_ready;
	bool restart;                   /* stopping to come back at once (new CONFIG) */
	struct mc_timer timer;
	mc_ms_t started_at, last_pong_at, ping_due_at;
	uint64_t ping_seq, ping_acked;
	struct mc_backoff backoff;
	unsigned restarts;
	char last_error[256];
	const struct mc_secret *token_sent; /* the token it has (compared by pointer:
					       a new one is read before the old is freed) */
};

/* Sets hp up (DOWN, no process); its epoll sources and timer carry these
 * kinds and owner. */
void mc_hp_init(struct mc_hostproc *hp, const struct mc_hostproc_ops *ops, const struct mc_sv *sv,
		enum mc_src_kind ipc_kind, enum mc_src_kind pid_kind, enum mc_timer_kind timer_kind,
		void *owner);
const char *mc_hp_state_name(enum mc_hp_state s);
/* RUNNING and trusted (hp may be NULL). */
bool mc_hp_running(const struct mc_hostproc *hp);

/* start: DOWN -> STARTING (spawns it), unless shutting down. */
void mc_hp_start(struct mc_sv *sv, struct mc_hostproc *hp);
/* A frame was queued with rc: flush. A full queue (ENOBUFS) kills it (it
 * stopped reading); -1 then, and for any other rc < 0 (that frame only)
 * or when it has no socket. */
int mc_hp_queued(struct mc_sv *sv, struct mc_hostproc *hp, int rc);
/* SIGKILL with a reason (its last_error); its frames are ignored from now. */
void mc_hp_kill_why(struct mc_sv *sv, struct mc_hostproc *hp, const char *why);
/* Queues sv's token (none: nothing) and remembers it as sent. */
void mc_hp_send_token(struct mc_sv *sv, struct mc_hostproc *hp);

/* The frames every host process sends; for ops->frame. */
void mc_hp_on_hello(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f);
void mc_hp_on_pong(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f);
void mc_hp_on_stopped(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f);
/* HELLO, PONG or STOPPED handled: true; any other type: false. */
bool mc_hp_frame(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f);

/* The loop's events. */
void mc_hp_on_ipc(struct mc_sv *sv, struct mc_hostproc *hp, uint32_t events);
void mc_hp_on_timer(struct mc_sv *sv, struct mc_hostproc *hp);
void mc_hp_on_exit(struct mc_sv *sv, struct mc_hostproc *hp);

/* Shutdown: STOP (STARTING/RUNNING), DONE at once when it is not running. */
void mc_hp_stop(struct mc_sv *sv, struct mc_hostproc *hp);
/* Not running a process (hp may be NULL). */
bool mc_hp_done(const struct mc_hostproc *hp);
/* SIGKILL and reap: DONE. */
void mc_hp_kill(struct mc_sv *sv, struct mc_hostproc *hp);
/* Before the owner frees hp: killed, its timer cancelled. */
void mc_hp_release(struct mc_sv *sv, struct mc_hostproc *hp);

/* status --json: "pid", "state" (state; hp's own when state is NULL, hp
 * then not NULL), "restarts" into o; then, last, mc_hp_status_error:
 * "last_error". hp may be NULL. */
void mc_hp_status(struct cJSON *o, const struct mc_hostproc *hp, const char *state);
void mc_hp_status_error(struct cJSON *o, const struct mc_hostproc *hp);

#endif
