/* Benchmarks: memory per mapping of a process, from /proc/PID/smaps. */
#ifndef MC_BENCH_SMAPS_H
#define MC_BENCH_SMAPS_H

#include <sys/types.h>

#define SMAPS_MAX_NAMES 512

/* Sums in kB for one mapping name. An anonymous mapping right after a file
 * mapping is named after it ("+bss libfoo"). */
struct mapsum {
	char name[160];
	long rss, pss, private_dirty;
};

struct mapsums {
	struct mapsum v[SMAPS_MAX_NAMES];
	int n;
};

/* Fills m from /proc/pid/smaps. 0, or -1 with errno. */
int read_smaps(pid_t pid, struct mapsums *m);
/* Private_Dirty of one name, 0 when absent. */
long mapsum_pd(const struct mapsums *m, const char *name);

/* Totals in kB from /proc/pid/smaps_rollup. */
struct rollup {
	long rss, pss, private_dirty, private_clean, shared_dirty, shared_clean, anon;
};

/* Fills r. 0, or -1 with errno. */
int read_rollup(pid_t pid, struct rollup *r);

#endif
