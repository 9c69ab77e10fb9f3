/* The agent-api process seen from the supervisor (agentapi_proc.h): its
 * listening socket, its life (hostproc.c's, like the link's), and the
 * running tasks it serves.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "agentapi/agentapi.h"
#include "common/identity.h"
#include "common/log.h"
#include "ipc/agentapi_msgs.h"
#include "supervisor/hostproc.h"
#include "supervisor/link_proc.h"

struct aa_task {                    /* a running task, as last sent */
	struct aa_task *next;
	char ws[MC_ID_MAX];
	struct mc_agent_task t;
};

struct mc_aapi_proc {
	struct mc_hostproc hp;          /* its life (hostproc.c) */
	int listen_fd, port;            /* -1 / 0 when off */
	struct mc_agent_status status;
	bool have_status;
	struct aa_task *tasks;          /* heap list, owned here */
	size_t n_tasks;
};

static bool running(const struct mc_aapi_proc *a)
{
	return a != NULL && mc_hp_running(&a->hp) && a->hp.fd >= 0;
}

static void send_task(struct mc_sv *sv, struct mc_aapi_proc *a, const struct mc_agent_task *t)
{
	if (!running(a))
		return; /* sent with the others after its handshake */
	if (mc_hp_queued(sv, &a->hp, mc_ipc_send_agent_task(&a->hp.wr, t)) < 0 && !a->hp.untrusted)
		mc_log(MC_LOG_WARN, "cannot send a task to the agent-api process", "task",
		       t->task_id, "error", strerror(errno), NULL);
}

/* ---- the ops (hostproc.h) ---- */

static int aapi_child(int fd, int listen_fd, pid_t parent)
{
	return mc_agentapi_main(fd, listen_fd, parent);
}

static void aapi_frame(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	struct mc_aapi_proc *a = sv->aapi;
	char err[256];
	if (mc_hp_frame(sv, hp, f))
		return; /* HELLO, PONG, STOPPED */
	if (f->type != MC_IPC_AGENT_STATUS) {
		mc_hp_kill_why(sv, hp, "unexpected message type from the agent-api process");
		return;
	}
	if (mc_ipc_parse_agent_status(f, &a->status, err, sizeof err) < 0) {
		mc_hp_kill_why(sv, hp, "bad AGENT_STATUS");
		return;
	}
	a->have_status = true;
}

static void aapi_config(struct mc_sv *sv, struct mc_hostproc *hp, struct mc_worker_config *c)
{
	(void)hp;
	mc_link_proc_build_config(sv, c); /* the link's: workspace_id "", server, identity, root */
}

static void aapi_ready(struct mc_sv *sv, struct mc_hostproc *hp)
{
	(void)hp;
	struct mc_aapi_proc *a = sv->aapi;
	for (const struct aa_task *k = a->tasks; k != NULL && running(a); k = k->next)
		send_task(sv, a, &k->t); /* every running task, again after a respawn */
}

/* A new token was read: it follows at the next ping or frame. */
static void follow_token(struct mc_sv *sv, struct mc_hostproc *hp)
{
	if (hp->token_sent != sv->token)
		mc_hp_send_token(sv, hp);
}

static void aapi_gone(struct mc_sv *sv, struct mc_hostproc *hp)
{
	(void)hp;
	sv->aapi->have_status = false;
}

static const struct mc_hostproc_ops aapi_ops = {
	.name = "agent-api process",
	.pid_key = "agentapi_pid",
	.type_ok = mc_ipc_type_ok_from_agentapi,
	.child_main = aapi_child,
	.frame = aapi_frame,
	.config = aapi_config,
	.ready = aapi_ready,
	.pinged = follow_token,
	.gone = aapi_gone,
};

static struct mc_aapi_proc *get(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		return sv->aapi;
	struct mc_aapi_proc *a = calloc(1, sizeof *a); /* freed by mc_aapi_free */
	if (a == NULL)
		return NULL;
	mc_hp_init(&a->hp, &aapi_ops, sv, SRC_AAPI_IPC, SRC_AAPI_PID, TIMER_AAPI, a);
	a->listen_fd = -1;
	sv->aapi = a;
	return a;
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
	a->hp.extra_fd = fd; /* the child's fd 4 */
	a->port = ntohs(sa.sin_port);
	mc_log(MC_LOG_INFO, "agents' local API listening", "listen", "127.0.0.1", "port",
	       MC_LOG_NUM(a->port), NULL);
	return 0;
}

int mc_aapi_port(const struct mc_sv *sv)
{
	return sv->aapi != NULL && sv->aapi->listen_fd >= 0 ? sv->aapi->port : 0;
}

/* ---- its life ---- */

void mc_aapi_tick(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL || a->listen_fd < 0)
		return;
	mc_hp_start(sv, &a->hp);
}

void mc_aapi_on_ipc(struct mc_sv *sv, uint32_t events)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	mc_hp_on_ipc(sv, &a->hp, events);
	if (running(a))
		follow_token(sv, &a->hp);
}

void mc_aapi_on_timer(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		mc_hp_on_timer(sv, &sv->aapi->hp);
}

void mc_aapi_on_exit(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		mc_hp_on_exit(sv, &sv->aapi->hp);
}

void mc_aapi_stop(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		mc_hp_stop(sv, &sv->aapi->hp);
}

bool mc_aapi_done(const struct mc_sv *sv)
{
	return sv->aapi == NULL || mc_hp_done(&sv->aapi->hp);
}

void mc_aapi_kill(struct mc_sv *sv)
{
	if (sv->aapi != NULL)
		mc_hp_kill(sv, &sv->aapi->hp);
}

void mc_aapi_free(struct mc_sv *sv)
{
	struct mc_aapi_proc *a = sv->aapi;
	if (a == NULL)
		return;
	mc_hp_release(sv, &a->hp);
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

/* The workspace's agent identity: its git runs as it. Unknown (an error
 * of the slot table): refused, the task's checkouts then get 401 rather
 * than git as the daemon. */
static int fill_identity(struct mc_sv *sv, struct mc_agent_task *t, const char *ws)
{
	struct mc_identity id;
	if (mc_sv_agent_identity(sv, ws, &id) < 0)
		return -1;
	t->agent_switch = id.sw;
	t->agent_uid = id.sw ? (long)id.uid : -1;
	t->agent_gid = id.sw ? (long)id.gid : -1;
	t->agent_extra_gid = id.sw && id.extra_gid != (gid_t)-1 ? (long)id.extra_gid : -1;
	return 0;
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
	if (fill_identity(sv, &k->t, ws) < 0) {
		mc_log(MC_LOG_ERROR, "no agent identity for the workspace: its task gets no local API",
		       "task", m->task_id, "workspace", ws, "error", strerror(errno), NULL);
		end_task(sv, a, find(a, m->task_id)); /* an ENDED for one never sent is a no-op */
		return;
	}
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
	mc_hp_status(o, a != NULL ? &a->hp : NULL, a != NULL && a->listen_fd >= 0 ? NULL : "off");
	if (a != NULL && a->have_status) {
		cJSON_AddNumberToObject(o, "repo_cache_bytes", (double)a->status.repo_cache_bytes);
		cJSON_AddNumberToObject(o, "checkouts_running", (double)a->status.checkouts_running);
	} else {
		cJSON_AddNullToObject(o, "repo_cache_bytes");
		cJSON_AddNullToObject(o, "checkouts_running");
	}
	cJSON_AddNumberToObject(o, "tasks", a != NULL ? (double)a->n_tasks : 0);
	mc_hp_status_error(o, a != NULL ? &a->hp : NULL);
}
