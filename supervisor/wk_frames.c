/* What a worker sends, and its liveness. A worker is untrusted code as far
 * as the supervisor's loop goes: every frame type is bounded (HELLO, FATAL
 * and STOPPED once, a PONG only in answer to a PING, REPORTs through a
 * token bucket), each wakeup reads a bounded number of frames, and only a
 * PONG answering a PING proves the worker's loop runs. Breaking any of
 * that kills the worker with the reason, and nothing more it sent is
 * believed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "supervisor/wk_int.h"

#define REPORT_BURST  20      /* REPORTs at once ... */
#define REPORT_PER_S  10      /* ... and sustained */

void mc_wk_frames_reset(struct mc_wk *wk, mc_ms_t now)
{
	wk->ping_acked = wk->ping_seq; /* no PING of an earlier life is answerable */
	wk->report_credit = REPORT_BURST * 1000;
	wk->report_credit_at = now;
	wk->untrusted = false;
	wk->tasks_ready = false;
}

/* The token bucket, in thousandths of a REPORT: one more allowed? */
static bool report_allowed(struct mc_wk *wk, mc_ms_t now)
{
	int64_t credit = wk->report_credit + (int64_t)(now - wk->report_credit_at) * REPORT_PER_S;
	wk->report_credit = credit < REPORT_BURST * 1000 ? credit : REPORT_BURST * 1000;
	wk->report_credit_at = now;
	if (wk->report_credit < 1000)
		return false;
	wk->report_credit -= 1000;
	return true;
}

static void on_hello(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	int proto, pid;
	char err[256];
	if (wk->state != WK_STARTING) {
		mc_wk_violation(sv, wk, "HELLO after the handshake");
		return;
	}
	if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0 ||
	    proto != MC_IPC_PROTO_VERSION || pid != wk->pid) {
		mc_wk_violation(sv, wk, "bad HELLO (protocol version or pid)");
		return;
	}
	mc_wk_send_handshake(sv, wk);
	if (wk->pid <= 0 || wk->state != WK_STARTING)
		return;
	mc_ms_t now = mc_now_ms();
	wk->state = WK_RUNNING;
	wk->last_pong_at = now;
	wk->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	mc_wk_arm(sv, wk, wk->ping_due_at);
	wk->last_error[0] = '\0';
}

static void on_pong(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0) {
		mc_wk_violation(sv, wk, err);
		return;
	}
	/* Each PING is answered once, in order. */
	if (seq <= wk->ping_acked || seq > wk->ping_seq) {
		mc_wk_violation(sv, wk, "unsolicited PONG");
		return;
	}
	wk->ping_acked = seq;
	wk->last_pong_at = mc_now_ms();
}

static void on_report(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	struct mc_report r;
	char err[256];
	if (!report_allowed(wk, mc_now_ms())) {
		mc_wk_violation(sv, wk, "REPORT flood (over 10/s)");
		return;
	}
	if (mc_ipc_parse_report(f, &r, err, sizeof err) < 0) {
		mc_wk_violation(sv, wk, err);
		return;
	}
	const char **ids = r.n ? calloc(r.n, sizeof *ids) : NULL;
	for (size_t i = 0; ids != NULL && i < r.n; i++)
		ids[i] = r.ids[i];
	if (r.n > 0 && ids == NULL) {
		mc_report_clear(&r);
		mc_wk_kill(sv, wk, "out of memory recording a report");
		return;
	}
	if (mc_ledger_set(sv->ledger, wk->ws, r.n, ids) < 0)
		mc_wk_log(MC_LOG_ERROR, wk, "cannot journal the ledger", "error", strerror(errno));
	free(ids);
	mc_report_clear(&r);
}

static void on_stopped(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	char err[256];
	bool flag;
	if (wk->stopped_msg)
		mc_wk_violation(sv, wk, "repeated STOPPED");
	else if (mc_ipc_parse_stopped(f, &flag, err, sizeof err) < 0)
		mc_wk_violation(sv, wk, err);
	wk->stopped_msg = true;
}

static void on_fatal(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	char err[256];
	if (wk->fatal_msg) {
		mc_wk_violation(sv, wk, "repeated FATAL");
		return;
	}
	wk->fatal_msg = true;
	if (mc_ipc_parse_fatal(f, wk->last_error, sizeof wk->last_error, err, sizeof err) < 0) {
		mc_wk_violation(sv, wk, err);
		return;
	}
	mc_wk_log(MC_LOG_ERROR, wk, "worker reports a configuration error", "error", wk->last_error);
}

static void handle_frame(struct mc_sv *sv, struct mc_wk *wk, const struct mc_ipc_frame *f)
{
	if (wk->state == WK_STARTING && f->type != MC_IPC_HELLO) {
		mc_wk_violation(sv, wk, "message before HELLO");
		return;
	}
	switch (f->type) {
	case MC_IPC_HELLO:
		on_hello(sv, wk, f);
		return;
	case MC_IPC_PONG:
		on_pong(sv, wk, f);
		return;
	case MC_IPC_REPORT:
		on_report(sv, wk, f);
		return;
	case MC_IPC_STOPPED:
		on_stopped(sv, wk, f);
		return;
	case MC_IPC_FATAL:
		on_fatal(sv, wk, f);
		return;
	case MC_IPC_TASK_STATE:
		mc_route_task_state(sv, wk, f);
		return;
	case MC_IPC_TASKS_READY: {
		char err[256];
		if (mc_ipc_parse_empty(f, err, sizeof err) < 0) {
			mc_wk_violation(sv, wk, err);
			return;
		}
		if (!wk->tasks_ready) {
			wk->tasks_ready = true;
			mc_route_runtimes_dirty(sv, wk->ws); /* the link may claim for it now */
		}
		return;
	}
	default:
		mc_wk_violation(sv, wk, "unexpected message type");
	}
}

/* Reads until EAGAIN or budget frames. The frames one read buffered are all
 * handled (at most a buffer's worth), so nothing waits in our buffer
 * without the socket being readable; level-triggered epoll brings the rest
 * back on the next turn, after the other workers had theirs. */
void mc_wk_read_frames(struct mc_sv *sv, struct mc_wk *wk, unsigned budget)
{
	unsigned handled = 0;
	while (wk->fd >= 0 && !wk->untrusted && handled < budget &&
	       mc_ipc_reader_fill(&wk->rd, wk->fd) > 0) {
		struct mc_ipc_frame f;
		int got = 0;
		while (wk->fd >= 0 && !wk->untrusted && (got = mc_ipc_reader_next(&wk->rd, &f)) == 1) {
			handle_frame(sv, wk, &f);
			handled++;
		}
		if (got < 0) {
			mc_wk_violation(sv, wk, errno == EMSGSIZE ? "oversized frame from worker"
								  : "malformed frame from worker");
			return;
		}
	}
	if (wk->fd >= 0 && !wk->untrusted && wk->rd.eof) {
		/* EOF before exit: the exit event follows; stop polling the socket. */
		mc_sv_epoll_mod(sv, wk->fd, 0, &wk->ipc_src);
	}
}

void mc_wk_on_ipc(struct mc_sv *sv, struct mc_wk *wk, uint32_t events)
{
	if (wk->fd < 0 || wk->state == WK_GONE)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		mc_wk_read_frames(sv, wk, MC_WK_FRAME_BUDGET);
	if (wk->fd >= 0 && (events & EPOLLOUT))
		mc_wk_queued(sv, wk, 0);
}

void mc_wk_running_timer(struct mc_sv *sv, struct mc_wk *wk, mc_ms_t now)
{
	mc_ms_t dead_at = wk->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	if (now >= dead_at && wk->fd >= 0) {
		/* On a starved host the pong may sit unread behind other events:
		 * read the socket before calling the worker dead. */
		mc_wk_read_frames(sv, wk, MC_WK_FRAME_BUDGET);
		if (wk->state != WK_RUNNING || wk->pid <= 0 || wk->untrusted)
			return;
		dead_at = wk->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	}
	if (now >= dead_at) {
		mc_wk_kill(sv, wk, "missed its liveness deadline");
		return;
	}
	if (now >= wk->ping_due_at) {
		mc_wk_queued(sv, wk, mc_ipc_send_ping(&wk->wr, ++wk->ping_seq));
		wk->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	}
	mc_wk_arm(sv, wk, wk->ping_due_at < dead_at ? wk->ping_due_at : dead_at);
}
