/* multica-fakeplane: what every request handler receives (the shared state, the
 * journal, the faults) and the request/reply types between the MHD layer
 * (http.c) and the handlers (api.c, admin.c), which know nothing of MHD. */
#ifndef FP_APP_H
#define FP_APP_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct fp_state;
struct fp_journal;
struct fp_faults;

struct fp_app {
	struct fp_state *st;
	struct fp_journal *journal;
	struct fp_faults *faults;
};

struct fp_request {
	const char *method;
	const char *path;            /* without the query string */
	const char *body;            /* NUL-terminated, "" when none */
	size_t body_len;
	const char *authorization;   /* header values, NULL when absent */
	const char *if_none_match;
	const char *capabilities;    /* X-Client-Capabilities */
};

struct fp_reply {
	unsigned status;
	char *body;                  /* malloc'd; NULL: empty body */
	size_t body_len;
	char etag[96];               /* "" when none */
	bool private_no_cache;       /* Cache-Control: private, no-cache */
};

/* Sets status and a body of j's compact text plus "\n" (as Go's json
 * encoder writes it); takes ownership of j. */
void fp_reply_json(struct fp_reply *r, unsigned status, cJSON *j);
/* {"error":"msg"} plus "\n", the handlers' error body (protocol 1.3). */
void fp_reply_error(struct fp_reply *r, unsigned status, const char *msg);
/* The middleware's error body: the same without the newline. */
void fp_reply_error_bare(struct fp_reply *r, unsigned status, const char *msg);
/* Takes ownership of a malloc'd body. */
void fp_reply_raw(struct fp_reply *r, unsigned status, char *body, size_t len);
/* Frees the body; the reply can be reused. */
void fp_reply_release(struct fp_reply *r);

#endif
