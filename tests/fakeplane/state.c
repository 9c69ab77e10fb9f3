#include "tests/fakeplane/state.h"

#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "tests/fakeplane/ws.h"

static void free_strings(struct fp_vec *v)
{
	for (size_t i = 0; i < v->len; i++)
		free(v->items[i]);
	fp_vec_release(v);
}

struct fp_state *fp_state_new(void)
{
	struct fp_state *st = fp_xcalloc(1, sizeof *st);
	pthread_mutex_init(&st->mu, NULL);
	st->redeliver_after_ms = 90000;   /* the server's stale-dispatch window */
	st->lease_ms = 45000;             /* its prepare lease */
	return st;
}

void fp_state_free(struct fp_state *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->tokens.len; i++) {
		struct fp_token *t = st->tokens.items[i];
		free(t->token);
		free(t->user);
		free(t);
	}
	fp_vec_release(&st->tokens);
	for (size_t i = 0; i < st->workspaces.len; i++)
		fp_workspace_free(st->workspaces.items[i]);
	fp_vec_release(&st->workspaces);
	for (size_t i = 0; i < st->profiles.len; i++)
		fp_profile_free(st->profiles.items[i]);
	fp_vec_release(&st->profiles);
	for (size_t i = 0; i < st->runtimes.len; i++)
		fp_runtime_free(st->runtimes.items[i]);
	fp_vec_release(&st->runtimes);
	for (size_t i = 0; i < st->tasks.len; i++)
		fp_task_free(st->tasks.items[i]);
	fp_vec_release(&st->tasks);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

void fp_state_lock(struct fp_state *st) { pthread_mutex_lock(&st->mu); }
void fp_state_unlock(struct fp_state *st) { pthread_mutex_unlock(&st->mu); }

struct fp_workspace *fp_workspace_new(void)
{
	return fp_xcalloc(1, sizeof(struct fp_workspace));
}

void fp_workspace_free(struct fp_workspace *w)
{
	if (w == NULL)
		return;
	free(w->name);
	free_strings(&w->members);
	cJSON_Delete(w->repos);
	free(w);
}

struct fp_profile *fp_profile_new(void)
{
	struct fp_profile *p = fp_xcalloc(1, sizeof *p);
	p->enabled = true;
	return p;
}

struct fp_profile *fp_profile_clone(const struct fp_profile *p)
{
	struct fp_profile *c = fp_xmalloc(sizeof *c);
	*c = *p;
	c->display_name = fp_xstrdup(p->display_name);
	c->protocol_family = fp_xstrdup(p->protocol_family);
	c->command_name = fp_xstrdup(p->command_name);
	c->description = fp_xstrdup(p->description);
	c->visibility = fp_xstrdup(p->visibility);
	c->created_by = fp_xstrdup(p->created_by);
	memset(&c->fixed_args, 0, sizeof c->fixed_args);
	for (size_t i = 0; i < p->fixed_args.len; i++)
		fp_vec_push(&c->fixed_args, fp_xstrdup(p->fixed_args.items[i]));
	return c;
}

void fp_profile_free(struct fp_profile *p)
{
	if (p == NULL)
		return;
	free(p->display_name);
	free(p->protocol_family);
	free(p->command_name);
	free(p->description);
	free_strings(&p->fixed_args);
	free(p->visibility);
	free(p->created_by);
	free(p);
}

struct fp_runtime *fp_runtime_new(void)
{
	return fp_xcalloc(1, sizeof(struct fp_runtime));
}

void fp_runtime_free(struct fp_runtime *r)
{
	if (r == NULL)
		return;
	free(r->daemon_id);
	free(r->name);
	free(r->provider);
	free(r->device_info);
	free(r->metadata);
	free(r->owner_id);
	free(r);
}

const char *fp_state_user_for_token(struct fp_state *st, const char *token)
{
	for (size_t i = 0; i < st->tokens.len; i++) {
		struct fp_token *t = st->tokens.items[i];
		if (strcmp(t->token, token) == 0)
			return t->user;
	}
	return NULL;
}

struct fp_workspace *fp_state_workspace(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->workspaces.len; i++) {
		struct fp_workspace *w = st->workspaces.items[i];
		if (strcmp(w->id, id) == 0)
			return w;
	}
	return NULL;
}

bool fp_state_is_member(struct fp_state *st, const char *ws_id, const char *user)
{
	struct fp_workspace *w = fp_state_workspace(st, ws_id);
	if (w == NULL || user == NULL)
		return false;
	for (size_t i = 0; i < w->members.len; i++)
		if (strcmp(w->members.items[i], user) == 0)
			return true;
	return false;
}

struct fp_profile *fp_state_profile(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->profiles.len; i++) {
		struct fp_profile *p = st->profiles.items[i];
		if (strcmp(p->id, id) == 0)
			return p;
	}
	return NULL;
}

struct fp_profile *fp_state_profile_by_name(struct fp_state *st, const char *ws_id,
					    const char *display_name)
{
	for (size_t i = 0; i < st->profiles.len; i++) {
		struct fp_profile *p = st->profiles.items[i];
		if (strcmp(p->workspace_id, ws_id) == 0 &&
		    strcmp(p->display_name, display_name) == 0)
			return p;
	}
	return NULL;
}

struct fp_runtime *fp_state_runtime(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->runtimes.len; i++) {
		struct fp_runtime *r = st->runtimes.items[i];
		if (strcmp(r->id, id) == 0)
			return r;
	}
	return NULL;
}

struct fp_task *fp_state_task(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->tasks.len; i++) {
		struct fp_task *t = st->tasks.items[i];
		if (strcmp(t->id, id) == 0)
			return t;
	}
	return NULL;
}

void fp_state_set_token(struct fp_state *st, const char *token, const char *user)
{
	for (size_t i = 0; i < st->tokens.len; i++) {
		struct fp_token *t = st->tokens.items[i];
		if (strcmp(t->token, token) == 0) {
			fp_replace_str(&t->user, fp_xstrdup(user));
			return;
		}
	}
	struct fp_token *t = fp_xmalloc(sizeof *t);
	t->token = fp_xstrdup(token);
	t->user = fp_xstrdup(user);
	fp_vec_push(&st->tokens, t);
}

int fp_state_remove_token(struct fp_state *st, const char *token)
{
	for (size_t i = 0; i < st->tokens.len; i++) {
		struct fp_token *t = st->tokens.items[i];
		if (strcmp(t->token, token) == 0) {
			free(t->token);
			free(t->user);
			free(t);
			fp_vec_remove(&st->tokens, i);
			return 0;
		}
	}
	return -1;
}

struct fp_workspace *fp_state_put_workspace(struct fp_state *st, struct fp_workspace *w)
{
	struct fp_workspace *old = fp_state_workspace(st, w->id);
	if (old != NULL) {
		/* Swap the contents so that w carries the old ones to free; the
		 * repos list stays (it is set on its own admin route). */
		struct fp_workspace tmp = *old;
		*old = *w;
		*w = tmp;
		old->repos = w->repos;
		old->repos_version = w->repos_version;
		w->repos = NULL;
		fp_workspace_free(w);
		return old;
	}
	/* Keep the list ordered by id: the list endpoint wants id order. */
	size_t pos = 0;
	while (pos < st->workspaces.len &&
	       strcmp(((struct fp_workspace *)st->workspaces.items[pos])->id, w->id) < 0)
		pos++;
	fp_vec_push(&st->workspaces, w);
	memmove(&st->workspaces.items[pos + 1], &st->workspaces.items[pos],
		(st->workspaces.len - 1 - pos) * sizeof(void *));
	st->workspaces.items[pos] = w;
	return w;
}

static void remove_runtimes_where(struct fp_state *st, const char *ws_id,
				  const char *profile_id, int *count)
{
	for (size_t i = st->runtimes.len; i-- > 0;) {
		struct fp_runtime *r = st->runtimes.items[i];
		if ((ws_id && strcmp(r->workspace_id, ws_id) == 0) ||
		    (profile_id && strcmp(r->profile_id, profile_id) == 0)) {
			fp_runtime_free(r);
			fp_vec_remove(&st->runtimes, i);
			(*count)++;
		}
	}
}

int fp_state_remove_workspace(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->workspaces.len; i++) {
		struct fp_workspace *w = st->workspaces.items[i];
		if (strcmp(w->id, id) != 0)
			continue;
		fp_workspace_free(w);
		fp_vec_remove(&st->workspaces, i);
		int n = 0;
		remove_runtimes_where(st, id, NULL, &n);
		for (size_t j = st->profiles.len; j-- > 0;) {
			struct fp_profile *p = st->profiles.items[j];
			if (strcmp(p->workspace_id, id) == 0) {
				fp_profile_free(p);
				fp_vec_remove(&st->profiles, j);
			}
		}
		return 0;
	}
	return -1;
}

void fp_state_add_profile(struct fp_state *st, struct fp_profile *p)
{
	fp_vec_push(&st->profiles, p);
}

void fp_state_replace_profile(struct fp_state *st, struct fp_profile *p)
{
	for (size_t i = 0; i < st->profiles.len; i++) {
		struct fp_profile *old = st->profiles.items[i];
		if (strcmp(old->id, p->id) == 0) {
			st->profiles.items[i] = p;
			fp_profile_free(old);
			return;
		}
	}
	fp_vec_push(&st->profiles, p);
}

int fp_state_remove_profile(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->profiles.len; i++) {
		struct fp_profile *p = st->profiles.items[i];
		if (strcmp(p->id, id) != 0)
			continue;
		fp_profile_free(p);
		fp_vec_remove(&st->profiles, i);
		int n = 0;
		remove_runtimes_where(st, NULL, id, &n);
		return n;
	}
	return -1;
}

void fp_state_add_runtime(struct fp_state *st, struct fp_runtime *r)
{
	fp_vec_push(&st->runtimes, r);
}

int fp_state_remove_runtime(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->runtimes.len; i++) {
		struct fp_runtime *r = st->runtimes.items[i];
		if (strcmp(r->id, id) == 0) {
			fp_runtime_free(r);
			fp_vec_remove(&st->runtimes, i);
			return 0;
		}
	}
	return -1;
}

int fp_state_remove_all_runtimes(struct fp_state *st)
{
	int n = (int)st->runtimes.len;
	while (st->runtimes.len > 0) {
		fp_runtime_free(st->runtimes.items[st->runtimes.len - 1]);
		fp_vec_remove(&st->runtimes, st->runtimes.len - 1);
	}
	return n;
}

void fp_state_add_task(struct fp_state *st, struct fp_task *t)
{
	/* The row keeps its workspace when its runtime row goes later. */
	struct fp_runtime *r = fp_state_runtime(st, t->runtime_id);
	if (t->workspace_id[0] == '\0' && r != NULL)
		strlcpy(t->workspace_id, r->workspace_id, sizeof t->workspace_id);
	fp_vec_push(&st->tasks, t);
	fp_ws_push_task(st->ws, t->runtime_id, t->id);   /* NotifyTaskEnqueued */
}

int fp_state_remove_task(struct fp_state *st, const char *id)
{
	for (size_t i = 0; i < st->tasks.len; i++) {
		struct fp_task *t = st->tasks.items[i];
		if (strcmp(t->id, id) == 0) {
			fp_vec_remove(&st->tasks, i);
			fp_task_free(t);
			return 0;
		}
	}
	return -1;
}

struct fp_runtime *fp_state_runtime_by_identity(struct fp_state *st, const char *ws_id,
						const char *daemon_id, const char *provider,
						const char *profile_id)
{
	bool custom = profile_id != NULL && profile_id[0] != '\0';
	for (size_t i = 0; i < st->runtimes.len; i++) {
		struct fp_runtime *r = st->runtimes.items[i];
		if (strcmp(r->workspace_id, ws_id) != 0 || strcmp(r->daemon_id, daemon_id) != 0)
			continue;
		if (custom ? strcmp(r->profile_id, profile_id) == 0
			   : (r->profile_id[0] == '\0' && strcmp(r->provider, provider) == 0))
			return r;
	}
	return NULL;
}

struct fp_runtime *fp_state_runtime_upsert(struct fp_state *st, const char *ws_id,
					   const char *daemon_id, const char *provider,
					   const char *profile_id, int64_t now_ms, bool *inserted)
{
	struct fp_runtime *r = fp_state_runtime_by_identity(st, ws_id, daemon_id, provider,
							    profile_id);
	*inserted = r == NULL;
	if (r != NULL)
		return r;
	r = fp_runtime_new();
	fp_uuid_generate(r->id);
	strlcpy(r->workspace_id, ws_id, sizeof r->workspace_id);
	r->daemon_id = fp_xstrdup(daemon_id);
	r->provider = fp_xstrdup(provider);
	if (profile_id != NULL)
		strlcpy(r->profile_id, profile_id, sizeof r->profile_id);
	r->name = fp_xstrdup(provider);
	r->device_info = fp_xstrdup("");
	r->metadata = fp_xstrdup("{}");
	r->created_ms = r->updated_ms = now_ms;
	fp_state_add_runtime(st, r);
	return r;
}

static bool is_orphan_status(const char *s)
{
	return strcmp(s, "dispatched") == 0 || strcmp(s, "running") == 0 ||
	       strcmp(s, "waiting_local_directory") == 0;
}

int fp_state_recover_orphans(struct fp_state *st, const char *runtime_id, int64_t now_ms)
{
	int n = 0;
	for (size_t i = 0; i < st->tasks.len; i++) {
		struct fp_task *t = st->tasks.items[i];
		if (strcmp(t->runtime_id, runtime_id) != 0 || !is_orphan_status(t->status))
			continue;
		fp_task_set_status(t, "failed", now_ms);
		fp_replace_str(&t->failure_reason, fp_xstrdup("runtime_recovery"));
		fp_replace_str(&t->error, fp_xstrdup("daemon restarted while task was in flight"));
		t->lease_ms = 0;
		fp_task_record(t, FP_OP_RECOVER, NULL, 200, now_ms);
		n++;
	}
	if (n > 0)
		fp_ws_push_task(st->ws, runtime_id, NULL);   /* terminal: coalesced per runtime */
	return n;
}

int fp_state_sweep_stale(struct fp_state *st, int64_t now_ms, int64_t stale_ms)
{
	int n = 0;
	for (size_t i = 0; i < st->runtimes.len; i++) {
		struct fp_runtime *r = st->runtimes.items[i];
		/* A NULL last_seen_at never matches, as in the server's query. */
		if (r->online && r->last_seen_ms != 0 && now_ms - r->last_seen_ms > stale_ms) {
			r->online = false;
			r->updated_ms = now_ms;
			n++;
		}
	}
	return n;
}

bool fp_task_status_valid(const char *s)
{
	static const char *const statuses[] = {
		"queued", "dispatched", "running", "completed", "failed",
		"cancelled", "waiting_local_directory", "deferred",
	};
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		if (strcmp(s, statuses[i]) == 0)
			return true;
	return false;
}
