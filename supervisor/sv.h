/* The supervisor's state, shared by its modules. Single-threaded: an epoll
 * loop owns everything. Nothing here touches the network: HTTP runs in
 * short-lived forked helpers (helper.c). */
#ifndef MC_SV_H
#define MC_SV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bsd/sys/tree.h>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/secret.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "supervisor/config.h"
#include "supervisor/ledger.h"
#include "supervisor/push.h"
#include "supervisor/svtask.h"
#include "supervisor/timerq.h"
#include "worker/vprobe.h"

struct mc_sv;

/* What an epoll event points at. */
enum mc_src_kind {
	SRC_SIGNAL,
	SRC_WORKER_IPC,
	SRC_WORKER_PID,
	SRC_HELPER_PID,
	SRC_HELPER_OUT,
	SRC_PROBE_PIPE,
	SRC_CONTROL_LISTEN,
	SRC_CONTROL_CLIENT,
	SRC_LEDGER,          /* the ledger's writer finished a batch */
	SRC_FORKSERVER,      /* the fork server's pidfd (forkserver.c) */
	SRC_LINK_IPC,        /* the link's socket (link_proc.c) */
	SRC_LINK_PID,        /* the link's pidfd */
	SRC_AAPI_IPC,        /* the agent-api process's socket (agentapi_proc.c) */
	SRC_AAPI_PID,        /* its pidfd */
};

struct mc_src {
	enum mc_src_kind kind;
	void *owner;
};

/* Whose timer fired. */
enum mc_timer_kind {
	TIMER_WORKER,
	TIMER_HELPER,
	TIMER_PROBES,
	TIMER_MEMBERSHIP,
	TIMER_SHUTDOWN,
	TIMER_CONTROL,
	TIMER_TOKEN,
	TIMER_ORPHAN,
	TIMER_REAPER,     /* agent groups of dead workers checked empty (reaper.c) */
	TIMER_DRAIN,      /* drain progress: host-wide and per workspace (lifecycle.c) */
	TIMER_LINK,       /* the link's handshake, pings, respawn (link_proc.c) */
	TIMER_AAPI,       /* the agent-api process's, likewise (agentapi_proc.c) */
	TIMER_PUSH,       /* the reconnect's spread profile checks (push.c) */
};

/* Worker lifecycle (state x event in wk.c). */
enum mc_wk_state {
	WK_QUEUED,        /* waiting for its start slot (rate-limited start-up) */
	WK_STARTING,      /* forked; handshake in progress */
	WK_RUNNING,
	WK_STOPPING,      /* STOP sent; waiting for the exit */
	WK_CLEANUP,       /* dead; its ledger ids are being deregistered (or a
			     removed workspace waits to confirm that) */
	WK_BACKOFF,       /* waiting to respawn */
	WK_FAILED,        /* crash loop: parked, retries ever more slowly */
	WK_CONFIG_ERROR,  /* exited 78: retried slowly, at once on a reload or a
			     token file change */
	WK_GONE,          /* removed and cleaned up: about to be freed */
	WK_STATE_COUNT,
};

/* What should happen once a stopping or dead worker is cleaned up. */
enum mc_wk_next {
	NEXT_RESPAWN,     /* crash or restart: start again (after backoff) */
	NEXT_REMOVE,      /* no longer configured: free it */
	NEXT_PARK_CONFIG, /* exit 78: park in config-error */
};

struct mc_wk {
	RB_ENTRY(mc_wk) node;
	char ws[MC_ID_MAX];
	enum mc_wk_state state;
	enum mc_wk_next next;
	pid_t pid;
	int fd;                         /* our end of the socketpair, -1 when none */
	int pidfd;
	struct mc_src ipc_src, pid_src;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	bool rd_ready;
	struct mc_timer timer;          /* meaning depends on the state */
	mc_ms_t started_at;
	mc_ms_t last_pong_at;           /* HELLO, or the last PONG answering a PING */
	mc_ms_t ping_due_at;
	uint64_t ping_seq;              /* last PING sent */
	uint64_t ping_acked;            /* last PING answered: PONGs must be in between */
	int64_t report_credit;          /* REPORT token bucket, in thousandths */
	mc_ms_t report_credit_at;
	bool untrusted;                 /* broke the protocol: killed, frames ignored */
	bool stopped_msg;               /* STOPPED received */
	bool fatal_msg;                 /* FATAL received */
	bool tasks_ready;               /* TASKS_READY of this life: its runtimes are claimable */
	struct mc_backoff backoff;
	unsigned restarts;              /* respawns since it was added */
	unsigned crash_streak;          /* crashes without a healthy run between */
	char last_error[256];
	char cfg_digest[65];            /* of the CONFIG it was given (reload diff) */
	struct mc_helper *cleanup;      /* running cleanup (or confirming) DEREG helper */
	bool confirming;                /* ... and it is the confirmation */
	struct mc_backoff cleanup_backoff;
	mc_ms_t died_at;
	bool confirm_owed;              /* killed: its requests may land after the DEREG */
	mc_ms_t confirm_at;             /* first DEREG done; confirm it then (0: no) */
	mc_ms_t wake_at;                /* BACKOFF/FAILED/CONFIG_ERROR: respawn then */
	struct mc_wk *grave_next;       /* freed after the current event batch */
	bool draining;                  /* reload: running, no new tasks, restarted once
					   its tasks ended or drain_deadline passed */
	mc_ms_t drain_deadline;
};

RB_HEAD(mc_wk_tree, mc_wk);
int mc_wk_cmp(const struct mc_wk *a, const struct mc_wk *b);
RB_PROTOTYPE(mc_wk_tree, mc_wk, node, mc_wk_cmp)

enum mc_helper_kind {
	HELPER_CLEANUP,      /* DEREG one workspace's ledger ids */
	HELPER_FINAL,        /* DEREG every leftover id (start-up, shutdown) */
	HELPER_MEMBERSHIP,   /* GET /api/daemon/workspaces */
};

struct mc_helper {
	enum mc_helper_kind kind;
	pid_t pid;
	int pidfd;
	int out_fd;                     /* membership: the list comes back here */
	struct mc_src pid_src, out_src;
	struct mc_timer timer;          /* hard deadline: SIGKILL */
	struct mc_wk *wk;               /* cleanup: whose ids (NULL: an orphan's) */
	mc_ms_t started_at;
	char ws[MC_ID_MAX];             /* cleanup: the workspace */
	char *out;                      /* what the helper wrote */
	size_t out_len, out_cap;
	bool dead;                      /* reaped; freed after the event batch */
	struct mc_helper *next;         /* list of running helpers */
};

/* Exit codes of a DEREG helper. */
#define MC_HELPER_OK        0
#define MC_HELPER_TRANSIENT 1       /* server unreachable or 5xx: retry */
#define MC_HELPER_PERMANENT 2       /* 4xx: retrying cannot help */
#define MC_HELPER_AUTH      3       /* 401/403: the token is refused, maybe for a
				       while: retry with backoff */

/* A workspace no worker serves whose leftovers' DEREG failed: retried with
 * backoff (orphan.c). */
struct mc_orphan {
	char ws[MC_ID_MAX];
	struct mc_backoff backoff;
	struct mc_timer timer;
	struct mc_orphan *next;
};

/* The token file as last seen (tokwatch.c). */
struct mc_tokwatch {
	struct mc_timer timer;
	char path[MC_PATH_MAX];
	int err;                        /* stat's errno, 0 when it worked */
	dev_t dev;
	ino_t ino;
	off_t size;
	long mtime_s, mtime_ns;
};

struct mc_sv {
	struct mc_config cfg;
	char config_path[MC_PATH_MAX];
	struct mc_secret *token;
	struct mc_ledger *ledger;
	int epfd;
	int sigfd;
	struct mc_src sig_src;
	struct mc_timerq timers;
	struct mc_wk_tree workers;
	size_t n_workers;
	struct mc_helper *helpers;
	struct mc_orphan *orphans;      /* pending orphan cleanup retries */
	struct mc_tokwatch tokwatch;
	struct mc_wk *wk_graveyard;     /* workers to free after this event batch */
	pid_t pid;
	mc_ms_t started_at;
	int gen_fd;                     /* generation lock, shared with the workers */

	/* start-up rate limit */
	mc_ms_t next_spawn_slot;

	/* built-in probes */
	struct mc_probes probes;
	bool probes_done;               /* the first round finished */
	struct mc_vprobe_cache *probe_round;
	bool probe_pipes_watched;
	struct mc_timer probe_timer;    /* next round, or the round's deadline */

	/* membership (workspaces = all) */
	struct mc_timer membership_timer;
	struct mc_helper *membership;
	bool membership_known;
	size_t n_members;
	char (*members)[MC_ID_MAX];
	char ws_etag[256];
	struct mc_backoff membership_backoff;
	bool membership_again;          /* a push asked while one was in flight */

	/* reload and shutdown */
	bool reload_pending;
	unsigned reloads;
	bool last_reload_ok;
	char last_reload_error[512];
	char last_reload_summary[160];
	bool shutting_down;
	mc_ms_t shutdown_deadline;
	struct mc_timer shutdown_timer;
	bool stragglers_killed;
	bool final_cleanup_started;
	bool final_cleanup_done;
	int final_cleanup_result;
	bool done;
	int exit_code;

	/* tasks (svtask.h) */
	struct mc_sv_tasks tasks;
	struct mc_link_proc *link;      /* the link process (link_proc.c) */
	struct mc_aapi_proc *aapi;      /* the agent-api process (agentapi_proc.c) */
	struct mc_sv_push push;         /* the link's websocket, pushes routed (push.c) */
	struct mc_agent_ids *agent_ids; /* the agents' identity per workspace (agents.c) */
	char agent_said[200];           /* the identity decision last logged */

	/* drain (multicactl drain): no more claims, stop once no task runs */
	bool draining;
	mc_ms_t drain_deadline;         /* 0: no timeout */
	mc_ms_t drain_started_at;
	struct mc_timer drain_timer;    /* host and per-workspace drains */
	struct mc_reaper *reaper;       /* reaper.c */

	/* systemd */
	bool notify_enabled;
	bool notified_ready;
	mc_ms_t watchdog_every_ms, watchdog_at, status_at;
	char last_status[200];

	/* control socket */
	int ctl_fd;
	struct mc_src ctl_src;
	struct mc_ctl_client *ctl_clients;
	size_t n_ctl_clients;
};

/* control.c */
struct mc_ctl_client;
int mc_control_open(struct mc_sv *sv, char *err, size_t n);
void mc_control_close(struct mc_sv *sv);
void mc_control_on_event(struct mc_sv *sv, struct mc_src *src, uint32_t events);
void mc_control_on_timer(struct mc_sv *sv, struct mc_timer *t);
void mc_control_reap(struct mc_sv *sv);
/* The host drain is over: every client waiting on "drain" gets its reply
 * ({"ok":true,"message":msg,"timed_out","tasks_left"}). */
void mc_control_drain_done(struct mc_sv *sv, const char *msg, bool timed_out, size_t tasks_left);

/* loop.c */
int mc_sv_epoll_add(struct mc_sv *sv, int fd, uint32_t events, struct mc_src *src);
int mc_sv_epoll_mod(struct mc_sv *sv, int fd, uint32_t events, struct mc_src *src);
void mc_sv_epoll_del(struct mc_sv *sv, int fd);
int mc_sv_run(struct mc_sv *sv);
/* Before fork: what a child must not keep (the token's guarded pages). */
void mc_sv_child_forget(struct mc_sv *sv);

/* pidfd.c: the pidfd of a child we have not reaped; signals go through it,
 * so a reaped (maybe recycled) pid is never signalled. */
int mc_pidfd_open(pid_t pid);
/* 0, or -1 with errno (ESRCH once the process is gone). */
int mc_pidfd_kill(int pidfd, int sig);

/* wk.c */
struct mc_wk *mc_wk_find(struct mc_sv *sv, const char *ws);
struct mc_wk *mc_wk_add(struct mc_sv *sv, const char *ws);
void mc_wk_on_ipc(struct mc_sv *sv, struct mc_wk *wk, uint32_t events);
void mc_wk_on_exit(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_on_timer(struct mc_sv *sv, struct mc_wk *wk);
/* A DEREG helper of wk's ids ended; sent_at: when its request started. */
void mc_wk_on_cleanup_done(struct mc_sv *sv, struct mc_wk *wk, int result, mc_ms_t sent_at);
/* Shutdown: stop waiting for wk's cleanup (the final DEREG covers the
 * ledger); its helper, if any, runs on detached. */
void mc_wk_abandon_cleanup(struct mc_sv *sv, struct mc_wk *wk);
/* Parked in config-error, or about to be once its cleanup is done. */
bool mc_wk_config_parked(const struct mc_wk *wk);
/* A cleanup waiting for its retry tries again now (a new token). */
void mc_wk_kick_cleanup(struct mc_sv *sv, struct mc_wk *wk);
/* Stop for good (removed from the configuration or shutdown). */
void mc_wk_remove(struct mc_sv *sv, struct mc_wk *wk);
/* Stop and start again (configuration changed, operator request, or a
 * config-error worker after a reload). */
void mc_wk_restart(struct mc_sv *sv, struct mc_wk *wk);
/* Sends the current token to a running worker (rotated token file). */
void mc_wk_push_token(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_push_probes(struct mc_sv *sv, struct mc_wk *wk);
/* Unlinks the worker at once; the memory goes after the event batch, since
 * the batch may still hold events pointing at it. */
void mc_wk_free(struct mc_sv *sv, struct mc_wk *wk);
void mc_wk_reap_graveyard(struct mc_sv *sv);
/* Starts the queued workers once the first probe round is in. */
void mc_wk_schedule_queued(struct mc_sv *sv);
const char *mc_wk_state_name(enum mc_wk_state s);
/* The digest of the CONFIG a worker of ws would get now. */
void mc_wk_config_digest(const struct mc_sv *sv, const char *ws, char out[65]);

/* helper.c */
/* wk NULL with kind HELPER_CLEANUP: an orphan workspace, named by ws. */
struct mc_helper *mc_helper_dereg(struct mc_sv *sv, enum mc_helper_kind kind, struct mc_wk *wk,
				  size_t n, const char *const *ids, mc_ms_t timeout_ms);
/* The cleanup of dead wk: its outbox delivered, recover-orphans on rt_ids
 * (the runtimes that had tasks in flight), then the DEREG of ids. */
struct mc_helper *mc_helper_cleanup(struct mc_sv *sv, struct mc_wk *wk, size_t n,
				    const char *const *ids, size_t n_rt,
				    const char *const *rt_ids);
struct mc_helper *mc_helper_orphan_cleanup(struct mc_sv *sv, const char *ws);
/* The orphan cleanup of wk's workspace still running, now reporting to wk;
 * NULL when there is none. */
struct mc_helper *mc_helper_adopt_orphan_cleanup(struct mc_sv *sv, struct mc_wk *wk);
struct mc_helper *mc_helper_membership(struct mc_sv *sv);
void mc_helper_on_exit(struct mc_sv *sv, struct mc_helper *h);
void mc_helper_on_output(struct mc_sv *sv, struct mc_helper *h);
void mc_helper_on_timer(struct mc_sv *sv, struct mc_helper *h);
/* Kills every helper (and forgets pending orphan retries: the final DEREG,
 * or the next start, covers them). */
void mc_helper_kill_all(struct mc_sv *sv);
/* wk is going away: no helper reports to it any more. */
void mc_helper_detach(struct mc_sv *sv, const struct mc_wk *wk);
void mc_helper_reap_dead(struct mc_sv *sv);

/* orphan.c */
/* An orphan cleanup of ws ended with result. */
void mc_orphan_on_done(struct mc_sv *sv, const char *ws, int result);
void mc_orphan_on_timer(struct mc_sv *sv, struct mc_orphan *o);
/* A worker serves ws now: its own cleanup takes over. */
void mc_orphan_forget(struct mc_sv *sv, const char *ws);
void mc_orphan_forget_all(struct mc_sv *sv);
/* Every pending retry tries again now (a new token). */
void mc_orphan_kick_all(struct mc_sv *sv);

/* tokwatch.c: token_file is looked at every few seconds; a change that
 * reads as a valid token is taken as if reloaded. */
void mc_tokwatch_start(struct mc_sv *sv);
void mc_tokwatch_on_timer(struct mc_sv *sv);
/* The token was just read (reload): remember the file as it is now. */
void mc_tokwatch_rebase(struct mc_sv *sv);

/* probes.c */
void mc_probes_start_round(struct mc_sv *sv);
void mc_probes_on_pipe(struct mc_sv *sv);
void mc_probes_on_timer(struct mc_sv *sv);
void mc_probes_free(struct mc_sv *sv);

/* reaper.c: the supervisor is a child subreaper. Agents a dead worker
 * leaves behind become its children: their process groups are killed at
 * once and checked empty, and every child that is not a known worker,
 * helper or other pidfd-watched process is reaped on SIGCHLD. */
int mc_reaper_init(struct mc_sv *sv);
void mc_reaper_free(struct mc_sv *sv);
/* SIGCHLD: reaps the exited children that are not ours to wait for. */
void mc_reaper_on_sigchld(struct mc_sv *sv);
/* SIGKILL to every process group of ws's tasks (pgid from TASK_STATE). */
void mc_reaper_kill_ws_agents(struct mc_sv *sv, const char *ws);
void mc_reaper_on_timer(struct mc_sv *sv);
/* Whether pid is a child the supervisor waits for itself (a worker, a
 * helper, the fork server, the link: anything it holds a pidfd of). */
bool mc_reaper_pid_is_mine(struct mc_sv *sv, pid_t pid);

/* drain.c */
/* Host-wide drain: stop claiming, stop once no task is in flight or at
 * timeout_ms (0: none); mc_control_drain_done then mc_sv_shutdown. 0, or
 * -1 when shutting down already. */
int mc_sv_drain(struct mc_sv *sv, mc_ms_t timeout_ms);
/* A stop (SIGTERM) overtook the drain: its waiting clients are told. */
void mc_sv_drain_abort(struct mc_sv *sv);
/* Reload: wk's configuration changed while it runs tasks: no new task for
 * it until they ended or task_drain_timeout passed, then mc_wk_restart. */
void mc_wk_drain_start(struct mc_sv *sv, struct mc_wk *wk);
/* The runtimes wk offers the link's claims changed (draining: none). */
void mc_sv_claimset_changed(struct mc_sv *sv, struct mc_wk *wk);
void mc_sv_on_drain_timer(struct mc_sv *sv);
/* Tasks in flight host-wide (routed or being claimed). */
size_t mc_sv_tasks_in_flight(const struct mc_sv *sv);
/* Tasks ended or were dropped: the link may claim again, a drain may be
 * over (checked on the next drain tick). */
void mc_sv_tasks_changed(struct mc_sv *sv);

/* link_proc.c: the link process (one per host) */
struct mc_link_proc;
struct cJSON;
/* Once the first probe round is in (checked every loop turn): spawns it. */
void mc_link_proc_tick(struct mc_sv *sv);
void mc_link_proc_on_ipc(struct mc_sv *sv, uint32_t events);
void mc_link_proc_on_exit(struct mc_sv *sv);
void mc_link_proc_on_timer(struct mc_sv *sv);
/* Shutdown, first of all: no claim may race the stop. */
void mc_link_proc_stop(struct mc_sv *sv);
/* Shutdown: true once it has exited (or never ran). */
bool mc_link_proc_done(const struct mc_sv *sv);
/* Stop timeout: SIGKILL and reap. */
void mc_link_proc_kill(struct mc_sv *sv);
void mc_link_proc_free(struct mc_sv *sv);
/* status --json: "link" {"pid","state","restarts","websocket","last_error"} and
 * "slots" {"max","used","reserved"} added to root. */
void mc_link_proc_status(struct mc_sv *sv, struct cJSON *root);

/* The task settings of a worker's CONFIG (the link's adds its poll and the
 * host's slots). */
void mc_sv_task_config(const struct mc_sv *sv, struct mc_worker_config *c);

/* route.c: slots, routing, the tasks' journal */
/* Once per loop turn: RUNTIMES for the workspaces whose set changed, the
 * tasks' journal, and a WAKE when slots were freed. */
void mc_route_turn(struct mc_sv *sv);
/* A TASK_STATE from wk's worker. */
void mc_route_task_state(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f);
/* Removes ws's tasks (a dead worker's, after its cleanup): slots freed,
 * journal updated, the link woken. */
void mc_route_drop_ws(struct mc_sv *sv, const char *ws);
/* ws's claimable runtimes changed (a REPORT, a drain): its RUNTIMES go to
 * the link at the end of the turn, with a WAKE. */
void mc_route_runtimes_dirty(struct mc_sv *sv, const char *ws);

/* agents.c: the agents' identity (common/identity.h, supervisor/agent_ids.h).
 * start: after the state_dir lock (reads <state_dir>/agent-ids), logs the
 * decision (the fallback at warn) and sets state_dir's modes; -1 with err:
 * a corrupt agent-ids file or an agent_* configuration error.
 * reconfigure: a reload's candidate configuration (-1: refuse the reload,
 * nothing changed); settle: after the reload took it (log, modes, every
 * worker's slot given before the CONFIG digests are compared). */
struct mc_identity;
int mc_sv_agents_start(struct mc_sv *sv, char *err, size_t n);
int mc_sv_agents_reconfigure(struct mc_sv *sv, const struct mc_config *nc, char *err, size_t n);
void mc_sv_agents_settle(struct mc_sv *sv);
void mc_sv_agents_free(struct mc_sv *sv);
/* The identity workspace ws's agents get (its slot allocated and persisted
 * on first use); fallback: out->sw false. -1 with errno (ENOSPC: the range
 * is exhausted), logged. _why: the message into err instead of the log. */
int mc_sv_agent_identity(struct mc_sv *sv, const char *ws, struct mc_identity *out);
int mc_sv_agent_identity_why(struct mc_sv *sv, const char *ws, struct mc_identity *out,
			     char *err, size_t n);
/* The agents' fields of ws's worker CONFIG (nothing allocated). */
void mc_sv_agent_config(const struct mc_sv *sv, const char *ws, struct mc_worker_config *c);
/* status --json: "agents" {isolated, mode, user, uid, uid_range, gid_range,
 * warning} added to root. */
void mc_sv_agents_status(const struct mc_sv *sv, struct cJSON *root);

/* membership.c / reload.c */
void mc_membership_on_timer(struct mc_sv *sv);
void mc_membership_on_result(struct mc_sv *sv, int status, const char *out, size_t len);
/* A push: the timer's fetch now (workspaces = all), or once more right
 * after the one in flight. */
void mc_membership_refresh_now(struct mc_sv *sv);
/* Starts, keeps and removes workers to match what the configuration (and the
 * membership list) wants now. */
void mc_sv_apply_wanted(struct mc_sv *sv);
int mc_sv_reload(struct mc_sv *sv);
void mc_sv_shutdown(struct mc_sv *sv);
void mc_sv_on_shutdown_timer(struct mc_sv *sv);
/* Checks whether shutdown can finish. */
void mc_sv_shutdown_progress(struct mc_sv *sv);

#endif
