/* multica-fakeplane: injected faults for daemon requests (POST /_admin/faults).
 *
 * A fault {method?, path_prefix?, status?, body?, body_size?, header_size?,
 * delay_ms?, reset?, count?} applies to the next `count` daemon requests (default 1,
 * -1: until cleared) whose method matches (any when absent) and whose path
 * starts with path_prefix. First matching fault wins, in the order added.
 * Thread-safe (own mutex). A delay is carried out by the server (http.c),
 * which suspends the connection rather than a thread. */
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
	size_t header_size; /* > 0: the answer (status/body) also carries an
			       X-Fakeplane-Filler header with a value this long,
			       written straight to the socket (fp_fault_send_raw);
			       plain HTTP only: under TLS the filler is left out */
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
/* Writes a's answer, filler header included, to the plain-HTTP socket fd
 * (non-blocking), then the caller closes the connection: libmicrohttpd
 * builds headers in a per-connection pool far smaller than the header
 * sizes a client's limits are tested with. Gives up after 5 s (a client
 * that stopped reading). Returns false when the write failed or stopped. */
bool fp_fault_send_raw(int fd, const struct fp_fault_action *a);

#endif
