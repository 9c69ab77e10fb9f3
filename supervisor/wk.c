/* One workspace's worker process, seen from the supervisor: spawn, the
 * handshake, stop, restart and the timers of each state. What a worker
 * sends is in wk_frames.c; its death, the cleanup of what it left online
 * and what follows in wk_death.c.
 *
 *   QUEUED -> STARTING -HELLO-> RUNNING -STOP-> STOPPING
 *   any live state -exit-> CLEANUP (if the ledger holds ids) -> BACKOFF |
 *                          FAILED | CONFIG_ERROR | GONE
 *   BACKOFF/FAILED/CONFIG_ERROR -timer-> STARTING
 *
 * The respawned worker starts only after the cleanup finished or gave up,
 * so an old DEREG can never take the new worker's rows (same ids, the
 * server upserts) offline. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/child.h"
#include "common/identity.h"
#include "supervisor/forkserver.h"
#include "supervisor/wk_int.h"
#include "worker/worker.h"

#define HANDSHAKE_TIMEOUT_MS  10000
#define SPAWN_SPACING_MS      2       /* start-up: at most ~500 workers/s (docs/PERFORMANCE.md) */
#define SPAWN_JITTER_MS       5

int mc_wk_cmp(const struct mc_wk *a, const struct mc_wk *b)
{
	return strcmp(a->ws, b->ws);
}

RB_GENERATE(mc_wk_tree, mc_wk, node, mc_wk_cmp)

static const char *const state_names[WK_STATE_COUNT] = {
	[WK_QUEUED] = "starting", [WK_STARTING] = "starting", [WK_RUNNING] = "running",
	[WK_STOPPING] = "stopping", [WK_CLEANUP] = "cleanup", [WK_BACKOFF] = "backoff",
	[WK_FAILED] = "failed", [WK_CONFIG_ERROR] = "config-error", [WK_GONE] = "stopping",
};

const char *mc_wk_state_name(enum mc_wk_state s)
{
	return s < WK_STATE_COUNT ? state_names[s] : "unknown";
}

struct mc_wk *mc_wk_find(struct mc_sv *sv, const char *ws)
{
	struct mc_wk key;
	strlcpy(key.ws, ws, sizeof key.ws);
	return RB_FIND(mc_wk_tree, &sv->workers, &key);
}

void mc_wk_log(enum mc_log_level lvl, const struct mc_wk *wk, const char *msg, const char *k1,
	       const char *v1)
{
	mc_log(lvl, msg, "ws", wk->ws, "worker_pid", MC_LOG_NUM(wk->pid),
	       "state", mc_wk_state_name(wk->state), k1, v1, NULL);
}

void mc_wk_set_error(struct mc_wk *wk, const char *text)
{
	strlcpy(wk->last_error, text, sizeof wk->last_error);
}

void mc_wk_arm(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t at)
{
	if (mc_timerq_arm(&sv->timers, &wk->timer, at) < 0)
		mc_log(MC_LOG_ERROR, "out of memory arming a timer", "ws", wk->ws, NULL);
}

/* ---- the worker's configuration ---- */

static void build_config(const struct mc_sv *sv, const char *ws, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	memset(c, 0, sizeof *c);
	strlcpy(c->workspace_id, ws, sizeof c->workspace_id);
	strlcpy(c->server_url, g->server_url, sizeof c->server_url);
	strlcpy(c->daemon_id, g->daemon_id, sizeof c->daemon_id);
	strlcpy(c->device_name, g->device_name, sizeof c->device_name);
	snprintf(c->cli_version, sizeof c->cli_version, "multicad/%s", MC_VERSION);
	strlcpy(c->log_level, mc_config_log_level_name(g->log_level), sizeof c->log_level);
	c->heartbeat_interval_ms = g->heartbeat_interval_ms;
	c->profile_sync_interval_ms = g->profile_sync_interval_ms;
	c->http_timeout_ms = g->http_timeout_ms;
	c->probe_timeout_ms = 10000;
	strlcpy(c->ca_file, g->ca_file, sizeof c->ca_file);
	mc_sv_task_config(sv, c);
	mc_sv_agent_config(sv, ws, c); /* agents.c */
	const struct mc_ws_section *sec = mc_config_ws_section(g, ws);
	if (sec != NULL) {
		/* Borrowed: the config outlives the send. */
		c->overrides = sec->overrides;
		c->n_overrides = sec->n_overrides;
		strlcpy(c->test_fault, sec->test_fault, sizeof c->test_fault);
	}
}

void mc_wk_config_digest(const struct mc_sv *sv, const char *ws, char out[65])
{
	struct mc_worker_config c;
	build_config(sv, ws, &c);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	unsigned char d[32];
	if (mc_ipc_send_config(&w, &c) < 0) {
		strlcpy(out, "unknown", 65);
	} else {
		crypto_generichash(d, sizeof d, w.buf, w.tail, NULL, 0);
		sodium_bin2hex(out, 65, d, sizeof d);
	}
	mc_ipc_writer_free(&w);
}

/* ---- writing to a worker ---- */

static void update_interest(struct mc_sv *sv, struct mc_wk *wk)
{
	/* An untrusted worker's socket is not read any more (its exit follows). */
	uint32_t ev = (wk->untrusted ? 0 : EPOLLIN) |
		      (mc_ipc_writer_pending(&wk->wr) ? EPOLLOUT : 0);
	mc_sv_epoll_mod(sv, wk->fd, ev, &wk->ipc_src);
}

static void flush(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->fd < 0)
		return;
	if (mc_ipc_writer_flush(&wk->wr, wk->fd) < 0 && errno != EPIPE && errno != ECONNRESET)
		mc_wk_log(MC_LOG_WARN, wk, "write to worker failed", "error", strerror(errno));
	update_interest(sv, wk);
}

/* A queue that cannot take a frame means the worker stopped reading. */
void mc_wk_queued(struct mc_sv *sv, struct mc_wk *wk, int rc)
{
	if (rc < 0) {
		mc_wk_kill(sv, wk, errno == ENOBUFS ? "worker stopped reading its socket"
						    : "cannot queue a message for the worker");
		return;
	}
	flush(sv, wk);
}

void mc_wk_push_token(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state != WK_RUNNING || sv->token == NULL)
		return;
	const char *t = mc_secret_open(sv->token);
	int rc = mc_ipc_send_token(&wk->wr, t, mc_secret_len(sv->token));
	mc_secret_close(sv->token);
	mc_wk_queued(sv, wk, rc);
}

void mc_wk_push_probes(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state == WK_RUNNING)
		mc_wk_queued(sv, wk, mc_ipc_send_probes(&wk->wr, &sv->probes));
}

void mc_wk_send_handshake(struct mc_sv *sv, struct mc_wk *wk)
{
	struct mc_worker_config c;
	build_config(sv, wk->ws, &c);
	mc_wk_config_digest(sv, wk->ws, wk->cfg_digest);
	int rc = mc_ipc_send_config(&wk->wr, &c);
	if (rc == 0 && sv->token != NULL) {
		const char *t = mc_secret_open(sv->token);
		rc = mc_ipc_send_token(&wk->wr, t, mc_secret_len(sv->token));
		mc_secret_close(sv->token);
	}
	if (rc == 0)
		rc = mc_ipc_send_probes(&wk->wr, &sv->probes);
	if (rc == 0)
		rc = mc_push_handshake(sv, &wk->wr); /* the socket is up: its poll stretches */
	mc_wk_queued(sv, wk, rc);
}

/* ---- spawning ---- */

void mc_wk_close_channel(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->fd >= 0) {
		mc_sv_epoll_del(sv, wk->fd);
		close(wk->fd);
		wk->fd = -1;
	}
	if (wk->rd_ready) {
		mc_ipc_reader_free(&wk->rd);
		wk->rd_ready = false;
	}
	mc_ipc_writer_free(&wk->wr);
}

/* Cannot watch the child: it must not run unwatched. Not reaped yet, so
 * its pid still names it. */
static void unwatchable(struct mc_sv *sv, struct mc_wk *wk, pid_t pid)
{
	if (wk->pidfd < 0 || mc_pidfd_kill(wk->pidfd, SIGKILL) < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (wk->pidfd >= 0) {
		mc_sv_epoll_del(sv, wk->pidfd);
		close(wk->pidfd);
	}
	wk->pidfd = -1;
	mc_wk_close_channel(sv, wk);
	wk->pid = 0;
	mc_wk_set_error(wk, "cannot watch the worker process");
}

/* Without the fork server: forked here, inheriting the whole supervisor
 * (its heap grows with the fleet). 0 with *pid and *fd set, or -1. */
static int fork_directly(struct mc_sv *sv, struct mc_wk *wk, pid_t *pid, int *fd)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
		mc_wk_set_error(wk, "socketpair failed");
		return -1;
	}
	pid_t parent = getpid();
	*pid = fork();
	if (*pid < 0) {
		close(sp[0]);
		close(sp[1]);
		mc_wk_set_error(wk, "fork failed");
		return -1;
	}
	if (*pid == 0) {
		close(sp[0]);
		mc_sv_child_forget(sv);
		mc_child_exit(mc_worker_main(sp[1], parent, sv->gen_fd));
	}
	close(sp[1]);
	*fd = sp[0];
	return 0;
}

void mc_wk_spawn(struct mc_sv *sv, struct mc_wk *wk)
{
	/* From the fork server (our child all the same, with its pidfd), or,
	 * while there is none, forked here. */
	pid_t pid = 0;
	int fd = -1, pidfd = -1;
	const char *via = "forkserver";
	/* Its agents' identity first (a slot of the range, kept for good):
	 * none left is the configuration's problem, parked like one. */
	struct mc_identity aid;
	char aerr[256] = "";
	if (mc_sv_agent_identity_why(sv, wk->ws, &aid, aerr, sizeof aerr) < 0) {
		mc_wk_set_error(wk, aerr); /* park_config logs it */
		wk->next = NEXT_PARK_CONFIG;
		mc_wk_after_cleanup(sv, wk);
		return;
	}
	int got = mc_fs_spawn(sv, &pid, &fd, &pidfd);
	if (got < 0) {
		mc_wk_set_error(wk, "the fork server could not start the worker");
		goto fail;
	}
	if (got == 0) {
		via = "direct";
		if (fork_directly(sv, wk, &pid, &fd) < 0)
			goto fail;
		pidfd = mc_pidfd_open(pid);
	}
	wk->pid = pid;
	wk->fd = fd;
	wk->pidfd = pidfd;
	mc_ipc_writer_init(&wk->wr);
	wk->rd_ready = mc_ipc_reader_init(&wk->rd, mc_ipc_type_ok_for_supervisor) == 0;
	if (wk->pidfd < 0 || !wk->rd_ready ||
	    mc_sv_epoll_add(sv, wk->fd, EPOLLIN, &wk->ipc_src) < 0 ||
	    mc_sv_epoll_add(sv, wk->pidfd, EPOLLIN, &wk->pid_src) < 0) {
		unwatchable(sv, wk, pid);
		goto fail;
	}
	wk->state = WK_STARTING;
	wk->started_at = mc_now_ms();
	wk->stopped_msg = wk->fatal_msg = false;
	mc_wk_frames_reset(wk, wk->started_at);
	mc_wk_arm(sv, wk, wk->started_at + HANDSHAKE_TIMEOUT_MS);
	mc_wk_log(MC_LOG_INFO, wk, "worker started", "spawn", via);
	return;
fail:
	mc_log(MC_LOG_ERROR, "cannot start worker", "ws", wk->ws, "error", wk->last_error,
	       "errno", strerror(errno), NULL);
	wk->next = NEXT_RESPAWN;
	wk->crash_streak++;
	mc_wk_after_cleanup(sv, wk);
}

/* Queues the worker's start, rate-limited and jittered so a fleet start
 * does not hammer the server. Nothing starts before the first probe round. */
void mc_wk_queue_start(struct mc_sv *sv, struct mc_wk *wk)
{
	wk->state = WK_QUEUED;
	if (!sv->probes_done || sv->shutting_down)
		return; /* mc_probes schedules the queue when the round ends */
	mc_ms_t now = mc_now_ms();
	mc_ms_t at = sv->next_spawn_slot > now ? sv->next_spawn_slot : now;
	sv->next_spawn_slot = at + SPAWN_SPACING_MS;
	mc_wk_arm(sv, wk, at + mc_rand_below(SPAWN_JITTER_MS));
}

void mc_wk_schedule_queued(struct mc_sv *sv)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->state == WK_QUEUED && !mc_timer_armed(&wk->timer))
			mc_wk_queue_start(sv, wk);
}

/* ---- adding and removing ---- */

/* Allocates the worker; the tree owns it until mc_wk_free. */
struct mc_wk *mc_wk_add(struct mc_sv *sv, const char *ws)
{
	struct mc_wk *wk = calloc(1, sizeof *wk);
	if (wk == NULL)
		return NULL;
	strlcpy(wk->ws, ws, sizeof wk->ws);
	wk->fd = wk->pidfd = -1;
	wk->ipc_src = (struct mc_src){ SRC_WORKER_IPC, wk };
	wk->pid_src = (struct mc_src){ SRC_WORKER_PID, wk };
	mc_timer_init(&wk->timer, TIMER_WORKER, wk);
	mc_backoff_init(&wk->backoff, sv->cfg.restart_backoff_min_ms, sv->cfg.restart_backoff_max_ms);
	mc_backoff_init(&wk->cleanup_backoff, sv->cfg.restart_backoff_min_ms,
			sv->cfg.restart_backoff_max_ms);
	wk->next = NEXT_RESPAWN;
	RB_INSERT(mc_wk_tree, &sv->workers, wk);
	sv->n_workers++;
	mc_orphan_forget(sv, ws); /* a pending orphan retry: our cleanup takes over */
	/* Ids a previous run left in the ledger go offline before we register. */
	const char *const *ids;
	if (mc_ledger_get(sv->ledger, ws, &ids) > 0)
		mc_wk_start_cleanup(sv, wk);
	else
		mc_wk_queue_start(sv, wk);
	return wk;
}

void mc_wk_free(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_timerq_cancel(&sv->timers, &wk->timer);
	mc_wk_close_channel(sv, wk);
	if (wk->pidfd >= 0) {
		mc_sv_epoll_del(sv, wk->pidfd);
		close(wk->pidfd);
		wk->pidfd = -1;
	}
	/* Every helper still pointing here (a cleanup, a confirmation) now
	 * reports as an orphan's: its exit must not reach freed memory. */
	mc_helper_detach(sv, wk);
	wk->cleanup = NULL;
	RB_REMOVE(mc_wk_tree, &sv->workers, wk);
	sv->n_workers--;
	wk->state = WK_GONE;
	wk->grave_next = sv->wk_graveyard;
	sv->wk_graveyard = wk;
}

void mc_wk_reap_graveyard(struct mc_sv *sv)
{
	while (sv->wk_graveyard != NULL) {
		struct mc_wk *wk = sv->wk_graveyard;
		sv->wk_graveyard = wk->grave_next;
		free(wk);
	}
}

static void send_stop(struct mc_sv *sv, struct mc_wk *wk)
{
	wk->state = WK_STOPPING;
	mc_wk_arm(sv, wk, mc_now_ms() + sv->cfg.stop_timeout_ms);
	mc_wk_queued(sv, wk, mc_ipc_send_stop(&wk->wr));
}

/* state x "stop, then next" */
static void stop_with(struct mc_sv *sv, struct mc_wk *wk, enum mc_wk_next next)
{
	wk->next = next;
	switch (wk->state) {
	case WK_STARTING:
	case WK_RUNNING:
		send_stop(sv, wk);
		break;
	case WK_QUEUED:
	case WK_BACKOFF:
	case WK_FAILED:
	case WK_CONFIG_ERROR:
		mc_timerq_cancel(&sv->timers, &wk->timer);
		mc_wk_after_cleanup(sv, wk);
		break;
	case WK_CLEANUP:
		/* Waiting for a confirmation not yet sent: next decides anew
		 * (a respawn re-owns the ids; a removal keeps waiting). A DEREG
		 * on the wire is waited for: its end decides. */
		if (wk->confirm_at != 0 && wk->cleanup == NULL) {
			mc_timerq_cancel(&sv->timers, &wk->timer);
			mc_wk_after_cleanup(sv, wk);
		}
		break;
	default:
		break; /* STOPPING: next decides what follows */
	}
}

void mc_wk_remove(struct mc_sv *sv, struct mc_wk *wk)
{
	stop_with(sv, wk, NEXT_REMOVE);
}

void mc_wk_restart(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_backoff_reset(&wk->backoff);
	wk->crash_streak = 0;
	stop_with(sv, wk, NEXT_RESPAWN);
}

/* ---- timers: state x timer ---- */

void mc_wk_on_timer(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_ms_t now = mc_now_ms();
	switch (wk->state) {
	case WK_QUEUED:
		if (!sv->shutting_down)
			mc_wk_spawn(sv, wk);
		break;
	case WK_BACKOFF:
	case WK_FAILED:
	case WK_CONFIG_ERROR:
		mc_wk_parked_timer(sv, wk, now);
		break;
	case WK_STARTING:
		mc_wk_kill(sv, wk, "no handshake within 10 s");
		break;
	case WK_RUNNING:
		mc_wk_running_timer(sv, wk, now);
		break;
	case WK_STOPPING:
		mc_wk_kill(sv, wk, "did not stop within stop_timeout");
		break;
	case WK_CLEANUP:
		mc_wk_cleanup_timer(sv, wk);
		break;
	default:
		break; /* GONE */
	}
}
