#include "tests/support/agentapi_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "agentapi/agentapi.h"
#include "common/child.h"
#include "common/clock.h"
#include "common/task.h"

static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int ah_become_daemon(long uid, long gid)
{
	/* Keeps the permitted set across setuid, then makes exactly these
	 * three effective (and permitted): no CAP_CHOWN, no DAC override. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
	    setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
		return -1;
	uint32_t caps = (1u << CAP_SETUID) | (1u << CAP_SETGID) | (1u << CAP_KILL);
	struct __user_cap_header_struct hd = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { .effective = caps, .permitted = caps }, { 0 } };
	return (int)syscall(SYS_capset, &hd, d);
}

static void flush_all(struct ah *h)
{
	for (int i = 0; i < 1000 && mc_ipc_writer_pending(&h->wr) > 0; i++) {
		if (mc_ipc_writer_flush(&h->wr, h->fd) < 0)
			return;
		if (mc_ipc_writer_pending(&h->wr) > 0)
			usleep(1000);
	}
}

static void fill_config(struct mc_worker_config *c, const struct ah_opts *o)
{
	memset(c, 0, sizeof *c);
	strlcpy(c->server_url, o->server_url, sizeof c->server_url);
	strlcpy(c->daemon_id, o->daemon_id ? o->daemon_id : "test-daemon", sizeof c->daemon_id);
	strlcpy(c->device_name, o->device_name ? o->device_name : "testhost", sizeof c->device_name);
	strlcpy(c->cli_version, "multicad/test", sizeof c->cli_version);
	strlcpy(c->log_level, "debug", sizeof c->log_level);
	c->heartbeat_interval_ms = 15000;
	c->profile_sync_interval_ms = 60000;
	c->http_timeout_ms = 5000;
	c->probe_timeout_ms = 1000;
	strlcpy(c->workspaces_root, o->workspaces_root ? o->workspaces_root : "",
		sizeof c->workspaces_root);
	c->task_stop_grace_ms = 2000;
	c->stop_timeout_ms = 10000;
	c->task_poll_interval_ms = 30000;
	c->max_concurrent_tasks = 20;
}

static int wait_hello(struct ah *h)
{
	mc_ms_t until = mc_now_ms() + 5000;
	struct mc_ipc_frame f;
	int got = 0;
	while (mc_now_ms() < until) {
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0 && mc_ipc_reader_fill(&h->rd, h->fd) >= 0 &&
		    (got = mc_ipc_reader_next(&h->rd, &f)) != 0)
			break;
	}
	return got == 1 && f.type == MC_IPC_HELLO ? 0 : -1;
}

int ah_start(struct ah *h, const struct ah_opts *o)
{
	memset(h, 0, sizeof *h);
	h->fd = -1;
	int sv[2];
	int lfd = listen_any(&h->port);
	if (lfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	fflush(NULL);
	pid_t parent = getpid();
	h->pid = fork();
	if (h->pid < 0)
		return -1;
	if (h->pid == 0) {
		close(sv[0]);
		if (o->daemon_uid > 0 && ah_become_daemon(o->daemon_uid, o->daemon_gid) < 0) {
			perror("agentapi harness: become the daemon's uid");
			_exit(111);
		}
		mc_child_exit(mc_agentapi_main(sv[1], lfd, parent));
	}
	close(sv[1]);
	close(lfd);
	h->fd = sv[0];
	fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK);
	if (mc_ipc_reader_init(&h->rd, mc_ipc_type_ok_from_agentapi) < 0)
		return -1;
	mc_ipc_writer_init(&h->wr);
	if (wait_hello(h) < 0)
		return -1;
	struct mc_worker_config c;
	fill_config(&c, o);
	if (mc_ipc_send_config(&h->wr, &c) < 0 ||
	    mc_ipc_send_token(&h->wr, o->token, strlen(o->token)) < 0)
		return -1;
	flush_all(h);
	return 0;
}

static void reap(struct ah *h, int flags)
{
	if (h->exited || h->pid <= 0)
		return;
	int st;
	if (waitpid(h->pid, &st, flags) == h->pid) {
		h->exited = true;
		h->wstatus = st;
	}
}

static void on_frame(struct ah *h, const struct mc_ipc_frame *f)
{
	char err[256];
	uint64_t seq;
	bool dereg;
	if (f->type == MC_IPC_PONG && mc_ipc_parse_seq(f, &seq, err, sizeof err) == 0) {
		h->last_pong = seq;
		h->got_pong = true;
	} else if (f->type == MC_IPC_AGENT_STATUS &&
		   mc_ipc_parse_agent_status(f, &h->status, err, sizeof err) == 0) {
		h->n_status++;
	} else if (f->type == MC_IPC_STOPPED &&
		   mc_ipc_parse_stopped(f, &dereg, err, sizeof err) == 0) {
		h->stopped = true;
	}
}

void ah_pump(struct ah *h, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	do {
		flush_all(h);
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		int left = (int)(until - mc_now_ms());
		if (poll(&p, 1, left > 0 ? (left < 20 ? left : 20) : 0) > 0) {
			int rc = mc_ipc_reader_fill(&h->rd, h->fd);
			struct mc_ipc_frame f;
			while (mc_ipc_reader_next(&h->rd, &f) == 1)
				on_frame(h, &f);
			if (rc <= 0 && h->rd.eof) {
				reap(h, 0);
				return;
			}
		}
		reap(h, WNOHANG);
	} while (!h->exited && mc_now_ms() < until);
}

long ah_ping(struct ah *h, uint64_t seq, int timeout_ms)
{
	mc_ms_t t0 = mc_now_ms();
	h->got_pong = false;
	if (mc_ipc_send_ping(&h->wr, seq) < 0)
		return -1;
	while (mc_now_ms() - t0 < timeout_ms && !(h->got_pong && h->last_pong == seq))
		ah_pump(h, 10);
	return h->got_pong && h->last_pong == seq ? (long)(mc_now_ms() - t0) : -1;
}

int ah_task_running(struct ah *h, const char *task_id, const char *ws, const char *agent_name,
		    const char *work_dir, const char *token, size_t n_repos,
		    const struct mc_task_repo *repos)
{
	return ah_task_running_as(h, task_id, ws, agent_name, work_dir, token, n_repos, repos, 0, 0,
				  -1);
}

int ah_task_running_as(struct ah *h, const char *task_id, const char *ws, const char *agent_name,
		       const char *work_dir, const char *token, size_t n_repos,
		       const struct mc_task_repo *repos, long uid, long gid, long extra_gid)
{
	struct mc_agent_task *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	t->event = MC_AGENT_RUNNING;
	strlcpy(t->task_id, task_id, sizeof t->task_id);
	strlcpy(t->workspace_id, ws, sizeof t->workspace_id);
	strlcpy(t->agent_id, "0198c3a2-7b4e-7c1d-9f3a-aaaaaaaaaaaa", sizeof t->agent_id);
	strlcpy(t->agent_name, agent_name, sizeof t->agent_name);
	strlcpy(t->work_dir, work_dir, sizeof t->work_dir);
	mc_task_token_hash_bytes(token, strlen(token), t->token_hash);
	t->n_repos = n_repos;
	for (size_t i = 0; i < n_repos; i++)
		t->repos[i] = repos[i];
	t->agent_switch = uid > 0 && gid > 0;
	t->agent_uid = t->agent_switch ? uid : -1;
	t->agent_gid = t->agent_switch ? gid : -1;
	t->agent_extra_gid = t->agent_switch ? extra_gid : -1;
	int rc = mc_ipc_send_agent_task(&h->wr, t);
	free(t);
	flush_all(h);
	ah_ping(h, 777, 2000); /* the frame before it is handled once the pong is back */
	return rc;
}

int ah_task_ended(struct ah *h, const char *task_id)
{
	struct mc_agent_task *t = calloc(1, sizeof *t);
	if (t == NULL)
		return -1;
	t->event = MC_AGENT_ENDED;
	strlcpy(t->task_id, task_id, sizeof t->task_id);
	int rc = mc_ipc_send_agent_task(&h->wr, t);
	free(t);
	flush_all(h);
	ah_ping(h, 778, 2000);
	return rc;
}

int ah_stop(struct ah *h, int timeout_ms)
{
	if (mc_ipc_send_stop(&h->wr) < 0)
		return -1;
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (!h->exited && mc_now_ms() < until)
		ah_pump(h, 20);
	if (!h->exited)
		return -1;
	return WIFEXITED(h->wstatus) ? WEXITSTATUS(h->wstatus) : 128 + WTERMSIG(h->wstatus);
}

void ah_free(struct ah *h)
{
	if (h->pid > 0 && !h->exited) {
		kill(h->pid, SIGKILL);
		reap(h, 0);
	}
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	mc_ipc_reader_free(&h->rd);
	mc_ipc_writer_free(&h->wr);
}

/* ---- HTTP ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	char *p = realloc(b->p, b->n + s * n + 1);
	if (p == NULL)
		return 0;
	memcpy(p + b->n, d, s * n);
	b->n += s * n;
	p[b->n] = '\0';
	b->p = p;
	return s * n;
}

static void header(CURL *e, const char *name, char *out, size_t size)
{
	struct curl_header *hd;
	out[0] = '\0';
	if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &hd) == CURLHE_OK)
		strlcpy(out, hd->value, size);
}

void ah_http(const struct ah *h, const char *method, const char *path, const char *bearer,
	     const char *body, struct ah_resp *out)
{
	memset(out, 0, sizeof *out);
	out->status = -1;
	char url[128], auth[1024];
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", h->port, path);
	CURL *e = curl_easy_init();
	struct buf b = { 0 };
	struct curl_slist *hl = curl_slist_append(NULL, "User-Agent: Go-http-client/1.1");
	hl = curl_slist_append(hl, "Accept-Encoding: gzip");
	hl = curl_slist_append(hl, "Expect:");
	if (body != NULL)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	if (bearer != NULL) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
		hl = curl_slist_append(hl, auth);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (curl_easy_perform(e) == CURLE_OK) {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
		header(e, "Content-Type", out->content_type, sizeof out->content_type);
		header(e, "X-Content-Type-Options", out->nosniff, sizeof out->nosniff);
		header(e, "X-Multica-Retryable", out->retryable, sizeof out->retryable);
		header(e, "Retry-After", out->retry_after, sizeof out->retry_after);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	out->body = b.p != NULL ? b.p : strdup("");
	curl_slist_free_all(hl);
	curl_easy_cleanup(e);
}

void ah_resp_free(struct ah_resp *r)
{
	free(r->body);
	r->body = NULL;
}

char *ah_checkout_body(const struct ah_checkout *c)
{
	/* cJSON keeps insertion order: inserted alphabetically. */
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "agent_name", c->agent_name ? c->agent_name : "");
	cJSON_AddStringToObject(o, "checkout_mode", c->checkout_mode ? c->checkout_mode : "");
	cJSON_AddStringToObject(o, "ref", c->ref ? c->ref : "");
	cJSON_AddBoolToObject(o, "retry_busy", c->retry_busy);
	cJSON_AddStringToObject(o, "task_id", c->task_id ? c->task_id : "");
	cJSON_AddStringToObject(o, "url", c->url ? c->url : "");
	cJSON_AddStringToObject(o, "workdir", c->workdir ? c->workdir : "");
	cJSON_AddStringToObject(o, "workspace_id", c->workspace_id ? c->workspace_id : "");
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}
