/* The link's side of the supervisor socket: the handshake (CONFIG with
 * workspace_id "", TOKEN after our HELLO), PING/PONG, STOP, and the task
 * frames (SLOTS, RUNTIMES, WAKE, TASK_FAIL). Any violation ends the link;
 * the supervisor respawns it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proctitle.h"
#include "common/secret.h"
#include "ipc/task_msgs.h"
#include "link/link.h"
#include "link/link_int.h"
#include "link/ws.h"

void mc_link_peer_flush(struct mc_link *l)
{
	if (l->peer_gone || mc_ipc_writer_pending(&l->wr) == 0)
		return;
	if (mc_ipc_writer_flush(&l->wr, l->fd) >= 0)
		return;
	mc_log(MC_LOG_WARN, "supervisor socket closed", "error", strerror(errno), NULL);
	l->peer_gone = true;
	mc_link_stop(l, "supervisor socket closed");
}

void mc_link_queued(struct mc_link *l, int rc, const char *what)
{
	if (rc < 0) {
		/* The supervisor stopped reading: it will see us hung and kill us. */
		mc_log(MC_LOG_ERROR, "cannot queue a frame to the supervisor", "frame", what,
		       "error", strerror(errno), NULL);
		return;
	}
	mc_link_peer_flush(l);
}

static void violation(struct mc_link *l, const char *what)
{
	mc_log(MC_LOG_ERROR, "protocol violation from the supervisor", "error", what, NULL);
	l->exit_code = MC_LINK_EXIT_FAILURE;
	mc_link_stop(l, "protocol violation");
}

static void on_config(struct mc_link *l, const struct mc_ipc_frame *f)
{
	char err[256];
	if (mc_ipc_parse_config(f, &l->cfg, err, sizeof err) < 0)
		return violation(l, err);
	if (l->cfg.workspace_id[0] != '\0')
		return violation(l, "CONFIG: a worker's (workspace_id set), not the link's");
	enum mc_log_level lvl;
	if (mc_log_parse_level(l->cfg.log_level, &lvl) == 0)
		mc_log_set_level(lvl);
	l->peer = LP_WAIT_TOKEN;
}

static void on_token(struct mc_link *l, const struct mc_ipc_frame *f)
{
	if (f->len == 0 || f->len > 4096)
		return violation(l, "TOKEN: empty or longer than 4 KiB");
	struct mc_secret *tok = mc_secret_new((const char *)f->payload, f->len);
	if (tok == NULL)
		return violation(l, "out of memory");
	mc_ws_set_token(l, tok); /* the websocket's upgrade sends it too */
	if (l->api != NULL) {
		mc_api_set_token(l->api, tok); /* rotated: the next requests use it */
		mc_secret_free(tok);
		return;
	}
	struct mc_api_config ac = {
		.server_url = l->cfg.server_url,
		.token = tok,
		.client_version = l->cfg.cli_version,
		.timeout_ms = l->cfg.http_timeout_ms,
		.ca_file = l->cfg.ca_file[0] ? l->cfg.ca_file : NULL,
	};
	l->api = mc_api_new(&ac);
	mc_secret_free(tok);
	if (l->api == NULL)
		return violation(l, "cannot create the API client (bad server_url?)");
	l->peer = LP_READY;
	mc_log(MC_LOG_INFO, "link ready", NULL);
	mc_claim_event(l, CE_WAKE);
	mc_ws_ready(l);
}

static void on_runtimes(struct mc_link *l, const struct mc_ipc_frame *f)
{
	char err[256], ws[40];
	size_t n;
	char (*ids)[40];
	if (mc_ipc_parse_runtimes(f, ws, &n, &ids, err, sizeof err) < 0)
		return violation(l, err);
	int rc = mc_link_set_runtimes(l, ws, n, ids);
	if (rc < 0)
		mc_log(MC_LOG_ERROR, "out of memory recording runtimes", "ws", ws, NULL);
	if (rc > 0)
		mc_log(MC_LOG_DEBUG, "runtimes changed", "ws", ws, "runtimes", MC_LOG_NUM(n), NULL);
}

static void on_task_fail(struct mc_link *l, const struct mc_ipc_frame *f)
{
	char err[256], tid[40], rid[40], reason[64], error[512];
	if (mc_ipc_parse_task_fail(f, tid, rid, reason, sizeof reason, error, sizeof error, err,
				   sizeof err) < 0)
		return violation(l, err);
	mc_fails_add(l, tid, reason, error);
}

/* Frames that need the handshake done. */
static void ready_frame(struct mc_link *l, const struct mc_ipc_frame *f)
{
	char err[256];
	int grant;
	switch (f->type) {
	case MC_IPC_SLOTS:
		if (mc_ipc_parse_slots(f, &grant, err, sizeof err) < 0)
			return violation(l, err);
		mc_claim_on_slots(l, grant);
		return;
	case MC_IPC_RUNTIMES:
		on_runtimes(l, f);
		return;
	case MC_IPC_WAKE:
		if (mc_ipc_parse_wake(f, err, sizeof err, err, sizeof err) < 0)
			return violation(l, err);
		mc_claim_event(l, CE_WAKE);
		return;
	case MC_IPC_TASK_FAIL:
		on_task_fail(l, f);
		return;
	default:
		violation(l, "unexpected message type");
	}
}

static void handle_frame(struct mc_link *l, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	switch (f->type) {
	case MC_IPC_CONFIG:
		if (l->peer != LP_WAIT_CONFIG)
			return violation(l, "CONFIG after the handshake");
		return on_config(l, f);
	case MC_IPC_TOKEN:
		if (l->peer == LP_WAIT_CONFIG)
			return violation(l, "TOKEN before CONFIG");
		return on_token(l, f);
	case MC_IPC_PING:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0)
			return violation(l, err);
		mc_link_queued(l, mc_ipc_send_pong(&l->wr, seq), "PONG");
		return;
	case MC_IPC_STOP:
		if (mc_ipc_parse_empty(f, err, sizeof err) < 0)
			return violation(l, err);
		mc_log(MC_LOG_INFO, "stop requested by the supervisor", NULL);
		mc_link_stop(l, "stop requested");
		return;
	default:
		break;
	}
	if (l->peer != LP_READY)
		return violation(l, "task frame before the handshake");
	ready_frame(l, f);
}

void mc_link_peer_on_readable(struct mc_link *l)
{
	int rc = 0;
	while (!l->peer_gone && (rc = mc_ipc_reader_fill(&l->rd, l->fd)) > 0) {
		struct mc_ipc_frame f;
		int got;
		while ((got = mc_ipc_reader_next(&l->rd, &f)) == 1)
			handle_frame(l, &f);
		if (got < 0) {
			violation(l, errno == EMSGSIZE ? "oversized frame" : "malformed frame header");
			l->peer_gone = true;
			return;
		}
	}
	if (!l->peer_gone && (rc < 0 || l->rd.eof)) {
		l->peer_gone = true;
		mc_link_stop(l, "supervisor socket closed");
	}
}
