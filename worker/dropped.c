#include "worker/dropped.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mc_dropped_init(struct mc_dropped *d)
{
	memset(d, 0, sizeof *d);
	mc_backoff_init(&d->backoff, MC_DROPPED_RETRY_MIN_MS, MC_DROPPED_RETRY_MAX_MS);
}

void mc_dropped_clear(struct mc_dropped *d)
{
	mc_ids_free(d->ids, d->n);
	d->ids = NULL;
	d->n = 0;
	d->n_sent = 0;
}

static bool pending(const struct mc_dropped *d, const char *id)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->ids[i], id) == 0)
			return true;
	return false;
}

int mc_dropped_add(struct mc_dropped *d, char **ids, size_t n)
{
	if (n == 0) {
		free(ids);
		return 0;
	}
	char **grown = realloc(d->ids, (d->n + n) * sizeof *grown);
	if (grown == NULL) {
		mc_ids_free(ids, n);
		errno = ENOMEM;
		return -1;
	}
	d->ids = grown;
	for (size_t i = 0; i < n; i++) {
		if (pending(d, ids[i]))
			free(ids[i]);
		else
			d->ids[d->n++] = ids[i];
	}
	free(ids);
	d->retry_at = 0; /* a fresh drop is tried at once, older ids with it */
	return 0;
}

void mc_dropped_forget_tracked(struct mc_dropped *d, const struct mc_tracked *t)
{
	size_t kept = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (mc_tracked_find(t, d->ids[i]) >= 0)
			free(d->ids[i]);
		else
			d->ids[kept++] = d->ids[i];
	}
	d->n = kept;
	if (d->n_sent > kept)
		d->n_sent = kept;
	if (kept == 0) {
		free(d->ids);
		d->ids = NULL;
		mc_backoff_reset(&d->backoff);
		d->retry_at = 0;
	}
}

bool mc_dropped_due(const struct mc_dropped *d, mc_ms_t now)
{
	return d->n > 0 && now >= d->retry_at;
}

void mc_dropped_succeeded(struct mc_dropped *d)
{
	size_t sent = d->n_sent < d->n ? d->n_sent : d->n;
	if (sent > 0) {
		for (size_t i = 0; i < sent; i++)
			free(d->ids[i]);
		memmove(d->ids, d->ids + sent, (d->n - sent) * sizeof *d->ids);
		d->n -= sent;
	}
	d->n_sent = 0;
	if (d->n == 0) {
		free(d->ids);
		d->ids = NULL;
	}
	mc_backoff_reset(&d->backoff);
	d->retry_at = 0;
}

mc_ms_t mc_dropped_failed(struct mc_dropped *d, mc_ms_t now)
{
	d->n_sent = 0;
	mc_ms_t delay = mc_backoff_next(&d->backoff);
	d->retry_at = now + delay;
	return delay;
}

int mc_dropped_take_all(struct mc_dropped *d, char ***ids, size_t *n)
{
	if (d->n == 0)
		return 0;
	char **all = realloc(*ids, (*n + d->n) * sizeof *all);
	if (all == NULL) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(all + *n, d->ids, d->n * sizeof *all);
	*ids = all;
	*n += d->n;
	free(d->ids); /* the strings moved */
	d->ids = NULL;
	d->n = 0;
	d->n_sent = 0;
	mc_backoff_reset(&d->backoff);
	d->retry_at = 0;
	return 0;
}
