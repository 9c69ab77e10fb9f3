/* The task frames of the IPC protocol (ipc/messages.h has the framing
 * rules and the other types). Who sends what:
 *
 *   link -> supervisor   SLOTS_REQ, TASK, CLAIM_DONE
 *   supervisor -> link   SLOTS, RUNTIMES, WAKE, TASK_FAIL
 *   supervisor -> worker TASK
 *   worker -> supervisor TASK_STATE
 *
 * Slot before claim: the link asks for slots (SLOTS_REQ), the supervisor
 * grants what is free host-wide (SLOTS, possibly 0), the link claims at
 * most that many, sends each claimed task (TASK) and then CLAIM_DONE with
 * the count, which hands the unused rest of the grant back. The
 * supervisor routes each TASK to the worker hosting its runtime, with a
 * slot index, or sends it back as TASK_FAIL (runtime_offline) for the link
 * to fail at the server. A worker reports every step of a task
 * (TASK_STATE); "ended" frees the slot and wakes the link.
 *
 * TASK is binary-prefixed so that the task token is never a JSON string
 * on either side: u32 token length (big-endian) | token bytes | JSON text
 * {"slot":N,"task":{...}} (the task object without auth_token; slot is -1
 * from the link). Its payload may be up to MC_IPC_TASK_MAX bytes; every
 * other frame stays within MC_IPC_MAX_PAYLOAD.
 *
 * Error convention as in messages.h. */
#ifndef MC_IPC_TASK_MSGS_H
#define MC_IPC_TASK_MSGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/secret.h"
#include "common/task.h"
#include "ipc/frame.h"

#define MC_IPC_TASK_MAX (8u * 1024u * 1024u)
#define MC_TASK_STATE_OUTPUT_MAX 160     /* last_output, bytes */

enum mc_task_state {
	MC_TS_ACCEPTED,      /* the worker has it */
	MC_TS_PREPARING,     /* work dir, brief, env */
	MC_TS_RUNNING,       /* /start answered; the agent runs */
	MC_TS_CANCELLING,    /* the server ended it: stopping the agent */
	MC_TS_REPORTING,     /* terminal call in flight or being retried */
	MC_TS_ENDED,         /* done: the slot is free */
	MC_TS_COUNT,
};
const char *mc_task_state_name(enum mc_task_state s);
/* -1 for an unknown name. */
int mc_task_state_from_name(const char *s);

struct mc_task_state_msg {
	char task_id[40];
	char runtime_id[40];
	enum mc_task_state state;
	int pid;                          /* agent leader, 0 when none */
	int pgid;                         /* agent process group, 0 when none */
	char family[32];                  /* "claude", "codex" */
	char last_output[MC_TASK_STATE_OUTPUT_MAX + 1];
	char outcome[64];                 /* ended: "completed", "failed:<reason>", "cancelled", ... */
	/* state running only, for the agents' local API (optional in the
	 * codec: "" / 0 when absent; sent when token_hash is set) */
	char work_dir[1024];              /* absolute */
	char agent_id[40];
	char agent_name[256];
	char token_hash[MC_TOKEN_HASH_HEX]; /* mc_task_token_hash of the task's token */
	size_t n_repos;
	struct mc_task_repo repos[MC_TASK_REPOS_MAX];
};

/* TASK: queues the frame (the token is copied from its guarded memory
 * straight into the queue, which is wiped when sent). task is printed,
 * not consumed. EMSGSIZE when the frame would exceed MC_IPC_TASK_MAX. */
int mc_ipc_send_task(struct mc_ipc_writer *w, int slot, struct mc_secret *token,
		     const cJSON *task);
/* Forwards a TASK frame received from the link with the slot set, without
 * parsing the task (the supervisor only reads task.id / task.runtime_id
 * through mc_ipc_peek_task). */
int mc_ipc_forward_task(struct mc_ipc_writer *w, const struct mc_ipc_frame *f, int slot);
/* Reads the ids (and the slot) of a TASK frame: 0, or -1 EPROTO. */
int mc_ipc_peek_task(const struct mc_ipc_frame *f, char task_id[40], char runtime_id[40],
		     int *slot, char *err, size_t err_size);
/* Decodes a TASK frame: *task (caller deletes) and *token (caller frees). */
int mc_ipc_parse_task(const struct mc_ipc_frame *f, int *slot, cJSON **task,
		      struct mc_secret **token, char *err, size_t err_size);

int mc_ipc_send_slots_req(struct mc_ipc_writer *w, int want);
int mc_ipc_parse_slots_req(const struct mc_ipc_frame *f, int *want, char *err, size_t err_size);
int mc_ipc_send_slots(struct mc_ipc_writer *w, int grant);
int mc_ipc_parse_slots(const struct mc_ipc_frame *f, int *grant, char *err, size_t err_size);
int mc_ipc_send_claim_done(struct mc_ipc_writer *w, int claimed);
int mc_ipc_parse_claim_done(const struct mc_ipc_frame *f, int *claimed, char *err,
			    size_t err_size);
/* RUNTIMES: the claimable runtime ids of one workspace (n 0: none). */
int mc_ipc_send_runtimes(struct mc_ipc_writer *w, const char *workspace_id, size_t n,
			 const char *const *ids);
/* Allocates *ids (n entries of 40 bytes); caller frees. */
int mc_ipc_parse_runtimes(const struct mc_ipc_frame *f, char workspace_id[40], size_t *n,
			  char (**ids)[40], char *err, size_t err_size);
int mc_ipc_send_wake(struct mc_ipc_writer *w, const char *reason);
int mc_ipc_parse_wake(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
		      char *err, size_t err_size);
/* TASK_FAIL: the link fails this task at the server (reason is a multica
 * failure_reason, error the text). */
int mc_ipc_send_task_fail(struct mc_ipc_writer *w, const char *task_id, const char *runtime_id,
			  const char *reason, const char *error);
int mc_ipc_parse_task_fail(const struct mc_ipc_frame *f, char task_id[40], char runtime_id[40],
			   char *reason, size_t reason_size, char *error, size_t error_size,
			   char *err, size_t err_size);
int mc_ipc_send_task_state(struct mc_ipc_writer *w, const struct mc_task_state_msg *m);
int mc_ipc_parse_task_state(const struct mc_ipc_frame *f, struct mc_task_state_msg *m,
			    char *err, size_t err_size);

#endif
