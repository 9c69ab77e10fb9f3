/* Test support: the real agent CLIs and our fake model APIs (see the
 * header). */
#include "tests/support/real_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bsd/string.h>

#ifndef MC_AGENTS_DIR
#error "MC_AGENTS_DIR must be defined (tests/CMakeLists.txt): tests/agents"
#endif
#ifndef REAL_CLI_INSTALL
#error "REAL_CLI_INSTALL must be defined (tests/CMakeLists.txt): scripts/install-agent-clis.sh"
#endif
#ifndef REAL_CLI_STATE
#error "REAL_CLI_STATE must be defined (tests/CMakeLists.txt): the install fixture's state file"
#endif

#define FAKE_START_MS 15000
#define FAKE_STOP_MS 5000
#define INSTALL_TIMEOUT_S "900"
#define ENV_MAX 24

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the installed CLIs ---- */

static enum rc_avail from_bin_dir(struct rc_clis *out, const char *dir, char *why, size_t n)
{
	strlcpy(out->bin_dir, dir, sizeof out->bin_dir);
	snprintf(out->claude, sizeof out->claude, "%s/claude", dir);
	snprintf(out->codex, sizeof out->codex, "%s/codex", dir);
	if (access(out->claude, X_OK) < 0 || access(out->codex, X_OK) < 0) {
		snprintf(why, n, "no executable claude and codex in %s", dir);
		return RC_BROKEN;
	}
	return RC_READY;
}

/* Reads a whole small file (allocates), NULL when absent. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The state file: "ready DIR" | "no-registry MESSAGE" | "failed MESSAGE". */
static enum rc_avail from_state(struct rc_clis *out, char *text, char *why, size_t n)
{
	text[strcspn(text, "\n")] = '\0';
	char *sp = strchr(text, ' ');
	const char *arg = sp ? sp + 1 : "";
	if (sp)
		*sp = '\0';
	if (strcmp(text, "ready") == 0)
		return from_bin_dir(out, arg, why, n);
	if (strcmp(text, "no-registry") == 0) {
		snprintf(why, n, "the npm registry cannot be reached, so the real claude "
			 "and codex CLIs are not installed (%s)", arg);
		return RC_NO_REGISTRY;
	}
	snprintf(why, n, "installing the real CLIs failed: %s", arg);
	return RC_BROKEN;
}

/* No state file: run the installer ourselves and read its answer. */
static enum rc_avail run_installer(struct rc_clis *out, char *why, size_t n)
{
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof cmd, "timeout " INSTALL_TIMEOUT_S " sh '%s'", REAL_CLI_INSTALL);
	FILE *p = popen(cmd, "re");
	if (p == NULL) {
		snprintf(why, n, "cannot run %s: %s", REAL_CLI_INSTALL, strerror(errno));
		return RC_BROKEN;
	}
	char line[PATH_MAX] = "";
	char *got = fgets(line, sizeof line, p);
	int st = pclose(p);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		snprintf(why, n, "the npm registry cannot be reached, so the real claude and "
			 "codex CLIs are not installed (%s exited 77)", REAL_CLI_INSTALL);
		return RC_NO_REGISTRY;
	}
	if (got == NULL || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(why, n, "%s failed (status %d); its stderr is above", REAL_CLI_INSTALL, st);
		return RC_BROKEN;
	}
	line[strcspn(line, "\n")] = '\0';
	return from_bin_dir(out, line, why, n);
}

enum rc_avail rc_find(struct rc_clis *out, char *why, size_t why_size)
{
	memset(out, 0, sizeof *out);
	why[0] = '\0';
	const char *env = getenv("MC_AGENT_CLI_BIN");
	if (env != NULL && *env != '\0')
		return from_bin_dir(out, env, why, why_size);
	char *state = slurp(REAL_CLI_STATE);
	if (state != NULL) {
		enum rc_avail a = from_state(out, state, why, why_size);
		bool ready = strncmp(state, "ready", 5) == 0;
		free(state);
		/* A stale "ready" (the cache was removed since): install again. */
		if (a != RC_BROKEN || !ready)
			return a;
	}
	return run_installer(out, why, why_size);
}

/* ---- the fake model APIs ---- */

/* Reads "PORT n\n" from fd within the start timeout. */
static int read_port(int fd)
{
	char buf[128];
	size_t got = 0;
	int64_t until = mono_ms() + FAKE_START_MS;
	while (got < sizeof buf - 1) {
		int left = (int)(until - mono_ms());
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -1;
		ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
		buf[got] = '\0';
		char *nl = strchr(buf, '\n');
		if (nl != NULL) {
			char *end;
			if (strncmp(buf, "PORT ", 5) != 0)
				return -1;
			long port = strtol(buf + 5, &end, 10);
			return (end == nl && port > 0 && port < 65536) ? (int)port : -1;
		}
	}
	return -1;
}

static void fake_child(const char *script, const char *log, int in, int out)
{
	const char *argv[] = { "python3", script, "--port", "0", "--log", log, "--parent-pipe",
			       NULL };
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(126);
	closefrom(3);
	signal(SIGPIPE, SIG_DFL);
	execvp("python3", (char *const *)argv);
	_exit(127);
}

int rc_fake_start(struct rc_fake *f, enum rc_api api, const char *dir)
{
	const char *name = api == RC_API_ANTHROPIC ? "anthropic" : "openai";
	char script[PATH_MAX];
	int in[2], out[2];
	memset(f, 0, sizeof *f);
	f->pipe_fd = -1;
	snprintf(script, sizeof script, "%s/fake_%s_api.py", MC_AGENTS_DIR, name);
	snprintf(f->log, sizeof f->log, "%s/%s-requests.jsonl", dir, name);
	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0)
		fake_child(script, f->log, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		fprintf(stderr, "real_cli: fork: %s\n", strerror(errno));
		close(in[1]);
		close(out[0]);
		return -1;
	}
	f->pid = pid;
	f->pipe_fd = in[1];
	f->port = read_port(out[0]);
	close(out[0]);  /* it prints nothing after the port */
	if (f->port < 0) {
		fprintf(stderr, "real_cli: %s gave no \"PORT n\" line\n", script);
		rc_fake_stop(f);
		return -1;
	}
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
	return 0;
}

void rc_fake_stop(struct rc_fake *f)
{
	if (f->pipe_fd >= 0)
		close(f->pipe_fd);
	f->pipe_fd = -1;
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	int64_t until = mono_ms() + FAKE_STOP_MS;
	int st;
	while (waitpid(f->pid, &st, WNOHANG) == 0) {
		if (mono_ms() >= until) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &st, 0);
			break;
		}
		nap_ms(10);
	}
	f->pid = 0;
}

cJSON *rc_fake_requests(const struct rc_fake *f)
{
	cJSON *arr = cJSON_CreateArray();
	char *text = slurp(f->log);
	if (text == NULL)
		return arr;  /* no request yet: the log is created on the first */
	/* Whole lines only: the fake writes each with one write(2). */
	for (char *line = text, *next; arr != NULL && *line; line = next) {
		next = strchr(line, '\n');
		if (next == NULL)
			break;
		*next++ = '\0';
		if (*line == '\0')
			continue;
		cJSON *j = cJSON_Parse(line);
		if (j == NULL) {
			cJSON_Delete(arr);
			arr = NULL;
			break;
		}
		cJSON_AddItemToArray(arr, j);
	}
	free(text);
	return arr;
}

int rc_fake_count(const struct rc_fake *f, const char *method, const char *path)
{
	cJSON *arr = rc_fake_requests(f);
	const cJSON *r;
	int n = 0;
	cJSON_ArrayForEach(r, arr) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(r, "method"));
		const char *p = cJSON_GetStringValue(cJSON_GetObjectItem(r, "path"));
		size_t plen = strlen(path);
		if (m && p && strcmp(m, method) == 0 && strncmp(p, path, plen) == 0 &&
		    (p[plen] == '\0' || p[plen] == '?'))
			n++;
	}
	cJSON_Delete(arr);
	return n;
}

/* ---- a throw-away home ---- */

static int sub_dir(char *out, size_t size, const char *root, const char *name)
{
	int n = snprintf(out, size, "%s/%s", root, name);
	if (n < 0 || (size_t)n >= size || mkdir(out, 0700) < 0) {
		fprintf(stderr, "real_cli: mkdir %s/%s: %s\n", root, name, strerror(errno));
		return -1;
	}
	return 0;
}

int rc_sandbox_new(struct rc_sandbox *s)
{
	const char *tmp = getenv("TMPDIR");
	memset(s, 0, sizeof *s);
	snprintf(s->root, sizeof s->root, "%s/mc-real-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(s->root) == NULL) {
		fprintf(stderr, "real_cli: mkdtemp %s: %s\n", s->root, strerror(errno));
		s->root[0] = '\0';
		return -1;
	}
	if (sub_dir(s->home, sizeof s->home, s->root, "home") < 0 ||
	    sub_dir(s->codex_home, sizeof s->codex_home, s->root, "codex-home") < 0 ||
	    sub_dir(s->work, sizeof s->work, s->root, "work") < 0 ||
	    sub_dir(s->tmp, sizeof s->tmp, s->root, "tmp") < 0) {
		rc_sandbox_free(s);
		return -1;
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void rc_sandbox_free(struct rc_sandbox *s)
{
	if (s->root[0] != '\0')
		nftw(s->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	s->root[0] = '\0';
}

int rc_codex_home_seed(const char *codex_home, const struct rc_fake *openai)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/config.toml", codex_home);
	FILE *f = fopen(path, "we");
	if (f == NULL) {
		fprintf(stderr, "real_cli: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* gpt-5.5 is in codex's model catalog (an unknown slug adds a warning
	 * item); the built-in "openai" provider cannot be redefined and would
	 * try a websocket first, so a provider of our own. */
	fprintf(f, "model = \"gpt-5.5\"\n"
		   "model_provider = \"fake\"\n"
		   "check_for_update_on_startup = false\n\n"
		   "[analytics]\nenabled = false\n\n"
		   "[features]\nplugins = false\n\n"
		   "[model_providers.fake]\n"
		   "name = \"fake\"\n"
		   "base_url = \"%s/v1\"\n"
		   "env_key = \"FAKE_OPENAI_API_KEY\"\n"
		   "wire_api = \"responses\"\n"
		   "request_max_retries = 0\n"
		   "stream_max_retries = 0\n",
		openai->url);
	if (fclose(f) != 0) {
		fprintf(stderr, "real_cli: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- environments ---- */

/* Appends "name=value" (allocates) to env (ENV_MAX slots, NULL-terminated). */
static int env_add(char **env, const char *name, const char *value)
{
	size_t i = 0;
	while (env[i] != NULL)
		i++;
	if (i + 1 >= ENV_MAX || asprintf(&env[i], "%s=%s", name, value) < 0) {
		env[i] = NULL;
		return -1;
	}
	env[i + 1] = NULL;
	return 0;
}

static int add_fake_vars(char **env, const struct rc_sandbox *s, const struct rc_fake *ant,
			 const struct rc_fake *oai)
{
	int rc = env_add(env, "HOME", s->home) | env_add(env, "TMPDIR", s->tmp);
	if (ant != NULL) {
		rc |= env_add(env, "ANTHROPIC_BASE_URL", ant->url);
		rc |= env_add(env, "ANTHROPIC_API_KEY", "sk-test-fake");
		/* Else claude calls api.anthropic.com for bootstrap and metrics. */
		rc |= env_add(env, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
		/* Else 10 retries with backoff, even for a 401 (> 90 s). */
		rc |= env_add(env, "CLAUDE_CODE_MAX_RETRIES", "0");
		/* As root claude refuses bypassPermissions without it. */
		if (geteuid() == 0)
			rc |= env_add(env, "IS_SANDBOX", "1");
	}
	if (oai != NULL) {
		rc |= env_add(env, "CODEX_HOME", s->codex_home);
		rc |= env_add(env, "FAKE_OPENAI_API_KEY", "sk-test-fake");
	}
	return rc;
}

char **rc_fake_env(const struct rc_sandbox *s, const struct rc_fake *anthropic,
		   const struct rc_fake *openai)
{
	char **env = calloc(ENV_MAX, sizeof *env);
	if (env == NULL || add_fake_vars(env, s, anthropic, openai) != 0) {
		rc_env_free(env);
		return NULL;
	}
	return env;
}

char **rc_cli_env(const struct rc_clis *clis, const struct rc_sandbox *s,
		  const struct rc_fake *anthropic, const struct rc_fake *openai)
{
	char path[PATH_MAX + 64];
	char **env = calloc(ENV_MAX, sizeof *env);
	snprintf(path, sizeof path, "%s:/usr/local/bin:/usr/bin:/bin", clis->bin_dir);
	if (env == NULL || env_add(env, "PATH", path) != 0 ||
	    env_add(env, "LANG", "C.UTF-8") != 0 ||
	    add_fake_vars(env, s, anthropic, openai) != 0) {
		rc_env_free(env);
		return NULL;
	}
	return env;
}

void rc_env_free(char **env)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

int rc_providers_config(const struct rc_clis *clis, char *buf, size_t size)
{
	int n = snprintf(buf, size, "claude = %s\ncodex = %s\n", clis->claude, clis->codex);
	return (n < 0 || (size_t)n >= size) ? -1 : 0;
}
