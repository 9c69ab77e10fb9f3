/* Which workspaces this host serves: the explicit list of the
 * configuration, or, with `workspaces = all`, the server's list
 * (GET /api/daemon/workspaces with ETag, every workspace_sync_interval,
 * fetched by a helper); minus exclude_workspaces. */
#include <stdlib.h>
#include <string.h>

#include <bsd/string.h>

#include "common/log.h"
#include "supervisor/sv.h"

static void schedule(struct mc_sv *sv, mc_ms_t delay)
{
	mc_timerq_arm(&sv->timers, &sv->membership_timer, mc_now_ms() + delay);
}

void mc_membership_refresh_now(struct mc_sv *sv)
{
	if (!sv->cfg.all_workspaces || sv->shutting_down)
		return;
	if (sv->membership != NULL)
		sv->membership_again = true; /* its answer may predate the change */
	else
		schedule(sv, 0);
}

void mc_membership_on_timer(struct mc_sv *sv)
{
	if (!sv->cfg.all_workspaces || sv->shutting_down || sv->membership != NULL)
		return;
	sv->membership = mc_helper_membership(sv);
	if (sv->membership == NULL)
		schedule(sv, mc_backoff_next(&sv->membership_backoff));
}

/* Parses "200 <etag>\n<id>\n..." into sv->members. */
static int take_list(struct mc_sv *sv, const char *out)
{
	const char *nl = strchr(out, '\n');
	if (nl == NULL)
		return -1;
	size_t etag_len = (size_t)(nl - out) > 4 ? (size_t)(nl - out) - 4 : 0;
	size_t n = 0;
	for (const char *p = nl + 1; *p; p++)
		n += *p == '\n';
	char (*m)[MC_ID_MAX] = n ? calloc(n, sizeof *m) : NULL;
	if (n > 0 && m == NULL)
		return -1;
	size_t k = 0;
	for (const char *p = nl + 1; *p && k < n;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len < MC_ID_MAX) {
			memcpy(m[k], p, len);
			m[k][len] = '\0';
			if (mc_is_uuid(m[k]))
				k++;
		}
		p = e ? e + 1 : p + len;
	}
	free(sv->members);
	sv->members = m;
	sv->n_members = k;
	if (etag_len >= sizeof sv->ws_etag)
		etag_len = 0; /* too long to keep: no conditional request next time */
	memcpy(sv->ws_etag, out + 4, etag_len);
	sv->ws_etag[etag_len] = '\0';
	return 0;
}

void mc_membership_on_result(struct mc_sv *sv, int status, const char *out, size_t len)
{
	(void)len;
	bool again = sv->membership_again;
	sv->membership_again = false;
	if (status != MC_HELPER_OK) {
		mc_ms_t delay = mc_backoff_next(&sv->membership_backoff);
		mc_log(MC_LOG_WARN, "workspace list unavailable; keeping the current set",
		       "retry_in_ms", MC_LOG_NUM(delay), NULL);
		schedule(sv, delay);
		return;
	}
	mc_backoff_reset(&sv->membership_backoff);
	if (strncmp(out, "200 ", 4) == 0) {
		if (take_list(sv, out) < 0) {
			schedule(sv, mc_backoff_next(&sv->membership_backoff));
			return;
		}
		if (!sv->membership_known)
			mc_log(MC_LOG_INFO, "workspace list received", "workspaces",
			       MC_LOG_NUM(sv->n_members), NULL);
		sv->membership_known = true;
		mc_sv_apply_wanted(sv);
	}
	/* "304": nothing changed. */
	schedule(sv, again ? 0 : mc_jitter(sv->cfg.workspace_sync_interval_ms, 0.2));
}
