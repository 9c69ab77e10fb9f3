/* mc_config_print: the effective configuration as an INI file that parses
 * back (see config.h). */
#include "supervisor/config_int.h"

#include <stdint.h>

#include "supervisor/duration.h"

#define OFF(field) offsetof(struct mc_config, field)

const char *mc_config_log_level_name(enum mc_log_level level)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "info";
}

static const char *default_mark(const struct mc_config *c, const char *key)
{
	int i = mc_cfg_dkey_index(key);
	return (c->daemon_keys_set & (UINT64_C(1) << i)) ? "" : "  ; default";
}

static void print_ids(FILE *f, const char *key, const char (*ids)[MC_ID_MAX], size_t n,
		      const char *mark)
{
	fprintf(f, "%s =%s%s", key, n > 0 ? " " : "", n > 0 ? ids[0] : "");
	fprintf(f, "%s\n", mark);
	/* one per continuation line: any number of IDs stays under inih's
	 * line length, and the output parses back */
	for (size_t i = 1; i < n; i++)
		fprintf(f, "    %s\n", ids[i]);
}

static void print_daemon(const struct mc_config *c, FILE *f)
{
	char d[32];
	fprintf(f, "[daemon]\n");
	fprintf(f, "server_url = %s\n", c->server_url);
	fprintf(f, "token_file = %s\n", c->token_file);
	if (c->daemon_id_file[0] != '\0') {
		fprintf(f, "daemon_id_file = %s%s\n", c->daemon_id_file, default_mark(c, "daemon_id_file"));
		if (c->daemon_id[0] != '\0')
			fprintf(f, "; daemon_id (from daemon_id_file) = %s\n", c->daemon_id);
	} else {
		fprintf(f, "daemon_id = %s\n", c->daemon_id);
	}
	fprintf(f, "device_name = %s%s\n", c->device_name, default_mark(c, "device_name"));
	if (c->all_workspaces)
		fprintf(f, "workspaces = all%s\n", default_mark(c, "workspaces"));
	else
		print_ids(f, "workspaces", (const char (*)[MC_ID_MAX])c->workspaces,
			  c->n_workspaces, "");
	print_ids(f, "exclude_workspaces", (const char (*)[MC_ID_MAX])c->exclude, c->n_exclude,
		  default_mark(c, "exclude_workspaces"));
	fprintf(f, "shard = %u/%u%s\n", c->shard_index, c->shard_count, default_mark(c, "shard"));
	for (size_t i = 0; i < mc_cfg_n_dkeys; i++) {
		const struct dkey *k = &mc_cfg_dkeys[i];
		if (k->set == mc_cfg_set_duration || k->set == mc_cfg_set_days) {
			long ms = *(const long *)((const char *)c + k->off);
			if (k->set == mc_cfg_set_days)
				mc_cfg_format_days(ms, d, sizeof d);
			else
				mc_format_duration(ms, d, sizeof d);
			fprintf(f, "%s = %s%s\n", k->name, d, default_mark(c, k->name));
		} else if (k->set == mc_cfg_set_int) {
			fprintf(f, "%s = %d%s\n", k->name, *(const int *)((const char *)c + k->off),
				default_mark(c, k->name));
		} else if (k->set == mc_cfg_set_agent_api) {
			mc_cfg_format_agent_api(c->agent_api_port, d, sizeof d);
			fprintf(f, "%s = %s%s\n", k->name, d, default_mark(c, k->name));
		} else if (k->off == OFF(state_dir) || k->off == OFF(control_socket) ||
			   k->off == OFF(workspaces_root)) {
			fprintf(f, "%s = %s%s\n", k->name, (const char *)c + k->off,
				default_mark(c, k->name));
		}
	}
	fprintf(f, "log_level = %s%s\n", mc_config_log_level_name(c->log_level),
		default_mark(c, "log_level"));
	mc_cfg_print_agents(c, f);
}

static void print_providers(const struct mc_config *c, FILE *f)
{
	fprintf(f, "\n[providers]%s\n",
		c->providers_default ? "  ; default list (the file has no [providers] section)" : "");
	if (c->n_providers == 0)
		fprintf(f, "; empty: no built-in providers\n");
	for (size_t i = 0; i < c->n_providers; i++)
		fprintf(f, "%s = %s\n", c->providers[i].key, c->providers[i].command);
}

void mc_config_print(const struct mc_config *c, FILE *f)
{
	fprintf(f, "# effective configuration from %s\n", c->path);
	print_daemon(c, f);
	print_providers(c, f);
	for (size_t i = 0; i < c->n_ws_sections; i++) {
		const struct mc_ws_section *s = &c->ws_sections[i];
		fprintf(f, "\n[workspace %s]\n", s->id);
		for (size_t j = 0; j < s->n_overrides; j++)
			fprintf(f, "%s%s = %s\n", PROFILE_PREFIX, s->overrides[j].profile_id,
				s->overrides[j].path);
		if (s->test_fault[0] != '\0')
			fprintf(f, "test_fault = %s\n", s->test_fault);
	}
}
