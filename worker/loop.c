/* The worker process: set-up right after fork, and its single-threaded
 * event loop (libcurl multi + the supervisor socket + a signalfd + version
 * probe pipes + timers). No step blocks: the loop always answers a ping
 * within one iteration. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <bsd/unistd.h>

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

/* Puts the socket on fd 3, the generation lock on fd 4, and closes
 * everything else but stdio. Both are first moved out of the way so that
 * neither dup2 can clobber the other. */
static int setup_fds(int ipc_fd, int hold_fd)
{
	int ipc = fcntl(ipc_fd, F_DUPFD_CLOEXEC, 10);
	int hold = hold_fd >= 0 ? fcntl(hold_fd, F_DUPFD_CLOEXEC, 10) : -1;
	if (ipc < 0 || (hold_fd >= 0 && hold < 0))
		return -1;
	if (dup2(ipc, MC_WORKER_IPC_FD) < 0)
		return -1;
	if (hold >= 0 && (dup2(hold, MC_WORKER_HOLD_FD) < 0 ||
			  fcntl(MC_WORKER_HOLD_FD, F_SETFD, FD_CLOEXEC) < 0))
		return -1;
	closefrom(hold >= 0 ? MC_WORKER_HOLD_FD + 1 : MC_WORKER_IPC_FD + 1);
	int fl = fcntl(MC_WORKER_IPC_FD, F_GETFL);
	if (fl < 0 || fcntl(MC_WORKER_IPC_FD, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(MC_WORKER_IPC_FD, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

/* Default dispositions, then SIGTERM/SIGINT/SIGHUP through a signalfd. */
static int setup_signals(void)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* EINVAL for SIGKILL/SIGSTOP: fine */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_SETMASK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
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

static mc_ms_t earliest(mc_ms_t a, mc_ms_t b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static int wait_timeout(const struct mc_worker *w, mc_ms_t now)
{
	mc_ms_t d = earliest(mc_registrar_next_deadline(w), mc_heartbeat_next_deadline(w));
	d = earliest(d, mc_exec_next_deadline(w));
	if (d <= 0)
		return MAX_WAIT_MS;
	mc_ms_t t = d - now;
	if (t < 0)
		t = 0;
	return t > MAX_WAIT_MS ? MAX_WAIT_MS : (int)t;
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

/* Pushes the last REPORT/STOPPED frames out, bounded in time. */
static void final_flush(struct mc_worker *w)
{
	mc_ms_t until = mc_now_ms() + FINAL_FLUSH_MS;
	while (!w->peer_gone && mc_ipc_writer_pending(&w->wr) > 0 && mc_now_ms() < until) {
		if (mc_ipc_writer_flush(&w->wr, w->fd) < 0)
			break;
		if (mc_ipc_writer_pending(&w->wr) > 0)
			usleep(1000);
	}
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
	if ((w->sigfd = setup_signals()) < 0)
		return -1;
	return 0;
}

int mc_worker_main(int ipc_fd, pid_t parent, int hold_fd)
{
	mc_log_set_context("worker", NULL);
	mc_proctitle_set("mc-worker", "multicad: worker");
	if (setup_fds(ipc_fd, hold_fd) < 0) {
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
	final_flush(&w);
	int code = w.exit_code;
	worker_free(&w);
	return code;
}
