/* The ledger: each workspace's last reported set of runtime IDs, kept in
 * memory and journaled under <state_dir>/ledger/ so that a supervisor killed
 * with -9 can deregister the leftovers on its next start.
 *
 * On disk: one file per workspace, named by the workspace UUID (lowercase),
 * holding one runtime UUID per line (and <ws>.tasks with its task ids in
 * flight, below). An empty set has no file. Every write
 * goes to <ws>.tmp, is fsynced, renamed over <ws> and the directory fsynced,
 * so a crash leaves either the old or the new set, never a mix.
 *
 * Memory is the truth and changes at once; the files follow in the
 * background: set and clear mark the workspace dirty, and a writer thread
 * writes the dirty files in batches (one directory fsync per batch), so the
 * supervisor's loop never waits for the disk and a thousand reports cost a
 * few batches, not two thousand serial fsyncs. The loop watches
 * mc_ledger_fd (ready: a batch is done) and calls mc_ledger_flush after
 * each turn. A failed write is logged and retried a second later. A
 * supervisor killed with -9 loses at most the changes of the last batch
 * window, which the workers' own DEREG at their supervisor's death covers.
 *
 * IDs are stored lowercase. Lookups are O(log n) (a red-black tree), so a
 * thousand workspaces cost nothing per report.
 *
 * Error convention: -1 (or NULL) with errno set; I/O errors are also logged
 * with the path through mc_log. Not thread-safe (the supervisor is a single
 * event loop). */
#ifndef MC_SV_LEDGER_H
#define MC_SV_LEDGER_H

#include <stddef.h>

#define MC_LEDGER_MAX_IDS 1024  /* a worker reports at most MC_MAX_REPORT */

struct mc_ledger;

/* Creates <state_dir> and <state_dir>/ledger (mode 0700) if needed and loads
 * every valid file. Files with a name that is not a lowercase UUID, a line
 * that is not a UUID, or more than MC_LEDGER_MAX_IDS lines are logged and
 * renamed to <name>.bad; leftover *.tmp files are removed. Allocates the
 * ledger (free with mc_ledger_free) and starts its writer thread (all
 * signals blocked); it keeps the directory open (O_CLOEXEC).
 * Returns NULL with errno and a message in err on failure. */
struct mc_ledger *mc_ledger_open(const char *state_dir, char *err, size_t err_size);

/* Writes what is pending (bounded: a stalled disk is abandoned, see
 * ledger.c), frees the ledger and closes its directory. The files stay.
 * NULL is a no-op. */
void mc_ledger_free(struct mc_ledger *l);

/* Replaces ws's set with the n ids (n == 0 is mc_ledger_clear) and queues
 * the file's write. ws and ids must be UUIDs, n <= MC_LEDGER_MAX_IDS, else
 * -1/EINVAL and nothing changes. An unchanged set costs no I/O.
 * -1/ENOMEM leaves everything unchanged; otherwise 0 (disk errors come
 * later: logged, retried, and reported by mc_ledger_sync). */
int mc_ledger_set(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids);

/* Forgets ws's set and queues the removal of its file (no error if there is
 * none). Same rules as mc_ledger_set. */
int mc_ledger_clear(struct mc_ledger *l, const char *ws);

/* The fd to watch for EPOLLIN: a batch of writes is done (then call
 * mc_ledger_on_ready). */
int mc_ledger_fd(const struct mc_ledger *l);

/* Collects a finished batch (non-blocking) and starts the next one. */
void mc_ledger_on_ready(struct mc_ledger *l);

/* Starts a batch of the dirty files if none is running (and no failure is
 * waiting for its retry). Cheap when nothing is dirty. */
void mc_ledger_flush(struct mc_ledger *l);

/* Blocks up to timeout_ms until every change so far is on disk (failed
 * writes are retried once, at once). 0, or -1 with errno: ETIMEDOUT, or the
 * error of a failed write. For tests and for the exit path. */
int mc_ledger_sync(struct mc_ledger *l, int timeout_ms);

/* The set of ws: returns its size and points *ids at a borrowed array of n
 * strings (NULL when n == 0), valid until the next set/clear of ws or
 * mc_ledger_free. */
size_t mc_ledger_get(const struct mc_ledger *l, const char *ws, const char *const **ids);

/* Number of workspaces with a non-empty set. */
size_t mc_ledger_count(const struct mc_ledger *l);

/* Calls cb for each workspace with a non-empty set, in UUID order. The
 * callback must not set or clear entries of l. A non-zero return from cb
 * stops the walk and is returned; otherwise 0. */
typedef int (*mc_ledger_cb)(const char *ws, size_t n, const char *const *ids, void *arg);
int mc_ledger_foreach(const struct mc_ledger *l, mc_ledger_cb cb, void *arg);

/* Called with ws after each change of ws's runtime set (set or clear that
 * changed something), e.g. to tell the link. One observer; NULL: none. */
typedef void (*mc_ledger_observer)(void *arg, const char *ws);
void mc_ledger_set_observer(struct mc_ledger *l, mc_ledger_observer fn, void *arg);

/* Each workspace's task ids in flight, journaled the same way in
 * <state_dir>/ledger/<ws>.tasks (one task UUID per line; no file for none),
 * so that a restarted supervisor knows which runtimes had work in flight.
 * Same rules and errors as the runtime sets; not in mc_ledger_count,
 * mc_ledger_foreach or the observer. */
int mc_ledger_set_tasks(struct mc_ledger *l, const char *ws, size_t n, const char *const *ids);
size_t mc_ledger_get_tasks(const struct mc_ledger *l, const char *ws, const char *const **ids);
int mc_ledger_foreach_tasks(const struct mc_ledger *l, mc_ledger_cb cb, void *arg);

#endif
