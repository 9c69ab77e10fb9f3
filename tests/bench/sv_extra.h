/* sv_bench helpers for `make bench` (tests/bench/run.sh): CSV output under
 * --csv DIR, CPU time of a process tree, TCP connections of a process to a
 * port, request rates from the emulator's journal. */
#ifndef SV_EXTRA_H
#define SV_EXTRA_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* DIR/name opened for writing (truncated) with header as its first line;
 * NULL when dir is NULL or on error. The caller fcloses it. */
FILE *csv_open(const char *dir, const char *name, const char *header);
/* Appends "n,proto,figure,value,unit" to DIR/figures.csv (header written
 * when the file is new); nothing when dir is NULL. */
void csv_figure(const char *dir, int n, const char *proto, const char *figure, double value,
		const char *unit);

/* utime + stime of pid in clock ticks, or -1 when it is gone. */
long long proc_cpu_ticks(pid_t pid);

/* Inodes of the ESTABLISHED IPv4 TCP sockets whose remote port is port, from
 * /proc/net/tcp (this network namespace). Allocates *out (caller frees);
 * count or -1. */
int tcp_inodes_to_port(int port, unsigned long **out);
/* How many of pid's fds are sockets whose inode is in inodes[0..n). */
int pid_sockets_in(pid_t pid, const unsigned long *inodes, int n);

/* The most timestamps (ms, sorted ascending) within any window of win_ms. */
int peak_in_window(const int64_t *t, int n, int64_t win_ms);

#endif
