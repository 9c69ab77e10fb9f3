/* The isolation tests' shared set-up (issue 11): a daemon whose agents run
 * as another identity, the attacker-mode fake claude (tests/agents/
 * fake_attack.h) run in workspace 1 (A) while workspace 2 (B) runs a
 * sleeper, and the checks of the attacker's report. Root only (the
 * agent_users fixture creates multicad-test-agent). */
#ifndef MC_TEST_ISOLATION_H
#define MC_TEST_ISOLATION_H

#include <stdbool.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "tests/support/daemon_fixture.h"

#define ISO_USER "multicad-test-agent"

struct iso {
	char dir[128];        /* mkdtemp under /tmp, 0711 */
	char bin[200];        /* <dir>/bin, 0755: the fake claude copied here */
	char claude[256];     /* <bin>/claude */
	char root[200];       /* workspaces_root = <dir>/work */
	char release[200];    /* B's sleeper ends once this exists */
	char plan[200];       /* A's attack plan (0644) */
	char b_task[40];      /* B's sleeper task */
	pid_t b_agent;        /* its agent's pid */
	char b_workdir[4096]; /* its cwd */
	char repo_url[300];   /* file:// of a bare repo, B's workspace repo */
	char b_bare[4096];    /* B's repository cache (the bare its checkout made) */
};

extern struct iso ISO;

/* Skips the test unless root; makes ISO's dirs and copies the fake. */
void iso_setup(void);
/* Starts the emulator with 2 workspaces and the daemon with daemon_extra
 * (agent_* keys; workspaces_root and the poll interval are added), the
 * claude built-in being the copied fake, a git repository registered as
 * B's (readable by all, safe.directory = * through GIT_CONFIG_GLOBAL);
 * waits both workspaces ready. The
 * daemon's temp dir is made 0711 (a real /etc/multicad is traversable: the
 * token file's own mode must keep agents out). */
void iso_start(const char *daemon_extra);
/* Queues B's sleeper (which first checks out B's repository: B's cache
 * then exists) and waits for its agent (pid, cwd) and the cache. */
void iso_start_sleeper(void);
/* Releases B's sleeper and asserts it completes. */
void iso_finish_sleeper(void);
/* Writes the plan of every forbidden and allowed action (labels below),
 * plus more lines (may be ""). */
void iso_write_plan(const char *more);
/* Queues A's attack task, waits for it to complete, returns the report the
 * server saw (result.output parsed; caller deletes). id gets the task id. */
cJSON *iso_attack(char id[40]);
/* The result of label in the report (asserted present). */
cJSON *iso_result(const cJSON *report, const char *label);
/* Asserts label failed with EACCES or EPERM (or ENOENT when allow_enoent). */
void iso_assert_denied(const cJSON *report, const char *label, bool allow_enoent);
void iso_assert_allowed(const cJSON *report, const char *label);
/* Asserts every forbidden label of iso_write_plan was denied, every allowed
 * one worked. */
void iso_assert_plan(const cJSON *report);
/* Asserts the daemon token appears in none of the bytes the attacker could
 * read (<cwd>/attack.json's data), and that it did read its own environ. */
void iso_assert_no_token(const cJSON *report);
/* The slot index of ws in <state_dir>/agent-ids, or -1. */
long iso_slot(const char *ws);
/* uid of a process (from /proc/PID/status "Uid:"), or -1. */
long iso_proc_uid(pid_t pid);
/* Runs argv (NULL-terminated) with stdout+stderr into a malloc'd string;
 * *code its exit code (-1: killed after 20 s). */
char *iso_run(const char *const *argv, int *code);
/* The pid of the link process, or 0. */
pid_t iso_link_pid(void);
/* Frees what iso_setup made (the suites' .fini). */
void iso_fini(void);

#endif
