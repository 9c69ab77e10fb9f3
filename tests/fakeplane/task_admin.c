#include "tests/fakeplane/task_admin.h"

#include <string.h>

#include "tests/fakeplane/decode.h"
#include "tests/fakeplane/journal.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/ws.h"

#define ERRLEN 512

static void add_task(struct fp_app *app, const cJSON *body, struct fp_reply *out)
{
	char err[ERRLEN];
	struct fp_task *t;
	if (fp_decode_task(body, "", &t, err, sizeof err) < 0) {
		fp_reply_error(out, 400, err);
		return;
	}
	fp_state_lock(app->st);
	if (fp_state_task(app->st, t->id) != NULL) {
		fp_reply_error(out, 409, "a task with this id exists");
		fp_task_free(t);
	} else {
		fp_state_add_task(app->st, t);
		fp_reply_json(out, 200, fp_render_task(t));
	}
	fp_state_unlock(app->st);
}

static void list_tasks(struct fp_app *app, struct fp_reply *out)
{
	cJSON *a = fp_json_array();
	fp_state_lock(app->st);
	for (size_t i = 0; i < app->st->tasks.len; i++)
		fp_json_append(a, fp_render_task(app->st->tasks.items[i]));
	fp_state_unlock(app->st);
	fp_reply_json(out, 200, a);
}

/* The row (lock held), or NULL after a 404. */
static struct fp_task *find(struct fp_app *app, const char *param, struct fp_reply *out)
{
	char id[FP_UUID_LEN + 1];
	struct fp_task *t = NULL;
	if (fp_uuid_canon(param, id) == 0)
		t = fp_state_task(app->st, id);
	if (t == NULL)
		fp_reply_error(out, 404, "not found");
	return t;
}

static void get_task(struct fp_app *app, const char *param, struct fp_reply *out)
{
	fp_state_lock(app->st);
	struct fp_task *t = find(app, param, out);
	cJSON *o = t ? fp_render_task_detail(t) : NULL;
	char id[FP_UUID_LEN + 1] = "";
	if (t != NULL)
		memcpy(id, t->id, sizeof id);
	fp_state_unlock(app->st);
	if (o == NULL)
		return;
	/* Every daemon request naming the task, faulted ones too. */
	fp_json_add(o, "journal", fp_journal_render_matching(app->journal, id));
	fp_reply_json(out, 200, o);
}

static void cancel_task(struct fp_app *app, const char *param, struct fp_reply *out)
{
	fp_state_lock(app->st);
	struct fp_task *t = find(app, param, out);
	if (t != NULL) {
		/* As the server's cancel: a terminal row stays as it is. */
		if (!fp_task_status_terminal(t->status)) {
			fp_task_set_status(t, "cancelled", fp_now_ms());
			t->lease_ms = 0;
			fp_ws_push_task(app->st->ws, t->runtime_id, NULL);
		}
		fp_reply_json(out, 200, fp_render_task(t));
	}
	fp_state_unlock(app->st);
}

static void patch_task(struct fp_app *app, const cJSON *body, const char *param,
		       struct fp_reply *out)
{
	char err[ERRLEN];
	fp_state_lock(app->st);
	struct fp_task *t = find(app, param, out);
	if (t != NULL && fp_decode_task_patch(body, t, err, sizeof err) < 0)
		fp_reply_error(out, 400, err);
	else if (t != NULL)
		fp_reply_json(out, 200, fp_render_task(t));
	fp_state_unlock(app->st);
}

static void delete_task(struct fp_app *app, const char *param, struct fp_reply *out)
{
	fp_state_lock(app->st);
	struct fp_task *t = find(app, param, out);
	if (t != NULL) {
		fp_state_remove_task(app->st, t->id);
		cJSON *o = fp_json_object();
		fp_json_add_str(o, "status", "ok");
		fp_reply_json(out, 200, o);
	}
	fp_state_unlock(app->st);
}

void fp_task_admin_handle(struct fp_app *app, const struct fp_request *rq, char **segs,
			  int nsegs, struct fp_reply *out)
{
	const char *m = rq->method;
	cJSON *body = NULL;
	bool wants_body = strcmp(m, "POST") == 0 && nsegs == 2;
	wants_body = wants_body || (strcmp(m, "PATCH") == 0 && nsegs == 3);
	if (wants_body) {
		body = cJSON_ParseWithLength(rq->body, rq->body_len);
		if (!cJSON_IsObject(body)) {
			cJSON_Delete(body);
			fp_reply_error(out, 400, "expected a JSON object body");
			return;
		}
	}
	if (nsegs == 2 && strcmp(m, "GET") == 0)
		list_tasks(app, out);
	else if (nsegs == 2 && strcmp(m, "POST") == 0)
		add_task(app, body, out);
	else if (nsegs == 3 && strcmp(m, "GET") == 0)
		get_task(app, segs[2], out);
	else if (nsegs == 3 && strcmp(m, "PATCH") == 0)
		patch_task(app, body, segs[2], out);
	else if (nsegs == 3 && strcmp(m, "DELETE") == 0)
		delete_task(app, segs[2], out);
	else if (nsegs == 4 && strcmp(m, "POST") == 0 && strcmp(segs[3], "cancel") == 0)
		cancel_task(app, segs[2], out);
	else
		fp_reply_error(out, 404, "not found");
	cJSON_Delete(body);
}
