#include "tests/fakeplane/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "common/log.h"
#include "tests/fakeplane/admin.h"
#include "tests/fakeplane/api.h"
#include "tests/fakeplane/faults.h"
#include "tests/fakeplane/journal.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/timer.h"
#include "tests/fakeplane/util.h"
#include "tests/fakeplane/ws.h"
#include "tests/fakeplane/ws_frame.h"

struct fp_server {
	struct MHD_Daemon *mhd;
	struct fp_app *app;
	struct fp_timer *timer;  /* ends injected delays */
	atomic_bool started;     /* MHD's messages matter until then, not after */
};

/* Where a request is between MHD's calls: GATHERING from the first call
 * (headers) through the uploads to the final call, which answers it or,
 * for an injected delay, suspends the connection: DELAYED until the timer
 * resumes it and MHD calls once more, then ANSWERED. A DELAYED request whose
 * connection ends without that call (the client hung up meanwhile) is
 * carried out when it completes, as a thread sleeping through the delay
 * used to do. */
enum rq_state { RQ_GATHERING, RQ_DELAYED, RQ_ANSWERED };

/* What the connection gets once a daemon request is settled. */
enum rq_outcome { OUT_REPLY, OUT_RESET, OUT_RAW };

/* A delayed request's strings, copied: MHD's live in the connection. */
struct saved_request {
	char *method, *path, *authorization, *if_none_match, *capabilities;
};

/* Per-request state kept in MHD's con_cls between callbacks. */
struct pending {
	struct MHD_Connection *conn;
	char *body;
	size_t len, cap;
	bool too_big;
	size_t limit;                /* body cap: FP_BODY_MAX, or FP_ADMIN_BODY_MAX */
	enum rq_state state;
	bool faulted;
	struct fp_fault_action fa;   /* owns fa.body until the answer takes it */
	atomic_bool cancelled;       /* the delay was cut short by shutdown */
	struct saved_request saved;  /* DELAYED: owned copies */
	struct fp_ws_scope ws_scope; /* an upgrade's, until the socket takes it */
};

/* Grows p->body (malloc'd, NUL-terminated) by n bytes, up to p->limit. */
static void pending_append(struct pending *p, const char *data, size_t n)
{
	if (p->too_big || p->len + n > p->limit) {
		p->too_big = true;   /* keep reading, answer 413 at the end */
		return;
	}
	if (p->len + n + 1 > p->cap) {
		while (p->cap < p->len + n + 1)
			p->cap = p->cap ? p->cap * 2 : 1024;
		p->body = fp_xrealloc(p->body, p->cap);
	}
	memcpy(p->body + p->len, data, n);
	p->len += n;
	p->body[p->len] = '\0';
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct fp_reply *r)
{
	struct MHD_Response *resp;
	if (r->body != NULL) {
		resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
		if (resp != NULL)
			r->body = NULL;   /* MHD frees it now */
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (resp == NULL)
		return MHD_NO;
	if (r->status != 304)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (r->etag[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
	if (r->private_no_cache)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
	enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Carries out a daemon request as its fault says (reset, canned reply,
 * raw: left to the caller) or through the API into *reply, and journals
 * it. */
static enum rq_outcome settle(struct fp_server *s, const struct fp_request *rq,
			      struct pending *p, bool raw, struct fp_reply *reply)
{
	struct fp_fault_action *fa = &p->fa;
	p->state = RQ_ANSWERED;
	if (p->faulted && fa->reset) {
		fp_journal_add(s->app->journal, rq->method, rq->path, rq->body, rq->body_len, 0, true);
		return OUT_RESET;
	}
	if (p->faulted && fa->header_size > 0 && raw) {
		fp_journal_add(s->app->journal, rq->method, rq->path, rq->body, rq->body_len,
			       fa->status, true);
		return OUT_RAW;
	}
	if (p->faulted && fa->respond) {
		fp_reply_raw(reply, fa->status, fa->body, fa->body_len);
		fa->body = NULL;
	} else if (p->too_big) {
		fp_reply_error(reply, 413, "request body too large");
	} else {
		fp_api_handle(s->app, rq, reply);
	}
	fp_journal_add(s->app->journal, rq->method, rq->path, rq->body, rq->body_len,
		       reply->status, p->faulted);
	mc_log(MC_LOG_DEBUG, "request", "method", rq->method, "path", rq->path,
	       "status", MC_LOG_NUM(reply->status), NULL);
	return OUT_REPLY;
}

/* Settles a daemon request and answers it. Returns MHD_NO to drop the
 * connection unanswered. */
static enum MHD_Result answer(struct fp_server *s, struct MHD_Connection *c,
			      const struct fp_request *rq, struct pending *p)
{
	/* Headers larger than MHD's pool: written raw (plain HTTP), then closed. */
	bool raw = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION) == NULL;
	struct fp_reply reply = { 0 };
	enum MHD_Result ret = MHD_NO;
	const union MHD_ConnectionInfo *ci;
	switch (settle(s, rq, p, raw, &reply)) {
	case OUT_RESET:
		break;
	case OUT_RAW:
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci != NULL)
			fp_fault_send_raw(ci->connect_fd, &p->fa);
		break;
	case OUT_REPLY:
		ret = send_reply(c, &reply);
		break;
	}
	fp_reply_release(&reply);
	return ret;
}

/* Allocates p->saved: copies of what settle needs after the connection. */
static void save_request(struct pending *p, const struct fp_request *rq)
{
	p->saved = (struct saved_request){
		fp_xstrdup(rq->method), fp_xstrdup(rq->path), fp_xstrdup(rq->authorization),
		fp_xstrdup(rq->if_none_match), fp_xstrdup(rq->capabilities),
	};
}

static void saved_release(struct saved_request *r)
{
	free(r->method);
	free(r->path);
	free(r->authorization);
	free(r->if_none_match);
	free(r->capabilities);
}

/* A delayed request whose connection ended before its resumed call (the
 * client gave up): carried out and journaled all the same, unanswered. */
static void settle_abandoned(struct fp_server *s, struct pending *p)
{
	const struct saved_request *v = &p->saved;
	struct fp_request rq = {
		.method = v->method, .path = v->path, .body = p->body ? p->body : "",
		.body_len = p->len, .authorization = v->authorization,
		.if_none_match = v->if_none_match, .capabilities = v->capabilities,
	};
	struct fp_reply reply = { 0 };
	settle(s, &rq, p, false, &reply);
	fp_reply_release(&reply);
}

/* Timer thread: the delay is over (or shutdown cut it short). */
static void on_delay_over(void *arg, bool cancelled)
{
	struct pending *p = arg;
	struct MHD_Connection *c = p->conn;
	if (cancelled)
		atomic_store(&p->cancelled, true);
	MHD_resume_connection(c);   /* MHD calls on_request again on its thread */
}

/* Parks the connection for the fault's delay; the call after the resume
 * answers it. No server thread waits meanwhile. */
static enum MHD_Result delay_request(struct fp_server *s, struct MHD_Connection *c,
				     const struct fp_request *rq, struct pending *p)
{
	p->state = RQ_DELAYED;
	save_request(p, rq);
	/* Suspended before the timer can fire: resuming it first would be UB. */
	MHD_suspend_connection(c);
	if (!fp_timer_add(s->timer, p->fa.delay_ms, on_delay_over, p))
		on_delay_over(p, true);   /* shutting down */
	return MHD_YES;
}

/* ---- GET /api/daemon/ws ---- */

/* Every runtime_id / runtime_ids value, repeated or not (MHD has decoded
 * %2C already). */
static enum MHD_Result collect_ids(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	if (value != NULL && (strcmp(key, "runtime_id") == 0 || strcmp(key, "runtime_ids") == 0))
		fp_ws_ids_add(cls, value);
	return MHD_YES;
}

/* True when the comma-separated header value holds token (any case). */
static bool has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);
	while (v != NULL && *v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		size_t n = strcspn(v, ",");
		size_t e = n;
		while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == tl && strncasecmp(v, token, tl) == 0)
			return true;
		v += n;
	}
	return false;
}

static void on_ws_release(void *urh)
{
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* MHD hands over the socket (for TLS, its end of a forwarding pair). */
static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls,
		       const char *extra_in, size_t extra_in_size, MHD_socket sock,
		       struct MHD_UpgradeResponseHandle *urh)
{
	struct fp_server *s = cls;
	struct pending *p = con_cls;
	fp_ws_attach(s->app->st->ws, &p->ws_scope, sock, extra_in, extra_in_size,
		     on_ws_release, urh);
}

/* {"runtime_ids":[..]} as asked, for the journal (malloc'd). */
static char *ids_body(const struct fp_vec *ids)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "runtime_ids");
	for (size_t i = 0; i < ids->len; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(ids->items[i]));
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return t;
}

/* The checks of ws.h, then gorilla's handshake ones (a 400), then 101. */
static bool ws_accept(struct fp_server *s, struct MHD_Connection *c,
		      const struct fp_request *rq, struct pending *p, struct fp_vec *ids,
		      struct fp_reply *reply)
{
	if (!fp_ws_check(s->app, rq, ids, &p->ws_scope, reply))
		return false;
	const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      "Sec-WebSocket-Version");
	if (!has_token(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade"), "websocket") ||
	    !has_token(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection"), "upgrade") ||
	    key == NULL || key[0] == '\0' || ver == NULL || strcmp(ver, "13") != 0) {
		fp_ws_scope_release(&p->ws_scope);
		fp_reply_error_bare(reply, 400, "websocket: not a websocket handshake");
		return false;
	}
	return true;
}

static enum MHD_Result ws_request(struct fp_server *s, struct MHD_Connection *c,
				  const struct fp_request *rq, struct pending *p)
{
	/* A general fault that answers or resets applies as on any route. */
	p->faulted = fp_faults_take(s->app->faults, rq->method, rq->path, &p->fa);
	if (p->faulted && (p->fa.reset || p->fa.respond))
		return answer(s, c, rq, p);
	struct fp_ws_hub *hub = s->app->st->ws;
	struct fp_ws_faults f;
	fp_ws_get_faults(hub, &f);
	struct fp_vec ids = { 0 };
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_ids, &ids);
	char *jbody = ids_body(&ids);
	struct fp_reply reply = { 0 };
	bool ok = false;
	if (f.refuse != 0) {
		for (size_t i = 0; i < ids.len; i++)
			free(ids.items[i]);
		fp_vec_release(&ids);
		fp_reply_error(&reply, f.refuse, "websocket refused (fault)");
	} else {
		ok = ws_accept(s, c, rq, p, &ids, &reply);
	}
	unsigned status = ok ? MHD_HTTP_SWITCHING_PROTOCOLS : reply.status;
	fp_journal_add(s->app->journal, rq->method, rq->path, jbody, strlen(jbody), status,
		       f.refuse != 0);
	cJSON_free(jbody);
	fp_ws_count_upgrade(hub, status);
	mc_log(MC_LOG_DEBUG, "request", "method", rq->method, "path", rq->path,
	       "status", MC_LOG_NUM(status), NULL);
	if (!ok) {
		enum MHD_Result ret = send_reply(c, &reply);
		fp_reply_release(&reply);
		return ret;
	}
	char accept[FP_WS_ACCEPT_LEN + 1];
	fp_ws_accept(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key"),
		     accept);
	struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, s);
	if (resp == NULL) {
		fp_ws_scope_release(&p->ws_scope);
		return MHD_NO;
	}
	/* MHD adds Connection: Upgrade itself. No subprotocol, no extension. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A daemon request: faults first, then the API; journaled either way. */
static enum MHD_Result daemon_request(struct fp_server *s, struct MHD_Connection *c,
				      const struct fp_request *rq, struct pending *p)
{
	if (p->state == RQ_DELAYED)
		return atomic_load(&p->cancelled) ? MHD_NO : answer(s, c, rq, p);
	p->faulted = fp_faults_take(s->app->faults, rq->method, rq->path, &p->fa);
	if (p->faulted && p->fa.delay_ms > 0)
		return delay_request(s, c, rq, p);
	return answer(s, c, rq, p);
}

static enum MHD_Result admin_request(struct fp_server *s, struct MHD_Connection *c,
				     const struct fp_request *rq, bool too_big)
{
	struct fp_reply reply = { 0 };
	if (too_big)
		fp_reply_error(&reply, 413, "request body too large");
	else
		fp_admin_handle(s->app, rq, &reply);
	enum MHD_Result ret = send_reply(c, &reply);
	fp_reply_release(&reply);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct fp_server *s = cls;
	struct pending *p = *con_cls;
	if (p == NULL) {
		p = fp_xcalloc(1, sizeof *p);
		p->conn = c;
		/* Tests queue tasks with huge chat histories through the admin API. */
		p->limit = fp_admin_path(url) ? FP_ADMIN_BODY_MAX : FP_BODY_MAX;
		*con_cls = p;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		pending_append(p, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	struct fp_request rq = {
		.method = method,
		.path = url,
		.body = p->body ? p->body : "",
		.body_len = p->len,
		.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_AUTHORIZATION),
		.if_none_match = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_IF_NONE_MATCH),
		.capabilities = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							    "X-Client-Capabilities"),
	};
	if (fp_admin_path(url))
		return admin_request(s, c, &rq, p->too_big);
	if (strcmp(method, "GET") == 0 && strcmp(url, FP_WS_PATH) == 0 && !p->too_big)
		return ws_request(s, c, &rq, p);
	return daemon_request(s, c, &rq, p);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct fp_server *s = cls;
	struct pending *p = *con_cls;
	if (p == NULL)
		return;
	if (p->state == RQ_DELAYED && !atomic_load(&p->cancelled) &&
	    toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
		settle_abandoned(s, p);
	saved_release(&p->saved);
	fp_ws_scope_release(&p->ws_scope);
	free(p->body);
	fp_fault_action_release(&p->fa);
	free(p);
	*con_cls = NULL;
}

/* libmicrohttpd's own format strings: the attribute tells the compiler so. */
__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct fp_server *s = cls;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	/* After start-up these are per-connection noise (resets, timeouts). */
	mc_log(atomic_load(&s->started) ? MC_LOG_DEBUG : MC_LOG_ERROR, "libmicrohttpd",
	       "detail", buf, NULL);
}

struct fp_server *fp_server_start(const struct fp_server_opts *o, struct fp_app *app,
				  char *err, size_t errlen)
{
	struct fp_server *s = fp_xcalloc(1, sizeof *s);
	s->app = app;
	/* epoll threads, each serving many connections; delays suspend theirs. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
	if (o->addr->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	bool tls = o->tls_cert_pem != NULL;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES ||
	    (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)) {
		snprintf(err, errlen, "this libmicrohttpd has no %s support", tls ? "epoll or TLS" :
			 "epoll");
		free(s);
		return NULL;
	}
	if (tls)
		flags |= MHD_USE_TLS;
	s->timer = fp_timer_start();
	if (s->timer == NULL) {
		snprintf(err, errlen, "cannot start the timer thread: %s", strerror(errno));
		free(s);
		return NULL;
	}
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
				  MHD_OPTION_SOCK_ADDR, o->addr,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
				  MHD_OPTION_LISTEN_BACKLOG_SIZE, o->listen_backlog,
				  MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
				  MHD_OPTION_THREAD_POOL_SIZE, (unsigned)FP_POOL_THREADS,
				  /* Room for a socket's query naming thousands of runtimes. */
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)FP_CONN_MEMORY,
				  /* Without TLS the list ends here. */
				  tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, o->tls_cert_pem,
				  MHD_OPTION_HTTPS_MEM_KEY, o->tls_key_pem,
				  MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, errlen, "cannot start the HTTP server (see the libmicrohttpd "
			 "message above)");
		fp_timer_free(s->timer);
		free(s);
		return NULL;
	}
	atomic_store(&s->started, true);
	return s;
}

uint16_t fp_server_port(const struct fp_server *s)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

void fp_server_stop(struct fp_server *s)
{
	if (s == NULL)
		return;
	/* MHD must not stop with a suspended connection: every delay ends
	 * first (cancelled: the resumed call drops its connection). */
	fp_timer_stop(s->timer);
	/* MHD must not stop with an upgraded connection open either. */
	fp_ws_hub_shutdown(s->app->st->ws);
	MHD_stop_daemon(s->mhd);
	fp_timer_free(s->timer);
	free(s);
}
