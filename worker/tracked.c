#include "worker/tracked.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mc_tracked_init(struct mc_tracked *t)
{
	memset(t, 0, sizeof *t);
}

static void rt_free(struct mc_tracked_rt *rt)
{
	mc_call_free(rt->beat);
	free(rt->id);
	free(rt->provider);
	free(rt->profile_id);
	memset(rt, 0, sizeof *rt);
}

void mc_tracked_clear(struct mc_tracked *t)
{
	for (size_t i = 0; i < t->n; i++)
		rt_free(&t->v[i]);
	free(t->v);
	memset(t, 0, sizeof *t);
}

long mc_tracked_find(const struct mc_tracked *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].id, id) == 0)
			return (long)i;
	return -1;
}

bool mc_tracked_remove(struct mc_tracked *t, const char *id)
{
	long i = mc_tracked_find(t, id);
	if (i < 0)
		return false;
	rt_free(&t->v[i]);
	memmove(&t->v[i], &t->v[i + 1], (t->n - (size_t)i - 1) * sizeof *t->v);
	t->n--;
	return true;
}

void mc_ids_free(char **ids, size_t n)
{
	if (ids == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static bool in_response(const struct mc_runtime_list *resp, const char *id)
{
	for (size_t i = 0; i < resp->n; i++)
		if (strcmp(resp->v[i].id, id) == 0)
			return true;
	return false;
}

/* Builds a fresh entry (no heartbeat state) for response runtime r. */
static int build_entry(struct mc_tracked_rt *out, const struct mc_runtime *r)
{
	memset(out, 0, sizeof *out);
	out->id = strdup(r->id);
	out->provider = strdup(r->provider);
	out->profile_id = r->profile_id ? strdup(r->profile_id) : NULL;
	if (out->id == NULL || out->provider == NULL || (r->profile_id && !out->profile_id)) {
		free(out->id);
		free(out->provider);
		free(out->profile_id);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int mc_tracked_replace(struct mc_tracked *t, const struct mc_runtime_list *resp,
		       char ***dropped_ids, size_t *n_dropped,
		       char ***added_ids, size_t *n_added)
{
	*dropped_ids = *added_ids = NULL;
	*n_dropped = *n_added = 0;
	struct mc_tracked_rt *nv = resp->n ? calloc(resp->n, sizeof *nv) : NULL;
	char **dropped = t->n ? calloc(t->n, sizeof *dropped) : NULL;
	char **added = resp->n ? calloc(resp->n, sizeof *added) : NULL;
	if ((resp->n && (nv == NULL || added == NULL)) || (t->n && dropped == NULL))
		goto nomem;

	/* Allocate everything first so a failure leaves t untouched. */
	size_t nd = 0, na = 0, built = 0;
	for (size_t i = 0; i < resp->n; i++) {
		if (mc_tracked_find(t, resp->v[i].id) < 0 &&
		    (added[na++] = strdup(resp->v[i].id)) == NULL)
			goto nomem_partial;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (!in_response(resp, t->v[i].id) &&
		    (dropped[nd++] = strdup(t->v[i].id)) == NULL)
			goto nomem_partial;
	}
	for (; built < resp->n; built++) {
		if (build_entry(&nv[built], &resp->v[built]) < 0)
			goto nomem_partial;
	}
	/* Committed: carry heartbeat state over, then swap. */
	for (size_t i = 0; i < resp->n; i++) {
		long old = mc_tracked_find(t, nv[i].id);
		if (old >= 0) {
			nv[i].next_beat = t->v[old].next_beat;
			nv[i].beat = t->v[old].beat;
			nv[i].beat_failing = t->v[old].beat_failing;
			t->v[old].beat = NULL;
		}
	}
	mc_tracked_clear(t);
	t->v = nv;
	t->n = t->cap = resp->n;
	*dropped_ids = dropped;
	*n_dropped = nd;
	*added_ids = added;
	*n_added = na;
	if (nd == 0) {
		free(dropped);
		*dropped_ids = NULL;
	}
	if (na == 0) {
		free(added);
		*added_ids = NULL;
	}
	return 0;

nomem_partial:
	for (size_t i = 0; i < built; i++)
		rt_free(&nv[i]);
	mc_ids_free(dropped, nd);
	mc_ids_free(added, na);
	free(nv);
	errno = ENOMEM;
	return -1;
nomem:
	free(nv);
	free(dropped);
	free(added);
	errno = ENOMEM;
	return -1;
}

int mc_tracked_take_all(struct mc_tracked *t, char ***ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	if (t->n == 0)
		return 0;
	char **out = calloc(t->n, sizeof *out);
	if (out == NULL)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		out[i] = t->v[i].id; /* move the string */
		t->v[i].id = NULL;
	}
	*n = t->n;
	*ids = out;
	mc_tracked_clear(t);
	return 0;
}

const char **mc_tracked_id_view(const struct mc_tracked *t)
{
	if (t->n == 0)
		return NULL;
	const char **v = calloc(t->n, sizeof *v);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		v[i] = t->v[i].id;
	return v;
}
