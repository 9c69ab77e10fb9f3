/* libFuzzer target: the control socket's request parser (one line from any
 * local client of the daemon's group). Properties: no crash, no leak; an
 * accepted restart names a lowercase UUID; a refusal has a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/messages.h"
#include "supervisor/control_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_ctl_request req;
	char err[128] = "";
	if (mc_ctl_parse_request((const char *)data, size, &req, err, sizeof err) < 0) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	if (req.cmd == MC_CTL_RESTART && !mc_is_uuid(req.workspace))
		abort();
	return 0;
}
