/* The token file, watched: every few seconds a stat (inode, size, mtime;
 * no inotify needed at this rate). On a change the file is read with the
 * checks of a start-up; a good token is handed to the running workers (as
 * a reload does for a rotated token) and restarts the workspaces parked in
 * config-error, and the cleanups waiting for a retry try again at once. A
 * file that cannot be used is logged once per change and changes nothing. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <bsd/string.h>

#include "common/log.h"
#include "supervisor/sv.h"

#define TOKEN_POLL_MS 1000

static void look(const char *path, struct mc_tokwatch *out)
{
	struct stat st;
	memset(out, 0, sizeof *out);
	strlcpy(out->path, path, sizeof out->path);
	if (stat(path, &st) < 0) {
		out->err = errno;
		return;
	}
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	out->size = st.st_size;
	out->mtime_s = (long)st.st_mtim.tv_sec;
	out->mtime_ns = st.st_mtim.tv_nsec;
}

static bool same_look(const struct mc_tokwatch *a, const struct mc_tokwatch *b)
{
	return strcmp(a->path, b->path) == 0 && a->err == b->err && a->dev == b->dev &&
	       a->ino == b->ino && a->size == b->size && a->mtime_s == b->mtime_s &&
	       a->mtime_ns == b->mtime_ns;
}

/* Keeps the timer (embedded in what look() overwrites). */
static void remember(struct mc_sv *sv, const struct mc_tokwatch *now)
{
	struct mc_timer t = sv->tokwatch.timer;
	sv->tokwatch = *now;
	sv->tokwatch.timer = t;
}

void mc_tokwatch_rebase(struct mc_sv *sv)
{
	struct mc_tokwatch now;
	look(sv->cfg.token_file, &now);
	remember(sv, &now);
}

void mc_tokwatch_start(struct mc_sv *sv)
{
	mc_timer_init(&sv->tokwatch.timer, TIMER_TOKEN, sv);
	mc_tokwatch_rebase(sv);
	mc_timerq_arm(&sv->timers, &sv->tokwatch.timer, mc_now_ms() + TOKEN_POLL_MS);
}

/* A good token read from the changed file: takes ownership of tok. */
static void token_changed(struct mc_sv *sv, struct mc_secret *tok)
{
	bool rotated = !mc_secret_equal(sv->token, tok);
	if (rotated) {
		mc_secret_free(sv->token);
		sv->token = tok;
	} else {
		mc_secret_free(tok);
	}
	mc_log(MC_LOG_INFO, rotated ? "token file changed; new token in use"
				    : "token file changed; same token", NULL);
	unsigned restarted = 0;
	struct mc_wk *wk, *tmp;
	RB_FOREACH_SAFE(wk, mc_wk_tree, &sv->workers, tmp) {
		if (mc_wk_config_parked(wk)) {
			mc_wk_restart(sv, wk);
			restarted++;
		} else if (rotated) {
			mc_wk_push_token(sv, wk); /* live: no restart */
		}
		mc_wk_kick_cleanup(sv, wk);
	}
	mc_orphan_kick_all(sv);
	if (restarted > 0)
		mc_log(MC_LOG_INFO, "restarting config-error workspaces after the token change",
		       "workspaces", MC_LOG_NUM(restarted), NULL);
}

static void on_change(struct mc_sv *sv, const struct mc_tokwatch *now)
{
	char err[512];
	if (now->err != 0) {
		snprintf(err, sizeof err, "%.400s: %s", now->path, strerror(now->err));
	} else {
		struct mc_secret *tok = mc_secret_from_file(now->path, err, sizeof err);
		if (tok != NULL) {
			token_changed(sv, tok);
			return;
		}
	}
	mc_log(MC_LOG_WARN, "token file changed but cannot be used; keeping the current token",
	       "error", err, NULL);
}

void mc_tokwatch_on_timer(struct mc_sv *sv)
{
	if (sv->shutting_down)
		return;
	struct mc_tokwatch now;
	look(sv->cfg.token_file, &now);
	bool moved = strcmp(now.path, sv->tokwatch.path) != 0; /* a reload changed token_file */
	if (!same_look(&now, &sv->tokwatch)) {
		remember(sv, &now);
		if (!moved)
			on_change(sv, &now);
	}
	mc_timerq_arm(&sv->timers, &sv->tokwatch.timer, mc_now_ms() + TOKEN_POLL_MS);
}
