/* The agent-api process: set-up right after fork and the IPC loop of its
 * main thread (supervisor socket + signalfd + the AGENT_STATUS timer).
 * HTTP runs on libmicrohttpd's threads (http.c); nothing here waits on
 * them, so a PING is always answered within one turn. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agentapi/agentapi.h"
#include "agentapi/agentapi_int.h"
#include "common/child.h"
#include "common/clock.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/proctitle.h"
#include "common/secret.h"
#include "ipc/agentapi_msgs.h"

#define STATUS_EVERY_MS 5000
#define FINAL_FLUSH_MS  1000

enum peer { WAIT_CONFIG, WAIT_TOKEN, READY };

struct loop {
	struct mca_ctx *ctx;
	int fd, sigfd;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	enum peer peer;
	bool stop, peer_gone;
	int exit_code;
	mc_ms_t next_status;
};

static void stop(struct loop *l, const char *why)
{
	if (!l->stop)
		mc_log(MC_LOG_INFO, "agent-api stopping", "reason", why, NULL);
	l->stop = true;
}

static void violation(struct loop *l, const char *what)
{
	mc_log(MC_LOG_ERROR, "protocol violation from the supervisor", "error", what, NULL);
	l->exit_code = MC_AGENTAPI_EXIT_FAILURE;
	stop(l, "protocol violation");
}

static void flush(struct loop *l)
{
	if (l->peer_gone || mc_ipc_writer_pending(&l->wr) == 0)
		return;
	if (mc_ipc_writer_flush(&l->wr, l->fd) >= 0)
		return;
	l->peer_gone = true;
	stop(l, "supervisor socket closed");
}

static void queued(struct loop *l, int rc, const char *what)
{
	if (rc < 0)
		mc_log(MC_LOG_ERROR, "cannot queue a frame to the supervisor", "frame", what,
		       "error", strerror(errno), NULL);
	flush(l);
}

static void on_config(struct loop *l, const struct mc_ipc_frame *f)
{
	char err[256];
	struct mca_ctx *ctx = l->ctx;
	if (mc_ipc_parse_config(f, &ctx->cfg, err, sizeof err) < 0)
		return violation(l, err);
	if (ctx->cfg.workspace_id[0] != '\0')
		return violation(l, "CONFIG: a worker's (workspace_id set), not the agent-api's");
	enum mc_log_level lvl;
	if (mc_log_parse_level(ctx->cfg.log_level, &lvl) == 0)
		mc_log_set_level(lvl);
	if (ctx->cfg.workspaces_root[0] != '\0') {
		ctx->rc = mc_repocache_new(ctx->cfg.workspaces_root, err, sizeof err);
		if (ctx->rc == NULL) /* answered as row 10 of the check table */
			mc_log(MC_LOG_ERROR, "repo cache not initialized", "error", err, NULL);
	}
	l->peer = WAIT_TOKEN;
}

static int make_api(struct mca_ctx *ctx, struct mc_secret *tok)
{
	struct mc_api_config ac = {
		.server_url = ctx->cfg.server_url,
		.token = tok,
		.client_version = ctx->cfg.cli_version,
		.timeout_ms = MCA_REFRESH_TIMEOUT_MS,
		.ca_file = ctx->cfg.ca_file[0] ? ctx->cfg.ca_file : NULL,
	};
	struct mc_api *api = mc_api_new(&ac);
	if (api == NULL)
		return -1;
	ctx->api = api;
	return 0;
}

static void on_token(struct loop *l, const struct mc_ipc_frame *f)
{
	struct mca_ctx *ctx = l->ctx;
	if (f->len == 0 || f->len > 4096)
		return violation(l, "TOKEN: empty or longer than 4 KiB");
	struct mc_secret *tok = mc_secret_new((const char *)f->payload, f->len);
	if (tok == NULL)
		return violation(l, "out of memory");
	pthread_mutex_lock(&ctx->api_mu);
	int rc = ctx->api != NULL ? mc_api_set_token(ctx->api, tok) : make_api(ctx, tok);
	pthread_mutex_unlock(&ctx->api_mu);
	mc_secret_free(tok);
	if (rc < 0)
		return violation(l, "cannot create the API client (bad server_url or token?)");
	if (l->peer == READY)
		return;
	if (mca_http_start(ctx) < 0) {
		mc_log(MC_LOG_ERROR, "cannot serve the local API", "error", strerror(errno), NULL);
		l->exit_code = MC_AGENTAPI_EXIT_FAILURE;
		return stop(l, "HTTP start failed");
	}
	l->peer = READY;
	mc_log(MC_LOG_INFO, "agent-api ready", NULL);
}

/* The workspace's agent identity, the latest a task brought: the cache's
 * git for that workspace runs as it (repocache.h). */
static int remember_identity(struct mca_ctx *ctx, const struct mc_agent_task *t)
{
	if (ctx->rc == NULL)
		return 0;
	struct mc_identity id = {
		.sw = t->agent_switch,
		.uid = t->agent_switch ? (uid_t)t->agent_uid : (uid_t)-1,
		.gid = t->agent_switch ? (gid_t)t->agent_gid : (gid_t)-1,
		.extra_gid = t->agent_switch && t->agent_extra_gid >= 0 ? (gid_t)t->agent_extra_gid
									 : (gid_t)-1,
	};
	char err[256];
	if (mc_repocache_set_identity(ctx->rc, t->workspace_id, &id, err, sizeof err) == 0)
		return 0;
	mc_log(MC_LOG_ERROR, "cannot take the workspace's agent identity", "task", t->task_id,
	       "workspace", t->workspace_id, "error", err, NULL);
	return -1;
}

static void on_agent_task(struct loop *l, const struct mc_ipc_frame *f)
{
	char err[256];
	struct mc_agent_task *t = malloc(sizeof *t); /* ~50 KiB: not on the stack */
	if (t == NULL)
		return violation(l, "out of memory");
	if (mc_ipc_parse_agent_task(f, t, err, sizeof err) < 0) {
		free(t);
		return violation(l, err);
	}
	if (t->event == MC_AGENT_ENDED) {
		mca_registry_remove(l->ctx->reg, t->task_id);
		mc_log(MC_LOG_DEBUG, "task ended", "task", t->task_id, NULL);
	} else if (remember_identity(l->ctx, t) < 0) {
		/* no git as the daemon for it: its checkouts get 401 */
		mca_registry_remove(l->ctx->reg, t->task_id);
	} else if (mca_registry_add(l->ctx->reg, t) < 0) {
		mc_log(MC_LOG_ERROR, "cannot record a running task", "task", t->task_id,
		       "error", strerror(errno), NULL);
	} else {
		mc_log(MC_LOG_DEBUG, "task running", "task", t->task_id, NULL);
	}
	free(t);
}

static void handle_frame(struct loop *l, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	switch (f->type) {
	case MC_IPC_CONFIG:
		if (l->peer != WAIT_CONFIG)
			return violation(l, "CONFIG after the handshake");
		return on_config(l, f);
	case MC_IPC_TOKEN:
		if (l->peer == WAIT_CONFIG)
			return violation(l, "TOKEN before CONFIG");
		return on_token(l, f);
	case MC_IPC_PING:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0)
			return violation(l, err);
		return queued(l, mc_ipc_send_pong(&l->wr, seq), "PONG");
	case MC_IPC_STOP:
		if (mc_ipc_parse_empty(f, err, sizeof err) < 0)
			return violation(l, err);
		return stop(l, "stop requested");
	case MC_IPC_AGENT_TASK:
		if (l->peer != READY)
			return violation(l, "AGENT_TASK before the handshake");
		return on_agent_task(l, f);
	default:
		return violation(l, "unexpected message type");
	}
}

static void on_readable(struct loop *l)
{
	int rc = 0;
	while (!l->peer_gone && !l->stop && (rc = mc_ipc_reader_fill(&l->rd, l->fd)) > 0) {
		struct mc_ipc_frame f;
		int got;
		while (!l->stop && (got = mc_ipc_reader_next(&l->rd, &f)) == 1)
			handle_frame(l, &f);
		if (!l->stop && got < 0) {
			violation(l, errno == EMSGSIZE ? "oversized frame" : "malformed frame header");
			l->peer_gone = true;
			return;
		}
	}
	if (!l->peer_gone && (rc < 0 || l->rd.eof)) {
		l->peer_gone = true;
		stop(l, "supervisor socket closed");
	}
}

static void on_signal(struct loop *l)
{
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo != SIGHUP)
			stop(l, strsignal((int)si.ssi_signo));
}

static void status_timer(struct loop *l, mc_ms_t now)
{
	if (l->peer != READY || now < l->next_status)
		return;
	l->next_status = now + STATUS_EVERY_MS;
	int64_t bytes = l->ctx->rc != NULL ? mc_repocache_disk_bytes(l->ctx->rc) : 0;
	struct mc_agent_status s = {
		.repo_cache_bytes = bytes > 0 ? (uint64_t)bytes : 0,
		.checkouts_running = atomic_load(&l->ctx->checkouts_running),
	};
	queued(l, mc_ipc_send_agent_status(&l->wr, &s), "AGENT_STATUS");
}

static void loop_once(struct loop *l)
{
	mc_ms_t now = mc_now_ms();
	status_timer(l, now);
	if (l->peer == READY)
		mca_gc_tick(l->ctx, now);
	flush(l);
	if (l->stop)
		return;
	struct pollfd p[2] = {
		{ .fd = l->fd, .events = POLLIN | (mc_ipc_writer_pending(&l->wr) ? POLLOUT : 0) },
		{ .fd = l->sigfd, .events = POLLIN },
	};
	int wait = l->peer == READY ?
		mc_ms_wait(mc_ms_earliest(l->next_status, mca_gc_next()), now, STATUS_EVERY_MS) : 1000;
	if (poll(p, 2, wait) < 0)
		return; /* EINTR: the next turn */
	if (p[1].revents)
		on_signal(l);
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		on_readable(l);
}

static int ctx_init(struct mca_ctx *ctx, int listen_fd, pid_t parent)
{
	memset(ctx, 0, sizeof *ctx);
	pthread_mutex_init(&ctx->api_mu, NULL);
	pthread_mutex_init(&ctx->ws_mu, NULL);
	ctx->started_ms = mc_now_ms();
	ctx->lock_wait_ms = MCA_LOCK_WAIT_MS;
	ctx->listen_fd = listen_fd;
	ctx->daemon_pid = parent;
	ctx->reg = mca_registry_new();
	return ctx->reg != NULL ? 0 : -1;
}

static void ctx_free(struct mca_ctx *ctx)
{
	mca_http_stop(ctx); /* first: connection threads use the rest */
	mca_gc_join();
	mca_ws_free_all(ctx);
	mc_repocache_free(ctx->rc);
	mc_api_free(ctx->api);
	mca_registry_free(ctx->reg);
	mc_worker_config_clear(&ctx->cfg);
	pthread_mutex_destroy(&ctx->api_mu);
	pthread_mutex_destroy(&ctx->ws_mu);
}

static int run(struct loop *l, pid_t parent)
{
	l->fd = MC_AGENTAPI_IPC_FD;
	l->peer = WAIT_CONFIG;
	mc_ipc_writer_init(&l->wr);
	if (mc_ipc_reader_init(&l->rd, mc_ipc_type_ok_for_agentapi) < 0 ||
	    (l->sigfd = mc_child_signalfd()) < 0) {
		mc_log(MC_LOG_ERROR, "agent-api set-up failed", "error", strerror(errno), NULL);
		l->exit_code = MC_AGENTAPI_EXIT_FAILURE;
		l->stop = true;
	}
	if (getppid() != parent)
		stop(l, "the supervisor is gone");
	queued(l, mc_ipc_send_hello(&l->wr, (int)getpid()), "HELLO");
	while (!l->stop)
		loop_once(l);
	mca_http_stop(l->ctx); /* no new checkouts; running ones end by their deadline */
	if (!l->peer_gone) {
		queued(l, mc_ipc_send_stopped(&l->wr, false), "STOPPED");
		mc_ipc_writer_drain(&l->wr, l->fd, FINAL_FLUSH_MS);
	}
	mc_ipc_reader_free(&l->rd);
	mc_ipc_writer_free(&l->wr);
	if (l->sigfd >= 0)
		close(l->sigfd);
	return l->exit_code;
}

int mc_agentapi_main(int ipc_fd, int listen_fd, pid_t parent)
{
	mc_log_set_context("agent-api", NULL);
	mc_proctitle_set("mc-agentapi", "multicad: agent-api");
	if (mc_child_take_fds(ipc_fd, MC_AGENTAPI_IPC_FD, listen_fd, MC_AGENTAPI_LISTEN_FD) < 0) {
		mc_log(MC_LOG_ERROR, "agent-api fd set-up failed", "error", strerror(errno), NULL);
		return MC_AGENTAPI_EXIT_FAILURE;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	mc_secret_forbid_dumps(); /* it holds the daemon token */
	static struct mca_ctx ctx; /* large (the configuration) */
	struct loop l = { .ctx = &ctx, .sigfd = -1 };
	if (ctx_init(&ctx, MC_AGENTAPI_LISTEN_FD, parent) < 0) {
		ctx_free(&ctx);
		return MC_AGENTAPI_EXIT_FAILURE;
	}
	int code = run(&l, parent);
	ctx_free(&ctx);
	return code;
}
