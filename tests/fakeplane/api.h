/* multica-fakeplane: the daemon-facing API (protocol sections 1.2-2.8, 9):
 * routing, DaemonAuth-style bearer auth, and one handler per endpoint. */
#ifndef FP_API_H
#define FP_API_H

#include "tests/fakeplane/app.h"

/* Answers one daemon request into *out (never fails; unknown routes get
 * 404 {"error":"not found"}). Takes the state lock itself. */
void fp_api_handle(struct fp_app *app, const struct fp_request *rq, struct fp_reply *out);

/* Splits path into at most max '/'-separated segments (no empty ones
 * except a trailing one), pointing into buf (a copy of path). Returns the
 * count, or -1 when there are more. Shared with the admin router. */
int fp_path_split(const char *path, char *buf, size_t bufsize, char **segs, int max);

#endif
