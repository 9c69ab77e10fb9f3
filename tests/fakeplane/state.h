/* multica-fakeplane: the server-side data model (protocol sections 3 and 9).
 *
 * One mutex guards everything. The lookup and mutation functions below
 * expect the caller to hold it (fp_state_lock), so that one request sees and
 * changes the state as a unit; only fp_state_new/fp_state_free do not.
 * Objects are owned by the state once added; pointers returned by lookups
 * stay valid until the lock is released or the object is removed.
 * Allocation failure aborts (util.h). */
#ifndef FP_STATE_H
#define FP_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tests/fakeplane/util.h"

struct fp_ws_hub;

struct fp_token {
	char *token;
	char *user;
};

struct fp_workspace {
	char id[FP_UUID_LEN + 1];
	char *name;
	struct fp_vec members;          /* char * user ids */
	cJSON *repos;                   /* the repos list the daemon reads; NULL: [] */
	unsigned repos_version;         /* bumped by every change of it */
};

struct fp_profile {
	char id[FP_UUID_LEN + 1];
	char workspace_id[FP_UUID_LEN + 1];
	char *display_name;
	char *protocol_family;
	char *command_name;
	char *description;              /* NULL: JSON null */
	struct fp_vec fixed_args;       /* char * */
	char *visibility;
	bool enabled;
	char *created_by;               /* NULL: JSON null */
	int64_t created_ms, updated_ms;
};

struct fp_runtime {
	char id[FP_UUID_LEN + 1];
	char workspace_id[FP_UUID_LEN + 1];
	char *daemon_id;
	char *name;
	char *provider;
	char profile_id[FP_UUID_LEN + 1]; /* "": built-in row (SQL NULL) */
	bool online;
	char *device_info;
	char *metadata;                 /* JSON object text */
	char *owner_id;                 /* NULL: JSON null */
	int64_t last_seen_ms;           /* 0: never seen (JSON null) */
	int64_t created_ms, updated_ms;
};

/* What the daemon may call on a task, for its per-task call log. */
enum fp_task_op {
	FP_OP_CLAIM, FP_OP_START, FP_OP_STATUS, FP_OP_PROGRESS, FP_OP_MESSAGES,
	FP_OP_SESSION, FP_OP_USAGE, FP_OP_COMPLETE, FP_OP_FAIL, FP_OP_CANCEL_ACK,
	FP_OP_PREPARE_LEASE, FP_OP_WAIT_LOCAL_DIR, FP_OP_RECOVER, FP_OP_COUNT,
};

/* A task row (reference/multica-task-execution.md section 7 "State") and
 * the log of everything the daemon sent for it. */
struct fp_task {
	char id[FP_UUID_LEN + 1];
	char runtime_id[FP_UUID_LEN + 1];
	char workspace_id[FP_UUID_LEN + 1]; /* "": the runtime's, filled at claim */
	char agent_id[FP_UUID_LEN + 1];     /* "": none (old admin form) */
	char *issue_id;                 /* NULL: "" */
	char *status;
	char *failure_reason;           /* NULL: JSON null */
	char *error;                    /* NULL: JSON null */
	char *session_id, *work_dir;    /* NULL: JSON null */
	long attempt, max_attempts;
	int64_t created_ms, completed_ms; /* completed 0: JSON null */
	int64_t dispatched_ms, started_ms, lease_ms; /* 0: JSON null */
	cJSON *result;                  /* the whole /complete body; NULL: null */
	cJSON *extra;                   /* object: agent and every other field given
					   at creation, merged into a claimed task */
	char *fixed_token;              /* test hook: claims hand this, not a fresh one */
	bool token_omitted;             /* test hook: claims carry no auth_token */
	char *auth_token;               /* the last one issued; NULL: none yet */
	cJSON *tokens;                  /* [string]: every auth_token issued */
	cJSON *messages;                /* [{seq, type, tool?, content?, input?, output?}] */
	cJSON *progress;                /* [request bodies] */
	cJSON *sessions;                /* [{session_id?, work_dir?, applied}] */
	cJSON *usage;                   /* [rows], one per provider+model */
	cJSON *calls;                   /* [{op, time, body, status}] in order */
	unsigned counts[FP_OP_COUNT];   /* calls per op */
};

struct fp_state {
	pthread_mutex_t mu;
	struct fp_vec tokens;           /* struct fp_token * */
	struct fp_vec workspaces;       /* struct fp_workspace *, sorted by id */
	struct fp_vec profiles;         /* struct fp_profile *, creation order */
	struct fp_vec runtimes;         /* struct fp_runtime *, creation order */
	struct fp_vec tasks;            /* struct fp_task *, creation order */
	int64_t redeliver_after_ms;     /* a never-started dispatched row older than
					   this, lease expired, is claimed again */
	int64_t lease_ms;               /* prepare lease given by claim / prepare-lease */
	struct fp_ws_hub *ws;           /* websocket pushes (ws.h); NULL: none */
};

/* Allocates an empty state; fp_state_free releases it and all it holds. */
struct fp_state *fp_state_new(void);
void fp_state_free(struct fp_state *st);
void fp_state_lock(struct fp_state *st);
void fp_state_unlock(struct fp_state *st);

/* Object constructors (allocate, zero-filled) and destructors. */
struct fp_workspace *fp_workspace_new(void);
void fp_workspace_free(struct fp_workspace *w);
struct fp_profile *fp_profile_new(void);
/* Allocates a deep copy. */
struct fp_profile *fp_profile_clone(const struct fp_profile *p);
void fp_profile_free(struct fp_profile *p);
struct fp_runtime *fp_runtime_new(void);
void fp_runtime_free(struct fp_runtime *r);
struct fp_task *fp_task_new(void);
void fp_task_free(struct fp_task *t);

/* Lookups (lock held). NULL when absent. IDs are canonical lower case. */
const char *fp_state_user_for_token(struct fp_state *st, const char *token);
struct fp_workspace *fp_state_workspace(struct fp_state *st, const char *id);
bool fp_state_is_member(struct fp_state *st, const char *ws_id, const char *user);
struct fp_profile *fp_state_profile(struct fp_state *st, const char *id);
struct fp_profile *fp_state_profile_by_name(struct fp_state *st, const char *ws_id,
					    const char *display_name);
struct fp_runtime *fp_state_runtime(struct fp_state *st, const char *id);
struct fp_task *fp_state_task(struct fp_state *st, const char *id);

/* Mutations (lock held). The add functions take ownership. */
void fp_state_set_token(struct fp_state *st, const char *token, const char *user);
/* Returns 0, or -1 when the token is unknown. */
int fp_state_remove_token(struct fp_state *st, const char *token);
/* Adds w, or replaces the name and members of the workspace with its id
 * (w is then freed). Returns the stored workspace. */
struct fp_workspace *fp_state_put_workspace(struct fp_state *st, struct fp_workspace *w);
/* Removes the workspace with its profiles and runtime rows (FK cascade).
 * Returns 0, or -1 when absent. */
int fp_state_remove_workspace(struct fp_state *st, const char *id);
void fp_state_add_profile(struct fp_state *st, struct fp_profile *p);
/* Swaps the stored profile with the same id for p (the old one is freed). */
void fp_state_replace_profile(struct fp_state *st, struct fp_profile *p);
/* Removes the profile and every runtime row bound to it, as the server's
 * DeleteRuntimeProfile does. Returns the number of runtime rows deleted, or
 * -1 when the profile is absent. */
int fp_state_remove_profile(struct fp_state *st, const char *id);
void fp_state_add_runtime(struct fp_state *st, struct fp_runtime *r);
/* Returns 0, or -1 when absent. Tasks are left as they are. */
int fp_state_remove_runtime(struct fp_state *st, const char *id);
/* Removes every runtime row at once (a wave of deletions no daemon can
 * observe half-done). Returns how many there were. */
int fp_state_remove_all_runtimes(struct fp_state *st);
/* A row without a workspace_id gets its runtime's, when that exists. */
void fp_state_add_task(struct fp_state *st, struct fp_task *t);
/* Returns 0, or -1 when absent (the row and its log are freed). */
int fp_state_remove_task(struct fp_state *st, const char *id);

/* The row with this upsert identity: (ws, daemon_id, profile_id) when
 * profile_id is non-empty, else (ws, daemon_id, provider) among built-in
 * rows. NULL when absent. */
struct fp_runtime *fp_state_runtime_by_identity(struct fp_state *st, const char *ws_id,
						const char *daemon_id, const char *provider,
						const char *profile_id);
/* Finds the row with that identity or inserts a new one (fresh UUID,
 * offline, created at now_ms). *inserted tells which. */
struct fp_runtime *fp_state_runtime_upsert(struct fp_state *st, const char *ws_id,
					   const char *daemon_id, const char *provider,
					   const char *profile_id, int64_t now_ms, bool *inserted);

/* Fails the runtime's dispatched|running|waiting_local_directory tasks with
 * failure_reason runtime_recovery. Returns how many. */
int fp_state_recover_orphans(struct fp_state *st, const char *runtime_id, int64_t now_ms);
/* Marks online rows whose last_seen is older than stale_ms offline.
 * Returns how many. */
int fp_state_sweep_stale(struct fp_state *st, int64_t now_ms, int64_t stale_ms);

/* True for the task statuses of migration 128. */
bool fp_task_status_valid(const char *s);

/* ---- task rows (task_state.c; lock held) ---- */

/* "claim", "start", ..., "cancel-ack", "recover-orphans". */
const char *fp_task_op_name(enum fp_task_op op);
/* True for completed, failed, cancelled. */
bool fp_task_status_terminal(const char *s);
/* Sets the status; a terminal one stamps completed_at. */
void fp_task_set_status(struct fp_task *t, const char *status, int64_t now_ms);
/* Appends {op, time, body, status} to the call log; takes ownership of
 * body (NULL: JSON null). */
void fp_task_record(struct fp_task *t, enum fp_task_op op, cJSON *body, unsigned status,
		    int64_t now_ms);
/* The workspace the row belongs to: its own, else its runtime's; NULL
 * when neither is known. */
const char *fp_task_workspace(struct fp_state *st, const struct fp_task *t);
/* True when a claim may hand the row out: queued, or dispatched, never
 * started, dispatched at least redeliver_after ago, lease expired. */
bool fp_task_claimable(const struct fp_state *st, const struct fp_task *t, int64_t now_ms);
/* Claims the row: dispatched now, a fresh lease, a fresh "mat_" token
 * (recorded), the workspace filled in from the runtime. */
void fp_task_dispatch(struct fp_state *st, struct fp_task *t, int64_t now_ms);
/* Replaces the usage row with the same provider and model, or appends
 * row; takes ownership of row. */
void fp_task_usage_upsert(struct fp_task *t, cJSON *row);

#endif
