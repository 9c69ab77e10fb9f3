/* multica-fakeplane: the admin API of task rows (INTERFACE.md
 * "multica-fakeplane"), under /_admin/tasks:
 *
 *   GET    /_admin/tasks               every row, compact (as in /_admin/state)
 *   POST   /_admin/tasks               add {runtime_id, agent?, status?, ...} -> the row
 *   GET    /_admin/tasks/{id}          the row, its fields, result, tokens issued,
 *                                      messages, progress, sessions, usage, calls,
 *                                      and the journal entries naming it
 *   PATCH  /_admin/tasks/{id}          {status?, failure_reason?, error?, ...} -> the row
 *   DELETE /_admin/tasks/{id}          row gone (its status then answers 404)
 *   POST   /_admin/tasks/{id}/cancel   status cancelled (a terminal row stays) -> the row
 *
 * 400 bad input, 404 unknown id, 409 duplicate id. */
#ifndef FP_TASK_ADMIN_H
#define FP_TASK_ADMIN_H

#include "tests/fakeplane/app.h"

/* segs[0..nsegs) are the path segments ("_admin", "tasks", ...). Takes
 * the locks it needs. */
void fp_task_admin_handle(struct fp_app *app, const struct fp_request *rq, char **segs,
			  int nsegs, struct fp_reply *out);

#endif
