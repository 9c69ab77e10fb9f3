/* The runtime ids the link claims for: each workspace's set as the
 * supervisor's RUNTIMES frames last said (the ledger's). A claim names all
 * of them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "link/link_int.h"
#include "link/ws.h"

static struct mc_link_ws *find(const struct mc_link *l, const char *ws)
{
	for (size_t i = 0; i < l->n_ws; i++)
		if (strcmp(l->ws[i].ws, ws) == 0)
			return &l->ws[i];
	return NULL;
}

static bool same(const struct mc_link_ws *e, size_t n, char (*ids)[40])
{
	if (e->n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(e->ids[i], ids[i]) != 0)
			return false;
	return true;
}

/* Takes ownership of ids. */
int mc_link_set_runtimes(struct mc_link *l, const char *ws, size_t n, char (*ids)[40])
{
	struct mc_link_ws *e = find(l, ws);
	if (e != NULL && same(e, n, ids)) {
		free(ids);
		return 0;
	}
	if (n == 0) {
		free(ids);
		if (e == NULL)
			return 0;
		free(e->ids);
		*e = l->ws[--l->n_ws];
		mc_ws_runtimes_changed(l); /* the socket's set (debounced) */
		return 1;
	}
	if (e == NULL) {
		if (l->n_ws == l->cap_ws) {
			size_t cap = l->cap_ws ? l->cap_ws * 2 : 16;
			struct mc_link_ws *v = reallocarray(l->ws, cap, sizeof *v);
			if (v == NULL) {
				free(ids);
				return -1;
			}
			l->ws = v;
			l->cap_ws = cap;
		}
		e = &l->ws[l->n_ws++];
		memset(e, 0, sizeof *e);
		strlcpy(e->ws, ws, sizeof e->ws);
	}
	free(e->ids);
	e->ids = ids;
	e->n = n;
	mc_ws_runtimes_changed(l);
	return 1;
}

size_t mc_link_n_runtimes(const struct mc_link *l)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n_ws; i++)
		n += l->ws[i].n;
	return n;
}

char (*mc_link_all_runtimes(const struct mc_link *l, size_t *n))[40]
{
	*n = mc_link_n_runtimes(l);
	if (*n == 0)
		return NULL;
	char (*v)[40] = calloc(*n, sizeof *v);
	if (v == NULL) {
		*n = 0;
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < l->n_ws; i++)
		for (size_t j = 0; j < l->ws[i].n; j++)
			memcpy(v[k++], l->ws[i].ids[j], 40);
	return v;
}

void mc_link_runtimes_free(struct mc_link *l)
{
	for (size_t i = 0; i < l->n_ws; i++)
		free(l->ws[i].ids);
	free(l->ws);
	l->ws = NULL;
	l->n_ws = l->cap_ws = 0;
}
