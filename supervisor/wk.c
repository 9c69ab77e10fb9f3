/* One workspace's worker process, seen from the supervisor: spawn, the
 * handshake, liveness, the ledger of what it reported, stop, death, the
 * cleanup of what a dead worker left online, and restart with backoff.
 *
 *   QUEUED -> STARTING -HELLO-> RUNNING -STOP-> STOPPING
 *   any live state -exit-> CLEANUP (if the ledger holds ids) -> BACKOFF |
 *                          FAILED | CONFIG_ERROR | GONE
 *   BACKOFF/FAILED -timer-> STARTING
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <sodium.h>

#include "common/child.h"
#include "common/log.h"
#include "supervisor/sv.h"
#include "worker/worker.h"

#define HANDSHAKE_TIMEOUT_MS  10000
#define CRASH_LOOP_STREAK     5       /* consecutive crashes that park a worker */
#define HEALTHY_AFTER_MS      10000   /* a run this long resets the backoff */
#define SPAWN_SPACING_MS      5       /* start-up: at most ~200 workers/s */
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

static void wk_log(enum mc_log_level lvl, const struct mc_wk *wk, const char *msg,
		   const char *k1, const char *v1)
{
	mc_log(lvl, msg, "ws", wk->ws, "worker_pid", MC_LOG_NUM(wk->pid),
	       "state", mc_wk_state_name(wk->state), k1, v1, NULL);
}

static void set_error(struct mc_wk *wk, const char *text)
{
	strlcpy(wk->last_error, text, sizeof wk->last_error);
}

static void arm(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t at)
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

static void kill_worker(struct mc_sv *sv, struct mc_wk *wk, const char *why);

static void update_interest(struct mc_sv *sv, struct mc_wk *wk)
{
	uint32_t ev = EPOLLIN | (mc_ipc_writer_pending(&wk->wr) ? EPOLLOUT : 0);
	mc_sv_epoll_mod(sv, wk->fd, ev, &wk->ipc_src);
}

static void flush(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->fd < 0)
		return;
	if (mc_ipc_writer_flush(&wk->wr, wk->fd) < 0 && errno != EPIPE && errno != ECONNRESET)
		wk_log(MC_LOG_WARN, wk, "write to worker failed", "error", strerror(errno));
	update_interest(sv, wk);
}

/* A queue that cannot take a frame means the worker stopped reading. */
static void queued(struct mc_sv *sv, struct mc_wk *wk, int rc)
{
	if (rc < 0) {
		kill_worker(sv, wk, errno == ENOBUFS ? "worker stopped reading its socket"
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
	queued(sv, wk, rc);
}

void mc_wk_push_probes(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state == WK_RUNNING)
		queued(sv, wk, mc_ipc_send_probes(&wk->wr, &sv->probes));
}

static void send_handshake(struct mc_sv *sv, struct mc_wk *wk)
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
	queued(sv, wk, rc);
}

/* ---- spawning ---- */

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void close_channel(struct mc_sv *sv, struct mc_wk *wk)
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

static void after_cleanup(struct mc_sv *sv, struct mc_wk *wk);

static void spawn(struct mc_sv *sv, struct mc_wk *wk)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0) {
		set_error(wk, "socketpair failed");
		goto fail;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(sp[0]);
		close(sp[1]);
		set_error(wk, "fork failed");
		goto fail;
	}
	if (pid == 0) {
		close(sp[0]);
		mc_sv_child_forget(sv);
		mc_child_exit(mc_worker_main(sp[1], parent, sv->gen_fd));
	}
	close(sp[1]);
	wk->pid = pid;
	wk->fd = sp[0];
	wk->pidfd = pidfd_open_compat(pid);
	mc_ipc_writer_init(&wk->wr);
	wk->rd_ready = mc_ipc_reader_init(&wk->rd, mc_ipc_type_ok_for_supervisor) == 0;
	if (wk->pidfd < 0 || !wk->rd_ready ||
	    mc_sv_epoll_add(sv, wk->fd, EPOLLIN, &wk->ipc_src) < 0 ||
	    mc_sv_epoll_add(sv, wk->pidfd, EPOLLIN, &wk->pid_src) < 0) {
		/* Cannot watch it: do not let it run unwatched. */
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (wk->pidfd >= 0)
			close(wk->pidfd);
		wk->pidfd = -1;
		close_channel(sv, wk);
		wk->pid = 0;
		set_error(wk, "cannot watch the worker process");
		goto fail;
	}
	wk->state = WK_STARTING;
	wk->started_at = mc_now_ms();
	wk->stopped_msg = wk->fatal_msg = false;
	arm(sv, wk, wk->started_at + HANDSHAKE_TIMEOUT_MS);
	wk_log(MC_LOG_INFO, wk, "worker started", NULL, NULL);
	return;
fail:
	mc_log(MC_LOG_ERROR, "cannot start worker", "ws", wk->ws, "error", wk->last_error,
	       "errno", strerror(errno), NULL);
	wk->next = NEXT_RESPAWN;
	wk->crash_streak++;
	after_cleanup(sv, wk);
}

/* Queues the worker's start, rate-limited and jittered so a fleet start
 * does not hammer the server. Nothing starts before the first probe round. */
static void queue_start(struct mc_sv *sv, struct mc_wk *wk)
{
	wk->state = WK_QUEUED;
	if (!sv->probes_done || sv->shutting_down)
		return; /* mc_probes schedules the queue when the round ends */
	mc_ms_t now = mc_now_ms();
	mc_ms_t at = sv->next_spawn_slot > now ? sv->next_spawn_slot : now;
	sv->next_spawn_slot = at + SPAWN_SPACING_MS;
	arm(sv, wk, at + mc_rand_below(SPAWN_JITTER_MS));
}

void mc_wk_schedule_queued(struct mc_sv *sv)
{
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->state == WK_QUEUED && !mc_timer_armed(&wk->timer))
			queue_start(sv, wk);
}

/* ---- adding and removing ---- */

static void start_cleanup(struct mc_sv *sv, struct mc_wk *wk);

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
	/* Ids a previous run left in the ledger go offline before we register. */
	const char *const *ids;
	if (mc_ledger_get(sv->ledger, ws, &ids) > 0)
		start_cleanup(sv, wk);
	else
		queue_start(sv, wk);
	return wk;
}

void mc_wk_free(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_timerq_cancel(&sv->timers, &wk->timer);
	close_channel(sv, wk);
	if (wk->pidfd >= 0) {
		mc_sv_epoll_del(sv, wk->pidfd);
		close(wk->pidfd);
	}
	if (wk->cleanup != NULL)
		wk->cleanup->wk = NULL;
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
	arm(sv, wk, mc_now_ms() + sv->cfg.stop_timeout_ms);
	queued(sv, wk, mc_ipc_send_stop(&wk->wr));
}

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
		after_cleanup(sv, wk);
		break;
	default:
		break; /* STOPPING, CLEANUP: next decides what follows */
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

/* ---- death and cleanup ---- */

static void kill_worker(struct mc_sv *sv, struct mc_wk *wk, const char *why)
{
	(void)sv;
	if (wk->pid <= 0)
		return;
	set_error(wk, why);
	wk_log(MC_LOG_WARN, wk, "killing worker", "reason", why);
	kill(wk->pid, SIGKILL);
}

static void start_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	const char *const *ids;
	size_t n = mc_ledger_get(sv->ledger, wk->ws, &ids);
	wk->state = WK_CLEANUP;
	if (n == 0) {
		after_cleanup(sv, wk);
		return;
	}
	if (sv->shutting_down) {
		after_cleanup(sv, wk); /* the final DEREG covers the ledger */
		return;
	}
	/* A reload re-added a workspace whose orphan cleanup is still on the
	 * wire: wait for that DEREG rather than race it, or it could land
	 * after our worker's REG and take the same (upserted) ids offline. */
	wk->cleanup = mc_helper_adopt_orphan_cleanup(sv, wk);
	if (wk->cleanup != NULL) {
		wk_log(MC_LOG_INFO, wk, "waiting for the running cleanup of this workspace", NULL,
		       NULL);
		return;
	}
	wk->cleanup = mc_helper_dereg(sv, HELPER_CLEANUP, wk, n, ids, sv->cfg.http_timeout_ms);
	if (wk->cleanup == NULL)
		arm(sv, wk, mc_now_ms() + mc_backoff_next(&wk->cleanup_backoff));
}

void mc_wk_on_cleanup_done(struct mc_sv *sv, struct mc_wk *wk, int result)
{
	wk->cleanup = NULL;
	if (result == MC_HELPER_OK || result == MC_HELPER_PERMANENT) {
		if (result == MC_HELPER_PERMANENT)
			wk_log(MC_LOG_ERROR, wk, "server refused the cleanup; giving up on it", NULL, NULL);
		mc_ledger_clear(sv->ledger, wk->ws);
		mc_backoff_reset(&wk->cleanup_backoff);
		after_cleanup(sv, wk);
		return;
	}
	if (sv->shutting_down) {
		after_cleanup(sv, wk); /* the final DEREG retries the ledger */
		return;
	}
	mc_ms_t delay = mc_backoff_next(&wk->cleanup_backoff);
	wk_log(MC_LOG_WARN, wk, "cleanup failed; retrying", "in_ms", MC_LOG_NUM(delay));
	arm(sv, wk, mc_now_ms() + delay);
}

/* The worker is dead and its ids are offline: what now. */
static void after_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	mc_ms_t now = mc_now_ms();
	if (sv->shutting_down)
		wk->next = NEXT_REMOVE;
	switch (wk->next) {
	case NEXT_REMOVE:
		wk->state = WK_GONE;
		mc_wk_free(sv, wk);
		mc_sv_shutdown_progress(sv);
		return;
	case NEXT_PARK_CONFIG:
		wk->state = WK_CONFIG_ERROR;
		wk_log(MC_LOG_ERROR, wk, "worker has a configuration error; not restarted until a reload",
		       "error", wk->last_error);
		return;
	case NEXT_RESPAWN:
		break;
	}
	if (wk->crash_streak == 0) {
		queue_start(sv, wk);
		return;
	}
	mc_ms_t delay = mc_backoff_next(&wk->backoff);
	if (wk->crash_streak >= CRASH_LOOP_STREAK) {
		wk->state = WK_FAILED;
		delay = mc_jitter(sv->cfg.restart_backoff_max_ms, 0.2);
		wk_log(MC_LOG_ERROR, wk, "worker is crash-looping; retrying slowly",
		       "retry_in_ms", MC_LOG_NUM(delay));
	} else {
		wk->state = WK_BACKOFF;
	}
	arm(sv, wk, now + delay);
}

static void read_frames(struct mc_sv *sv, struct mc_wk *wk);

/* Reads whatever the dead worker still had in flight (its last REPORT). */
static void drain(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->fd >= 0 && wk->rd_ready)
		read_frames(sv, wk);
}

static void describe_exit(const siginfo_t *si, char *buf, size_t n)
{
	if (si->si_code == CLD_EXITED)
		snprintf(buf, n, "exited with status %d", si->si_status);
	else
		snprintf(buf, n, "killed by signal %d (%s)", si->si_status, strsignal(si->si_status));
}

void mc_wk_on_exit(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state == WK_GONE || wk->pidfd < 0)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)wk->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return; /* not yet */
	drain(sv, wk);
	mc_sv_epoll_del(sv, wk->pidfd);
	close(wk->pidfd);
	wk->pidfd = -1;
	close_channel(sv, wk);
	mc_timerq_cancel(&sv->timers, &wk->timer);

	char how[128];
	describe_exit(&si, how, sizeof how);
	mc_ms_t ran = mc_now_ms() - wk->started_at;
	bool expected = wk->state == WK_STOPPING;
	/* After FATAL the exit code may be lost (killed meanwhile): the
	 * worker's own verdict counts. */
	bool config_error = wk->fatal_msg ||
			    (si.si_code == CLD_EXITED && si.si_status == MC_WORKER_EXIT_CONFIG);
	wk_log(expected ? MC_LOG_INFO : MC_LOG_WARN, wk, "worker exited", "how", how);
	wk->pid = 0;
	if (!expected) {
		if (!wk->fatal_msg && wk->last_error[0] == '\0')
			set_error(wk, how);
		if (config_error) {
			wk->next = NEXT_PARK_CONFIG;
		} else {
			wk->next = NEXT_RESPAWN;
			if (ran >= HEALTHY_AFTER_MS) {
				mc_backoff_reset(&wk->backoff);
				wk->crash_streak = 0;
			}
			wk->crash_streak++;
		}
	}
	if (wk->next == NEXT_RESPAWN)
		wk->restarts++;
	start_cleanup(sv, wk);
}

/* ---- frames from a worker ---- */

static void on_hello(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	int proto, pid;
	char err[256];
	if (wk->state != WK_STARTING) {
		kill_worker(sv, wk, "HELLO after the handshake");
		return;
	}
	if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0 ||
	    proto != MC_IPC_PROTO_VERSION || pid != wk->pid) {
		kill_worker(sv, wk, "bad HELLO (protocol version or pid)");
		return;
	}
	send_handshake(sv, wk);
	if (wk->pid <= 0 || wk->state != WK_STARTING)
		return;
	mc_ms_t now = mc_now_ms();
	wk->state = WK_RUNNING;
	wk->last_pong_at = now;
	wk->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	arm(sv, wk, wk->ping_due_at);
	wk->last_error[0] = '\0';
}

static void on_report(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	struct mc_report r;
	char err[256];
	if (mc_ipc_parse_report(f, &r, err, sizeof err) < 0) {
		kill_worker(sv, wk, err);
		return;
	}
	const char **ids = r.n ? calloc(r.n, sizeof *ids) : NULL;
	for (size_t i = 0; ids != NULL && i < r.n; i++)
		ids[i] = r.ids[i];
	if (r.n > 0 && ids == NULL) {
		mc_report_clear(&r);
		kill_worker(sv, wk, "out of memory recording a report");
		return;
	}
	if (mc_ledger_set(sv->ledger, wk->ws, r.n, ids) < 0)
		wk_log(MC_LOG_ERROR, wk, "cannot journal the ledger", "error", strerror(errno));
	free(ids);
	mc_report_clear(&r);
}

static void handle_frame(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	bool flag;
	wk->last_pong_at = mc_now_ms(); /* any valid frame proves the loop runs */
	if (wk->state == WK_STARTING && f->type != MC_IPC_HELLO) {
		kill_worker(sv, wk, "message before HELLO");
		return;
	}
	switch (f->type) {
	case MC_IPC_HELLO:
		on_hello(sv, wk, f);
		return;
	case MC_IPC_PONG:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0)
			kill_worker(sv, wk, err);
		return;
	case MC_IPC_REPORT:
		on_report(sv, wk, f);
		return;
	case MC_IPC_STOPPED:
		if (mc_ipc_parse_stopped(f, &flag, err, sizeof err) < 0)
			kill_worker(sv, wk, err);
		wk->stopped_msg = true;
		return;
	case MC_IPC_FATAL:
		if (mc_ipc_parse_fatal(f, wk->last_error, sizeof wk->last_error, err, sizeof err) < 0)
			kill_worker(sv, wk, err);
		wk->fatal_msg = true;
		wk_log(MC_LOG_ERROR, wk, "worker reports a configuration error", "error", wk->last_error);
		return;
	default:
		kill_worker(sv, wk, "unexpected message type");
	}
}

static void read_frames(struct mc_sv *sv, struct mc_wk *wk)
{
	int rc;
	while (wk->fd >= 0 && (rc = mc_ipc_reader_fill(&wk->rd, wk->fd)) > 0) {
		struct mc_ipc_frame f;
		int got;
		while ((got = mc_ipc_reader_next(&wk->rd, &f)) == 1 && wk->fd >= 0)
			handle_frame(sv, wk, &f);
		if (got < 0) {
			kill_worker(sv, wk, errno == EMSGSIZE ? "oversized frame from worker"
							     : "malformed frame from worker");
			mc_sv_epoll_del(sv, wk->fd); /* ignore the rest; its exit follows */
			return;
		}
	}
	if (wk->fd >= 0 && wk->rd.eof) {
		/* EOF before exit: the exit event follows; stop polling the socket. */
		mc_sv_epoll_mod(sv, wk->fd, 0, &wk->ipc_src);
	}
}

void mc_wk_on_ipc(struct mc_sv *sv, struct mc_wk *wk, uint32_t events)
{
	if (wk->fd < 0 || wk->state == WK_GONE)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		read_frames(sv, wk);
	if (wk->fd >= 0 && (events & EPOLLOUT))
		flush(sv, wk);
}

/* ---- timers ---- */

static void running_timer(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now)
{
	mc_ms_t dead_at = wk->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	if (now >= dead_at && wk->fd >= 0) {
		/* On a starved host the pong may sit unread behind other events:
		 * read the socket before calling the worker dead. */
		read_frames(sv, wk);
		if (wk->state != WK_RUNNING || wk->pid <= 0)
			return;
		dead_at = wk->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	}
	if (now >= dead_at) {
		kill_worker(sv, wk, "missed its liveness deadline");
		return;
	}
	if (now >= wk->ping_due_at) {
		queued(sv, wk, mc_ipc_send_ping(&wk->wr, ++wk->ping_seq));
		wk->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	}
	arm(sv, wk, wk->ping_due_at < dead_at ? wk->ping_due_at : dead_at);
}

void mc_wk_on_timer(struct mc_sv *sv, struct mc_wk *wk)
{
	if (wk->state == WK_GONE)
		return;
	mc_ms_t now = mc_now_ms();
	switch (wk->state) {
	case WK_QUEUED:
	case WK_BACKOFF:
	case WK_FAILED:
		if (!sv->shutting_down)
			spawn(sv, wk);
		break;
	case WK_STARTING:
		kill_worker(sv, wk, "no handshake within 10 s");
		break;
	case WK_RUNNING:
		running_timer(sv, wk, now);
		break;
	case WK_STOPPING:
		kill_worker(sv, wk, "did not stop within stop_timeout");
		break;
	case WK_CLEANUP:
		if (wk->cleanup == NULL)
			start_cleanup(sv, wk); /* retry after backoff */
		break;
	default:
		break;
	}
}
