/* multica-fakeplane: injected faults for daemon requests (POST /_admin/faults).
 *
 * A fault {method?, path_prefix?, status?, body?, body_size?, delay_ms?,
 * reset?, count?} applies to the next `count` daemon requests (default 1,
 * -1: until cleared) whose method matches (any when absent) and whose path
 * starts with path_prefix. First matching fault wins, in the order added.
 * Thread-safe (own mutex). Also owns the "stopping" flag that interrupts
 * injected delays at shutdown. */
#ifndef FP_FAULTS_H
#define FP_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct fp_faults;

/* What to do with one request. */
struct fp_fault_action {
	int64_t delay_ms;   /* first wait this long */
	bool reset;         /* then close the connection unanswered */
	bool respond;       /* or answer status/body instead of the handler */
	unsigned status;
	char *body;         /* malloc'd */
	size_t body_len;
};

/* Allocates an empty fault list. */
struct fp_faults *fp_faults_new(void);
void fp_faults_free(struct fp_faults *f);
/* Validates and adds one fault. Returns 0, or -1 with a message in err. */
int fp_faults_add(struct fp_faults *f, const cJSON *spec, char *err, size_t errlen);
void fp_faults_clear(struct fp_faults *f);
/* Allocates the list of pending faults as JSON. */
cJSON *fp_faults_render(struct fp_faults *f);
/* Consumes one use of the first fault matching the request. Returns true
 * and fills *out (release with fp_fault_action_release) when one matched. */
bool fp_faults_take(struct fp_faults *f, const char *method, const char *path,
		    struct fp_fault_action *out);
void fp_fault_action_release(struct fp_fault_action *a);
/* Sleeps ms, or less when shutdown begins. Returns false if shutting down. */
bool fp_faults_sleep(struct fp_faults *f, int64_t ms);
/* Wakes every sleeper and makes later sleeps return at once. */
void fp_faults_shutdown(struct fp_faults *f);

#endif
