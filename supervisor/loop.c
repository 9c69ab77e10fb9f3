/* The supervisor's event loop: epoll over a signalfd, the workers' sockets
 * and pidfds, helpers' pidfds and pipes, probe pipes; timers in an indexed
 * heap. Each event touches only its owner: no scan over all workers. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "supervisor/agentapi_proc.h"
#include "common/log.h"
#include "supervisor/forkserver.h"
#include "supervisor/notify.h"
#include "supervisor/sv.h"

#define MAX_EVENTS 64

int mc_sv_epoll_add(struct mc_sv *sv, int fd, uint32_t events, struct mc_src *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };
	return epoll_ctl(sv->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int mc_sv_epoll_mod(struct mc_sv *sv, int fd, uint32_t events, struct mc_src *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };
	return epoll_ctl(sv->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void mc_sv_epoll_del(struct mc_sv *sv, int fd)
{
	epoll_ctl(sv->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void mc_sv_child_forget(struct mc_sv *sv)
{
	/* A worker gets its token over the socket like any peer; the copy it
	 * inherited by fork goes at once. */
	mc_secret_free(sv->token);
	sv->token = NULL;
}

static void on_signals(struct mc_sv *sv)
{
	struct signalfd_siginfo si;
	bool chld = false;
	for (;;) {
		ssize_t r = read(sv->sigfd, &si, sizeof si);
		if (r != (ssize_t)sizeof si) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		switch (si.ssi_signo) {
		case SIGHUP:
			/* A burst of HUPs coalesces into one reload per loop turn. */
			sv->reload_pending = true;
			break;
		case SIGTERM:
		case SIGINT:
			if (!sv->shutting_down)
				mc_log(MC_LOG_INFO, "shutting down", "signal",
				       strsignal((int)si.ssi_signo), NULL);
			mc_sv_shutdown(sv);
			break;
		case SIGCHLD:
			chld = true;
			break;
		default:
			break;
		}
	}
	/* Ours are watched through pidfds; adopted orphans are reaped here
	 * (reaper.c), once for a burst of SIGCHLDs. */
	if (chld)
		mc_reaper_on_sigchld(sv);
}

static void dispatch(struct mc_sv *sv, struct mc_src *src, uint32_t events)
{
	switch (src->kind) {
	case SRC_SIGNAL:
		on_signals(sv);
		break;
	case SRC_WORKER_IPC:
		mc_wk_on_ipc(sv, src->owner, events);
		break;
	case SRC_WORKER_PID:
		mc_wk_on_exit(sv, src->owner);
		break;
	case SRC_HELPER_PID:
		mc_helper_on_exit(sv, src->owner);
		break;
	case SRC_HELPER_OUT:
		mc_helper_on_output(sv, src->owner);
		break;
	case SRC_PROBE_PIPE:
		mc_probes_on_pipe(sv);
		break;
	case SRC_CONTROL_LISTEN:
	case SRC_CONTROL_CLIENT:
		mc_control_on_event(sv, src, events);
		break;
	case SRC_LEDGER:
		mc_ledger_on_ready(sv->ledger);
		break;
	case SRC_FORKSERVER:
		mc_fs_on_exit(sv);
		break;
	case SRC_LINK_IPC:
		mc_link_proc_on_ipc(sv, events);
		break;
	case SRC_LINK_PID:
		mc_link_proc_on_exit(sv);
		break;
	case SRC_AAPI_IPC:
		mc_aapi_on_ipc(sv, events);
		break;
	case SRC_AAPI_PID:
		mc_aapi_on_exit(sv);
		break;
	default:
		break;
	}
}

static void fire_timer(struct mc_sv *sv, struct mc_timer *t)
{
	switch (t->kind) {
	case TIMER_WORKER:
		mc_wk_on_timer(sv, t->owner);
		break;
	case TIMER_HELPER:
		mc_helper_on_timer(sv, t->owner);
		break;
	case TIMER_PROBES:
		mc_probes_on_timer(sv);
		break;
	case TIMER_MEMBERSHIP:
		mc_membership_on_timer(sv);
		break;
	case TIMER_SHUTDOWN:
		mc_sv_on_shutdown_timer(sv);
		break;
	case TIMER_CONTROL:
		mc_control_on_timer(sv, t);
		break;
	case TIMER_TOKEN:
		mc_tokwatch_on_timer(sv);
		break;
	case TIMER_ORPHAN:
		mc_orphan_on_timer(sv, t->owner);
		break;
	case TIMER_REAPER:
		mc_reaper_on_timer(sv);
		break;
	case TIMER_DRAIN:
		mc_sv_on_drain_timer(sv);
		break;
	case TIMER_LINK:
		mc_link_proc_on_timer(sv);
		break;
	case TIMER_AAPI:
		mc_aapi_on_timer(sv);
		break;
	case TIMER_PUSH:
		mc_push_on_timer(sv);
		break;
	default:
		break;
	}
}

static int next_timeout(const struct mc_sv *sv)
{
	const struct mc_timer *t = mc_timerq_peek(&sv->timers);
	if (t == NULL)
		return 1000;
	mc_ms_t d = t->deadline - mc_now_ms();
	if (d < 0)
		return 0;
	return d > 1000 ? 1000 : (int)d;
}

int mc_sv_run(struct mc_sv *sv)
{
	struct epoll_event evs[MAX_EVENTS];
	static struct mc_src ledger_src = { SRC_LEDGER, NULL };
	if (mc_sv_epoll_add(sv, mc_ledger_fd(sv->ledger), EPOLLIN, &ledger_src) < 0) {
		mc_log(MC_LOG_ERROR, "cannot watch the ledger writer", "error", strerror(errno), NULL);
		return -1;
	}
	mc_tokwatch_start(sv);
	while (!sv->done) {
		int n = epoll_wait(sv->epfd, evs, MAX_EVENTS, next_timeout(sv));
		if (n < 0 && errno != EINTR) {
			mc_log(MC_LOG_ERROR, "epoll_wait failed", "error", strerror(errno), NULL);
			return -1;
		}
		for (int i = 0; i < n; i++)
			dispatch(sv, evs[i].data.ptr, evs[i].events);
		struct mc_timer *t;
		mc_ms_t now = mc_now_ms();
		while ((t = mc_timerq_pop_due(&sv->timers, now)) != NULL)
			fire_timer(sv, t);
		if (sv->reload_pending && !sv->shutting_down) {
			sv->reload_pending = false;
			mc_sv_reload(sv);
		}
		mc_notify_tick(sv);
		if (sv->shutting_down)
			mc_sv_shutdown_progress(sv);
		mc_wk_reap_graveyard(sv);
		mc_helper_reap_dead(sv);
		mc_control_reap(sv);
		/* The link hears of this turn's changes once (route.c). */
		mc_route_turn(sv);
		/* Whatever this turn changed goes to disk in one batch. */
		mc_ledger_flush(sv->ledger);
	}
	return 0;
}
