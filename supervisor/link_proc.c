/* The link process seen from the supervisor: its life is hostproc.c's
 * (spawn after the first probe round, handshake, liveness pings like a
 * worker's, respawn with backoff after a death, stop first at shutdown);
 * here are its CONFIG, its restart for a changed one, and its token. What
 * it sends (SLOTS_REQ, TASK, CLAIM_DONE) is route.c's.
 *
 *   DOWN -tick-> STARTING -HELLO-> RUNNING -STOP-> STOPPING -exit-> DONE
 *   STARTING/RUNNING -exit, kill-> BACKOFF -timer-> STARTING
 *   RUNNING -reload, CONFIG changed-> STOPPING -exit-> DOWN -> STARTING
 *
 * The link holds no runtimes and no task once handed over, so its death
 * needs no cleanup: the grant it held is returned, and the server
 * re-delivers a claim whose answer was lost. */
#include "supervisor/agentapi_proc.h"
#include "supervisor/link_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "common/log.h"
#include "link/link.h"

static int link_child(int fd, int extra_fd, pid_t parent)
{
	(void)extra_fd;
	return mc_link_main(fd, parent);
}

static void link_frame(struct mc_sv *sv, struct mc_hostproc *hp, const struct mc_ipc_frame *f)
{
	(void)hp;
	if (f->type == MC_IPC_PUSH || f->type == MC_IPC_PUSH_STATE)
		mc_push_link_frame(sv, f); /* push.c */
	else
		mc_route_link_frame(sv, f); /* HELLO and PONG come back by mc_link_proc_on_* */
}

static void config_digest(const struct mc_sv *sv, char out[65]);

static void link_config(struct mc_sv *sv, struct mc_hostproc *hp, struct mc_worker_config *c)
{
	(void)hp;
	mc_link_proc_build_config(sv, c);
	config_digest(sv, sv->link->cfg_digest);
	sv->link->reloads_seen = sv->reloads;
}

static void link_spawned(struct mc_sv *sv, struct mc_hostproc *hp)
{
	(void)hp;
	/* A restart (new CONFIG) calls no gone: the old process's open claim
	 * and its grant (the slots go back) and its socket are over. A new
	 * link's SLOTS_REQ met a claim still open and was killed for it. */
	mc_route_link_gone(sv);
	mc_push_link_gone(sv);
}

static void link_ready(struct mc_sv *sv, struct mc_hostproc *hp)
{
	(void)hp;
	mc_route_link_ready(sv);
}

static void link_gone(struct mc_sv *sv, struct mc_hostproc *hp)
{
	(void)hp;
	mc_route_link_gone(sv);
	mc_push_link_gone(sv);
}

static const struct mc_hostproc_ops link_ops = {
	.name = "link",
	.pid_key = "link_pid",
	.type_ok = mc_ipc_type_ok_from_link,
	.child_main = link_child,
	.frame = link_frame,
	.config = link_config,
	.spawned = link_spawned,
	.ready = link_ready,
	.gone = link_gone,
};

/* Allocated once, at the first tick; freed by mc_link_proc_free. */
static struct mc_link_proc *get(struct mc_sv *sv)
{
	if (sv->link != NULL)
		return sv->link;
	struct mc_link_proc *lp = calloc(1, sizeof *lp);
	if (lp == NULL)
		return NULL;
	mc_hp_init(&lp->hp, &link_ops, sv, SRC_LINK_IPC, SRC_LINK_PID, TIMER_LINK, lp);
	sv->link = lp;
	return lp;
}

bool mc_link_proc_running(const struct mc_sv *sv)
{
	return sv->link != NULL && mc_hp_running(&sv->link->hp);
}

void mc_link_proc_kill_why(struct mc_sv *sv, const char *why)
{
	if (sv->link != NULL)
		mc_hp_kill_why(sv, &sv->link->hp, why);
}

int mc_link_proc_queued(struct mc_sv *sv, int rc)
{
	return sv->link != NULL ? mc_hp_queued(sv, &sv->link->hp, rc) : -1;
}

void mc_link_proc_tick(struct mc_sv *sv)
{
	if (!sv->probes_done || sv->shutting_down)
		return;
	if (sv->link != NULL && sv->link->hp.state != MC_HP_DOWN)
		return;
	struct mc_link_proc *lp = get(sv);
	if (lp == NULL)
		return;
	mc_hp_start(sv, &lp->hp);
}

void mc_link_proc_on_hello(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	mc_hp_on_hello(sv, &sv->link->hp, f);
}

void mc_link_proc_on_pong(struct mc_sv *sv, const struct mc_ipc_frame *f)
{
	mc_hp_on_pong(sv, &sv->link->hp, f);
}

void mc_link_proc_on_ipc(struct mc_sv *sv, uint32_t events)
{
	if (sv->link != NULL)
		mc_hp_on_ipc(sv, &sv->link->hp, events);
}

void mc_link_proc_on_timer(struct mc_sv *sv)
{
	if (sv->link != NULL)
		mc_hp_on_timer(sv, &sv->link->hp);
}

void mc_link_proc_on_exit(struct mc_sv *sv)
{
	if (sv->link != NULL)
		mc_hp_on_exit(sv, &sv->link->hp);
}

/* ---- its CONFIG and token ---- */

void mc_sv_task_config(const struct mc_sv *sv, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	/* The poll and the host's slots are the link's and the supervisor's
	 * business: a change of them restarts no worker. */
	strlcpy(c->workspaces_root, g->workspaces_root, sizeof c->workspaces_root);
	strlcpy(c->state_dir, g->state_dir, sizeof c->state_dir);
	c->task_idle_timeout_ms = g->task_idle_timeout_ms;
	c->task_stop_grace_ms = g->task_stop_grace_ms;
	c->task_retention_ms = g->task_retention_ms;
	c->stop_timeout_ms = g->stop_timeout_ms;
	c->agent_api_port = mc_aapi_port(sv); /* the port bound: MULTICA_DAEMON_PORT */
}

void mc_link_proc_build_config(const struct mc_sv *sv, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	memset(c, 0, sizeof *c);
	strlcpy(c->server_url, g->server_url, sizeof c->server_url);
	strlcpy(c->daemon_id, g->daemon_id, sizeof c->daemon_id);
	strlcpy(c->device_name, g->device_name, sizeof c->device_name);
	snprintf(c->cli_version, sizeof c->cli_version, "multicad/%s", MC_VERSION);
	strlcpy(c->log_level, mc_config_log_level_name(g->log_level), sizeof c->log_level);
	c->heartbeat_interval_ms = g->heartbeat_interval_ms;
	c->profile_sync_interval_ms = g->profile_sync_interval_ms;
	c->http_timeout_ms = g->http_timeout_ms;
	c->probe_timeout_ms = 10000;
	strlcpy(c->ca_file, g->ca_file, sizeof c->ca_file);
	mc_sv_task_config(sv, c);
	c->task_poll_interval_ms = g->task_poll_interval_ms;
	c->max_concurrent_tasks = g->max_concurrent_tasks;
	c->websocket_off = !g->websocket; /* websocket = off: no push channel */
}

/* Of the CONFIG frame's bytes: a reload that changes them restarts it. */
static void config_digest(const struct mc_sv *sv, char out[65])
{
	struct mc_worker_config c;
	mc_link_proc_build_config(sv, &c);
	struct mc_ipc_writer w;
	mc_ipc_writer_init(&w);
	unsigned char d[32];
	if (mc_ipc_send_config(&w, &c) < 0) {
		strlcpy(out, "unknown", 65);
	} else {
		crypto_generichash(d, sizeof d, w.buf, w.tail, NULL, 0);
		sodium_bin2hex(out, 65, d, sizeof d);
	}
	mc_ipc_writer_free(&w);
}

void mc_link_proc_follow(struct mc_sv *sv)
{
	struct mc_link_proc *lp = sv->link;
	if (!mc_link_proc_running(sv))
		return;
	if (lp->reloads_seen != sv->reloads) {
		lp->reloads_seen = sv->reloads;
		char d[65];
		config_digest(sv, d);
		if (strcmp(d, lp->cfg_digest) != 0) {
			mc_log(MC_LOG_INFO, "the link's configuration changed; restarting it", NULL);
			lp->hp.restart = true;
			mc_link_proc_stop(sv);
			return;
		}
	}
	if (lp->hp.token_sent != sv->token && sv->token != NULL)
		mc_hp_send_token(sv, &lp->hp);
}

/* ---- stop ---- */

void mc_link_proc_stop(struct mc_sv *sv)
{
	if (sv->link != NULL)
		mc_hp_stop(sv, &sv->link->hp);
}

bool mc_link_proc_done(const struct mc_sv *sv)
{
	return sv->link == NULL || mc_hp_done(&sv->link->hp);
}

void mc_link_proc_kill(struct mc_sv *sv)
{
	if (sv->link != NULL)
		mc_hp_kill(sv, &sv->link->hp); /* mc_route_link_gone by link_gone */
}

void mc_link_proc_free(struct mc_sv *sv)
{
	if (sv->link == NULL)
		return;
	mc_hp_release(sv, &sv->link->hp);
	free(sv->link->dirty);
	free(sv->link);
	sv->link = NULL;
}

/* ---- status ---- */

void mc_link_proc_status(struct mc_sv *sv, struct cJSON *root)
{
	const struct mc_link_proc *lp = sv->link;
	cJSON *o = cJSON_AddObjectToObject(root, "link");
	if (o != NULL) {
		mc_hp_status(o, lp != NULL ? &lp->hp : NULL, lp != NULL ? NULL : "down");
		mc_push_status(sv, o);
		mc_hp_status_error(o, lp != NULL ? &lp->hp : NULL);
	}
	if (cJSON_GetObjectItemCaseSensitive(root, "slots") != NULL)
		return; /* another part of the status said it already */
	cJSON *s = cJSON_AddObjectToObject(root, "slots");
	if (s != NULL) {
		cJSON_AddNumberToObject(s, "max", sv->tasks.max);
		cJSON_AddNumberToObject(s, "used", sv->tasks.used);
		cJSON_AddNumberToObject(s, "reserved", sv->tasks.reserved);
	}
}
