/* The runtime -> launch spec table (launch.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker/launch.h"

static void launch_clear(struct mc_launch *l)
{
	free(l->runtime_id);
	free(l->family);
	free(l->path);
	free(l->version);
	for (size_t i = 0; i < l->n_args; i++)
		free(l->args[i]);
	free(l->args);
	memset(l, 0, sizeof *l);
}

void mc_launch_table_clear(struct mc_launch_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		launch_clear(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const struct mc_launch *mc_launch_find(const struct mc_launch_table *t, const char *runtime_id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].runtime_id, runtime_id) == 0)
			return &t->v[i];
	return NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*oom = true;
	return d;
}

/* Fills l (zeroed) as a copy; false on ENOMEM (l then holds a partial copy
 * the caller clears). */
static bool fill(struct mc_launch *l, const char *rid, const char *family, const char *path,
		 const char *version, size_t n_args, char *const *args, bool custom)
{
	bool oom = false;
	l->runtime_id = dup_or_null(rid, &oom);
	l->family = dup_or_null(family, &oom);
	l->path = dup_or_null(path, &oom);
	l->version = dup_or_null(version, &oom);
	l->custom = custom;
	if (n_args > 0) {
		l->args = calloc(n_args, sizeof *l->args);
		if (l->args == NULL)
			return false;
		for (size_t i = 0; i < n_args; i++, l->n_args++)
			if ((l->args[i] = strdup(args[i])) == NULL)
				return false;
	}
	return !oom;
}

static const struct mc_payload_rt *payload_custom(const struct mc_payload *p, const char *pid)
{
	for (size_t i = 0; p != NULL && i < p->n_rt; i++)
		if (p->rt[i].profile_id != NULL && strcmp(p->rt[i].profile_id, pid) == 0)
			return &p->rt[i];
	return NULL;
}

static const struct mc_builtin *builtin_of(const struct mc_probes *b, const char *provider)
{
	for (size_t i = 0; b != NULL && i < b->n; i++)
		if (strcmp(b->v[i].provider, provider) == 0)
			return &b->v[i];
	return NULL;
}

static bool entry_for(struct mc_launch *l, const struct mc_tracked_rt *rt,
		      const struct mc_payload *p, const struct mc_probes *builtins,
		      const struct mc_launch_table *old)
{
	if (rt->profile_id != NULL) {
		const struct mc_payload_rt *c = payload_custom(p, rt->profile_id);
		if (c != NULL)
			return fill(l, rt->id, c->type, c->path, c->version, c->n_args, c->args, true);
	} else {
		const struct mc_builtin *b = builtin_of(builtins, rt->provider);
		if (b != NULL)
			return fill(l, rt->id, rt->provider, b->path[0] ? b->path : NULL, b->version,
				    0, NULL, false);
	}
	const struct mc_launch *prev = mc_launch_find(old, rt->id);
	if (prev != NULL)
		return fill(l, prev->runtime_id, prev->family, prev->path, prev->version,
			    prev->n_args, prev->args, prev->custom);
	/* Known to the server, not resolvable here: a task for it is failed. */
	return fill(l, rt->id, rt->provider, NULL, NULL, 0, NULL, rt->profile_id != NULL);
}

int mc_launch_table_update(struct mc_launch_table *t, const struct mc_tracked *tracked,
			   const struct mc_payload *p, const struct mc_probes *builtins)
{
	struct mc_launch_table next = { 0 };
	if (tracked->n > 0 && (next.v = calloc(tracked->n, sizeof *next.v)) == NULL)
		return -1;
	for (size_t i = 0; i < tracked->n; i++) {
		next.n++;
		if (!entry_for(&next.v[i], &tracked->v[i], p, builtins, t)) {
			mc_launch_table_clear(&next);
			errno = ENOMEM;
			return -1;
		}
	}
	mc_launch_table_clear(t);
	*t = next;
	return 0;
}
