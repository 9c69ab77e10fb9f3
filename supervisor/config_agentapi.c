/* agent_api_listen in [daemon] (config.h): where the agents' local API
 * listens. "127.0.0.1:PORT" (0..65535, 0: any free port) or "off"; only
 * the IPv4 loopback host, as multica binds it. */
#include "supervisor/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOOPBACK "127.0.0.1:"

int mc_cfg_set_agent_api(struct parse *p, const struct dkey *k, const char *v, bool cont)
{
	(void)cont;
	if (strcmp(v, "off") == 0) {
		p->c->agent_api_port = MC_AGENT_API_OFF;
		return 0;
	}
	if (strncmp(v, LOOPBACK, strlen(LOOPBACK)) != 0)
		return fail_key(p, k->name,
				"\"%s\" must be 127.0.0.1:PORT or off (the local API listens on "
				"the IPv4 loopback only)", v);
	const char *d = v + strlen(LOOPBACK);
	long port = 0;
	size_t n = strlen(d);
	if (n == 0 || n > 5)
		return fail_key(p, k->name, "\"%s\": the port must be 0 to 65535", v);
	for (size_t i = 0; i < n; i++) {
		if (d[i] < '0' || d[i] > '9')
			return fail_key(p, k->name, "\"%s\": the port must be 0 to 65535", v);
		port = port * 10 + (d[i] - '0');
	}
	if (port > 65535)
		return fail_key(p, k->name, "\"%s\": the port must be 0 to 65535", v);
	p->c->agent_api_port = (int)port;
	return 0;
}

void mc_cfg_format_agent_api(int port, char *out, size_t out_size)
{
	if (port == MC_AGENT_API_OFF)
		snprintf(out, out_size, "off");
	else
		snprintf(out, out_size, LOOPBACK "%d", port);
}
