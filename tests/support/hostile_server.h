/* Test support: a raw HTTP/1.1 server on 127.0.0.1 that plays scripted
 * misbehaviour in front of a real emulator. Each request is matched against
 * the rules in order; the first match decides the answer (drip, endless
 * chunked body, redirect, a canned body of any shape, a close mid-body);
 * a request no rule matches is forwarded to the upstream emulator and its
 * answer relayed, so everything else behaves like a correct server.
 * Keep-alive like a real server: a connection serves requests until the
 * client or an action closes it. One thread per connection.
 *
 * Parent side only (never from a forked child). Error convention: NULL or
 * -1 with a line on stderr. */
#ifndef MC_TEST_HOSTILE_SERVER_H
#define MC_TEST_HOSTILE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hs_act {
	HS_ANSWER,          /* status, content type, body; Content-Length */
	HS_DRIP,            /* HS_ANSWER's whole response, one byte every drip_ms */
	HS_CHUNKED_ENDLESS, /* 200, chunked; chunks of body forever, every drip_ms (0: flat out) */
	HS_REDIRECT,        /* status (302) with Location: location (NULL: this very URL) */
	HS_CLOSE_MID_BODY,  /* HS_ANSWER's headers and half its body, then close */
	HS_FORWARD,         /* to the upstream, as for a request no rule matches */
};

struct hs_rule {
	const char *method;      /* NULL: any */
	const char *path_prefix; /* NULL: any */
	const char *has;         /* the path or the body contains it; NULL: any */
	enum hs_act act;
	int status;              /* 0: 200 (302 for HS_REDIRECT) */
	const char *content_type; /* NULL: application/json; "": no header */
	const char *body;        /* NULL: "{}" (HS_CHUNKED_ENDLESS: "[") */
	size_t body_len;         /* 0: strlen(body) */
	const char *location;    /* HS_REDIRECT */
	int drip_ms;             /* HS_DRIP: 0 means 1000 */
	bool forward_first;      /* the upstream sees (and acts on) the request first */
	int times;               /* matches this rule takes; 0: every one */
};

/* What the server saw of one request. */
struct hs_req {
	char method[8];
	char path[256];
	int rule;                /* the rule that answered; -1: forwarded */
	int64_t start_ms;        /* CLOCK_MONOTONIC: the request was read */
	int64_t end_ms;          /* the answer was sent whole, or the client left */
	bool client_left;        /* the client hung up before the answer was whole */
};

struct hs;

/* Listens on an ephemeral port; upstream_port 0: no upstream (unmatched
 * requests get a 502). Allocates; free with hs_stop. */
struct hs *hs_start(int upstream_port);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *hs_url(const struct hs *s);
/* Replaces the rules (copied; the strings they point to are borrowed and
 * must outlive their use). n = 0: forward everything. */
void hs_set_rules(struct hs *s, const struct hs_rule *rules, size_t n);
/* Connections accepted so far. */
int hs_connections(struct hs *s);
/* Requests seen whose method and path prefix match (NULL: any) and that
 * rule answered (-1: forwarded, HS_ANY_RULE: any). */
#define HS_ANY_RULE (-2)
int hs_count(struct hs *s, const char *method, const char *prefix, int rule);
/* A copy of the request log, at most max entries; returns how many. */
size_t hs_requests(struct hs *s, struct hs_req *out, size_t max);
/* Stops every thread, closes every socket, frees s. NULL ok. */
void hs_stop(struct hs *s);

#endif
