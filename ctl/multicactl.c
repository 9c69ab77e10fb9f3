/* multicactl: the operator's client for multicad's control socket
 * (INTERFACE.md, "multicactl"). One request line out, one reply line in,
 * then the daemon closes the connection.
 *
 * Exit codes (also in multicactl.8):
 *   0  the daemon answered {"ok":true,...}
 *   1  the daemon answered {"ok":false,"error":...}
 *   2  usage error
 *   3  the daemon could not be reached: connect failed, or it did not answer
 *      in time, or it closed the connection without a reply
 *   4  a reply arrived but is not one we understand (not JSON, no "ok",
 *      missing fields, longer than REPLY_MAX)
 *
 * Everything the daemon sends is treated as untrusted text on its way to a
 * terminal: control characters are replaced before printing, so that an
 * error message quoting a server response cannot move the cursor or change
 * the terminal's state. */
#include <errno.h>
#include <langinfo.h>
#include <getopt.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ctl/ctl.h"

#define DEFAULT_SOCKET    "/run/multicad/control.sock"
#define TIMEOUT_MS        10000
/* A reload parses the file, reads the token and diffs every workspace
 * inside the daemon's loop before it answers: give it longer. */
#define RELOAD_TIMEOUT_MS 30000
/* drain --timeout D: the daemon answers at D; this much more for the
 * answer itself. */
#define DRAIN_SLACK_MS    30000

const char *prog = "multicactl";

static void usage(FILE *f, bool full)
{
	fprintf(f,
		"usage: multicactl [-s SOCKET] status [--json]\n"
		"       multicactl [-s SOCKET] reload\n"
		"       multicactl [-s SOCKET] restart WORKSPACE\n"
		"       multicactl [-s SOCKET] tasks [--json]\n"
		"       multicactl [-s SOCKET] drain [--timeout D]\n"
		"       multicactl -h | --help | -V | --version\n");
	if (!full) {
		fprintf(f, "Try 'multicactl -h' for more information.\n");
		return;
	}
	fprintf(f,
		"\n"
		"  status          one line per workspace: pid, state, runtimes, tasks, restarts,\n"
		"                  uptime, last error (--json: the daemon's reply as JSON)\n"
		"  reload          reload the configuration (like SIGHUP) and print the result\n"
		"  restart WS      restart the worker of one workspace\n"
		"  tasks           one line per running task: workspace, task, runtime, family,\n"
		"                  agent pid, state, age, last output (--json: the array)\n"
		"  drain           stop claiming tasks, wait for the running ones, then stop\n"
		"                  multicad; --timeout D (500ms, 30s, 10m, 1h) stops it at D\n"
		"  -s SOCKET       control socket (default %s)\n"
		"  -h, --help      this help\n"
		"  -V, --version   the version\n"
		"\n"
		"Exit codes: 0 ok, 1 the daemon reported an error, 2 usage error,\n"
		"3 cannot reach the daemon, 4 bad reply. See multicactl(8).\n",
		DEFAULT_SOCKET);
}

static int finish_output(int rc)
{
	if (fflush(stdout) != 0 && rc == EXIT_OK) {
		fprintf(stderr, "%s: writing the output: %s\n", prog, strerror(errno));
		rc = EXIT_DAEMON_ERROR;
	}
	return rc;
}

/* status and tasks: a query whose reply is printed as a table, or as JSON
 * (json_key: that member only; NULL: the whole reply). */
static int cmd_query(const char *sock, const char *cmd, bool json, const char *json_key,
		     int (*print)(const cJSON *reply, bool colour, bool utf8))
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", cmd);
	cJSON *reply;
	int rc = transact(sock, req, TIMEOUT_MS, &reply);
	cJSON_Delete(req);
	if (rc != EXIT_OK)
		return rc;
	if (!reply_ok(reply) && !(json && json_key == NULL)) {
		rc = daemon_error(reply, cmd);
	} else if (json) {
		/* The daemon's reply as it is (even {"ok":false}): scripts parse
		 * it; cJSON escapes control characters in strings. */
		const cJSON *what = json_key ? cJSON_GetObjectItemCaseSensitive(reply, json_key) : reply;
		char *text = what != NULL ? cJSON_Print(what) : NULL;
		if (text != NULL)
			puts(text);
		free(text);
		rc = what == NULL ? EXIT_BAD_REPLY : reply_ok(reply) ? EXIT_OK : EXIT_DAEMON_ERROR;
		if (what == NULL)
			fprintf(stderr, "%s: the %s reply has no \"%s\"\n", prog, cmd, json_key);
		else if (rc != EXIT_OK)
			daemon_error(reply, cmd);
	} else {
		bool utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
		rc = print(reply, want_colour(), utf8);
	}
	cJSON_Delete(reply);
	return finish_output(rc);
}

static int print_tasks_table(const cJSON *reply, bool colour, bool utf8)
{
	(void)colour;
	return print_tasks(reply, utf8);
}

/* "500ms", "30s", "10m", "1h" (or a bare number of seconds): ms, or -1. */
static long long parse_duration(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno != 0 || !(v > 0))
		return -1;
	double mul = 1000;
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		return -1;
	double ms = v * mul;
	return ms >= 1 && ms <= 31536000000.0 ? (long long)ms : -1;
}

/* drain: the daemon answers when the drain is over (and it stops). */
static int cmd_drain(const char *sock, long long timeout_ms)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "drain");
	if (timeout_ms > 0)
		cJSON_AddNumberToObject(req, "timeout_ms", (double)timeout_ms);
	cJSON *reply;
	int rc = transact(sock, req, timeout_ms > 0 ? timeout_ms + DRAIN_SLACK_MS : -1, &reply);
	cJSON_Delete(req);
	if (rc != EXIT_OK)
		return rc;
	if (!reply_ok(reply)) {
		rc = daemon_error(reply, "drain failed");
	} else {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "message"));
		char *m = sanitize(msg != NULL ? msg : "drained");
		printf("%s\n", m);
		free(m);
	}
	cJSON_Delete(reply);
	return finish_output(rc);
}

/* reload and restart: print the daemon's "message" on success. */
static int cmd_simple(const char *sock, cJSON *req, int64_t timeout, const char *what,
		      const char *prefix)
{
	cJSON *reply;
	int rc = transact(sock, req, timeout, &reply);
	cJSON_Delete(req);
	if (rc != EXIT_OK)
		return rc;
	if (!reply_ok(reply)) {
		rc = daemon_error(reply, what);
	} else {
		const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "message"));
		char *s = sanitize(msg != NULL ? msg : "ok");
		if (prefix != NULL)
			printf("%s: %s\n", prefix, s);
		else
			printf("%s\n", s);
		free(s);
	}
	cJSON_Delete(reply);
	return rc;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = DEFAULT_SOCKET;
	int c;
	setlocale(LC_CTYPE, ""); /* only to know whether the terminal takes UTF-8 */
	/* '+': stop at the command, so its own options (status --json) are
	 * left for it. */
	while ((c = getopt_long(argc, argv, "+s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (optarg[0] == '\0') {
				fprintf(stderr, "%s: -s needs a socket path\n", prog);
				return EXIT_USAGE;
			}
			sock = optarg;
			break;
		case 'h':
			usage(stdout, true);
			return EXIT_OK;
		case 'V':
			printf("multicactl %s\n", MC_VERSION);
			return EXIT_OK;
		default:
			usage(stderr, false);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no command given\n", prog);
		usage(stderr, false);
		return EXIT_USAGE;
	}
	const char *cmd = argv[optind++];
	int nargs = argc - optind;
	char **args = argv + optind;

	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "tasks") == 0) {
		bool json = false;
		for (int i = 0; i < nargs; i++) {
			if (strcmp(args[i], "--json") == 0 || strcmp(args[i], "-j") == 0) {
				json = true;
			} else {
				fprintf(stderr, "%s: %s: unexpected argument: %s\n", prog, cmd, args[i]);
				usage(stderr, false);
				return EXIT_USAGE;
			}
		}
		if (strcmp(cmd, "tasks") == 0)
			return cmd_query(sock, "tasks", json, "tasks", print_tasks_table);
		return cmd_query(sock, "status", json, NULL, print_status);
	}
	if (strcmp(cmd, "drain") == 0) {
		long long timeout = 0;
		if (nargs == 2 && strcmp(args[0], "--timeout") == 0)
			timeout = parse_duration(args[1]);
		else if (nargs == 1 && strncmp(args[0], "--timeout=", 10) == 0)
			timeout = parse_duration(args[0] + 10);
		else if (nargs != 0)
			timeout = -2;
		if (timeout < 0) {
			if (timeout == -1)
				fprintf(stderr, "%s: drain: --timeout takes a duration (500ms, 30s, 10m, "
					"1h)\n", prog);
			else
				fprintf(stderr, "%s: drain takes only --timeout D\n", prog);
			usage(stderr, false);
			return EXIT_USAGE;
		}
		return cmd_drain(sock, timeout);
	}
	if (strcmp(cmd, "reload") == 0) {
		if (nargs != 0) {
			fprintf(stderr, "%s: reload takes no arguments\n", prog);
			usage(stderr, false);
			return EXIT_USAGE;
		}
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "reload");
		return cmd_simple(sock, req, RELOAD_TIMEOUT_MS, "reload failed", NULL);
	}
	if (strcmp(cmd, "restart") == 0) {
		if (nargs != 1 || args[0][0] == '\0') {
			fprintf(stderr, "%s: restart needs exactly one workspace id\n", prog);
			usage(stderr, false);
			return EXIT_USAGE;
		}
		cJSON *req = cJSON_CreateObject();
		cJSON_AddStringToObject(req, "cmd", "restart");
		cJSON_AddStringToObject(req, "workspace", args[0]);
		char *ws = sanitize(args[0]);
		int rc = cmd_simple(sock, req, TIMEOUT_MS, "restart failed", ws);
		free(ws);
		return rc;
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout, true);
		return EXIT_OK;
	}
	fprintf(stderr, "%s: unknown command: %s\n", prog, cmd);
	usage(stderr, false);
	return EXIT_USAGE;
}
