/* The agent-api process seen from the supervisor (agentapi_proc.h): its
 * listening socket, its life, and the running tasks it serves.
 *
 *   DOWN -tick-> STARTING -HELLO-> RUNNING -STOP-> STOPPING -exit-> DONE
 *   STARTING/RUNNING -exit, kill-> BACKOFF -timer-> STARTING
 *   agent_api_listen = off: stays DOWN, no socket, no process.
 *
 * The socket is the supervisor's for the daemon's life: a respawned
 * process gets the same one (fd 4), so agents keep their port. The
 * process knows a task by its token's hash only; it is told every running
 * task again after a respawn. Forked directly like the link:
 * mc_sv_child_forget drops the token first, and mc_agentapi_main closes
 * every fd but its socket and the listen socket. */
#include "supervisor/agentapi_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "agentapi/agentapi.h"
#include "common/child.h"
#include "common/log.h"
#include "ipc/agentapi_msgs.h"
#include "supervisor/link_proc.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define FRAME_BUDGET         64

enum aa_state { AA_DOWN, AA_STARTING, AA_RUNNING, AA_STOPPING, AA_BACKOFF, AA_DONE, AA_COUNT };

static const char *const state_names[AA_COUNT] = {
	[AA_DOWN] = "down", [AA_STARTING] = "starting", [AA_RUNNING] = "running",
	[AA_STOPPING] = "stopping", [AA_BACKOFF] = "backoff", [AA_DONE] = "stopped",
};

struct aa_task {                    /* a running task, as last sent */
	struct aa_task *next;
	char ws[MC_ID_MAX];
	struct mc_agent_task t;
};

struct mc_aapi_proc {
	int listen_fd, port;            /* -1 / 0 when off */
	enum aa_state state;
	pid_t pid;
	int fd, pidfd;
	struct mc_src ipc_src, pid_src;
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	bool rd_ready, untrusted, stopped_msg;
	struct mc_timer timer;
	mc_ms_t started_at, last_pong_at, ping_due_at;
	uint64_t ping_seq, ping_acked;
	struct mc_backoff backoff;
	unsigned restarts;
	char last_error[256];
	const struct mc_secret *token_sent;
	struct mc_agent_status status;
	bool have_status;
	struct aa_task *tasks;          /* heap list, owned here */
	size_t n_tasks;
};

static struct mc_aapi_proc *get(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		return sv->aapi;
	struct mc_aapi_proc *a = calloc(1, sizeof *a); /* freed by mc_aapi_free */
	if (a == NULL)
		return NULL;
	a->listen_fd = a->fd = a->pidfd = -1;
	a->ipc_src = (struct mc_src){ SRC_AAPI_IPC, a };
	a->pid_src = (struct mc_src){ SRC_AAPI_PID, a };
	mc_timer_init(&a->timer, TIMER_AAPI, a);
	mc_backoff_init(&a->backoff, sv->cfg.restart_backoff_min_ms, sv->cfg.restart_backoff_max_ms);
	sv->aapi = a;
	return a;
}

static void arm(struct mc_sv *sv, struct mc_aapi_proc *a, mc_ms_t at)
{
	if (mc_timerq_arm(&sv->timers, &a->timer, at) < 0)
		mc_log(MC_LOG_ERROR, "out of memory arming the agent-api's timer", NULL);
}

/* ---- the listening socket ---- */

int mc_aapi_listen(struct mc_sv *sv, char *err, size_t err_size)
{
	if (sv->cfg.agent_api_port == MC_AGENT_API_OFF)
		return 0;
	struct mc_aapi_proc *a = get(sv);
	if (a == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	int port = sv->cfg.agent_api_port;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(err, err_size, "cannot listen on 127.0.0.1:%d: %s (agent_api_listen)", port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	a->listen_fd = fd;
	a->port = ntohs(sa.sin_port);
	mc_log(MC_LOG_INFO, "agents' local API listening", "listen", "127.0.0.1", "port",
	       MC_LOG_NUM(a->port), NULL);
	return 0;
}

int mc_aapi_port(const struct mc_sv *sv)
{
	return sv->aapi != NULL && sv->aapi->listen_fd >= 0 ? sv->aapi->port : 0;
}

/* ---- writing ---- */

static void update_interest(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	uint32_t ev = (a->untrusted ? 0 : EPOLLIN) | (mc_ipc_writer_pending(&a->wr) ? EPOLLOUT : 0);
	mc_sv_epoll_mod(sv, a->fd, ev, &a->ipc_src);
}

static void kill_why(struct mc_sv *sv, struct mc_aapi_proc *a, const char *why)
{
	if (a->pid <= 0 || a->pidfd < 0)
		return;
	strlcpy(a->last_error, why, sizeof a->last_error);
	mc_log(MC_LOG_WARN, "killing the agent-api process", "agentapi_pid", MC_LOG_NUM(a->pid),
	       "reason", why, NULL);
	a->untrusted = true;
	if (a->fd >= 0)
		mc_sv_epoll_mod(sv, a->fd, 0, &a->ipc_src);
	mc_pidfd_kill(a->pidfd, SIGKILL);
}

/* A frame was queued with rc: flush it. A full queue kills the process. */
static int queued(struct mc_sv *sv, struct mc_aapi_proc *a, int rc)
{
	if (a->fd < 0)
		return -1;
	if (rc < 0) {
		if (errno == ENOBUFS)
			kill_why(sv, a, "the agent-api process stopped reading its socket");
		return -1;
	}
	if (mc_ipc_writer_flush(&a->wr, a->fd) < 0 && errno != EPIPE && errno != ECONNRESET)
		mc_log(MC_LOG_WARN, "write to the agent-api process failed", "error",
		       strerror(errno), NULL);
	update_interest(sv, a);
	return 0;
}

static bool running(const struct mc_aapi_proc *a)
{
	return a != NULL && a->state == AA_RUNNING && !a->untrusted && a->fd >= 0;
}

static void send_task(struct mc_sv *sv, struct mc_aapi_proc *a, const struct mc_agent_task *t)
{
	if (!running(a))
		return; /* sent with the others after its handshake */
	if (queued(sv, a, mc_ipc_send_agent_task(&a->wr, t)) < 0 && !a->untrusted)
		mc_log(MC_LOG_WARN, "cannot send a task to the agent-api process", "task",
		       t->task_id, "error", strerror(errno), NULL);
}

/* ---- spawning ---- */

static void close_channel(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	if (a->fd >= 0) {
		mc_sv_epoll_del(sv, a->fd);
		close(a->fd);
		a->fd = -1;
	}
	if (a->rd_ready)
		mc_ipc_reader_free(&a->rd);
	a->rd_ready = false;
	mc_ipc_writer_free(&a->wr);
}

static void respawn_later(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	mc_ms_t d = mc_backoff_next(&a->backoff);
	a->state = AA_BACKOFF;
	arm(sv, a, mc_now_ms() + d);
	mc_log(MC_LOG_INFO, "agent-api process restarts later", "in_ms", MC_LOG_NUM(d), NULL);
}

static int fork_proc(struct mc_sv *sv, struct mc_aapi_proc *a, pid_t *pid, int *fd)
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
		mc_child_exit(mc_agentapi_main(sp[1], a->listen_fd, parent));
	}
	close(sp[1]);
	*fd = sp[0];
	return 0;
}

static void unwatchable(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	if (a->pidfd < 0 || mc_pidfd_kill(a->pidfd, SIGKILL) < 0)
		kill(a->pid, SIGKILL);
	while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (a->pidfd >= 0) {
		mc_sv_epoll_del(sv, a->pidfd);
		close(a->pidfd);
	}
	a->pidfd = -1;
	a->pid = 0;
	close_channel(sv, a);
	strlcpy(a->last_error, "cannot watch the agent-api process", sizeof a->last_error);
	respawn_later(sv, a);
}

static void spawn(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	pid_t pid;
	int fd;
	if (fork_proc(sv, a, &pid, &fd) < 0) {
		strlcpy(a->last_error, "fork failed", sizeof a->last_error);
		mc_log(MC_LOG_ERROR, "cannot start the agent-api process", "error", strerror(errno),
		       NULL);
		respawn_later(sv, a);
		return;
	}
	a->pid = pid;
	a->fd = fd;
	a->pidfd = mc_pidfd_open(pid);
	mc_ipc_writer_init(&a->wr);
	a->rd_ready = mc_ipc_reader_init(&a->rd, mc_ipc_type_ok_from_agentapi) == 0;
	a->untrusted = a->stopped_msg = false;
	a->ping_acked = a->ping_seq;
	if (a->pidfd < 0 || !a->rd_ready || mc_sv_epoll_add(sv, fd, EPOLLIN, &a->ipc_src) < 0 ||
	    mc_sv_epoll_add(sv, a->pidfd, EPOLLIN, &a->pid_src) < 0) {
		unwatchable(sv, a);
		return;
	}
	a->state = AA_STARTING;
	a->started_at = mc_now_ms();
	arm(sv, a, a->started_at + HANDSHAKE_TIMEOUT_MS);
	mc_log(MC_LOG_INFO, "agent-api process started", "agentapi_pid", MC_LOG_NUM(pid), NULL);
}

void mc_aapi_tick(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->listen_fd < 0 || sv->shutting_down || a->state != AA_DOWN)
		return;
	spawn(sv, a);
}

/* ---- the handshake, liveness, frames ---- */

static void send_token(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	a->token_sent = sv->token;
	if (sv->token == NULL)
		return;
	const char *t = mc_secret_open(sv->token);
	int rc = mc_ipc_send_token(&a->wr, t, mc_secret_len(sv->token));
	mc_secret_close(sv->token);
	queued(sv, a, rc);
}

static void on_hello(struct mc_sv *sv, struct mc_aapi_proc *a, const struct mc_ipc_frame *f)
{
	int proto, pid;
	char err[256];
	if (a->state != AA_STARTING) {
		kill_why(sv, a, "HELLO after the handshake");
		return;
	}
	if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0 ||
	    proto != MC_IPC_PROTO_VERSION || pid != a->pid) {
		kill_why(sv, a, "bad HELLO from the agent-api process");
		return;
	}
	struct mc_worker_config c; /* the link's: workspace_id "", server, identity, root */
	mc_link_proc_build_config(sv, &c);
	if (queued(sv, a, mc_ipc_send_config(&a->wr, &c)) < 0) {
		kill_why(sv, a, "cannot send the agent-api process its configuration");
		return;
	}
	send_token(sv, a);
	if (a->untrusted)
		return;
	mc_ms_t now = mc_now_ms();
	a->state = AA_RUNNING;
	a->last_pong_at = now;
	a->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
	arm(sv, a, a->ping_due_at);
	a->last_error[0] = '\0';
	for (const struct aa_task *k = a->tasks; k != NULL && running(a); k = k->next)
		send_task(sv, a, &k->t); /* every running task, again after a respawn */
}

static void on_frame(struct mc_sv *sv, struct mc_aapi_proc *a, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	bool flag;
	switch (f->type) {
	case MC_IPC_HELLO:
		on_hello(sv, a, f);
		return;
	case MC_IPC_PONG:
		if (mc_ipc_parse_seq(f, &seq, err, sizeof err) < 0 || seq <= a->ping_acked ||
		    seq > a->ping_seq) {
			kill_why(sv, a, "unsolicited or bad PONG from the agent-api process");
			return;
		}
		a->ping_acked = seq;
		a->last_pong_at = mc_now_ms();
		return;
	case MC_IPC_STOPPED:
		if (a->stopped_msg || mc_ipc_parse_stopped(f, &flag, err, sizeof err) < 0)
			kill_why(sv, a, "bad or repeated STOPPED");
		a->stopped_msg = true;
		return;
	case MC_IPC_AGENT_STATUS:
		if (mc_ipc_parse_agent_status(f, &a->status, err, sizeof err) < 0) {
			kill_why(sv, a, "bad AGENT_STATUS");
			return;
		}
		a->have_status = true;
		return;
	default:
		kill_why(sv, a, "unexpected message type from the agent-api process");
	}
}

static void read_frames(struct mc_sv *sv, struct mc_aapi_proc *a, unsigned budget)
{
	unsigned handled = 0;
	while (a->fd >= 0 && !a->untrusted && handled < budget &&
	       mc_ipc_reader_fill(&a->rd, a->fd) > 0) {
		struct mc_ipc_frame f;
		int got = 0;
		while (a->fd >= 0 && !a->untrusted && (got = mc_ipc_reader_next(&a->rd, &f)) == 1) {
			if (a->state == AA_STARTING && f.type != MC_IPC_HELLO)
				kill_why(sv, a, "message before HELLO");
			else
				on_frame(sv, a, &f);
			handled++;
		}
		if (got < 0) {
			kill_why(sv, a, errno == EMSGSIZE ? "oversized frame from the agent-api process"
							  : "malformed frame from the agent-api process");
			return;
		}
	}
	if (a->fd >= 0 && !a->untrusted && a->rd.eof)
		mc_sv_epoll_mod(sv, a->fd, 0, &a->ipc_src);
}

void mc_aapi_on_ipc(struct mc_sv *sv, uint32_t events)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->fd < 0)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		read_frames(sv, a, FRAME_BUDGET);
	if (a->fd >= 0 && (events & EPOLLOUT))
		queued(sv, a, 0);
	if (running(a) && a->token_sent != sv->token)
		send_token(sv, a); /* a new token was read */
}

static void running_timer(struct mc_sv *sv, struct mc_aapi_proc *a, mc_ms_t now)
{
	mc_ms_t dead_at = a->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	if (now >= dead_at && a->fd >= 0) {
		read_frames(sv, a, FRAME_BUDGET); /* the pong may sit unread */
		dead_at = a->last_pong_at + sv->cfg.worker_liveness_timeout_ms;
	}
	if (a->untrusted)
		return;
	if (now >= dead_at) {
		kill_why(sv, a, "missed its liveness deadline");
		return;
	}
	if (now >= a->ping_due_at) {
		queued(sv, a, mc_ipc_send_ping(&a->wr, ++a->ping_seq));
		a->ping_due_at = now + sv->cfg.worker_ping_interval_ms;
		if (a->token_sent != sv->token)
			send_token(sv, a);
	}
	arm(sv, a, a->ping_due_at < dead_at ? a->ping_due_at : dead_at);
}

void mc_aapi_on_timer(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	switch (a->state) {
	case AA_STARTING:
		kill_why(sv, a, "no handshake within 10 s");
		break;
	case AA_RUNNING:
		running_timer(sv, a, mc_now_ms());
		break;
	case AA_STOPPING:
		kill_why(sv, a, "did not stop in time");
		break;
	case AA_BACKOFF:
		if (!sv->shutting_down)
			spawn(sv, a);
		break;
	default:
		break;
	}
}

/* ---- death and stop ---- */

static void reaped(struct mc_sv *sv, struct mc_aapi_proc *a)
{
	mc_sv_epoll_del(sv, a->pidfd);
	close(a->pidfd);
	a->pidfd = -1;
	a->pid = 0;
	close_channel(sv, a);
	mc_timerq_cancel(&sv->timers, &a->timer);
	a->have_status = false;
}

void mc_aapi_on_exit(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->pidfd < 0)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)a->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	if (a->fd >= 0 && a->rd_ready && !a->untrusted)
		read_frames(sv, a, UINT32_MAX);
	pid_t pid = a->pid;
	reaped(sv, a);
	char how[128];
	if (si.si_code == CLD_EXITED)
		snprintf(how, sizeof how, "exited with status %d", si.si_status);
	else
		snprintf(how, sizeof how, "killed by signal %d (%s)", si.si_status,
			 strsignal(si.si_status));
	bool stopping = a->state == AA_STOPPING || sv->shutting_down;
	mc_log(stopping ? MC_LOG_INFO : MC_LOG_WARN, "agent-api process exited", "agentapi_pid",
	       MC_LOG_NUM(pid), "how", how, NULL);
	if (stopping) {
		a->state = AA_DONE;
		mc_sv_shutdown_progress(sv);
		return;
	}
	if (a->last_error[0] == '\0')
		strlcpy(a->last_error, how, sizeof a->last_error);
	if (mc_now_ms() - a->started_at >= 10000)
		mc_backoff_reset(&a->backoff);
	a->restarts++;
	respawn_later(sv, a);
}

void mc_aapi_stop(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	switch (a->state) {
	case AA_STARTING:
	case AA_RUNNING:
		a->state = AA_STOPPING;
		arm(sv, a, mc_now_ms() + sv->cfg.stop_timeout_ms);
		if (queued(sv, a, mc_ipc_send_stop(&a->wr)) < 0)
			kill_why(sv, a, "cannot send STOP to the agent-api process");
		break;
	case AA_DOWN:
	case AA_BACKOFF:
		mc_timerq_cancel(&sv->timers, &a->timer);
		a->state = AA_DONE;
		break;
	default:
		break;
	}
}

bool mc_aapi_done(const struct mc_sv *sv)
{
	return sv->aapi == NULL || sv->aapi->pid <= 0;
}

void mc_aapi_kill(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->pid <= 0 || a->pidfd < 0)
		return;
	mc_pidfd_kill(a->pidfd, SIGKILL);
	siginfo_t si;
	while (waitid((idtype_t)P_PIDFD, (id_t)a->pidfd, &si, WEXITED) < 0 && errno == EINTR)
		;
	reaped(sv, a);
	a->state = AA_DONE;
}

void mc_aapi_free(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	mc_aapi_kill(sv);
	mc_timerq_cancel(&sv->timers, &a->timer);
	while (a->tasks != NULL) {
		struct aa_task *k = a->tasks;
		a->tasks = k->next;
		free(k);
	}
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	free(a);
	sv->aapi = NULL;
}

/* ---- the running tasks ---- */

static struct aa_task **find(struct mc_aapi_proc *a, const char *task_id)
{
	struct aa_task **pp = &a->tasks;
	while (*pp != NULL && strcmp((*pp)->t.task_id, task_id) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void end_task(struct mc_sv *sv, struct mc_aapi_proc *a, struct aa_task **pp)
{
	struct aa_task *k = *pp;
	*pp = k->next;
	a->n_tasks--;
	struct mc_agent_task e = { .event = MC_AGENT_ENDED };
	strlcpy(e.task_id, k->t.task_id, sizeof e.task_id);
	strlcpy(e.workspace_id, k->t.workspace_id, sizeof e.workspace_id);
	free(k);
	send_task(sv, a, &e);
}

static void fill(struct mc_agent_task *t, const char *ws, const struct mc_task_state_msg *m)
{
	t->event = MC_AGENT_RUNNING;
	strlcpy(t->task_id, m->task_id, sizeof t->task_id);
	strlcpy(t->workspace_id, ws, sizeof t->workspace_id);
	strlcpy(t->agent_id, m->agent_id, sizeof t->agent_id);
	strlcpy(t->agent_name, m->agent_name, sizeof t->agent_name);
	strlcpy(t->work_dir, m->work_dir, sizeof t->work_dir);
	strlcpy(t->token_hash, m->token_hash, sizeof t->token_hash);
	t->n_repos = m->n_repos;
	memcpy(t->repos, m->repos, m->n_repos * sizeof m->repos[0]);
}

void mc_aapi_task_state(struct mc_sv *sv, const char *ws, const struct mc_task_state_msg *m)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->listen_fd < 0)
		return;
	struct aa_task **pp = find(a, m->task_id);
	if (m->state == MC_TS_ENDED || m->state == MC_TS_REPORTING) {
		if (*pp != NULL)
			end_task(sv, a, pp); /* the agent has exited: its token no longer works */
		return;
	}
	if (m->state != MC_TS_RUNNING || m->token_hash[0] == '\0')
		return;
	if (*pp != NULL && strcmp((*pp)->t.token_hash, m->token_hash) == 0 &&
	    strcmp((*pp)->t.work_dir, m->work_dir) == 0)
		return; /* a progress report of a task it knows */
	struct aa_task *k = *pp;
	if (k == NULL) {
		k = calloc(1, sizeof *k); /* owned by a->tasks */
		if (k == NULL) {
			mc_log(MC_LOG_ERROR, "out of memory registering a task for the local API",
			       "task", m->task_id, NULL);
			return;
		}
		k->next = a->tasks;
		a->tasks = k;
		a->n_tasks++;
	}
	strlcpy(k->ws, ws, sizeof k->ws);
	fill(&k->t, ws, m);
	send_task(sv, a, &k->t);
}

void mc_aapi_drop_ws(struct mc_sv *sv, const char *ws)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	struct aa_task **pp = &a->tasks;
	while (*pp != NULL) {
		if (strcmp((*pp)->ws, ws) == 0)
			end_task(sv, a, pp);
		else
			pp = &(*pp)->next;
	}
}

/* ---- status ---- */

void mc_aapi_status(struct mc_sv *sv, struct cJSON *root)
{
	const struct mc_aapi_proc *a = sv->aapi;
	cJSON *o = cJSON_AddObjectToObject(root, "agent_api");
	if (o == NULL)
		return;
	char listen[32];
	if (a == NULL || a->listen_fd < 0) {
		cJSON_AddStringToObject(o, "listen", "off");
	} else {
		mc_cfg_format_agent_api(a->port, listen, sizeof listen);
		cJSON_AddStringToObject(o, "listen", listen);
	}
	if (a != NULL && a->pid > 0)
		cJSON_AddNumberToObject(o, "pid", a->pid);
	else
		cJSON_AddNullToObject(o, "pid");
	cJSON_AddStringToObject(o, "state", a != NULL && a->listen_fd >= 0 ? state_names[a->state]
									: "off");
	cJSON_AddNumberToObject(o, "restarts", a != NULL ? a->restarts : 0);
	if (a != NULL && a->have_status) {
		cJSON_AddNumberToObject(o, "repo_cache_bytes", (double)a->status.repo_cache_bytes);
		cJSON_AddNumberToObject(o, "checkouts_running", (double)a->status.checkouts_running);
	} else {
		cJSON_AddNullToObject(o, "repo_cache_bytes");
		cJSON_AddNullToObject(o, "checkouts_running");
	}
	cJSON_AddNumberToObject(o, "tasks", a != NULL ? (double)a->n_tasks : 0);
	if (a != NULL && a->last_error[0])
		cJSON_AddStringToObject(o, "last_error", a->last_error);
	else
		cJSON_AddNullToObject(o, "last_error");
}
