/* The control socket's request parser, pure (no daemon state): one JSON
 * object per line, {"cmd":"status"}, {"cmd":"reload"},
 * {"cmd":"restart","workspace":"<uuid>"}, {"cmd":"tasks"} or
 * {"cmd":"drain","timeout_ms":N} (timeout optional). Test builds also take
 * {"cmd":"test-task","workspace","task_id","runtime_id","pgid"}: a task
 * put in the table as if routed and reported. Fuzzed on its own.
 *
 * Error convention: 0, or -1 with a message for the client in err. */
#ifndef MC_SV_CONTROL_REQUEST_H
#define MC_SV_CONTROL_REQUEST_H

#include <stddef.h>

#include "ipc/messages.h"

enum mc_ctl_cmd {
	MC_CTL_STATUS,
	MC_CTL_RELOAD,
	MC_CTL_RESTART,
	MC_CTL_TASKS,
	MC_CTL_DRAIN,
	MC_CTL_TEST_TASK,               /* MC_TEST_HOOKS builds only */
};

struct mc_ctl_request {
	enum mc_ctl_cmd cmd;
	char workspace[MC_ID_MAX];      /* restart, test-task: a lowercase UUID */
	long long timeout_ms;           /* drain: 0 for none */
	char task_id[MC_ID_MAX];        /* test-task */
	char runtime_id[MC_ID_MAX];
	int pgid;
};

/* Parses len bytes of line (no NUL needed; a NUL inside is an error). */
int mc_ctl_parse_request(const char *line, size_t len, struct mc_ctl_request *out, char *err,
			 size_t err_size);

#endif
