/* The auth registry: a mutex-guarded array of running tasks (a few hundred
 * at most: the host's task slots). */
#include "agentapi/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

struct mca_registry {
	pthread_mutex_t mu;
	pthread_cond_t added;           /* CLOCK_MONOTONIC; broadcast by add */
	unsigned long adds;
	size_t n, cap;
	struct mc_agent_task **v;    /* each heap, owned */
};

struct mca_registry *mca_registry_new(void)
{
	struct mca_registry *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->added, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

void mca_registry_free(struct mca_registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	pthread_cond_destroy(&r->added);
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
	if (rc == 0) {
		r->adds++;
		pthread_cond_broadcast(&r->added);
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

static bool find_hash_locked(struct mca_registry *r, const char *hash, struct mc_agent_task *out)
{
	bool found = false;
	for (size_t i = 0; i < r->n; i++) {
		/* sodium_memcmp: no early exit on the first differing byte. */
		if (sodium_memcmp(r->v[i]->token_hash, hash, MC_TOKEN_HASH_HEX - 1) == 0 &&
		    !found) {
			*out = *r->v[i];
			found = true;
		}
	}
	return found;
}

bool mca_registry_lookup_wait(struct mca_registry *r, const char *token, size_t len,
			      struct mc_agent_task *out, long wait_ms)
{
	char hash[MC_TOKEN_HASH_HEX];
	mc_task_token_hash_bytes(token, len, hash);
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	bool found = find_hash_locked(r, hash, out);
	while (!found && wait_ms > 0) {
		unsigned long seen = r->adds;
		while (r->adds == seen)
			if (pthread_cond_timedwait(&r->added, &r->mu, &until) == ETIMEDOUT)
				break;
		if (r->adds == seen)
			break; /* timed out */
		found = find_hash_locked(r, hash, out);
	}
	pthread_mutex_unlock(&r->mu);
	sodium_memzero(hash, sizeof hash);
	return found;
}

bool mca_registry_lookup(struct mca_registry *r, const char *token, size_t len,
			 struct mc_agent_task *out)
{
	return mca_registry_lookup_wait(r, token, len, out, 0);
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
