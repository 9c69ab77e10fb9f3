#include "tests/fakeplane/journal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fakeplane/render.h"
#include "tests/fakeplane/util.h"

struct entry {
	uint64_t seq;
	int64_t time_ms;
	char *method;
	char *path;
	char *body;
	unsigned status;
	bool faulted;
};

/* A ring of entries: grows by doubling up to max, then overwrites. */
struct fp_journal {
	pthread_mutex_t mu;
	size_t max;
	struct entry *ring;
	size_t cap, head, len;   /* oldest at ring[head] */
	uint64_t next_seq;
};

struct fp_journal *fp_journal_new(size_t max)
{
	struct fp_journal *j = fp_xcalloc(1, sizeof *j);
	pthread_mutex_init(&j->mu, NULL);
	j->max = max;
	j->next_seq = 1;
	return j;
}

static void entry_release(struct entry *e)
{
	free(e->method);
	free(e->path);
	free(e->body);
	memset(e, 0, sizeof *e);
}

static void clear_locked(struct fp_journal *j)
{
	for (size_t i = 0; i < j->len; i++)
		entry_release(&j->ring[(j->head + i) % j->cap]);
	j->head = j->len = 0;
}

void fp_journal_free(struct fp_journal *j)
{
	if (j == NULL)
		return;
	clear_locked(j);
	free(j->ring);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

/* Makes room for one more entry and returns the slot to fill. */
static struct entry *slot_locked(struct fp_journal *j)
{
	if (j->max != 0 && j->len == j->max) {
		struct entry *oldest = &j->ring[j->head];
		entry_release(oldest);
		j->head = (j->head + 1) % j->cap;
		j->len--;
	}
	if (j->len == j->cap) {
		size_t ncap = j->cap ? j->cap * 2 : 64;
		if (j->max != 0 && ncap > j->max)
			ncap = j->max;
		struct entry *nring = fp_xcalloc(ncap, sizeof *nring);
		for (size_t i = 0; i < j->len; i++)
			nring[i] = j->ring[(j->head + i) % j->cap];
		free(j->ring);
		j->ring = nring;
		j->cap = ncap;
		j->head = 0;
	}
	struct entry *e = &j->ring[(j->head + j->len) % j->cap];
	j->len++;
	return e;
}

void fp_journal_add(struct fp_journal *j, const char *method, const char *path,
		    const char *body, size_t body_len, unsigned status, bool faulted)
{
	/* Copy before locking: the lock is on every daemon request's path. */
	struct entry e = {
		.time_ms = fp_now_ms(),
		.method = fp_xstrdup(method),
		.path = fp_xstrdup(path),
		.body = fp_xstrndup(body ? body : "", body ? body_len : 0),
		.status = status,
		.faulted = faulted,
	};
	pthread_mutex_lock(&j->mu);
	e.seq = j->next_seq++;
	*slot_locked(j) = e;
	pthread_mutex_unlock(&j->mu);
}

void fp_journal_clear(struct fp_journal *j)
{
	pthread_mutex_lock(&j->mu);
	clear_locked(j);
	pthread_mutex_unlock(&j->mu);
}

cJSON *fp_journal_render(struct fp_journal *j)
{
	return fp_journal_render_matching(j, NULL);
}

cJSON *fp_journal_render_matching(struct fp_journal *j, const char *path_part)
{
	cJSON *a = fp_json_array();
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < j->len; i++) {
		const struct entry *e = &j->ring[(j->head + i) % j->cap];
		if (path_part != NULL && strcasestr(e->path, path_part) == NULL)
			continue;
		cJSON *o = fp_json_object();
		fp_json_add(o, "seq", cJSON_CreateNumber((double)e->seq));
		fp_json_add_time(o, "time", e->time_ms);
		fp_json_add_str(o, "method", e->method);
		fp_json_add_str(o, "path", e->path);
		fp_json_add_str(o, "body", e->body);
		fp_json_add(o, "status", cJSON_CreateNumber(e->status));
		fp_json_add(o, "fault", cJSON_CreateBool(e->faulted));
		fp_json_append(a, o);
	}
	pthread_mutex_unlock(&j->mu);
	return a;
}
