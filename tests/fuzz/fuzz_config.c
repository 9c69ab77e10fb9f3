/* libFuzzer target: the configuration parser and validator (multicad -t and
 * every reload read it), over a memfd so no file is left behind.
 * Properties: no crash, no leak; a rejected file yields at least one problem,
 * each one line naming the file; an accepted one yields none. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "supervisor/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct mc_config cfg;
	struct mc_config_problems pr;
	int rc = mc_config_check(path, &cfg, &pr);
	if (rc == 0 && pr.n != 0)
		abort();
	if (rc < 0 && pr.n == 0 && pr.dropped == 0 && !pr.nomem)
		abort();
	for (size_t i = 0; i < pr.n; i++)
		if (strncmp(pr.v[i].text, path, strlen(path)) != 0 || strchr(pr.v[i].text, '\n'))
			abort();
	mc_config_problems_free(&pr);
	if (rc == 0)
		mc_config_free(&cfg);
	close(fd);
	return 0;
}
