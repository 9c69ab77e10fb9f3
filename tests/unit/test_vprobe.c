/* Version probes (worker/vprobe.c, also what the supervisor's built-in
 * probes run): a probe that times out leaves no process of its group
 * behind, and a CLI sees a blocking stdout, so a large write before the
 * version cannot fail with EAGAIN. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "worker/vprobe.h"

static char DIR_[64];

static void setup(void)
{
	snprintf(DIR_, sizeof DIR_, "/tmp/mc-vprobe-XXXXXX");
	cr_assert_not_null(mkdtemp(DIR_));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", DIR_);
}

TestSuite(vprobe, .init = setup, .fini = teardown, .timeout = 30);

static void write_script(const char *name, const char *body, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", DIR_, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, 0755), 0);
}

static pid_t read_pid(const char *name)
{
	char path[128], buf[32] = "";
	snprintf(path, sizeof path, "%s/%s", DIR_, name);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	char *end;
	long v = strtol(buf, &end, 10);
	return end != buf && v > 0 ? (pid_t)v : 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Drives c as a loop would until nothing runs or timeout_ms pass. */
static void run_until_idle(struct mc_vprobe_cache *c, long timeout_ms)
{
	mc_ms_t until = mc_now_ms() + timeout_ms;
	while (mc_vprobe_busy(c) && mc_now_ms() < until) {
		struct curl_waitfd fds[8];
		unsigned k = mc_vprobe_waitfds(c, fds, 8);
		struct pollfd p[8];
		for (unsigned i = 0; i < k; i++)
			p[i] = (struct pollfd){ .fd = fds[i].fd, .events = POLLIN };
		poll(p, k, 50);
		mc_vprobe_service(c, mc_now_ms());
	}
}

/* True when no process is left in process group pgid (zombies count as
 * gone: an orphan's zombie is its new parent's to reap). */
/* True when no live (non-zombie) process is left in group pgid. Killed
 * members are reparented to init and stay zombies until it reaps them,
 * which some inits (a container's) do late: a zombie runs nothing, so it
 * does not count. */
static bool group_gone(pid_t pgid)
{
	if (kill(-pgid, 0) < 0 && errno == ESRCH)
		return true;
	/* Reap what was reparented to us, in case we are a subreaper. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	DIR *d = opendir("/proc");
	cr_assert_not_null(d);
	bool live = false;
	struct dirent *de;
	while (!live && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");
		if (f == NULL)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "pid (comm) S ppid pgrp ...": comm may hold anything but ends
		 * at the last ')' */
		const char *rp = strrchr(buf, ')');
		char state;
		long ppid, pgrp;
		if (rp != NULL && sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 &&
		    pgrp == (long)pgid && state != 'Z')
			live = true;
	}
	closedir(d);
	return !live;
}

Test(vprobe, timed_out_wrapper_leaves_no_process_of_its_group)
{
	char path[128], body[512];
	/* A wrapper whose real process hangs, holding the output open. */
	snprintf(body, sizeof body,
		 "echo $$ > '%s/leader.pid'\n"
		 "sleep 300 &\n"
		 "echo $! > '%s/child.pid'\n"
		 "wait\n", DIR_, DIR_);
	write_script("hangs", body, path, sizeof path);
	struct mc_vprobe_cache *c = mc_vprobe_cache_new(700);
	cr_assert_not_null(c);
	const char *v = NULL;
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 0);
	run_until_idle(c, 10000);
	cr_assert_not(mc_vprobe_busy(c), "the probe did not time out");
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 1);
	cr_assert_str_eq(v, "", "a timed-out probe has no version");
	pid_t leader = read_pid("leader.pid"), child = read_pid("child.pid");
	cr_assert_gt(leader, 0);
	cr_assert_gt(child, 0);
	bool gone = false;
	for (int i = 0; i < 100 && !(gone = group_gone(leader)); i++)
		sleep_ms(20);
	if (!gone)
		kill(-leader, SIGKILL); /* do not leak it past the test */
	cr_assert(gone, "process %d of the probe's group %d outlived its timeout", (int)child,
		  (int)leader);
	mc_vprobe_cache_free(c);
}

Test(vprobe, a_large_write_before_the_version_does_not_fail)
{
	char path[128], body[512];
	/* The version, then 200 KB: more than a pipe holds, so a non-blocking
	 * stdout fails with EAGAIN when the reader is a little late. */
	snprintf(body, sizeof body,
		 "echo 3.4.5\n"
		 "head -c 200000 /dev/zero && touch '%s/wrote-all'\n", DIR_);
	write_script("chatty", body, path, sizeof path);
	struct mc_vprobe_cache *c = mc_vprobe_cache_new(10000);
	cr_assert_not_null(c);
	const char *v = NULL;
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 0);
	sleep_ms(300); /* a busy loop: the pipe fills before anyone reads */
	run_until_idle(c, 10000);
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 1);
	cr_assert_str_eq(v, "3.4.5");
	char marker[128];
	snprintf(marker, sizeof marker, "%s/wrote-all", DIR_);
	cr_assert_eq(access(marker, F_OK), 0, "the CLI's write to its stdout failed");
	mc_vprobe_cache_free(c);
}

Test(vprobe, a_forgotten_result_is_probed_again)
{
	char path[128], body[256];
	snprintf(body, sizeof body, "n=$(cat '%s/n' 2>/dev/null || echo 0)\n"
				    "n=$((n + 1)); echo $n > '%s/n'; echo \"v$n\"\n", DIR_, DIR_);
	write_script("counts", body, path, sizeof path);
	struct mc_vprobe_cache *c = mc_vprobe_cache_new(5000);
	cr_assert_not_null(c);
	const char *v = NULL;
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 0);
	run_until_idle(c, 5000);
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 1);
	cr_assert_str_eq(v, "v1");
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 1, "cached: not probed again");
	mc_vprobe_forget(c, path, NULL, 0);
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 0);
	run_until_idle(c, 5000);
	cr_assert_eq(mc_vprobe_get(c, path, NULL, 0, &v), 1);
	cr_assert_str_eq(v, "v2");
	mc_vprobe_cache_free(c);
}

/* A worker's probe of a custom profile (issue 11): as the agent identity,
 * with the environment the worker gives it (never the daemon's own), a
 * bare command found on that environment's PATH by the child. */
static int env_calls;

static char **probe_envp(void *ctx)
{
	env_calls++;
	char **v = calloc(3, sizeof *v);
	cr_assert_not_null(v);
	size_t n = strlen((const char *)ctx) + 6;
	v[0] = malloc(n);
	cr_assert_not_null(v[0]);
	snprintf(v[0], n, "PATH=%s", (const char *)ctx);
	v[1] = strdup("HOME=/agent-home");
	return v;
}

Test(vprobe, runs_as_the_agent_with_its_environment_and_path)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: probes as uid 61970");
	cr_assert_eq(chmod(DIR_, 0755), 0);
	char path[128], pathenv[200];
	write_script("probe-cli", "echo \"$(id -u):$(id -g) $HOME ${SECRET_OF_DAEMON:-none}\"\n",
		     path, sizeof path);
	snprintf(pathenv, sizeof pathenv, "/nonexistent:%s:/usr/bin:/bin", DIR_);
	setenv("SECRET_OF_DAEMON", "leak", 1);
	struct mc_identity as = { .sw = true, .uid = 61970, .gid = 61971, .extra_gid = (gid_t)-1 };
	struct mc_vprobe_cache *c = mc_vprobe_cache_new(5000);
	struct mc_vprobe_runas r = { .as = &as, .env = probe_envp, .ctx = pathenv };
	mc_vprobe_set_runas(c, &r);
	const char *v = NULL;
	cr_assert_eq(mc_vprobe_get(c, "probe-cli", NULL, 0, &v), 0);
	run_until_idle(c, 5000);
	cr_assert_eq(mc_vprobe_get(c, "probe-cli", NULL, 0, &v), 1);
	cr_assert_str_eq(v, "61970:61971 /agent-home none");
	cr_assert_eq(env_calls, 1);
	/* not found on the agent's PATH (the daemon's has it): no version */
	char daemon_only[160], saved[4096];
	snprintf(daemon_only, sizeof daemon_only, "%s/daemon-bin", DIR_);
	cr_assert_eq(mkdir(daemon_only, 0755), 0);
	char only[200];
	snprintf(only, sizeof only, "%s/only-here", daemon_only);
	FILE *f = fopen(only, "w");
	cr_assert_not_null(f);
	fputs("#!/bin/sh\necho 9.9\n", f);
	fclose(f);
	cr_assert_eq(chmod(only, 0755), 0);
	snprintf(saved, sizeof saved, "%s", getenv("PATH") ? getenv("PATH") : "");
	setenv("PATH", daemon_only, 1);
	cr_assert_eq(mc_vprobe_get(c, "only-here", NULL, 0, &v), 0);
	run_until_idle(c, 5000);
	setenv("PATH", saved, 1);
	cr_assert_eq(mc_vprobe_get(c, "only-here", NULL, 0, &v), 1);
	cr_assert_str_eq(v, "");
	mc_vprobe_cache_free(c);
	unsetenv("SECRET_OF_DAEMON");
}
