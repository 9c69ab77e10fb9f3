/* Test support: an agent CLI as a child process (see the header). */
#include "tests/support/real_cli_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 65536

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends n bytes; the buffer grows (allocates) and stays NUL-terminated. */
static int buf_add(struct rc_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (d == NULL)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *const *argv, char *const *envp, const char *cwd,
		       int in, int out, int err)
{
	if (setsid() < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	if (cwd != NULL && chdir(cwd) < 0)
		_exit(126);
	closefrom(3);
	signal(SIGPIPE, SIG_DFL);
	execve(argv[0], (char *const *)argv, envp);
	_exit(127);
}

int rc_proc_spawn(struct rc_proc *p, const char *const *argv, char *const *envp,
		  const char *cwd)
{
	int in[2], out[2], err[2];
	memset(p, 0, sizeof *p);
	p->in_fd = p->out_fd = p->err_fd = -1;
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(in, O_CLOEXEC) < 0)
		goto fail0;
	if (pipe2(out, O_CLOEXEC) < 0)
		goto fail1;
	if (pipe2(err, O_CLOEXEC) < 0)
		goto fail2;
	pid_t pid = fork();
	if (pid < 0)
		goto fail3;
	if (pid == 0)
		child_exec(argv, envp, cwd, in[0], out[1], err[1]);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->pid = pid;
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = err[0];
	/* Our reads poll first, but never block on a pipe that poll called
	 * readable after a racing EOF. */
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
	return 0;
fail3:
	close(err[0]);
	close(err[1]);
fail2:
	close(out[0]);
	close(out[1]);
fail1:
	close(in[0]);
	close(in[1]);
fail0:
	fprintf(stderr, "real_cli_proc: spawn %s: %s\n", argv[0], strerror(errno));
	return -1;
}

int rc_proc_send(struct rc_proc *p, const char *s)
{
	size_t n = strlen(s);
	char *line = malloc(n + 1);
	if (line == NULL || p->in_fd < 0) {
		free(line);
		return -1;
	}
	memcpy(line, s, n);
	line[n++] = '\n';
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(p->in_fd, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "real_cli_proc: write to %d: %s\n", (int)p->pid,
				strerror(errno));
			free(line);
			return -1;
		}
		off += (size_t)w;
	}
	free(line);
	return 0;
}

int rc_proc_send_json(struct rc_proc *p, const cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	int rc = s ? rc_proc_send(p, s) : -1;
	cJSON_free(s);
	return rc;
}

void rc_proc_close_stdin(struct rc_proc *p)
{
	close_fd(&p->in_fd);
}

/* Reads what is there on fd into b; EOF closes fd. */
static void drain_fd(int *fd, struct rc_buf *b)
{
	char chunk[READ_CHUNK];
	while (*fd >= 0) {
		ssize_t r = read(*fd, chunk, sizeof chunk);
		if (r > 0) {
			if (buf_add(b, chunk, (size_t)r) < 0)
				close_fd(fd);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		close_fd(fd);
	}
}

/* Waits up to ms for output on either pipe and reads it. */
static void pump(struct rc_proc *p, int ms)
{
	struct pollfd fds[2] = { { p->out_fd, POLLIN, 0 }, { p->err_fd, POLLIN, 0 } };
	if (p->out_fd < 0 && p->err_fd < 0) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		return;
	}
	if (poll(fds, 2, ms) <= 0)
		return;
	drain_fd(&p->out_fd, &p->out);
	drain_fd(&p->err_fd, &p->err);
}

/* The next whole line of stdout (allocates), or NULL. */
static char *take_line(struct rc_proc *p)
{
	if (p->out.data == NULL || p->out_pos >= p->out.len)
		return NULL;
	char *start = p->out.data + p->out_pos;
	char *nl = memchr(start, '\n', p->out.len - p->out_pos);
	if (nl == NULL)
		return NULL;
	size_t n = (size_t)(nl - start);
	char *line = strndup(start, n);
	p->out_pos += n + 1;
	return line;
}

cJSON *rc_proc_next_json(struct rc_proc *p, int timeout_ms)
{
	int64_t until = now_ms() + timeout_ms;
	for (;;) {
		char *line;
		while ((line = take_line(p)) != NULL) {
			cJSON *j = cJSON_Parse(line);
			free(line);
			if (cJSON_IsObject(j))
				return j;
			cJSON_Delete(j);
		}
		int64_t left = until - now_ms();
		if (left <= 0 || p->out_fd < 0)
			return NULL;
		pump(p, left > 100 ? 100 : (int)left);
	}
}

static bool try_reap(struct rc_proc *p)
{
	if (p->reaped || p->pid <= 0)
		return true;
	pid_t r = waitpid(p->pid, &p->status, WNOHANG);
	if (r == p->pid)
		p->reaped = true;
	return p->reaped;
}

int rc_proc_wait(struct rc_proc *p, int timeout_ms)
{
	int64_t until = now_ms() + timeout_ms;
	while (!try_reap(p)) {
		if (now_ms() >= until)
			return -1;
		pump(p, 20);
	}
	/* Its pipes may outlive it (a grandchild holding them): read what is
	 * there now, never wait for their EOF. */
	drain_fd(&p->out_fd, &p->out);
	drain_fd(&p->err_fd, &p->err);
	return 0;
}

void rc_proc_free(struct rc_proc *p)
{
	if (p->pid > 0 && !p->reaped) {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
			;
		p->reaped = true;
	}
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	free(p->out.data);
	free(p->err.data);
	memset(&p->out, 0, sizeof p->out);
	memset(&p->err, 0, sizeof p->err);
	p->out_pos = 0;
}

int rc_proc_exit_code(const struct rc_proc *p)
{
	if (!p->reaped || !WIFEXITED(p->status))
		return -1;
	return WEXITSTATUS(p->status);
}

/* ---- /proc ---- */

/* Reads /proc/PID/stat into pi; false when the process is gone or a
 * zombie. The comm field may hold spaces and parentheses: parse after the
 * last ')'. */
static bool read_stat(pid_t pid, struct rc_pidinfo *pi)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
	if (lp == NULL || rp == NULL || rp < lp)
		return false;
	size_t cn = (size_t)(rp - lp - 1);
	if (cn >= sizeof pi->comm)
		cn = sizeof pi->comm - 1;
	memcpy(pi->comm, lp + 1, cn);
	pi->comm[cn] = '\0';
	char state;
	int ppid, pgid, sid;
	unsigned long long start;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime cutime cstime priority nice threads itrealvalue start */
	if (sscanf(rp + 2, "%c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &state, &ppid, &pgid, &sid, &start) != 5)
		return false;
	if (state == 'Z' || state == 'X')
		return false;
	pi->pid = pid;
	pi->ppid = ppid;
	pi->pgid = pgid;
	pi->sid = sid;
	pi->start = start;
	return true;
}

/* Calls fn for every live process; stops early when fn returns false. */
static void each_process(bool (*fn)(const struct rc_pidinfo *, void *), void *arg)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		struct rc_pidinfo pi;
		if (*end != '\0' || pid <= 0 || !read_stat((pid_t)pid, &pi))
			continue;
		if (!fn(&pi, arg))
			break;
	}
	closedir(d);
}

struct tree_walk {
	struct rc_pidinfo *out;
	size_t n, max;
	bool grew;
};

static bool in_tree(const struct tree_walk *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->out[i].pid == pid)
			return true;
	return false;
}

static bool tree_add(const struct rc_pidinfo *pi, void *arg)
{
	struct tree_walk *t = arg;
	if (t->n < t->max && in_tree(t, pi->ppid) && !in_tree(t, pi->pid)) {
		t->out[t->n++] = *pi;
		t->grew = true;
	}
	return t->n < t->max;
}

size_t rc_tree(pid_t root, struct rc_pidinfo *out, size_t max)
{
	struct tree_walk t = { out, 0, max, false };
	if (max == 0 || !read_stat(root, &out[0]))
		return 0;
	t.n = 1;
	/* A child may be listed before its parent: walk until nothing new. */
	do {
		t.grew = false;
		each_process(tree_add, &t);
	} while (t.grew && t.n < t.max);
	return t.n;
}

bool rc_pidinfo_alive(const struct rc_pidinfo *pi)
{
	struct rc_pidinfo now;
	return read_stat(pi->pid, &now) && now.start == pi->start;
}

struct count_walk {
	pid_t id;
	int n;
};

static bool count_add(const struct rc_pidinfo *pi, void *arg)
{
	struct count_walk *c = arg;
	if (pi->sid == c->id || pi->pgid == c->id)
		c->n++;
	return true;
}

int rc_count_in_session(pid_t id)
{
	struct count_walk c = { id, 0 };
	each_process(count_add, &c);
	return c.n;
}

bool rc_wait_gone(const struct rc_pidinfo *pis, size_t n, int timeout_ms)
{
	int64_t until = now_ms() + timeout_ms;
	for (;;) {
		bool any = false;
		for (size_t i = 0; i < n && !any; i++)
			any = rc_pidinfo_alive(&pis[i]);
		if (!any)
			return true;
		if (now_ms() >= until)
			return false;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}
