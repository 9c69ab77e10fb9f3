/* A custom profile's command under the agent identity (issue 11): never
 * resolved as the daemon (a bare name stays bare for the agent's child to
 * find on the agent's PATH), a path only when the operator allows paths or
 * set an override for the profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "worker/payload.h"

#define WS "0c6e1f4a-8a51-4d27-9d3c-1b2a3c4d5e6f"

static struct mc_profile prof(const char *id, const char *cmd)
{
	return (struct mc_profile){ .id = (char *)id, .workspace_id = (char *)WS,
				    .display_name = (char *)"P", .protocol_family = (char *)"claude",
				    .command_name = (char *)cmd, .visibility = (char *)"workspace",
				    .enabled = true };
}

static const char *path_of(const struct mc_payload *p, const char *id)
{
	for (size_t i = 0; i < p->n_rt; i++)
		if (p->rt[i].profile_id && strcmp(p->rt[i].profile_id, id) == 0)
			return p->rt[i].path;
	return NULL;
}

static const char *failed_reason(const struct mc_payload *p, const char *id)
{
	for (size_t i = 0; i < p->n_failed; i++)
		if (strcmp(p->failed[i].profile_id, id) == 0)
			return p->failed[i].reason;
	return NULL;
}

Test(payload_as, bare_names_stay_bare_and_paths_need_the_operator)
{
	struct mc_profile v[] = { prof("p-bare", "sh"), prof("p-path", "/bin/sh"),
				  prof("p-ovr", "/opt/x/claude"), prof("p-none", "my-claude") };
	struct mc_profile_list l = { .n = 4, .v = v };
	struct mc_profile_override ovr = { 0 };
	snprintf(ovr.profile_id, sizeof ovr.profile_id, "p-ovr");
	snprintf(ovr.path, sizeof ovr.path, "/bin/true");
	static struct mc_worker_config c;
	snprintf(c.workspace_id, sizeof c.workspace_id, WS);
	c.agent_switch = true;
	c.agent_uid = 61999;
	c.agent_gid = 61999;
	c.overrides = &ovr;
	c.n_overrides = 1;
	struct mc_probes none = { .n = 0 };
	struct mc_payload p;
	/* the daemon's PATH has /bin/sh, and is not what decides */
	cr_assert_eq(mc_payload_build(&p, &none, &l, &c, "/bin:/usr/bin"), 0);
	cr_assert_str_eq(path_of(&p, "p-bare"), "sh", "looked up by the agent's child, not here");
	cr_assert_null(path_of(&p, "p-none"));
	cr_assert_str_eq(failed_reason(&p, "p-none"), "command not found on PATH: my-claude",
			 "a runtime nothing here can serve is never registered");
	cr_assert_null(path_of(&p, "p-path"));
	cr_assert_str_eq(failed_reason(&p, "p-path"),
			 "command_name is a path (allow_profile_paths = true or profile_command.<id> "
			 "allows it)");
	cr_assert_str_eq(path_of(&p, "p-ovr"), "/bin/true", "the operator's override wins");
	mc_payload_clear(&p);

	c.allow_profile_paths = true;
	cr_assert_eq(mc_payload_build(&p, &none, &l, &c, NULL), 0);
	cr_assert_str_eq(path_of(&p, "p-path"), "/bin/sh");
	cr_assert_eq(p.n_failed, 2, "only the bare names, with no PATH to find them on");
	mc_payload_clear(&p);

	/* the fallback: resolved by the daemon, as before */
	c.agent_switch = false;
	c.allow_profile_paths = false;
	cr_assert_eq(mc_payload_build(&p, &none, &l, &c, "/nonexistent"), 0);
	cr_assert_str_eq(path_of(&p, "p-path"), "/bin/sh");
	cr_assert_null(path_of(&p, "p-bare"));
	mc_payload_clear(&p);
}
