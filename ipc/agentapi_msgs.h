/* The frames between the supervisor and the agent-api process (the
 * agents' local API, agentapi/). The process is a peer like the link:
 * HELLO, CONFIG (workspace_id ""), TOKEN, PING/PONG, STOP/STOPPED, plus:
 *
 *   supervisor -> agent-api  AGENT_TASK   a task's agent runs / ended
 *   agent-api -> supervisor  AGENT_STATUS its figures, every few seconds
 *
 * AGENT_TASK {"event":"running"|"ended","task_id","workspace_id",
 * "agent_id","agent_name","work_dir","token_hash","repos":[{"url","ref"}],
 * "agent_switch","agent_uid","agent_gid","agent_extra_gid"}:
 * "running" carries every field (work_dir absolute, token_hash the
 * 64-hex mc_task_token_hash of the task's token, at most
 * MC_TASK_REPOS_MAX repos); "ended" needs task_id only (the rest may be
 * "" / absent). Never a token value.
 * The workspace's agent identity (common/identity.h; issue 11): the
 * local API runs the task's git as it. agent_switch absent is false (the
 * daemon's own user, uid/gid then ignored and sent as -1); when true,
 * agent_uid and agent_gid are in [1, MC_AGENT_ID_MAX] (never root) and
 * agent_extra_gid is -1 (none) or in that range.
 * AGENT_STATUS {"repo_cache_bytes":N,"checkouts_running":N}.
 *
 * AGENT_TASK may be up to MC_IPC_AGENT_TASK_MAX bytes (64 repos of the
 * longest url and ref, escaped, exceed MC_IPC_MAX_PAYLOAD). TASK_STATE
 * keeps MC_IPC_MAX_PAYLOAD: a worker whose task's repos do not fit sends
 * it without them (EMSGSIZE, worker/task_fsm.c).
 *
 * Error convention as in messages.h (0 / -1 with errno; EPROTO and why in
 * err for a bad payload; EINVAL from a sender given a bad struct). */
#ifndef MC_IPC_AGENTAPI_MSGS_H
#define MC_IPC_AGENTAPI_MSGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/task.h"
#include "ipc/frame.h"
#include "ipc/messages.h"

#define MC_IPC_AGENT_TASK_MAX (256u * 1024u)
#define MC_AGENT_ID_MAX 4294967294L    /* (uid_t)-2: -1 is "none" */

enum mc_agent_event {
	MC_AGENT_RUNNING,
	MC_AGENT_ENDED,
};

struct mc_agent_task {
	enum mc_agent_event event;
	char task_id[40];
	char workspace_id[40];
	char agent_id[40];
	char agent_name[MC_NAME_MAX];
	char work_dir[MC_PATH_MAX];
	char token_hash[MC_TOKEN_HASH_HEX];
	size_t n_repos;
	struct mc_task_repo repos[MC_TASK_REPOS_MAX];
	/* the workspace's agent identity (see above) */
	bool agent_switch;
	long agent_uid, agent_gid;
	long agent_extra_gid;           /* -1: none */
};

struct mc_agent_status {
	uint64_t repo_cache_bytes;
	long checkouts_running;
};

/* What the agent-api process may receive, and what the supervisor's reader
 * of its socket may. */
int mc_ipc_type_ok_for_agentapi(uint16_t type);
int mc_ipc_type_ok_from_agentapi(uint16_t type);

/* True for 64 lowercase hex digits. */
bool mc_ipc_is_token_hash(const char *s);

/* Refuses (EINVAL) what the parser would refuse. */
int mc_ipc_send_agent_task(struct mc_ipc_writer *w, const struct mc_agent_task *t);
int mc_ipc_parse_agent_task(const struct mc_ipc_frame *f, struct mc_agent_task *t,
			    char *err, size_t err_size);
int mc_ipc_send_agent_status(struct mc_ipc_writer *w, const struct mc_agent_status *s);
int mc_ipc_parse_agent_status(const struct mc_ipc_frame *f, struct mc_agent_status *s,
			      char *err, size_t err_size);

#endif
