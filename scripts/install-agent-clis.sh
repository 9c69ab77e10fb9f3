#!/bin/sh
# Installs the pinned real agent CLIs (claude, codex) that the real-CLI
# tests run, with npm, into a cache directory outside the tree, and prints
# the directory holding their executables (node_modules/.bin) on stdout.
#
#   scripts/install-agent-clis.sh [--state FILE]
#
# --state FILE        also write the outcome to FILE, one line: "ready BINDIR",
#                     "no-registry MESSAGE" or "failed MESSAGE" (the ctest
#                     fixture real_cli_install does; tests/support/real_cli.c reads it)
#
# MC_AGENT_CLI_CACHE  install directory (default
#                     ${XDG_CACHE_HOME:-$HOME/.cache}/multicad/agent-clis/<claude>_<codex>)
# MC_NPM_TIMEOUT      seconds for the registry probe (default 20)
# MC_NPM_INSTALL_TIMEOUT  seconds for npm install (default 780; ctest allows 900)
#
# Idempotent: a completed install (its marker names both versions) is reused
# without touching the network. Atomic: npm installs into a temp dir beside
# the target, which is renamed into place only once both CLIs answered
# --version with the pinned version; the marker is the last file written.
# Concurrent runs (the plain and sanitizer test trees) serialise on a lock.
#
# Exit codes: 0 installed or reused; 77 the npm registry cannot be reached
# (the only case in which the real-CLI tests may skip); 1 anything else.
set -eu

CLAUDE_PKG=@anthropic-ai/claude-code
CLAUDE_VER=2.1.197
CODEX_PKG=@openai/codex
CODEX_VER=0.171.0
MARKER_TEXT="claude-code $CLAUDE_VER codex $CODEX_VER"

STATE=
if [ "${1:-}" = --state ] && [ -n "${2:-}" ]; then
	STATE=$2
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--state FILE]" >&2
	exit 2
fi

# The state file is replaced whole (tmp + rename): a test never reads half.
state() {
	[ -n "$STATE" ] || return 0
	printf '%s %s\n' "$1" "$2" >"$STATE.tmp.$$" && mv -f "$STATE.tmp.$$" "$STATE"
}
die() { echo "install-agent-clis: $*" >&2; state failed "$*"; exit 1; }
say() { echo "install-agent-clis: $*" >&2; }
ready() { state ready "$bin"; echo "$bin"; exit 0; }

# CI and service managers may run us without HOME: take the passwd entry's.
if [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ] && [ -z "${MC_AGENT_CLI_CACHE:-}" ]; then
	HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
	[ -n "$HOME" ] || die "neither HOME, XDG_CACHE_HOME nor MC_AGENT_CLI_CACHE is set"
	export HOME
fi
dir=${MC_AGENT_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/multicad/agent-clis/${CLAUDE_VER}_${CODEX_VER}}
bin="$dir/node_modules/.bin"

complete() {
	[ -f "$dir/.mc-install-complete" ] &&
		[ "$(cat "$dir/.mc-install-complete")" = "$MARKER_TEXT" ] &&
		[ -x "$bin/claude" ] && [ -x "$bin/codex" ]
}

if complete; then
	ready
fi

command -v node >/dev/null 2>&1 || die "node not found: run scripts/install-deps.sh (Debian's nodejs)"
command -v npm >/dev/null 2>&1 || die "npm not found: run scripts/install-deps.sh (Debian's npm)"

parent=$(dirname "$dir")
mkdir -p "$parent" || die "cannot create $parent"

# One installer at a time per target; the loser finds the winner's install.
exec 9>"$dir.lock" || die "cannot open lock $dir.lock"
flock 9 || die "cannot lock $dir.lock"
if complete; then
	ready
fi

# The registry probe decides between "no registry" (77) and a real failure:
# asking for the exact pinned version also checks that it still exists (a
# 404 is a failure, not a skip). Few retries: an absent registry is told in
# about a second rather than after npm's minute of backoff.
probe_rc=0
probe_out=$(timeout "${MC_NPM_TIMEOUT:-20}" npm view --fetch-retries=1 \
	--fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=2000 \
	"$CLAUDE_PKG@$CLAUDE_VER" version 2>&1) || probe_rc=$?
if [ "$probe_rc" -ne 0 ]; then
	code=$(printf '%s\n' "$probe_out" | sed -n 's/^npm error code //p' | head -n 1)
	case "$probe_rc:$code" in
	124:*) why="no answer within ${MC_NPM_TIMEOUT:-20} s" ;;
	*:ECONNREFUSED | *:ENOTFOUND | *:EAI_AGAIN | *:ETIMEDOUT | *:ECONNRESET | \
	*:EHOSTUNREACH | *:ENETUNREACH | *:ENOTCONN | *:ERR_SOCKET_TIMEOUT) why="$code" ;;
	*) printf '%s\n' "$probe_out" | tail -n 5 >&2
	   die "npm view $CLAUDE_PKG@$CLAUDE_VER failed (${code:-exit $probe_rc}): not a missing registry" ;;
	esac
	say "the npm registry ($(npm config get registry 2>/dev/null)) cannot be reached: $why"
	say "no registry: the real-CLI tests are skipped"
	state no-registry "$(npm config get registry 2>/dev/null): $why"
	exit 77
fi
[ "$probe_out" = "$CLAUDE_VER" ] || die "registry answered '$probe_out' for $CLAUDE_PKG@$CLAUDE_VER"

# What an installer killed mid-way left (we hold the lock: nobody uses it).
rm -rf "$dir".tmp.*
tmp=$(mktemp -d "$dir.tmp.XXXXXX") || die "cannot create a temp dir beside $dir"
trap 'rm -rf "$tmp"' EXIT INT TERM
start=$(date +%s)
say "installing $CLAUDE_PKG@$CLAUDE_VER $CODEX_PKG@$CODEX_VER into $dir"
# A private package.json keeps npm from walking up into a parent project.
printf '{"name":"mc-agent-clis","private":true}\n' >"$tmp/package.json"
if ! (cd "$tmp" && timeout "${MC_NPM_INSTALL_TIMEOUT:-780}" npm install --no-audit --no-fund \
	--save-exact --loglevel=error \
	"$CLAUDE_PKG@$CLAUDE_VER" "$CODEX_PKG@$CODEX_VER" >&2); then
	die "npm install failed (registry reachable, so this is not a skip)"
fi

# Verify what was installed actually runs offline and is the pinned version.
cv=$(HOME="$tmp" "$tmp/node_modules/.bin/claude" --version 2>&1 </dev/null) || die "claude --version failed: $cv"
case "$cv" in "$CLAUDE_VER"*) ;; *) die "claude --version says '$cv', want $CLAUDE_VER" ;; esac
xv=$(HOME="$tmp" CODEX_HOME="$tmp" "$tmp/node_modules/.bin/codex" --version 2>&1 </dev/null) ||
	die "codex --version failed: $xv"
case "$xv" in *"$CODEX_VER"*) ;; *) die "codex --version says '$xv', want $CODEX_VER" ;; esac
rm -rf "$tmp/.claude" "$tmp/.claude.json" "$tmp/.npm" 2>/dev/null || true

chmod 755 "$tmp"   # mktemp made it 0700: an agent user must reach the CLIs
printf '%s\n' "$MARKER_TEXT" >"$tmp/.mc-install-complete"
rm -rf "$dir"   # a half-finished earlier install (no marker) is replaced whole
mv "$tmp" "$dir" || die "cannot rename $tmp to $dir"
trap - EXIT INT TERM
say "installed in $(($(date +%s) - start)) s, $(du -sh "$dir" 2>/dev/null | cut -f1) on disk"
ready
