/* A workspace's custom runtime profile, as the server lists it to daemons
 * (GET /api/daemon/workspaces/{ws}/runtime-profiles). */
#ifndef MC_PROFILE_H
#define MC_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

struct mc_profile {
	char *id;
	char *workspace_id;
	char *display_name;
	char *protocol_family;
	char *command_name;
	char *description;   /* NULL when the server sent null or nothing */
	char *visibility;
	bool enabled;
	size_t n_fixed_args;
	char **fixed_args;
};

struct mc_profile_list {
	size_t n;
	struct mc_profile *v;
};

/* Deep copy; the caller owns *dst and frees it with mc_profile_list_clear.
 * Returns -1 with errno=ENOMEM. */
int mc_profile_list_copy(struct mc_profile_list *dst, const struct mc_profile_list *src);

/* Frees every string and the array; leaves *l empty. */
void mc_profile_list_clear(struct mc_profile_list *l);

#endif
