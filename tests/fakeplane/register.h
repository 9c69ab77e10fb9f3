/* multica-fakeplane: POST /api/daemon/register (protocol 2.3, 3.1, 4.1).
 * Per-entry upserts keyed on (workspace, daemon_id, provider) for built-ins
 * and (workspace, daemon_id, profile_id) for custom profiles; not atomic;
 * never prunes; failed_profiles become offline rows that are not returned. */
#ifndef FP_REGISTER_H
#define FP_REGISTER_H

#include "tests/fakeplane/app.h"

/* Answers one register request for the authenticated user. Call with the
 * state lock held. */
void fp_register_handle(struct fp_app *app, const struct fp_request *rq, const char *user,
			struct fp_reply *out);

#endif
