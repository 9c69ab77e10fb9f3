/* The ledger's disk writer: one background thread that applies batches of
 * file writes and removals under the ledger directory, so that a slow or
 * stalled disk never blocks the supervisor's event loop (reaping, pings, the
 * control socket, the watchdog). Internal to the ledger (ledger.c).
 *
 * One batch at a time: the owner submits a batch, the thread applies it
 * (each file: tmp, write, fsync, rename; removals: unlink; then one fsync of
 * the directory for the whole batch) and signals an eventfd; the owner
 * collects the results and may submit the next batch. Writes of one
 * workspace therefore land in the order they were submitted.
 *
 * Fork safety: the thread touches only the directory fd, the job buffers it
 * was handed and its own mutex; it never allocates, logs or uses stdio, so a
 * child forked while it runs inherits no lock it could need.
 *
 * Error convention: NULL / false / -1 with errno. */
#ifndef MC_SV_LEDGER_WRITER_H
#define MC_SV_LEDGER_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "ipc/messages.h"

struct mc_ledger_job {
	char ws[MC_ID_MAX];         /* the file name (a lowercase workspace UUID) */
	char *data;                 /* the file's content (owned by the job); NULL: remove */
	size_t len;
	/* results, filled by the thread */
	const char *failed_op;      /* NULL on success, else "open", "write", "fsync", ... */
	int error;                  /* errno of failed_op */
};

struct mc_ledger_writer;

/* Starts the thread (allocates; free with mc_ledger_writer_stop). dirfd is
 * borrowed and must outlive the writer. NULL with errno on failure. */
struct mc_ledger_writer *mc_ledger_writer_start(int dirfd);

/* Readable (an eventfd) when a submitted batch is done. */
int mc_ledger_writer_fd(const struct mc_ledger_writer *w);

/* True while a batch is submitted and not yet collected. */
bool mc_ledger_writer_busy(const struct mc_ledger_writer *w);

/* Hands jobs (n >= 1, ownership of the array and its data) to the thread.
 * -1/EBUSY while a batch is out. */
int mc_ledger_writer_submit(struct mc_ledger_writer *w, struct mc_ledger_job *jobs, size_t n);

/* Waits up to timeout_ms (0: not at all) for the batch to finish; then
 * gives the jobs back (ownership) with their results. False when there is
 * no finished batch. */
bool mc_ledger_writer_collect(struct mc_ledger_writer *w, int timeout_ms,
			      struct mc_ledger_job **jobs, size_t *n);

/* Stops the thread and frees the writer. A batch still running gets up to
 * timeout_ms to finish; if the disk is stalled past that, the thread and its
 * memory are abandoned (the process is about to exit) and false returned. */
bool mc_ledger_writer_stop(struct mc_ledger_writer *w, int timeout_ms);

/* Frees jobs[0..n) and their data. */
void mc_ledger_jobs_free(struct mc_ledger_job *jobs, size_t n);

#endif
