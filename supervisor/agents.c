/* The supervisor's side of the agents' identity (issue 11): one
 * mc_agent_ids (supervisor/agent_ids.h) configured at start and at every
 * reload, the agents' fields of each worker's CONFIG, the fallback said
 * out loud (log, status), and the modes of state_dir that let agents reach
 * workspaces_root and nothing else in it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/log.h"
#include "supervisor/agent_ids.h"
#include "supervisor/sv.h"

#define STATE_DIR_SHARED 0711   /* agents pass through to workspaces_root */
#define STATE_DIR_PRIVATE 0700

/* Logs the decision when it differs from the one last logged: the
 * fallback at warn, with its reason (never silently). */
static void say_decision(struct mc_sv *sv)
{
	struct mc_agent_ids_info in;
	mc_agent_ids_info(sv->agent_ids, &in);
	char now[sizeof sv->agent_said];
	if (in.reason != NULL)
		snprintf(now, sizeof now, "fallback: %s", in.reason);
	else
		snprintf(now, sizeof now, "%s %s %u-%u %u-%u", mc_agent_mode_name(in.mode),
			 in.user ? in.user : "-", in.uid_lo, in.uid_hi, in.gid_lo, in.gid_hi);
	if (strcmp(now, sv->agent_said) == 0)
		return;
	strlcpy(sv->agent_said, now, sizeof sv->agent_said);
	if (in.reason != NULL) {
		mc_log(MC_LOG_WARN, MC_IDENTITY_FALLBACK_WARNING, "reason", in.reason, NULL);
		return;
	}
	char range[48] = "";
	if (in.mode == MC_AGENT_MODE_UID_RANGE)
		snprintf(range, sizeof range, "%u-%u", in.uid_lo, in.uid_hi);
	else
		snprintf(range, sizeof range, "%u-%u", in.gid_lo, in.gid_hi);
	mc_log(MC_LOG_INFO, "agents run apart from the daemon", "mode", mc_agent_mode_name(in.mode),
	       "user", in.user ? in.user : "", in.mode == MC_AGENT_MODE_UID_RANGE ? "uid_range"
									   : "gid_range",
	       range, NULL);
}

/* workspaces_root's first component below state_dir ("work"), or "" when
 * it is not inside state_dir. */
static void root_entry(const struct mc_config *c, char *out, size_t n)
{
	out[0] = '\0';
	size_t l = strlen(c->state_dir);
	while (l > 1 && c->state_dir[l - 1] == '/')
		l--;
	if (strncmp(c->workspaces_root, c->state_dir, l) != 0 || c->workspaces_root[l] != '/')
		return;
	const char *e = c->workspaces_root + l + 1;
	size_t k = strcspn(e, "/");
	if (k > 0 && k < n) {
		memcpy(out, e, k);
		out[k] = '\0';
	}
}

/* Under isolation: state_dir 0711 when workspaces_root is inside it (else
 * 0700), every other entry closed to group and others (0700 / 0600): the
 * ledger, the outbox, the agent-ids file, the daemon id, the locks. Only
 * what the daemon owns is changed; symlinks are not followed. */
static void fix_state_dir(struct mc_sv *sv)
{
	const struct mc_config *c = &sv->cfg;
	bool isolated = mc_agent_ids_fallback_reason(sv->agent_ids) == NULL;
	char skip[MC_PATH_MAX];
	root_entry(c, skip, sizeof skip);
	int dfd = open(c->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		if (dfd >= 0)
			close(dfd);
		mc_log(MC_LOG_WARN, "cannot open the state_dir to set its mode", "state_dir",
		       c->state_dir, "error", strerror(errno), NULL);
		return;
	}
	mode_t want = isolated && skip[0] ? STATE_DIR_SHARED : STATE_DIR_PRIVATE;
	if (st.st_uid == geteuid() && (st.st_mode & 07777) != want && fchmod(dfd, want) < 0)
		mc_log(MC_LOG_WARN, "cannot set the state_dir's mode", "state_dir", c->state_dir,
		       "error", strerror(errno), NULL);
	int fd2 = dup(dfd);
	DIR *d = fd2 < 0 ? NULL : fdopendir(fd2);
	if (d == NULL) {
		if (fd2 >= 0)
			close(fd2);
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, skip) == 0)
			continue;
		struct stat es;
		if (fstatat(dfd, e->d_name, &es, AT_SYMLINK_NOFOLLOW) < 0 || es.st_uid != geteuid())
			continue;
		mode_t m = es.st_mode & 07777;
		if ((S_ISDIR(es.st_mode) || S_ISREG(es.st_mode)) && (m & 077) != 0 &&
		    fchmodat(dfd, e->d_name, m & ~(mode_t)077, 0) < 0)
			mc_log(MC_LOG_WARN, "cannot close a state_dir entry to others", "entry",
			       e->d_name, "error", strerror(errno), NULL);
	}
	closedir(d);
	close(dfd);
}

int mc_sv_agents_start(struct mc_sv *sv, char *err, size_t n)
{
	sv->agent_ids = mc_agent_ids_new(sv->cfg.state_dir, err, n);
	if (sv->agent_ids == NULL)
		return -1;
	if (mc_agent_ids_configure(sv->agent_ids, &sv->cfg, err, n) < 0)
		return -1;
	say_decision(sv);
	fix_state_dir(sv);
	return 0;
}

int mc_sv_agents_reconfigure(struct mc_sv *sv, const struct mc_config *nc, char *err, size_t n)
{
	return sv->agent_ids == NULL ? 0 : mc_agent_ids_configure(sv->agent_ids, nc, err, n);
}

void mc_sv_agents_settle(struct mc_sv *sv)
{
	if (sv->agent_ids == NULL)
		return;
	say_decision(sv);
	fix_state_dir(sv);
	/* every worker's slot before the reload compares CONFIGs: a slot
	 * given later would read as "changed" once more */
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers) {
		struct mc_identity id;
		char e[256];
		if (wk->next != NEXT_REMOVE)
			(void)mc_agent_ids_get(sv->agent_ids, wk->ws, &id, e, sizeof e);
	}
}

void mc_sv_agents_free(struct mc_sv *sv)
{
	mc_agent_ids_free(sv->agent_ids);
	sv->agent_ids = NULL;
}

int mc_sv_agent_identity_why(struct mc_sv *sv, const char *ws, struct mc_identity *out,
			     char *err, size_t n)
{
	if (sv->agent_ids == NULL) {
		*out = (struct mc_identity){ .sw = false, .uid = (uid_t)-1, .gid = (gid_t)-1,
					     .extra_gid = (gid_t)-1 };
		return 0;
	}
	return mc_agent_ids_get(sv->agent_ids, ws, out, err, n);
}

int mc_sv_agent_identity(struct mc_sv *sv, const char *ws, struct mc_identity *out)
{
	char err[256] = "";
	int rc = mc_sv_agent_identity_why(sv, ws, out, err, sizeof err);
	if (rc < 0) {
		int e = errno;
		mc_log(MC_LOG_ERROR, "no identity for the workspace's agents", "ws", ws, "error", err,
		       NULL);
		errno = e;
	}
	return rc;
}

void mc_sv_agent_config(const struct mc_sv *sv, const char *ws, struct mc_worker_config *c)
{
	const struct mc_config *g = &sv->cfg;
	strlcpy(c->agent_home_template, g->agent_home_template, sizeof c->agent_home_template);
	strlcpy(c->agent_env_file, g->agent_env_file, sizeof c->agent_env_file);
	c->allow_profile_paths = g->allow_profile_paths;
	c->agent_switch = false;
	c->agent_uid = c->agent_gid = c->agent_extra_gid = -1;
	c->agent_home[0] = '\0';
	if (sv->agent_ids == NULL || mc_agent_ids_fallback_reason(sv->agent_ids) != NULL)
		return;
	/* isolated: a workspace without its slot yet has no valid identity,
	 * which mc_ipc_send_config refuses (a reload's digest: "changed") */
	c->agent_switch = true;
	struct mc_identity id;
	if (mc_agent_ids_peek(sv->agent_ids, ws, &id) < 0 || !id.sw)
		return;
	c->agent_uid = (long)id.uid;
	c->agent_gid = (long)id.gid;
	c->agent_extra_gid = id.extra_gid == (gid_t)-1 ? -1 : (long)id.extra_gid;
	strlcpy(c->agent_home, mc_agent_ids_home(sv->agent_ids), sizeof c->agent_home);
}

static void add_range(cJSON *o, const char *key, unsigned lo, unsigned hi)
{
	char r[32];
	if (hi == 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	snprintf(r, sizeof r, "%u-%u", lo, hi);
	cJSON_AddStringToObject(o, key, r);
}

void mc_sv_agents_status(const struct mc_sv *sv, cJSON *root)
{
	cJSON *o = cJSON_AddObjectToObject(root, "agents");
	if (o == NULL || sv->agent_ids == NULL)
		return;
	struct mc_agent_ids_info in;
	mc_agent_ids_info(sv->agent_ids, &in);
	cJSON_AddBoolToObject(o, "isolated", in.reason == NULL);
	cJSON_AddStringToObject(o, "mode", mc_agent_mode_name(in.mode));
	if (in.user != NULL)
		cJSON_AddStringToObject(o, "user", in.user);
	else
		cJSON_AddNullToObject(o, "user");
	if (in.uid >= 0)
		cJSON_AddNumberToObject(o, "uid", (double)in.uid);
	else
		cJSON_AddNullToObject(o, "uid");
	add_range(o, "uid_range", in.uid_lo, in.uid_hi);
	add_range(o, "gid_range", in.gid_lo, in.gid_hi);
	if (in.reason != NULL) {
		char w[256];
		snprintf(w, sizeof w, "%s: %s", MC_IDENTITY_FALLBACK_WARNING, in.reason);
		cJSON_AddStringToObject(o, "warning", w);
	} else {
		cJSON_AddNullToObject(o, "warning");
	}
}
