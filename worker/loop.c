/* The worker process: set-up right after fork, and its single-threaded
 * event loop (libcurl multi + the supervisor socket + a signalfd + version
 * probe pipes + timers). No step blocks: the loop always answers a ping
 * within one iteration. */
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
#include "worker/task_exec.h"
#include "worker/worker.h"
#include "worker/worker_int.h"

#define MAX_WAITFDS 512 /* agents: stdout, stderr, stdin and a pidfd each */
/* Cap on one wait so that a missed wakeup can never stall the worker long. */
#define MAX_WAIT_MS 1000
/* How long the worker may spend pushing its last frames at exit. */
#define FINAL_FLUSH_MS 1000

int mc_worker_start_call(struct mc_worker *w, struct mc_call *call,
			 void (*done)(struct mc_call *, void *))
{
	mc_call_set_done(call, done, w);
	/* One request at a time, on one keep-alive connection; the others
	 * wait unsent and their timeout starts when they are sent. */
	return mc_call_enqueue(call, w->multi);
}

void mc_worker_fatal(struct mc_worker *w, const char *reason)
{
	if (w->exit_code == MC_WORKER_EXIT_CONFIG)
		return; /* given up already */
	mc_log(MC_LOG_ERROR, "configuration error, giving up", "error", reason, NULL);
	mc_ipc_send_fatal(&w->wr, reason);
	w->exit_code = MC_WORKER_EXIT_CONFIG;
	/* Still try to take our runtimes offline (it fails if the token is bad). */
	mc_registrar_event(w, EV_STOP);
}

static void on_signal(struct mc_worker *w)
{
	struct signalfd_siginfo si;
	while (read(w->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP)
			continue; /* reloads are the supervisor's business */
		if (!w->stop_requested)
			mc_log(MC_LOG_INFO, "signal received: stopping",
			       "signal", strsignal((int)si.ssi_signo), NULL);
		mc_registrar_event(w, EV_STOP);
	}
}

static int wait_timeout(const struct mc_worker *w, mc_ms_t now)
{
	mc_ms_t d = mc_ms_earliest(mc_registrar_next_deadline(w), mc_heartbeat_next_deadline(w));
	return mc_ms_wait(mc_ms_earliest(d, mc_exec_next_deadline(w)), now, MAX_WAIT_MS);
}

static void loop_once(struct mc_worker *w)
{
	mc_ms_t now = mc_now_ms();
	mc_registrar_timers(w, now);
	mc_heartbeat_tick(w, now);
	if (!w->exec_started && w->peer == PEER_READY) {
		w->exec_started = true;
		mc_exec_start(w);
	}
	mc_exec_tick(w, now);
	/* What a REPORT could not write at once; and a write error there. */
	mc_peer_flush(w);
	if (w->exit_now)
		return;

	struct curl_waitfd fds[MAX_WAITFDS];
	unsigned n = 0;
	fds[n++] = (struct curl_waitfd){ .fd = w->fd, .events = w->peer_gone ? 0 :
		CURL_WAIT_POLLIN | (mc_ipc_writer_pending(&w->wr) ? CURL_WAIT_POLLOUT : 0) };
	fds[n++] = (struct curl_waitfd){ .fd = w->sigfd, .events = CURL_WAIT_POLLIN };
	if (w->vprobes != NULL)
		n += mc_vprobe_waitfds(w->vprobes, fds + n, MAX_WAITFDS - n);
	unsigned exec_fds = n;
	n += mc_exec_waitfds(w, fds + n, MAX_WAITFDS - n);
	int numfds = 0;
	curl_multi_poll(w->multi, fds, n, wait_timeout(w, now), &numfds);
	mc_exec_set_ready(w, fds + exec_fds);

	int running = 0;
	curl_multi_perform(w->multi, &running);
	mc_multi_dispatch(w->multi);
	if (fds[1].revents)
		on_signal(w);
	if (!w->peer_gone && (fds[0].revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI)))
		mc_peer_on_readable(w);
	mc_exec_service(w);
	if (w->vprobes != NULL && mc_vprobe_service(w->vprobes, mc_now_ms()) &&
	    w->reg == REG_PROBING)
		mc_registrar_event(w, EV_PROBES_DONE);
}

static void worker_free(struct mc_worker *w)
{
	mc_exec_free(w);
	mc_heartbeat_cancel_all(w);
	for (size_t i = 0; i < w->n_ro; i++)
		mc_call_free(w->ro[i]);
	free(w->ro);
	mc_call_free(w->reg_call);
	mc_tracked_clear(&w->tracked);
	mc_ids_free(w->final_ids, w->n_final_ids);
	mc_dropped_clear(&w->dropped);
	mc_ids_free(w->ids_before, w->n_ids_before);
	mc_payload_clear(&w->payload);
	mc_profile_list_clear(&w->fetched);
	mc_profile_list_clear(&w->cached_profiles);
	mc_vprobe_cache_free(w->vprobes);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	mc_api_free(w->api);
	mc_secret_free(w->token);
	mc_worker_config_clear(&w->cfg);
	mc_ipc_reader_free(&w->rd);
	mc_ipc_writer_free(&w->wr);
	if (w->sigfd >= 0)
		close(w->sigfd);
}

static int worker_init(struct mc_worker *w)
{
	memset(w, 0, sizeof *w);
	w->fd = MC_WORKER_IPC_FD;
	w->sigfd = -1;
	w->peer = PEER_WAIT_CONFIG;
	w->reg = REG_IDLE;
	w->sig = mc_signature_unknown();
	w->fetched_sig = mc_signature_unknown();
	w->ro_on_next_reg = true;
	w->exit_code = MC_WORKER_EXIT_OK;
	mc_tracked_init(&w->tracked);
	mc_dropped_init(&w->dropped);
	mc_ipc_writer_init(&w->wr);
	if (mc_ipc_reader_init(&w->rd, mc_ipc_type_ok_for_worker) < 0)
		return -1;
	if ((w->multi = curl_multi_init()) == NULL)
		return -1;
	/* One connection per worker (a thousand workspaces must not cost the
	 * server two thousand): requests go one after the other, queued by
	 * mc_call_enqueue, and in the order they were made, so the server
	 * handles a beat sent before a DEREG before it. A request held at the
	 * server delays the beats behind it by up to http_timeout, well within
	 * the server's stale threshold (tests/bench/README.md). The limit only
	 * backs the queue up. */
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	if ((w->sigfd = mc_child_signalfd()) < 0)
		return -1;
	return 0;
}

int mc_worker_main(int ipc_fd, pid_t parent, int hold_fd)
{
	mc_log_set_context("worker", NULL);
	mc_proctitle_set("mc-worker", "multicad: worker");
	/* The socket on fd 3, the generation lock on fd 4, nothing else. */
	if (mc_child_take_fds(ipc_fd, MC_WORKER_IPC_FD, hold_fd, MC_WORKER_HOLD_FD) < 0) {
		mc_log(MC_LOG_ERROR, "worker fd set-up failed", "error", strerror(errno), NULL);
		return MC_WORKER_EXIT_FAILURE;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* Inherited from the supervisor already; said again because a
	 * worker holds the token: it must never be dumped or ptraced. */
	mc_secret_forbid_dumps();

	struct mc_worker w;
	if (worker_init(&w) < 0) {
		mc_log(MC_LOG_ERROR, "worker set-up failed", "error", strerror(errno), NULL);
		worker_free(&w);
		return MC_WORKER_EXIT_FAILURE;
	}
	if (getppid() != parent) /* the parent died before PDEATHSIG was armed */
		mc_registrar_event(&w, EV_STOP);
	mc_ipc_send_hello(&w.wr, (int)getpid());
	while (!w.exit_now)
		loop_once(&w);
	if (!w.peer_gone) /* the last REPORT/STOPPED frames, bounded in time */
		mc_ipc_writer_drain(&w.wr, w.fd, FINAL_FLUSH_MS);
	int code = w.exit_code;
	worker_free(&w);
	return code;
}
