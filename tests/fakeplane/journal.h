/* multica-fakeplane: the journal of daemon (non-admin) requests, in the
 * order they were answered. Bounded: past max entries the oldest go (seq
 * keeps counting, so a reader can tell). Thread-safe (own mutex). */
#ifndef FP_JOURNAL_H
#define FP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct fp_journal;

/* Allocates a journal keeping at most max entries (0: no limit). */
struct fp_journal *fp_journal_new(size_t max);
void fp_journal_free(struct fp_journal *j);
/* Records one request; status 0 means the connection was reset unanswered.
 * The strings are copied. */
void fp_journal_add(struct fp_journal *j, const char *method, const char *path,
		    const char *body, size_t body_len, unsigned status, bool faulted);
void fp_journal_clear(struct fp_journal *j);
/* Allocates [{seq, time, method, path, body, status, fault}]. */
cJSON *fp_journal_render(struct fp_journal *j);
/* The same for the entries whose path contains path_part (ignoring case;
 * NULL: all), e.g. one task's calls, faulted ones included. */
cJSON *fp_journal_render_matching(struct fp_journal *j, const char *path_part);

#endif
