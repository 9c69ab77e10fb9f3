#include "common/profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* strdup that keeps NULL as NULL (description is optional). */
static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst == NULL ? -1 : 0;
}

static void profile_clear(struct mc_profile *p)
{
	free(p->id);
	free(p->workspace_id);
	free(p->display_name);
	free(p->protocol_family);
	free(p->command_name);
	free(p->description);
	free(p->visibility);
	for (size_t i = 0; i < p->n_fixed_args; i++)
		free(p->fixed_args[i]);
	free(p->fixed_args);
	memset(p, 0, sizeof *p);
}

/* Deep-copies one profile into the zeroed *dst; on failure *dst holds
 * whatever was copied so far (profile_clear frees it). */
static int profile_copy(struct mc_profile *dst, const struct mc_profile *src)
{
	dst->enabled = src->enabled;
	if (dup_opt(&dst->id, src->id) < 0 ||
	    dup_opt(&dst->workspace_id, src->workspace_id) < 0 ||
	    dup_opt(&dst->display_name, src->display_name) < 0 ||
	    dup_opt(&dst->protocol_family, src->protocol_family) < 0 ||
	    dup_opt(&dst->command_name, src->command_name) < 0 ||
	    dup_opt(&dst->description, src->description) < 0 ||
	    dup_opt(&dst->visibility, src->visibility) < 0)
		return -1;
	if (src->n_fixed_args == 0)
		return 0;
	dst->fixed_args = calloc(src->n_fixed_args, sizeof *dst->fixed_args);
	if (dst->fixed_args == NULL)
		return -1;
	for (size_t i = 0; i < src->n_fixed_args; i++) {
		/* count as we go so profile_clear frees exactly what exists */
		dst->n_fixed_args = i + 1;
		if (dup_opt(&dst->fixed_args[i], src->fixed_args[i]) < 0)
			return -1;
	}
	return 0;
}

int mc_profile_list_copy(struct mc_profile_list *dst, const struct mc_profile_list *src)
{
	dst->n = 0;
	dst->v = NULL;
	if (src->n == 0)
		return 0;
	struct mc_profile *v = calloc(src->n, sizeof *v);
	if (v == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < src->n; i++) {
		if (profile_copy(&v[i], &src->v[i]) < 0) {
			struct mc_profile_list partial = { .n = i + 1, .v = v };
			mc_profile_list_clear(&partial);
			errno = ENOMEM;
			return -1;
		}
	}
	dst->n = src->n;
	dst->v = v;
	return 0;
}

void mc_profile_list_clear(struct mc_profile_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		profile_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
