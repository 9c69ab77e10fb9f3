/* Whole-buffer writes on blocking fds: EINTR and short writes handled. */
#ifndef MC_FDIO_H
#define MC_FDIO_H

#include <stddef.h>

/* Writes all n bytes. 0, or -1 with errno. */
int mc_write_all(int fd, const void *buf, size_t n);

#endif
