/* multica-fakeplane: model objects -> JSON, for the daemon API and the admin
 * API. Every function allocates a cJSON tree the caller cJSON_Delete()s
 * (cJSON allocation failure aborts). Call with the state lock held. */
#ifndef FP_RENDER_H
#define FP_RENDER_H

#include <cjson/cJSON.h>

#include "tests/fakeplane/state.h"

/* sha256 of "": the repos_version of an empty repo list (protocol 2.3). */
#define FP_EMPTY_REPOS_VERSION \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* RuntimeProfileResponse (protocol 2.2). */
cJSON *fp_render_profile(const struct fp_profile *p);
/* AgentRuntimeResponse (protocol 2.3). */
cJSON *fp_render_runtime(const struct fp_runtime *r);
/* {id, name} as in the workspace list. */
cJSON *fp_render_workspace_brief(const struct fp_workspace *w);
/* Admin views: more fields than the daemon sees. */
cJSON *fp_render_workspace_admin(const struct fp_workspace *w);
cJSON *fp_render_runtime_admin(const struct fp_runtime *r);
/* Task views (task_render.c). The admin row: every column, the current
 * auth_token and the number of calls per op ("counts"). */
cJSON *fp_render_task(const struct fp_task *t);
/* The admin row plus fields (as given at creation), result, tokens,
 * messages, progress, sessions, usage and calls. */
cJSON *fp_render_task_detail(const struct fp_task *t);
/* The row as task endpoints answer it (AgentTaskResponse), no token. */
cJSON *fp_render_task_daemon(const struct fp_task *t);
/* The Task object of a claim (reference section 3): the creation fields
 * with the row's identity, status, auth_token and delivered_comment_ids. */
cJSON *fp_render_task_claimed(const struct fp_task *t);
/* GET /_admin/state. */
cJSON *fp_render_state(struct fp_state *st);

/* Adds a string or, for NULL, a JSON null. Aborts on allocation failure. */
void fp_json_add_str(cJSON *obj, const char *key, const char *value);
/* Adds an RFC 3339 time, or null for 0. */
void fp_json_add_time(cJSON *obj, const char *key, int64_t ms);
/* Allocating cJSON constructors that abort on failure. */
cJSON *fp_json_object(void);
cJSON *fp_json_array(void);
/* Appends item to array, aborting on failure. */
void fp_json_append(cJSON *array, cJSON *item);
/* Adds item under key, aborting on failure. */
void fp_json_add(cJSON *obj, const char *key, cJSON *item);
/* Allocates the compact text of j. */
char *fp_json_print(const cJSON *j);

#endif
