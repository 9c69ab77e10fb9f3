/* Test support: the daemon as a child process (see the header). */
#include "tests/support/daemon_proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
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

#ifndef MULTICAD_BIN
#error "MULTICAD_BIN must be defined (tests/CMakeLists.txt)"
#endif

#define LOG_TAIL_LINES 60
#define LEFTOVER_BOUND_MS 5000
#define MAX_ENV 512

extern char **environ;

/* ---- time ---- */

int64_t dp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dp_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- files ---- */

static int write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[512];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		fprintf(stderr, "daemon_proc: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	size_t len = strlen(text);
	const char *p = text;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "daemon_proc: write %s: %s\n", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "daemon_proc: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Whole file, malloc'd and NUL-terminated; NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf != NULL)
		buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* ---- setting up ---- */

int dp_add_cli(struct dp *d, const char *name, const char *version)
{
	char path[512], text[256];
	snprintf(path, sizeof path, "%s/%s", d->cli_dir, name);
	snprintf(text, sizeof text, "#!/bin/sh\necho '%s'\n", version);
	return write_file(path, text, 0755);
}

int dp_init(struct dp *d, const char *token, const char *const *clis, const char *version)
{
	static const char *const dflt_clis[] = { "claude", NULL };
	memset(d, 0, sizeof *d);
	const char *tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof d->dir, "%s/mc-sv-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "daemon_proc: mkdtemp: %s\n", strerror(errno));
		d->dir[0] = '\0';
		return -1;
	}
	snprintf(d->conf_path, sizeof d->conf_path, "%s/multicad.conf", d->dir);
	snprintf(d->log_path, sizeof d->log_path, "%s/daemon.log", d->dir);
	snprintf(d->token_path, sizeof d->token_path, "%s/token", d->dir);
	snprintf(d->state_dir, sizeof d->state_dir, "%s/state", d->dir);
	snprintf(d->cli_dir, sizeof d->cli_dir, "%s/cli", d->dir);
	snprintf(d->sock_path, sizeof d->sock_path, "%s/control.sock", d->dir);
	snprintf(d->path_env, sizeof d->path_env, "PATH=%s:/usr/bin:/bin", d->cli_dir);
	if (mkdir(d->cli_dir, 0700) < 0) {
		fprintf(stderr, "daemon_proc: mkdir %s: %s\n", d->cli_dir, strerror(errno));
		return -1;
	}
	if (write_file(d->token_path, token ? token : DP_TOKEN, 0600) < 0)
		return -1;
	for (const char *const *c = clis ? clis : dflt_clis; *c != NULL; c++)
		if (dp_add_cli(d, *c, version ? version : "2.1.0") < 0)
			return -1;
	return 0;
}

static const char *or(const char *v, const char *dflt)
{
	return v != NULL ? v : dflt;
}

char *dp_config_text(const struct dp *d, const struct dp_config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return NULL;
	fprintf(f,
		"[daemon]\n"
		"server_url = %s\n"
		"token_file = %s\n"
		"daemon_id = %s\n"
		"device_name = testhost\n"
		"workspaces = %s\n"
		"state_dir = %s\n"
		"control_socket = %s\n"
		"heartbeat_interval = %s\n"
		"profile_sync_interval = %s\n"
		"worker_ping_interval = %s\n"
		"worker_liveness_timeout = %s\n"
		"restart_backoff_min = %s\n"
		"restart_backoff_max = %s\n"
		"stop_timeout = %s\n"
		"http_timeout = %s\n"
		"agent_api_listen = %s\n"
		"%s"
		"[providers]\n"
		"%s"
		"%s",
		c->server_url, d->token_path, or(c->daemon_id, "host-1"), c->workspaces, d->state_dir,
		d->sock_path,
		or(c->heartbeat_interval, "500ms"), or(c->profile_sync_interval, "1s"),
		or(c->worker_ping_interval, "200ms"), or(c->worker_liveness_timeout, "1s"),
		or(c->restart_backoff_min, "100ms"), or(c->restart_backoff_max, "2s"),
		or(c->stop_timeout, "3s"), or(c->http_timeout, "2s"),
		or(c->agent_api_listen, "127.0.0.1:0"), or(c->daemon_extra, ""),
		or(c->providers, "claude = claude\n"), or(c->tail, ""));
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

int dp_write_config_text(struct dp *d, const char *text)
{
	return write_file(d->conf_path, text, 0600);
}

int dp_write_config(struct dp *d, const struct dp_config *c)
{
	char *text = dp_config_text(d, c);
	if (text == NULL)
		return -1;
	int rc = dp_write_config_text(d, text);
	free(text);
	return rc;
}

/* ---- running ---- */

/* Our environment without PATH, the service-manager variables and
 * MC_TEST_DUMPABLE, plus d->extra_env, MC_TEST_DUMPABLE when it applies
 * (see nondumpable) and the test PATH. Pointers into environ (and d); the
 * array is malloc'd. */
static char **child_env(const struct dp *d)
{
	size_t n = 0, extra = 0;
	while (environ[n] != NULL)
		n++;
	while (d->extra_env != NULL && d->extra_env[extra] != NULL)
		extra++;
	char **env = calloc(n + extra + 3, sizeof *env);
	if (env == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "PATH=", 5) == 0 ||
		    strncmp(environ[i], "NOTIFY_SOCKET=", 14) == 0 ||
		    strncmp(environ[i], "JOURNAL_STREAM=", 15) == 0 ||
		    strncmp(environ[i], "LISTEN_", 7) == 0 ||
		    strncmp(environ[i], "MC_TEST_DUMPABLE=", 17) == 0)
			continue;
		env[k++] = environ[i];
	}
	for (size_t i = 0; i < extra; i++)
		env[k++] = (char *)d->extra_env[i];
	if (geteuid() != 0 && !d->nondumpable)
		env[k++] = (char *)"MC_TEST_DUMPABLE=1";
	env[k++] = (char *)d->path_env;
	env[k] = NULL;
	return env;
}

int dp_start(struct dp *d)
{
	if (d->running) {
		fprintf(stderr, "daemon_proc: already running (pid %d)\n", (int)d->pid);
		return -1;
	}
	/* Workers orphaned by a killed supervisor come back to us. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fprintf(stderr, "daemon_proc: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
	char **env = child_env(d);
	int logfd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (env == NULL || logfd < 0 || nullfd < 0) {
		fprintf(stderr, "daemon_proc: cannot prepare the daemon: %s\n", strerror(errno));
		free(env);
		if (logfd >= 0)
			close(logfd);
		if (nullfd >= 0)
			close(nullfd);
		return -1;
	}
	const char *bin = d->exec_path != NULL ? d->exec_path : MULTICAD_BIN;
	char *argv[] = { (char *)(d->argv0 != NULL ? d->argv0 : bin), (char *)"-c",
			 (char *)(d->conf_arg != NULL ? d->conf_arg : d->conf_path), NULL };
	pid_t parent = getpid();
	uid_t run_uid = d->run_uid;
	gid_t run_gid = d->run_gid;
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls until execve. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (run_uid != 0) {
			if (setgroups(0, NULL) < 0 || setgid(run_gid) < 0 || setuid(run_uid) < 0)
				_exit(127);
			/* A uid change clears PDEATHSIG: armed again. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		if (dup2(nullfd, 0) < 0 || dup2(nullfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		closefrom(3); /* nothing of the test runner's leaks into the daemon */
		execve(bin, argv, env);
		_exit(127);
	}
	free(env);
	close(logfd);
	close(nullfd);
	if (pid < 0) {
		fprintf(stderr, "daemon_proc: fork: %s\n", strerror(errno));
		return -1;
	}
	setpgid(pid, pid); /* also here: no race with our first killpg */
	d->pid = d->pgid = pid;
	d->running = true;
	d->status = 0;
	return 0;
}

int dp_reload(struct dp *d, const struct dp_config *c)
{
	if (dp_write_config(d, c) < 0)
		return -1;
	return dp_signal(d, SIGHUP);
}

int dp_signal(struct dp *d, int sig)
{
	if (!d->running)
		return -1;
	return kill(d->pid, sig);
}

bool dp_alive(struct dp *d)
{
	if (!d->running)
		return false;
	int st;
	pid_t r = waitpid(d->pid, &st, WNOHANG);
	if (r == d->pid) {
		d->running = false;
		d->status = st;
		return false;
	}
	return true;
}

bool dp_wait_exit(struct dp *d, int timeout_ms)
{
	int64_t until = dp_now_ms() + timeout_ms;
	while (dp_alive(d)) {
		if (dp_now_ms() >= until)
			return false;
		dp_sleep_ms(10);
	}
	return true;
}

/* ---- /proc ---- */

/* state, ppid and pgrp from /proc/PID/stat; -1 when gone. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, pid_t *pgrp)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		return -1;
	p += 2;
	char st = *p;
	char *end;
	long pp = strtol(p + 1, &end, 10);
	long pg = strtol(end, &end, 10);
	if (state)
		*state = st;
	if (ppid)
		*ppid = (pid_t)pp;
	if (pgrp)
		*pgrp = (pid_t)pg;
	return 0;
}

pid_t dp_proc_ppid(pid_t pid)
{
	pid_t ppid;
	return proc_stat(pid, NULL, &ppid, NULL) == 0 ? ppid : -1;
}

char dp_proc_state(pid_t pid)
{
	char st;
	return proc_stat(pid, &st, NULL, NULL) == 0 ? st : 0;
}

bool dp_pid_alive(pid_t pid)
{
	char st = dp_proc_state(pid);
	return st != 0 && st != 'Z' && st != 'X';
}

int dp_proc_title(pid_t pid, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || n == 0)
		return -1;
	ssize_t r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	for (ssize_t i = 0; i < r; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (r > 0 && isspace((unsigned char)buf[r - 1]))
		buf[--r] = '\0';
	return 0;
}

int dp_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

char *dp_fd_list(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL) {
		closedir(dir);
		return NULL;
	}
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char link[400], target[256];
		snprintf(link, sizeof link, "/proc/%d/fd/%s", (int)pid, e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(f, "%s=%s ", e->d_name, target);
	}
	closedir(dir);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

size_t dp_children(const struct dp *d, pid_t *out, size_t max)
{
	if (!d->running)
		return 0;
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", (int)d->pid);
	DIR *dir = opendir(path);
	if (dir == NULL)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char cpath[320];
		snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)d->pid, e->d_name);
		char *text = read_file(cpath, NULL);
		if (text == NULL)
			continue;
		for (char *p = text; *p;) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			if (out != NULL && n < max)
				out[n] = (pid_t)v;
			n++;
			p = end;
		}
		free(text);
	}
	closedir(dir);
	return n;
}

#define MAX_CHILDREN 4096

pid_t dp_worker_pid(const struct dp *d, const char *ws)
{
	static pid_t kids[MAX_CHILDREN];
	size_t n = dp_children(d, kids, MAX_CHILDREN);
	char want[128];
	snprintf(want, sizeof want, "multicad: worker %s", ws);
	for (size_t i = 0; i < n && i < MAX_CHILDREN; i++) {
		char title[256];
		if (dp_proc_title(kids[i], title, sizeof title) == 0 && strcmp(title, want) == 0 &&
		    dp_pid_alive(kids[i]))
			return kids[i];
	}
	return 0;
}

size_t dp_count_children_titled(const struct dp *d, const char *prefix)
{
	static pid_t kids[MAX_CHILDREN];
	size_t n = dp_children(d, kids, MAX_CHILDREN), k = 0;
	for (size_t i = 0; i < n && i < MAX_CHILDREN; i++) {
		char title[256];
		if (dp_proc_title(kids[i], title, sizeof title) == 0 &&
		    strncmp(title, prefix, strlen(prefix)) == 0)
			k++;
	}
	return k;
}

size_t dp_count_zombies(const struct dp *d)
{
	static pid_t kids[MAX_CHILDREN];
	size_t n = dp_children(d, kids, MAX_CHILDREN), k = 0;
	for (size_t i = 0; i < n && i < MAX_CHILDREN; i++)
		if (dp_proc_state(kids[i]) == 'Z')
			k++;
	return k;
}

/* Every process of the group: live ones into out (if any), zombies of ours
 * into zombies_ours. */
static size_t scan_group(pid_t pgid, pid_t *out, size_t max, pid_t *ours, size_t max_ours,
			 size_t *n_ours)
{
	size_t n = 0, k = 0;
	pid_t me = getpid();
	DIR *dir = opendir("/proc");
	if (dir == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (*end != '\0')
			continue;
		char st;
		pid_t ppid, pgrp;
		if (proc_stat((pid_t)v, &st, &ppid, &pgrp) < 0 || pgrp != pgid)
			continue;
		if (ppid == me) {
			if (ours != NULL && k < max_ours)
				ours[k] = (pid_t)v;
			k++;
		}
		if (st == 'Z' || st == 'X')
			continue;
		if (out != NULL && n < max)
			out[n] = (pid_t)v;
		n++;
	}
	closedir(dir);
	if (n_ours != NULL)
		*n_ours = k;
	return n;
}

size_t dp_group_pids(const struct dp *d, pid_t *out, size_t max)
{
	if (d->pgid <= 0)
		return 0;
	return scan_group(d->pgid, out, max, NULL, 0, NULL);
}

void dp_kill_leftovers(struct dp *d)
{
	if (d->pgid <= 0)
		return;
	static pid_t live[MAX_CHILDREN], ours[MAX_CHILDREN];
	int64_t until = dp_now_ms() + LEFTOVER_BOUND_MS;
	for (;;) {
		if (d->running) {
			kill(d->pid, SIGKILL);
			dp_alive(d);
		}
		size_t n_ours = 0;
		size_t n = scan_group(d->pgid, live, MAX_CHILDREN, ours, MAX_CHILDREN, &n_ours);
		for (size_t i = 0; i < n && i < MAX_CHILDREN; i++)
			kill(live[i], SIGKILL);
		for (size_t i = 0; i < n_ours && i < MAX_CHILDREN; i++)
			if (ours[i] != d->pid)
				waitpid(ours[i], NULL, WNOHANG);
		if (n == 0 && n_ours == 0 && !d->running)
			return;
		if (dp_now_ms() >= until) {
			fprintf(stderr, "daemon_proc: %zu processes of group %d survive SIGKILL\n", n,
				(int)d->pgid);
			return;
		}
		dp_sleep_ms(10);
	}
}

bool dp_stop(struct dp *d, int timeout_ms)
{
	bool clean = false;
	if (d->running) {
		kill(d->pid, SIGTERM);
		clean = dp_wait_exit(d, timeout_ms);
	}
	dp_kill_leftovers(d);
	return clean;
}

void dp_kill_all(struct dp *d)
{
	if (d->pgid <= 0)
		return;
	static pid_t live[MAX_CHILDREN];
	/* One killpg first, while the supervisor is unreaped (its pid is the
	 * group's id, so it cannot name anyone else), then by pid. */
	killpg(d->pgid, SIGKILL);
	size_t n = scan_group(d->pgid, live, MAX_CHILDREN, NULL, 0, NULL);
	for (size_t i = 0; i < n && i < MAX_CHILDREN; i++)
		kill(live[i], SIGKILL);
	dp_kill_leftovers(d);
}

/* ---- the log ---- */

char *dp_log_read(const struct dp *d)
{
	char *t = read_file(d->log_path, NULL);
	return t != NULL ? t : strdup("");
}

int dp_log_count(const struct dp *d, const char *a, const char *b, const char *c, const char *e)
{
	char *text = dp_log_read(d);
	if (text == NULL)
		return -1;
	int k = 0;
	const char *needles[] = { a, b, c, e };
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		bool all = true;
		for (size_t i = 0; i < 4 && all; i++)
			if (needles[i] != NULL && strstr(line, needles[i]) == NULL)
				all = false;
		k += all;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	free(text);
	return k;
}

bool dp_log_has(const struct dp *d, const char *a, const char *b, const char *c, const char *e)
{
	return dp_log_count(d, a, b, c, e) > 0;
}

static void dump_log(const struct dp *d)
{
	size_t len = 0;
	char *text = read_file(d->log_path, &len);
	if (text == NULL || len == 0) {
		free(text);
		return;
	}
	/* A sanitizer report anywhere: all of it from there on, so that ctest's
	 * FAIL_REGULAR_EXPRESSION sees it. */
	const char *marks[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
				"runtime error:" };
	const char *first = NULL;
	for (size_t i = 0; i < 3; i++) {
		const char *m = strstr(text, marks[i]);
		if (m != NULL && (first == NULL || m < first))
			first = m;
	}
	const char *from = text + len;
	int lines = 0;
	while (from > text && lines <= LOG_TAIL_LINES) {
		from--;
		if (*from == '\n')
			lines++;
	}
	if (first != NULL && first < from) {
		while (first > text && first[-1] != '\n')
			first--;
		from = first;
	}
	fprintf(stderr, "---- daemon log %s (tail) ----\n%s---- end of daemon log ----\n",
		d->log_path, from);
	free(text);
}

void dp_free(struct dp *d)
{
	if (d->dir[0] == '\0')
		return;
	dp_kill_leftovers(d);
	dump_log(d);
	const char *keep = getenv("DP_KEEP");
	if (keep != NULL && *keep != '\0')
		fprintf(stderr, "daemon_proc: keeping %s\n", d->dir);
	else
		nftw(d->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	d->dir[0] = '\0';
}

/* ---- the ledger ---- */

int dp_ledger_ids(const struct dp *d, const char *ws, char (*ids)[DP_ID_LEN + 1], int max)
{
	char path[512];
	snprintf(path, sizeof path, "%s/ledger/%s", d->state_dir, ws);
	char *text = read_file(path, NULL);
	if (text == NULL)
		return -1;
	int n = 0;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len == DP_ID_LEN) {
			if (n < max) {
				memcpy(ids[n], line, DP_ID_LEN);
				ids[n][DP_ID_LEN] = '\0';
			}
			n++;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	free(text);
	return n;
}

/* ---- scenario data ---- */

void dp_ws_id(int i, char out[DP_ID_LEN + 1])
{
	snprintf(out, DP_ID_LEN + 1, "5e000000-0000-4000-8000-%012d", i);
}

char *dp_ws_list(int first, int last)
{
	/* Four ids a line, continued on indented lines: the config reader
	 * refuses lines over 199 characters. */
	size_t n = last >= first ? (size_t)(last - first + 1) : 0;
	size_t cap = n * (DP_ID_LEN + 4) + 1;
	char *s = calloc(cap, 1);
	if (s == NULL)
		return NULL;
	size_t off = 0;
	for (int i = first; i <= last; i++) {
		char id[DP_ID_LEN + 1];
		dp_ws_id(i, id);
		const char *sep = i == first ? "" : (i - first) % 4 == 0 ? "\n  " : " ";
		off += (size_t)snprintf(s + off, cap - off, "%s%s", sep, id);
	}
	return s;
}

char *dp_seed(int n_ws, const char *extra_ws, const char *profiles)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return NULL;
	fprintf(f, "{\"tokens\":{\"%s\":\"%s\"},\"workspaces\":[", DP_TOKEN, DP_USER);
	for (int i = 1; i <= n_ws; i++) {
		char id[DP_ID_LEN + 1];
		dp_ws_id(i, id);
		fprintf(f, "%s{\"id\":\"%s\",\"name\":\"ws%d\",\"members\":[\"%s\"]}",
			i > 1 ? "," : "", id, i, DP_USER);
	}
	if (extra_ws != NULL && *extra_ws)
		fprintf(f, "%s%s", n_ws > 0 ? "," : "", extra_ws);
	fprintf(f, "],\"profiles\":%s,\"tasks\":[]}", profiles ? profiles : "[]");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- the emulator's view ---- */

/* "2026-11-28T23:11:41.692Z" -> wall clock ms; 0 when it does not parse. */
static int64_t parse_time(const char *s)
{
	if (s == NULL)
		return 0;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return 0;
	int64_t ms = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++) {
			if (digits < 3) {
				ms = ms * 10 + (*p - '0');
				digits++;
			}
		}
		while (digits++ < 3)
			ms *= 10;
	}
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int dp_runtimes(const struct fp_proc *fp, const char *ws, bool online_only, struct dp_rt *out,
		int max)
{
	cJSON *s = fp_state(fp);
	if (s == NULL)
		return -1;
	int n = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(s, "runtimes")) {
		const char *w = cJSON_GetStringValue(cJSON_GetObjectItem(r, "workspace_id"));
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
		bool online = st != NULL && strcmp(st, "online") == 0;
		if ((ws != NULL && (w == NULL || strcmp(w, ws) != 0)) || (online_only && !online))
			continue;
		if (out != NULL && n < max) {
			struct dp_rt *o = &out[n];
			copy_str(o->id, sizeof o->id,
				 cJSON_GetStringValue(cJSON_GetObjectItem(r, "id")));
			copy_str(o->ws, sizeof o->ws, w);
			copy_str(o->provider, sizeof o->provider,
				 cJSON_GetStringValue(cJSON_GetObjectItem(r, "provider")));
			copy_str(o->profile_id, sizeof o->profile_id,
				 cJSON_GetStringValue(cJSON_GetObjectItem(r, "profile_id")));
			o->online = online;
			o->last_seen_ms = parse_time(
				cJSON_GetStringValue(cJSON_GetObjectItem(r, "last_seen_at")));
		}
		n++;
	}
	cJSON_Delete(s);
	return n;
}

int dp_count_online(const struct fp_proc *fp, const char *ws)
{
	return dp_runtimes(fp, ws, true, NULL, 0);
}

bool dp_runtime_id(const struct fp_proc *fp, const char *ws, const char *provider,
		   const char *profile_id, char out[DP_ID_LEN + 1])
{
	struct dp_rt rts[64];
	int n = dp_runtimes(fp, ws, false, rts, 64);
	for (int i = 0; i < n && i < 64; i++) {
		if (provider != NULL && strcmp(rts[i].provider, provider) != 0)
			continue;
		if (strcmp(rts[i].profile_id, profile_id ? profile_id : "") != 0)
			continue;
		memcpy(out, rts[i].id, DP_ID_LEN + 1);
		return true;
	}
	return false;
}

bool dp_runtime_is(const struct fp_proc *fp, const char *id, const char *status)
{
	char *s = fp_runtime_status(fp, id);
	bool is = s != NULL && strcmp(s, status) == 0;
	free(s);
	return is;
}

int dp_journal_load(const struct fp_proc *fp, struct dp_journal *j)
{
	j->v = NULL;
	j->n = 0;
	cJSON *a = fp_journal(fp);
	if (a == NULL)
		return -1;
	int n = cJSON_GetArraySize(a);
	j->v = calloc(n > 0 ? (size_t)n : 1, sizeof *j->v);
	if (j->v == NULL) {
		cJSON_Delete(a);
		return -1;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, a) {
		struct dp_req *q = &j->v[j->n];
		q->seq = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "seq"));
		q->status = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status"));
		q->time_ms = parse_time(cJSON_GetStringValue(cJSON_GetObjectItem(e, "time")));
		copy_str(q->method, sizeof q->method,
			 cJSON_GetStringValue(cJSON_GetObjectItem(e, "method")));
		copy_str(q->path, sizeof q->path,
			 cJSON_GetStringValue(cJSON_GetObjectItem(e, "path")));
		const char *b = cJSON_GetStringValue(cJSON_GetObjectItem(e, "body"));
		q->body = strdup(b ? b : "");
		if (q->body == NULL)
			break;
		j->n++;
	}
	cJSON_Delete(a);
	return 0;
}

void dp_journal_free(struct dp_journal *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->v[i].body);
	free(j->v);
	j->v = NULL;
	j->n = 0;
}

long dp_journal_last_seq(const struct fp_proc *fp)
{
	struct dp_journal j;
	if (dp_journal_load(fp, &j) < 0)
		return -1;
	long last = 0;
	for (size_t i = 0; i < j.n; i++)
		if (j.v[i].seq > last)
			last = j.v[i].seq;
	dp_journal_free(&j);
	return last;
}

static bool req_matches(const struct dp_req *q, long after_seq, const char *method,
			const char *path_prefix, const char *body_has, long status)
{
	return q->seq > after_seq && (method == NULL || strcmp(q->method, method) == 0) &&
	       (path_prefix == NULL || strncmp(q->path, path_prefix, strlen(path_prefix)) == 0) &&
	       (body_has == NULL || strstr(q->body, body_has) != NULL) &&
	       (status == 0 || q->status == status);
}

int dp_j_count(const struct dp_journal *j, long after_seq, const char *method,
	       const char *path_prefix, const char *body_has, long status)
{
	int n = 0;
	for (size_t i = 0; i < j->n; i++)
		n += req_matches(&j->v[i], after_seq, method, path_prefix, body_has, status);
	return n;
}

int dp_journal_match(const struct fp_proc *fp, long after_seq, const char *method,
		     const char *path_prefix, const char *body_has, long status)
{
	struct dp_journal j;
	if (dp_journal_load(fp, &j) < 0)
		return -1;
	int n = dp_j_count(&j, after_seq, method, path_prefix, body_has, status);
	dp_journal_free(&j);
	return n;
}

int64_t dp_j_heartbeat_gap(const struct dp_journal *j, const char *id, int64_t from_ms,
			   int64_t to_ms, int *n_beats)
{
	int64_t prev = from_ms, gap = 0;
	int n = 0;
	for (size_t i = 0; i < j->n; i++) {
		const struct dp_req *q = &j->v[i];
		if (q->time_ms < from_ms || q->time_ms > to_ms ||
		    !req_matches(q, 0, "POST", "/api/daemon/heartbeat", id, 0))
			continue;
		if (q->time_ms - prev > gap)
			gap = q->time_ms - prev;
		prev = q->time_ms;
		n++;
	}
	if (to_ms - prev > gap)
		gap = to_ms - prev;
	if (n_beats != NULL)
		*n_beats = n;
	return gap;
}

/* ---- the token file and the control socket ---- */

int dp_write_token(struct dp *d, const char *token, mode_t mode)
{
	return write_file(d->token_path, token, mode);
}

/* ---- the daemon as another user ---- */

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (lchown(path, chown_uid, chown_gid) < 0) {
		fprintf(stderr, "daemon_proc: chown %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int dp_run_as(struct dp *d, uid_t uid, gid_t gid)
{
	chown_uid = uid;
	chown_gid = gid;
	if (nftw(d->dir, chown_entry, 16, FTW_PHYS) != 0)
		return -1;
	d->run_uid = uid;
	d->run_gid = gid;
	return 0;
}

int dp_write_owned(const struct dp *d, const char *path, const char *text, mode_t mode)
{
	/* write_file's own tmp + rename makes the staging file; it becomes the
	 * daemon's before the second rename puts it in place. */
	char stage[512];
	snprintf(stage, sizeof stage, "%s.own", path);
	if (write_file(stage, text, mode) < 0)
		return -1;
	if ((d->run_uid != 0 && chown(stage, d->run_uid, d->run_gid) < 0) ||
	    rename(stage, path) < 0) {
		fprintf(stderr, "daemon_proc: %s: %s\n", path, strerror(errno));
		unlink(stage);
		return -1;
	}
	return 0;
}

/* Writes all of buf to fd, polling for room until deadline. */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w > 0) {
			buf += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		int64_t left = deadline - dp_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
			return -1;
	}
	return 0;
}

/* Reads until EOF (the daemon closes after its reply) or deadline. */
static char *recv_all(int fd, int64_t deadline)
{
	size_t cap = 8192, len = 0;
	char *out = malloc(cap);
	while (out != NULL) {
		if (len + 1024 > cap) {
			char *nb = realloc(out, cap * 2);
			if (nb == NULL)
				break;
			out = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, out + len, cap - len - 1);
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		if (r == 0) {
			out[len] = '\0';
			return out;
		}
		if (errno != EINTR && errno != EAGAIN)
			break;
		int64_t left = deadline - dp_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
			break;
	}
	free(out);
	return NULL;
}

int dp_control(const struct dp *d, const char *request, char **reply, int timeout_ms)
{
	*reply = NULL;
	int64_t deadline = dp_now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(d->sock_path) >= sizeof sa.sun_path)
		return -1;
	memcpy(sa.sun_path, d->sock_path, strlen(d->sock_path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	char line[4200];
	int n = snprintf(line, sizeof line, "%s\n", request);
	int rc = -1;
	if (n > 0 && (size_t)n < sizeof line &&
	    (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EINPROGRESS) &&
	    send_all(fd, line, (size_t)n, deadline) == 0 &&
	    (*reply = recv_all(fd, deadline)) != NULL)
		rc = 0;
	close(fd);
	return rc;
}
