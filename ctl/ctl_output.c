/* multicactl: the printers of status (an aligned table) and tasks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

static const char *state_colour(const char *state)
{
	if (strcmp(state, "running") == 0)
		return "\033[32m";
	if (strcmp(state, "failed") == 0 || strcmp(state, "config-error") == 0)
		return "\033[31m";
	if (strcmp(state, "starting") == 0 || strcmp(state, "stopping") == 0 ||
	    strcmp(state, "cleanup") == 0 || strcmp(state, "backoff") == 0 ||
	    strcmp(state, "draining") == 0)
		return "\033[33m";
	return "";
}

#define RED   "\033[31m"
#define BOLD  "\033[1m"
#define RESET "\033[0m"

enum { C_WS, C_PID, C_STATE, C_RT, C_TASKS, C_RESTARTS, C_UPTIME, C_ERR, NCOLS };

static const char *const col_title[NCOLS] = {
	"WORKSPACE", "PID", "STATE", "RUNTIMES", "TASKS", "RESTARTS", "UPTIME", "LAST ERROR",
};
/* Numbers are right-aligned, as in ps and bgpctl. */
static const bool col_right[NCOLS] = { false, true, false, true, true, true, true, false };

struct row {
	char *cell[NCOLS];   /* sanitized, heap */
	const char *state;   /* borrowed from cell[C_STATE] */
};

static char *fmt_count(const cJSON *v)
{
	long long n = json_count(v);
	char buf[32];
	if (n < 0)
		snprintf(buf, sizeof buf, "-");
	else
		snprintf(buf, sizeof buf, "%lld", n);
	return sanitize(buf);
}

/* Fills row from one element of "workspaces". -1 if it is not an object
 * with a string "id" (a bad reply). */
static int make_row(const cJSON *w, struct row *row, size_t *online, size_t *failed)
{
	memset(row, 0, sizeof *row);
	if (!cJSON_IsObject(w))
		return -1;
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "id"));
	if (id == NULL)
		return -1;
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(w, "pid");
	const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "state"));
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(w, "runtime_ids");
	const char *err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(w, "last_error"));
	bool has_pid = json_count(pid) > 0;
	int n_rt = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : -1;
	char buf[32];

	row->cell[C_WS] = sanitize(id);
	row->cell[C_PID] = has_pid ? fmt_count(pid) : sanitize("-");
	row->cell[C_STATE] = sanitize(state != NULL ? state : "?");
	row->state = row->cell[C_STATE];
	if (n_rt >= 0)
		snprintf(buf, sizeof buf, "%d", n_rt);
	else
		snprintf(buf, sizeof buf, "-");
	row->cell[C_RT] = sanitize(buf);
	const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(w, "tasks");
	if (cJSON_IsArray(tasks))
		snprintf(buf, sizeof buf, "%d", cJSON_GetArraySize(tasks));
	else
		snprintf(buf, sizeof buf, "-");
	row->cell[C_TASKS] = sanitize(buf);
	row->cell[C_RESTARTS] = fmt_count(cJSON_GetObjectItemCaseSensitive(w, "restarts"));
	/* uptime_s is 0 for a worker that is not running: show "-" then. */
	long long up = json_count(cJSON_GetObjectItemCaseSensitive(w, "uptime_s"));
	if (has_pid && up >= 0)
		human_duration((double)up, buf, sizeof buf);
	else
		snprintf(buf, sizeof buf, "-");
	row->cell[C_UPTIME] = sanitize(buf);
	row->cell[C_ERR] = sanitize(err != NULL && err[0] ? err : "-");

	/* Same counting as the daemon's sd_notify STATUS line (notify.c):
	 * runtimes of running workers are online, failed + config-error fail. */
	if (state != NULL && strcmp(state, "running") == 0 && n_rt > 0)
		*online += (size_t)n_rt;
	if (state != NULL && (strcmp(state, "failed") == 0 || strcmp(state, "config-error") == 0))
		(*failed)++;
	return 0;
}

static void free_rows(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < NCOLS; c++)
			free(rows[i].cell[c]);
	free(rows);
}

static void print_header(const cJSON *sup, bool colour)
{
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(sup, "pid");
	const char *ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "version"));
	const char *cfg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "config"));
	long long up = json_count(cJSON_GetObjectItemCaseSensitive(sup, "uptime_s"));
	long long reloads = json_count(cJSON_GetObjectItemCaseSensitive(sup, "reloads"));
	const cJSON *lr = cJSON_GetObjectItemCaseSensitive(sup, "last_reload");
	const cJSON *lr_ok = cJSON_GetObjectItemCaseSensitive(lr, "ok");
	const char *lr_err = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(lr, "error"));
	char upbuf[32];
	human_duration(up >= 0 ? (double)up : -1, upbuf, sizeof upbuf);
	char *sver = sanitize(ver != NULL ? ver : "?");
	char *scfg = sanitize(cfg != NULL ? cfg : "?");

	printf("multicad %s, supervisor pid %lld, up %s, config %s, ", sver, json_count(pid), upbuf,
	       scfg);
	if (cJSON_IsFalse(lr_ok)) {
		char *serr = sanitize(lr_err != NULL ? lr_err : "(no message)");
		printf("%slast reload REJECTED%s (%lld reload%s)\n", colour ? RED BOLD : "",
		       colour ? RESET : "", reloads, reloads == 1 ? "" : "s");
		printf("  %s%s%s\n", colour ? RED : "", serr, colour ? RESET : "");
		free(serr);
	} else if (reloads > 0) {
		printf("last reload ok (%lld reload%s)\n", reloads, reloads == 1 ? "" : "s");
	} else {
		printf("no reloads\n");
	}
	free(sver);
	free(scfg);
}

/* One line for the link's websocket (link.websocket), when the daemon has
 * one to report: "websocket: up for 5m12s, 3 connects". */
static void print_websocket(const cJSON *reply)
{
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(reply, "link"), "websocket");
	const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ws, "state"));
	if (state == NULL)
		return;
	char *sstate = sanitize(state);
	if (strcmp(state, "off") == 0) {
		printf("websocket: off (websocket = off): changes wait for the polls\n");
		free(sstate);
		return;
	}
	char since[32];
	long long s = json_count(cJSON_GetObjectItemCaseSensitive(ws, "since_s"));
	long long n = json_count(cJSON_GetObjectItemCaseSensitive(ws, "connects"));
	human_duration(s >= 0 ? (double)s : -1, since, sizeof since);
	printf("websocket: %s for %s, %lld connect%s%s\n", sstate, since, n >= 0 ? n : 0,
	       n == 1 ? "" : "s",
	       strcmp(state, "down") == 0 ? "; polling at the normal intervals" : "");
	free(sstate);
}

static void print_cell(const char *s, size_t width, bool right, const char *colour)
{
	size_t pad = width > text_width(s) ? width - text_width(s) : 0;
	if (right)
		printf("%*s", (int)pad, "");
	printf("%s%s%s", colour != NULL && colour[0] ? colour : "", s,
	       colour != NULL && colour[0] ? RESET : "");
	if (!right)
		printf("%*s", (int)pad, "");
}

int print_status(const cJSON *reply, bool colour, bool utf8)
{
	const cJSON *sup = cJSON_GetObjectItemCaseSensitive(reply, "supervisor");
	const cJSON *wss = cJSON_GetObjectItemCaseSensitive(reply, "workspaces");
	if (!cJSON_IsObject(sup) || !cJSON_IsArray(wss)) {
		fprintf(stderr, "%s: the status reply has no \"supervisor\" object or "
			"\"workspaces\" array\n", prog);
		return EXIT_BAD_REPLY;
	}
	size_t n = (size_t)cJSON_GetArraySize(wss), online = 0, failed = 0, i = 0;
	struct row *rows = calloc(n ? n : 1, sizeof *rows);
	if (rows == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	const cJSON *w;
	cJSON_ArrayForEach(w, wss) {
		if (make_row(w, &rows[i], &online, &failed) < 0) {
			free_rows(rows, i + 1);
			fprintf(stderr, "%s: the status reply has a workspace without an \"id\"\n", prog);
			return EXIT_BAD_REPLY;
		}
		i++;
	}

	/* TASKS only from a daemon that reports tasks. */
	bool shown[NCOLS];
	for (int c = 0; c < NCOLS; c++)
		shown[c] = c != C_TASKS;
	cJSON_ArrayForEach(w, wss)
		if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(w, "tasks")))
			shown[C_TASKS] = true;

	print_header(sup, colour);
	if (n > 0) {
		size_t width[NCOLS];
		for (int c = 0; c < NCOLS; c++) {
			width[c] = shown[c] ? text_width(col_title[c]) : 0;
			for (i = 0; i < n; i++)
				if (shown[c] && text_width(rows[i].cell[c]) > width[c])
					width[c] = text_width(rows[i].cell[c]);
		}
		size_t term = terminal_width(), before_err = 0;
		for (int c = 0; c < C_ERR; c++)
			before_err += shown[c] ? width[c] + 2 : 0;
		/* On a terminal, LAST ERROR gets what is left of the line, so a
		 * long message does not wrap the table; the full text is in
		 * --json and the log. On a terminal too narrow for the other
		 * columns (a UUID alone takes 36), lines wrap anyway: keep
		 * ERR_MIN_COLS of the message so it stays recognisable. */
		if (term > 0) {
			size_t avail = term > before_err ? term - before_err : 0;
			if (avail < ERR_MIN_COLS)
				avail = ERR_MIN_COLS;
			for (i = 0; i < n; i++)
				truncate_to(rows[i].cell[C_ERR], avail, utf8);
		}

		putchar('\n');
		if (colour)
			fputs(BOLD, stdout);
		for (int c = 0; c < NCOLS; c++) {
			if (!shown[c])
				continue;
			print_cell(col_title[c], c == C_ERR ? 0 : width[c], col_right[c], NULL);
			fputs(c == C_ERR ? "" : "  ", stdout);
		}
		fputs(colour ? RESET "\n" : "\n", stdout);
		for (i = 0; i < n; i++) {
			for (int c = 0; c < NCOLS; c++) {
				const char *col = NULL;
				if (!shown[c])
					continue;
				if (colour && c == C_STATE)
					col = state_colour(rows[i].state);
				else if (colour && c == C_ERR && strcmp(rows[i].cell[c], "-") != 0)
					col = RED;
				print_cell(rows[i].cell[c], c == C_ERR ? 0 : width[c], col_right[c], col);
				fputs(c == C_ERR ? "\n" : "  ", stdout);
			}
		}
	}
	printf("\n%zu workspace%s, %zu runtime%s online, ", n, n == 1 ? "" : "s", online,
	       online == 1 ? "" : "s");
	if (failed > 0 && colour)
		printf(RED "%zu failed" RESET "\n", failed);
	else
		printf("%zu failed\n", failed);
	const cJSON *slots = cJSON_GetObjectItemCaseSensitive(reply, "slots");
	long long used = json_count(cJSON_GetObjectItemCaseSensitive(slots, "used"));
	long long max = json_count(cJSON_GetObjectItemCaseSensitive(slots, "max"));
	if (used >= 0 && max >= 0)
		printf("%lld task%s running, %lld of %lld slots used%s\n", used, used == 1 ? "" : "s",
		       used, max,
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sup, "draining"))
			       ? "; draining: no new tasks, stopping once none runs" : "");
	print_websocket(reply);
	print_agents(reply, colour);
	free_rows(rows, n);
	return EXIT_OK;
}

/* ---- tasks ---- */

enum { T_WS, T_ID, T_RT, T_FAMILY, T_PID, T_STATE, T_AGE, T_OUT, NTCOLS };

static const char *const tcol_title[NTCOLS] = {
	"WORKSPACE", "TASK", "RUNTIME", "FAMILY", "PID", "STATE", "AGE", "LAST OUTPUT",
};
static const bool tcol_right[NTCOLS] = { false, false, false, false, true, false, true, false };

static char *str_cell(const cJSON *o, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
	return sanitize(v != NULL && v[0] ? v : "-");
}

/* One element of "tasks"; -1 when it is not an object with an "id". */
static int make_task_row(const cJSON *t, char **cell)
{
	if (!cJSON_IsObject(t) || cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id")) == NULL)
		return -1;
	char buf[32];
	cell[T_WS] = str_cell(t, "workspace");
	cell[T_ID] = str_cell(t, "id");
	cell[T_RT] = str_cell(t, "runtime_id");
	cell[T_FAMILY] = str_cell(t, "family");
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(t, "pid");
	cell[T_PID] = json_count(pid) > 0 ? fmt_count(pid) : sanitize("-");
	cell[T_STATE] = str_cell(t, "state");
	human_duration((double)json_count(cJSON_GetObjectItemCaseSensitive(t, "age_s")), buf,
		       sizeof buf);
	cell[T_AGE] = sanitize(buf);
	cell[T_OUT] = str_cell(t, "last_output");
	return 0;
}

static void free_task_rows(char *(*rows)[NTCOLS], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < NTCOLS; c++)
			free(rows[i][c]);
	free(rows);
}

int print_tasks(const cJSON *reply, bool utf8)
{
	const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(reply, "tasks");
	if (!cJSON_IsArray(tasks)) {
		fprintf(stderr, "%s: the tasks reply has no \"tasks\" array\n", prog);
		return EXIT_BAD_REPLY;
	}
	size_t n = (size_t)cJSON_GetArraySize(tasks), i = 0;
	if (n == 0) {
		printf("no tasks running\n");
		return EXIT_OK;
	}
	char *(*rows)[NTCOLS] = calloc(n, sizeof *rows);
	if (rows == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return EXIT_BAD_REPLY;
	}
	const cJSON *t;
	cJSON_ArrayForEach(t, tasks) {
		if (make_task_row(t, rows[i]) < 0) {
			free_task_rows(rows, i + 1);
			fprintf(stderr, "%s: the tasks reply has a task without an \"id\"\n", prog);
			return EXIT_BAD_REPLY;
		}
		i++;
	}
	size_t width[NTCOLS], before = 0;
	for (int c = 0; c < NTCOLS; c++) {
		width[c] = text_width(tcol_title[c]);
		for (i = 0; i < n; i++)
			if (text_width(rows[i][c]) > width[c])
				width[c] = text_width(rows[i][c]);
		if (c < T_OUT)
			before += width[c] + 2;
	}
	size_t term = terminal_width();
	for (i = 0; term > 0 && i < n; i++)
		truncate_to(rows[i][T_OUT], term > before + ERR_MIN_COLS ? term - before : ERR_MIN_COLS,
			    utf8);
	for (int c = 0; c < NTCOLS; c++) {
		print_cell(tcol_title[c], c == T_OUT ? 0 : width[c], tcol_right[c], NULL);
		fputs(c == T_OUT ? "\n" : "  ", stdout);
	}
	for (i = 0; i < n; i++)
		for (int c = 0; c < NTCOLS; c++) {
			print_cell(rows[i][c], c == T_OUT ? 0 : width[c], tcol_right[c], NULL);
			fputs(c == T_OUT ? "\n" : "  ", stdout);
		}
	printf("\n%zu task%s running\n", n, n == 1 ? "" : "s");
	free_task_rows(rows, n);
	return EXIT_OK;
}
