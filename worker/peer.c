/* The worker's side of the supervisor socket: the handshake (CONFIG, TOKEN,
 * PROBES after our HELLO), pings, probe updates, STOP; and our REPORTs.
 * Any violation ends the worker: the supervisor is the only peer it has. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/unistd.h>
#include <sodium.h>

#include "common/log.h"
#include "common/proctitle.h"
#include "ipc/task_msgs.h"
#include "worker/task_exec.h"
#include "worker/worker.h"
#include "worker/worker_int.h"

/* Non-blocking: what the socket does not take stays queued. Returns false
 * after a write error (the peer is gone). */
static bool write_queued(struct mc_worker *w)
{
	if (w->peer_gone || mc_ipc_writer_pending(&w->wr) == 0)
		return true;
	if (mc_ipc_writer_flush(&w->wr, w->fd) >= 0)
		return true;
	mc_log(MC_LOG_WARN, "supervisor socket closed", "error", strerror(errno), NULL);
	w->peer_gone = true;
	return false;
}

/* Tracked ids, then the dropped ones whose DEREG is pending: the
 * supervisor's ledger must hold every id that may be online. */
/* A digest of the ids in order (each with its NUL, so no two lists share
 * one by concatenation). */
static void report_digest(const char *const *ids, size_t n, unsigned char fp[16])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 16);
	for (size_t i = 0; i < n; i++)
		crypto_generichash_update(&st, (const unsigned char *)ids[i], strlen(ids[i]) + 1);
	crypto_generichash_final(&st, fp, 16);
}

int mc_peer_report(struct mc_worker *w)
{
	size_t nt = w->tracked.n, n = nt + w->dropped.n;
	const char **view = n > 0 ? calloc(n, sizeof *view) : NULL;
	int rc = -1;
	if (n == 0 || view != NULL) {
		for (size_t i = 0; i < nt; i++)
			view[i] = w->tracked.v[i].id;
		for (size_t i = nt; i < n; i++)
			view[i] = w->dropped.ids[i - nt];
		unsigned char fp[16];
		report_digest(view, n, fp);
		if (w->report_sent && sodium_memcmp(fp, w->report_fp, sizeof fp) == 0) {
			free(view);
			return 0; /* the supervisor has this very list */
		}
		rc = mc_ipc_send_report(&w->wr, n, view);
		if (rc == 0) {
			memcpy(w->report_fp, fp, sizeof fp);
			w->report_sent = true;
		}
	}
	free(view);
	if (rc < 0 && n > MC_MAX_REPORT) {
		/* The registrar keeps below it (report_would_overflow); only a
		 * server handing out new ids for kept rows gets here. */
		mc_log(MC_LOG_ERROR, "cannot report to the supervisor: more ids than a report holds",
		       "ids", MC_LOG_NUM(n), "report_max", MC_LOG_NUM(MC_MAX_REPORT), NULL);
		return rc;
	}
	if (rc < 0) {
		mc_log(MC_LOG_ERROR, "cannot queue a report to the supervisor",
		       "error", strerror(errno), NULL);
		return rc;
	}
	/* Written now, not on the loop's next turn: the callbacks that run
	 * before it may kill us. A write error here only marks the peer gone:
	 * the caller is mid-transition, so the loop's flush raises the STOP. */
	write_queued(w);
	return rc;
}

void mc_peer_flush(struct mc_worker *w)
{
	write_queued(w);
	/* Gone without a stop yet: a write failed, here or in a REPORT. */
	if (w->peer_gone && !w->stop_requested)
		mc_registrar_event(w, EV_STOP);
}

static void violation(struct mc_worker *w, const char *what)
{
	mc_log(MC_LOG_ERROR, "protocol violation from the supervisor", "error", what, NULL);
	w->exit_code = MC_WORKER_EXIT_FAILURE;
	mc_registrar_event(w, EV_STOP);
}

static bool same_builtins(const struct mc_probes *a, const struct mc_probes *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		size_t j = 0;
		while (j < b->n && strcmp(a->v[i].provider, b->v[j].provider) != 0)
			j++;
		if (j == b->n || strcmp(a->v[i].version, b->v[j].version) != 0 ||
		    strcmp(a->v[i].name, b->v[j].name) != 0)
			return false;
	}
	return true;
}

static int apply_config(struct mc_worker *w, const struct mc_ipc_frame *f)
{
	char err[256];
	if (mc_ipc_parse_config(f, &w->cfg, err, sizeof err) < 0) {
		violation(w, err);
		return -1;
	}
	if (w->cfg.workspace_id[0] == '\0') {
		violation(w, "CONFIG: workspace_id: empty (a link's, not a worker's)");
		return -1;
	}
	enum mc_log_level lvl;
	if (mc_log_parse_level(w->cfg.log_level, &lvl) == 0)
		mc_log_set_level(lvl);
	mc_log_set_context("worker", w->cfg.workspace_id);
	mc_proctitle_set("mc-worker", "multicad: worker %s", w->cfg.workspace_id);
	w->vprobes = mc_vprobe_cache_new(w->cfg.probe_timeout_ms);
	if (w->vprobes == NULL) {
		violation(w, "out of memory");
		return -1;
	}
	mc_agent_id_setup(w); /* who agents and probes run as (issue 11) */
	mc_backoff_init(&w->step_backoff,
			w->cfg.profile_sync_interval_ms < 1000 ? w->cfg.profile_sync_interval_ms : 1000,
			4 * w->cfg.profile_sync_interval_ms);
	w->peer = PEER_WAIT_TOKEN;
	return 0;
}

static int apply_token(struct mc_worker *w, const struct mc_ipc_frame *f)
{
	if (f->len == 0 || f->len > 4096) {
		violation(w, "TOKEN: empty or longer than 4 KiB");
		return -1;
	}
	struct mc_secret *tok = mc_secret_new((const char *)f->payload, f->len);
	if (tok == NULL) {
		violation(w, "out of memory");
		return -1;
	}
	/* Kept (guarded) for the executor's own client and to keep its value
	 * out of every agent's environment. */
	mc_secret_free(w->token);
	w->token = mc_secret_dup(tok);
	if (w->api != NULL) {
		/* A rotated token: later requests use it, nothing restarts. */
		int rc = mc_api_set_token(w->api, tok);
		if (rc == 0 && w->exec.api != NULL)
			rc = mc_api_set_token(w->exec.api, tok);
		mc_secret_free(tok);
		mc_log(MC_LOG_INFO, "token updated", NULL);
		return rc;
	}
	struct mc_api_config ac = {
		.server_url = w->cfg.server_url,
		.token = tok,
		.client_version = w->cfg.cli_version,
		.timeout_ms = w->cfg.http_timeout_ms,
		.ca_file = w->cfg.ca_file[0] ? w->cfg.ca_file : NULL,
	};
	w->api = mc_api_new(&ac);
	mc_secret_free(tok);
	if (w->api == NULL) {
		mc_worker_fatal(w, "cannot create the API client (bad server_url?)");
		return -1;
	}
	w->peer = PEER_WAIT_PROBES;
	return 0;
}

/* Every worker gets a changed PROBES set at the same instant: each waits a
 * random [0, min(profile_sync_interval, 5 s)) before re-registering, so
 * the server does not see them all at once. */
static mc_ms_t builtins_jitter(const struct mc_worker *w)
{
	long bound = w->cfg.profile_sync_interval_ms < 5000 ? w->cfg.profile_sync_interval_ms : 5000;
	return bound > 0 ? (mc_ms_t)randombytes_uniform((uint32_t)bound) : 0;
}

static int apply_probes(struct mc_worker *w, const struct mc_ipc_frame *f)
{
	struct mc_probes p;
	char err[256];
	if (mc_ipc_parse_probes(f, &p, err, sizeof err) < 0) {
		violation(w, err);
		return -1;
	}
	if (w->peer == PEER_WAIT_PROBES) {
		w->builtins = p;
		w->peer = PEER_READY;
		mc_log(MC_LOG_INFO, "worker ready", "builtins", MC_LOG_NUM(p.n), NULL);
		return 0;
	}
	if (!same_builtins(&w->builtins, &p)) {
		w->builtins = p;
		w->builtins_gen++;
		/* Also while the first step is out: its payload may hold the old
		 * set. An idle worker's first step will build with the new one. */
		if ((w->first_done || w->reg != REG_IDLE) && !w->builtins_changed) {
			w->builtins_changed = true;
			w->builtins_due_at = mc_now_ms() + builtins_jitter(w);
		}
		mc_log(MC_LOG_INFO, "built-in runtimes changed", "builtins", MC_LOG_NUM(p.n), NULL);
	}
	return 0;
}

#ifdef MC_TEST_HOOKS
/* Test builds only: writes the frames queued in lw again and again, as fast
 * as the socket takes them, keeping frame boundaries across short writes.
 * Never returns while the supervisor reads: it is meant to be killed. */
static void flood(struct mc_worker *w, struct mc_ipc_writer *lw)
{
	pid_t parent = getppid();
	size_t len = lw->tail - lw->head, off = 0;
	while (len > 0 && getppid() == parent) {
		ssize_t n = write(w->fd, lw->buf + lw->head + off, len - off);
		if (n > 0) {
			off = (off + (size_t)n) % len;
			continue;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			break; /* the supervisor is gone */
		struct pollfd p = { .fd = w->fd, .events = POLLOUT };
		poll(&p, 1, 1000);
	}
}

/* Test builds only: a flood of valid frames, 64 of them per write (PONGs
 * all answering seq, or REPORTs of what the worker tracks). */
static bool flood_hook(struct mc_worker *w, uint64_t seq)
{
	bool pongs = mc_worker_fault(w, "ipc_pong_flood");
	if (!pongs && !mc_worker_fault(w, "ipc_report_flood"))
		return false;
	const char **view = mc_tracked_id_view(&w->tracked);
	struct mc_ipc_writer lw;
	mc_ipc_writer_init(&lw);
	int rc = 0;
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = pongs ? mc_ipc_send_pong(&lw, seq)
			   : mc_ipc_send_report(&lw, view != NULL ? w->tracked.n : 0, view);
	free(view);
	if (rc == 0) {
		mc_peer_flush(w); /* what was queued before goes first, whole */
		flood(w, &lw);
	}
	mc_ipc_writer_free(&lw);
	return true;
}
#else
#define flood_hook(w, seq) ((void)(w), (void)(seq), false)
#endif

#ifdef MC_TEST_HOOKS
/* Test builds only: queues a REPORT printed by hand (the sender refuses
 * what these hooks need): the tracked ids, or MC_MAX_REPORT + 1 made-up
 * ones; blank-padded to pad_to bytes (JSON allows it). */
static void queue_raw_report(struct mc_worker *w, bool over_max, size_t pad_to)
{
	size_t cap = MC_IPC_MAX_PAYLOAD + 1, used = 0;
	size_t n = over_max ? MC_MAX_REPORT + 1 : w->tracked.n;
	char *t = malloc(cap);
	if (t == NULL)
		return;
	used += (size_t)snprintf(t, cap, "{\"runtime_ids\":[");
	for (size_t i = 0; i < n && used < cap; i++) {
		if (over_max)
			used += (size_t)snprintf(t + used, cap - used,
						 "%s\"5e000000-0000-4000-8000-%012zu\"", i ? "," : "", i);
		else
			used += (size_t)snprintf(t + used, cap - used, "%s\"%s\"", i ? "," : "",
						 w->tracked.v[i].id);
	}
	if (used + 2 < cap) {
		memcpy(t + used, "]}", 2);
		used += 2;
		while (used < pad_to && used < MC_IPC_MAX_PAYLOAD)
			t[used++] = ' ';
		if (mc_ipc_writer_queue(&w->wr, MC_IPC_REPORT, t, (uint32_t)used) == 0)
			mc_log(MC_LOG_INFO, "test hook: raw report queued", "ids", MC_LOG_NUM(n),
			       "bytes", MC_LOG_NUM(used), NULL);
		mc_peer_flush(w);
	}
	free(t);
}

/* Test builds only: frames at and one past the IPC limits. */
static bool limit_hook(struct mc_worker *w)
{
	static bool at_max_sent;
	if (mc_worker_fault(w, "ipc_frame_over_max")) {
		uint8_t h[MC_IPC_HEADER_SIZE];
		mc_ipc_header_encode(h, MC_IPC_REPORT, MC_IPC_MAX_PAYLOAD + 1);
		(void)!write(w->fd, h, sizeof h);
		return true;
	}
	if (mc_worker_fault(w, "ipc_report_over_max")) {
		queue_raw_report(w, true, 0);
		return true;
	}
	if (mc_worker_fault(w, "ipc_report_at_max") && !at_max_sent && w->tracked.n > 0) {
		at_max_sent = true; /* once, then the PONG as usual */
		queue_raw_report(w, false, MC_IPC_MAX_PAYLOAD);
	}
	return false;
}
#else
#define limit_hook(w) ((void)(w), false)
#endif

/* Test builds only: the faults a broken worker could show its supervisor. */
static bool misbehave(struct mc_worker *w, uint64_t seq)
{
	if (limit_hook(w))
		return true;
	static const uint8_t garbage[] = "\xff\xfe garbage that is no frame";
	static const uint8_t oversize[MC_IPC_HEADER_SIZE] = { 0, MC_IPC_REPORT, 0, 0, 0x7f, 0xff, 0xff, 0xff };
	if (mc_worker_fault(w, "ipc_silent"))
		return true;
	if (flood_hook(w, seq))
		return true;
	if (mc_worker_fault(w, "ipc_garbage")) {
		if (write(w->fd, garbage, sizeof garbage - 1) < 0)
			return true;
		return true;
	}
	if (mc_worker_fault(w, "ipc_oversize")) {
		if (write(w->fd, oversize, sizeof oversize) < 0)
			return true;
		return true;
	}
	return false;
}

/* A task routed here: the executor owns it (and its token) from now on. */
static void on_task(struct mc_worker *w, const struct mc_ipc_frame *f)
{
	char err[256];
	int slot;
	cJSON *task;
	struct mc_secret *token;
	if (mc_ipc_parse_task(f, &slot, &task, &token, err, sizeof err) < 0)
		return violation(w, err);
	if (slot < 0) {
		cJSON_Delete(task);
		mc_secret_free(token);
		return violation(w, "TASK without a slot");
	}
	mc_exec_accept(w, slot, task, token);
}

static void handle_frame(struct mc_worker *w, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	/* Stopping: only pings still matter (the supervisor's liveness check
	 * must not take a worker busy deregistering for a hung one). */
	if (w->stop_requested && f->type != MC_IPC_PING)
		return;
	switch (f->type) {
	case MC_IPC_CONFIG:
		if (w->peer != PEER_WAIT_CONFIG)
			return violation(w, "CONFIG after the handshake");
		apply_config(w, f);
		return;
	case MC_IPC_TOKEN:
		if (w->peer != PEER_WAIT_TOKEN && w->peer != PEER_READY)
			return violation(w, "TOKEN out of order");
		apply_token(w, f);
		return;
	case MC_IPC_PROBES:
		if (w->peer != PEER_WAIT_PROBES && w->peer != PEER_READY)
			return violation(w, "PROBES out of order");
		apply_probes(w, f);
		return;
	case MC_IPC_PING:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0)
			return violation(w, err);
		if (misbehave(w, seq))
			return;
		if (mc_ipc_send_pong(&w->wr, seq) < 0)
			mc_log(MC_LOG_ERROR, "cannot queue a pong", NULL);
		return;
	case MC_IPC_STOP:
		if (mc_ipc_parse_empty(f, err, sizeof err) < 0)
			return violation(w, err);
		mc_log(MC_LOG_INFO, "stop requested by the supervisor", NULL);
		mc_registrar_event(w, EV_STOP);
		return;
	case MC_IPC_TASK:
		if (w->peer != PEER_READY)
			return violation(w, "TASK before the handshake");
		on_task(w, f);
		return;
	case MC_IPC_PUSH_STATE:
	case MC_IPC_SYNC_NOW:
		/* Sent after PROBES (push.c): any earlier is out of order. */
		if (w->peer != PEER_READY)
			return violation(w, "push frame before the handshake");
		if (mc_push_on_frame(w, f, err, sizeof err) < 0)
			return violation(w, err);
		return;
	default:
		violation(w, "unexpected message type");
	}
}

void mc_peer_on_readable(struct mc_worker *w)
{
	int rc;
	while ((rc = mc_ipc_reader_fill(&w->rd, w->fd)) > 0) {
		struct mc_ipc_frame f;
		int got = 0;
		while ((got = mc_ipc_reader_next(&w->rd, &f)) == 1)
			handle_frame(w, &f);
		if (got < 0) {
			/* Nothing after a broken frame can be trusted: stop talking to
			 * the supervisor (it sees our exit) and deregister. */
			if (!w->stop_requested)
				violation(w, errno == EMSGSIZE ? "oversized frame"
							       : "malformed frame header");
			w->peer_gone = true;
			mc_registrar_event(w, EV_STOP);
			return;
		}
	}
	if (rc < 0 || w->rd.eof) {
		if (!w->peer_gone)
			mc_log(MC_LOG_INFO, "supervisor socket closed: stopping", NULL);
		w->peer_gone = true;
		if (!w->stop_requested && mc_ipc_reader_pending(&w->rd) > 0)
			mc_log(MC_LOG_WARN, "truncated frame at socket close", NULL);
		mc_registrar_event(w, EV_STOP);
	}
}
