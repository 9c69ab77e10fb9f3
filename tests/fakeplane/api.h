/* multica-fakeplane: the daemon-facing API (protocol sections 1.2-2.8, 9):
 * routing, DaemonAuth-style bearer auth, and one handler per endpoint. */
#ifndef FP_API_H
#define FP_API_H

#include "tests/fakeplane/app.h"

struct fp_runtime;

/* A route's handler runs with the state lock held; user is the
 * authenticated user id and param the last wildcard path segment (or
 * NULL). */
typedef void (*fp_handler_fn)(struct fp_app *app, const struct fp_request *rq,
			      const char *user, const char *param, struct fp_reply *out);

struct fp_route {
	const char *method;
	const char *pattern;    /* "*" matches one segment */
	fp_handler_fn fn;
};

/* Runtime access (protocol 1.2) on a path or body id, lock held: 400
 * invalid_msg when malformed, 404 "runtime not found" when absent, 404
 * "not found" when the user is no member of its workspace. Returns the row
 * or NULL after writing the error into out. */
struct fp_runtime *fp_api_runtime_access(struct fp_app *app, const char *user, const char *id,
					 const char *invalid_msg, struct fp_reply *out);

/* DaemonAuth: the user of the request's bearer token, or NULL after
 * writing the 401 into out. Lock held. */
const char *fp_api_authenticate(struct fp_app *app, const struct fp_request *rq,
				struct fp_reply *out);

/* Answers one daemon request into *out (never fails; unknown routes get
 * 404 {"error":"not found"}). Takes the state lock itself. */
void fp_api_handle(struct fp_app *app, const struct fp_request *rq, struct fp_reply *out);

/* Splits path into at most max '/'-separated segments (no empty ones
 * except a trailing one), pointing into buf (a copy of path). Returns the
 * count, or -1 when there are more. Shared with the admin router. */
int fp_path_split(const char *path, char *buf, size_t bufsize, char **segs, int max);

#endif
