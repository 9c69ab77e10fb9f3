#include "tests/fakeplane/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/fakeplane/api.h"
#include "tests/fakeplane/render.h"
#include "tests/fakeplane/state.h"
#include "tests/fakeplane/ws_frame.h"

#define WRITE_WAIT_MS 10000   /* writeWait, H:904 */
#define STATUS_SLOTS 600

struct item {
	uint8_t *bytes;
	size_t len;
	unsigned nframes;
};

struct conn {
	uint64_t id;
	struct fp_ws_hub *hub;
	struct fp_ws_scope scope;
	int sock, efd;
	void (*release)(void *);
	void *release_arg;
	int64_t connected_ms;
	/* Below: under the hub mutex. */
	struct item queue[FP_WS_QUEUE_MAX];
	size_t nqueued;
	bool drop, drop_close_frame;   /* admin drop, or an eviction (with CLOSE) */
	uint64_t pings_sent, pongs_received, frames_received, frames_sent;
	/* The thread's own: the reader. */
	uint8_t *rx;
	size_t rx_len;
	uint64_t msg_len;              /* the data message being received */
	bool woken;                    /* a wake-up consumed by a write's wait */
};

struct fp_ws_hub {
	pthread_mutex_t mu;
	pthread_cond_t gone;           /* a connection's thread ended */
	struct fp_vec conns;           /* struct conn * */
	unsigned threads;              /* live connection threads */
	bool stopping;
	uint64_t next_id, closed;
	uint64_t upgrades[STATUS_SLOTS];
	int64_t flag_ping_ms, flag_pong_ms;
	struct fp_ws_faults faults;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fp_ws_hub *fp_ws_hub_new(int64_t ping_interval_ms, int64_t pong_wait_ms)
{
	struct fp_ws_hub *h = fp_xcalloc(1, sizeof *h);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->gone, NULL);
	h->flag_ping_ms = ping_interval_ms;
	h->flag_pong_ms = pong_wait_ms;
	h->next_id = 1;
	fp_ws_clear_faults(h);
	return h;
}

static void wake(struct conn *c)
{
	uint64_t one = 1;
	ssize_t n = write(c->efd, &one, sizeof one);
	(void)n;   /* a full counter is as good as a wake-up */
}

void fp_ws_hub_shutdown(struct fp_ws_hub *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	for (size_t i = 0; i < h->conns.len; i++) {
		struct conn *c = h->conns.items[i];
		c->drop = true;
		wake(c);
	}
	while (h->threads > 0)
		pthread_cond_wait(&h->gone, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

void fp_ws_hub_free(struct fp_ws_hub *h)
{
	if (h == NULL)
		return;
	fp_ws_hub_shutdown(h);
	fp_vec_release(&h->conns);
	pthread_cond_destroy(&h->gone);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* ---- scope ---- */

static bool has_str(const struct fp_vec *v, const char *s)
{
	for (size_t i = 0; i < v->len; i++)
		if (strcmp(v->items[i], s) == 0)
			return true;
	return false;
}

static void free_strs(struct fp_vec *v)
{
	for (size_t i = 0; i < v->len; i++)
		free(v->items[i]);
	fp_vec_release(v);
}

void fp_ws_ids_add(struct fp_vec *ids, const char *value)
{
	char *copy = fp_xstrdup(value);
	char *p = copy;
	for (;;) {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma = '\0';
		char *id = fp_trimdup(p);
		if (id[0] == '\0' || has_str(ids, id))
			free(id);
		else
			fp_vec_push(ids, id);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	free(copy);
}

void fp_ws_scope_release(struct fp_ws_scope *s)
{
	free_strs(&s->runtime_ids);
	free_strs(&s->workspace_ids);
}

bool fp_ws_check(struct fp_app *app, const struct fp_request *rq, struct fp_vec *ids,
		 struct fp_ws_scope *scope, struct fp_reply *out)
{
	*scope = (struct fp_ws_scope){ 0 };
	bool ok = true;
	fp_state_lock(app->st);
	const char *user = fp_api_authenticate(app, rq, out);
	if (user == NULL) {
		ok = false;
	} else if (ids->len == 0) {
		/* The real server lets a user token (PAT/JWT) in without ids, as an
		 * account-only socket; the emulator serves daemons, which always
		 * name their runtimes, so it refuses as for an mdt_ token. */
		fp_reply_error(out, 400, "runtime_ids or user identity required");
		ok = false;
	}
	for (size_t i = 0; ok && i < ids->len; i++) {
		struct fp_runtime *r = fp_api_runtime_access(app, user, ids->items[i],
							     "invalid runtime_id", out);
		if (r == NULL) {
			ok = false;   /* one bad id refuses the whole upgrade */
			break;
		}
		if (!has_str(&scope->runtime_ids, r->id))
			fp_vec_push(&scope->runtime_ids, fp_xstrdup(r->id));
		if (!has_str(&scope->workspace_ids, r->workspace_id))
			fp_vec_push(&scope->workspace_ids, fp_xstrdup(r->workspace_id));
	}
	fp_state_unlock(app->st);
	free_strs(ids);
	if (!ok)
		fp_ws_scope_release(scope);
	return ok;
}

/* ---- faults and counters ---- */

void fp_ws_count_upgrade(struct fp_ws_hub *h, unsigned status)
{
	pthread_mutex_lock(&h->mu);
	h->upgrades[status < STATUS_SLOTS ? status : 0]++;
	pthread_mutex_unlock(&h->mu);
}

void fp_ws_get_faults(struct fp_ws_hub *h, struct fp_ws_faults *out)
{
	pthread_mutex_lock(&h->mu);
	*out = h->faults;
	pthread_mutex_unlock(&h->mu);
}

static void wake_all(struct fp_ws_hub *h)
{
	for (size_t i = 0; i < h->conns.len; i++)
		wake(h->conns.items[i]);
}

void fp_ws_set_faults(struct fp_ws_hub *h, const struct fp_ws_faults *f)
{
	pthread_mutex_lock(&h->mu);
	h->faults = *f;
	wake_all(h);   /* new timings apply now */
	pthread_mutex_unlock(&h->mu);
}

void fp_ws_clear_faults(struct fp_ws_hub *h)
{
	struct fp_ws_faults f = { .ping_interval_ms = h->flag_ping_ms,
				  .pong_wait_ms = h->flag_pong_ms };
	fp_ws_set_faults(h, &f);
}

/* ---- queueing (hub mutex held) ---- */

static void queue_locked(struct conn *c, const uint8_t *bytes, size_t len, unsigned nframes,
			 bool notify)
{
	if (c->drop || c->hub->faults.silent)
		return;   /* silent: a push made meanwhile is lost, never sent later */
	if (c->nqueued == FP_WS_QUEUE_MAX) {
		if (notify) {
			/* The slow-consumer rule: evicted, its queue closed. */
			c->drop = true;
			c->drop_close_frame = true;
			mc_log(MC_LOG_INFO, "ws: queue full, connection evicted",
			       "id", MC_LOG_NUM(c->id), NULL);
			wake(c);
		}
		return;
	}
	struct item *it = &c->queue[c->nqueued++];
	it->bytes = fp_xmalloc(len ? len : 1);
	memcpy(it->bytes, bytes, len);
	it->len = len;
	it->nframes = nframes;
	wake(c);
}

enum scope_kind { TO_ALL, TO_RUNTIME, TO_WORKSPACE };

static void push(struct fp_ws_hub *h, const char *type, cJSON *payload, enum scope_kind kind,
		 const char *id)
{
	cJSON *env = fp_json_object();
	fp_json_add_str(env, "type", type);
	fp_json_add(env, "payload", payload);
	char *text = fp_json_print(env);
	cJSON_Delete(env);
	size_t flen;
	uint8_t *frame = fp_ws_frame_build(FP_WS_TEXT, true, text, strlen(text), NULL, &flen);
	cJSON_free(text);
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->conns.len; i++) {
		struct conn *c = h->conns.items[i];
		if (kind == TO_ALL || (kind == TO_RUNTIME && has_str(&c->scope.runtime_ids, id)) ||
		    (kind == TO_WORKSPACE && has_str(&c->scope.workspace_ids, id)))
			queue_locked(c, frame, flen, 1, true);
	}
	pthread_mutex_unlock(&h->mu);
	free(frame);
}

void fp_ws_push_task(struct fp_ws_hub *h, const char *runtime_id, const char *task_id)
{
	if (h == NULL)
		return;
	cJSON *p = fp_json_object();
	fp_json_add_str(p, "runtime_id", runtime_id);
	if (task_id != NULL)
		fp_json_add_str(p, "task_id", task_id);
	push(h, "daemon:task_available", p, TO_RUNTIME, runtime_id);
}

void fp_ws_push_profiles(struct fp_ws_hub *h, const char *workspace_id, const char *profile_id)
{
	if (h == NULL)
		return;
	cJSON *p = fp_json_object();
	fp_json_add_str(p, "workspace_id", workspace_id);
	if (profile_id != NULL && profile_id[0] != '\0')
		fp_json_add_str(p, "runtime_profile_id", profile_id);
	push(h, "daemon:runtime_profiles_changed", p, TO_WORKSPACE, workspace_id);
}

void fp_ws_push_workspaces(struct fp_ws_hub *h)
{
	/* The real server sends this to user sockets only (H:513-539), never to
	 * an mdt_ one; the emulator has no such distinction and tells all. */
	if (h != NULL)
		push(h, "daemon:workspaces_changed", fp_json_object(), TO_ALL, NULL);
}

int fp_ws_send_raw(struct fp_ws_hub *h, uint64_t id, const uint8_t *bytes, size_t len,
		   unsigned nframes)
{
	int n = 0;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->conns.len; i++) {
		struct conn *c = h->conns.items[i];
		if (id == 0 || c->id == id) {
			queue_locked(c, bytes, len, nframes, false);
			n++;
		}
	}
	pthread_mutex_unlock(&h->mu);
	return n;
}

int fp_ws_drop(struct fp_ws_hub *h, bool close_frame)
{
	pthread_mutex_lock(&h->mu);
	int n = (int)h->conns.len;
	for (size_t i = 0; i < h->conns.len; i++) {
		struct conn *c = h->conns.items[i];
		c->drop = true;
		c->drop_close_frame = close_frame;
		wake(c);
	}
	pthread_mutex_unlock(&h->mu);
	return n;
}

static cJSON *str_array(const struct fp_vec *v)
{
	cJSON *a = fp_json_array();
	for (size_t i = 0; i < v->len; i++)
		fp_json_append(a, cJSON_CreateString(v->items[i]));
	return a;
}

cJSON *fp_ws_render(struct fp_ws_hub *h)
{
	cJSON *o = fp_json_object(), *conns = fp_json_array(), *up = fp_json_object();
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->conns.len; i++) {
		struct conn *c = h->conns.items[i];
		cJSON *j = fp_json_object();
		fp_json_add(j, "id", cJSON_CreateNumber((double)c->id));
		fp_json_add(j, "runtime_ids", str_array(&c->scope.runtime_ids));
		fp_json_add(j, "workspace_ids", str_array(&c->scope.workspace_ids));
		fp_json_add(j, "connected_at_ms", cJSON_CreateNumber((double)c->connected_ms));
		fp_json_add(j, "pings_sent", cJSON_CreateNumber((double)c->pings_sent));
		fp_json_add(j, "pongs_received", cJSON_CreateNumber((double)c->pongs_received));
		fp_json_add(j, "frames_received", cJSON_CreateNumber((double)c->frames_received));
		fp_json_add(j, "frames_sent", cJSON_CreateNumber((double)c->frames_sent));
		fp_json_append(conns, j);
	}
	for (unsigned s = 0; s < STATUS_SLOTS; s++) {
		if (h->upgrades[s] == 0)
			continue;
		char key[16];
		snprintf(key, sizeof key, "%u", s);
		fp_json_add(up, key, cJSON_CreateNumber((double)h->upgrades[s]));
	}
	uint64_t closed = h->closed;
	pthread_mutex_unlock(&h->mu);
	fp_json_add(o, "connections", conns);
	fp_json_add(o, "upgrades", up);
	fp_json_add(o, "closed", cJSON_CreateNumber((double)closed));
	return o;
}

/* ---- a connection's thread ---- */

#define RX_CAP (FP_WS_READ_LIMIT + 2 * FP_WS_HEADER_MAX)

/* A client PING answered late (pong_delay_ms): the latest one wins. */
struct late_pong {
	bool pending;
	int64_t due;
	uint8_t payload[125];
	size_t len;
};

static bool dropped(struct conn *c)
{
	pthread_mutex_lock(&c->hub->mu);
	bool d = c->drop;
	pthread_mutex_unlock(&c->hub->mu);
	return d;
}

/* Writes all of buf, waiting at most WRITE_WAIT_MS for a stalled peer (the
 * server's write deadline); a drop or an eviction meanwhile ends the wait.
 * Returns false when the socket is gone or given up. */
static bool write_all(struct conn *c, const uint8_t *buf, size_t len)
{
	int64_t deadline = mono_ms() + WRITE_WAIT_MS;
	while (len > 0) {
		ssize_t n = send(c->sock, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t left = deadline - mono_ms();
			if (left <= 0 || dropped(c))
				return false;
			struct pollfd p[2] = { { .fd = c->sock, .events = POLLOUT },
					       { .fd = c->efd, .events = POLLIN } };
			poll(p, 2, left > 1000 ? 1000 : (int)left);
			uint64_t junk;
			if (p[1].revents & POLLIN) {
				(void)!read(c->efd, &junk, sizeof junk);
				c->woken = true;   /* for the loop: more may be queued */
			}
			continue;
		}
		return false;
	}
	return true;
}

static bool send_frame(struct conn *c, unsigned opcode, const void *payload, size_t len)
{
	size_t flen;
	uint8_t *f = fp_ws_frame_build(opcode, true, payload, len, NULL, &flen);
	bool ok = write_all(c, f, flen);
	free(f);
	pthread_mutex_lock(&c->hub->mu);
	c->frames_sent++;
	pthread_mutex_unlock(&c->hub->mu);
	return ok;
}

/* A CLOSE frame with a status code (0: none, an empty CLOSE). */
static void send_close(struct conn *c, unsigned code)
{
	uint8_t p[2] = { (uint8_t)(code >> 8), (uint8_t)code };
	send_frame(c, FP_WS_CLOSE, p, code ? 2 : 0);
}

static bool opcode_known(unsigned op)
{
	return op <= FP_WS_BINARY || (op >= FP_WS_CLOSE && op <= FP_WS_PONG);
}

/* The protocol error code for a client frame's header, or 0 when it is
 * fine. Client frames must be masked, reserved bits clear (no extension
 * was negotiated), messages at most FP_WS_READ_LIMIT (gorilla: 1009). */
static unsigned header_error(const struct conn *c, const struct fp_ws_header *hd, bool in_msg)
{
	if (!hd->masked || hd->rsv != 0 || !opcode_known(hd->opcode))
		return 1002;
	if (hd->opcode >= FP_WS_CLOSE)
		return hd->len > 125 || !hd->fin ? 1002 : 0;
	if ((hd->opcode == FP_WS_CONT) != in_msg)
		return 1002;   /* a continuation with no message, or a new one mid-message */
	return c->msg_len + hd->len > FP_WS_READ_LIMIT ? 1009 : 0;
}

struct reader {
	const struct fp_ws_faults *f;
	int64_t *last_pong;
	struct late_pong *lp;
	bool in_msg;
	const char *why;
};

/* One whole client frame, payload unmasked. Returns false to end. */
static bool on_frame(struct conn *c, struct reader *rd, const struct fp_ws_header *hd,
		     const uint8_t *pl)
{
	pthread_mutex_lock(&c->hub->mu);
	c->frames_received++;
	if (hd->opcode == FP_WS_PONG)
		c->pongs_received++;
	pthread_mutex_unlock(&c->hub->mu);
	size_t len = (size_t)hd->len;
	switch (hd->opcode) {
	case FP_WS_PING:
		if (rd->f->silent)
			return true;
		if (rd->f->pong_delay_ms > 0) {
			rd->lp->pending = true;
			rd->lp->due = mono_ms() + rd->f->pong_delay_ms;
			memcpy(rd->lp->payload, pl, len);
			rd->lp->len = len;
			return true;
		}
		return send_frame(c, FP_WS_PONG, pl, len);
	case FP_WS_PONG:
		if (!rd->f->ignore_pongs)
			*rd->last_pong = mono_ms();
		return true;
	case FP_WS_CLOSE:
		if (!rd->f->silent)
			send_frame(c, FP_WS_CLOSE, pl, len);   /* echo the code */
		rd->why = "client closed";
		return false;
	default:
		/* Data (the daemon's heartbeats): counted, not answered. */
		c->msg_len = hd->fin ? 0 : c->msg_len + hd->len;
		rd->in_msg = !hd->fin;
		return true;
	}
}

/* Handles every whole frame in c->rx. Returns false to end. */
static bool read_frames(struct conn *c, struct reader *rd)
{
	size_t off = 0;
	bool go = true;
	while (go) {
		struct fp_ws_header hd;
		int hl = fp_ws_header_parse(c->rx + off, c->rx_len - off, &hd);
		if (hl == 0)
			break;
		unsigned code = hl < 0 ? 1002 : header_error(c, &hd, rd->in_msg);
		if (code != 0) {
			if (!rd->f->silent)
				send_close(c, code);
			rd->why = code == 1009 ? "message too big" : "protocol error";
			return false;
		}
		if (c->rx_len - off - (size_t)hl < hd.len)
			break;
		uint8_t *pl = c->rx + off + hl;
		fp_ws_mask(pl, (size_t)hd.len, hd.mask, 0);
		off += (size_t)hl + (size_t)hd.len;
		go = on_frame(c, rd, &hd, pl);
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	return go;
}

/* Takes what the hub queued; writes it unless silent. Returns false when
 * the connection must end (dropped or the write failed). */
static bool flush_queue(struct conn *c, const struct fp_ws_faults *f, const char **why)
{
	struct item items[FP_WS_QUEUE_MAX];
	pthread_mutex_lock(&c->hub->mu);
	size_t n = c->nqueued;
	memcpy(items, c->queue, n * sizeof items[0]);
	c->nqueued = 0;
	bool drop = c->drop, close_frame = c->drop_close_frame;
	pthread_mutex_unlock(&c->hub->mu);
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		if (ok && !f->silent) {
			ok = write_all(c, items[i].bytes, items[i].len);
			pthread_mutex_lock(&c->hub->mu);
			c->frames_sent += items[i].nframes;
			pthread_mutex_unlock(&c->hub->mu);
		}
		free(items[i].bytes);
	}
	if (!ok)
		*why = "write failed";
	if (drop) {
		if (close_frame && !f->silent)
			send_close(c, 0);   /* as the write pump: an empty CLOSE */
		*why = "dropped";
	}
	return ok && !drop;
}

/* Milliseconds until the next timed thing, at most 1000. */
static int next_wait(int64_t now, int64_t t1, int64_t t2, const struct late_pong *lp)
{
	int64_t w = 1000;
	if (t1 - now < w)
		w = t1 - now;
	if (t2 - now < w)
		w = t2 - now;
	if (lp->pending && lp->due - now < w)
		w = lp->due - now;
	return w < 0 ? 0 : (int)w;
}

/* Reads what the socket has. Returns false at EOF or an error. */
static bool fill(struct conn *c, const char **why)
{
	for (;;) {
		if (c->rx_len == RX_CAP)
			return true;
		ssize_t n = recv(c->sock, c->rx + c->rx_len, RX_CAP - c->rx_len, 0);
		if (n > 0) {
			c->rx_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		*why = n == 0 ? "peer closed" : "read failed";
		return false;
	}
}

static void serve(struct conn *c)
{
	int64_t now = mono_ms(), last_ping = now, last_pong = now;
	struct late_pong lp = { 0 };
	struct fp_ws_faults f;
	struct reader rd = { .f = &f, .last_pong = &last_pong, .lp = &lp };
	bool go = true;
	if (c->rx_len > 0)
		go = read_frames(c, &rd);
	while (go) {
		fp_ws_get_faults(c->hub, &f);
		if (!flush_queue(c, &f, &rd.why))
			break;
		now = mono_ms();
		if (f.silent) {
			/* Half-open: nothing sent, nothing expected. */
			last_ping = last_pong = now;
			lp.pending = false;
		}
		if (now - last_ping >= f.ping_interval_ms) {
			send_frame(c, FP_WS_PING, NULL, 0);
			pthread_mutex_lock(&c->hub->mu);
			c->pings_sent++;
			pthread_mutex_unlock(&c->hub->mu);
			last_ping = now;
		}
		if (now - last_pong >= f.pong_wait_ms) {
			rd.why = "no pong within pong_wait";
			break;   /* the read deadline: closed, no CLOSE frame */
		}
		if (lp.pending && now >= lp.due) {
			lp.pending = false;
			send_frame(c, FP_WS_PONG, lp.payload, lp.len);
		}
		struct pollfd p[2] = { { .fd = c->sock, .events = POLLIN },
				       { .fd = c->efd, .events = POLLIN } };
		int wait = next_wait(now, last_ping + f.ping_interval_ms,
				     last_pong + f.pong_wait_ms, &lp);
		if (c->woken)
			wait = 0;
		c->woken = false;
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			break;
		uint64_t junk;
		if (p[1].revents & POLLIN)
			(void)!read(c->efd, &junk, sizeof junk);
		/* The faults may have changed while it waited (the wake-up). */
		fp_ws_get_faults(c->hub, &f);
		if (p[0].revents != 0)
			go = fill(c, &rd.why) && read_frames(c, &rd);
	}
	mc_log(MC_LOG_INFO, "ws: closed", "id", MC_LOG_NUM(c->id), "cause",
	       rd.why ? rd.why : "closed", NULL);
}

static void conn_free(struct conn *c)
{
	for (size_t i = 0; i < c->nqueued; i++)
		free(c->queue[i].bytes);
	fp_ws_scope_release(&c->scope);
	if (c->efd >= 0)
		close(c->efd);
	free(c->rx);
	free(c);
}

/* Ends a connection the hub holds: off the list, then MHD closes the
 * socket, then the hub may stop waiting for this thread. */
static void conn_end(struct conn *c)
{
	struct fp_ws_hub *h = c->hub;
	c->release(c->release_arg);
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->conns.len; i++)
		if (h->conns.items[i] == c)
			fp_vec_remove(&h->conns, i);
	h->closed++;
	conn_free(c);
	h->threads--;
	pthread_cond_broadcast(&h->gone);
	pthread_mutex_unlock(&h->mu);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	serve(c);
	conn_end(c);
	return NULL;
}

void fp_ws_attach(struct fp_ws_hub *h, struct fp_ws_scope *scope, int sock,
		  const char *extra, size_t extra_len, void (*release)(void *), void *arg)
{
	struct conn *c = fp_xcalloc(1, sizeof *c);
	c->hub = h;
	c->scope = *scope;
	*scope = (struct fp_ws_scope){ 0 };
	c->sock = sock;
	c->release = release;
	c->release_arg = arg;
	c->connected_ms = fp_now_ms();
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->rx = fp_xmalloc(RX_CAP);
	c->rx_len = extra_len < RX_CAP ? extra_len : RX_CAP;
	if (c->rx_len > 0)
		memcpy(c->rx, extra, c->rx_len);
	int fl = fcntl(sock, F_GETFL);
	if (fl >= 0)
		fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	pthread_mutex_lock(&h->mu);
	bool refuse = h->stopping || c->efd < 0;
	if (!refuse) {
		c->id = h->next_id++;
		fp_vec_push(&h->conns, c);
		h->threads++;
	}
	pthread_mutex_unlock(&h->mu);
	uint64_t id = c->id;
	size_t nids = c->scope.runtime_ids.len;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* A host's one socket each, but a benchmark may hold thousands. */
	pthread_attr_setstacksize(&at, 256u << 10);
	if (!refuse && pthread_create(&t, &at, conn_main, c) != 0) {
		mc_log(MC_LOG_ERROR, "ws: cannot start a connection thread", NULL);
		conn_end(c);
	} else if (refuse) {
		conn_free(c);
		release(arg);
	} else {
		mc_log(MC_LOG_INFO, "ws: connected", "id", MC_LOG_NUM(id), "runtimes",
		       MC_LOG_NUM(nids), NULL);   /* c may be gone already */
	}
	pthread_attr_destroy(&at);
}
