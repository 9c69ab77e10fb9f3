/* The messages of the supervisor <-> worker protocol, one payload codec per
 * type. Payloads are JSON objects validated field by field, except TOKEN,
 * whose payload is the raw token (never parsed into a heap string).
 *
 * Handshake: the worker sends HELLO; the supervisor checks the protocol
 * version and answers CONFIG, TOKEN, PROBES. Afterwards: PING/PONG
 * liveness, REPORT after every change of the worker's runtime set, PROBES
 * again when the built-in probe result changes, STOP -> STOPPED.
 *
 * Error convention: 0 / -1 with errno (EPROTO for an invalid payload, with
 * a reason in the caller's err buffer). */
#ifndef MC_IPC_MESSAGES_H
#define MC_IPC_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/frame.h"

#define MC_IPC_PROTO_VERSION 1

enum mc_ipc_type {
	MC_IPC_HELLO   = 1,  /* W->S {"proto":1,"pid":N} */
	MC_IPC_CONFIG  = 2,  /* S->W struct mc_worker_config */
	MC_IPC_TOKEN   = 3,  /* S->W raw token bytes */
	MC_IPC_PROBES  = 4,  /* S->W {"builtins":[{"provider","name","version"}]} */
	MC_IPC_PING    = 5,  /* S->W {"seq":N} */
	MC_IPC_PONG    = 6,  /* W->S {"seq":N} */
	MC_IPC_REPORT  = 7,  /* W->S {"runtime_ids":[...]} the full tracked set */
	MC_IPC_STOP    = 8,  /* S->W {} */
	MC_IPC_STOPPED = 9,  /* W->S {"deregistered":bool} */
	MC_IPC_FATAL   = 10, /* W->S {"reason":"..."} unfixable config error; exit 78 follows */
	/* tasks: ipc/task_msgs.h */
	MC_IPC_SLOTS_REQ  = 11, /* L->S {"want":N} */
	MC_IPC_SLOTS      = 12, /* S->L {"grant":N} */
	MC_IPC_TASK       = 13, /* L->S, S->W u32 token length | token | {"slot":N,"task":{...}} */
	MC_IPC_CLAIM_DONE = 14, /* L->S {"claimed":N} */
	MC_IPC_RUNTIMES   = 15, /* S->L {"workspace_id":"..","runtime_ids":[...]} */
	MC_IPC_WAKE       = 16, /* S->L {"reason":".."} */
	MC_IPC_TASK_FAIL  = 17, /* S->L {"task_id","runtime_id","reason","error"} */
	MC_IPC_TASK_STATE = 18, /* W->S struct mc_task_state_msg */
	/* the agent-api process: ipc/agentapi_msgs.h */
	MC_IPC_AGENT_TASK   = 19, /* S->A struct mc_agent_task */
	MC_IPC_AGENT_STATUS = 20, /* A->S struct mc_agent_status */
	/* W->S {}: the first registration's recover-orphans are done; only
	 * then may the link claim for its runtimes (a claim landing before
	 * them would be failed by them) */
	MC_IPC_TASKS_READY  = 21,
	/* the websocket push channel: ipc/ws_msgs.h */
	MC_IPC_PUSH         = 22, /* L->S */
	MC_IPC_PUSH_STATE   = 23, /* L->S, S->W */
	MC_IPC_SYNC_NOW     = 24, /* S->W */
	MC_IPC_TYPE_END
};

/* Type checkers for mc_ipc_reader_init: what each side may receive. The
 * link is a peer like a worker (HELLO, CONFIG with workspace_id "", TOKEN,
 * PING/PONG, STOP/STOPPED) plus its task frames. */
int mc_ipc_type_ok_for_worker(uint16_t type);
int mc_ipc_type_ok_for_supervisor(uint16_t type);
int mc_ipc_type_ok_for_link(uint16_t type);
/* The supervisor's reader of the link's socket. */
int mc_ipc_type_ok_from_link(uint16_t type);
const char *mc_ipc_type_name(uint16_t type);

#define MC_ID_MAX        64   /* UUIDs are 36 */
#define MC_URL_MAX       512
#define MC_NAME_MAX      256
#define MC_PROVIDER_MAX  32
#define MC_VERSION_MAX   128
#define MC_PATH_MAX      1024
#define MC_MAX_BUILTINS  32
#define MC_MAX_OVERRIDES 256
#define MC_MAX_REPORT    1024
/* Runtimes one worker registers for its workspace, built-ins included:
 * half of MC_MAX_REPORT, so that a REPORT holds the tracked set plus a
 * whole earlier set of dropped ids still waiting for their DEREG. The
 * profiles past it go to failed_profiles, reason naming the limit
 * (worker/payload.c). */
#define MC_MAX_RUNTIMES  (MC_MAX_REPORT / 2)

struct mc_profile_override {
	char profile_id[MC_ID_MAX];
	char path[MC_PATH_MAX];
};

struct mc_worker_config {
	char workspace_id[MC_ID_MAX];
	char server_url[MC_URL_MAX];
	char daemon_id[MC_ID_MAX];
	char device_name[MC_NAME_MAX];
	char cli_version[MC_VERSION_MAX];
	char log_level[8];                  /* debug|info|warn|error */
	long heartbeat_interval_ms;
	long profile_sync_interval_ms;
	long http_timeout_ms;
	long probe_timeout_ms;              /* custom-profile --version probes */
	size_t n_overrides;
	struct mc_profile_override *overrides; /* heap; mc_worker_config_clear */
	char test_fault[32];                /* test builds only; "" otherwise */
	char ca_file[MC_PATH_MAX];          /* "" : the system's CA store */
	/* tasks */
	long task_poll_interval_ms;         /* the link's claim poll */
	int max_concurrent_tasks;           /* host-wide slots (1..1000) */
	char workspaces_root[MC_PATH_MAX];  /* absolute */
	char state_dir[MC_PATH_MAX];        /* absolute (the outbox lives there) */
	long task_idle_timeout_ms;
	long task_stop_grace_ms;
	long task_retention_ms;
	long stop_timeout_ms;               /* the supervisor's; the worker's budget within it */
	int agent_api_port;                 /* the agents' local API; 0: none */
	/* the agents' identity (common/identity.h; issue 11) */
	bool agent_switch;                  /* false: agents run as the daemon's user */
	long agent_uid, agent_gid;          /* when agent_switch */
	long agent_extra_gid;               /* -1: none */
	/* The agents' HOME: "" with agent_uid_range (the worker uses
	 * <workspaces_root>/<ws>/home, created by the agent) and in the
	 * fallback (the daemon's HOME, as before); else agent_user's home. */
	char agent_home[MC_PATH_MAX];
	char agent_home_template[MC_PATH_MAX]; /* "" : none; seeds a new HOME */
	char agent_env_file[MC_PATH_MAX];   /* "" : none; KEY=VALUE lines for agents only */
	bool allow_profile_paths;           /* a profile's command_name may be a path */
	/* the push channel (issue 14): the link holds no websocket when set */
	bool websocket_off;
};

/* The resolved path of a built-in: absolute, no control bytes, no '"' or
 * '\\' (so that its JSON is its length: the PROBES bound below), at most
 * MC_BUILTIN_PATH_MAX bytes. */
#define MC_BUILTIN_PATH_MAX (MC_PATH_MAX - 1)

struct mc_builtin {
	char provider[MC_PROVIDER_MAX];     /* "claude" */
	char name[MC_NAME_MAX];             /* "Claude" (no device suffix) */
	char version[MC_VERSION_MAX];
	/* The executable the worker launches: absolute; "" when the sender
	 * knows none (a test harness). PROBES at worst: 32 entries of
	 * provider 31 + name 255 x 2 + version 127 x 2 (quotes escaped) + path
	 * 1023 + keys and punctuation ~50 bytes = 59.6 KiB < MC_IPC_MAX_PAYLOAD
	 * (test_ipc checks it). */
	char path[MC_PATH_MAX];
};
/* True for a path PROBES can carry (see MC_BUILTIN_PATH_MAX); "" is one. */
bool mc_ipc_builtin_path_ok(const char *path);

struct mc_probes {
	size_t n;
	struct mc_builtin v[MC_MAX_BUILTINS];
};

struct mc_report {
	size_t n;
	char (*ids)[MC_ID_MAX];             /* heap; mc_report_clear */
};

/* The profile_commands object of a CONFIG, as printed JSON, takes at most
 * this many bytes: the other fields are bounded by their arrays and hold no
 * control bytes (the sender refuses them, as the parser does), so each
 * prints to at most twice its length: about 15.5 KiB in all, and any
 * CONFIG then fits one frame (test_ipc prints the worst case: 64179 of
 * 65536 bytes with the agents' three paths; a new long field needs room). The config loader refuses a
 * [workspace] section past it; 256 overrides of the longest path an INI
 * line holds take 47.6 KiB when nothing in them needs escaping. */
#define MC_IPC_OVERRIDES_JSON_MAX (48u * 1024u)
/* What the profile_commands object of n overrides prints to, braces,
 * quotes and escapes included. */
size_t mc_ipc_overrides_json_size(const struct mc_profile_override *v, size_t n);

void mc_worker_config_clear(struct mc_worker_config *c);
void mc_report_clear(struct mc_report *r);
/* Copies ids into a new report (caller clears it). -1 with errno. */
int mc_report_set(struct mc_report *r, size_t n, const char *const *ids);

/* Encoders queue one frame on w. 0 / -1 with errno. */
int mc_ipc_send_hello(struct mc_ipc_writer *w, int pid);
/* Refuses (EINVAL) more than MC_MAX_OVERRIDES overrides or more than
 * MC_IPC_OVERRIDES_JSON_MAX bytes of them, and a string field holding a
 * control byte (the worker would refuse it). */
int mc_ipc_send_config(struct mc_ipc_writer *w, const struct mc_worker_config *c);
int mc_ipc_send_token(struct mc_ipc_writer *w, const char *token, size_t len);
/* Refuses (EINVAL, nothing queued) a set mc_ipc_probes_check refuses. */
int mc_ipc_send_probes(struct mc_ipc_writer *w, const struct mc_probes *p);
int mc_ipc_send_ping(struct mc_ipc_writer *w, uint64_t seq);
int mc_ipc_send_pong(struct mc_ipc_writer *w, uint64_t seq);
int mc_ipc_send_report(struct mc_ipc_writer *w, size_t n, const char *const *ids);
int mc_ipc_send_stop(struct mc_ipc_writer *w);
int mc_ipc_send_tasks_ready(struct mc_ipc_writer *w);
int mc_ipc_send_stopped(struct mc_ipc_writer *w, bool deregistered);
int mc_ipc_send_fatal(struct mc_ipc_writer *w, const char *reason);

/* Decoders validate the whole payload of a frame of the matching type. On
 * failure they return -1 with errno=EPROTO and write why into err. */
int mc_ipc_parse_hello(const struct mc_ipc_frame *f, int *proto, int *pid,
		       char *err, size_t err_size);
/* Allocates c->overrides; the caller clears c. */
int mc_ipc_parse_config(const struct mc_ipc_frame *f, struct mc_worker_config *c,
			char *err, size_t err_size);
int mc_ipc_parse_probes(const struct mc_ipc_frame *f, struct mc_probes *p,
			char *err, size_t err_size);
/* The rules of a PROBES set, one function for the sender and the parser so
 * that they cannot disagree: at most MC_MAX_BUILTINS entries; each provider
 * a key ([a-z0-9_-]) named once; provider, name and version non-empty,
 * NUL-terminated within their arrays, free of control bytes. 0, or -1 with
 * errno=EPROTO and why in err (err may be NULL). */
int mc_ipc_probes_check(const struct mc_probes *p, char *err, size_t err_size);
int mc_ipc_parse_seq(const struct mc_ipc_frame *f, uint64_t *seq, char *err, size_t err_size);
/* Allocates r->ids; the caller clears r. */
int mc_ipc_parse_report(const struct mc_ipc_frame *f, struct mc_report *r,
			char *err, size_t err_size);
int mc_ipc_parse_stopped(const struct mc_ipc_frame *f, bool *deregistered,
			 char *err, size_t err_size);
int mc_ipc_parse_fatal(const struct mc_ipc_frame *f, char *reason, size_t reason_size,
		       char *err, size_t err_size);
/* STOP carries {}: anything else is a violation. */
int mc_ipc_parse_empty(const struct mc_ipc_frame *f, char *err, size_t err_size);

/* True for a canonical 8-4-4-4-12 hex UUID. */
bool mc_is_uuid(const char *s);

#endif
