/* The link's websocket session: one socket for the host's runtime set.
 *
 *   state \ event SETTLED(set)       CONNECTED  OPENED  FAILED   LOST     RETRY  STOP
 *   OFF           -                  -          -       -        -        -      -
 *   WAIT_SET      non-empty: dial    -          -       -        -        -      OFF
 *   DIALING       empty: WAIT_SET    HANDSHAKE  UP      BACKOFF  -        -      OFF
 *                 else: redial
 *   HANDSHAKE     as DIALING         -          UP      BACKOFF  -        -      OFF
 *   UP            as DIALING         -          -       -        BACKOFF  -      OFF (CLOSE)
 *   BACKOFF       empty: WAIT_SET    -          -       -        -        dial   OFF
 *                 else: dial
 *
 * OFF -> WAIT_SET when the link is ready (CONFIG + TOKEN) unless
 * websocket = off. SETTLED: the runtime set has been stable 500 ms (at
 * most 3 s after its first change) and its sorted form differs from the
 * socket's; an unchanged set never reconnects. No runtimes, no socket (an
 * mdt_ token with an empty set is refused 400). A redial for a new set
 * does not sleep and resets the backoff; in BACKOFF it dials at once but
 * keeps the backoff (multica's rules, reference 1.4, 1.6). FAILED: a dial
 * or handshake failure of any kind, 10 s at most. LOST: the server closed,
 * a protocol violation, or nothing received for 60 s. Backoff 1 s doubling
 * to 30 s, +-20 %, reset after a connection up >= 10 s. Entering UP:
 * PUSH_STATE {up:true} and a claim; leaving it: PUSH_STATE {up:false}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/backoff.h"
#include "common/log.h"
#include "ipc/ws_msgs.h"
#include "link/link_int.h"
#include "link/ws.h"
#include "link/ws_conn.h"

#define DEBOUNCE_MS 500
#define DEBOUNCE_MAX_MS 3000
#define HANDSHAKE_MS 10000
#define DEAD_MS 60000          /* nothing received: the socket is dead */
#define PING_AFTER_MS 25000    /* silence before our own PING */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 10000        /* up this long: the backoff starts over */
#define WARN_EVERY_MS (10 * 60 * 1000)

enum ws_state { WS_OFF, WS_WAIT_SET, WS_DIALING, WS_HANDSHAKE, WS_UP, WS_BACKOFF };

static const char *const state_name[] = { "off", "wait_set", "dialing", "handshake", "up",
					  "backoff" };

struct mc_ws {
	enum ws_state st;
	struct mc_link *l;            /* for the connection's callbacks */
	struct mc_secret *token;
	struct mc_ws_conn *conn;
	struct mc_ws_target tgt;      /* of conn, or of the last dial (BACKOFF) */
	mc_ms_t dial_deadline, up_since, last_rx, last_ping, retry_at;
	mc_ms_t chg_first, chg_last;  /* a pending set change (0: none) */
	struct mc_backoff bo;
	bool streak;                  /* failing since the last UP */
	mc_ms_t streak_warn_at;
	unsigned streak_n;
	bool stopped;
	/* What the supervisor was last told (PUSH_STATE), and whether the
	 * connection being dialed replaces an UP one for a new runtime set. */
	bool told_up, set_redial;
	mc_ms_t dead_ms, ping_ms;     /* DEAD_MS, PING_AFTER_MS (a test knob) */
	struct mc_ws_stats stats;
};

struct mc_ws *mc_ws_new(void)
{
	struct mc_ws *ws = calloc(1, sizeof *ws);
	if (ws == NULL)
		return NULL;
	mc_backoff_init(&ws->bo, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
	ws->dead_ms = DEAD_MS;
	ws->ping_ms = PING_AFTER_MS;
#ifdef MC_TEST_HOOKS
	/* Test builds only: a shorter read deadline (the ping scales with it). */
	const char *k = getenv("MULTICAD_TEST_WS_SILENCE_MS");
	char *end;
	long v = k != NULL ? strtol(k, &end, 10) : 0;
	if (k != NULL && *end == '\0' && v >= 100 && v <= DEAD_MS) {
		ws->dead_ms = v;
		ws->ping_ms = v * PING_AFTER_MS / DEAD_MS;
	}
#endif
	return ws;
}

void mc_ws_free(struct mc_ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->conn != NULL)
		mc_ws_conn_close(ws->conn, "link exiting");
	mc_ws_conn_free(ws->conn);
	mc_ws_target_clear(&ws->tgt);
	mc_secret_free(ws->token);
	free(ws);
}

void mc_ws_set_token(struct mc_link *l, struct mc_secret *tok)
{
	if (l->push == NULL)
		return;
	struct mc_secret *c = mc_secret_dup(tok);
	if (c == NULL)
		return; /* the old one stays */
	mc_secret_free(l->push->token);
	l->push->token = c;
}

bool mc_ws_up(const struct mc_link *l)
{
	return l->push != NULL && l->push->st == WS_UP;
}

const struct mc_ws_stats *mc_ws_stats(const struct mc_link *l)
{
	static const struct mc_ws_stats none;
	return l->push != NULL ? &l->push->stats : &none;
}

static void set_state(struct mc_link *l, enum ws_state st)
{
	struct mc_ws *ws = l->push;
	if (ws->st == st)
		return;
	enum ws_state was = ws->st;
	ws->st = st;
	mc_log(MC_LOG_DEBUG, "websocket state", "from", state_name[was], "to", state_name[st], NULL);
	(void)was;
	/* A redial for a new runtime set is no outage: the supervisor hears
	 * neither a down nor a second up, so a thousand workers are not all
	 * asked to re-check their profiles because one of them registered.
	 * What the server pushes in the gap (one handshake long) is caught by
	 * the stretched polls; a claim follows the new connection anyway. */
	bool redialing = ws->set_redial && (st == WS_DIALING || st == WS_HANDSHAKE);
	if (ws->told_up && st != WS_UP && !redialing) {
		ws->told_up = false;
		mc_link_queued(l, mc_ipc_send_push_state(&l->wr, false), "PUSH_STATE");
		mc_claim_unstretch(l); /* the normal poll again, counted from the last */
	}
	if (!redialing)
		ws->set_redial = false;
	if (st == WS_UP) {
		if (!ws->told_up)
			mc_link_queued(l, mc_ipc_send_push_state(&l->wr, true), "PUSH_STATE");
		ws->told_up = true;
		mc_claim_event(l, CE_WAKE); /* what was queued while we were away */
	}
}

static void drop_conn(struct mc_ws *ws, bool close_frame, const char *why)
{
	if (ws->conn == NULL)
		return;
	if (close_frame)
		mc_ws_conn_close(ws->conn, why);
	mc_ws_conn_free(ws->conn);
	ws->conn = NULL;
}

/* A failure of the streak: WARN the first and every 10 min, else DEBUG. */
static void log_failure(struct mc_ws *ws, const char *msg, const char *why, long status)
{
	mc_ms_t now = mc_now_ms();
	ws->streak_n++;
	bool warn = !ws->streak || now >= ws->streak_warn_at;
	if (warn)
		ws->streak_warn_at = now + WARN_EVERY_MS;
	ws->streak = true;
	mc_log(warn ? MC_LOG_WARN : MC_LOG_DEBUG, msg, "error", why,
	       "status", status > 0 ? MC_LOG_NUM(status) : "none",
	       "failures", MC_LOG_NUM(ws->streak_n), NULL);
}

static void back_off(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	ws->retry_at = mc_now_ms() + mc_backoff_next(&ws->bo);
	set_state(l, WS_BACKOFF);
}

/* ---- messages ---- */

static void on_bytes(void *arg)
{
	struct mc_ws *ws = ((struct mc_link *)arg)->push;
	ws->last_rx = mc_now_ms();
}

static void ignored(struct mc_ws *ws, const char *why, const char *type)
{
	ws->stats.ignored++;
	mc_log(MC_LOG_DEBUG, "websocket message ignored", "why", why, "type", type,
	       "ignored", MC_LOG_NUM(ws->stats.ignored), NULL);
}

static void push(struct mc_link *l, enum mc_push_event ev, const char *ws_id)
{
	struct mc_push_msg m = { .event = ev };
	if (ws_id != NULL)
		memcpy(m.workspace_id, ws_id, strlen(ws_id) + 1);
	mc_link_queued(l, mc_ipc_send_push(&l->wr, &m), "PUSH");
}

static void on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct mc_link *l = arg;
	struct mc_ws *ws = l->push;
	ws->stats.msgs++;
	cJSON *o = cJSON_ParseWithLength((const char *)msg, len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(o, "payload");
	/* Extra top-level keys (the relay's event_id) are ignored, not the frame. */
	if (!cJSON_IsObject(o) || !cJSON_IsString(type))
		ignored(ws, "not a {type, payload} object", NULL);
	else if (payload == NULL || cJSON_IsNull(payload))
		ignored(ws, "no payload", type->valuestring);
	else if (strcmp(type->valuestring, "daemon:task_available") == 0)
		mc_claim_event(l, CE_WAKE);
	else if (strcmp(type->valuestring, "daemon:workspaces_changed") == 0)
		push(l, MC_PUSH_WORKSPACES_CHANGED, NULL);
	else if (strcmp(type->valuestring, "daemon:runtime_profiles_changed") == 0) {
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(payload, "workspace_id");
		if (cJSON_IsString(w) && mc_is_uuid(w->valuestring))
			push(l, MC_PUSH_PROFILES_CHANGED, w->valuestring);
		else
			ignored(ws, "workspace_id is not a UUID", type->valuestring);
	} else {
		ignored(ws, "type not handled", type->valuestring);
	}
	cJSON_Delete(o);
}

static void on_open(void *arg)
{
	struct mc_link *l = arg;
	struct mc_ws *ws = l->push;
	mc_ms_t now = mc_now_ms();
	ws->up_since = ws->last_rx = ws->last_ping = now;
	ws->stats.ups++;
	mc_log(MC_LOG_INFO, "websocket up; pushes on", "runtimes",
	       MC_LOG_NUM(mc_link_n_runtimes(l)), "after_failures", MC_LOG_NUM(ws->streak_n), NULL);
	ws->streak = false;
	ws->streak_n = 0;
	set_state(l, WS_UP);
}

/* ---- dialing ---- */

static void dial(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	drop_conn(ws, true, "redial");
	mc_ws_target_clear(&ws->tgt);
	size_t n;
	char (*ids)[40] = mc_link_all_runtimes(l, &n);
	if (n == 0) {
		free(ids);
		set_state(l, WS_WAIT_SET);
		return;
	}
	int rc = mc_ws_target_build(l->cfg.server_url, (const char (*)[40])ids, n, &ws->tgt);
	free(ids);
	if (rc < 0) {
		log_failure(ws, "websocket unavailable; polling continues", strerror(errno), 0);
		back_off(l);
		return;
	}
	ws->stats.dials++;
	struct mc_ws_dial d = {
		.target = &ws->tgt,
		.token = ws->token != NULL ? mc_secret_open(ws->token) : NULL,
		.client_version = l->cfg.cli_version,
		.ca_file = l->cfg.ca_file,
	};
	struct mc_ws_conn_cb cb = { on_open, on_bytes, on_msg, l };
	ws->conn = mc_ws_conn_new(&d, &cb);
	if (ws->token != NULL)
		mc_secret_close(ws->token);
	if (ws->conn == NULL) {
		log_failure(ws, "websocket unavailable; polling continues", strerror(errno), 0);
		back_off(l);
		return;
	}
	mc_log(MC_LOG_DEBUG, "websocket dialing", "runtimes", MC_LOG_NUM(n), NULL);
	ws->dial_deadline = mc_now_ms() + HANDSHAKE_MS;
	set_state(l, WS_DIALING);
}

/* The set settled: act when it is not the socket's. */
static void settled(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	if (ws->st == WS_OFF)
		return;
	size_t n;
	char (*ids)[40] = mc_link_all_runtimes(l, &n);
	struct mc_ws_target t;
	int rc = n > 0 ? mc_ws_target_build(l->cfg.server_url, (const char (*)[40])ids, n, &t) : 0;
	free(ids);
	if (rc < 0)
		return; /* out of memory (a bad URL fails the dial instead) */
	const char *now_set = n > 0 ? t.set : "";
	const char *have = ws->st == WS_WAIT_SET || ws->tgt.set == NULL ? "" : ws->tgt.set;
	bool same = strcmp(now_set, have) == 0;
	if (n > 0)
		mc_ws_target_clear(&t);
	if (same)
		return;
	if (n == 0) {
		drop_conn(ws, true, "no runtimes");
		mc_ws_target_clear(&ws->tgt);
		set_state(l, WS_WAIT_SET);
		return;
	}
	if (ws->st != WS_BACKOFF && ws->st != WS_WAIT_SET)
		mc_backoff_reset(&ws->bo); /* a set change is no failure */
	mc_log(MC_LOG_DEBUG, "websocket runtime set changed; redialing", NULL);
	ws->set_redial = ws->st == WS_UP || ws->set_redial;
	dial(l);
}

void mc_ws_ready(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	if (ws == NULL || ws->stopped || ws->st != WS_OFF)
		return;
	if (l->cfg.websocket_off) {
		mc_log(MC_LOG_INFO, "websocket off (websocket = off): polling only", NULL);
		return;
	}
	set_state(l, WS_WAIT_SET);
	mc_ws_runtimes_changed(l);
}

void mc_ws_runtimes_changed(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	if (ws == NULL || ws->st == WS_OFF)
		return;
	mc_ms_t now = mc_now_ms();
	if (ws->chg_first == 0)
		ws->chg_first = now;
	ws->chg_last = now;
}

void mc_ws_stop(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	if (ws == NULL || ws->stopped)
		return;
	ws->stopped = true;
	drop_conn(ws, true, "stopping");
	set_state(l, WS_OFF);
}

/* ---- the loop ---- */

unsigned mc_ws_poll_fds(struct mc_link *l, struct curl_waitfd *fds, unsigned max)
{
	if (l->push == NULL || l->push->conn == NULL)
		return 0;
	return mc_ws_conn_fds(l->push->conn, fds, max);
}

/* What the connection's last step did to the session. */
static void reconcile(struct mc_link *l)
{
	struct mc_ws *ws = l->push;
	enum mc_ws_conn_state cs = mc_ws_conn_state(ws->conn);
	if (ws->st == WS_DIALING && cs == MC_WSC_HANDSHAKE)
		set_state(l, WS_HANDSHAKE);
	if (cs == MC_WSC_FAILED) {
		log_failure(ws, "websocket unavailable; polling continues", mc_ws_conn_why(ws->conn),
			    mc_ws_conn_status(ws->conn));
		drop_conn(ws, false, NULL);
		back_off(l);
	} else if (cs == MC_WSC_CLOSED) {
		const char *why = mc_ws_conn_why(ws->conn);
		if (mc_ws_conn_violation(ws->conn)) {
			ws->stats.violations++;
			mc_log(MC_LOG_WARN, "websocket protocol violation; closing, polling continues",
			       "error", why, NULL);
			ws->streak = true;
			ws->streak_warn_at = mc_now_ms() + WARN_EVERY_MS;
		} else {
			log_failure(ws, "websocket lost; polling continues", why, 0);
		}
		if (mc_now_ms() - ws->up_since >= STABLE_MS)
			mc_backoff_reset(&ws->bo);
		drop_conn(ws, false, NULL);
		back_off(l);
	}
}

void mc_ws_on_poll(struct mc_link *l, const struct curl_waitfd *fds, unsigned n)
{
	(void)fds; /* stepped every turn: cheap, and TLS may hold bytes poll cannot see */
	(void)n;
	struct mc_ws *ws = l->push;
	if (ws == NULL || ws->conn == NULL)
		return;
	mc_ws_conn_step(ws->conn);
	reconcile(l);
}

void mc_ws_timers(struct mc_link *l, mc_ms_t now)
{
	struct mc_ws *ws = l->push;
	if (ws == NULL || ws->st == WS_OFF)
		return;
	if (ws->chg_first != 0 &&
	    (now >= ws->chg_last + DEBOUNCE_MS || now >= ws->chg_first + DEBOUNCE_MAX_MS)) {
		ws->chg_first = ws->chg_last = 0;
		settled(l);
	}
	switch (ws->st) {
	case WS_DIALING:
	case WS_HANDSHAKE:
		if (now >= ws->dial_deadline) {
			log_failure(ws, "websocket unavailable; polling continues",
				    "no upgrade within 10 s", 0);
			drop_conn(ws, false, NULL);
			back_off(l);
		}
		return;
	case WS_UP:
		if (now - ws->last_rx >= ws->dead_ms) {
			ws->stats.dead++;
			char why[64];
			snprintf(why, sizeof why, "nothing received for %lld ms", (long long)ws->dead_ms);
			mc_ws_conn_close(ws->conn, why);
			reconcile(l);
		} else if (now - ws->last_rx >= ws->ping_ms && now - ws->last_ping >= ws->ping_ms) {
			ws->last_ping = now; /* the answer (or anything) re-arms last_rx */
			mc_ws_conn_ping(ws->conn);
			reconcile(l);
		}
		return;
	case WS_BACKOFF:
		if (now >= ws->retry_at)
			dial(l);
		return;
	default:
		return;
	}
}

mc_ms_t mc_ws_next_deadline(const struct mc_link *l)
{
	const struct mc_ws *ws = l->push;
	if (ws == NULL || ws->st == WS_OFF)
		return 0;
	mc_ms_t now = mc_now_ms(), d = 0;
	if (ws->chg_first != 0) {
		mc_ms_t a = ws->chg_last + DEBOUNCE_MS, b = ws->chg_first + DEBOUNCE_MAX_MS;
		d = a < b ? a : b;
	}
	switch (ws->st) {
	case WS_DIALING:
	case WS_HANDSHAKE:
		d = mc_ms_earliest(d, ws->dial_deadline);
		d = mc_ms_earliest(d, mc_ws_conn_curl_timeout(ws->conn, now));
		break;
	case WS_UP: {
		mc_ms_t ping = ws->last_rx + ws->ping_ms;
		if (ping < ws->last_ping + ws->ping_ms)
			ping = ws->last_ping + ws->ping_ms;
		d = mc_ms_earliest(d, mc_ms_earliest(ws->last_rx + ws->dead_ms, ping));
		if (mc_ws_conn_more(ws->conn))
			d = mc_ms_earliest(d, now);
		break;
	}
	case WS_BACKOFF:
		d = mc_ms_earliest(d, ws->retry_at);
		break;
	default:
		break;
	}
	return d;
}
