/* multicactl against a real multicad (suite multicactl: fakeplane + daemon
 * in a temp dir, fake `claude` on PATH) and against a scripted fake daemon
 * socket played by the test itself (suite multicactl_client: replies the
 * real daemon never sends: garbage, missing fields, silence, a TTY).
 *
 * multicactl always runs as a child (fork + execve) with its stdout and
 * stderr captured; the test process does all asserting. multicad runs with
 * PR_SET_PDEATHSIG so that a test that dies halfway does not leave it
 * behind, and its log goes to a file that is checked for sanitizer reports
 * at the end (ctest's FAIL_REGULAR_EXPRESSION only sees our own output). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "tests/support/fakeplane_proc.h"

#ifndef MULTICAD_BIN
#error "MULTICAD_BIN must be defined (tests/CMakeLists.txt)"
#endif
#ifndef MULTICACTL_BIN
#error "MULTICACTL_BIN must be defined (tests/CMakeLists.txt)"
#endif

#define WS_A  "11111111-1111-4111-8111-111111111111"
#define WS_B  "22222222-2222-4222-8222-222222222222"
#define WS_X  "33333333-3333-4333-8333-333333333333" /* a member, not served */
#define TOKEN "mul_ctl_test"

#define RUN_TIMEOUT_MS   20000
#define READY_TIMEOUT_MS 20000

extern char **environ;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, mode) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t n;
	while (m != NULL && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	if (m != NULL)
		fclose(m);
	return buf;
}

static bool has_sanitizer_report(const char *s)
{
	return s != NULL && (strstr(s, "ERROR: AddressSanitizer") != NULL ||
			     strstr(s, "ERROR: LeakSanitizer") != NULL ||
			     strstr(s, "runtime error:") != NULL);
}

/* ---- the environment a child gets ---- */

/* The test's environment (ASAN_OPTIONS and friends pass through), minus
 * what changes multicactl's output, plus extra (NULL-terminated). The
 * pointers are borrowed; the array is malloc'd. */
static char **child_env(const char *const *extra)
{
	static const char *const drop[] = { "NO_COLOR=", "COLUMNS=", "TERM=", "LANG=",
					    "LC_ALL=", "LC_CTYPE=", "PATH=", NULL };
	size_t n = 0, m = 0;
	while (environ[n] != NULL)
		n++;
	while (extra != NULL && extra[m] != NULL)
		m++;
	char **env = calloc(n + m + 2, sizeof *env);
	cr_assert(env != NULL);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool skip = false;
		for (const char *const *d = drop; *d; d++)
			if (strncmp(environ[i], *d, strlen(*d)) == 0)
				skip = true;
		if (!skip)
			env[k++] = environ[i];
	}
	bool has_path = false;
	for (size_t i = 0; i < m; i++) {
		env[k++] = (char *)extra[i];
		if (strncmp(extra[i], "PATH=", 5) == 0)
			has_path = true;
	}
	if (!has_path)
		env[k++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
	env[k] = NULL;
	return env;
}

/* ---- running multicactl ---- */

struct ctl_run {
	pid_t pid;
	int out_fd, err_fd;
	int status;      /* as from waitpid */
	char *out, *err; /* captured, NUL-terminated */
};

static void ctl_start(struct ctl_run *r, const char *const *argv, const char *const *env_extra)
{
	int out[2], err[2];
	memset(r, 0, sizeof *r);
	cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
	char **env = child_env(env_extra);
	const char *args[32];
	size_t k = 0;
	args[k++] = MULTICACTL_BIN;
	for (; argv[k - 1] != NULL && k < 31; k++)
		args[k] = argv[k - 1];
	args[k] = NULL;
	r->pid = fork();
	cr_assert(r->pid >= 0);
	if (r->pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		execve(MULTICACTL_BIN, (char *const *)args, env);
		_exit(127);
	}
	free(env);
	close(out[1]);
	close(err[1]);
	r->out_fd = out[0];
	r->err_fd = err[0];
}

/* Reads both pipes to EOF and reaps; returns the exit code (-1: killed). */
static int ctl_finish(struct ctl_run *r)
{
	FILE *mo = NULL, *me = NULL;
	size_t lo = 0, le = 0;
	mo = open_memstream(&r->out, &lo);
	me = open_memstream(&r->err, &le);
	cr_assert(mo != NULL && me != NULL);
	int64_t deadline = now_ms() + RUN_TIMEOUT_MS;
	bool open_out = true, open_err = true;
	while ((open_out || open_err) && now_ms() < deadline) {
		struct pollfd p[2] = { { open_out ? r->out_fd : -1, POLLIN, 0 },
				       { open_err ? r->err_fd : -1, POLLIN, 0 } };
		if (poll(p, 2, 200) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[4096];
			ssize_t n = read(p[i].fd, buf, sizeof buf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				*(i == 0 ? &open_out : &open_err) = false;
				continue;
			}
			fwrite(buf, 1, (size_t)n, i == 0 ? mo : me);
		}
	}
	if (open_out || open_err)
		kill(r->pid, SIGKILL);
	close(r->out_fd);
	close(r->err_fd);
	fclose(mo);
	fclose(me);
	while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
		;
	if (has_sanitizer_report(r->err))
		fprintf(stderr, "multicactl stderr:\n%s\n", r->err); /* ctest's regex sees it */
	cr_assert(!has_sanitizer_report(r->err), "sanitizer report from multicactl");
	return WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
}

static void ctl_free(struct ctl_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Runs multicactl with argv (NULL-terminated) to completion. */
static int ctl(struct ctl_run *r, const char *const *argv, const char *const *env_extra)
{
	ctl_start(r, argv, env_extra);
	return ctl_finish(r);
}

/* ---- the control socket, raw ---- */

/* Our paths are short (mkdtemp under /tmp); a longer one is a test bug. */
static void set_sun_path(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);
	cr_assert(n < sizeof sa->sun_path, "socket path too long: %s", path);
	memcpy(sa->sun_path, path, n + 1);
}

/* Sends request (bytes as given) and returns the daemon's reply line
 * (malloc'd, without '\n'), or NULL. */
static char *raw_request(const char *sock, const char *request, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break; /* the daemon may answer (and close) before reading it all */
		off += (size_t)w;
	}
	char *buf = NULL;
	size_t blen = 0;
	FILE *m = open_memstream(&buf, &blen);
	char chunk[4096];
	for (;;) {
		ssize_t n = recv(fd, chunk, sizeof chunk, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		fwrite(chunk, 1, (size_t)n, m);
	}
	fclose(m);
	close(fd);
	char *nl = buf ? strchr(buf, '\n') : NULL;
	if (nl == NULL) {
		free(buf);
		return NULL;
	}
	*nl = '\0';
	return buf;
}

static cJSON *status_json(const char *sock)
{
	static const char req[] = "{\"cmd\":\"status\"}\n";
	char *line = raw_request(sock, req, sizeof req - 1);
	cJSON *j = line ? cJSON_Parse(line) : NULL;
	free(line);
	return j;
}

static const cJSON *find_ws(const cJSON *status, const char *id)
{
	const cJSON *w;
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(status, "workspaces"))
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(w, "id")), id) == 0)
			return w;
	return NULL;
}

static int ws_pid(const cJSON *status, const char *id)
{
	const cJSON *w = find_ws(status, id);
	const cJSON *p = w ? cJSON_GetObjectItem(w, "pid") : NULL;
	return cJSON_IsNumber(p) ? p->valueint : 0;
}

static bool ws_running_with_runtimes(const cJSON *status, const char *id)
{
	const cJSON *w = find_ws(status, id);
	const char *st = w ? cJSON_GetStringValue(cJSON_GetObjectItem(w, "state")) : NULL;
	return st != NULL && strcmp(st, "running") == 0 &&
	       cJSON_GetArraySize(cJSON_GetObjectItem(w, "runtime_ids")) > 0;
}

/* ---- suite multicactl: the real daemon ---- */

static struct {
	char dir[128];
	char sock[192];
	char conf[192];
	char log[192];
	struct fp_proc fp;
	pid_t daemon;
} fx;

static const char *seed(void)
{
	return "{\"tokens\":{\"" TOKEN "\":\"u1\"},\"workspaces\":["
	       "{\"id\":\"" WS_A "\",\"name\":\"a\",\"members\":[\"u1\"]},"
	       "{\"id\":\"" WS_B "\",\"name\":\"b\",\"members\":[\"u1\"]},"
	       "{\"id\":\"" WS_X "\",\"name\":\"x\",\"members\":[\"u1\"]}],"
	       "\"profiles\":[],\"tasks\":[]}";
}

static void write_config(const char *extra)
{
	char text[2048];
	snprintf(text, sizeof text,
		 "[daemon]\n"
		 "server_url = %s\n"
		 "token_file = %s/token\n"
		 "daemon_id = ctl-test-host\n"
		 "agent_api_listen = 127.0.0.1:0\n" /* suites run side by side */
		 "workspaces = " WS_A " " WS_B "\n"
		 "state_dir = %s/state\n"
		 "control_socket = %s\n"
		 "heartbeat_interval = 500ms\n"
		 "profile_sync_interval = 1s\n"
		 "stop_timeout = 3s\n"
		 "restart_backoff_min = 100ms\n"
		 "[providers]\n"
		 "claude = claude\n"
		 "%s",
		 fx.fp.url, fx.dir, fx.dir, fx.sock, extra ? extra : "");
	cr_assert(write_file(fx.conf, text, 0644) == 0);
}

static void wait_ready(void)
{
	int64_t deadline = now_ms() + READY_TIMEOUT_MS;
	for (;;) {
		cJSON *s = status_json(fx.sock);
		bool ok = s && ws_running_with_runtimes(s, WS_A) && ws_running_with_runtimes(s, WS_B);
		cJSON_Delete(s);
		if (ok)
			return;
		cr_assert(now_ms() < deadline, "multicad did not get both workers running");
		sleep_ms(50);
	}
}

static void daemon_setup(void)
{
	memset(&fx, 0, sizeof fx);
	fx.daemon = -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx.dir, sizeof fx.dir, "%s/mcctl-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert(mkdtemp(fx.dir) != NULL);
	snprintf(fx.sock, sizeof fx.sock, "%s/control.sock", fx.dir);
	snprintf(fx.conf, sizeof fx.conf, "%s/multicad.conf", fx.dir);
	snprintf(fx.log, sizeof fx.log, "%s/multicad.log", fx.dir);

	char path[256];
	snprintf(path, sizeof path, "%s/token", fx.dir);
	cr_assert(write_file(path, TOKEN "\n", 0600) == 0);
	snprintf(path, sizeof path, "%s/bin", fx.dir);
	cr_assert(mkdir(path, 0755) == 0);
	snprintf(path, sizeof path, "%s/bin/claude", fx.dir);
	cr_assert(write_file(path, "#!/bin/sh\necho '2.1.0 (Claude Code)'\n", 0755) == 0);

	cr_assert(fp_start(&fx.fp, seed(), NULL) == 0);
	write_config(NULL);

	char env_path[300];
	snprintf(env_path, sizeof env_path, "PATH=%s/bin:/usr/bin:/bin", fx.dir);
	const char *extra[] = { env_path, NULL };
	char **env = child_env(extra);
	int logfd = open(fx.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(logfd >= 0);
	pid_t parent = getpid();
	fx.daemon = fork();
	cr_assert(fx.daemon >= 0);
	if (fx.daemon == 0) {
		/* The daemon must not outlive a test that dies halfway. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execve(MULTICAD_BIN, (char *const[]){ (char *)MULTICAD_BIN, (char *)"-c", fx.conf, NULL },
		       env);
		_exit(127);
	}
	free(env);
	close(logfd);
	wait_ready();
}

static void daemon_teardown(void)
{
	if (fx.daemon > 0) {
		int st = 0;
		kill(fx.daemon, SIGTERM);
		int64_t deadline = now_ms() + 15000;
		pid_t r;
		while ((r = waitpid(fx.daemon, &st, WNOHANG)) == 0 && now_ms() < deadline)
			sleep_ms(20);
		if (r == 0) {
			kill(fx.daemon, SIGKILL);
			waitpid(fx.daemon, &st, 0);
		}
		fx.daemon = -1;
		cr_expect(r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "multicad did not stop cleanly on SIGTERM (status %#x)", st);
	}
	if (fx.fp.pid > 0)
		fp_stop(&fx.fp);
	char *log = read_file(fx.log);
	if (has_sanitizer_report(log))
		fprintf(stderr, "multicad log:\n%s\n", log);
	cr_expect(!has_sanitizer_report(log), "sanitizer report in multicad's log");
	free(log);
	if (fx.dir[0]) {
		const char *const argv[] = { "rm", "-rf", fx.dir, NULL };
		pid_t p = fork();
		if (p == 0) {
			execv("/bin/rm", (char *const *)argv);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, NULL, 0);
	}
}

TestSuite(multicactl, .init = daemon_setup, .fini = daemon_teardown, .timeout = 90);

Test(multicactl, status_table)
{
	struct ctl_run r;
	int rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "status", NULL }, NULL);
	cr_assert_eq(rc, 0, "status: exit %d, stderr: %s", rc, r.err);
	cr_assert_str_empty(r.err);
	char head[64];
	snprintf(head, sizeof head, "supervisor pid %d, up ", (int)fx.daemon);
	cr_assert(strstr(r.out, head) != NULL, "no \"%s\" in:\n%s", head, r.out);
	cr_assert(strstr(r.out, fx.conf) != NULL, "the header names the config:\n%s", r.out);
	cr_assert(strstr(r.out, "no reloads") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "WORKSPACE") != NULL && strstr(r.out, "LAST ERROR") != NULL,
		  "%s", r.out);
	/* One row per workspace: id, pid, running, 1 runtime, 0 restarts. */
	cJSON *s = status_json(fx.sock);
	cr_assert(s != NULL);
	const char *ids[] = { WS_A, WS_B };
	for (int i = 0; i < 2; i++) {
		char *line = strstr(r.out, ids[i]);
		cr_assert(line != NULL, "no row for %s:\n%s", ids[i], r.out);
		char *end = strchr(line, '\n');
		cr_assert(end != NULL);
		*end = '\0';
		char pid[16];
		snprintf(pid, sizeof pid, " %d ", ws_pid(s, ids[i]));
		cr_assert(strstr(line, pid) != NULL, "row \"%s\" lacks pid%s", line, pid);
		cr_assert(strstr(line, " running ") != NULL, "row: %s", line);
		cr_assert(strstr(line, " 1 ") != NULL && strstr(line, " 0 ") != NULL, "row: %s", line);
		cr_assert(strstr(line, "\033") == NULL, "colour in a pipe: %s", line);
		*end = '\n';
	}
	cJSON_Delete(s);
	cr_assert(strstr(r.out, "\n2 workspaces, 2 runtimes online, 0 failed\n") != NULL,
		  "summary line missing:\n%s", r.out);
	/* The table is aligned: every row's STATE starts at the header's column. */
	const char *hdr = strstr(r.out, "WORKSPACE");
	size_t col = (size_t)(strstr(hdr, "STATE") - hdr);
	for (int i = 0; i < 2; i++) {
		const char *line = strstr(r.out, ids[i]);
		cr_assert(strncmp(line + col, "running", 7) == 0, "misaligned row: %.*s",
			  (int)(strchr(line, '\n') - line), line);
	}
	ctl_free(&r);
}

Test(multicactl, status_json)
{
	struct ctl_run r;
	int rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "status", "--json", NULL }, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, r.err);
	cr_assert(strchr(r.out, '\n') != strrchr(r.out, '\n'), "not pretty-printed: %s", r.out);
	cJSON *j = cJSON_Parse(r.out);
	cr_assert(j != NULL, "not JSON: %s", r.out);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
	const cJSON *sup = cJSON_GetObjectItem(j, "supervisor");
	cr_assert_eq(cJSON_GetObjectItem(sup, "pid")->valueint, (int)fx.daemon);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(sup, "config")), fx.conf);
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "workspaces")), 2);
	cr_assert(ws_running_with_runtimes(j, WS_A) && ws_running_with_runtimes(j, WS_B));
	cJSON_Delete(j);
	ctl_free(&r);
}

Test(multicactl, reload_ok_then_rejected)
{
	struct ctl_run r;
	cJSON *before = status_json(fx.sock);
	int pid_a = ws_pid(before, WS_A), pid_b = ws_pid(before, WS_B);
	cJSON_Delete(before);

	int rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "reload", NULL }, NULL);
	cr_assert_eq(rc, 0, "reload: exit %d: %s", rc, r.err);
	cr_assert(strncmp(r.out, "configuration reloaded:", 23) == 0, "stdout: %s", r.out);
	cr_assert_str_empty(r.err);
	ctl_free(&r);

	/* A broken file: the daemon keeps the old configuration, says why
	 * (file:line: problem), and multicactl exits 1 with it on stderr. */
	write_config("[bogus]\n");
	rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "reload", NULL }, NULL);
	cr_assert_eq(rc, 1, "rejected reload: exit %d", rc);
	cr_assert_str_empty(r.out);
	char want[256];
	snprintf(want, sizeof want, "multicactl: reload failed: %s:15: ", fx.conf);
	cr_assert(strncmp(r.err, want, strlen(want)) == 0, "stderr: %s (want %s...)", r.err, want);
	cr_assert(strstr(r.err, "bogus") != NULL, "stderr: %s", r.err);
	ctl_free(&r);

	rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "status", NULL }, NULL);
	cr_assert_eq(rc, 0);
	cr_assert(strstr(r.out, "last reload REJECTED (2 reloads)") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "unknown section [bogus]") != NULL, "%s", r.out);
	ctl_free(&r);

	cJSON *after = status_json(fx.sock);
	cr_assert_eq(ws_pid(after, WS_A), pid_a, "a reload restarted an unchanged worker");
	cr_assert_eq(ws_pid(after, WS_B), pid_b, "a reload restarted an unchanged worker");
	cJSON_Delete(after);
}

Test(multicactl, restart_one_worker)
{
	cJSON *before = status_json(fx.sock);
	int pid_a = ws_pid(before, WS_A), pid_b = ws_pid(before, WS_B);
	cJSON_Delete(before);

	struct ctl_run r;
	int rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "restart", WS_A, NULL }, NULL);
	cr_assert_eq(rc, 0, "restart: exit %d: %s", rc, r.err);
	cr_assert_str_eq(r.out, WS_A ": restarting\n");
	ctl_free(&r);

	int64_t deadline = now_ms() + READY_TIMEOUT_MS;
	for (;;) {
		cJSON *s = status_json(fx.sock);
		int np = ws_pid(s, WS_A);
		bool done = np > 0 && np != pid_a && ws_running_with_runtimes(s, WS_A);
		int nb = ws_pid(s, WS_B);
		cJSON_Delete(s);
		cr_assert_eq(nb, pid_b, "restarting A touched B");
		if (done)
			break;
		cr_assert(now_ms() < deadline, "worker A was not restarted");
		sleep_ms(50);
	}

	rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "restart", WS_X, NULL }, NULL);
	cr_assert_eq(rc, 1, "restart of a workspace not served: exit %d", rc);
	cr_assert_str_eq(r.err, "multicactl: restart failed: no such workspace is served here\n");
	ctl_free(&r);

	rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "restart", NULL }, NULL);
	cr_assert_eq(rc, 2);
	ctl_free(&r);
	rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "restart", WS_A, WS_B, NULL }, NULL);
	cr_assert_eq(rc, 2);
	ctl_free(&r);
}

Test(multicactl, bad_requests_on_the_socket)
{
	static const struct {
		const char *req;
		const char *error;
	} cases[] = {
		{ "not json\n", "request is not a JSON object" },
		{ "[1,2]\n", "request is not a JSON object" },
		{ "{}\n", "request has no \"cmd\" string" },
		{ "{\"cmd\":42}\n", "request has no \"cmd\" string" },
		{ "{\"cmd\":\"shutdown\"}\n", "unknown cmd (status, reload, restart, tasks, drain)" },
		{ "{\"cmd\":\"restart\"}\n", "restart needs \"workspace\": a workspace id" },
		{ "{\"cmd\":\"restart\",\"workspace\":\"../../etc\"}\n", "no such workspace is served here" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *line = raw_request(fx.sock, cases[i].req, strlen(cases[i].req));
		cr_assert(line != NULL, "no reply to %s", cases[i].req);
		cJSON *j = cJSON_Parse(line);
		cr_assert(j != NULL, "reply not JSON: %s", line);
		cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")), "%s -> %s", cases[i].req, line);
		cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "error")), cases[i].error);
		cJSON_Delete(j);
		free(line);
	}
	/* Longer than the daemon's 4 KiB request limit, no newline. */
	size_t big = 10000;
	char *junk = malloc(big);
	cr_assert(junk != NULL);
	memset(junk, 'x', big);
	char *line = raw_request(fx.sock, junk, big);
	free(junk);
	cr_assert(line != NULL && strstr(line, "\"ok\":false") != NULL, "reply: %s", line);
	free(line);

	/* A client that connects and leaves without a word. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, fx.sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);

	/* The daemon is still there, same pid, everything running. */
	struct ctl_run r;
	int rc = ctl(&r, (const char *const[]){ "-s", fx.sock, "status", "--json", NULL }, NULL);
	cr_assert_eq(rc, 0, "status after bad requests: exit %d: %s", rc, r.err);
	cJSON *j = cJSON_Parse(r.out);
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "supervisor"), "pid")->valueint,
		     (int)fx.daemon);
	cr_assert(ws_running_with_runtimes(j, WS_A) && ws_running_with_runtimes(j, WS_B));
	cJSON_Delete(j);
	ctl_free(&r);
	cr_assert_eq(waitpid(fx.daemon, NULL, WNOHANG), 0, "multicad exited");
}

/* ---- suite multicactl_client: multicactl alone ---- */

Test(multicactl_client, usage_and_version)
{
	struct ctl_run r;
	const char *const *const usage_errors[] = {
		(const char *const[]){ NULL },
		(const char *const[]){ "frobnicate", NULL },
		(const char *const[]){ "status", "--bogus", NULL },
		(const char *const[]){ "reload", "now", NULL },
		(const char *const[]){ "-x", "status", NULL },
		(const char *const[]){ "-s", "", "status", NULL },
		(const char *const[]){ "-s", NULL },
	};
	for (size_t i = 0; i < sizeof usage_errors / sizeof usage_errors[0]; i++) {
		int rc = ctl(&r, usage_errors[i], NULL);
		cr_assert_eq(rc, 2, "case %zu: exit %d, stderr %s", i, rc, r.err);
		cr_assert_str_empty(r.out, "case %zu: usage errors go to stderr", i);
		cr_assert(strstr(r.err, "usage: multicactl") != NULL || strstr(r.err, "-s") != NULL,
			  "case %zu: %s", i, r.err);
		ctl_free(&r);
	}
	int rc = ctl(&r, (const char *const[]){ "-V", NULL }, NULL);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(r.out, "multicactl " MC_VERSION "\n");
	ctl_free(&r);
	rc = ctl(&r, (const char *const[]){ "-h", NULL }, NULL);
	cr_assert_eq(rc, 0);
	cr_assert(strstr(r.out, "/run/multicad/control.sock") != NULL, "%s", r.out);
	cr_assert_str_empty(r.err);
	ctl_free(&r);
}

Test(multicactl_client, cannot_connect)
{
	char dir[] = "/tmp/mcctl-nc-XXXXXX";
	cr_assert(mkdtemp(dir) != NULL);
	char sock[64];
	snprintf(sock, sizeof sock, "%s/nothing.sock", dir);
	struct ctl_run r;
	int rc = ctl(&r, (const char *const[]){ "-s", sock, "status", NULL }, NULL);
	cr_assert_eq(rc, 3);
	char want[200];
	snprintf(want, sizeof want,
		 "multicactl: cannot connect to %s: No such file or directory (is multicad running?)\n",
		 sock);
	cr_assert_str_eq(r.err, want);
	ctl_free(&r);

	/* A socket file nobody listens on: ECONNREFUSED. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, sock);
	cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);
	rc = ctl(&r, (const char *const[]){ "-s", sock, "reload", NULL }, NULL);
	cr_assert_eq(rc, 3);
	cr_assert(strstr(r.err, "Connection refused (is multicad running?)") != NULL, "%s", r.err);
	ctl_free(&r);
	unlink(sock);
	rmdir(dir);
}

/* A fake daemon: the test listens, multicactl connects, the test reads the
 * request line and answers with reply (NULL: close without a word). */
struct fake {
	char dir[64];
	char sock[96];
	int lfd;
};

static void fake_open(struct fake *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/mcctl-fake-XXXXXX");
	cr_assert(mkdtemp(f->dir) != NULL);
	snprintf(f->sock, sizeof f->sock, "%s/c.sock", f->dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	set_sun_path(&sa, f->sock);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(f->lfd >= 0);
	cr_assert(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
	cr_assert(listen(f->lfd, 4) == 0);
}

static void fake_close(struct fake *f)
{
	close(f->lfd);
	unlink(f->sock);
	rmdir(f->dir);
}

/* Serves one connection; returns the request line (malloc'd). */
static char *fake_serve(struct fake *f, const char *reply, size_t reply_len)
{
	struct pollfd p = { f->lfd, POLLIN, 0 };
	cr_assert(poll(&p, 1, 10000) == 1, "multicactl did not connect");
	int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(c >= 0);
	char req[4096];
	size_t n = 0;
	while (n < sizeof req - 1) {
		ssize_t r = read(c, req + n, sizeof req - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(req, '\n', n) != NULL)
			break;
	}
	req[n] = '\0';
	size_t off = 0;
	while (reply != NULL && off < reply_len) {
		ssize_t w = send(c, reply + off, reply_len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	close(c);
	return strdup(req);
}

static int fake_run(const char *const *args, const char *reply, struct ctl_run *r,
		    char **request)
{
	struct fake f;
	fake_open(&f);
	const char *argv[8];
	size_t k = 0;
	argv[k++] = "-s";
	argv[k++] = f.sock;
	for (size_t i = 0; args[i] != NULL && k < 7; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	ctl_start(r, argv, NULL);
	char *req = fake_serve(&f, reply, reply ? strlen(reply) : 0);
	int rc = ctl_finish(r);
	fake_close(&f);
	if (request != NULL)
		*request = req;
	else
		free(req);
	return rc;
}

Test(multicactl_client, request_lines)
{
	struct ctl_run r;
	char *req;
	fake_run((const char *const[]){ "status", NULL }, "{\"ok\":false,\"error\":\"x\"}\n", &r, &req);
	cr_assert_str_eq(req, "{\"cmd\":\"status\"}\n");
	free(req);
	ctl_free(&r);
	fake_run((const char *const[]){ "reload", NULL }, "{\"ok\":true,\"message\":\"m\"}\n", &r, &req);
	cr_assert_str_eq(req, "{\"cmd\":\"reload\"}\n");
	cr_assert_str_eq(r.out, "m\n");
	free(req);
	ctl_free(&r);
	/* The argument is JSON-escaped, whatever it holds. */
	fake_run((const char *const[]){ "restart", "a\"b\\c\nd", NULL },
		 "{\"ok\":false,\"error\":\"no such workspace is served here\"}\n", &r, &req);
	cr_assert_str_eq(req, "{\"cmd\":\"restart\",\"workspace\":\"a\\\"b\\\\c\\nd\"}\n");
	free(req);
	ctl_free(&r);
}

Test(multicactl_client, bad_replies)
{
	static const struct {
		const char *cmd;
		const char *reply; /* NULL: close without replying */
		int rc;
		const char *err;   /* substring of stderr */
	} cases[] = {
		{ "status", NULL, 3, "closed the connection without replying" },
		{ "reload", "", 3, "closed the connection without replying" },
		{ "status", "hello\n", 4, "not a JSON object with \"ok\"" },
		{ "status", "[true]\n", 4, "not a JSON object with \"ok\"" },
		{ "status", "{\"ok\":\"yes\"}\n", 4, "not a JSON object with \"ok\"" },
		{ "status", "{\"ok\":true}\n", 4, "no \"supervisor\" object" },
		{ "status", "{\"ok\":true,\"supervisor\":{},\"workspaces\":[{\"pid\":3}]}\n", 4,
		  "without an \"id\"" },
		{ "status", "{\"ok\":false}\n", 1, "status: (no error message)" },
		{ "reload", "{\"ok\":false,\"error\":\"a\\u001b[2Jb\"}\n", 1, "reload failed: a?[2Jb" },
		{ "reload", "{\"ok\":false,\"error\":\"c1\\u009b2Jx\\u00e9\"}\n", 1,
		  "reload failed: c1??2Jx\xc3\xa9" },
		{ "reload", "{\"ok\":true,\"message\":\"no newline at EOF\"}", 0, "" },
		{ "reload", "{\"ok\":true,\"message\":\"x\"}\ntrailing junk", 0, "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ctl_run r;
		int rc = fake_run((const char *const[]){ cases[i].cmd, NULL }, cases[i].reply, &r, NULL);
		cr_assert_eq(rc, cases[i].rc, "case %zu: exit %d (want %d), stderr: %s", i, rc,
			     cases[i].rc, r.err);
		cr_assert(strstr(r.err, cases[i].err) != NULL, "case %zu: stderr \"%s\" lacks \"%s\"",
			  i, r.err, cases[i].err);
		cr_assert(strchr(r.err, '\033') == NULL, "case %zu: escape reached the terminal", i);
		ctl_free(&r);
	}
}

Test(multicactl_client, silent_daemon_times_out, .timeout = 90)
{
	/* A daemon that accepts and reads but never answers (hung loop):
	 * multicactl gives up after its 10 s and says so, exit 3. */
	struct fake f;
	fake_open(&f);
	struct ctl_run r;
	int64_t t0 = now_ms();
	ctl_start(&r, (const char *const[]){ "-s", f.sock, "status", NULL }, NULL);
	struct pollfd p = { f.lfd, POLLIN, 0 };
	cr_assert(poll(&p, 1, 10000) == 1);
	int c = accept4(f.lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(c >= 0);
	int rc = ctl_finish(&r); /* the connection stays open meanwhile */
	int64_t took = now_ms() - t0;
	close(c);
	fake_close(&f);
	cr_assert_eq(rc, 3, "exit %d: %s", rc, r.err);
	cr_assert(strstr(r.err, "no reply in time") != NULL, "%s", r.err);
	cr_assert(took >= 9500 && took < 15000, "gave up after %lld ms", (long long)took);
	ctl_free(&r);
}

Test(multicactl_client, reply_too_long)
{
	/* 5 MiB with no newline: multicactl gives up at 4 MiB (exit 4). The
	 * fake stops sending when multicactl closes (EPIPE). */
	size_t n = 5u * 1024 * 1024;
	char *big = malloc(n + 1);
	cr_assert(big != NULL);
	memset(big, ' ', n);
	big[0] = '{';
	big[n] = '\0';
	struct ctl_run r;
	int rc = fake_run((const char *const[]){ "status", NULL }, big, &r, NULL);
	free(big);
	cr_assert_eq(rc, 4, "exit %d: %s", rc, r.err);
	cr_assert(strstr(r.err, "longer than 4 MiB") != NULL, "%s", r.err);
	ctl_free(&r);
}

static const char STATUS_REPLY[] =
	"{\"ok\":true,\"supervisor\":{\"pid\":100,\"uptime_s\":273600,\"config\":\"/etc/m.conf\","
	"\"version\":\"9.9\",\"reloads\":3,\"last_reload\":{\"ok\":false,\"error\":\"/etc/m.conf:4: x: bad\"}},"
	"\"workspaces\":["
	"{\"id\":\"" WS_A "\",\"pid\":101,\"state\":\"running\",\"runtime_ids\":[\"r1\",\"r2\"],"
	"\"restarts\":0,\"uptime_s\":312,\"last_error\":null},"
	"{\"id\":\"" WS_B "\",\"pid\":null,\"state\":\"failed\",\"runtime_ids\":[],"
	"\"restarts\":7,\"uptime_s\":0,\"last_error\":\"exited with status 1 after a very long "
	"explanation that goes on and on past the edge of any reasonable terminal\"},"
	"{\"id\":\"" WS_X "\",\"pid\":103,\"state\":\"backoff\",\"runtime_ids\":[\"r3\"],"
	"\"restarts\":1,\"uptime_s\":5,\"last_error\":\"killed by signal 9\"}]}\n";

Test(multicactl_client, status_rendering)
{
	struct ctl_run r;
	int rc = fake_run((const char *const[]){ "status", NULL }, STATUS_REPLY, &r, NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, r.err);
	cr_assert(strstr(r.out, "multicad 9.9, supervisor pid 100, up 3d4h, config /etc/m.conf, "
				"last reload REJECTED (3 reloads)\n  /etc/m.conf:4: x: bad\n") != NULL,
		  "%s", r.out);
	cr_assert(strstr(r.out, "5m12s") != NULL, "%s", r.out);
	/* Not a TTY: nothing is cut. */
	cr_assert(strstr(r.out, "reasonable terminal\n") != NULL, "%s", r.out);
	/* Only running workers' runtimes count as online. */
	cr_assert(strstr(r.out, "\n3 workspaces, 2 runtimes online, 1 failed\n") != NULL, "%s", r.out);
	const char *row_b = strstr(r.out, WS_B);
	cr_assert(row_b != NULL);
	cr_assert(strncmp(row_b + strlen(WS_B), "    -  failed ", 14) == 0, "row: %.60s", row_b);
	ctl_free(&r);
}

/* multicactl on a pseudo-terminal cols columns wide. */
static int pty_run(const char *const *env_extra, unsigned short cols, char **out)
{
	struct fake f;
	fake_open(&f);
	char **env = child_env(env_extra);
	struct winsize ws = { .ws_row = 24, .ws_col = cols };
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, &ws);
	cr_assert(pid >= 0);
	if (pid == 0) {
		execve(MULTICACTL_BIN,
		       (char *const[]){ (char *)MULTICACTL_BIN, (char *)"-s", f.sock, (char *)"status", NULL },
		       env);
		_exit(127);
	}
	free(env);
	char *req = fake_serve(&f, STATUS_REPLY, strlen(STATUS_REPLY));
	free(req);
	size_t len = 0;
	FILE *m = open_memstream(out, &len);
	char buf[4096];
	for (;;) {
		struct pollfd p = { master, POLLIN, 0 };
		if (poll(&p, 1, 10000) <= 0)
			break;
		ssize_t n = read(master, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EIO once the child has gone */
		fwrite(buf, 1, (size_t)n, m);
	}
	fclose(m);
	close(master);
	int st;
	waitpid(pid, &st, 0);
	fake_close(&f);
	if (has_sanitizer_report(*out))
		fprintf(stderr, "multicactl output:\n%s\n", *out);
	cr_assert(!has_sanitizer_report(*out));
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void assert_lines_fit(const char *out, size_t cols)
{
	/* The pty turns \n into \r\n. The header line is never cut (it
	 * carries the reload result). */
	for (const char *line = out; *line;) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		cr_assert(len <= cols || strncmp(line, "multicad ", 9) == 0,
			  "line of %zu columns: %.*s", len, (int)len, line);
		if (end == NULL)
			break;
		line = end + 2;
	}
}

Test(multicactl_client, tty_colour_and_width)
{
	char *out = NULL;
	int rc = pty_run((const char *const[]){ "TERM=xterm", "LC_ALL=C", NULL }, 100, &out);
	cr_assert_eq(rc, 0);
	cr_assert(strstr(out, "\033[32mrunning\033[0m") != NULL, "%s", out);
	cr_assert(strstr(out, "\033[31mfailed\033[0m") != NULL, "%s", out);
	cr_assert(strstr(out, "\033[33mbackoff\033[0m") != NULL, "%s", out);
	/* LAST ERROR is cut to the 100 columns (ASCII "..." under LC_ALL=C):
	 * 80 for the other columns, 24 at least for the error. */
	cr_assert(strstr(out, "reasonable terminal") == NULL, "not cut:\n%s", out);
	cr_assert(strstr(out, "exited with status 1 ...") != NULL, "%s", out);
	free(out);

	rc = pty_run((const char *const[]){ "TERM=xterm", "NO_COLOR=1", "LC_ALL=C", NULL }, 110, &out);
	cr_assert_eq(rc, 0);
	cr_assert(strchr(out, '\033') == NULL, "colour despite NO_COLOR:\n%s", out);
	assert_lines_fit(out, 110);
	cr_assert(strstr(out, "exited with status 1 after ...") != NULL, "%s", out);
	free(out);

	/* UTF-8 terminal: one-column ellipsis; TERM=dumb: no colour. */
	rc = pty_run((const char *const[]){ "TERM=dumb", "LC_ALL=C.UTF-8", NULL }, 110, &out);
	cr_assert_eq(rc, 0);
	cr_assert(strchr(out, '\033') == NULL, "colour on a dumb terminal:\n%s", out);
	cr_assert(strstr(out, "exited with status 1 after a \xe2\x80\xa6") != NULL, "%s", out);
	free(out);
}

/* ---- the control socket's path ---- */

/* Runs multicad -c conf with its output in log; returns its exit status, or
 * -1 when it was still running after timeout_ms (then it is killed). */
static int run_multicad_until_exit(const char *conf, const char *log, int timeout_ms)
{
	int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(logfd >= 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execv(MULTICAD_BIN, (char *const[]){ (char *)MULTICAD_BIN, (char *)"-c",
						     (char *)conf, NULL });
		_exit(127);
	}
	close(logfd);
	int st = 0;
	int64_t deadline = now_ms() + timeout_ms;
	pid_t r;
	while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
		sleep_ms(20);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whatever sits at control_socket that is not a socket (a file, a
 * symlink to one) is not multicad's to delete or chmod: it refuses to start
 * and says why; the file is untouched. */
Test(multicad_control_path, refuses_what_is_not_a_socket, .timeout = 90)
{
	memset(&fx, 0, sizeof fx);
	const char *tmp = getenv("TMPDIR");
	snprintf(fx.dir, sizeof fx.dir, "%s/mcsock-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert(mkdtemp(fx.dir) != NULL);
	snprintf(fx.conf, sizeof fx.conf, "%s/multicad.conf", fx.dir);
	snprintf(fx.log, sizeof fx.log, "%s/multicad.log", fx.dir);
	char path[256], target[256], link[256];
	snprintf(path, sizeof path, "%s/token", fx.dir);
	cr_assert(write_file(path, TOKEN "\n", 0600) == 0);
	snprintf(target, sizeof target, "%s/precious", fx.dir);
	cr_assert(write_file(target, "keep me\n", 0600) == 0);
	snprintf(link, sizeof link, "%s/link.sock", fx.dir);
	cr_assert(symlink(target, link) == 0);

	const char *const socks[] = { target, link };
	for (size_t i = 0; i < 2; i++) {
		char text[1024];
		snprintf(text, sizeof text,
			 "[daemon]\nserver_url = http://127.0.0.1:9\ntoken_file = %s/token\n"
			 "daemon_id = ctl-test-host\nagent_api_listen = 127.0.0.1:0\nworkspaces = " WS_A "\n"
			 "state_dir = %s/state\ncontrol_socket = %s\n[providers]\n",
			 fx.dir, fx.dir, socks[i]);
		cr_assert(write_file(fx.conf, text, 0644) == 0);
		int rc = run_multicad_until_exit(fx.conf, fx.log, 15000);
		char *log = read_file(fx.log);
		cr_expect(rc != 0 && rc != -1, "multicad started over %s (status %d)", socks[i], rc);
		cr_expect(log != NULL && strstr(log, "is not a socket") != NULL,
			  "no error naming the problem:\n%s", log ? log : "");
		free(log);
		struct stat st;
		cr_assert(lstat(socks[i], &st) == 0, "%s was deleted", socks[i]);
		char *kept = read_file(target);
		cr_expect(kept != NULL && strcmp(kept, "keep me\n") == 0, "the file was changed");
		free(kept);
		cr_assert(stat(target, &st) == 0);
		cr_expect_eq(st.st_mode & 07777, 0600, "mode changed to %o", st.st_mode & 07777);
	}
	const char *const argv[] = { "rm", "-rf", fx.dir, NULL };
	pid_t p = fork();
	if (p == 0) {
		execv("/bin/rm", (char *const *)argv);
		_exit(127);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}
