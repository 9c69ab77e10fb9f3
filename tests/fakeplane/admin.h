/* multica-fakeplane: the admin API under /_admin (no auth; not journaled,
 * never faulted). JSON in and out; errors are {"error":"..."}.
 *
 *   GET    /_admin/state               {runtimes, profiles, tasks, workspaces}
 *   GET    /_admin/journal             [{seq, time, method, path, body, status, fault}]
 *   DELETE /_admin/journal             clear it
 *   POST   /_admin/profiles            create (seed fields; id optional) -> the profile
 *   PATCH  /_admin/profiles/{id}       change fields -> the profile
 *   DELETE /_admin/profiles/{id}       delete it and its runtime rows -> {deleted_runtimes}
 *   DELETE /_admin/runtimes/{id}       delete one runtime row (tasks untouched)
 *   DELETE /_admin/runtimes            delete every runtime row in one step -> {deleted_runtimes}
 *   POST   /_admin/workspaces          add, or replace name+members of, {id, name, members}
 *   DELETE /_admin/workspaces/{id}     remove it, its profiles and runtime rows
 *   .../_admin/tasks...                 task rows: task_admin.h
 *   POST   /_admin/tokens              add or rebind {token, user}
 *   DELETE /_admin/tokens/{token}      revoke
 *   GET    /_admin/faults              pending faults
 *   POST   /_admin/faults              add one (faults.h)
 *   DELETE /_admin/faults              clear
 *   .../_admin/ws...                    the daemon websocket: ws_admin.c
 *
 * Success is 200; 400 bad input, 404 unknown id, 409 duplicate. */
#ifndef FP_ADMIN_H
#define FP_ADMIN_H

#include <stdbool.h>

#include "tests/fakeplane/app.h"

/* True for paths the admin API owns ("/_admin" and below). */
bool fp_admin_path(const char *path);
void fp_admin_handle(struct fp_app *app, const struct fp_request *rq, struct fp_reply *out);

#endif
