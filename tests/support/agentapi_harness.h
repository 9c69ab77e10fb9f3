/* Test support: play the supervisor's side of the agent-api process (it
 * runs in a forked child exactly as the supervisor starts it:
 * mc_agentapi_main on a socketpair end and a listening socket bound on
 * 127.0.0.1:0), and an HTTP client that sends what the multica CLI sends
 * (reference multica-local-api.md section 4). Parent side only. */
#ifndef MC_TEST_AGENTAPI_HARNESS_H
#define MC_TEST_AGENTAPI_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc/agentapi_msgs.h"
#include "ipc/frame.h"

struct ah_opts {
	const char *server_url;         /* the fakeplane */
	const char *token;              /* the daemon token */
	const char *workspaces_root;    /* NULL: none (repo cache not initialized) */
	const char *daemon_id;          /* default "test-daemon" */
	const char *device_name;        /* default "testhost" */
	/* > 0 (tests run as root): the process runs as this uid and gid with
	 * CAP_SETUID, CAP_SETGID and CAP_KILL only, as the unit's ambient
	 * capabilities give multicad (issue 11). 0: the test's own. */
	long daemon_uid, daemon_gid;
};

struct ah {
	pid_t pid;
	int fd;
	int port;                       /* the local API's */
	struct mc_ipc_reader rd;
	struct mc_ipc_writer wr;
	unsigned n_status;
	struct mc_agent_status status;  /* the last AGENT_STATUS */
	uint64_t last_pong;
	bool got_pong, stopped, exited;
	int wstatus;
};

/* In a child of a root test: becomes uid/gid with CAP_SETUID, CAP_SETGID
 * and CAP_KILL only (what multicad has). 0 or -1 with errno. */
int ah_become_daemon(long uid, long gid);
/* Binds, forks the process, completes the handshake. 0 or -1. */
int ah_start(struct ah *h, const struct ah_opts *o);
/* Reads and records frames for up to timeout_ms. */
void ah_pump(struct ah *h, int timeout_ms);
/* Ping and wait for the pong; the round trip in ms or -1. */
long ah_ping(struct ah *h, uint64_t seq, int timeout_ms);
/* An AGENT_TASK "running" for the task, its token's hash computed here. */
int ah_task_running(struct ah *h, const char *task_id, const char *ws, const char *agent_name,
		    const char *work_dir, const char *token, size_t n_repos,
		    const struct mc_task_repo *repos);
/* The same with the workspace's agent identity (uid, gid > 0: switched;
 * extra_gid -1: none). */
int ah_task_running_as(struct ah *h, const char *task_id, const char *ws, const char *agent_name,
		       const char *work_dir, const char *token, size_t n_repos,
		       const struct mc_task_repo *repos, long uid, long gid, long extra_gid);
int ah_task_ended(struct ah *h, const char *task_id);
/* STOP, then STOPPED and the exit; the exit code or -1. */
int ah_stop(struct ah *h, int timeout_ms);
void ah_free(struct ah *h);

/* One HTTP answer. */
struct ah_resp {
	long status;                    /* -1: transport error */
	char *body;                     /* malloc'd */
	char content_type[128];
	char nosniff[32];               /* X-Content-Type-Options */
	char retryable[32];             /* X-Multica-Retryable */
	char retry_after[32];
	double seconds;                 /* the whole exchange */
};
void ah_resp_free(struct ah_resp *r);

/* method path on the local API; bearer NULL: no Authorization header;
 * body NULL: none. */
void ah_http(const struct ah *h, const char *method, const char *path, const char *bearer,
	     const char *body, struct ah_resp *out);

/* The CLI's body: every key, alphabetical order (Go marshals a map). */
struct ah_checkout {
	const char *agent_name, *checkout_mode, *ref, *task_id, *url, *workdir, *workspace_id;
	bool retry_busy;
};
char *ah_checkout_body(const struct ah_checkout *c); /* malloc'd */

#endif
