/* The auth registry: a mutex-guarded array of running tasks (a few hundred
 * at most: the host's task slots). */
#include "agentapi/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct mca_registry {
	pthread_mutex_t mu;
	size_t n, cap;
	struct mc_agent_task **v;    /* each heap, owned */
};

struct mca_registry *mca_registry_new(void)
{
	struct mca_registry *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void mca_registry_free(struct mca_registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static ssize_t find_locked(const struct mca_registry *r, const char *task_id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i]->task_id, task_id) == 0)
			return (ssize_t)i;
	return -1;
}

static int grow_locked(struct mca_registry *r)
{
	if (r->n < r->cap)
		return 0;
	size_t cap = r->cap ? r->cap * 2 : 16;
	struct mc_agent_task **v = realloc(r->v, cap * sizeof *v);
	if (v == NULL)
		return -1;
	r->v = v;
	r->cap = cap;
	return 0;
}

int mca_registry_add(struct mca_registry *r, const struct mc_agent_task *t)
{
	if (t->task_id[0] == '\0' || strlen(t->token_hash) != MC_TOKEN_HASH_HEX - 1) {
		errno = EINVAL;
		return -1;
	}
	struct mc_agent_task *copy = malloc(sizeof *copy);
	if (copy == NULL)
		return -1;
	*copy = *t;
	int rc = 0;
	pthread_mutex_lock(&r->mu);
	ssize_t at = find_locked(r, t->task_id);
	if (at >= 0) {
		free(r->v[at]);
		r->v[at] = copy;
	} else if (grow_locked(r) == 0) {
		r->v[r->n++] = copy;
	} else {
		free(copy);
		errno = ENOMEM;
		rc = -1;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

bool mca_registry_remove(struct mca_registry *r, const char *task_id)
{
	pthread_mutex_lock(&r->mu);
	ssize_t at = find_locked(r, task_id);
	if (at >= 0) {
		free(r->v[at]);
		r->v[at] = r->v[--r->n];
	}
	pthread_mutex_unlock(&r->mu);
	return at >= 0;
}

bool mca_registry_lookup(struct mca_registry *r, const char *token, size_t len,
			 struct mc_agent_task *out)
{
	char hash[MC_TOKEN_HASH_HEX];
	mc_task_token_hash_bytes(token, len, hash);
	bool found = false;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n; i++) {
		/* sodium_memcmp: no early exit on the first differing byte. */
		if (sodium_memcmp(r->v[i]->token_hash, hash, MC_TOKEN_HASH_HEX - 1) == 0 &&
		    !found) {
			*out = *r->v[i];
			found = true;
		}
	}
	pthread_mutex_unlock(&r->mu);
	sodium_memzero(hash, sizeof hash);
	return found;
}

size_t mca_registry_count(struct mca_registry *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

size_t mca_registry_workspaces(struct mca_registry *r, char (*ids)[MCA_ID_MAX], size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->n && k < max; i++) {
		bool seen = false;
		for (size_t j = 0; j < k && !seen; j++)
			seen = strcmp(ids[j], r->v[i]->workspace_id) == 0;
		if (!seen)
			memcpy(ids[k++], r->v[i]->workspace_id, MCA_ID_MAX);
	}
	pthread_mutex_unlock(&r->mu);
	return k;
}

const char *mca_task_repo_ref(const struct mc_agent_task *t, const char *url)
{
	for (size_t i = 0; i < t->n_repos; i++)
		if (strcmp(t->repos[i].url, url) == 0)
			return t->repos[i].ref;
	return "";
}

bool mca_task_has_repo(const struct mc_agent_task *t, const char *url)
{
	for (size_t i = 0; i < t->n_repos; i++)
		if (strcmp(t->repos[i].url, url) == 0)
			return true;
	return false;
}
