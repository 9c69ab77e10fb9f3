#include "tests/fakeplane/http.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/log.h"
#include "tests/fakeplane/admin.h"
#include "tests/fakeplane/api.h"
#include "tests/fakeplane/faults.h"
#include "tests/fakeplane/journal.h"
#include "tests/fakeplane/util.h"

struct fp_server {
	struct MHD_Daemon *mhd;
	struct fp_app *app;
	atomic_bool started;   /* MHD's messages matter until then, not after */
};

/* Per-request state kept in MHD's con_cls between callbacks. */
struct pending {
	char *body;
	size_t len, cap;
	bool too_big;
};

/* Grows p->body (malloc'd, NUL-terminated) by n bytes, up to FP_BODY_MAX. */
static void pending_append(struct pending *p, const char *data, size_t n)
{
	if (p->too_big || p->len + n > FP_BODY_MAX) {
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

/* A daemon request: faults first, then the API; journaled either way.
 * Returns MHD_NO to drop the connection unanswered. */
static enum MHD_Result daemon_request(struct fp_server *s, struct MHD_Connection *c,
				      const struct fp_request *rq, bool too_big)
{
	struct fp_reply reply = { 0 };
	struct fp_fault_action fa;
	bool faulted = fp_faults_take(s->app->faults, rq->method, rq->path, &fa);
	if (faulted && fa.delay_ms > 0 && !fp_faults_sleep(s->app->faults, fa.delay_ms)) {
		fp_fault_action_release(&fa);
		return MHD_NO;   /* shutting down */
	}
	if (faulted && fa.reset) {
		fp_journal_add(s->app->journal, rq->method, rq->path, rq->body, rq->body_len, 0, true);
		fp_fault_action_release(&fa);
		return MHD_NO;
	}
	if (faulted && fa.respond) {
		fp_reply_raw(&reply, fa.status, fa.body, fa.body_len);
		fa.body = NULL;
	} else if (too_big) {
		fp_reply_error(&reply, 413, "request body too large");
	} else {
		fp_api_handle(s->app, rq, &reply);
	}
	fp_fault_action_release(&fa);
	fp_journal_add(s->app->journal, rq->method, rq->path, rq->body, rq->body_len,
		       reply.status, faulted);
	mc_log(MC_LOG_DEBUG, "request", "method", rq->method, "path", rq->path,
	       "status", MC_LOG_NUM(reply.status), NULL);
	enum MHD_Result ret = send_reply(c, &reply);
	fp_reply_release(&reply);
	return ret;
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
		*con_cls = fp_xcalloc(1, sizeof *p);
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
	return daemon_request(s, c, &rq, p->too_big);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;
	if (p == NULL)
		return;
	free(p->body);
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
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ERROR_LOG;
	if (o->addr->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	bool tls = o->tls_cert_pem != NULL;
	if (tls) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd has no TLS support");
			free(s);
			return NULL;
		}
		flags |= MHD_USE_TLS;
	}
	s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
				  MHD_OPTION_SOCK_ADDR, o->addr,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
				  MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
				  /* Without TLS the list ends here. */
				  tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, o->tls_cert_pem,
				  MHD_OPTION_HTTPS_MEM_KEY, o->tls_key_pem,
				  MHD_OPTION_END);
	if (s->mhd == NULL) {
		snprintf(err, errlen, "cannot start the HTTP server (see the libmicrohttpd "
			 "message above)");
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
	MHD_stop_daemon(s->mhd);
	free(s);
}
