/* The link process: set-up right after fork and its single-threaded event
 * loop (libcurl multi on one keep-alive connection + the supervisor socket
 * + a signalfd + timers + the websocket's fds, ws.h), worker/loop.c's
 * model. Nothing blocks: the loop always answers a PING within one turn. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/child.h"
#include "common/log.h"
#include "common/proctitle.h"
#include "common/secret.h"
#include "link/link.h"
#include "link/link_int.h"
#include "link/ws.h"

#define MAX_WAIT_MS 1000
#define FINAL_FLUSH_MS 1000

int mc_link_start_call(struct mc_link *l, struct mc_call *call,
		       void (*done)(struct mc_call *, void *))
{
	mc_call_set_done(call, done, l);
	return mc_call_enqueue(call, l->multi);
}

void mc_link_stop(struct mc_link *l, const char *why)
{
	if (l->stop_requested)
		return;
	mc_log(MC_LOG_INFO, "link stopping", "reason", why, NULL);
	l->stop_requested = true;
	/* The stop budget is the supervisor's stop_timeout, less a margin for
	 * its own exit, at most MC_LINK_STOP_BUDGET_MS. */
	mc_ms_t budget = l->cfg.stop_timeout_ms > 1000 ? l->cfg.stop_timeout_ms - 1000 : 500;
	if (budget > MC_LINK_STOP_BUDGET_MS)
		budget = MC_LINK_STOP_BUDGET_MS;
	l->stop_deadline = mc_now_ms() + budget;
	mc_claim_event(l, CE_STOP);
	mc_fails_hurry(l);
	mc_ws_stop(l); /* a CLOSE frame, best effort */
}

static void on_signal(struct mc_link *l)
{
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo != SIGHUP)
			mc_link_stop(l, strsignal((int)si.ssi_signo));
}

static int wait_timeout(const struct mc_link *l, mc_ms_t now)
{
	mc_ms_t d = mc_ms_earliest(mc_claim_next_deadline(l), mc_fails_next_deadline(l));
	d = mc_ms_earliest(d, mc_ws_next_deadline(l));
	if (l->stop_requested)
		d = mc_ms_earliest(d, l->stop_deadline);
	return mc_ms_wait(d, now, MAX_WAIT_MS);
}

/* Stopping: done once the fails are (or the budget is over). */
static void check_stop(struct mc_link *l, mc_ms_t now)
{
	if (!l->stop_requested)
		return;
	if (!mc_fails_idle(l) && now < l->stop_deadline && !l->peer_gone)
		return;
	if (!mc_fails_idle(l))
		mc_log(MC_LOG_WARN, "stop budget over with tasks not yet failed at the server", NULL);
	if (!l->peer_gone)
		mc_link_queued(l, mc_ipc_send_stopped(&l->wr, true), "STOPPED");
	l->exit_now = true;
}

static void loop_once(struct mc_link *l)
{
	mc_ms_t now = mc_now_ms();
	mc_claim_timers(l, now);
	mc_fails_timers(l, now);
	mc_ws_timers(l, now);
	mc_link_peer_flush(l);
	check_stop(l, now);
	if (l->exit_now)
		return;
	struct curl_waitfd fds[2 + MC_WS_MAX_FDS] = {
		{ .fd = l->fd, .events = l->peer_gone ? 0 : CURL_WAIT_POLLIN |
			(mc_ipc_writer_pending(&l->wr) ? CURL_WAIT_POLLOUT : 0) },
		{ .fd = l->sigfd, .events = CURL_WAIT_POLLIN },
	};
	/* The websocket's fds ride along (its dial runs in a multi of its own). */
	unsigned nws = mc_ws_poll_fds(l, fds + 2, MC_WS_MAX_FDS);
	int numfds = 0, running = 0;
	curl_multi_poll(l->multi, fds, 2 + nws, wait_timeout(l, now), &numfds);
	curl_multi_perform(l->multi, &running);
	mc_multi_dispatch(l->multi);
	mc_ws_on_poll(l, fds + 2, nws);
	if (fds[1].revents)
		on_signal(l);
	if (!l->peer_gone && (fds[0].revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI)))
		mc_link_peer_on_readable(l);
}

static void link_free(struct mc_link *l)
{
	mc_claim_free(l);
	mc_fails_free(l);
	mc_ws_free(l->push);
	l->push = NULL;
	mc_link_runtimes_free(l);
	if (l->multi != NULL)
		curl_multi_cleanup(l->multi);
	mc_api_free(l->api);
	mc_worker_config_clear(&l->cfg);
	mc_ipc_reader_free(&l->rd);
	mc_ipc_writer_free(&l->wr);
	if (l->sigfd >= 0)
		close(l->sigfd);
}

static int link_init(struct mc_link *l)
{
	memset(l, 0, sizeof *l);
	l->fd = MC_LINK_IPC_FD;
	l->sigfd = -1;
	l->peer = LP_WAIT_CONFIG;
	l->cs = CS_IDLE;
	mc_ipc_writer_init(&l->wr);
	if (mc_ipc_reader_init(&l->rd, mc_ipc_type_ok_for_link) < 0)
		return -1;
	if ((l->multi = curl_multi_init()) == NULL)
		return -1;
	/* One keep-alive connection; requests go one after the other. */
	curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	if ((l->sigfd = mc_child_signalfd()) < 0)
		return -1;
	/* Without it the link polls, as with websocket = off. */
	if ((l->push = mc_ws_new()) == NULL)
		mc_log(MC_LOG_WARN, "cannot set up the websocket; polling only", NULL);
	return 0;
}

int mc_link_main(int ipc_fd, pid_t parent)
{
	mc_log_set_context("link", NULL);
	mc_proctitle_set("mc-link", "multicad: link");
	if (mc_child_take_fds(ipc_fd, MC_LINK_IPC_FD, -1, -1) < 0) { /* the socket on fd 3 */
		mc_log(MC_LOG_ERROR, "link fd set-up failed", "error", strerror(errno), NULL);
		return MC_LINK_EXIT_FAILURE;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	mc_secret_forbid_dumps(); /* it holds the token */
	static struct mc_link l; /* large (the configuration) */
	if (link_init(&l) < 0) {
		mc_log(MC_LOG_ERROR, "link set-up failed", "error", strerror(errno), NULL);
		link_free(&l);
		return MC_LINK_EXIT_FAILURE;
	}
	if (getppid() != parent)
		mc_link_stop(&l, "the supervisor is gone");
	mc_ipc_send_hello(&l.wr, (int)getpid());
	while (!l.exit_now)
		loop_once(&l);
	if (!l.peer_gone)
		mc_ipc_writer_drain(&l.wr, l.fd, FINAL_FLUSH_MS);
	int code = l.exit_code;
	link_free(&l);
	return code;
}
