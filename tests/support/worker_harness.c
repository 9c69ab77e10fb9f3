#include "tests/support/worker_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/api.h"
#include "common/child.h"
#include "common/clock.h"
#include "worker/worker.h"

static long dflt(long v, long d) { return v > 0 ? v : d; }

static void fill_config(struct mc_worker_config *c, const struct wh_opts *o)
{
	memset(c, 0, sizeof *c);
	strlcpy(c->workspace_id, o->workspace_id, sizeof c->workspace_id);
	strlcpy(c->server_url, o->server_url, sizeof c->server_url);
	strlcpy(c->daemon_id, o->daemon_id ? o->daemon_id : "test-daemon", sizeof c->daemon_id);
	strlcpy(c->device_name, o->device_name ? o->device_name : "testhost", sizeof c->device_name);
	strlcpy(c->cli_version, "multicad/test", sizeof c->cli_version);
	strlcpy(c->log_level, "debug", sizeof c->log_level);
	strlcpy(c->test_fault, o->test_fault ? o->test_fault : "", sizeof c->test_fault);
	strlcpy(c->ca_file, o->ca_file ? o->ca_file : "", sizeof c->ca_file);
	c->heartbeat_interval_ms = dflt(o->heartbeat_ms, 100);
	c->profile_sync_interval_ms = dflt(o->profile_sync_ms, 150);
	c->http_timeout_ms = dflt(o->http_timeout_ms, 2000);
	c->probe_timeout_ms = dflt(o->probe_timeout_ms, 1000);
	strlcpy(c->workspaces_root, o->workspaces_root ? o->workspaces_root : "",
		sizeof c->workspaces_root);
	strlcpy(c->state_dir, o->state_dir ? o->state_dir : "", sizeof c->state_dir);
	c->task_idle_timeout_ms = o->task_idle_timeout_ms;
	c->task_stop_grace_ms = dflt(o->task_stop_grace_ms, 2000);
	c->stop_timeout_ms = dflt(o->stop_timeout_ms, 10000);
	c->task_retention_ms = o->task_retention_ms;
	c->task_poll_interval_ms = 30000;
	c->max_concurrent_tasks = 20;
	c->overrides = (struct mc_profile_override *)o->overrides;
	c->n_overrides = o->n_overrides;
}

static void flush_all(struct wh *h)
{
	for (int i = 0; i < 1000 && mc_ipc_writer_pending(&h->wr) > 0; i++) {
		if (mc_ipc_writer_flush(&h->wr, h->fd) < 0)
			return;
		if (mc_ipc_writer_pending(&h->wr) > 0)
			usleep(1000);
	}
}

static void reap(struct wh *h, int flags)
{
	if (h->exited || h->pid <= 0)
		return;
	int st;
	pid_t r = waitpid(h->pid, &st, flags);
	if (r == h->pid) {
		h->exited = true;
		h->status = st;
	}
}

static struct wh_task *task_slot(struct wh *h, const char *id)
{
	for (size_t i = 0; i < h->n_tasks; i++)
		if (strcmp(h->tasks[i].id, id) == 0)
			return &h->tasks[i];
	if (h->n_tasks == WH_MAX_TASKS)
		return NULL;
	struct wh_task *t = &h->tasks[h->n_tasks++];
	memset(t, 0, sizeof *t);
	strlcpy(t->id, id, sizeof t->id);
	return t;
}

static void record_task_state(struct wh *h, const struct mc_ipc_frame *f)
{
	struct mc_task_state_msg m;
	char err[256];
	if (mc_ipc_parse_task_state(f, &m, err, sizeof err) < 0) {
		h->violation = true;
		return;
	}
	struct wh_task *t = task_slot(h, m.task_id);
	if (t == NULL)
		return;
	t->state = m.state;
	t->pid = m.pid;
	t->n_states++;
	strlcpy(t->outcome, m.outcome, sizeof t->outcome);
	strlcpy(t->last_output, m.last_output, sizeof t->last_output);
}

static void handle(struct wh *h, const struct mc_ipc_frame *f)
{
	char err[256];
	int proto, pid;
	switch (f->type) {
	case MC_IPC_HELLO:
		if (mc_ipc_parse_hello(f, &proto, &pid, err, sizeof err) < 0)
			h->violation = true;
		break;
	case MC_IPC_REPORT:
		mc_report_clear(&h->report);
		if (mc_ipc_parse_report(f, &h->report, err, sizeof err) < 0)
			h->violation = true;
		h->n_reports++;
		break;
	case MC_IPC_PONG:
		if (mc_ipc_parse_seq(f, &h->last_pong, err, sizeof err) < 0)
			h->violation = true;
		h->got_pong = true;
		break;
	case MC_IPC_STOPPED:
		if (mc_ipc_parse_stopped(f, &h->stopped_deregistered, err, sizeof err) < 0)
			h->violation = true;
		h->stopped = true;
		break;
	case MC_IPC_FATAL:
		if (mc_ipc_parse_fatal(f, h->fatal_reason, sizeof h->fatal_reason, err,
				       sizeof err) < 0)
			h->violation = true;
		h->fatal = true;
		break;
	case MC_IPC_TASK_STATE:
		record_task_state(h, f);
		break;
	case MC_IPC_TASKS_READY:
		h->tasks_ready = true;
		break;
	default:
		h->violation = true;
	}
}

static void read_frames(struct wh *h)
{
	while (mc_ipc_reader_fill(&h->rd, h->fd) > 0) {
		struct mc_ipc_frame f;
		int got;
		while ((got = mc_ipc_reader_next(&h->rd, &f)) == 1)
			handle(h, &f);
		if (got < 0)
			h->violation = true;
	}
}

void wh_pump(struct wh *h, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	do {
		flush_all(h);
		mc_ms_t left = until - mc_now_ms();
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		if (h->fd >= 0 && !h->rd.eof &&
		    poll(&p, 1, left > 20 ? 20 : (left > 0 ? (int)left : 0)) > 0)
			read_frames(h);
		else if (h->fd < 0 || h->rd.eof)
			usleep(5000);
		reap(h, WNOHANG);
		if (h->exited && (h->fd < 0 || h->rd.eof))
			return;
	} while (mc_now_ms() < until);
}

int wh_start(struct wh *h, const struct wh_opts *o)
{
	memset(h, 0, sizeof *h);
	h->fd = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	fflush(NULL);
	pid_t parent = getpid();
	h->pid = fork();
	if (h->pid < 0)
		return -1;
	if (h->pid == 0) {
		close(sv[0]);
		setenv("PATH", o->path_env ? o->path_env : "/nonexistent", 1);
		mc_child_exit(mc_worker_main(sv[1], parent, -1));
	}
	close(sv[1]);
	h->fd = sv[0];
	fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK);
	if (mc_ipc_reader_init(&h->rd, mc_ipc_type_ok_for_supervisor) < 0)
		return -1;
	mc_ipc_writer_init(&h->wr);

	/* Wait for HELLO, then hand over configuration, token and probes. */
	mc_ms_t until = mc_now_ms() + 5000;
	struct mc_ipc_frame f;
	int got = 0;
	while (mc_now_ms() < until) {
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0 && mc_ipc_reader_fill(&h->rd, h->fd) >= 0 &&
		    (got = mc_ipc_reader_next(&h->rd, &f)) != 0)
			break;
	}
	if (got != 1 || f.type != MC_IPC_HELLO)
		return -1;
	struct mc_worker_config c;
	fill_config(&c, o);
	struct mc_probes p = { .n = o->n_builtins };
	for (size_t i = 0; i < o->n_builtins; i++)
		p.v[i] = o->builtins[i];
	if (mc_ipc_send_config(&h->wr, &c) < 0 ||
	    mc_ipc_send_token(&h->wr, o->token, strlen(o->token)) < 0 ||
	    mc_ipc_send_probes(&h->wr, &p) < 0)
		return -1;
	flush_all(h);
	return 0;
}

bool wh_wait_report_n(struct wh *h, size_t n, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (mc_now_ms() < until) {
		if (h->n_reports > 0 && h->report.n == n)
			return true;
		wh_pump(h, 10);
		if (h->exited)
			break;
	}
	return h->n_reports > 0 && h->report.n == n;
}

bool wh_wait_report_without(struct wh *h, const char *id, size_t n, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	for (;;) {
		if (h->n_reports > 0 && h->report.n == n && !wh_report_has(h, id))
			return true;
		if (mc_now_ms() >= until || h->exited)
			return false;
		wh_pump(h, 10);
	}
}

bool wh_wait_reports(struct wh *h, unsigned k, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (h->n_reports < k && mc_now_ms() < until && !h->exited)
		wh_pump(h, 10);
	return h->n_reports >= k;
}

bool wh_report_has(const struct wh *h, const char *id)
{
	for (size_t i = 0; i < h->report.n; i++)
		if (strcmp(h->report.ids[i], id) == 0)
			return true;
	return false;
}

int wh_send_probes(struct wh *h, const struct mc_builtin *b, size_t n)
{
	struct mc_probes p = { .n = n };
	for (size_t i = 0; i < n; i++)
		p.v[i] = b[i];
	int rc = mc_ipc_send_probes(&h->wr, &p);
	flush_all(h);
	return rc;
}

long wh_ping(struct wh *h, uint64_t seq, int timeout_ms)
{
	mc_ms_t start = mc_now_ms();
	h->got_pong = false;
	if (mc_ipc_send_ping(&h->wr, seq) < 0)
		return -1;
	flush_all(h);
	while (mc_now_ms() - start < timeout_ms) {
		wh_pump(h, 5);
		if (h->got_pong && h->last_pong == seq)
			return (long)(mc_now_ms() - start);
	}
	return -1;
}

static int exit_code(const struct wh *h)
{
	if (!h->exited)
		return -1;
	if (WIFEXITED(h->status))
		return WEXITSTATUS(h->status);
	return 128 + WTERMSIG(h->status);
}

int wh_wait_exit(struct wh *h, int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (!h->exited && mc_now_ms() < until) {
		if (h->fd >= 0 && !h->rd.eof)
			wh_pump(h, 10);
		else
			usleep(5000);
		reap(h, WNOHANG);
	}
	return exit_code(h);
}

int wh_stop(struct wh *h, int timeout_ms)
{
	if (mc_ipc_send_stop(&h->wr) < 0)
		return -1;
	flush_all(h);
	return wh_wait_exit(h, timeout_ms);
}

void wh_close(struct wh *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

void wh_free(struct wh *h)
{
	if (h->pid > 0 && !h->exited) {
		kill(h->pid, SIGKILL);
		reap(h, 0);
	}
	wh_close(h);
	mc_ipc_reader_free(&h->rd);
	mc_ipc_writer_free(&h->wr);
	mc_report_clear(&h->report);
}

int wh_add_fake_cli(const char *dir, const char *name, const char *version)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fprintf(f, "#!/bin/sh\necho '%s'\n", version);
	fclose(f);
	return chmod(path, 0755);
}

char *wh_fake_cli_dir(const char *const *names, const char *version)
{
	char tmpl[] = "/tmp/mc-cli-XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		return NULL;
	for (size_t i = 0; names != NULL && names[i] != NULL; i++)
		if (wh_add_fake_cli(tmpl, names[i], version) < 0)
			return NULL;
	return strdup(tmpl);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void wh_rmtree(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int wh_send_task(struct wh *h, int slot, const char *token, const cJSON *task)
{
	struct mc_secret *sec = token ? mc_secret_new(token, strlen(token)) : NULL;
	int rc = mc_ipc_send_task(&h->wr, slot, sec, task);
	mc_secret_free(sec);
	flush_all(h);
	return rc;
}

const struct wh_task *wh_task(const struct wh *h, const char *id)
{
	for (size_t i = 0; i < h->n_tasks; i++)
		if (strcmp(h->tasks[i].id, id) == 0)
			return &h->tasks[i];
	return NULL;
}

bool wh_wait_task_state(struct wh *h, const char *id, enum mc_task_state state,
			int timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	for (;;) {
		const struct wh_task *t = wh_task(h, id);
		if (t != NULL && (t->state == state || t->state == MC_TS_ENDED))
			return t->state == state;
		if (mc_now_ms() >= until || h->exited)
			return false;
		wh_pump(h, 10);
	}
}
