/* Process titles (INTERFACE.md, "Process titles"): /proc/PID/cmdline of a
 * multicad process is exactly its title and one NUL, whatever the length of
 * the binary's path, the arguments and the environment it was started with.
 *
 * How the kernel shows cmdline (fs/proc/base.c, get_mm_cmdline): the bytes
 * [arg_start, arg_end) as they are when the byte at arg_end - 1 is NUL;
 * otherwise (a rewritten title) the bytes from arg_start up to and including
 * the first NUL, at most one page. mc_proctitle_set therefore writes the
 * title and its NUL at arg_start, zeroes the rest of the area and, when the
 * title ends before arg_end - 1, puts a non-NUL byte there, so the kernel
 * stops at the title's NUL. A title longer than the argv strings continues
 * into the environment strings, which follow them in memory and which
 * mc_proctitle_init moved to the heap first.
 *
 * Not libbsd's setproctitle: it marks the end of the area at the end of
 * argv[0] rather than at arg_end, so when argv[0] is longer than the title
 * (a binary in a deep directory) and arguments follow, the kernel shows the
 * whole argv area: the title, a run of NULs, a stray '.', more NULs.
 *
 * Not thread-safe by design: call before any thread exists (main) or in a
 * freshly forked child, before it starts threads. */
#ifndef MC_PROCTITLE_H
#define MC_PROCTITLE_H

/* Takes over the argv and environment strings of main's argc/argv/envp:
 * copies every string to the heap (kept for the life of the process) and
 * points argv[i], environ and program_invocation_[short_]name at the copies,
 * so that nothing reads the area mc_proctitle_set overwrites. Call first
 * thing in main, once. Without it mc_proctitle_set only sets the name. */
void mc_proctitle_init(int argc, char **argv, char **envp);

/* Sets the title from a printf format (truncated to what the area holds,
 * at most 255 characters) and, when comm is not NULL, the process name of
 * /proc/PID/comm, top and pgrep (the kernel keeps 15 characters). */
void mc_proctitle_set(const char *comm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
