/* The ledger's disk writer thread (see ledger_writer.h). */
#include "supervisor/ledger_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/fdio.h"

#define TMP_SUFFIX ".tmp"

struct mc_ledger_writer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;           /* the thread waits here for work or stop */
	pthread_cond_t done_cv;      /* collect waits here for the batch */
	int dirfd;                   /* borrowed */
	int evfd;
	/* under mu */
	struct mc_ledger_job *jobs;
	size_t n;
	bool pending;                /* a batch is submitted and not collected */
	bool finished;               /* ... and the thread is done with it */
	bool stop;
	bool running;                /* the thread has started (see writer_start) */
};

/* ---- the thread: no allocation, no logging, no stdio ---- */

static void fail(struct mc_ledger_job *j, const char *op)
{
	j->failed_op = op;
	j->error = errno;
}

static void write_one(int dirfd, struct mc_ledger_job *j)
{
	char tmp[MC_ID_MAX + sizeof TMP_SUFFIX];
	size_t len = strnlen(j->ws, MC_ID_MAX - 1);
	memcpy(tmp, j->ws, len);
	memcpy(tmp + len, TMP_SUFFIX, sizeof TMP_SUFFIX);
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fail(j, "open");
		return;
	}
	if (mc_write_all(fd, j->data, j->len) < 0)
		fail(j, "write");
	else if (fsync(fd) < 0)
		fail(j, "fsync");
	if (close(fd) < 0 && j->failed_op == NULL)
		fail(j, "close");
	if (j->failed_op == NULL && renameat(dirfd, tmp, dirfd, j->ws) < 0)
		fail(j, "rename");
	if (j->failed_op != NULL) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		errno = e;
	}
}

static void remove_one(int dirfd, struct mc_ledger_job *j)
{
	if (unlinkat(dirfd, j->ws, 0) < 0 && errno != ENOENT)
		fail(j, "unlink");
}

/* Applies the batch; one directory fsync makes every rename and unlink of
 * it durable. */
static void apply(int dirfd, struct mc_ledger_job *jobs, size_t n)
{
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		jobs[i].failed_op = NULL;
		jobs[i].error = 0;
		if (jobs[i].data != NULL)
			write_one(dirfd, &jobs[i]);
		else
			remove_one(dirfd, &jobs[i]);
		changed |= jobs[i].failed_op == NULL;
	}
	if (changed && fsync(dirfd) < 0) {
		int e = errno;
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].failed_op == NULL) {
				jobs[i].failed_op = "fsync of the directory";
				jobs[i].error = e;
			}
		}
	}
}

static void *writer_main(void *arg)
{
	struct mc_ledger_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	w->running = true;
	pthread_cond_broadcast(&w->done_cv);
	for (;;) {
		while (!w->stop && !(w->pending && !w->finished))
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->pending && !w->finished) {
			struct mc_ledger_job *jobs = w->jobs;
			size_t n = w->n;
			pthread_mutex_unlock(&w->mu);
			apply(w->dirfd, jobs, n);
			pthread_mutex_lock(&w->mu);
			w->finished = true;
			pthread_cond_broadcast(&w->done_cv);
			uint64_t one = 1;
			while (write(w->evfd, &one, sizeof one) < 0 && errno == EINTR)
				;
			continue;
		}
		break; /* stop, nothing left to do */
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- the owner's side ---- */

struct mc_ledger_writer *mc_ledger_writer_start(int dirfd)
{
	struct mc_ledger_writer *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->dirfd = dirfd;
	w->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_condattr_t ca;
	int rc = w->evfd < 0 ? errno : 0;
	if (rc == 0 && (rc = pthread_condattr_init(&ca)) == 0) {
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		pthread_cond_init(&w->done_cv, &ca);
		pthread_condattr_destroy(&ca);
		/* The thread blocks every signal (it inherits the mask), so a
		 * process-directed SIGTERM or SIGHUP always reaches the main
		 * thread's signalfd, whenever the ledger was opened. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&w->thread, NULL, writer_main, w);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		/* Return only once the thread runs: a process forked while a
		 * thread is still being set up can inherit the sanitizers' (and
		 * libc's) half-made thread state and hang at its exit. */
		pthread_mutex_lock(&w->mu);
		while (rc == 0 && !w->running)
			pthread_cond_wait(&w->done_cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
		if (rc != 0) {
			pthread_cond_destroy(&w->done_cv);
			pthread_cond_destroy(&w->cv);
			pthread_mutex_destroy(&w->mu);
		}
	}
	if (rc != 0) {
		if (w->evfd >= 0)
			close(w->evfd);
		free(w);
		errno = rc;
		return NULL;
	}
	return w;
}

int mc_ledger_writer_fd(const struct mc_ledger_writer *w)
{
	return w->evfd;
}

bool mc_ledger_writer_busy(const struct mc_ledger_writer *w)
{
	/* Only the owner changes pending: no lock needed to read it here. */
	return w->pending;
}

int mc_ledger_writer_submit(struct mc_ledger_writer *w, struct mc_ledger_job *jobs, size_t n)
{
	pthread_mutex_lock(&w->mu);
	if (w->pending) {
		pthread_mutex_unlock(&w->mu);
		errno = EBUSY;
		return -1;
	}
	w->jobs = jobs;
	w->n = n;
	w->pending = true;
	w->finished = false;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static struct timespec deadline_in(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

bool mc_ledger_writer_collect(struct mc_ledger_writer *w, int timeout_ms,
			      struct mc_ledger_job **jobs, size_t *n)
{
	struct timespec until = deadline_in(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&w->mu);
	while (w->pending && !w->finished && timeout_ms > 0) {
		if (pthread_cond_timedwait(&w->done_cv, &w->mu, &until) == ETIMEDOUT)
			break;
	}
	bool got = w->pending && w->finished;
	if (got) {
		*jobs = w->jobs;
		*n = w->n;
		w->jobs = NULL;
		w->n = 0;
		w->pending = w->finished = false;
		uint64_t v;
		while (read(w->evfd, &v, sizeof v) < 0 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&w->mu);
	return got;
}

bool mc_ledger_writer_stop(struct mc_ledger_writer *w, int timeout_ms)
{
	if (w == NULL)
		return true;
	struct mc_ledger_job *jobs = NULL;
	size_t n = 0;
	if (w->pending && !mc_ledger_writer_collect(w, timeout_ms, &jobs, &n))
		return false; /* stalled: abandon the thread and what it holds */
	mc_ledger_jobs_free(jobs, n);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->done_cv);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	close(w->evfd);
	free(w);
	return true;
}

void mc_ledger_jobs_free(struct mc_ledger_job *jobs, size_t n)
{
	for (size_t i = 0; jobs != NULL && i < n; i++)
		free(jobs[i].data);
	free(jobs);
}
