/* The link process seen from the supervisor: spawn (after the first probe
 * round), handshake, liveness pings like a worker's, respawn with backoff
 * after a death, stop first at shutdown. What it sends (SLOTS_REQ, TASK,
 * CLAIM_DONE) is route.c's.
 *
 *   DOWN -tick-> STARTING -HELLO-> RUNNING -STOP-> STOPPING -exit-> DONE
 *   STARTING/RUNNING -exit, kill-> BACKOFF -timer-> STARTING
 *
 * The link holds no runtimes and no task once handed over, so its death
 * needs no cleanup: the grant it held is returned, and the server
 * re-delivers a claim whose answer was lost. Forked directly (the fork
 * server makes workers only); mc_sv_child_forget drops the token first and
 * the child closes every fd but its socket. */
#include "supervisor/agentapi_proc.h"
#include "supervisor/link_proc.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/child.h"
#include "common/log.h"
#include "link/link.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define LINK_FRAME_BUDGET    64

static const char *const state_names[LPS_COUNT] = {
	[LPS_DOWN] = "down", [LPS_STARTING] = "starting", [LPS_RUNNING] = "running",
	[LPS_STOPPING] = "stopping", [LPS_BACKOFF] = "backoff", [LPS_DONE] = "stopped",
};

static void arm(struct mc_sv *sv, struct mc_link_proc *lp, mc_ms_t at)
{
	if (mc_timerq_arm(&sv->timers, &lp->timer, at) < 0)
		mc_log(MC_LOG_ERROR, "out of memory arming the link's timer", NULL);
}

/* Allocated once, at the first tick; freed by mc_link_proc_free. */
static struct mc_link_proc *get(struct mc_sv *sv)
{
	if (sv->link != NULL)
		return sv->link;
	struct mc_link_proc *lp = calloc(1, sizeof *lp);
	if (lp == NULL)
		return NULL;
	lp->fd = lp->pidfd = -1;
	lp->ipc_src = (struct mc_src){ SRC_LINK_IPC, lp };
	lp->pid_src = (struct mc_src){ SRC_LINK_PID, lp };
	mc_timer_init(&lp->timer, TIMER_LINK, lp);
	mc_backoff_init(&lp->backoff, sv->cfg.restart_backoff_min_ms, sv->cfg.restart_backoff_max_ms);
	sv->link = lp;
	return lp;
}

bool mc_link_proc_running(const struct mc_sv *sv)
{
	return sv->link != NULL && sv->link->state == LPS_RUNNING && !sv->link->untrusted;
}

/* ---- writing ---- */

static void update_interest(struct mc_sv *sv, struct mc_link_proc *lp)
{
	uint32_t ev = (lp->untrusted ? 0 : EPOLLIN) |
		      (mc_ipc_writer_pending(&lp->wr) ? EPOLLOUT : 0);
	mc_sv_epoll_mod(sv, lp->fd, ev, &lp->ipc_src);
}

void mc_link_proc_kill_why(struct mc_sv *sv, const char *why)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->pid <= 0 || lp->pidfd < 0)
		return;
	strlcpy(lp->last_error, why, sizeof lp->last_error);
	mc_log(MC_LOG_WARN, "killing the link", "link_pid", MC_LOG_NUM(lp->pid), "reason", why,
	       NULL);
	lp->untrusted = true;
	if (lp->fd >= 0)
		mc_sv_epoll_mod(sv, lp->fd, 0, &lp->ipc_src);
	mc_pidfd_kill(lp->pidfd, SIGKILL);
}

int mc_link_proc_queued(struct mc_sv *sv, int rc)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->fd < 0)
		return -1;
	if (rc < 0) {
		if (errno != ENOBUFS)
			return -1; /* that frame only: the caller decides */
		mc_link_proc_kill_why(sv, "the link stopped reading its socket");
		return -1;
	}
	if (mc_ipc_writer_flush(&lp->wr, lp->fd) < 0 && errno != EPIPE && errno != ECONNRESET)
		mc_log(MC_LOG_WARN, "write to the link failed", "error", strerror(errno), NULL);
	update_interest(sv, lp);
	return 0;
}

/* ---- spawning ---- */

static void close_channel(struct mc_sv *sv, struct mc_link_proc *lp)
{
	if (lp->fd >= 0) {
		mc_sv_epoll_del(sv, lp->fd);
		close(lp->fd);
		lp->fd = -1;
	}
	if (lp->rd_ready)
		mc_ipc_reader_free(&lp->rd);
	lp->rd_ready = false;
	mc_ipc_writer_free(&lp->wr);
}

static void respawn_later(struct mc_sv *sv, struct mc_link_proc *lp)
{
	mc_ms_t d = mc_backoff_next(&lp->backoff);
	lp->state = LPS_BACKOFF;
	arm(sv, lp, mc_now_ms() + d);
	mc_log(MC_LOG_INFO, "link restarts later", "in_ms", MC_LOG_NUM(d), NULL);
}

static int fork_link(struct mc_sv *sv, pid_t *pid, int *fd)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
		return -1;
	pid_t parent = getpid();
	*pid = fork();
	if (*pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (*pid == 0) {
		close(sp[0]);
		mc_sv_child_forget(sv);
		mc_child_exit(mc_link_main(sp[1], parent));
	}
	close(sp[1]);
	*fd = sp[0];
	return 0;
}

static void spawn(struct mc_sv *sv, struct mc_link_proc *lp)
{
	pid_t pid;
	int fd;
	if (fork_link(sv, &pid, &fd) < 0) {
		strlcpy(lp->last_error, "fork failed", sizeof lp->last_error);
		mc_log(MC_LOG_ERROR, "cannot start the link", "error", strerror(errno), NULL);
		respawn_later(sv, lp);
		return;
	}
	lp->pid = pid;
	lp->fd = fd;
	lp->pidfd = mc_pidfd_open(pid);
	mc_ipc_writer_init(&lp->wr);
	lp->rd_ready = mc_ipc_reader_init(&lp->rd, mc_ipc_type_ok_from_link) == 0;
	lp->untrusted = lp->stopped_msg = false;
	lp->ping_acked = lp->ping_seq;
	lp->outstanding = 0;
	if (lp->pidfd < 0 || !lp->rd_ready || mc_sv_epoll_add(sv, fd, EPOLLIN, &lp->ipc_src) < 0 ||
	    mc_sv_epoll_add(sv, lp->pidfd, EPOLLIN, &lp->pid_src) < 0) {
		/* unwatchable: it must not run */
		if (lp->pidfd < 0 || mc_pidfd_kill(lp->pidfd, SIGKILL) < 0)
			kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (lp->pidfd >= 0) {
			mc_sv_epoll_del(sv, lp->pidfd);
			close(lp->pidfd);
		}
		lp->pidfd = -1;
		lp->pid = 0;
		close_channel(sv, lp);
		strlcpy(lp->last_error, "cannot watch the link process", sizeof lp->last_error);
		respawn_later(sv, lp);
		return;
	}
	lp->state = LPS_STARTING;
	lp->started_at = mc_now_ms();
	arm(sv, lp, lp->started_at + HANDSHAKE_TIMEOUT_MS);
	mc_log(MC_LOG_INFO, "link started", "link_pid", MC_LOG_NUM(pid), NULL);
}

void mc_link_proc_tick(struct mc_sv *sv)
{
	if (!sv->probes_done || sv->shutting_down)
		return;
	if (sv->link != NULL && sv->link->state != LPS_DOWN)
		return;
	struct mc_link_proc *lp = get(sv);
	if (lp == NULL)
		return;
	spawn(sv, lp);
}

/* ---- the handshake and liveness ---- */

void mc_sv_task_config(const struct mc_sv *sv, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	/* The poll and the host's slots are the link's and the supervisor's
	 * business: a change of them restarts no worker. */
	strlcpy(c->workspaces_root, g->workspaces_root, sizeof c->workspaces_root);
	strlcpy(c->state_dir, g->state_dir, sizeof c->state_dir);
	c->task_idle_timeout_ms = g->task_idle_timeout_ms;
	c->task_stop_grace_ms = g->task_stop_grace_ms;
	c->task_retention_ms = g->task_retention_ms;
	c->stop_timeout_ms = g->stop_timeout_ms;
	c->agent_api_port = mc_aapi_port(sv); /* the port bound: MULTICA_DAEMON_PORT */
}

void mc_link_proc_build_config(const struct mc_sv *sv, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	memset(c, 0, sizeof *c);
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
	c->task_poll_interval_ms = g->task_poll_interval_ms;
	c->max_concurrent_tasks = g->max_concurrent_tasks;
}

static void config_digest(const struct mc_sv *sv, char out[65])
{
	struct mc_worker_config c;
	mc_link_proc_build_config(sv, &c);
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

static void send_handshake(struct mc_sv *sv, struct mc_link_proc *lp)
{
	struct mc_worker_config c;
	mc_link_proc_build_config(sv, &c);
	config_digest(sv, lp->cfg_digest);
	lp->reloads_seen = sv->reloads;
	lp->token_sent = sv->token;
	int rc = mc_ipc_send_config(&lp->wr, &c);
	if (rc == 0 && sv->token != NULL) {
		const char *t = mc_secret_open(sv->token);
		rc = mc_ipc_send_token(&lp->wr, t, mc_secret_len(sv->token));
		mc_secret_close(sv->token);
	}
	if (mc_link_proc_queued(sv, rc) < 0 && rc < 0)
		mc_link_proc_kill_why(sv, "cannot send the link its configuration");
}

void mc_link_proc_on_hello(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	int proto, pid;
	char err[256];
	if (lp->state != LPS_STARTING) {
		mc_link_proc_kill_why(sv, "HELLO after the handshake");
		return;
	}
	if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0 ||
	    proto != MC_IPC_PROTO_VERSION || pid != lp->pid) {
		mc_link_proc_kill_why(sv, "bad HELLO from the link");
		return;
	}
	send_handshake(sv, lp);
	if (lp->untrusted)
		return;
	mc_ms_t now = mc_now_ms();
	lp->state = LPS_RUNNING;
	lp->last_pong_at = now;
	lp->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	arm(sv, lp, lp->ping_due_at);
	lp->last_error[0] = '\0';
	mc_route_link_ready(sv);
}

void mc_link_proc_on_pong(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	struct mc_link_proc *lp = sv->link;
	uint64_t seq;
	char err[256];
	if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0 || seq <= lp->ping_acked ||
	    seq > lp->ping_seq) {
		mc_link_proc_kill_why(sv, "unsolicited or bad PONG from the link");
		return;
	}
	lp->ping_acked = seq;
	lp->last_pong_at = mc_now_ms();
}

static void read_frames(struct mc_sv *sv, struct mc_link_proc *lp, unsigned budget)
{
	unsigned handled = 0;
	while (lp->fd >= 0 && !lp->untrusted && handled < budget &&
	       mc_ipc_reader_fill(&lp->rd, lp->fd) > 0) {
		struct mc_ipc_frame f;
		int got = 0;
		while (lp->fd >= 0 && !lp->untrusted && (got = mc_ipc_reader_next(&lp->rd, &f)) == 1) {
			if (lp->state == LPS_STARTING && f.type != MC_IPC_HELLO)
				mc_link_proc_kill_why(sv, "message before HELLO");
			else
				mc_route_link_frame(sv, &f);
			handled++;
		}
		if (got < 0) {
			mc_link_proc_kill_why(sv, errno == EMSGSIZE ? "oversized frame from the link"
								    : "malformed frame from the link");
			return;
		}
	}
	if (lp->fd >= 0 && !lp->untrusted && lp->rd.eof)
		mc_sv_epoll_mod(sv, lp->fd, 0, &lp->ipc_src);
}

void mc_link_proc_on_ipc(struct mc_sv *sv, uint32_t events)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->fd < 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		read_frames(sv, lp, LINK_FRAME_BUDGET);
	if (lp->fd >= 0 && (events & EPOLLOUT))
		mc_link_proc_queued(sv, 0);
}

static void running_timer(struct mc_sv *sv, struct mc_link_proc *lp, mc_ms_t now)
{
	mc_ms_t dead_at = lp->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	if (now >= dead_at && lp->fd >= 0) {
		read_frames(sv, lp, LINK_FRAME_BUDGET); /* the pong may sit unread */
		dead_at = lp->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	}
	if (lp->untrusted)
		return;
	if (now >= dead_at) {
		mc_link_proc_kill_why(sv, "missed its liveness deadline");
		return;
	}
	if (now >= lp->ping_due_at) {
		mc_link_proc_queued(sv, mc_ipc_send_ping(&lp->wr, ++lp->ping_seq));
		lp->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	}
	arm(sv, lp, lp->ping_due_at < dead_at ? lp->ping_due_at : dead_at);
}

void mc_link_proc_on_timer(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL)
		return;
	switch (lp->state) {
	case LPS_STARTING:
		mc_link_proc_kill_why(sv, "no handshake within 10 s");
		break;
	case LPS_RUNNING:
		running_timer(sv, lp, mc_now_ms());
		break;
	case LPS_STOPPING:
		mc_link_proc_kill_why(sv, "did not stop in time");
		break;
	case LPS_BACKOFF:
		if (!sv->shutting_down)
			spawn(sv, lp);
		break;
	default:
		break;
	}
}

/* ---- death ---- */

void mc_link_proc_on_exit(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->pidfd < 0)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)lp->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	if (lp->fd >= 0 && lp->rd_ready && !lp->untrusted)
		read_frames(sv, lp, UINT32_MAX); /* its last frames (TASKs) */
	mc_sv_epoll_del(sv, lp->pidfd);
	close(lp->pidfd);
	lp->pidfd = -1;
	close_channel(sv, lp);
	mc_timerq_cancel(&sv->timers, &lp->timer);
	char how[128];
	if (si.si_code == CLD_EXITED)
		snprintf(how, sizeof how, "exited with status %d", si.si_status);
	else
		snprintf(how, sizeof how, "killed by signal %d (%s)", si.si_status,
			 strsignal(si.si_status));
	if (lp->restart && !sv->shutting_down) {
		/* stopped for a new CONFIG: back at once */
		lp->restart = false;
		lp->state = LPS_DOWN;
		mc_link_proc_tick(sv);
		return;
	}
	bool stopping = lp->state == LPS_STOPPING || sv->shutting_down;
	mc_log(stopping ? MC_LOG_INFO : MC_LOG_WARN, "link exited", "link_pid", MC_LOG_NUM(lp->pid),
	       "how", how, NULL);
	lp->pid = 0;
	mc_route_link_gone(sv);
	if (stopping) {
		lp->state = LPS_DONE;
		mc_sv_shutdown_progress(sv);
		return;
	}
	if (lp->last_error[0] == '\0')
		strlcpy(lp->last_error, how, sizeof lp->last_error);
	if (mc_now_ms() - lp->started_at >= 10000)
		mc_backoff_reset(&lp->backoff);
	lp->restarts++;
	respawn_later(sv, lp);
}

void mc_link_proc_follow(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (!mc_link_proc_running(sv))
		return;
	if (lp->reloads_seen != sv->reloads) {
		lp->reloads_seen = sv->reloads;
		char d[65];
		config_digest(sv, d);
		if (strcmp(d, lp->cfg_digest) != 0) {
			mc_log(MC_LOG_INFO, "the link's configuration changed; restarting it", NULL);
			lp->restart = true;
			mc_link_proc_stop(sv);
			return;
		}
	}
	if (lp->token_sent != sv->token && sv->token != NULL) {
		lp->token_sent = sv->token;
		const char *t = mc_secret_open(sv->token);
		int rc = mc_ipc_send_token(&lp->wr, t, mc_secret_len(sv->token));
		mc_secret_close(sv->token);
		mc_link_proc_queued(sv, rc);
	}
}

/* ---- stop ---- */

void mc_link_proc_stop(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL)
		return;
	switch (lp->state) {
	case LPS_STARTING:
	case LPS_RUNNING:
		lp->state = LPS_STOPPING;
		arm(sv, lp, mc_now_ms() + sv->cfg.stop_timeout_ms);
		if (mc_link_proc_queued(sv, mc_ipc_send_stop(&lp->wr)) < 0)
			mc_link_proc_kill_why(sv, "cannot send STOP to the link");
		break;
	case LPS_DOWN:
	case LPS_BACKOFF:
		mc_timerq_cancel(&sv->timers, &lp->timer);
		lp->state = LPS_DONE;
		break;
	default:
		break;
	}
}

bool mc_link_proc_done(const struct mc_sv *sv)
{
	return sv->link == NULL || sv->link->pid <= 0;
}

void mc_link_proc_kill(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (lp == NULL || lp->pid <= 0 || lp->pidfd < 0)
		return;
	mc_pidfd_kill(lp->pidfd, SIGKILL);
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)lp->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	mc_sv_epoll_del(sv, lp->pidfd);
	close(lp->pidfd);
	lp->pidfd = -1;
	lp->pid = 0;
	close_channel(sv, lp);
	mc_timerq_cancel(&sv->timers, &lp->timer);
	lp->state = LPS_DONE;
	mc_route_link_gone(sv);
}

void mc_link_proc_free(struct mc_sv *sv)
{
	if (sv->link == NULL)
		return;
	mc_link_proc_kill(sv);
	mc_timerq_cancel(&sv->timers, &sv->link->timer);
	free(sv->link->dirty);
	free(sv->link);
	sv->link = NULL;
}

/* ---- status ---- */

void mc_link_proc_status(struct mc_sv *sv, struct cJSON *root)
{
	const struct mc_link_proc *lp = sv->link;
	cJSON *o = cJSON_AddObjectToObject(root, "link");
	if (o != NULL) {
		if (lp != NULL && lp->pid > 0)
			cJSON_AddNumberToObject(o, "pid", lp->pid);
		else
			cJSON_AddNullToObject(o, "pid");
		cJSON_AddStringToObject(o, "state", lp != NULL ? state_names[lp->state] : "down");
		cJSON_AddNumberToObject(o, "restarts", lp != NULL ? lp->restarts : 0);
		if (lp != NULL && lp->last_error[0])
			cJSON_AddStringToObject(o, "last_error", lp->last_error);
		else
			cJSON_AddNullToObject(o, "last_error");
	}
	if (cJSON_GetObjectItemCaseSensitive(root, "slots") != NULL)
		return; /* another part of the status said it already */
	cJSON *s = cJSON_AddObjectToObject(root, "slots");
	if (s != NULL) {
		cJSON_AddNumberToObject(s, "max", sv->tasks.max);
		cJSON_AddNumberToObject(s, "used", sv->tasks.used);
		cJSON_AddNumberToObject(s, "reserved", sv->tasks.reserved);
	}
}
