#include "tests/bench/smaps.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct mapsum *mapsum_get(struct mapsums *m, const char *name)
{
	for (int i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, name) == 0)
			return &m->v[i];
	if (m->n == SMAPS_MAX_NAMES)
		return NULL;
	struct mapsum *s = &m->v[m->n++];
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s", name);
	return s;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Rss, Pss and Private_Dirty per mapping name from /proc/PID/smaps. An
 * anonymous mapping right after a file mapping is named after it
 * ("+bss libfoo"): a library's .bss and what it allocates next to it. */
int read_smaps(pid_t pid, struct mapsums *m)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	m->n = 0;
	struct mapsum *cur = NULL;
	unsigned long prev_end = 0;
	char prev_file[160] = "";
	while (fgets(line, sizeof line, f) != NULL) {
		if (isdigit((unsigned char)line[0]) || (line[0] >= 'a' && line[0] <= 'f')) {
			unsigned long start, end;
			int off = 0;
			if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &start, &end, &off) < 2) {
				cur = NULL;
				continue;
			}
			char *p = line + off;
			p[strcspn(p, "\n")] = '\0';
			char name[160];
			if (p[0] == '\0' || off == 0) {
				if (start == prev_end && prev_file[0] != '\0')
					snprintf(name, sizeof name, "+bss %.150s", prev_file);
				else
					snprintf(name, sizeof name, "[anon]");
			} else if (p[0] == '[') {
				snprintf(name, sizeof name, "%s", p);
				prev_file[0] = '\0';
			} else {
				snprintf(name, sizeof name, "%s", base_name(p));
				snprintf(prev_file, sizeof prev_file, "%s", base_name(p));
			}
			prev_end = end;
			cur = mapsum_get(m, name);
		} else if (cur != NULL && strncmp(line, "Private_Dirty:", 14) == 0) {
			cur->private_dirty += strtol(line + 14, NULL, 10);
		} else if (cur != NULL && strncmp(line, "Pss:", 4) == 0) {
			cur->pss += strtol(line + 4, NULL, 10);
		} else if (cur != NULL && strncmp(line, "Rss:", 4) == 0) {
			cur->rss += strtol(line + 4, NULL, 10);
		}
	}
	fclose(f);
	return 0;
}


long mapsum_pd(const struct mapsums *m, const char *name)
{
	for (int i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, name) == 0)
			return m->v[i].private_dirty;
	return 0;
}

int read_rollup(pid_t pid, struct rollup *r)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	memset(r, 0, sizeof *r);
	static const struct { const char *key; size_t off; } keys[] = {
		{ "Rss:", offsetof(struct rollup, rss) },
		{ "Pss:", offsetof(struct rollup, pss) },
		{ "Private_Dirty:", offsetof(struct rollup, private_dirty) },
		{ "Private_Clean:", offsetof(struct rollup, private_clean) },
		{ "Shared_Dirty:", offsetof(struct rollup, shared_dirty) },
		{ "Shared_Clean:", offsetof(struct rollup, shared_clean) },
		{ "Anonymous:", offsetof(struct rollup, anon) },
	};
	while (fgets(line, sizeof line, f) != NULL) {
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			size_t kl = strlen(keys[i].key);
			if (strncmp(line, keys[i].key, kl) == 0)
				*(long *)((char *)r + keys[i].off) = strtol(line + kl, NULL, 10);
		}
	}
	fclose(f);
	return 0;
}
