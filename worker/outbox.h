/* The terminal reports of a workspace's tasks on disk, so that nothing
 * finished is lost: a report is written (fsync, rename, dir fsync) before
 * it is sent and removed after a 2xx; whoever runs next (the restarted
 * worker, or the supervisor's cleanup of a dead one) delivers what is left.
 *
 *   <state_dir>/outbox/<workspace_id>/<task_id>.json   0600, dirs 0700
 *   {"op":"complete"|"fail"|"cancel-ack","task_id":..,"runtime_id":..,
 *    "body":<the exact JSON body of the call>,"attempts":n,"created_at":ms}
 *
 * The read side (list, read) needs nothing of the worker's state, and
 * blocks only on the local disk.
 *
 * Error convention: 0, or -1 with errno (and a reason in err where there
 * is one); builders return a malloc'd string or NULL (ENOMEM). */
#ifndef MC_WORKER_OUTBOX_H
#define MC_WORKER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_OUTBOX_FILE_MAX   (16u << 20)  /* a bigger file is refused as corrupt */
#define MC_OUTBOX_OUTPUT_MAX (8u << 20)   /* complete "output" is cut to this */
#define MC_OUTBOX_LIST_MAX   4096         /* entries returned by one listing */

enum mc_outbox_op {
	MC_OUTBOX_COMPLETE,
	MC_OUTBOX_FAIL,
	MC_OUTBOX_CANCEL_ACK,
};

struct mc_outbox_entry {
	enum mc_outbox_op op;
	char task_id[40];
	char runtime_id[40];
	char *body;              /* malloc'd JSON text, owned */
	int attempts;            /* delivery attempts made so far */
	int64_t created_at;      /* wall-clock ms at the first write */
};

/* "complete", "fail", "cancel-ack"; parse returns -1 for anything else. */
const char *mc_outbox_op_name(enum mc_outbox_op op);
int mc_outbox_op_parse(const char *s, enum mc_outbox_op *op);

/* Writes (or rewrites, e.g. with attempts + 1) e durably. task_id and
 * workspace_id must be UUIDs, body a JSON object. */
int mc_outbox_write(const char *state_dir, const char *workspace_id,
		    const struct mc_outbox_entry *e, char *err, size_t err_size);
/* The same for a first write: attempts 0, created_at now. */
int mc_outbox_put(const char *state_dir, const char *workspace_id, const char *task_id,
		  const char *runtime_id, enum mc_outbox_op op, const char *body);
/* Reads one entry (caller clears it). ENOENT when there is none; EBADMSG
 * for a corrupt file (left in place: mc_outbox_list quarantines). */
int mc_outbox_read(const char *state_dir, const char *workspace_id, const char *task_id,
		   struct mc_outbox_entry *e, char *err, size_t err_size);
/* Removes the entry after its 2xx (the directory is fsynced). ENOENT is
 * not an error. */
int mc_outbox_remove(const char *state_dir, const char *workspace_id, const char *task_id);
void mc_outbox_entry_clear(struct mc_outbox_entry *e);

struct mc_outbox_list {
	size_t n;
	struct mc_outbox_entry *v;
};
/* Every entry of the workspace, oldest first (created_at, then task id).
 * Left-over *.tmp files of an interrupted write are removed; a corrupt
 * file is renamed <name>.bad, logged and skipped. An absent outbox is an
 * empty list. The caller clears the list. */
int mc_outbox_list(const char *state_dir, const char *workspace_id, struct mc_outbox_list *out);
void mc_outbox_list_clear(struct mc_outbox_list *l);
/* mc_outbox_list, then fn on each entry (borrowed for the call) in that
 * order; stops early when fn returns non-zero. Returns 0 or -1. */
int mc_outbox_foreach(const char *state_dir, const char *workspace_id,
		      int (*fn)(const struct mc_outbox_entry *e, void *arg), void *arg);

/* Optional fields of complete and fail (NULL or "" / false: omitted). */
struct mc_outbox_extra {
	const char *session_id;
	const char *work_dir;
	const char *branch_name;
	const char *durable_work_dir;
	const char *retired_session_id;
	bool session_rollout_missing;
};
/* {"output":..., extras} (section 2.12); output (len bytes) sanitized and
 * cut to MC_OUTBOX_OUTPUT_MAX. */
char *mc_outbox_complete_body(const char *output, size_t len, const struct mc_outbox_extra *x);
/* {"error":..., "failure_reason":..., extras} (section 2.13). */
char *mc_outbox_fail_body(const char *error, const char *failure_reason,
			  const struct mc_outbox_extra *x);
/* {} or the optional fields of section 2.14. */
char *mc_outbox_cancel_ack_body(const char *branch_name, const char *durable_work_dir,
				const char *error_message, const char *failure_reason);

#endif
