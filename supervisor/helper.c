/* Short-lived forked helpers that do the supervisor's HTTP, so that the
 * supervisor itself never opens a connection (a forked worker must inherit
 * none) and never blocks on the network: the cleanup of a dead worker (its
 * outbox delivered, recover-orphans on the runtimes that had tasks in
 * flight, then the DEREG of its runtimes, in that order), the final
 * deregistration at start-up and shutdown, and the membership list. Each is
 * watched through a pidfd with a hard deadline. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bsd/string.h>
#include <bsd/unistd.h>

#include "common/api.h"
#include "common/child.h"
#include "common/log.h"
#include "common/proctitle.h"
#include "supervisor/outbox_deliver.h"
#include "supervisor/sv.h"

#define HELPER_GRACE_MS 1000  /* beyond the request timeout, before SIGKILL */
#define MEMBERSHIP_OUT_MAX (4u * 1024u * 1024u)

/* ---- the child side ---- */

static void child_setup(struct mc_sv *sv, const char *title_ws, int keep_fd)
{
	mc_child_reset_signals();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	mc_secret_forbid_dumps(); /* holds the token: inherited, and said again */
	/* stdio stays for logging; keep_fd is the result pipe. */
	if (keep_fd >= 0 && keep_fd != 3) {
		dup2(keep_fd, 3);
		keep_fd = 3;
	}
	closefrom(keep_fd >= 0 ? 4 : 3);
	mc_proctitle_set("mc-cleanup", "multicad: cleanup %s", title_ws);
	mc_log_set_context("cleanup", strcmp(title_ws, "all") == 0 ? NULL : title_ws);
	(void)sv;
}

static struct mc_api *child_api(struct mc_sv *sv, mc_ms_t timeout_ms)
{
	char ver[64];
	snprintf(ver, sizeof ver, "multicad/%s", MC_VERSION);
	struct mc_api_config ac = {
		.server_url = sv->cfg.server_url,
		.token = sv->token,
		.client_version = ver,
		.timeout_ms = (long)timeout_ms,
		.ca_file = sv->cfg.ca_file[0] ? sv->cfg.ca_file : NULL,
	};
	return sv->token ? mc_api_new(&ac) : NULL;
}

static int result_of(const struct mc_call *call)
{
	if (mc_call_ok(call))
		return MC_HELPER_OK;
	const struct mc_api_error *e = mc_call_error(call);
	if (e->kind == MC_API_ERR_HTTP && (e->status == 401 || e->status == 403))
		return MC_HELPER_AUTH; /* the token may be accepted again (or rotated) */
	return mc_api_error_is_transient(e) ? MC_HELPER_TRANSIENT : MC_HELPER_PERMANENT;
}

/* The DEREG of ids: a MC_HELPER_* result. */
static int do_dereg(struct mc_api *api, size_t n, const char *const *ids)
{
	if (n == 0)
		return MC_HELPER_OK;
	int rc = MC_HELPER_TRANSIENT;
	struct mc_call *call = api ? mc_call_deregister(api, n, ids) : NULL;
	if (call != NULL) {
		mc_call_perform(call);
		rc = result_of(call);
		if (rc == MC_HELPER_OK)
			mc_log(MC_LOG_INFO, "deregistered runtimes left online", "count", MC_LOG_NUM(n),
			       "first", ids[0], NULL);
		else
			mc_log(MC_LOG_WARN, "cleanup deregister failed", "error",
			       mc_call_error(call)->message, NULL);
	}
	mc_call_free(call);
	return rc;
}

/* recover-orphans on each runtime that had tasks in flight: the server
 * fails them (runtime_recovery) and retries them. A transient failure of
 * any makes the whole cleanup run again. */
static int do_recover(struct mc_api *api, size_t n, const char *const *rt_ids)
{
	int rc = MC_HELPER_OK;
	for (size_t i = 0; i < n; i++) {
		struct mc_call *call = mc_call_recover_orphans(api, rt_ids[i]);
		int r = MC_HELPER_TRANSIENT;
		if (call != NULL) {
			mc_call_perform(call);
			r = result_of(call);
			if (r == MC_HELPER_OK)
				mc_log(MC_LOG_INFO, "recovered a dead worker's tasks in flight", "runtime",
				       rt_ids[i], NULL);
			else
				mc_log(MC_LOG_WARN, "recover-orphans failed", "runtime", rt_ids[i],
				       "error", mc_call_error(call)->message, NULL);
		}
		mc_call_free(call);
		if (r == MC_HELPER_TRANSIENT || r == MC_HELPER_AUTH)
			rc = r; /* a permanent answer (runtime gone) leaves nothing to recover */
	}
	return rc;
}

struct cleanup_args {
	const char *ws;                 /* "" for the final DEREG */
	size_t n;
	const char *const *ids;         /* DEREG */
	size_t n_rt;
	const char *const *rt_ids;      /* recover-orphans */
	bool outbox;                    /* deliver <state_dir>/outbox/<ws> first */
	mc_ms_t timeout_ms;             /* of each request */
};

/* The order matters: a report in the outbox goes before recover-orphans,
 * which would otherwise fail that (finished) task; the DEREG goes last but
 * always, even when an earlier step must be retried (nothing serves those
 * runtimes any more). */
__attribute__((noreturn))
static void child_cleanup(struct mc_sv *sv, const struct cleanup_args *a)
{
	child_setup(sv, a->ws[0] ? a->ws : "all", -1);
	struct mc_api *api = child_api(sv, a->timeout_ms);
	int before = MC_HELPER_OK;
	if (api != NULL && a->outbox && a->ws[0]) {
		struct mc_outbox_result res;
		mc_outbox_deliver(api, sv->cfg.state_dir, a->ws, &res);
		if (res.kept > 0)
			before = MC_HELPER_TRANSIENT; /* recover-orphans must wait for them */
	}
	if (api != NULL && before == MC_HELPER_OK && a->n_rt > 0)
		before = do_recover(api, a->n_rt, a->rt_ids);
	int rc = api != NULL ? do_dereg(api, a->n, a->ids) : MC_HELPER_TRANSIENT;
	if (rc == MC_HELPER_OK)
		rc = before;
	mc_api_free(api);
	mc_child_exit(rc);
}

/* Writes the membership answer to fd 3:
 *   "304\n" | "200 <etag>\n<id>\n<id>\n..." ; exit status tells success. */
__attribute__((noreturn))
static void child_membership(struct mc_sv *sv, int out_fd)
{
	child_setup(sv, "all", out_fd);
	int rc = MC_HELPER_TRANSIENT;
	struct mc_api *api = child_api(sv, 15000);
	if (api != NULL && sv->membership_known && sv->ws_etag[0]) {
		struct mc_workspace_list l = { .n = sv->n_members };
		l.v = calloc(l.n ? l.n : 1, sizeof *l.v);
		for (size_t i = 0; l.v != NULL && i < l.n; i++)
			l.v[i] = (struct mc_workspace){ sv->members[i], (char *)"" };
		if (l.v != NULL)
			mc_api_seed_workspaces(api, sv->ws_etag, &l);
		free(l.v);
	}
	struct mc_call *call = api ? mc_call_list_workspaces(api) : NULL;
	FILE *f = fdopen(3, "w");
	if (call != NULL && f != NULL && mc_call_perform(call) == 0) {
		struct mc_workspace_list l;
		if (mc_call_not_modified(call)) {
			fputs("304\n", f);
			rc = MC_HELPER_OK;
		} else if (mc_call_take_workspaces(call, &l) == 0) {
			const char *etag = mc_api_workspaces_etag(api);
			fprintf(f, "200 %s\n", etag ? etag : "");
			for (size_t i = 0; i < l.n; i++)
				fprintf(f, "%s\n", l.v[i].id);
			mc_workspace_list_clear(&l);
			rc = MC_HELPER_OK;
		}
	} else if (call != NULL) {
		mc_log(MC_LOG_WARN, "listing workspaces failed", "error",
		       mc_call_error(call)->message, NULL);
		rc = result_of(call);
	}
	if (f != NULL && fclose(f) != 0)
		rc = MC_HELPER_TRANSIENT;
	mc_call_free(call);
	mc_api_free(api);
	mc_child_exit(rc);
}

/* ---- the supervisor side ---- */

static struct mc_helper *helper_new(struct mc_sv *sv, enum mc_helper_kind kind)
{
	struct mc_helper *h = calloc(1, sizeof *h);
	if (h == NULL)
		return NULL;
	h->kind = kind;
	h->pidfd = h->out_fd = -1;
	h->pid_src = (struct mc_src){ SRC_HELPER_PID, h };
	h->out_src = (struct mc_src){ SRC_HELPER_OUT, h };
	mc_timer_init(&h->timer, TIMER_HELPER, h);
	(void)sv;
	return h;
}

static int watch(struct mc_sv *sv, struct mc_helper *h, mc_ms_t deadline)
{
	h->started_at = mc_now_ms();
	h->pidfd = mc_pidfd_open(h->pid);
	if (h->pidfd < 0 || mc_sv_epoll_add(sv, h->pidfd, EPOLLIN, &h->pid_src) < 0 ||
	    (h->out_fd >= 0 && mc_sv_epoll_add(sv, h->out_fd, EPOLLIN, &h->out_src) < 0) ||
	    mc_timerq_arm(&sv->timers, &h->timer, deadline) < 0) {
		/* Not reaped yet: without a pidfd its pid still names it. */
		if (mc_pidfd_kill(h->pidfd, SIGKILL) < 0)
			kill(h->pid, SIGKILL);
		while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -1;
	}
	h->next = sv->helpers;
	sv->helpers = h;
	return 0;
}

static void helper_release(struct mc_sv *sv, struct mc_helper *h)
{
	mc_timerq_cancel(&sv->timers, &h->timer);
	if (h->pidfd >= 0) {
		mc_sv_epoll_del(sv, h->pidfd);
		close(h->pidfd);
		h->pidfd = -1;
	}
	if (h->out_fd >= 0) {
		mc_sv_epoll_del(sv, h->out_fd);
		close(h->out_fd);
		h->out_fd = -1;
	}
	h->dead = true;
}

/* Forks h's cleanup child and watches it; frees h and returns NULL on
 * failure. The deadline covers every request it makes. */
static struct mc_helper *start_cleanup(struct mc_sv *sv, struct mc_helper *h,
				       const struct cleanup_args *a, size_t n_outbox)
{
	fflush(stderr);
	h->pid = fork();
	if (h->pid < 0) {
		mc_log(MC_LOG_ERROR, "cannot fork a cleanup helper", "error", strerror(errno), NULL);
		free(h);
		return NULL;
	}
	if (h->pid == 0)
		child_cleanup(sv, a);
	mc_ms_t requests = 1 + (mc_ms_t)a->n_rt + (mc_ms_t)n_outbox;
	if (watch(sv, h, mc_now_ms() + requests * a->timeout_ms + HELPER_GRACE_MS) < 0) {
		helper_release(sv, h);
		free(h);
		return NULL;
	}
	return h;
}

struct mc_helper *mc_helper_dereg(struct mc_sv *sv, enum mc_helper_kind kind, struct mc_wk *wk,
				  size_t n, const char *const *ids, mc_ms_t timeout_ms)
{
	struct mc_helper *h = helper_new(sv, kind);
	if (h == NULL)
		return NULL;
	h->wk = wk;
	strlcpy(h->ws, wk ? wk->ws : "", sizeof h->ws);
	struct cleanup_args a = { .ws = h->ws, .n = n, .ids = ids, .timeout_ms = timeout_ms };
	return start_cleanup(sv, h, &a, 0);
}

struct mc_helper *mc_helper_cleanup(struct mc_sv *sv, struct mc_wk *wk, size_t n,
				    const char *const *ids, size_t n_rt,
				    const char *const *rt_ids)
{
	struct mc_helper *h = helper_new(sv, HELPER_CLEANUP);
	if (h == NULL)
		return NULL;
	h->wk = wk;
	strlcpy(h->ws, wk->ws, sizeof h->ws);
	size_t n_outbox = mc_outbox_pending(sv->cfg.state_dir, wk->ws, MC_OUTBOX_DELIVER_MAX);
	struct cleanup_args a = { .ws = h->ws, .n = n, .ids = ids, .n_rt = n_rt, .rt_ids = rt_ids,
				  .outbox = true, .timeout_ms = sv->cfg.http_timeout_ms };
	return start_cleanup(sv, h, &a, n_outbox);
}

struct mc_helper *mc_helper_membership(struct mc_sv *sv)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return NULL;
	struct mc_helper *h = helper_new(sv, HELPER_MEMBERSHIP);
	if (h == NULL) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	fflush(stderr);
	h->pid = fork();
	if (h->pid < 0) {
		close(p[0]);
		close(p[1]);
		free(h);
		return NULL;
	}
	if (h->pid == 0) {
		close(p[0]);
		int fl = fcntl(p[1], F_GETFL);
		fcntl(p[1], F_SETFL, fl & ~O_NONBLOCK);
		child_membership(sv, p[1]);
	}
	close(p[1]);
	h->out_fd = p[0];
	if (watch(sv, h, mc_now_ms() + 15000 + HELPER_GRACE_MS) < 0) {
		helper_release(sv, h);
		free(h);
		return NULL;
	}
	return h;
}

void mc_helper_on_output(struct mc_sv *sv, struct mc_helper *h)
{
	if (h->dead || h->out_fd < 0)
		return;
	for (;;) {
		if (h->out_len + 4096 > h->out_cap) {
			size_t cap = h->out_cap ? h->out_cap * 2 : 8192;
			char *nb = cap <= MEMBERSHIP_OUT_MAX ? realloc(h->out, cap) : NULL;
			if (nb == NULL) {
				/* Answer too large: a failure. The pidfd, because
				 * this also runs after the helper was reaped. */
				mc_pidfd_kill(h->pidfd, SIGKILL);
				return;
			}
			h->out = nb;
			h->out_cap = cap;
		}
		ssize_t r = read(h->out_fd, h->out + h->out_len, h->out_cap - h->out_len - 1);
		if (r > 0) {
			h->out_len += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			mc_sv_epoll_del(sv, h->out_fd);
			close(h->out_fd);
			h->out_fd = -1;
		}
		return;
	}
}

void mc_helper_on_exit(struct mc_sv *sv, struct mc_helper *h)
{
	if (h->dead)
		return;
	siginfo_t si;
	memset(&si, 0, sizeof si);
	if (waitid((idtype_t)P_PIDFD, (id_t)h->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	mc_helper_on_output(sv, h); /* whatever is left in the pipe */
	int result = (si.si_code == CLD_EXITED && si.si_status <= MC_HELPER_AUTH)
			     ? si.si_status : MC_HELPER_TRANSIENT;
	helper_release(sv, h);
	switch (h->kind) {
	case HELPER_CLEANUP:
		if (h->wk != NULL)
			mc_wk_on_cleanup_done(sv, h->wk, result, h->started_at);
		else if (h->ws[0]) {
			/* An orphan's leftovers: its tasks are recovered too. */
			if ((result == MC_HELPER_OK || result == MC_HELPER_PERMANENT) &&
			    mc_wk_find(sv, h->ws) == NULL)
				mc_ledger_set_tasks(sv->ledger, h->ws, 0, NULL);
			mc_orphan_on_done(sv, h->ws, result);
		}
		break;
	case HELPER_FINAL:
		sv->final_cleanup_done = true;
		sv->final_cleanup_result = result;
		break;
	case HELPER_MEMBERSHIP:
		sv->membership = NULL;
		if (h->out != NULL)
			h->out[h->out_len] = '\0';
		mc_membership_on_result(sv, result, h->out ? h->out : "", h->out_len);
		break;
	}
}

void mc_helper_on_timer(struct mc_sv *sv, struct mc_helper *h)
{
	if (h->dead)
		return;
	mc_log(MC_LOG_WARN, "helper overran its deadline; killing it", "pid", MC_LOG_NUM(h->pid),
	       NULL);
	mc_pidfd_kill(h->pidfd, SIGKILL); /* its exit event reports a transient failure */
}

void mc_helper_kill_all(struct mc_sv *sv)
{
	for (struct mc_helper *h = sv->helpers; h != NULL; h = h->next) {
		if (h->dead)
			continue;
		mc_pidfd_kill(h->pidfd, SIGKILL); /* not dead: not reaped, the pidfd is open */
		while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
			;
		helper_release(sv, h);
	}
	mc_helper_reap_dead(sv);
	mc_orphan_forget_all(sv);
}

void mc_helper_detach(struct mc_sv *sv, const struct mc_wk *wk)
{
	for (struct mc_helper *h = sv->helpers; h != NULL; h = h->next)
		if (h->wk == wk)
			h->wk = NULL;
}

void mc_helper_reap_dead(struct mc_sv *sv)
{
	struct mc_helper **p = &sv->helpers;
	while (*p != NULL) {
		struct mc_helper *h = *p;
		if (h->dead) {
			*p = h->next;
			free(h->out);
			free(h);
		} else {
			p = &h->next;
		}
	}
}

static struct mc_helper *running_cleanup(struct mc_sv *sv, const char *ws)
{
	for (struct mc_helper *h = sv->helpers; h != NULL; h = h->next)
		if (!h->dead && h->kind == HELPER_CLEANUP && strcmp(h->ws, ws) == 0)
			return h;
	return NULL;
}

/* Delivers the outbox and deregisters what the ledger holds for a
 * workspace no worker serves (left by a supervisor that was killed, or by a
 * removed workspace whose cleanup failed). At most one such helper per
 * workspace at a time. */
struct mc_helper *mc_helper_orphan_cleanup(struct mc_sv *sv, const char *ws)
{
	struct mc_helper *h = running_cleanup(sv, ws);
	if (h != NULL)
		return h;
	const char *const *ids;
	size_t n = mc_ledger_get(sv->ledger, ws, &ids);
	size_t n_outbox = mc_outbox_pending(sv->cfg.state_dir, ws, MC_OUTBOX_DELIVER_MAX);
	if (n == 0 && n_outbox == 0)
		return NULL;
	h = helper_new(sv, HELPER_CLEANUP);
	if (h == NULL)
		return NULL;
	strlcpy(h->ws, ws, sizeof h->ws);
	/* A previous run's reports go first (the final helper of a start-up);
	 * then, if its journal shows tasks in flight, recover-orphans on the
	 * workspace's runtimes (which ones had them is not journaled). */
	const char *const *tasks;
	size_t n_rt = mc_ledger_get_tasks(sv->ledger, ws, &tasks) > 0 ? n : 0;
	struct cleanup_args a = { .ws = h->ws, .n = n, .ids = ids, .n_rt = n_rt, .rt_ids = ids,
				  .outbox = true, .timeout_ms = sv->cfg.http_timeout_ms };
	return start_cleanup(sv, h, &a, n_outbox);
}

struct mc_helper *mc_helper_adopt_orphan_cleanup(struct mc_sv *sv, struct mc_wk *wk)
{
	struct mc_helper *h = running_cleanup(sv, wk->ws);
	if (h == NULL || h->wk != NULL)
		return NULL;
	h->wk = wk;
	return h;
}
