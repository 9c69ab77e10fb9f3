#include "worker/vprobe.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>

#include "common/child.h"
#include "common/log.h"
#include "worker/agent_env.h"
#include "worker/agent_proc.h"

extern char **environ;

struct vprobe {
	char *key;           /* path NUL args... joined with '\n'-free separator */
	char *version;       /* NULL while running */
	pid_t pid;           /* 0 when not running */
	int fd;              /* read end of the output pipe, -1 when closed */
	mc_ms_t deadline;
	size_t used;
	char out[MC_VPROBE_OUTPUT_MAX];
};

struct mc_vprobe_cache {
	mc_ms_t timeout_ms;
	bool runas_set;
	struct mc_vprobe_runas runas;
	size_t n, cap;
	struct vprobe **v;
};

struct mc_vprobe_cache *mc_vprobe_cache_new(mc_ms_t timeout_ms)
{
	struct mc_vprobe_cache *c = calloc(1, sizeof *c);
	if (c != NULL)
		c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	return c;
}

/* Ends a probe: closes its pipe, kills its whole process group and reaps
 * the leader. The output is all we want: whatever lingers (a CLI after
 * closing its output, a wrapper's hung child) is killed, not waited for.
 * The group is killed before the leader is reaped: until then its pid, and
 * so the group id, cannot be reused by an unrelated process. */
static void probe_reap(struct vprobe *p)
{
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	if (p->pid > 0) {
		if (kill(-p->pid, SIGKILL) < 0)
			kill(p->pid, SIGKILL); /* EPERM: a member changed uid; the leader at least */
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		p->pid = 0;
	}
}

void mc_vprobe_cache_free(struct mc_vprobe_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		probe_reap(c->v[i]);
		free(c->v[i]->key);
		free(c->v[i]->version);
		free(c->v[i]);
	}
	free(c->v);
	free(c);
}

void mc_vprobe_parse(const char *output, size_t len, char *out, size_t out_size)
{
	size_t i = 0, n = 0;
	out[0] = '\0';
	/* skip blank lines and leading blanks */
	while (i < len && (output[i] == '\n' || output[i] == '\r' || output[i] == ' ' ||
			   output[i] == '\t'))
		i++;
	for (; i < len && output[i] != '\n' && output[i] != '\r' && n + 1 < out_size; i++) {
		unsigned char ch = (unsigned char)output[i];
		out[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	out[n] = '\0';
}

static char *make_key(const char *path, char *const *args, size_t n_args)
{
	size_t len = strlen(path) + 1;
	for (size_t i = 0; i < n_args; i++)
		len += strlen(args[i]) + 1;
	char *key = malloc(len);
	if (key == NULL)
		return NULL;
	/* 0x1f between parts: args are NUL-free text, and the key is only ever
	 * compared, never split, so a collision needs identical argv. */
	size_t off = strlcpy(key, path, len);
	for (size_t i = 0; i < n_args; i++) {
		key[off++] = 0x1f;
		off += strlcpy(key + off, args[i], len - off);
	}
	return key;
}

static struct vprobe *find(const struct mc_vprobe_cache *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i]->key, key) == 0)
			return c->v[i];
	return NULL;
}

void mc_vprobe_set_runas(struct mc_vprobe_cache *c, const struct mc_vprobe_runas *r)
{
	c->runas_set = r != NULL;
	if (r != NULL)
		c->runas = *r;
}

bool mc_vprobe_owns(const struct mc_vprobe_cache *c, pid_t pid)
{
	for (size_t i = 0; c != NULL && i < c->n; i++)
		if (c->v[i]->pid == pid)
			return true;
	return false;
}

/* The child of a probe as the agent identity: async-signal-safe only. */
__attribute__((noreturn)) static void probe_child(const struct mc_identity *as, int out_w,
						  char *const *argv, char *const *envp)
{
	setpgid(0, 0);
	mc_child_reset_signals();
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out_w, STDOUT_FILENO) < 0 ||
	    dup2(out_w, STDERR_FILENO) < 0)
		_exit(127);
	closefrom(3);
	if (as != NULL && mc_identity_enter(as) < 0)
		_exit(126); /* nothing on stdout: the probe's version is "" */
	mc_agent_execve(argv[0], argv, envp);
	_exit(127);
}

/* Forks the probe as the cache's identity. 0, or -1 with errno. */
static int fork_probe(struct mc_vprobe_cache *c, struct vprobe *p, char **argv, int out_w)
{
	char **envp = c->runas.env != NULL ? c->runas.env(c->runas.ctx) : NULL;
	if (envp == NULL) {
		errno = ENOMEM;
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		probe_child(c->runas.as, out_w, argv, envp);
	int e = errno;
	mc_agent_env_free(envp);
	if (pid < 0) {
		errno = e;
		return -1;
	}
	setpgid(pid, pid); /* both sides: a kill of the group never races the child's */
	p->pid = pid;
	return 0;
}

static int spawn_probe(struct mc_vprobe_cache *c, struct vprobe *p, const char *path,
		       char *const *args, size_t n_args)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	/* Only our end is non-blocking: the CLI's stdout is an ordinary one
	 * (a large write must block, not fail with EAGAIN). */
	if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		errno = e;
		return -1;
	}
	char **argv = calloc(n_args + 3, sizeof *argv);
	posix_spawn_file_actions_t fa;
	int rc = -1;
	if (argv == NULL || posix_spawn_file_actions_init(&fa) != 0) {
		free(argv);
		close(pipefd[0]);
		close(pipefd[1]);
		errno = ENOMEM;
		return -1;
	}
	argv[0] = (char *)path;
	for (size_t i = 0; i < n_args; i++)
		argv[i + 1] = args[i];
	argv[n_args + 1] = (char *)"--version";
	if (c->runas_set) {
		posix_spawn_file_actions_destroy(&fa);
		rc = fork_probe(c, p, argv, pipefd[1]);
		int e = errno;
		free(argv);
		close(pipefd[1]);
		if (rc < 0)
			close(pipefd[0]);
		else
			p->fd = pipefd[0];
		errno = e;
		return rc;
	}
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_t attr;
	posix_spawnattr_init(&attr);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					       POSIX_SPAWN_SETPGROUP);
	int err = posix_spawn(&p->pid, path, &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	close(pipefd[1]);
	if (err != 0) {
		close(pipefd[0]);
		p->pid = 0;
		errno = err;
	} else {
		p->fd = pipefd[0];
		rc = 0;
	}
	return rc;
}

static struct vprobe *add_entry(struct mc_vprobe_cache *c, char *key)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4;
		struct vprobe **nv = realloc(c->v, cap * sizeof *nv);
		if (nv == NULL)
			return NULL;
		c->v = nv;
		c->cap = cap;
	}
	struct vprobe *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->key = key;
	p->fd = -1;
	c->v[c->n++] = p;
	return p;
}

int mc_vprobe_get(struct mc_vprobe_cache *c, const char *path, char *const *args,
		  size_t n_args, const char **version)
{
	char *key = make_key(path, args, n_args);
	if (key == NULL)
		return -1;
	struct vprobe *p = find(c, key);
	if (p != NULL) {
		free(key);
		if (p->version == NULL)
			return 0;
		*version = p->version;
		return 1;
	}
	p = add_entry(c, key);
	if (p == NULL) {
		free(key);
		return -1;
	}
	if (spawn_probe(c, p, path, args, n_args) < 0) {
		int e = errno;
		mc_log(MC_LOG_WARN, "version probe could not start", "path", path,
		       "error", strerror(e), NULL);
		p->version = strdup("");
		*version = p->version ? p->version : "";
		errno = e;
		return -1;
	}
	p->deadline = mc_now_ms() + c->timeout_ms;
	return 0;
}

bool mc_vprobe_busy(const struct mc_vprobe_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i]->version == NULL)
			return true;
	return false;
}

unsigned mc_vprobe_waitfds(const struct mc_vprobe_cache *c, struct curl_waitfd *fds,
			   unsigned max)
{
	unsigned k = 0;
	for (size_t i = 0; i < c->n && k < max; i++) {
		if (c->v[i]->fd >= 0)
			fds[k++] = (struct curl_waitfd){ .fd = c->v[i]->fd, .events = CURL_WAIT_POLLIN };
	}
	return k;
}

/* Reads what the pipe has; returns true at EOF. */
static bool drain(struct vprobe *p)
{
	char scratch[512];
	for (;;) {
		char *dst = p->used < sizeof p->out ? p->out + p->used : scratch;
		size_t room = p->used < sizeof p->out ? sizeof p->out - p->used : sizeof scratch;
		ssize_t r = read(p->fd, dst, room);
		if (r > 0) {
			if (dst != scratch)
				p->used += (size_t)r;
			continue;
		}
		if (r == 0)
			return true;
		if (errno == EINTR)
			continue;
		return errno != EAGAIN && errno != EWOULDBLOCK;
	}
}

static void finish(struct vprobe *p, bool timed_out)
{
	probe_reap(p);
	char v[128];
	mc_vprobe_parse(p->out, p->used, v, sizeof v);
	if (timed_out) {
		v[0] = '\0';
		mc_log(MC_LOG_WARN, "version probe timed out", "probe", p->key, NULL);
	}
	p->version = strdup(v);
	if (p->version == NULL)
		p->version = strdup("");
}

bool mc_vprobe_service(struct mc_vprobe_cache *c, mc_ms_t now)
{
	bool any = false;
	for (size_t i = 0; i < c->n; i++) {
		struct vprobe *p = c->v[i];
		if (p->version != NULL || p->fd < 0)
			continue;
		if (drain(p)) {
			finish(p, false);
			any = true;
		} else if (now >= p->deadline) {
			finish(p, true);
			any = true;
		}
	}
	return any;
}

mc_ms_t mc_vprobe_next_deadline(const struct mc_vprobe_cache *c)
{
	mc_ms_t best = -1;
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i]->version == NULL && (best < 0 || c->v[i]->deadline < best))
			best = c->v[i]->deadline;
	return best;
}

void mc_vprobe_forget(struct mc_vprobe_cache *c, const char *path, char *const *args,
		      size_t n_args)
{
	char *key = make_key(path, args, n_args);
	if (key == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->v[i]->key, key) != 0)
			continue;
		probe_reap(c->v[i]);
		free(c->v[i]->key);
		free(c->v[i]->version);
		free(c->v[i]);
		c->v[i] = c->v[--c->n];
		break;
	}
	free(key);
}

void mc_vprobe_abort(struct mc_vprobe_cache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->v[i]->version == NULL) {
			probe_reap(c->v[i]);
			/* Not cached: an aborted probe says nothing about the CLI. */
			free(c->v[i]->key);
			free(c->v[i]);
			c->v[i] = c->v[--c->n];
			i--;
		}
	}
}
