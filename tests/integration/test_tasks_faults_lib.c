/* The fault-injection suites' shared part (test_tasks_faults.h). */
#include "tests/integration/test_tasks_faults.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>
#include <criterion/criterion.h>

void tf_config(struct dp_config *c, const struct tf_opts *o)
{
	static char extra[1024], providers[600];
	int n = o->n_ws > 0 ? o->n_ws : 1;
	snprintf(extra, sizeof extra, "task_poll_interval = 300ms\ntask_stop_grace = 1s\n%s",
		 o->daemon_extra ? o->daemon_extra : "");
	snprintf(providers, sizeof providers, "claude = %s\n", FAKE_CLAUDE_BIN);
	*c = (struct dp_config){ .workspaces = dfx_ws_list(1, n), .daemon_extra = extra,
				 .providers = providers, .stop_timeout = "8s",
				 .http_timeout = "2s", .tail = o->tail };
}

void tf_start(const struct tf_opts *o)
{
	int n = o->n_ws > 0 ? o->n_ws : 1;
	dfx_start_plane(n, NULL, NULL, o->fp_args);
	struct dp_config local, *c = o->keep ? o->keep : &local;
	tf_config(c, o);
	dfx_start_daemon(c, NULL);
	for (int i = 1; i <= n; i++)
		dfx_wait_ws_ready(i, 1, TF_READY_MS);
}

void tf_new_id(char id[TF_ID_LEN])
{
	static unsigned n;
	snprintf(id, TF_ID_LEN, "f%07u-3333-4333-8333-%012u", ++n, (unsigned)getpid());
}

void tf_queue_id(int ws, const char *id, const char *env)
{
	char rid[DP_ID_LEN + 1], body[2048];
	dfx_runtime_of(ws, rid);
	snprintf(body, sizeof body,
		 "{\"id\":\"%s\",\"runtime_id\":\"%s\",\"issue_id\":\"" FPT_ISSUE_ID "\","
		 "\"agent\":{\"id\":\"" FPT_AGENT_ID "\",\"name\":\"Agent Smith\","
		 "\"instructions\":\"Be brief.\",\"custom_env\":{%s}}}", id, rid, env ? env : "");
	cr_assert_eq(dfx_admin("POST", "/_admin/tasks", body), 200, "queueing %s", id);
}

void tf_queue(int ws, const char *env, char id[TF_ID_LEN])
{
	tf_new_id(id);
	tf_queue_id(ws, id, env);
}

/* ---- faults ---- */

void tf_fault_path(const char *method, const char *prefix, const char *spec)
{
	char f[1024];
	snprintf(f, sizeof f, "{\"method\":\"%s\",\"path_prefix\":\"%s\",%s}", method, prefix, spec);
	long st = fp_fault(&FP, f);
	cr_assert_eq(st, 200, "fault %s refused: %ld", f, st);
}

void tf_fault_on(const char *id, const char *op, const char *spec)
{
	char prefix[160];
	snprintf(prefix, sizeof prefix, "/api/daemon/tasks/%s/%s", id, op);
	tf_fault_path(strcmp(op, "status") == 0 ? "GET" : "POST", prefix, spec);
}

void tf_faults_clear(void)
{
	cr_assert_eq(dfx_admin("DELETE", "/_admin/faults", NULL), 200);
}

int tf_faults_left(void)
{
	char *body = NULL;
	long st = fp_http(&FP, "GET", "/_admin/faults", NULL, NULL, &body);
	cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
	free(body);
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
	cJSON_Delete(j);
	return n;
}

/* ---- the call log ---- */

static bool ok2xx(double st)
{
	return st >= 200 && st < 300;
}

/* One call of the log replayed on the row's state s. */
static void replay(struct tf_tally *t, const char *op, double st, char *s, size_t n)
{
	bool live = strcmp(s, "dispatched") == 0 || strcmp(s, "running") == 0;
	if (strcmp(op, "claim") == 0) {
		t->claims++;
		strlcpy(s, "dispatched", n);
	} else if (strcmp(op, "start") == 0 && ok2xx(st) && strcmp(s, "dispatched") == 0) {
		t->starts++;
		strlcpy(s, "running", n);
	} else if (strcmp(op, "complete") == 0) {
		t->completes++;
		if (ok2xx(st) && strcmp(s, "running") == 0) {
			t->effective++;
			strlcpy(s, "completed", n);
		}
	} else if (strcmp(op, "fail") == 0) {
		t->fails++;
		if (ok2xx(st) && live) {
			t->effective++;
			strlcpy(s, "failed", n);
		}
	} else if (strcmp(op, "recover-orphans") == 0) {
		t->recovers++;   /* logged only when it failed the row */
		t->effective++;
		strlcpy(s, "failed", n);
	} else if (strcmp(op, "cancel-ack") == 0) {
		t->acks++;
	} else if (strcmp(op, "messages") == 0) {
		t->messages++;
	}
}

void tf_tally(const char *id, struct tf_tally *t)
{
	memset(t, 0, sizeof *t);
	cJSON *j = fpt_detail(&FP, id), *c;
	const cJSON *row = cJSON_GetObjectItem(j, "task");
	row = row ? row : j;
	const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(row, "status"));
	const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(row, "failure_reason"));
	strlcpy(t->status, st ? st : "", sizeof t->status);
	strlcpy(t->reason, why ? why : "", sizeof t->reason);
	char s[32] = "queued";
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "calls")) {
		const char *op = cJSON_GetStringValue(cJSON_GetObjectItem(c, "op"));
		if (op == NULL)
			continue;
		replay(t, op, cJSON_GetNumberValue(cJSON_GetObjectItem(c, "status")), s, sizeof s);
		if (strcmp(op, "status") == 0)
			continue;
		if (t->calls[0])
			strlcat(t->calls, ",", sizeof t->calls);
		strlcat(t->calls, op, sizeof t->calls);
	}
	cJSON_Delete(j);
}

/* Journal entries of the task whose path ends in "/op"; only the faulted
 * ones when faulted_only. */
static int journal_count(const char *id, const char *op, bool faulted_only)
{
	cJSON *j = fpt_detail(&FP, id), *e;
	char tail[64];
	snprintf(tail, sizeof tail, "/%s", op);
	int n = 0;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "journal")) {
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(e, "path"));
		size_t lp = p ? strlen(p) : 0, lt = strlen(tail);
		if (lp < lt || strcmp(p + lp - lt, tail) != 0)
			continue;
		if (!faulted_only || cJSON_IsTrue(cJSON_GetObjectItem(e, "fault")))
			n++;
	}
	cJSON_Delete(j);
	return n;
}

int tf_requests(const char *id, const char *op)
{
	return journal_count(id, op, false);
}

int tf_faulted(const char *id, const char *op)
{
	return journal_count(id, op, true);
}

/* ---- assertions ---- */

static bool terminal(const char *s)
{
	return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
	       strcmp(s, "cancelled") == 0;
}

bool tf_wait_terminal(const char *id, int timeout_ms)
{
	return DP_WAIT(({
		char *s = fpt_field(&FP, id, "status");
		bool t = terminal(s);
		free(s);
		t;
	}), timeout_ms);
}

bool tf_no_procs(const char *id, int ms)
{
	return DP_WAIT(fpt_count_task_procs(id) == 0, ms);
}

void tf_assert_once(const char *id, const char *want, const char *reason, int starts)
{
	struct tf_tally t;
	tf_tally(id, &t);
	cr_log_info("task %s: %s %s, calls %s", id, t.status, t.reason, t.calls);
	cr_assert_str_eq(t.status, want, "task %s ended %s (%s), not %s; calls %s", id, t.status,
			 t.reason, want, t.calls);
	if (reason != NULL)
		cr_assert_str_eq(t.reason, reason, "failure_reason %s, not %s; calls %s", t.reason,
				 reason, t.calls);
	cr_assert_eq(t.effective, 1, "%d terminal calls took effect: %s", t.effective, t.calls);
	cr_assert_eq(t.starts, starts, "started %d times, not %d: %s", t.starts, starts, t.calls);
	cr_assert(tf_no_procs(id, 2000), "%d processes of task %s are left",
		  fpt_count_task_procs(id), id);
}

void tf_assert_cancelled(const char *id)
{
	struct tf_tally t;
	tf_tally(id, &t);
	cr_assert_str_eq(t.status, "cancelled", "calls %s", t.calls);
	cr_assert_leq(t.starts, 1, "started %d times: %s", t.starts, t.calls);
	cr_assert_leq(t.acks, 1, "%d cancel-acks: %s", t.acks, t.calls);
	cr_assert(tf_no_procs(id, 2000), "%d processes of task %s are left",
		  fpt_count_task_procs(id), id);
}

/* Whether /proc/PID/environ holds want. */
static bool environ_has(const char *pid, const char *want)
{
	char path[300];
	static char buf[1 << 16];
	snprintf(path, sizeof path, "/proc/%s/environ", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (strcmp(buf + i, want) == 0)
			return true;
	return false;
}

int tf_kill_task_procs(const char *id)
{
	char want[80];
	snprintf(want, sizeof want, "MULTICA_TASK_ID=%s", id);
	DIR *d = opendir("/proc");
	struct dirent *e;
	int k = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 1 || pid == getpid() || !environ_has(e->d_name, want))
			continue;
		if (kill((pid_t)pid, SIGKILL) == 0)
			k++;
	}
	if (d != NULL)
		closedir(d);
	return k;
}

void tf_wait_running(const char *id, int timeout_ms)
{
	DFX_WAIT_UP(fpt_count_task_procs(id) > 0, timeout_ms, "the agent of %s never ran", id);
	cr_assert(fpt_wait_status(&FP, id, "running", 5000, NULL), "%s is not running", id);
}

void tf_cancel(const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s/cancel", id);
	cr_assert_eq(dfx_admin("POST", path, "{}"), 200, "cancel %s", id);
}

void tf_delete(const char *id)
{
	char path[128];
	snprintf(path, sizeof path, "/_admin/tasks/%s", id);
	cr_assert_eq(dfx_admin("DELETE", path, NULL), 200, "delete %s", id);
}

/* ---- the daemon ---- */

int tf_slots_used(void)
{
	char *reply = NULL;
	if (dp_control(&D, "{\"cmd\":\"status\"}", &reply, 5000) < 0)
		return -1;
	cJSON *s = cJSON_Parse(reply);
	free(reply);
	const cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "slots"), "used");
	int n = cJSON_IsNumber(u) ? u->valueint : -1;
	cJSON_Delete(s);
	return n;
}

pid_t tf_link_pid(void)
{
	static pid_t kids[256];
	size_t n = dp_children(&D, kids, 256);
	for (size_t i = 0; i < n && i < 256; i++) {
		char t[128];
		if (dp_pid_alive(kids[i]) && dp_proc_title(kids[i], t, sizeof t) == 0 &&
		    strcmp(t, "multicad: link") == 0)
			return kids[i];
	}
	return 0;
}

bool tf_in_outbox(int ws, const char *id)
{
	char path[700];
	snprintf(path, sizeof path, "%s/outbox/%s/%s.json", D.state_dir, WS[ws], id);
	return access(path, F_OK) == 0;
}
