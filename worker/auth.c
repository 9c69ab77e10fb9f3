/* Whether the server rejects this daemon's token or workspace, judged over
 * time rather than per answer. */
#include <string.h>

#include "worker/worker_int.h"

/* Every runtime's beat answers for itself, so a moment of 403 (a WAF, a
 * proxy, a server deploy) rejects several requests within milliseconds:
 * the token is bad only when the rejections have lasted this long. */
static mc_ms_t auth_window(const struct mc_worker *w)
{
	mc_ms_t win = 2 * (mc_ms_t)w->cfg.heartbeat_interval_ms;
	if (win < MC_WORKER_AUTH_WINDOW_MIN_MS)
		return MC_WORKER_AUTH_WINDOW_MIN_MS;
	return win > MC_WORKER_AUTH_WINDOW_MAX_MS ? MC_WORKER_AUTH_WINDOW_MAX_MS : win;
}

bool mc_worker_note_auth(struct mc_worker *w, const struct mc_api_error *err)
{
	bool auth = err->kind == MC_API_ERR_HTTP && (err->status == 401 || err->status == 403);
	bool gone_ws = err->kind == MC_API_ERR_HTTP && err->status == 404 &&
		       strstr(err->message, "workspace not found") != NULL;
	if (err->kind == MC_API_OK || err->kind == MC_API_ERR_RUNTIME_NOT_FOUND) {
		w->auth_rejects = 0; /* the token works */
		return false;
	}
	if (!auth && !gone_ws)
		return false; /* a 5xx or a timeout says nothing about the token */
	mc_ms_t now = mc_now_ms();
	if (w->auth_rejects++ == 0)
		w->auth_first_reject_at = now;
	return w->auth_rejects >= MC_WORKER_AUTH_REJECTS_MIN &&
	       now - w->auth_first_reject_at >= auth_window(w);
}
