/* multica-fakeplane: the websocket's admin routes under /_admin/ws
 * (ws_admin.c's header comment lists them). */
#ifndef FP_WS_ADMIN_H
#define FP_WS_ADMIN_H

#include "tests/fakeplane/app.h"

/* segs[0..nsegs) are the path's segments, segs[1] being "ws". */
void fp_ws_admin_handle(struct fp_app *app, const struct fp_request *rq, char **segs,
			int nsegs, struct fp_reply *out);

#endif
