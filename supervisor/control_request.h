/* The control socket's request parser, pure (no daemon state): one JSON
 * object per line, {"cmd":"status"}, {"cmd":"reload"} or
 * {"cmd":"restart","workspace":"<uuid>"}. Fuzzed on its own.
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
};

struct mc_ctl_request {
	enum mc_ctl_cmd cmd;
	char workspace[MC_ID_MAX];      /* restart: a lowercase UUID */
};

/* Parses len bytes of line (no NUL needed; a NUL inside is an error). */
int mc_ctl_parse_request(const char *line, size_t len, struct mc_ctl_request *out, char *err,
			 size_t err_size);

#endif
