/* One supervised host process (hostproc.h): spawn, handshake, liveness
 * pings like a worker's, respawn with backoff after a death, stop at
 * shutdown. Each event below is one switch over the states, as the table
 * in hostproc.h has it. */
#include "supervisor/hostproc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/child.h"
#include "common/log.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define FRAME_BUDGET         64
/* A process that lived this long before dying starts the backoff anew. */
#define STABLE_MS            10000

static const char *const state_names[MC_HP_COUNT] = {
	[MC_HP_DOWN] = "down", [MC_HP_STARTING] = "starting", [MC_HP_RUNNING] = "running",
	[MC_HP_STOPPING] = "stopping", [MC_HP_BACKOFF] = "backoff", [MC_HP_DONE] = "stopped",
};

const char *mc_hp_state_name(enum mc_hp_state s)
{
	return s < MC_HP_COUNT ? state_names[s] : "unknown";
}

void mc_hp_init(struct mc_hostproc *hp, const struct mc_hostproc_ops *ops, const struct mc_sv *sv,
		enum mc_src_kind ipc_kind, enum mc_src_kind pid_kind, enum mc_timer_kind timer_kind,
		void *owner)
{
	memset(hp, 0, sizeof *hp);
	hp->ops = ops;
	hp->state = MC_HP_DOWN;
	hp->fd = hp->pidfd = hp->extra_fd = -1;
	hp->ipc_src = (struct mc_src){ ipc_kind, owner };
	hp->pid_src = (struct mc_src){ pid_kind, owner };
	mc_timer_init(&hp->timer, (int)timer_kind, owner);
	mc_backoff_init(&hp->backoff, sv->cfg.restart_backoff_min_ms, sv->cfg.restart_backoff_max_ms);
}

bool mc_hp_running(const struct mc_hostproc *hp)
{
	return hp != NULL && hp->state == MC_HP_RUNNING && !hp->untrusted;
}

/* "<prefix>the <name><suffix>" into buf: the messages name the process. */
static const char *says(char *buf, size_t size, const struct mc_hostproc *hp, const char *prefix,
			const char *suffix)
{
	snprintf(buf, size, "%sthe %s%s", prefix, hp->ops->name, suffix);
	return buf;
}

static void arm(struct mc_sv *sv, struct mc_hostproc *hp, mc_ms_t at)
{
	char m[96];
	if (mc_timerq_arm(&sv->timers, &hp->timer, at) < 0)
		mc_log(MC_LOG_ERROR, says(m, sizeof m, hp, "out of memory arming ", "'s timer"), NULL);
}

/* ---- writing ---- */

static void update_interest(struct mc_sv *sv, struct mc_hostproc *hp)
{
	uint32_t ev = (hp->untrusted ? 0 : EPOLLIN) |
		      (mc_ipc_writer_pending(&hp->wr) ? EPOLLOUT : 0);
	mc_sv_epoll_mod(sv, hp->fd, ev, &hp->ipc_src);
}

void mc_hp_kill_why(struct mc_sv *sv, struct mc_hostproc *hp, const char *why)
{
	char m[96];
	if (hp->pid <= 0 || hp->pidfd < 0)
		return;
	strlcpy(hp->last_error, why, sizeof hp->last_error);
	mc_log(MC_LOG_WARN, says(m, sizeof m, hp, "killing ", ""), hp->ops->pid_key,
	       MC_LOG_NUM(hp->pid), "reason", why, NULL);
	hp->untrusted = true;
	if (hp->fd >= 0)
		mc_sv_epoll_mod(sv, hp->fd, 0, &hp->ipc_src);
	mc_pidfd_kill(hp->pidfd, SIGKILL);
}

int mc_hp_queued(struct mc_sv *sv, struct mc_hostproc *hp, int rc)
{
	char m[128];
	if (hp->fd < 0)
		return -1;
	if (rc < 0) {
		if (errno != ENOBUFS)
			return -1; /* that frame only: the caller decides */
		mc_hp_kill_why(sv, hp, says(m, sizeof m, hp, "", " stopped reading its socket"));
		return -1;
	}
	if (mc_ipc_writer_flush(&hp->wr, hp->fd) < 0 && errno != EPIPE && errno != ECONNRESET)
		mc_log(MC_LOG_WARN, says(m, sizeof m, hp, "write to ", " failed"), "error",
		       strerror(errno), NULL);
	update_interest(sv, hp);
	return 0;
}

void mc_hp_send_token(struct mc_sv *sv, struct mc_hostproc *hp)
{
	hp->token_sent = sv->token;
	if (sv->token == NULL)
		return;
	const char *t = mc_secret_open(sv->token);
	int rc = mc_ipc_send_token(&hp->wr, t, mc_secret_len(sv->token));
	mc_secret_close(sv->token);
	mc_hp_queued(sv, hp, rc);
}

/* ---- spawning ---- */

static void close_channel(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (hp->fd >= 0) {
		mc_sv_epoll_del(sv, hp->fd);
		close(hp->fd);
		hp->fd = -1;
	}
	if (hp->rd_ready)
		mc_ipc_reader_free(&hp->rd);
	hp->rd_ready = false;
	mc_ipc_writer_free(&hp->wr);
}

/* The process is gone (reaped): its fds and its timer go. */
static void reaped(struct mc_sv *sv, struct mc_hostproc *hp)
{
	mc_sv_epoll_del(sv, hp->pidfd);
	close(hp->pidfd);
	hp->pidfd = -1;
	hp->pid = 0;
	close_channel(sv, hp);
	mc_timerq_cancel(&sv->timers, &hp->timer);
}

static void respawn_later(struct mc_sv *sv, struct mc_hostproc *hp)
{
	char m[96];
	mc_ms_t d = mc_backoff_next(&hp->backoff);
	hp->state = MC_HP_BACKOFF;
	arm(sv, hp, mc_now_ms() + d);
	snprintf(m, sizeof m, "%s restarts later", hp->ops->name);
	mc_log(MC_LOG_INFO, m, "in_ms", MC_LOG_NUM(d), NULL);
}

static int fork_child(struct mc_sv *sv, const struct mc_hostproc *hp, pid_t *pid, int *fd)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
		return -1;
	pid_t parent = getpid();
	int extra_fd = hp->extra_fd;
	int (*child_main)(int, int, pid_t) = hp->ops->child_main;
	*pid = fork();
	if (*pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (*pid == 0) {
		close(sp[0]);
		mc_sv_child_forget(sv);
		mc_child_exit(child_main(sp[1], extra_fd, parent));
	}
	close(sp[1]);
	*fd = sp[0];
	return 0;
}

/* Forked but not watchable: it must not run. */
static void unwatchable(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (hp->pidfd < 0 || mc_pidfd_kill(hp->pidfd, SIGKILL) < 0)
		kill(hp->pid, SIGKILL);
	while (waitpid(hp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (hp->pidfd >= 0) {
		mc_sv_epoll_del(sv, hp->pidfd);
		close(hp->pidfd);
	}
	hp->pidfd = -1;
	hp->pid = 0;
	close_channel(sv, hp);
	says(hp->last_error, sizeof hp->last_error, hp, "cannot watch ", "");
	respawn_later(sv, hp);
}

static void spawn(struct mc_sv *sv, struct mc_hostproc *hp)
{
	char m[96];
	pid_t pid;
	int fd;
	if (fork_child(sv, hp, &pid, &fd) < 0) {
		strlcpy(hp->last_error, "fork failed", sizeof hp->last_error);
		mc_log(MC_LOG_ERROR, says(m, sizeof m, hp, "cannot start ", ""), "error",
		       strerror(errno), NULL);
		respawn_later(sv, hp);
		return;
	}
	hp->pid = pid;
	hp->fd = fd;
	hp->pidfd = mc_pidfd_open(pid);
	mc_ipc_writer_init(&hp->wr);
	hp->rd_ready = mc_ipc_reader_init(&hp->rd, hp->ops->type_ok) == 0;
	hp->untrusted = hp->stopped_msg = false;
	hp->ping_acked = hp->ping_seq;
	if (hp->ops->spawned != NULL)
		hp->ops->spawned(sv, hp);
	if (hp->pidfd < 0 || !hp->rd_ready || mc_sv_epoll_add(sv, fd, EPOLLIN, &hp->ipc_src) < 0 ||
	    mc_sv_epoll_add(sv, hp->pidfd, EPOLLIN, &hp->pid_src) < 0) {
		unwatchable(sv, hp);
		return;
	}
	hp->state = MC_HP_STARTING;
	hp->started_at = mc_now_ms();
	arm(sv, hp, hp->started_at + HANDSHAKE_TIMEOUT_MS);
	snprintf(m, sizeof m, "%s started", hp->ops->name);
	mc_log(MC_LOG_INFO, m, hp->ops->pid_key, MC_LOG_NUM(pid), NULL);
}

/* event start */
void mc_hp_start(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (sv->shutting_down)
		return;
	switch (hp->state) {
	case MC_HP_DOWN:
		spawn(sv, hp);
		break;
	default:
		break;
	}
}

/* ---- the handshake and liveness ---- */

static void send_handshake(struct mc_sv *sv, struct mc_hostproc *hp)
{
	char m[128];
	struct mc_worker_config c;
	hp->ops->config(sv, hp, &c);
	hp->token_sent = sv->token;
	int rc = mc_ipc_send_config(&hp->wr, &c);
	if (rc == 0 && sv->token != NULL) {
		const char *t = mc_secret_open(sv->token);
		rc = mc_ipc_send_token(&hp->wr, t, mc_secret_len(sv->token));
		mc_secret_close(sv->token);
	}
	if (mc_hp_queued(sv, hp, rc) < 0 && rc < 0)
		mc_hp_kill_why(sv, hp, says(m, sizeof m, hp, "cannot send ", " its configuration"));
}

/* event HELLO */
void mc_hp_on_hello(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	int proto, pid;
	char err[256];
	if (hp->state != MC_HP_STARTING) {
		mc_hp_kill_why(sv, hp, "HELLO after the handshake");
		return;
	}
	if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0 ||
	    proto != MC_IPC_PROTO_VERSION || pid != hp->pid) {
		mc_hp_kill_why(sv, hp, says(err, sizeof err, hp, "bad HELLO from ", ""));
		return;
	}
	send_handshake(sv, hp);
	if (hp->untrusted)
		return;
	mc_ms_t now = mc_now_ms();
	hp->state = MC_HP_RUNNING;
	hp->last_pong_at = now;
	hp->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	arm(sv, hp, hp->ping_due_at);
	hp->last_error[0] = '\0';
	if (hp->ops->ready != NULL)
		hp->ops->ready(sv, hp);
}

void mc_hp_on_pong(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	uint64_t seq;
	char err[256];
	if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0 || seq <= hp->ping_acked ||
	    seq > hp->ping_seq) {
		mc_hp_kill_why(sv, hp, says(err, sizeof err, hp, "unsolicited or bad PONG from ", ""));
		return;
	}
	hp->ping_acked = seq;
	hp->last_pong_at = mc_now_ms();
}

void mc_hp_on_stopped(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	char err[256];
	bool flag;
	if (hp->stopped_msg || mc_ipc_parse_stopped(f, &flag, err, sizeof err) < 0)
		mc_hp_kill_why(sv, hp, "bad or repeated STOPPED");
	hp->stopped_msg = true;
}

bool mc_hp_frame(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	switch (f->type) {
	case MC_IPC_HELLO:
		mc_hp_on_hello(sv, hp, f);
		return true;
	case MC_IPC_PONG:
		mc_hp_on_pong(sv, hp, f);
		return true;
	case MC_IPC_STOPPED:
		mc_hp_on_stopped(sv, hp, f);
		return true;
	default:
		return false;
	}
}

static void read_frames(struct mc_sv *sv, struct mc_hostproc *hp, unsigned budget)
{
	char m[128];
	unsigned handled = 0;
	while (hp->fd >= 0 && !hp->untrusted && handled < budget &&
	       mc_ipc_reader_fill(&hp->rd, hp->fd) > 0) {
		struct mc_ipc_frame f;
		int got = 0;
		while (hp->fd >= 0 && !hp->untrusted && (got = mc_ipc_reader_next(&hp->rd, &f)) == 1) {
			if (hp->state == MC_HP_STARTING && f.type != MC_IPC_HELLO)
				mc_hp_kill_why(sv, hp, "message before HELLO");
			else
				hp->ops->frame(sv, hp, &f);
			handled++;
		}
		if (got < 0) {
			mc_hp_kill_why(sv, hp, says(m, sizeof m, hp,
						    errno == EMSGSIZE ? "oversized frame from "
								      : "malformed frame from ",
						    ""));
			return;
		}
	}
	if (hp->fd >= 0 && !hp->untrusted && hp->rd.eof)
		mc_sv_epoll_mod(sv, hp->fd, 0, &hp->ipc_src);
}

void mc_hp_on_ipc(struct mc_sv *sv, struct mc_hostproc *hp, uint32_t events)
{
	if (hp->fd < 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		read_frames(sv, hp, FRAME_BUDGET);
	if (hp->fd >= 0 && (events & EPOLLOUT))
		mc_hp_queued(sv, hp, 0);
}

static void running_timer(struct mc_sv *sv, struct mc_hostproc *hp, mc_ms_t now)
{
	mc_ms_t dead_at = hp->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	if (now >= dead_at && hp->fd >= 0) {
		read_frames(sv, hp, FRAME_BUDGET); /* the pong may sit unread */
		dead_at = hp->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	}
	if (hp->untrusted)
		return;
	if (now >= dead_at) {
		mc_hp_kill_why(sv, hp, "missed its liveness deadline");
		return;
	}
	if (now >= hp->ping_due_at) {
		mc_hp_queued(sv, hp, mc_ipc_send_ping(&hp->wr, ++hp->ping_seq));
		hp->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
		if (hp->ops->pinged != NULL)
			hp->ops->pinged(sv, hp);
	}
	arm(sv, hp, hp->ping_due_at < dead_at ? hp->ping_due_at : dead_at);
}

/* event timer */
void mc_hp_on_timer(struct mc_sv *sv, struct mc_hostproc *hp)
{
	switch (hp->state) {
	case MC_HP_STARTING:
		mc_hp_kill_why(sv, hp, "no handshake within 10 s");
		break;
	case MC_HP_RUNNING:
		running_timer(sv, hp, mc_now_ms());
		break;
	case MC_HP_STOPPING:
		mc_hp_kill_why(sv, hp, "did not stop in time");
		break;
	case MC_HP_BACKOFF:
		if (!sv->shutting_down)
			spawn(sv, hp);
		break;
	case MC_HP_DOWN:
	case MC_HP_DONE:
	default:
		break;
	}
}

/* ---- death ---- */

static void describe_exit(const siginfo_t *si, char *how, size_t size)
{
	if (si->si_code == CLD_EXITED)
		snprintf(how, size, "exited with status %d", si->si_status);
	else
		snprintf(how, size, "killed by signal %d (%s)", si->si_status, strsignal(si->si_status));
}

/* event exit */
void mc_hp_on_exit(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (hp->pidfd < 0)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)hp->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	if (hp->fd >= 0 && hp->rd_ready && !hp->untrusted)
		read_frames(sv, hp, UINT32_MAX); /* its last frames (the link's TASKs) */
	pid_t pid = hp->pid;
	reaped(sv, hp);
	char how[128], m[96];
	describe_exit(&si, how, sizeof how);
	if (hp->restart && !sv->shutting_down) {
		/* stopped for a new CONFIG: back at once */
		hp->restart = false;
		hp->state = MC_HP_DOWN;
		mc_hp_start(sv, hp);
		return;
	}
	bool stopping = hp->state == MC_HP_STOPPING || sv->shutting_down;
	snprintf(m, sizeof m, "%s exited", hp->ops->name);
	mc_log(stopping ? MC_LOG_INFO : MC_LOG_WARN, m, hp->ops->pid_key, MC_LOG_NUM(pid), "how",
	       how, NULL);
	if (hp->ops->gone != NULL)
		hp->ops->gone(sv, hp);
	if (stopping) {
		hp->state = MC_HP_DONE;
		mc_sv_shutdown_progress(sv);
		return;
	}
	if (hp->last_error[0] == '\0')
		strlcpy(hp->last_error, how, sizeof hp->last_error);
	if (mc_now_ms() - hp->started_at >= STABLE_MS)
		mc_backoff_reset(&hp->backoff);
	hp->restarts++;
	respawn_later(sv, hp);
}

/* ---- stop and kill ---- */

/* event stop */
void mc_hp_stop(struct mc_sv *sv, struct mc_hostproc *hp)
{
	char m[96];
	switch (hp->state) {
	case MC_HP_STARTING:
	case MC_HP_RUNNING:
		hp->state = MC_HP_STOPPING;
		arm(sv, hp, mc_now_ms() + sv->cfg.stop_timeout_ms);
		if (mc_hp_queued(sv, hp, mc_ipc_send_stop(&hp->wr)) < 0)
			mc_hp_kill_why(sv, hp, says(m, sizeof m, hp, "cannot send STOP to ", ""));
		break;
	case MC_HP_DOWN:
	case MC_HP_BACKOFF:
		mc_timerq_cancel(&sv->timers, &hp->timer);
		hp->state = MC_HP_DONE;
		break;
	case MC_HP_STOPPING:
	case MC_HP_DONE:
	default:
		break;
	}
}

bool mc_hp_done(const struct mc_hostproc *hp)
{
	return hp == NULL || hp->pid <= 0;
}

/* event kill */
void mc_hp_kill(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (hp->pid <= 0 || hp->pidfd < 0)
		return;
	mc_pidfd_kill(hp->pidfd, SIGKILL);
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)hp->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	reaped(sv, hp);
	hp->state = MC_HP_DONE;
	if (hp->ops->gone != NULL)
		hp->ops->gone(sv, hp);
}

void mc_hp_release(struct mc_sv *sv, struct mc_hostproc *hp)
{
	mc_hp_kill(sv, hp);
	mc_timerq_cancel(&sv->timers, &hp->timer);
}

/* ---- status ---- */

void mc_hp_status(cJSON *o, const struct mc_hostproc *hp, const char *state)
{
	if (hp != NULL && hp->pid > 0)
		cJSON_AddNumberToObject(o, "pid", hp->pid);
	else
		cJSON_AddNullToObject(o, "pid");
	cJSON_AddStringToObject(o, "state", state != NULL ? state : mc_hp_state_name(hp->state));
	cJSON_AddNumberToObject(o, "restarts", hp != NULL ? hp->restarts : 0);
}

void mc_hp_status_error(cJSON *o, const struct mc_hostproc *hp)
{
	if (hp != NULL && hp->last_error[0])
		cJSON_AddStringToObject(o, "last_error", hp->last_error);
	else
		cJSON_AddNullToObject(o, "last_error");
}
