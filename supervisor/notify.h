/* Talking to systemd (sd_notify): READY=1 once the initial workers have
 * started or failed their first attempt, RELOADING=1 with MONOTONIC_USEC
 * then READY=1 around a reload, STOPPING=1, a one-line STATUS= (workspaces,
 * runtimes online, failed workers, tasks running), and
 * WATCHDOG=1 keep-alives when WATCHDOG_USEC asks for them. Every call is a
 * no-op outside systemd (NOTIFY_SOCKET unset). */
#ifndef MC_SV_NOTIFY_H
#define MC_SV_NOTIFY_H

struct mc_sv;

void mc_notify_init(struct mc_sv *sv);
/* Called each loop turn: readiness, status changes, watchdog. Cheap. */
void mc_notify_tick(struct mc_sv *sv);
void mc_notify_reloading(struct mc_sv *sv);
void mc_notify_reloaded(struct mc_sv *sv);
void mc_notify_stopping(struct mc_sv *sv);

#endif
