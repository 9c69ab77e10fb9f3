/* The repository cache under a burst (issue 15's figure "20 tasks checking
 * out the same repository at once: one fetch"): a checkout whose request
 * arrived before the last good fetch began does not fetch again
 * (mc_checkout_req.arrived_ms), even with the fresh window off (fetch on
 * every checkout, as multica does); a request that arrives later does. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentapi/repocache.h"
#include "common/clock.h"

#define WS     "ws1"
#define BURST  8

extern char **environ;

static char root[128];
static char url[512];
static struct mc_repocache *rc;

static int run(const char *const *argv)
{
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ) != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void setup(void)
{
	char home[256], seed[256], bare[256], wsroot[256], err[512];
	snprintf(root, sizeof root, "/tmp/mc-rcburst-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	snprintf(home, sizeof home, "%s/home", root);
	snprintf(seed, sizeof seed, "%s/seed", root);
	snprintf(bare, sizeof bare, "%s/src.git", root);
	snprintf(wsroot, sizeof wsroot, "%s/ws", root);
	cr_assert_eq(mkdir(home, 0700), 0);
	setenv("HOME", home, 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	const char *init[] = { "git", "init", "-q", "-b", "main", seed, NULL };
	const char *commit[] = { "git", "-C", seed, "-c", "user.name=t", "-c", "user.email=t@t",
				 "commit", "-q", "--allow-empty", "-m", "one", NULL };
	const char *clone[] = { "git", "clone", "-q", "--bare", seed, bare, NULL };
	cr_assert_eq(run(init), 0);
	cr_assert_eq(run(commit), 0);
	cr_assert_eq(run(clone), 0);
	snprintf(url, sizeof url, "file://%s", bare);
	rc = mc_repocache_new(wsroot, err, sizeof err);
	cr_assert_not_null(rc, "%s", err);
	const char *urls[] = { url };
	cr_assert_eq(mc_repocache_sync(rc, WS, 1, urls, mc_now_ms() + 60000, err, sizeof err), 0,
		     "%s", err);
	mc_repocache_set_fresh_ms(rc, 0); /* every checkout would fetch */
}

static void teardown(void)
{
	mc_repocache_free(rc);
	rc = NULL;
	const char *rm[] = { "rm", "-rf", root, NULL };
	run(rm);
}

struct job {
	int i;
	int64_t arrived;
	enum mc_checkout_outcome out;
	char err[512];
};

static enum mc_checkout_outcome checkout(int i, int64_t arrived, char *err, size_t es)
{
	char task[64], wd[256];
	snprintf(task, sizeof task, "0198c3a2-7b4e-7c1d-9f3a-%012d", i);
	snprintf(wd, sizeof wd, "%s/wd%d", root, i);
	if (mkdir(wd, 0700) < 0 && errno != EEXIST)
		return MC_CO_ERROR;
	struct mc_checkout_req q = {
		.workspace_id = WS, .url = url, .workdir = wd, .task_id = task,
		.agent_name = "Burst", .deadline_ms = mc_now_ms() + 60000, .arrived_ms = arrived,
	};
	struct mc_checkout_res *res = calloc(1, sizeof *res);
	if (res == NULL)
		return MC_CO_ERROR;
	enum mc_checkout_outcome out = mc_repocache_checkout(rc, &q, res, err, es);
	free(res);
	return out;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	j->out = checkout(j->i, j->arrived, j->err, sizeof j->err);
	return NULL;
}

static void nap_ms(long ms)
{
	struct timespec t = { .tv_sec = 0, .tv_nsec = ms * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

Test(repocache_burst, one_fetch_for_requests_that_arrived_together, .init = setup,
     .fini = teardown, .timeout = 120)
{
	int64_t arrived = mc_now_ms();
	nap_ms(5); /* the burst's first fetch begins strictly after it arrived */
	int64_t f0 = mc_repocache_fetch_count(rc);
	struct job jobs[BURST];
	pthread_t th[BURST];
	for (int i = 0; i < BURST; i++) {
		jobs[i] = (struct job){ .i = i + 1, .arrived = arrived };
		cr_assert_eq(pthread_create(&th[i], NULL, job_main, &jobs[i]), 0);
	}
	for (int i = 0; i < BURST; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(jobs[i].out, MC_CO_OK, "checkout %d: %s", i, jobs[i].err);
	}
	cr_expect_eq(mc_repocache_fetch_count(rc) - f0, 1, "fetches: %lld",
		     (long long)(mc_repocache_fetch_count(rc) - f0));
}

Test(repocache_burst, a_request_after_the_fetch_began_fetches_again, .init = setup,
     .fini = teardown, .timeout = 120)
{
	char err[512];
	int64_t f0 = mc_repocache_fetch_count(rc);
	cr_assert_eq(checkout(1, 0, err, sizeof err), MC_CO_OK, "%s", err);
	nap_ms(5);
	cr_assert_eq(checkout(2, 0, err, sizeof err), MC_CO_OK, "%s", err);
	cr_expect_eq(mc_repocache_fetch_count(rc) - f0, 2);
}
