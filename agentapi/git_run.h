/* Running git as a child process (reference/multica-local-api.md 3.7):
 * posix_spawnp without a shell, in a process group of its own, with the
 * caller's environment de-duplicated plus GIT_TERMINAL_PROMPT=0 and
 * safe.directory=* at the next GIT_CONFIG_* index, stdin /dev/null,
 * stdout and stderr captured (bounded), and a deadline enforced through a
 * pidfd: SIGTERM to the group, 1 s grace, then SIGKILL. Leftover group
 * members are SIGKILLed after a normal exit too.
 *
 * As an agent identity (mc_git_run_as, issue 11): fork instead of
 * posix_spawn, and in the child only async-signal-safe steps: the
 * process group, the fds, mc_identity_enter (groups, gid, uid, no
 * capabilities, no new privileges, umask 007), cwd "/", the default
 * signals, execve of the git found on PATH before the fork. A child that
 * could not switch or exec says why through a close-on-exec pipe. Its
 * deadline's signals to another uid need CAP_KILL (multicad's unit has it).
 *
 * Thread-safe. The calling process must not ignore SIGCHLD (the child is
 * reaped with waitpid).
 *
 * Error convention: mc_git_run returns 0 when git exited 0, 1 when it
 * exited otherwise (out->status, out->err hold what it said), -1 when it
 * could not be run or hit its deadline (err says why). */
#ifndef MC_AGENTAPI_GIT_RUN_H
#define MC_AGENTAPI_GIT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_GIT_TIMEOUT_MS (10 * 60 * 1000)  /* per command (reference 5) */
#define MC_GIT_OUT_MAX (64 * 1024)          /* bytes kept per stream */

struct mc_git_out {
	int status;        /* exit status; -1 when killed or not run */
	bool timed_out;
	char *out;         /* stdout, NUL-terminated, owned: mc_git_out_free */
	size_t out_len;
	char *err;         /* stderr, NUL-terminated, owned */
	size_t err_len;
};

/* argv[0] is "git", NULL-terminated. deadline_ms: absolute CLOCK_MONOTONIC
 * ms, <= 0 for the default 10 min; the earlier of it and now + 10 min
 * applies. out may be NULL (output discarded); else the caller frees it
 * with mc_git_out_free, whatever the result. */
int mc_git_run(const char *const *argv, int64_t deadline_ms, struct mc_git_out *out,
	       char *err, size_t err_size);
/* mc_git_run as id when id && id->sw; else exactly mc_git_run. */
struct mc_identity;
int mc_git_run_as(const struct mc_identity *id, const char *const *argv, int64_t deadline_ms,
		  struct mc_git_out *out, char *err, size_t err_size);
void mc_git_out_free(struct mc_git_out *out);

/* The environment git gets: a NULL-terminated array, owned by the caller
 * (mc_git_env_free). One entry per key (the first wins, as getenv does),
 * GIT_TERMINAL_PROMPT=0, GIT_CONFIG_COUNT replaced in place by n + 1 with
 * GIT_CONFIG_KEY_n=safe.directory, GIT_CONFIG_VALUE_n=*. NULL on ENOMEM. */
char **mc_git_env(char *const *base);
void mc_git_env_free(char **env);

/* "git worktree add: <output>: exit status 128" from argv and a result
 * that exited non-zero, into dst. */
void mc_git_describe(const char *const *argv, const struct mc_git_out *out, char *dst,
		     size_t dst_size);

#endif
