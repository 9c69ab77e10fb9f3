/* The agents' identity keys of [daemon] (config.h, common/identity.h) and
 * websocket: their setters, the whole-file checks (the two ranges apart,
 * the environment file safe to hand to agents) and their printing. */
#include "supervisor/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>

#define OFF(field) offsetof(struct mc_config, field)
#define FIELD(p, k, type) ((type)((char *)(p)->c + (k)->off))

#define ID_LO_MIN 1000UL              /* below: the system's own users */
#define ID_HI_MAX 4294967294UL        /* (uid_t)-1 means "no change" to the kernel */
#define RANGE_WIDTH_MAX 100000UL
#define NOBODY_ID 65534UL             /* nobody / nogroup, and the 16-bit -1 after it */
#define USER_NAME_MAX 32              /* useradd's limit */

/* A POSIX-portable user name (useradd's default rule, '$' for Samba
 * machine accounts aside): [a-z_][a-z0-9_-]{0,31}. */
static bool is_user_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > USER_NAME_MAX)
		return false;
	if (!(s[0] >= 'a' && s[0] <= 'z') && s[0] != '_')
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-')
			return false;
	return true;
}

int mc_cfg_set_agent_user(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	if (v[0] != '\0' && !is_user_name(v))
		return fail_key(p, k->name, "\"%s\" is not a user name (1 to %d characters of "
				"a-z 0-9 _ -, not starting with a digit or '-'; empty: agents run as "
				"the daemon's own user)", v, USER_NAME_MAX);
	strlcpy(p->c->agent_user, v, sizeof p->c->agent_user);
	return 0;
}

/* One decimal id of a range, plain digits. */
static bool parse_id(const char *s, const char *end, unsigned long *out)
{
	if (s == end || end - s > 10)
		return false;
	unsigned long long n = 0;
	for (const char *q = s; q < end; q++) {
		if (*q < '0' || *q > '9')
			return false;
		n = n * 10 + (unsigned long long)(*q - '0');
	}
	if (n > ID_HI_MAX)
		return false;
	*out = (unsigned long)n;
	return true;
}

/* "LO-HI", or "" for not set (agent_uid_range only: agent_gid_range has a
 * default). */
int mc_cfg_set_id_range(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	bool uid = k->off == OFF(agent_uid_lo);
	unsigned *lo = uid ? &p->c->agent_uid_lo : &p->c->agent_gid_lo;
	unsigned *hi = uid ? &p->c->agent_uid_hi : &p->c->agent_gid_hi;
	if (v[0] == '\0' && uid) {
		*lo = *hi = 0;
		return 0;
	}
	const char *dash = strchr(v, '-');
	unsigned long a, b;
	if (dash == NULL || !parse_id(v, dash, &a) || !parse_id(dash + 1, v + strlen(v), &b))
		return fail_key(p, k->name, "\"%s\" is not LO-HI (two %s, e.g. %s)", v,
				uid ? "uids" : "gids", uid ? "61000-61999" : "62000-62999");
	if (a < ID_LO_MIN)
		return fail_key(p, k->name, "\"%s\": LO must be at least %lu (the system's own "
				"ids are below)", v, ID_LO_MIN);
	if (a > b)
		return fail_key(p, k->name, "\"%s\": LO is greater than HI", v);
	if (b - a + 1 > RANGE_WIDTH_MAX)
		return fail_key(p, k->name, "\"%s\" holds %lu ids, more than %lu", v, b - a + 1,
				RANGE_WIDTH_MAX);
	if (a <= NOBODY_ID + 1 && b >= NOBODY_ID)
		return fail_key(p, k->name, "\"%s\" holds %lu or %lu (nobody, and the 16-bit -1)", v,
				NOBODY_ID, NOBODY_ID + 1);
	*lo = (unsigned)a;
	*hi = (unsigned)b;
	return 0;
}

/* An absolute path, or "" for none. */
int mc_cfg_set_opt_path(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	char *dst = FIELD(p, k, char *);
	if (v[0] == '\0') {
		dst[0] = '\0';
		return 0;
	}
	if (v[0] != '/' || mc_cfg_has_control_chars(v))
		return fail_key(p, k->name, "\"%s\" is not an absolute path", v);
	if (strlcpy(dst, v, MC_PATH_MAX) >= MC_PATH_MAX)
		return fail_key(p, k->name, "path longer than %d characters", MC_PATH_MAX - 1);
	return 0;
}

int mc_cfg_set_bool(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*FIELD(p, k, bool *) = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*FIELD(p, k, bool *) = false;
			return 0;
		}
	}
	return fail_key(p, k->name, "\"%s\" is not true or false", v);
}

int mc_cfg_set_onoff(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
		*FIELD(p, k, bool *) = strcmp(v, "on") == 0;
		return 0;
	}
	return fail_key(p, k->name, "\"%s\" is not on or off", v);
}

/* agent_env_file: its variables go to every agent, so whoever can write it
 * can run code as them (LD_PRELOAD aside, PATH): only root or the daemon,
 * and not through its group or everyone. The daemon's user is this
 * process's, or (multicad -t run by root) the token file's owner: only the
 * daemon can read that. */
static uid_t token_owner(const struct mc_config *c)
{
	struct stat st;
	if (c->token_file[0] == '\0' || stat(c->token_file, &st) < 0 || st.st_uid == 0)
		return (uid_t)-1;
	return st.st_uid;
}

static void check_env_file(struct parse *p)
{
	const struct mc_config *c = p->c;
	int i = mc_cfg_dkey_index("agent_env_file");
	if (c->agent_env_file[0] == '\0' || p->dkey_bad[i])
		return;
	unsigned line = p->dkey_line[i];
	struct stat st;
	if (stat(c->agent_env_file, &st) < 0) {
		int e = errno;
		mc_cfg_problem(p, e, line, "agent_env_file", "%s: cannot stat: %s",
			       c->agent_env_file, strerror(e));
		return;
	}
	if (!S_ISREG(st.st_mode))
		mc_cfg_problem(p, EINVAL, line, "agent_env_file", "%s: not a regular file",
			       c->agent_env_file);
	else if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != token_owner(c))
		mc_cfg_problem(p, EPERM, line, "agent_env_file", "%s: owned by uid %u: it must "
			       "be owned by root or by the daemon's user (uid %u)", c->agent_env_file,
			       (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		mc_cfg_problem(p, EPERM, line, "agent_env_file", "%s: mode %04o is group or "
			       "world writable (chmod 600 it): whoever writes it runs code as the "
			       "agents", c->agent_env_file, (unsigned)(st.st_mode & 07777));
}

void mc_cfg_finish_agents(struct parse *p)
{
	struct mc_config *c = p->c;
	int iu = mc_cfg_dkey_index("agent_user");
	c->agent_user_given = p->dkey_line[iu] != 0 && !p->dkey_bad[iu];
	int ir = mc_cfg_dkey_index("agent_uid_range"), ig = mc_cfg_dkey_index("agent_gid_range");
	unsigned lr = p->dkey_line[ir], lg = p->dkey_line[ig];
	/* Both given: the operator means two sets of ids; one id in both
	 * would be a workspace's group and another's user. */
	if (lr != 0 && lg != 0 && !p->dkey_bad[ir] && !p->dkey_bad[ig] && c->agent_uid_hi != 0 &&
	    c->agent_uid_lo <= c->agent_gid_hi && c->agent_gid_lo <= c->agent_uid_hi)
		mc_cfg_problem(p, EINVAL, lr > lg ? lr : lg, lr > lg ? "agent_uid_range" : "agent_gid_range",
			       "%u-%u overlaps %s (%u-%u)",
			       lr > lg ? c->agent_uid_lo : c->agent_gid_lo,
			       lr > lg ? c->agent_uid_hi : c->agent_gid_hi,
			       lr > lg ? "agent_gid_range" : "agent_uid_range",
			       lr > lg ? c->agent_gid_lo : c->agent_uid_lo,
			       lr > lg ? c->agent_gid_hi : c->agent_uid_hi);
	check_env_file(p);
}

static const char *mark(const struct mc_config *c, const char *key)
{
	int i = mc_cfg_dkey_index(key);
	return (c->daemon_keys_set & (UINT64_C(1) << i)) ? "" : "  ; default";
}

void mc_cfg_print_agents(const struct mc_config *c, FILE *f)
{
	fprintf(f, "agent_user =%s%s%s\n", c->agent_user[0] ? " " : "", c->agent_user,
		mark(c, "agent_user"));
	if (c->agent_uid_hi != 0)
		fprintf(f, "agent_uid_range = %u-%u%s\n", c->agent_uid_lo, c->agent_uid_hi,
			mark(c, "agent_uid_range"));
	else
		fprintf(f, "agent_uid_range =%s\n", mark(c, "agent_uid_range"));
	fprintf(f, "agent_gid_range = %u-%u%s\n", c->agent_gid_lo, c->agent_gid_hi,
		mark(c, "agent_gid_range"));
	fprintf(f, "agent_home_template =%s%s%s\n", c->agent_home_template[0] ? " " : "",
		c->agent_home_template, mark(c, "agent_home_template"));
	fprintf(f, "agent_env_file =%s%s%s\n", c->agent_env_file[0] ? " " : "", c->agent_env_file,
		mark(c, "agent_env_file"));
	fprintf(f, "allow_profile_paths = %s%s\n", c->allow_profile_paths ? "true" : "false",
		mark(c, "allow_profile_paths"));
	fprintf(f, "websocket = %s%s\n", c->websocket ? "on" : "off", mark(c, "websocket"));
}
