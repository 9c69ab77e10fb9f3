/* The local API's HTTP side: libmicrohttpd in thread-per-connection mode
 * on the listening socket the supervisor bound, so a slow checkout never
 * delays /health. Routes exactly /health, /shutdown, /repo/checkout (Go
 * ServeMux exact patterns); replies as Go's net/http writes them
 * (reference 1.4): errors text/plain + "\n" with nosniff, JSON + "\n". */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "agentapi/agentapi_int.h"
#include "common/clock.h"
#include "common/log.h"

struct mca_http {
	struct MHD_Daemon *d;
};

/* One request's upload (MHD's *con_cls): heap, freed on completion. */
struct upload {
	char *buf;
	size_t len, cap;
	bool too_large;
};

void mca_reply_error(struct mca_reply *r, unsigned status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	free(r->body);
	r->body = NULL;
	r->status = status;
	r->json = false;
	if (n >= 0 && asprintf(&r->body, "%s\n", msg) < 0)
		r->body = NULL;
	free(msg);
}

void mca_reply_json(struct mca_reply *r, unsigned status, const void *cjson_obj)
{
	char *s = cJSON_PrintUnformatted(cjson_obj);
	free(r->body);
	r->body = NULL;
	r->status = status;
	r->json = true;
	if (s != NULL && asprintf(&r->body, "%s\n", s) < 0)
		r->body = NULL;
	cJSON_free(s);
	if (r->body == NULL)
		mca_reply_error(r, 500, "out of memory");
}

void mca_go_duration(int64_t secs, char *out, size_t out_size)
{
	if (secs < 0)
		secs = 0;
	long long h = secs / 3600, m = (secs / 60) % 60, s = secs % 60;
	if (h > 0)
		snprintf(out, out_size, "%lldh%lldm%llds", h, m, s);
	else if (m > 0)
		snprintf(out, out_size, "%lldm%llds", m, s);
	else
		snprintf(out, out_size, "%llds", s);
}

static cJSON *workspaces_json(struct mca_ctx *ctx)
{
	char (*v)[MCA_ID_MAX] = malloc(256 * sizeof *v);
	size_t n = v != NULL ? mca_registry_workspaces(ctx->reg, v, 256) : 0;
	if (n == 0) {
		free(v);
		return cJSON_CreateNull(); /* Go's nil slice */
	}
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", v[i]);
		cJSON_AddNullToObject(o, "runtimes"); /* not known to this process */
		cJSON_AddItemToArray(arr, o);
	}
	free(v);
	return arr;
}

void *mca_health_json(struct mca_ctx *ctx)
{
	char up[48];
	mca_go_duration((mc_now_ms() - ctx->started_ms) / 1000, up, sizeof up);
	double tasks = (double)mca_registry_count(ctx->reg);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "running");
	cJSON_AddNumberToObject(o, "pid", (double)ctx->daemon_pid);
	cJSON_AddStringToObject(o, "os", "linux");
	cJSON_AddStringToObject(o, "uptime", up);
	cJSON_AddStringToObject(o, "profile", "");
	cJSON_AddStringToObject(o, "daemon_id", ctx->cfg.daemon_id);
	cJSON_AddStringToObject(o, "device_name", ctx->cfg.device_name);
	cJSON_AddStringToObject(o, "server_url", ctx->cfg.server_url);
	cJSON_AddStringToObject(o, "cli_version", ctx->cfg.cli_version);
	cJSON_AddNumberToObject(o, "active_task_count", tasks);
	cJSON_AddNumberToObject(o, "running_task_count", tasks);
	cJSON_AddNumberToObject(o, "resource_wait_task_count", 0);
	long waiters = atomic_load(&ctx->checkout_waiters);
	if (waiters > 0)
		cJSON_AddNumberToObject(o, "repo_checkout_waiters", (double)waiters);
	cJSON_AddItemToObject(o, "agents", cJSON_CreateArray());
	cJSON_AddItemToObject(o, "workspaces", workspaces_json(ctx));
	return o;
}

static void route(struct mca_ctx *ctx, const char *url, const struct mca_request *rq,
		  struct mca_reply *out)
{
	if (strcmp(url, "/health") == 0) {
		cJSON *h = mca_health_json(ctx);
		mca_reply_json(out, 200, h);
		cJSON_Delete(h);
	} else if (strcmp(url, "/shutdown") == 0) {
		if (strcmp(rq->method, "POST") != 0)
			return mca_reply_error(out, 405, "method not allowed");
		/* Deliberate difference: multica's is unauthenticated. */
		mca_reply_error(out, 403, "multicad is managed by systemd: stop it with "
			       "`systemctl stop multicad` (or SIGTERM to the daemon)");
	} else if (strcmp(url, "/repo/checkout") == 0) {
		mca_checkout_handle(ctx, rq, out);
	} else {
		mca_reply_error(out, 404, "404 page not found");
	}
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct mca_reply *r)
{
	size_t len = r->body != NULL ? strlen(r->body) : 0;
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, r->body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(r->body);
		return MHD_NO;
	}
	r->body = NULL; /* the response owns it */
	if (r->json) {
		MHD_add_response_header(resp, "Content-Type", "application/json");
	} else {
		MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	}
	if (r->retry_busy) {
		MHD_add_response_header(resp, "X-Multica-Retryable", "repo-busy");
		MHD_add_response_header(resp, "Retry-After", "2");
	}
	enum MHD_Result rc = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static void take_upload(struct upload *u, const char *data, size_t n)
{
	if (u->too_large || n > MCA_BODY_MAX - u->len) {
		u->too_large = true;
		return;
	}
	if (u->len + n + 1 > u->cap) {
		size_t cap = u->cap ? u->cap : 4096;
		while (cap < u->len + n + 1)
			cap *= 2;
		char *p = realloc(u->buf, cap);
		if (p == NULL) {
			u->too_large = true; /* answered 413: nothing better to say */
			return;
		}
		u->buf = p;
		u->cap = cap;
	}
	memcpy(u->buf + u->len, data, n);
	u->len += n;
	u->buf[u->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct upload *u = *con_cls;
	if (u == NULL) {
		if ((u = calloc(1, sizeof *u)) == NULL)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		take_upload(u, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	struct mca_request rq = {
		.method = method,
		.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
		.body = u->buf != NULL ? u->buf : "",
		.body_len = u->len,
		.body_too_large = u->too_large,
	};
	struct mca_reply r = { 0 };
	route(cls, url, &rq, &r);
	if (r.body == NULL)
		mca_reply_error(&r, 500, "out of memory");
	return send_reply(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;
	if (u == NULL)
		return;
	if (u->buf != NULL)
		explicit_bzero(u->buf, u->cap);
	free(u->buf);
	free(u);
	*con_cls = NULL;
}

int mca_http_start(struct mca_ctx *ctx)
{
	struct mca_http *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -1;
	h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
				0, NULL, NULL, on_request, ctx,
				MHD_OPTION_LISTEN_SOCKET, (MHD_socket)ctx->listen_fd,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx,
				MHD_OPTION_END);
	if (h->d == NULL) {
		free(h);
		errno = errno ? errno : EINVAL;
		return -1;
	}
	ctx->http = h;
	return 0;
}

void mca_http_stop(struct mca_ctx *ctx)
{
	if (ctx->http == NULL)
		return;
	MHD_stop_daemon(ctx->http->d); /* waits for the connection threads */
	free(ctx->http);
	ctx->http = NULL;
}
