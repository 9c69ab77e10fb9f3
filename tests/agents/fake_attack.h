/* The fake claude's attacker mode (FAKE_AGENT_MODE=attack) and its
 * companion sleeper (FAKE_AGENT_MODE=wait_file), for the isolation tests
 * (tests/integration/test_isolation*.c, issue 11).
 *
 * FAKE_ATTACK_PLAN names a plan file: one action a line,
 *   <label> TAB <action> TAB <target>
 * ('#' lines and blank lines skipped). A target may start with $HOME/,
 * $TMPDIR/ or $CWD/ (expanded from the agent's own environment) or with
 * /proc/ppid/ (the parent's pid), and a pid target may be "ppid". Actions:
 *   read_file PATH      open O_RDONLY and read (the first 64 KiB kept)
 *   list_dir PATH       opendir + readdir
 *   open_dir_path PATH  open O_RDONLY|O_DIRECTORY (the exact path given)
 *   write_file PATH     create/truncate 0600 and write a line
 *   connect_unix PATH   connect(2) an AF_UNIX stream socket
 *   kill0 PID           kill(PID, 0)
 *   ptrace_attach PID   PTRACE_ATTACH, then wait and detach when it worked
 *   read_proc PATH      a directory (/proc/N/fd): listed; else opened, read
 *   dump PATH           read_file whose bytes are kept (base64, <= 64 KiB)
 *   scan DIR            every regular file it can read under DIR (depth
 *                       <= 4, <= 300 files), each dumped like dump
 *   exec PATH           fork + execv, ok when it exits 0
 *   getenv NAME         the variable's value ("value"), ok when set
 * Each gives {label, action, target, ok, errno ("" or "EACCES", ...)};
 * dump, scan and read_file also "data" (base64). The report:
 *   {"uid":N,"gid":N,"euid":N,"egid":N,"groups":[...],"home":..,"tmpdir":..,
 *    "cwd":..,"results":[...]}
 * is written whole to $CWD/attack.json (0644); the copy fa_attack returns
 * (for the assistant message and the result text, so the test reads it from
 * what the server saw) has no "data" members (they can be large).
 *
 * wait_file: with FAKE_AGENT_REPO_URL first a checkout (fake_checkout.c:
 * the workspace's repository cache then exists), then polls
 * FAKE_AGENT_WAIT_FILE (every 50 ms, at most 120 s) until it exists, then
 * the usual text and result. */
#ifndef FAKE_ATTACK_H
#define FAKE_ATTACK_H

/* Runs the plan; the report without data, malloc'd (never NULL: a plan
 * that cannot be read gives {"error": "..."}). */
char *fa_attack(void);
/* Returns once FAKE_AGENT_WAIT_FILE exists (or 120 s passed). */
void fa_wait_file(void);

#endif
