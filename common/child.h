/* Ending a forked child (worker, helper) without running the parent's
 * atexit handlers or flushing its stdio buffers twice. Under the sanitizer
 * build the child's leaks are checked first, since _exit skips LeakSanitizer. */
#ifndef MC_CHILD_H
#define MC_CHILD_H

__attribute__((noreturn)) void mc_child_exit(int code);

#endif
