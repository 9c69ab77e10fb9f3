/* Running daemon API calls: blocking perform, multi start, the per-api
 * queue of mc_call_enqueue, dispatch, the finish of a transfer (outcome
 * classification, decoding through the pure codecs of api_codec.c, token
 * redaction) and the result accessors. See api_int.h for how the client is
 * split into files. */
#include "common/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bsd/string.h>
#include <cjson/cJSON.h>

#include "common/api_codec.h"
#include "common/api_int.h"

static struct mc_call *running_head;
static struct mc_call *waiting_head, *waiting_tail;
static uint64_t waiting_seq;

/* ---- running-call registry ---- */

/* A finished transfer's CURLINFO_PRIVATE is only trusted when it points to a
 * call in this list: a foreign easy in the same multi may carry any private
 * pointer, which must never be dereferenced. */
static void running_link(struct mc_call *c)
{
	c->run_prev = NULL;
	c->run_next = running_head;
	if (running_head != NULL)
		running_head->run_prev = c;
	running_head = c;
}

static void running_unlink(struct mc_call *c)
{
	if (c->run_prev != NULL)
		c->run_prev->run_next = c->run_next;
	else if (running_head == c)
		running_head = c->run_next;
	if (c->run_next != NULL)
		c->run_next->run_prev = c->run_prev;
	c->run_prev = c->run_next = NULL;
}

static struct mc_call *running_find(CURL *easy, CURLM *multi)
{
	char *priv = NULL;
	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
		return NULL;
	for (struct mc_call *c = running_head; c != NULL; c = c->run_next)
		if ((char *)c == priv && c->magic == CALL_MAGIC && c->easy == easy &&
		    c->multi == multi)
			return c;
	return NULL;
}

/* ---- the per-api queue of mc_call_enqueue ---- */

static void waiting_link(struct mc_call *c)
{
	c->wait_seq = ++waiting_seq;
	c->wait_next = NULL;
	c->wait_prev = waiting_tail;
	if (waiting_tail != NULL)
		waiting_tail->wait_next = c;
	else
		waiting_head = c;
	waiting_tail = c;
	c->lane->n_waiting++;
}

static void waiting_unlink(struct mc_call *c)
{
	if (c->wait_prev != NULL)
		c->wait_prev->wait_next = c->wait_next;
	else
		waiting_head = c->wait_next;
	if (c->wait_next != NULL)
		c->wait_next->wait_prev = c->wait_prev;
	else
		waiting_tail = c->wait_prev;
	c->wait_prev = c->wait_next = NULL;
	c->wait_multi = NULL;
	c->lane->n_waiting--;
}

/* The api's call on the wire is leaving it (finished or freed). Outside
 * mc_multi_dispatch, the next one is started by the next dispatch: the
 * wakeup makes curl_multi_poll return for it at once. */
static void leave_wire(struct mc_call *c, CURLM *multi, bool in_dispatch)
{
	struct mc_api_lane *lane = c->lane;
	if (lane->on_wire != c)
		return;
	lane->on_wire = NULL;
#if CURL_AT_LEAST_VERSION(7, 68, 0)
	if (!in_dispatch && lane->n_waiting > 0 && multi != NULL)
		curl_multi_wakeup(multi);
#else
	(void)multi;
	(void)in_dispatch;
#endif
}

/* Forgets a previous outcome so a finished call can run again. */
static void reset_outcome(struct mc_call *c)
{
	mci_resp_release(c);
	c->resp_too_large = false;
	c->errbuf[0] = '\0';
	memset(&c->err, 0, sizeof c->err);
	c->elapsed_us = 0;
	c->num_connects = -1;
	c->not_modified = false;
	c->orphaned = c->retried = -1;
	c->have_result = false;
	mc_workspace_list_clear(&c->ws);
	mc_profile_list_clear(&c->profiles);
	mc_runtime_list_clear(&c->runtimes);
	mci_task_reset(c);
	mc_workspace_repos_clear(&c->repos);
}

/* Attaches headers and the api's share. 0, or -1 with errno (EBUSY when
 * already running or waiting, ENOMEM). */
static int call_prepare(struct mc_call *c)
{
	if (c->state == CALL_RUNNING || c->state == CALL_WAITING) {
		errno = EBUSY;
		return -1;
	}
	reset_outcome(c);
	struct mc_api *api = c->api;
	if (api->share == NULL && api->in_flight == 0)
		mci_share_reset(api);
	if (api->share == NULL) {
		errno = ENOMEM;
		return -1;
	}
	c->headers = mci_build_headers(c);
	if (c->headers == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_SHARE, api->share) != CURLE_OK) {
		curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
		curl_slist_free_all(c->headers);
		c->headers = NULL;
		errno = ENOMEM;
		return -1;
	}
	api->in_flight++;
	c->state = CALL_RUNNING;
	return 0;
}

/* Undoes call_prepare: frees the header list (wiped by our allocator) and
 * detaches the share so the api can drop its pool. */
static void call_detach(struct mc_call *c)
{
	struct mc_api *api = c->api;
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	curl_slist_free_all(c->headers);
	c->headers = NULL;
	curl_easy_setopt(c->easy, CURLOPT_SHARE, (CURLSH *)NULL);
	api->in_flight--;
	if (api->in_flight == 0 && api->drop_idle_pending)
		mci_share_reset(api);
}

void mci_call_what(const struct mc_call *c, char *dst, size_t size)
{
	snprintf(dst, size, "%s %s", c->method, c->path != NULL ? c->path : "?");
}

/* Fills c->err with kind and "METHOD PATH: <fmt...>". */
void mci_set_error(struct mc_call *c, enum mc_api_error_kind kind, const char *fmt, ...)
{
	char what[WHAT_MAX];
	char text[MC_API_ERROR_TEXT_MAX];
	mci_call_what(c, what, sizeof what);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	c->err.kind = kind;
	strlcpy(c->err.message, what, sizeof c->err.message);
	strlcat(c->err.message, ": ", sizeof c->err.message);
	strlcat(c->err.message, text, sizeof c->err.message);
}

/* libcurl refuses a response header line of CURL_MAX_HTTP_HEADER bytes
 * (7.x: as "out of memory", with no message; 8.6+: CURLE_TOO_LARGE). An
 * out-of-memory after the status line and before any body byte is that. */
static bool header_too_large(struct mc_call *c, CURLcode rc)
{
	long code = 0;
#if CURL_AT_LEAST_VERSION(8, 6, 0)
	if (rc == CURLE_TOO_LARGE && c->resp_len == 0)
		return true;
#endif
	return rc == CURLE_OUT_OF_MEMORY && c->resp_len == 0 &&
	       curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code > 0;
}

/* A curl-level failure: timeout, body or header cap, or anything else
 * (transport). */
static void classify_curl_failure(struct mc_call *c, CURLcode rc)
{
	const char *detail = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		mci_set_error(c, MC_API_ERR_TIMEOUT, "timed out: %s", detail);
	else if (rc == CURLE_FILESIZE_EXCEEDED || (rc == CURLE_WRITE_ERROR && c->resp_too_large))
		mci_set_error(c, MC_API_ERR_TOO_LARGE, "response body larger than the %zu-byte limit",
			      mci_call_max_body(c));
	else if (header_too_large(c, rc))
		mci_set_error(c, MC_API_ERR_TOO_LARGE, "response header line longer than libcurl's "
			      "%d-byte limit (CURL_MAX_HTTP_HEADER)", CURL_MAX_HTTP_HEADER);
	else
		mci_set_error(c, MC_API_ERR_TRANSPORT, "%s", detail);
}

/* After a 200 on list-workspaces: remember ETag + a copy of the list for
 * the next conditional request. Losing the cache only costs a full answer. */
static void store_ws_cache(struct mc_call *c)
{
	struct mc_api *api = c->api;
	struct curl_header *h = NULL;
	free(api->etag);
	api->etag = NULL;
	mc_workspace_list_clear(&api->ws_cache);
	api->have_ws_cache = false;
	if (mci_workspace_list_copy(&api->ws_cache, &c->ws) < 0)
		return;
	api->have_ws_cache = true;
	if (curl_easy_header(c->easy, "ETag", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    h->value != NULL && h->value[0] != '\0')
		api->etag = strdup(h->value);
}

/* Sets c->err from a decoder's failure: its kind, the field message
 * prefixed with "METHOD PATH: ". */
static void decode_failed(struct mc_call *c, const struct mc_api_error *derr)
{
	mci_set_error(c, derr->kind, "%s", derr->message);
}


static void decode_workspaces(struct mc_call *c, long status)
{
	struct mc_api *api = c->api;
	if (status == 304) {
		if (!api->have_ws_cache) {
			mci_set_error(c, MC_API_ERR_HTTP, "304 without a cached workspace list");
			return;
		}
		if (mci_workspace_list_copy(&c->ws, &api->ws_cache) < 0) {
			mci_set_error(c, MC_API_ERR_TRANSPORT, "out of memory copying the workspace list");
			return;
		}
		c->not_modified = true;
		c->have_result = true;
		return;
	}
	struct mc_api_error derr;
	if (mc_decode_workspaces(c->resp != NULL ? c->resp : "", c->resp_len, &c->ws, &derr) < 0) {
		decode_failed(c, &derr);
		return;
	}
	c->have_result = true;
	store_ws_cache(c);
}

/* The answer's media type when it is HTML, without parameters and cut to
 * printable ASCII, into type; false otherwise. */
static bool html_answer(struct mc_call *c, char *type, size_t size)
{
	char *ct = NULL;
	if (curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || ct == NULL)
		return false;
	if (strncasecmp(ct, "text/html", 9) != 0 &&
	    strncasecmp(ct, "application/xhtml+xml", 21) != 0)
		return false;
	size_t n = 0;
	for (; ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && n + 1 < size; n++)
		type[n] = ct[n] > 0x20 && ct[n] < 0x7f ? ct[n] : '?';
	type[n] = '\0';
	return true;
}

/* A 2xx (or list-workspaces' 304): decode what the endpoint needs. The
 * decoders fill a scratch error so c->err changes only on failure. An HTML
 * 2xx is a login page, a proxy's notice or a web front-end's index, never
 * the API's answer: refused on every endpoint, or a deregister would
 * "succeed" against a captive portal and its runtimes stay online. */
static void decode_success(struct mc_call *c, long status)
{
	char type[64];
	if (html_answer(c, type, sizeof type)) {
		mci_set_error(c, MC_API_ERR_DECODE, "expected a JSON answer, got %s", type);
		return;
	}
	const char *body = c->resp != NULL ? c->resp : "";
	struct mc_api_error derr;
	int rc = 0;
	switch (c->ep) {
	case MC_EP_LIST_WORKSPACES:
		decode_workspaces(c, status);
		return;
	case MC_EP_RUNTIME_PROFILES:
		rc = mc_decode_profiles(body, c->resp_len, &c->profiles, &derr);
		break;
	case MC_EP_REGISTER:
		rc = mc_decode_register(body, c->resp_len, c->expected_n, &c->runtimes, &derr);
		break;
	case MC_EP_HEARTBEAT:
		rc = mc_decode_heartbeat(body, c->resp_len, &derr);
		break;
	case MC_EP_RECOVER_ORPHANS:
		rc = mc_decode_recover(body, c->resp_len, &c->orphaned, &c->retried, &derr);
		break;
	case MC_EP_DEREGISTER:
	case MC_EP_RENEW_TOKEN:
		break; /* the body carries nothing the daemon needs */
	case MC_EP_CLAIM_TASKS:
	case MC_EP_CLAIM_RUNTIME_TASK:
	case MC_EP_TASK_OP:
	case MC_EP_TASK_STATUS:
	case MC_EP_TASK_PREPARE_LEASE:
		rc = mci_task_decode(c, body, c->resp_len, &derr);
		break;
	case MC_EP_WORKSPACE_REPOS:
		rc = mc_decode_workspace_repos(body, c->resp_len, &c->repos, &derr);
		break;
	}
	if (rc == 0) {
		c->have_result = c->ep == MC_EP_RUNTIME_PROFILES || c->ep == MC_EP_REGISTER ||
				 c->ep == MC_EP_WORKSPACE_REPOS;
		return;
	}
	c->orphaned = c->retried = -1;
	decode_failed(c, &derr);
}

/* Appends the first n bytes of src to the NUL-terminated dst, truncating. */
static void append_span(char *dst, size_t size, const char *src, size_t n)
{
	size_t used = strlen(dst);
	if (used + 1 >= size)
		return;
	if (n > size - 1 - used)
		n = size - 1 - used;
	memcpy(dst + used, src, n);
	dst[used + n] = '\0';
}

/* Rewrites every occurrence of the token in the error message: a server
 * that echoes the Authorization header must not put it into our logs. */
static void redact_token(struct mc_call *c)
{
	struct mc_secret *tok = c->api->token;
	if (mc_secret_len(tok) == 0 || c->err.message[0] == '\0')
		return;
	const char *t = mc_secret_open(tok);
	size_t tlen = mc_secret_len(tok);
	char out[MC_API_ERROR_TEXT_MAX] = "";
	const char *p = c->err.message;
	const char *hit;
	bool found = false;
	while ((hit = strstr(p, t)) != NULL) {
		found = true;
		append_span(out, sizeof out, p, (size_t)(hit - p));
		strlcat(out, "[redacted]", sizeof out);
		p = hit + tlen;
	}
	mc_secret_close(tok);
	if (!found)
		return;
	strlcat(out, p, sizeof out);
	strlcpy(c->err.message, out, sizeof c->err.message);
}

/* The transfer ended (rc from libcurl): record timing, classify, decode. */
static void call_finish(struct mc_call *c, CURLcode rc)
{
	long status = 0;
	curl_off_t us = 0;
	long conns = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c->easy, CURLINFO_TOTAL_TIME_T, &us);
	curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &conns);
	c->elapsed_us = (long long)us;
	c->num_connects = conns;
	c->err.kind = MC_API_OK;
	c->err.message[0] = '\0';

	if (rc != CURLE_OK) {
		classify_curl_failure(c, rc);
	} else if (status >= 400) {
		char what[WHAT_MAX];
		mci_call_what(c, what, sizeof what);
		mc_classify_http_error(what, status, c->resp, c->resp_len, &c->err);
	} else if (status == 304 && c->ep == MC_EP_LIST_WORKSPACES) {
		decode_success(c, status);
	} else if (status >= 300) {
		mci_set_error(c, MC_API_ERR_TRANSPORT, "unexpected redirect (status %ld)", status);
	} else if (status < 200) {
		mci_set_error(c, MC_API_ERR_TRANSPORT, "unexpected status %ld", status);
	} else {
		decode_success(c, status);
	}
	c->err.status = status;
	redact_token(c);
	call_detach(c);
	mci_resp_release(c); /* decoded; no need to keep the raw body */
	c->state = CALL_DONE;
}

int mc_call_perform(struct mc_call *call)
{
	int saved = errno;
	if (call_prepare(call) < 0) {
		if (errno != EBUSY) {
			int e = errno;
			mci_set_error(call, MC_API_ERR_TRANSPORT, "could not start: %s", strerror(e));
			call->state = CALL_DONE;
			errno = e;
		}
		return -1;
	}
	CURLcode rc = curl_easy_perform(call->easy);
	call_finish(call, rc);
	if (call->done_fn != NULL)
		call->done_fn(call, call->done_arg);
	errno = saved;
	return call->err.kind == MC_API_OK ? 0 : -1;
}

/* Hands call to libcurl in multi. 0, or -1 with errno (the call is then
 * idle, its outcome reset). */
static int start_in_multi(struct mc_call *call, CURLM *multi)
{
	if (call_prepare(call) < 0)
		return -1;
	CURLMcode mrc = curl_multi_add_handle(multi, call->easy);
	if (mrc != CURLM_OK) {
		call_detach(call);
		call->state = CALL_IDLE;
		errno = mrc == CURLM_OUT_OF_MEMORY ? ENOMEM : EINVAL;
		return -1;
	}
	call->multi = multi;
	running_link(call);
	return 0;
}

int mc_call_start(struct mc_call *call, CURLM *multi)
{
	if (call == NULL || multi == NULL) {
		errno = EINVAL;
		return -1;
	}
	return start_in_multi(call, multi);
}

void mc_call_set_lane(struct mc_call *call, struct mc_api_lane *lane)
{
	if (call->state == CALL_IDLE || call->state == CALL_DONE)
		call->lane = lane != NULL ? lane : &call->api->lane;
}

int mc_call_enqueue(struct mc_call *call, CURLM *multi)
{
	if (call == NULL || multi == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (call->state == CALL_RUNNING || call->state == CALL_WAITING) {
		errno = EBUSY;
		return -1;
	}
	struct mc_api_lane *lane = call->lane;
	if (lane->on_wire == NULL && lane->n_waiting == 0) {
		if (start_in_multi(call, multi) < 0)
			return -1;
		lane->on_wire = call;
		return 0;
	}
	reset_outcome(call);
	call->state = CALL_WAITING;
	waiting_link(call);
	call->wait_multi = multi;
	return 0;
}

/* Starts, oldest first, the waiting calls of multi whose api has nothing
 * on the wire. One that cannot start finishes at once with the reason (its
 * callback runs, and may free or enqueue calls: the walk starts over; what
 * it enqueues waits for the next dispatch, so out of memory cannot spin).
 * Returns how many calls finished. */
static int start_waiting(CURLM *multi)
{
	int finished = 0;
	uint64_t upto = waiting_seq;
	struct mc_call *c = waiting_head;
	while (c != NULL) {
		struct mc_call *next = c->wait_next;
		if (c->wait_seq > upto)
			break; /* FIFO: everything after it is newer too */
		if (c->wait_multi != multi || c->lane->on_wire != NULL) {
			c = next;
			continue;
		}
		waiting_unlink(c);
		c->state = CALL_IDLE;
		if (start_in_multi(c, multi) == 0) {
			c->lane->on_wire = c;
			c = next;
			continue;
		}
		mci_set_error(c, MC_API_ERR_TRANSPORT, "could not start: %s", strerror(errno));
		c->state = CALL_DONE;
		finished++;
		if (c->done_fn != NULL)
			c->done_fn(c, c->done_arg); /* may free c and others */
		c = waiting_head;
	}
	return finished;
}

int mc_multi_dispatch(CURLM *multi)
{
	int finished = 0;
	int left = 0;
	CURLMsg *m;
	/* A callback may free calls or start new ones; removing an easy also
	 * drops its queued message, so the loop never sees a freed call. */
	while ((m = curl_multi_info_read(multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result;
		struct mc_call *c = running_find(easy, multi);
		if (c == NULL)
			continue;
		curl_multi_remove_handle(multi, easy);
		running_unlink(c);
		c->multi = NULL;
		leave_wire(c, multi, true);
		call_finish(c, rc);
		finished++;
		if (c->done_fn != NULL)
			c->done_fn(c, c->done_arg); /* may free c */
	}
	return finished + start_waiting(multi);
}

void mc_call_free(struct mc_call *call)
{
	if (call == NULL)
		return;
	if (call->state == CALL_WAITING)
		waiting_unlink(call); /* never sent */
	if (call->state == CALL_RUNNING) {
		if (call->multi != NULL) {
			leave_wire(call, call->multi, false);
			curl_multi_remove_handle(call->multi, call->easy);
			running_unlink(call);
			call->multi = NULL;
		}
		call_detach(call);
	}
	if (call->easy != NULL)
		curl_easy_cleanup(call->easy);
	reset_outcome(call);
	free(call->path);
	free(call->body);
	free(call->runtime_id);
	free(call->task_id);
	call->magic = CALL_DEAD;
	free(call);
}

/* ---- results ---- */

enum mc_api_endpoint mc_call_endpoint(const struct mc_call *call) { return call->ep; }
const struct mc_api_error *mc_call_error(const struct mc_call *call) { return &call->err; }
bool mc_call_ok(const struct mc_call *call)
{
	return call->state == CALL_DONE && call->err.kind == MC_API_OK;
}
long mc_call_status(const struct mc_call *call) { return call->err.status; }
const char *mc_call_runtime_id(const struct mc_call *call) { return call->runtime_id; }
long long mc_call_elapsed_us(const struct mc_call *call) { return call->elapsed_us; }
long mc_call_num_connects(const struct mc_call *call) { return call->num_connects; }
bool mc_call_not_modified(const struct mc_call *call) { return call->not_modified; }
long mc_call_orphaned(const struct mc_call *call) { return call->orphaned; }
long mc_call_retried(const struct mc_call *call) { return call->retried; }

/* Common guard of the take_* accessors. */
static bool can_take(const struct mc_call *call, enum mc_api_endpoint ep)
{
	if (call == NULL || call->ep != ep || !mc_call_ok(call) || !call->have_result) {
		errno = EINVAL;
		return false;
	}
	return true;
}

int mc_call_take_workspaces(struct mc_call *call, struct mc_workspace_list *out)
{
	if (!can_take(call, MC_EP_LIST_WORKSPACES))
		return -1;
	*out = call->ws;
	call->ws.n = 0;
	call->ws.v = NULL;
	call->have_result = false;
	return 0;
}

int mc_call_take_profiles(struct mc_call *call, struct mc_profile_list *out)
{
	if (!can_take(call, MC_EP_RUNTIME_PROFILES))
		return -1;
	*out = call->profiles;
	call->profiles.n = 0;
	call->profiles.v = NULL;
	call->have_result = false;
	return 0;
}

int mc_call_take_runtimes(struct mc_call *call, struct mc_runtime_list *out)
{
	if (!can_take(call, MC_EP_REGISTER))
		return -1;
	*out = call->runtimes;
	call->runtimes.n = 0;
	call->runtimes.v = NULL;
	call->have_result = false;
	return 0;
}


int mc_call_take_workspace_repos(struct mc_call *call, struct mc_workspace_repos *out)
{
	if (!can_take(call, MC_EP_WORKSPACE_REPOS))
		return -1;
	*out = call->repos;
	memset(&call->repos, 0, sizeof call->repos);
	call->have_result = false;
	return 0;
}
