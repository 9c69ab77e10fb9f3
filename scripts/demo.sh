#!/bin/sh
# make demo: multicad against the local control-plane emulator, step by
# step: registration, a profile edit, a worker crash, reloads, a task that
# runs on the fake claude agent (tests/agents), a task cancelled while it
# runs, a clean stop. Usage: scripts/demo.sh [BUILD_DIR] (default: build).
#
# Everything lives in one temp dir; the emulator and the daemon are this
# script's children, stopped by pid (never by name) on any exit, and tied
# to this shell so that even a SIGKILL of the script takes them along:
# the emulator exits at the end of its stdin (a FIFO this shell holds), the
# daemon gets SIGTERM from PR_SET_PDEATHSIG (setpriv --pdeathsig).
set -eu

BUILD=${1:-build}
MULTICAD=$BUILD/multicad
MULTICACTL=$BUILD/multicactl
FAKEPLANE=$BUILD/multica-fakeplane
# The fake claude CLI of the tests: speaks claude's stream-json, scripted by
# FAKE_AGENT_MODE (tests/agents/fake_common.h).
FAKE_CLAUDE=$BUILD/tests/agents/fake_claude
DEMO_DEADLINE=55 # seconds; the whole walk-through takes about 25

for b in "$MULTICAD" "$MULTICACTL" "$FAKEPLANE" "$FAKE_CLAUDE"; do
	if [ ! -x "$b" ]; then
		echo "demo: $b not found; run 'make demo' (it builds $BUILD first)" >&2
		exit 1
	fi
done
for tool in curl jq; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "demo: needs $tool (make demo installs it: MC_EXTRA_PKGS=\"curl jq\" scripts/install-deps.sh)" >&2
		exit 1
	fi
done
MULTICAD=$(readlink -f "$MULTICAD")
MULTICACTL=$(readlink -f "$MULTICACTL")
FAKEPLANE=$(readlink -f "$FAKEPLANE")
FAKE_CLAUDE=$(readlink -f "$FAKE_CLAUDE")

# ---- presentation ----
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	B=$(printf '\033[1m') C=$(printf '\033[36m') R=$(printf '\033[0m')
else
	B='' C='' R=''
fi
# On a terminal, a short pause before each step so a reader can follow;
# DEMO_PAUSE=0 for none.
if [ -t 1 ]; then
	PAUSE=${DEMO_PAUSE:-1.5}
else
	PAUSE=${DEMO_PAUSE:-0}
fi
step() {
	sleep "$PAUSE"
	printf '\n%s==> %s%s\n' "$B" "$*" "$R"
}
say() {
	printf '    %s\n' "$*"
}
show() { # show a command, then run it
	printf '%s$ %s%s\n' "$C" "$*" "$R"
	"$@"
}

# ---- the scene ----
WS_A=a0000000-0000-4000-8000-00000000000a # frontend
WS_B=b0000000-0000-4000-8000-00000000000b # backend
WS_C=c0000000-0000-4000-8000-00000000000c # research (added by the reload)
PROF_CCMS=d0000000-0000-4000-8000-0000000000d1
PROF_REVIEW=d0000000-0000-4000-8000-0000000000d2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/multicad-demo-XXXXXX")
FP_PID=''
MC_PID=''

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$MC_PID" ] && kill -0 "$MC_PID" 2>/dev/null; then
		kill -TERM "$MC_PID" 2>/dev/null || true
		i=0
		while kill -0 "$MC_PID" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$MC_PID" 2>/dev/null || true
	fi
	if [ -n "$MC_PID" ]; then
		wait "$MC_PID" 2>/dev/null || true
	fi
	if [ -n "$FP_PID" ]; then
		kill -TERM "$FP_PID" 2>/dev/null || true
		wait "$FP_PID" 2>/dev/null || true
	fi
	exec 9>&-
	rm -rf "$tmp"
	case $rc in
	0) ;;
	130 | 143) echo "demo: interrupted; everything stopped and removed" >&2 ;;
	*) echo "demo: failed (exit $rc); see the messages above" >&2 ;;
	esac
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$(date +%s)
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 100 ms.
wait_for() {
	limit=$1 what=$2
	shift 2
	end=$(($(date +%s) + limit))
	until "$@"; do
		if [ "$(date +%s)" -ge "$end" ]; then
			echo "demo: timed out waiting for: $what" >&2
			echo "--- multicad log (last 20 lines) ---" >&2
			tail -20 "$tmp/multicad.log" >&2 || true
			exit 1
		fi
		if [ $(($(date +%s) - started)) -ge $DEMO_DEADLINE ]; then
			echo "demo: over the ${DEMO_DEADLINE}s budget" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# ---- fake agent CLIs ----
# claude runs tasks: the tests' fake claude. The others only answer
# --version (nothing here sends them a task).
mkdir -p "$tmp/bin" "$tmp/state"
fake_cli() {
	printf '#!/bin/sh\necho "%s"\n' "$2" >"$tmp/bin/$1"
	chmod 755 "$tmp/bin/$1"
}
ln -s "$FAKE_CLAUDE" "$tmp/bin/claude"
fake_cli codex "codex-cli 0.40.0"
fake_cli ccms "ccms 1.4.2"
fake_cli review-bot "review-bot 0.9"

printf 'mul_demo_token\n' >"$tmp/token"
chmod 600 "$tmp/token"

profile_json() { # id workspace display_name command
	printf '{"id":"%s","workspace_id":"%s","display_name":"%s","protocol_family":"claude","command_name":"%s","fixed_args":[],"visibility":"workspace","enabled":true}' \
		"$1" "$2" "$3" "$4"
}
cat >"$tmp/seed.json" <<EOF
{ "tokens": { "mul_demo_token": "u1" },
  "workspaces": [ { "id": "$WS_A", "name": "frontend", "members": ["u1"] },
                  { "id": "$WS_B", "name": "backend",  "members": ["u1"] },
                  { "id": "$WS_C", "name": "research", "members": ["u1"] } ],
  "profiles": [ $(profile_json $PROF_CCMS $WS_A "CCMS" ccms) ],
  "tasks": [] }
EOF

# ---- the emulator ----
mkfifo "$tmp/fp.stdin"
"$FAKEPLANE" --listen 127.0.0.1:0 --seed "$tmp/seed.json" --exit-on-stdin-eof \
	<"$tmp/fp.stdin" >"$tmp/fakeplane.out" 2>"$tmp/fakeplane.log" &
FP_PID=$!
exec 9>"$tmp/fp.stdin"
port_known() {
	grep -q '^listening on 127.0.0.1:[0-9]*$' "$tmp/fakeplane.out" 2>/dev/null
}
wait_for 10 "the emulator to listen" port_known
PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/fakeplane.out")
URL=http://127.0.0.1:$PORT

write_config() { # workspace list
	cat >"$tmp/multicad.conf" <<EOF
[daemon]
server_url = $URL
token_file = $tmp/token
daemon_id = demo-host
device_name = demo-host
workspaces = $*
state_dir = $tmp/state
control_socket = $tmp/control.sock
; short intervals, so that the demo is quick
heartbeat_interval = 1s
profile_sync_interval = 1s
worker_ping_interval = 500ms
worker_liveness_timeout = 3s
restart_backoff_min = 2s
restart_backoff_max = 10s
stop_timeout = 5s
; tasks: claim every 500ms (there is no push yet), a 1s grace on a stop
task_poll_interval = 500ms
task_stop_grace = 1s

[providers]
claude = claude
codex = codex
EOF
}
write_config $WS_A $WS_B

# ---- helpers over the two views ----
ctl() {
	"$MULTICACTL" -s "$tmp/control.sock" "$@"
}
status_json() {
	ctl status --json 2>/dev/null || echo '{}'
}
ws_field() { # workspace jq-expression
	status_json | jq -r --arg ws "$1" ".workspaces[]? | select(.id == \$ws) | $2"
}
ws_pid() {
	ws_field "$1" '.pid // 0'
}
ws_ready() { # workspace expected-runtimes
	[ "$(ws_field "$1" 'select(.state == "running") | .runtime_ids | length')" = "$2" ]
}
server_state() {
	curl -sf "$URL/_admin/state"
}
# The emulator's rows for a workspace (or all): status, name, provider.
server_view() {
	server_state | jq -r --arg ws "${1:-}" '
		.workspaces as $w
		| .runtimes
		| map(select($ws == "" or .workspace_id == $ws))
		| sort_by(.workspace_id, .name)[]
		| .workspace_id as $id
		| (($w[] | select(.id == $id) | .name) // $id) as $wsname
		| "    \((.status + "        ")[0:8]) \(($wsname + "          ")[0:10]) \(.name)"'
}
server_count() { # workspace status
	server_state | jq --arg ws "$1" --arg st "$2" \
		'[.runtimes[] | select(($ws == "" or .workspace_id == $ws) and .status == $st)] | length'
}
all_offline() { # workspace
	[ "$(server_count "$1" online)" = 0 ] && [ "$(server_count "$1" offline)" -gt 0 ]
}

# ---- go ----
printf '%smulticad demo%s: one supervisor, one worker per workspace, against\n' "$B" "$R"
printf 'multica-fakeplane on %s. Everything runs in %s.\n' "$URL" "$tmp"
say "workspaces on the emulator: $WS_A frontend"
say "                            $WS_B backend"
say "                            $WS_C research"
say "agent CLIs on PATH (fakes): claude, codex, ccms, review-bot"

step "1. Start multicad for frontend and backend"
say "Built-in runtimes (claude, codex) are probed once and registered in"
say "every workspace; frontend also has a custom profile, CCMS (command ccms)."
if command -v setpriv >/dev/null 2>&1; then
	PDEATH="setpriv --pdeathsig TERM"
else
	PDEATH=""
fi
PATH="$tmp/bin:$PATH" $PDEATH "$MULTICAD" -c "$tmp/multicad.conf" \
	</dev/null >"$tmp/multicad.log" 2>&1 &
MC_PID=$!
control_up() {
	ctl status >/dev/null 2>&1
}
wait_for 15 "the control socket" control_up
wait_for 15 "frontend's 3 runtimes" ws_ready $WS_A 3
wait_for 15 "backend's 2 runtimes" ws_ready $WS_B 2
show ctl status
say "The server's view (GET /_admin/state on the emulator):"
server_view

step "2. A new custom profile on the server, picked up without a restart"
B_PID=$(ws_pid $WS_B)
say "POST /_admin/profiles: \"Review bot\" (command review-bot) in backend."
curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
	-d "$(profile_json $PROF_REVIEW $WS_B "Review bot" review-bot)" "$URL/_admin/profiles"
t0=$(now_ms)
wait_for 10 "backend to register the new profile" ws_ready $WS_B 3
say "backend re-registered $(($(now_ms) - t0)) ms later (profile_sync_interval = 1s);"
say "its worker is the same process: pid $B_PID before, $(ws_pid $WS_B) now."
server_view $WS_B

step "3. A worker is killed with SIGKILL"
A_PID=$(ws_pid $WS_A)
say "kill -KILL $A_PID (frontend's worker). The supervisor reaps it and"
say "deregisters the runtimes it had reported, at once: the server does not"
say "wait for its 150 s stale sweep."
t0=$(now_ms)
kill -KILL "$A_PID"
wait_for 5 "frontend's runtimes to go offline" all_offline $WS_A
say "offline on the server $(($(now_ms) - t0)) ms after the kill:"
server_view $WS_A
show ctl status
say "After the backoff (restart_backoff_min = 2s) a new worker registers again:"
wait_for 15 "frontend's worker to come back" ws_ready $WS_A 3
say "frontend: pid $A_PID -> $(ws_pid $WS_A), restarts $(ws_field $WS_A .restarts)"
server_view $WS_A

step "4. A reload adds the research workspace"
A_PID=$(ws_pid $WS_A)
B_PID=$(ws_pid $WS_B)
say "workspaces = frontend backend research in multicad.conf, then:"
write_config $WS_A $WS_B $WS_C
show ctl reload 2>&1
wait_for 15 "research's 2 runtimes" ws_ready $WS_C 2
say "Only the new worker started: frontend pid $A_PID -> $(ws_pid $WS_A), backend pid $B_PID -> $(ws_pid $WS_B)."
show ctl status

step "5. A rejected reload keeps the running configuration"
sed 's/^heartbeat_interval = 1s$/heartbeat_interval = 1 sec/' "$tmp/multicad.conf" >"$tmp/typo.conf"
mv "$tmp/typo.conf" "$tmp/multicad.conf"
say "A typo in multicad.conf (heartbeat_interval = 1 sec):"
show ctl reload 2>&1 || say "(exit status $?: the daemon kept its configuration and says why)"
say "The status header keeps the verdict until the next good reload:"
ctl status | head -2
write_config $WS_A $WS_B $WS_C

# ---- tasks ----
TASK_RUN=e0000000-0000-4000-8000-0000000000e1
TASK_CANCEL=e0000000-0000-4000-8000-0000000000e2
AGENT=f0000000-0000-4000-8000-0000000000f1
ISSUE=f0000000-0000-4000-8000-0000000000f2
# frontend's built-in claude runtime (not the CCMS profile's).
claude_runtime() {
	server_state | jq -r --arg ws "$WS_A" '[.runtimes[] | select(.workspace_id == $ws
		and .provider == "claude" and .profile_id == null and .status == "online")][0].id // empty'
}
queue_task() { # task-id runtime-id FAKE_AGENT_MODE
	curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d "{
		\"id\":\"$1\",\"runtime_id\":\"$2\",\"issue_id\":\"$ISSUE\",
		\"agent\":{\"id\":\"$AGENT\",\"name\":\"Demo agent\",\"instructions\":\"Be brief.\",
		\"custom_env\":{\"FAKE_AGENT_MODE\":\"$3\"}}}" "$URL/_admin/tasks"
}
task_detail() {
	curl -sf "$URL/_admin/tasks/$1"
}
task_status() {
	task_detail "$1" | jq -r '.status // empty'
}
task_is() { # task-id status
	[ "$(task_status "$1")" = "$2" ]
}
# The daemon's calls for the task, in order, without claims and status polls.
task_calls() {
	task_detail "$1" | jq -r '[.calls[]?.op | select(. != "claim" and . != "status")] | join(", ")'
}
task_has_call() { # task-id op
	task_detail "$1" | jq -e --arg op "$2" '[.calls[]?.op] | index($op) != null' >/dev/null
}
agent_running() { # task-id: a process of this host carries its MULTICA_TASK_ID
	# -q: found is found, even when other processes' environ is unreadable
	grep -qsa "MULTICA_TASK_ID=$1" /proc/[0-9]*/environ 2>/dev/null
}

step "6. A task runs on a fake claude agent"
RT=$(claude_runtime)
say "POST /_admin/tasks: a task for frontend's claude runtime $RT."
say "The link claims it (task_poll_interval = 500ms), the supervisor routes it to"
say "frontend's worker, which runs claude (the tests' fake, FAKE_AGENT_MODE=tool)"
say "in $tmp/state/work/$WS_A/<task>/workdir."
t0=$(now_ms)
queue_task $TASK_RUN "$RT" tool
wait_for 15 "the task to complete" task_is $TASK_RUN completed
say "completed $(($(now_ms) - t0)) ms later. GET /_admin/tasks/$TASK_RUN on the emulator:"
task_detail $TASK_RUN | jq -r '
	"    status:   \(.status), session \(.session_id // "-")",
	"    calls:    \([.calls[]?.op | select(. != "claim" and . != "status")] | join(", "))",
	"    messages:", (.messages[]? | "      seq \(.seq) \((.type + "           ")[0:11]) \(
		(.content // .tool // .output // "") | tostring | gsub("\n"; " ") | .[0:56])"),
	"    usage:    \([.usage[]? | (.. | objects | select(has("input_tokens"))
		| "\(.model // "?"): \(.input_tokens) in, \(.output_tokens) out")] | unique | join("; "))",
	"    result:   \(.result | if type == "object" then (.output // tostring) else tostring end)"'
say "(Text is numbered when its 500 ms batch is sent, tools when they arrive, as"
say "multica does: the text before the tool call comes after it.)"

step "7. A second task is cancelled while it runs"
say "This agent hangs (FAKE_AGENT_MODE=hang). Once it runs, POST /_admin/tasks/{id}/cancel:"
queue_task $TASK_CANCEL "$RT" hang
wait_for 15 "the second task to run" task_is $TASK_CANCEL running
wait_for 10 "its agent process" agent_running $TASK_CANCEL
show ctl tasks
curl -sf -o /dev/null -X POST "$URL/_admin/tasks/$TASK_CANCEL/cancel"
t0=$(now_ms)
say "The worker polls the task's status every 5 s; a cancelled task stops the"
say "agent's process group (SIGTERM, task_stop_grace = 1s, SIGKILL) and sends cancel-ack."
wait_for 15 "the cancel-ack" task_has_call $TASK_CANCEL cancel-ack
agent_gone() {
	! agent_running $TASK_CANCEL
}
wait_for 5 "the cancelled agent to be gone" agent_gone
say "cancel-ack $(($(now_ms) - t0)) ms after the cancel; no process of the task is left."
say "status $(task_status $TASK_CANCEL); calls: $(task_calls $TASK_CANCEL)"

step "8. A clean stop: SIGTERM"
say "Every worker deregisters its runtimes and exits; then the supervisor exits 0."
say "online on the server before: $(server_count "" online)"
t0=$(now_ms)
kill -TERM "$MC_PID"
rc=0
wait "$MC_PID" || rc=$?
MC_PID=''
say "multicad exited with status $rc after $(($(now_ms) - t0)) ms;"
say "online on the server now: $(server_count "" online), offline: $(server_count "" offline)."
server_view
if [ "$rc" -ne 0 ] || [ "$(server_count "" online)" -ne 0 ]; then
	echo "demo: multicad did not stop cleanly" >&2
	exit 1
fi

step "Done in $(($(date +%s) - started)) s"
say "The emulator is stopped and $tmp removed on the way out."
