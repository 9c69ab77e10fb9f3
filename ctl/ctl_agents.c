/* multicactl status: the agents' identity (the daemon's "agents" object).
 * Only the fallback is printed, on a line of its own: agents that run as
 * the daemon's user can read its token, which an operator must not miss. */
#include <stdio.h>
#include <stdlib.h>

#include "ctl/ctl.h"

void print_agents(const cJSON *reply, bool colour)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(reply, "agents");
	const char *w = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "warning"));
	if (w == NULL)
		return;
	char *s = sanitize(w);
	printf("%swarning: %s%s\n", colour ? "\033[31m" : "", s, colour ? "\033[0m" : "");
	free(s);
}
