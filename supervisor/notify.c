#include "supervisor/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "supervisor/sv.h"

#define STATUS_EVERY_MS 1000

static void status_line(struct mc_sv *sv, char *buf, size_t n)
{
	size_t online = 0, failed = 0;
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers) {
		const char *const *ids;
		if (wk->state == WK_RUNNING)
			online += mc_ledger_get(sv->ledger, wk->ws, &ids);
		if (wk->state == WK_FAILED || wk->state == WK_CONFIG_ERROR)
			failed++;
	}
	snprintf(buf, n, "%zu workspaces, %zu runtimes online, %zu failed, %zu task%s running%s%s",
		 sv->n_workers, online, failed, sv->tasks.n, sv->tasks.n == 1 ? "" : "s",
		 sv->draining ? " (draining)" : "", sv->last_reload_ok ? "" : " (last reload rejected)");
}

void mc_notify_init(struct mc_sv *sv)
{
	uint64_t usec = 0;
	sv->notify_enabled = getenv("NOTIFY_SOCKET") != NULL;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		sv->watchdog_every_ms = (mc_ms_t)(usec / 2000); /* twice per period */
}

/* Ready once no worker is still on its way to its first attempt. */
static bool initial_start_done(struct mc_sv *sv)
{
	if (!sv->probes_done || (sv->cfg.all_workspaces && !sv->membership_known))
		return false;
	struct mc_wk *wk;
	RB_FOREACH(wk, mc_wk_tree, &sv->workers)
		if (wk->state == WK_QUEUED || wk->state == WK_STARTING ||
		    (wk->state == WK_CLEANUP && wk->restarts == 0))
			return false;
	return true;
}

void mc_notify_tick(struct mc_sv *sv)
{
	if (!sv->notify_enabled)
		return;
	mc_ms_t now = mc_now_ms();
	if (!sv->notified_ready && !sv->shutting_down && initial_start_done(sv)) {
		sv->notified_ready = true;
		char status[200];
		status_line(sv, status, sizeof status);
		sd_notifyf(0, "READY=1\nSTATUS=%s", status);
		sv->status_at = now;
	}
	if (sv->notified_ready && now - sv->status_at >= STATUS_EVERY_MS) {
		char status[200];
		status_line(sv, status, sizeof status);
		if (strcmp(status, sv->last_status) != 0) {
			sd_notifyf(0, "STATUS=%s", status);
			snprintf(sv->last_status, sizeof sv->last_status, "%s", status);
		}
		sv->status_at = now;
	}
	if (sv->watchdog_every_ms > 0 && now - sv->watchdog_at >= sv->watchdog_every_ms) {
		sd_notify(0, "WATCHDOG=1");
		sv->watchdog_at = now;
	}
}

void mc_notify_reloading(struct mc_sv *sv)
{
	if (!sv->notify_enabled)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void mc_notify_reloaded(struct mc_sv *sv)
{
	if (!sv->notify_enabled)
		return;
	char status[200];
	status_line(sv, status, sizeof status);
	if (sv->last_reload_ok)
		sd_notifyf(0, "READY=1\nSTATUS=%s", status);
	else
		sd_notifyf(0, "READY=1\nSTATUS=reload rejected: %.400s", sv->last_reload_error);
}

void mc_notify_stopping(struct mc_sv *sv)
{
	if (sv->notify_enabled)
		sd_notify(0, "STOPPING=1\nSTATUS=stopping: deregistering runtimes");
}
