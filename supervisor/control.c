/* The control socket: one JSON object per line, request and reply, then the
 * connection closes. Requests: {"cmd":"status"}, {"cmd":"reload"},
 * {"cmd":"restart","workspace":"<uuid>"}, {"cmd":"tasks"} and
 * {"cmd":"drain","timeout_ms":N}, whose reply comes when the drain is over
 * (the client waits, without the usual deadline). A bad request gets an
 * error reply naming the problem and never disturbs the daemon. Only the
 * daemon's user and group may connect (mode 0660). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "supervisor/agentapi_proc.h"
#include "common/log.h"
#include "supervisor/control_request.h"
#include "supervisor/sv.h"

/* Clients connected at once (one more gets an error naming the limit),
 * the longest request line, and how long a client may take. Literals: the
 * messages spell them with STR(). */
#define CONTROL_MAX_CLIENTS  32
#define CONTROL_REQUEST_MAX  4096
#define CONTROL_DEADLINE_MS  5000
#define STR_(x) #x
#define STR(x)  STR_(x)

struct mc_ctl_client {
	int fd;
	struct mc_src src;
	struct mc_timer timer;
	char in[CONTROL_REQUEST_MAX + 1];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	struct mc_ctl_client *next;
	bool dead;
	bool drain_waiting;             /* gets its reply from mc_control_drain_done */
};

/* ---- replies ---- */

static cJSON *error_reply(const char *msg)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", false);
	cJSON_AddStringToObject(r, "error", msg);
	return r;
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
	if (v != NULL && v[0])
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* "draining": a running worker that gets no new task and is waiting for
 * its running ones (a reload's drain, or the host's). */
static const char *worker_state_name(struct mc_sv *sv, const struct mc_wk *wk)
{
	if (wk->state == WK_RUNNING &&
	    (wk->draining || (sv->draining && mc_sv_tasks_count_ws(&sv->tasks, wk->ws) > 0)))
		return "draining";
	return mc_wk_state_name(wk->state);
}

static void add_task_id(struct mc_sv_task *task, void *arg)
{
	cJSON_AddItemToArray(arg, cJSON_CreateString(task->id));
}

static cJSON *worker_json(struct mc_sv *sv, const struct mc_wk *wk, mc_ms_t now)
{
	cJSON *w = cJSON_CreateObject();
	cJSON_AddStringToObject(w, "id", wk->ws);
	if (wk->pid > 0)
		cJSON_AddNumberToObject(w, "pid", wk->pid);
	else
		cJSON_AddNullToObject(w, "pid");
	cJSON_AddStringToObject(w, "state", worker_state_name(sv, wk));
	cJSON *ids = cJSON_AddArrayToObject(w, "runtime_ids");
	const char *const *v;
	size_t n = mc_ledger_get(sv->ledger, wk->ws, &v);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(ids, cJSON_CreateString(v[i]));
	cJSON_AddNumberToObject(w, "restarts", wk->restarts);
	cJSON_AddNumberToObject(w, "uptime_s",
				wk->pid > 0 ? (double)((now - wk->started_at) / 1000) : 0);
	add_str_or_null(w, "last_error", wk->last_error);
	cJSON *tasks = cJSON_AddArrayToObject(w, "tasks");
	mc_sv_tasks_foreach_ws(&sv->tasks, wk->ws, add_task_id, tasks);
	return w;
}

static cJSON *status_reply(struct mc_sv *sv)
{
	mc_ms_t now = mc_now_ms();
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON *s = cJSON_AddObjectToObject(r, "supervisor");
	cJSON_AddNumberToObject(s, "pid", sv->pid);
	cJSON_AddNumberToObject(s, "uptime_s", (double)((now - sv->started_at) / 1000));
	cJSON_AddStringToObject(s, "config", sv->config_path);
	cJSON_AddStringToObject(s, "version", MC_VERSION);
	cJSON_AddNumberToObject(s, "reloads", sv->reloads);
	cJSON *lr = cJSON_AddObjectToObject(s, "last_reload");
	cJSON_AddBoolToObject(lr, "ok", sv->last_reload_ok);
	add_str_or_null(lr, "error", sv->last_reload_error);
	cJSON_AddBoolToObject(s, "draining", sv->draining);
	cJSON *arr = cJSON_AddArrayToObject(r, "workspaces");
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		cJSON_AddItemToArray(arr, worker_json(sv, wk, now));
	mc_link_proc_status(sv, r); /* "link" and "slots" */
	mc_sv_agents_status(sv, r); /* "agents" (agents.c) */
	mc_aapi_status(sv, r);      /* "agent_api" */
	return r;
}

/* ---- tasks and drain ---- */

static cJSON *task_json(const struct mc_sv_task *k, mc_ms_t now)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "workspace", k->ws);
	cJSON_AddStringToObject(o, "id", k->id);
	cJSON_AddStringToObject(o, "runtime_id", k->runtime_id);
	add_str_or_null(o, "family", k->family);
	if (k->pid > 0)
		cJSON_AddNumberToObject(o, "pid", k->pid);
	else
		cJSON_AddNullToObject(o, "pid");
	cJSON_AddStringToObject(o, "state", mc_task_state_name(k->state));
	cJSON_AddNumberToObject(o, "slot", k->slot);
	cJSON_AddNumberToObject(o, "age_s", (double)((now - k->routed_at) / 1000));
	cJSON_AddNumberToObject(o, "state_age_s", (double)((now - k->state_at) / 1000));
	add_str_or_null(o, "last_output", k->last_output);
	return o;
}

static cJSON *tasks_reply(struct mc_sv *sv)
{
	mc_ms_t now = mc_now_ms();
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON *arr = cJSON_AddArrayToObject(r, "tasks");
	/* Workspace by workspace (the table is newest first within each). */
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		for (const struct mc_sv_task *k = sv->tasks.head; k != NULL; k = k->next)
			if (strcmp(k->ws, wk->ws) == 0)
				cJSON_AddItemToArray(arr, task_json(k, now));
	/* A task whose workspace has no worker entry any more (not expected). */
	for (const struct mc_sv_task *k = sv->tasks.head; k != NULL; k = k->next)
		if (mc_wk_find(sv, k->ws) == NULL)
			cJSON_AddItemToArray(arr, task_json(k, now));
	return r;
}

/* NULL: the reply comes later (mc_control_drain_done), maybe already sent. */
static cJSON *drain_request(struct mc_sv *sv, struct mc_ctl_client *c, long long timeout_ms)
{
	if (sv->shutting_down)
		return error_reply("shutting down");
	mc_timerq_cancel(&sv->timers, &c->timer); /* waits as long as the drain */
	c->drain_waiting = true;
	mc_log(MC_LOG_INFO, "drain requested over the control socket", "timeout_ms",
	       MC_LOG_NUM(timeout_ms), NULL);
	if (mc_sv_drain(sv, (mc_ms_t)timeout_ms) < 0) {
		c->drain_waiting = false;
		return error_reply("shutting down");
	}
	return NULL;
}

static void client_reply(struct mc_sv *sv, struct mc_ctl_client *c, cJSON *reply);

void mc_control_drain_done(struct mc_sv *sv, const char *msg, bool timed_out, size_t tasks_left)
{
	for (struct mc_ctl_client *c = sv->ctl_clients; c != NULL; c = c->next) {
		if (c->dead || !c->drain_waiting)
			continue;
		c->drain_waiting = false;
		cJSON *r = cJSON_CreateObject();
		cJSON_AddBoolToObject(r, "ok", true);
		cJSON_AddStringToObject(r, "message", msg);
		cJSON_AddBoolToObject(r, "timed_out", timed_out);
		cJSON_AddNumberToObject(r, "tasks_left", (double)tasks_left);
		client_reply(sv, c, r);
	}
}

#ifdef MC_TEST_HOOKS
/* A task in the table as if the link had routed it and the worker had
 * reported its agent (tests of the death path before the executor). */
static cJSON *test_task_reply(struct mc_sv *sv, const struct mc_ctl_request *req)
{
	if (mc_wk_find(sv, req->workspace) == NULL)
		return error_reply("no such workspace is served here");
	struct mc_sv_task *k = mc_sv_task_add(&sv->tasks, req->task_id, req->runtime_id,
					      req->workspace, mc_now_ms());
	if (k == NULL)
		return error_reply("no free slot");
	k->state = MC_TS_RUNNING;
	k->pid = k->pgid = req->pgid;
	strlcpy(k->family, "claude", sizeof k->family);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddNumberToObject(r, "slot", k->slot);
	return r;
}
#endif

static cJSON *reload_reply(struct mc_sv *sv)
{
	if (sv->shutting_down)
		return error_reply("shutting down");
	if (mc_sv_reload(sv) < 0)
		return error_reply(sv->last_reload_error);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddStringToObject(r, "message", sv->last_reload_summary);
	return r;
}

static cJSON *restart_reply(struct mc_sv *sv, const char *ws)
{
	struct mc_wk *wk = mc_wk_find(sv, ws);
	if (wk == NULL || wk->next == NEXT_REMOVE)
		return error_reply("no such workspace is served here");
	if (sv->shutting_down)
		return error_reply("shutting down");
	mc_log(MC_LOG_INFO, "restart requested over the control socket", "ws", wk->ws, NULL);
	mc_wk_restart(sv, wk);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "ok", true);
	cJSON_AddStringToObject(r, "message", "restarting");
	return r;
}

static cJSON *handle_request(struct mc_sv *sv, struct mc_ctl_client *c, const char *line,
			     size_t len)
{
	struct mc_ctl_request req;
	char err[128];
	if (mc_ctl_parse_request(line, len, &req, err, sizeof err) < 0)
		return error_reply(err);
	switch (req.cmd) {
	case MC_CTL_STATUS:
		return status_reply(sv);
	case MC_CTL_RELOAD:
		return reload_reply(sv);
	case MC_CTL_RESTART:
		return restart_reply(sv, req.workspace);
	case MC_CTL_TASKS:
		return tasks_reply(sv);
	case MC_CTL_DRAIN:
		return drain_request(sv, c, req.timeout_ms);
	case MC_CTL_TEST_TASK:
#ifdef MC_TEST_HOOKS
		return test_task_reply(sv, &req);
#else
		break;
#endif
	}
	return error_reply("unknown cmd (status, reload, restart, tasks, drain)");
}

/* ---- connections ---- */

static void client_close(struct mc_sv *sv, struct mc_ctl_client *c)
{
	if (c->dead)
		return;
	mc_timerq_cancel(&sv->timers, &c->timer);
	mc_sv_epoll_del(sv, c->fd);
	close(c->fd);
	c->dead = true;
	sv->n_ctl_clients--;
}

static void client_write(struct mc_sv *sv, struct mc_ctl_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				mc_sv_epoll_mod(sv, c->fd, EPOLLOUT, &c->src);
				return;
			}
			break;
		}
		c->out_off += (size_t)w;
	}
	client_close(sv, c);
}

static void client_reply(struct mc_sv *sv, struct mc_ctl_client *c, cJSON *reply)
{
	char *text = reply ? cJSON_PrintUnformatted(reply) : NULL;
	cJSON_Delete(reply);
	if (text == NULL) {
		client_close(sv, c);
		return;
	}
	size_t len = strlen(text);
	c->out = malloc(len + 2);
	if (c->out == NULL) {
		free(text);
		client_close(sv, c);
		return;
	}
	memcpy(c->out, text, len);
	free(text);
	c->out[len] = '\n';
	c->out_len = len + 1;
	client_write(sv, c);
}

/* Reads and drops what the client has sent so far (bounded): a unix socket
 * closed with unread data resets its peer, who would then read that reset
 * after our reply instead of its end. */
static void discard_input(int fd)
{
	char junk[4096];
	for (int i = 0; i < 16; i++) {
		ssize_t r = read(fd, junk, sizeof junk);
		if (r <= 0 && !(r < 0 && errno == EINTR))
			return;
	}
}

static void client_read(struct mc_sv *sv, struct mc_ctl_client *c)
{
	for (;;) {
		ssize_t r = read(c->fd, c->in + c->in_len, CONTROL_REQUEST_MAX - c->in_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			client_close(sv, c); /* gone before asking anything */
			return;
		}
		c->in_len += (size_t)r;
		c->in[c->in_len] = '\0';
		char *nl = memchr(c->in, '\n', c->in_len);
		if (nl != NULL) {
			*nl = '\0';
			mc_sv_epoll_mod(sv, c->fd, 0, &c->src);
			cJSON *reply = handle_request(sv, c, c->in, (size_t)(nl - c->in));
			if (reply != NULL)
				client_reply(sv, c, reply);
			else if (!c->drain_waiting && c->out == NULL)
				client_close(sv, c); /* nothing to say (out of memory) */
			return;
		}
		if (c->in_len == CONTROL_REQUEST_MAX) {
			discard_input(c->fd);
			client_reply(sv, c, error_reply("request longer than the "
							STR(CONTROL_REQUEST_MAX) "-byte limit"));
			return;
		}
	}
}

static void accept_clients(struct mc_sv *sv)
{
	for (;;) {
		int fd = accept4(sv->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or out of fds: try on the next event */
		}
		if (sv->n_ctl_clients >= CONTROL_MAX_CLIENTS) {
			static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients "
				"(at most " STR(CONTROL_MAX_CLIENTS) " at once): try again\"}\n";
			discard_input(fd); /* a request sent at once: no reset after the answer */
			(void)!send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		struct mc_ctl_client *c = calloc(1, sizeof *c);
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->src = (struct mc_src){ SRC_CONTROL_CLIENT, c };
		mc_timer_init(&c->timer, TIMER_CONTROL, c);
		if (mc_sv_epoll_add(sv, fd, EPOLLIN, &c->src) < 0) {
			close(fd);
			free(c);
			continue;
		}
		mc_timerq_arm(&sv->timers, &c->timer, mc_now_ms() + CONTROL_DEADLINE_MS);
		c->next = sv->ctl_clients;
		sv->ctl_clients = c;
		sv->n_ctl_clients++;
	}
}

void mc_control_on_event(struct mc_sv *sv, struct mc_src *src, uint32_t events)
{
	if (src->kind == SRC_CONTROL_LISTEN) {
		accept_clients(sv);
		return;
	}
	struct mc_ctl_client *c = src->owner;
	if (c->dead)
		return;
	if (c->out != NULL && (events & EPOLLOUT))
		client_write(sv, c);
	else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(sv, c);
}

void mc_control_on_timer(struct mc_sv *sv, struct mc_timer *t)
{
	struct mc_ctl_client *c = t->owner;
	client_close(sv, c); /* a client that neither asks nor reads in time */
}

int mc_control_open(struct mc_sv *sv, char *err, size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlcpy(sa.sun_path, sv->cfg.control_socket, sizeof sa.sun_path) >= sizeof sa.sun_path) {
		snprintf(err, n, "%s: control_socket path too long", sv->cfg.control_socket);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, n, "control socket: %s", strerror(errno));
		return -1;
	}
	/* We hold the state_dir lock, so a socket left here is stale; anything
	 * else (a file, a symlink) is not ours to delete. */
	struct stat st;
	if (lstat(sa.sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, n, "%s: exists and is not a socket (remove it or change "
				 "control_socket)", sa.sun_path);
			close(fd);
			return -1;
		}
		unlink(sa.sun_path);
	}
	/* The umask alone gives 0660: no chmod, which would follow a symlink
	 * planted between bind and chmod. */
	mode_t old = umask(0117);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(err, n, "%s: %s", sa.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	sv->ctl_fd = fd;
	sv->ctl_src = (struct mc_src){ SRC_CONTROL_LISTEN, sv };
	if (mc_sv_epoll_add(sv, fd, EPOLLIN, &sv->ctl_src) < 0) {
		snprintf(err, n, "control socket: %s", strerror(errno));
		close(fd);
		sv->ctl_fd = -1;
		return -1;
	}
	return 0;
}

void mc_control_close(struct mc_sv *sv)
{
	for (struct mc_ctl_client *c = sv->ctl_clients; c != NULL; c = c->next)
		client_close(sv, c);
	mc_control_reap(sv);
	if (sv->ctl_fd >= 0) {
		mc_sv_epoll_del(sv, sv->ctl_fd);
		close(sv->ctl_fd);
		sv->ctl_fd = -1;
		unlink(sv->cfg.control_socket);
	}
}

void mc_control_reap(struct mc_sv *sv)
{
	struct mc_ctl_client **p = &sv->ctl_clients;
	while (*p != NULL) {
		struct mc_ctl_client *c = *p;
		if (c->dead) {
			*p = c->next;
			free(c->out);
			free(c);
		} else {
			p = &c->next;
		}
	}
}
