#!/bin/sh
# `make bench`: sv_bench at N = 10, 100, 1000 workspaces (2 runtimes each)
# over HTTP and HTTPS, then task_bench (the task figures), agentapi_bench
# and ws_bench (the websocket push's figures), CSVs into
# docs/perf/, PNG plots (gnuplot), and docs/PERFORMANCE.md from
# tests/bench/PERFORMANCE.md.in. Not part of `make test`; about 5 minutes
# of runs on the 2-CPU VM (plus the build).
#   tests/bench/run.sh BUILD_DIR
# BENCH_REPORT_ONLY=1: no runs (the report again from docs/perf/).
# BENCH_TASKS_ONLY=1: only task_bench runs; the sv_bench CSVs already in
# docs/perf/ stay and the report is written from both.
# BENCH_AGENTAPI_ONLY=1: only agentapi_bench (the local API's figures) runs;
# the other CSVs stay. AGENTAPI_TMP: where its repository and checkouts go
# (default /tmp; see tests/bench/README.md on ext4 after mass deletions).
# BENCH_WS_ONLY=1: only ws_bench (the websocket push's figures) runs; the
# other CSVs stay.
set -eu
BUILD=${1:-build-bench}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$SRC/docs/perf
LOG=${BENCH_LOG:-$SRC/$BUILD/bench-logs}
BENCH=$SRC/$BUILD/sv_bench
mkdir -p "$OUT" "$LOG"
# BENCH_REPORT_ONLY=1: no runs, the plots and docs/PERFORMANCE.md again from
# the CSVs already in docs/perf/.
[ -n "${BENCH_REPORT_ONLY:-}${BENCH_TASKS_ONLY:-}${BENCH_AGENTAPI_ONLY:-}${BENCH_WS_ONLY:-}" ] || rm -f "$OUT"/*.csv "$OUT"/*.png
TASKS=$SRC/$BUILD/task_bench
# `make bench` builds sv_bench; task_bench (and the fake claude it runs) here.
[ -n "${BENCH_REPORT_ONLY:-}" ] || cmake --build "$SRC/$BUILD" --target task_bench agentapi_bench ws_bench >/dev/null
AAPI=$SRC/$BUILD/agentapi_bench
WSB=$SRC/$BUILD/ws_bench
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# HTTPS "with a system-size trust store": no ca_file, the daemon's shared
# system store pointed at the system bundle + the test CA by the test hook
# (MC_TEST_SYSTEM_CA_FILE, test-hook builds); without the hook, ca_file =
# that bundle.
if grep -q MC_TEST_SYSTEM_CA_FILE "$SRC/$BUILD/multicad"; then
	HTTPS_ARGS="--skip-https --skip-bundle --system-store"; HTTPS=https
	STORE="no \`ca_file\`; the daemon's system store (loaded once, common/api_tls.c) pointed by the test hook \`MC_TEST_SYSTEM_CA_FILE\` at /etc/ssl/certs/ca-certificates.crt + the test CA"
else
	HTTPS_ARGS="--skip-https"; HTTPS=https-bundle
	STORE="\`ca_file\` = /etc/ssl/certs/ca-certificates.crt + the test CA (the hook MC_TEST_SYSTEM_CA_FILE is not in this build)"
fi
CERTS=$(( $(grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt) + 1 ))

run() { # name args...
	name=$1; shift
	echo "bench: sv_bench $* (log: $LOG/$name.*)"
	if ! "$BENCH" --csv "$OUT" --default-intervals "$@" >"$LOG/$name.out" 2>"$LOG/$name.err"; then
		echo "bench: $name did not finish cleanly (see $LOG/$name.out)" >&2
		FAILED="$FAILED $name"
	fi
	grep '^SUMMARY' "$LOG/$name.out" || true
}
FAILED=""
if [ -z "${BENCH_REPORT_ONLY:-}${BENCH_TASKS_ONLY:-}${BENCH_AGENTAPI_ONLY:-}${BENCH_WS_ONLY:-}" ]; then
	for n in 10 100; do
		run "n$n" -n "$n" -i 15 --skip-kill $HTTPS_ARGS
	done
	run n1000_http -n 1000 -i 35 -K 1000 -k 100 --skip-https --skip-bundle
	run n1000_https -n 1000 -i 35 --skip-kill --skip-http $HTTPS_ARGS
fi
T1=$(date +%s)
if [ -z "${BENCH_REPORT_ONLY:-}${BENCH_TASKS_ONLY:-}${BENCH_AGENTAPI_ONLY:-}${BENCH_WS_ONLY:-}" ]; then
	printf 'T0=%s\nT1=%s\nLOAD0="%s"\nLOAD1="%s"\nFAILED="%s"\nSVBUILD="%s"\nSVMEM="%s"\n' \
		"$T0" "$T1" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$FAILED" "$BUILD" \
		"$(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }')" > "$OUT/run.env"
fi
# The task figures: task_bench appends rows of proto "tasks" to figures.csv
# (a tasks-only run first drops the old ones).
if [ -z "${BENCH_REPORT_ONLY:-}${BENCH_AGENTAPI_ONLY:-}${BENCH_WS_ONLY:-}" ]; then
	if [ -f "$OUT/figures.csv" ]; then
		awk -F, '$2 != "tasks"' "$OUT/figures.csv" > "$OUT/figures.csv.tmp"
		mv "$OUT/figures.csv.tmp" "$OUT/figures.csv"
	fi
	TT0=$(date +%s); TLOAD0=$(cut -d' ' -f1-3 /proc/loadavg); TFAILED=""
	echo "bench: task_bench (log: $LOG/tasks.*)"
	if ! "$TASKS" --csv "$OUT" >"$LOG/tasks.out" 2>"$LOG/tasks.err"; then
		echo "bench: task_bench did not finish cleanly (see $LOG/tasks.out)" >&2
		TFAILED=" tasks"
	fi
	grep '^SUMMARY' "$LOG/tasks.out" || true
	printf 'TT0=%s\nTT1=%s\nTLOAD0="%s"\nTLOAD1="%s"\nTFAILED="%s"\nTBUILD="%s"\n' "$TT0" \
		"$(date +%s)" "$TLOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$TFAILED" "$BUILD" \
		> "$OUT/tasks.env"
fi
. "$OUT/run.env"
. "$OUT/tasks.env"
FAILED="$FAILED$TFAILED"
# The local API's figures: agentapi_bench appends rows of proto "agentapi"
# (a run drops the old ones first).
if [ -z "${BENCH_REPORT_ONLY:-}${BENCH_TASKS_ONLY:-}${BENCH_WS_ONLY:-}" ]; then
	if [ -f "$OUT/figures.csv" ]; then
		awk -F, '$2 != "agentapi"' "$OUT/figures.csv" > "$OUT/figures.csv.tmp"
		mv "$OUT/figures.csv.tmp" "$OUT/figures.csv"
	fi
	AT0=$(date +%s); ALOAD0=$(cut -d' ' -f1-3 /proc/loadavg); AFAILED=""
	echo "bench: agentapi_bench (log: $LOG/agentapi.*)"
	if ! "$AAPI" --csv "$OUT" --tmp "${AGENTAPI_TMP:-/tmp}" >"$LOG/agentapi.out" 2>"$LOG/agentapi.err"; then
		echo "bench: agentapi_bench did not finish cleanly (see $LOG/agentapi.out)" >&2
		AFAILED=" agentapi"
	fi
	grep '^SUMMARY' "$LOG/agentapi.out" || true
	printf 'AT0=%s\nAT1=%s\nALOAD0="%s"\nALOAD1="%s"\nAFAILED="%s"\nABUILD="%s"\nATMP="%s"\nAFS="%s"\n' \
		"$AT0" "$(date +%s)" "$ALOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$AFAILED" "$BUILD" \
		"${AGENTAPI_TMP:-/tmp}" "$(df -T "${AGENTAPI_TMP:-/tmp}" | awk 'NR==2 { print $2 }')" > "$OUT/agentapi.env"
fi
AT0=0; AT1=0; ALOAD0=n/a; ALOAD1=n/a; AFAILED=""; ABUILD=n/a; ATMP=n/a; AFS=n/a
[ ! -f "$OUT/agentapi.env" ] || . "$OUT/agentapi.env"
FAILED="$FAILED$AFAILED"

# The websocket push's figures: ws_bench appends rows of proto "ws" (a run
# drops the old ones first).
if [ -z "${BENCH_REPORT_ONLY:-}${BENCH_TASKS_ONLY:-}${BENCH_AGENTAPI_ONLY:-}" ]; then
	if [ -f "$OUT/figures.csv" ]; then
		awk -F, '$2 != "ws"' "$OUT/figures.csv" > "$OUT/figures.csv.tmp"
		mv "$OUT/figures.csv.tmp" "$OUT/figures.csv"
	fi
	WT0=$(date +%s); WLOAD0=$(cut -d' ' -f1-3 /proc/loadavg); WFAILED=""
	echo "bench: ws_bench (log: $LOG/ws.*)"
	if ! "$WSB" --csv "$OUT" >"$LOG/ws.out" 2>"$LOG/ws.err"; then
		echo "bench: ws_bench did not finish cleanly (see $LOG/ws.out)" >&2
		WFAILED=" ws"
	fi
	grep '^SUMMARY' "$LOG/ws.out" || true
	printf 'WT0=%s\nWT1=%s\nWLOAD0="%s"\nWLOAD1="%s"\nWFAILED="%s"\nWBUILD="%s"\n' \
		"$WT0" "$(date +%s)" "$WLOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$WFAILED" "$BUILD" \
		> "$OUT/ws.env"
fi
WT0=0; WT1=0; WLOAD0=n/a; WLOAD1=n/a; WFAILED=""; WBUILD=n/a
[ ! -f "$OUT/ws.env" ] || . "$OUT/ws.env"
FAILED="$FAILED$WFAILED"

# ---- figures ----
F=$OUT/figures.csv
fig() { # n proto figure -> value (or "n/a")
	awk -F, -v n="$1" -v p="$2" -v f="$3" '$1==n && $2==p && $3==f { v=$4 } END { print (v=="" ? "n/a" : v) }' "$F"
}
r0() { awk -v v="$1" 'BEGIN { if (v=="n/a") print v; else printf "%.0f", v }'; }
r1() { awk -v v="$1" 'BEGIN { if (v=="n/a") print v; else printf "%.1f", v }'; }
r2() { awk -v v="$1" 'BEGIN { if (v=="n/a") print v; else printf "%.2f", v }'; }
r4() { awk -v v="$1" 'BEGIN { if (v=="n/a") print v; else printf "%.4f", v }'; }
met() { awk "BEGIN { print (($1) ? \"**met**\" : \"**missed**\") }"; }
tfig() { # figure -> value of the task run (or "n/a")
	awk -F, -v f="$1" '$2=="tasks" && $3==f { v=$4 } END { print (v=="" ? "n/a" : v) }' "$F"
}

# start-up vs N
{
	echo "n,proto,start_all_registered_ms,start_first_reg_ms,peak_requests_1s"
	for p in http $HTTPS; do for n in 10 100 1000; do
		echo "$n,$p,$(fig $n $p start_all_registered),$(fig $n $p start_first_reg),$(fig $n $p startup_peak_requests_1s)"
	done; done
} > "$OUT/startup.csv"
# memory vs N
{
	echo "n,proto,pss_mean_kib,pss_p99_kib,supervisor_pss_kib,supervisor_rss_kib,forkserver_pss_kib,workers_total_mib,conns_per_worker_max"
	for p in http $HTTPS; do for n in 10 100 1000; do
		echo "$n,$p,$(fig $n $p pss_mean),$(fig $n $p pss_p99),$(fig $n $p supervisor_pss),$(fig $n $p supervisor_rss),$(fig $n $p forkserver_pss),$(fig $n $p workers_total_pss),$(fig $n $p conns_per_worker_max)"
	done; done
} > "$OUT/memory.csv"

# ---- plots ---- (of the sv_bench CSVs: not redrawn by a tasks-only run)
cd "$OUT"
[ -z "${BENCH_TASKS_ONLY:-}${BENCH_AGENTAPI_ONLY:-}${BENCH_WS_ONLY:-}" ] || { cd "$SRC"; SKIP_PLOTS=1; }
if [ -z "${SKIP_PLOTS:-}" ]; then
[ -f "pss_by_start_order_N1000_$HTTPS.csv" ] || : > "pss_by_start_order_N1000_$HTTPS.csv"
gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 800,450 font ",10"
set key bottom right
set grid
set output "pss_by_start_order_N1000.png"
set title "PSS per idle worker by start order, N = 1000, 2 runtimes each"
set xlabel "start order (workspace i is started i-th)"
set ylabel "PSS (KiB)"
set yrange [0:*]
plot "pss_by_start_order_N1000_http.csv" every ::1 using 1:2 with points pt 7 ps 0.3 title "HTTP", \
     "pss_by_start_order_N1000_$HTTPS.csv" every ::1 using 1:2 with points pt 7 ps 0.3 title "HTTPS, system-size store"
set output "startup_vs_n.png"
set title "start -> every workspace registered (journal)"
set logscale x
set xlabel "workspaces (N)"
set ylabel "ms"
plot "< grep ',http,' startup.csv" using 1:3 with linespoints title "HTTP", \
     "< grep ',$HTTPS,' startup.csv" using 1:3 with linespoints title "HTTPS"
unset logscale x
set output "startup_rate_N1000.png"
set title "requests handled by the server per 100 ms during start-up, N = 1000"
set xlabel "ms since multicad was started"
set ylabel "requests / s (100 ms buckets)"
plot "startup_rate_N1000_http.csv" every ::1 using 1:3 with steps title "HTTP", \
     "startup_rate_N1000_$HTTPS.csv" every ::1 using 1:3 with steps title "HTTPS"
set output "kill_dereg_N1000.png"
set title "SIGKILL of a worker -> DEREG at the server, N = 1000 (100 kills)"
set xlabel "ms"
set ylabel "fraction of kills"
set yrange [0:1]
set key bottom right
plot "< tail -n +2 kill_dereg_N1000.csv | cut -d, -f2 | sort -g | awk '{ n[NR]=\$1 } END { for (i=1;i<=NR;i++) print n[i] \",\" i/NR }'" using 1:2 with steps title "kill -> DEREG (CDF)"
GP
cd "$SRC"
fi

# ---- docs/PERFORMANCE.md ----
H=http; S=$HTTPS
PSS_H=$(fig 1000 $H pss_mean); P99_H=$(fig 1000 $H pss_p99); PSS_S=$(fig 1000 $S pss_mean)
CONN_MAX=$(awk -F, 'NR>1 && $3=="conns_per_worker_max" && $4>m { m=$4 } END { print m+0 }' "$F")
CONN_MIN=$(awk -F, 'NR>1 && $3=="conns_per_worker_mean" { if (m=="" || $4<m) m=$4 } END { print m+0 }' "$F")
ST=$(fig 1000 $H start_all_registered); PEAK=$(fig 1000 $H startup_peak_requests_1s)
CPU=$(fig 1000 $H idle_cpu_tree); KM=$(fig 1000 http kill_dereg_median); KP=$(fig 1000 http kill_dereg_p99)
RL=$(fig 1000 $H reload_to_reg); RR=$(fig 1000 $H reload_workers_restarted)
SPACING=$(sed -n 's/^#define SPAWN_SPACING_MS *\([0-9]*\).*/\1/p' supervisor/wk.c)
D=$(printf '\001')   # the sed delimiter: the tables' values hold '|'
sub() { printf 's%s@%s@%s%s%sg\n' "$D" "$1" "$D" "$(printf '%s' "$2" | sed 's/[&\\]/\\&/g')" "$D"; }
{
	sub DATE "$(date -u -d "@$T0" '+%Y-%m-%d %H:%M UTC')"
	# A run.env from before these were kept: the Makefile's build dir, the memory now.
	sub NPROC "$(nproc)"; sub MEM "${SVMEM:-$(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }')}"
	sub KERNEL "$(uname -sr)"; sub LOAD0 "$LOAD0"; sub LOAD1 "$LOAD1"
	sub SECS "$((T1 - T0))"; sub BUILD "${SVBUILD:-build-bench}"; sub TBUILD "$TBUILD"; sub STORE "$STORE"; sub CERTS "$CERTS"; sub HTTPS "$HTTPS"
	sub FAILED "${FAILED:- none}"; sub SPACING "$SPACING"; sub RATE "$((1000 / SPACING))"
	sub STEADY "$(r0 $(fig 1000 $H idle_server_rps))"
	sub BURSTX "$(awk -v a="$PEAK" -v b="$(fig 1000 $H idle_server_rps)" 'BEGIN { printf "%.0f", a / b }')"
	sub PERWS "$(awk -F, '$1==100 && $2=="http" && $3=="startup_peak_requests_1s" { printf "%.0f", $4 / 100 }' "$F")"
	sub PSS_H "$(r0 $PSS_H)"; sub P99_H "$(r0 $P99_H)"; sub PSS_S "$(r0 $PSS_S)"
	sub P99_S "$(r0 $(fig 1000 $S pss_p99))"
	sub PSS_OK "$(met "$PSS_H <= 350 && $P99_H <= 1.5 * $PSS_H")"; sub PSSS_OK "$(met "$PSS_S <= 800")"
	sub CONN "$CONN_MIN - $CONN_MAX"; sub CONN_OK "$(met "$CONN_MAX == 1 && $CONN_MIN == 1")"
	sub ST "$(r0 $ST)"; sub PEAK "$(r0 $PEAK)"; sub ST_OK "$(met "$ST <= 3000")"
	sub ST_S "$(r0 $(fig 1000 $S start_all_registered))"; sub PEAK_S "$(r0 $(fig 1000 $S startup_peak_requests_1s))"
	sub CPU "$(r2 $CPU)"; sub CPU_OK "$(met "$CPU <= 2")"; sub CPU_EMU "$(r2 $(fig 1000 $H idle_cpu_emulator))"
	sub CPU_S "$(r2 $(fig 1000 $S idle_cpu_tree))"; sub WIN "$(r1 $(fig 1000 $H idle_window))"
	sub PROCS "$(r0 $(fig 1000 $H idle_tree_procs))"
	sub KM "$(r1 $KM)"; sub KP "$(r1 $KP)"; sub KMAX "$(r1 $(fig 1000 http kill_dereg_max))"
	sub KN "$(r0 $(fig 1000 http kill_n))"; sub KMISS "$(r0 $(fig 1000 http kill_missing))"
	sub KEX "$(r1 $(fig 1000 http kill_exit_seen_median))"; sub KHE "$(r1 $(fig 1000 http kill_exit_to_dereg_median))"
	sub K_OK "$(met "$KM < 20 && $KP < 100")"
	sub RL "$(r0 $RL)"; sub RR "$(r0 $RR)"; sub RL_OK "$(met "$RL < 50 && $RR == 1")"
	sub RLO "$(r0 $(fig 1000 $H reload_other_regs))"
	for p in $H $S; do P=HTTPS; [ "$p" = http ] && P=HTTP
		sub "TERM_$P" "$(r0 $(fig 1000 $p sigterm_exit))"; sub "LEFT_$P" "$(r0 $(fig 1000 $p sigterm_rows_left_online))"
		sub "RPS_$P" "$(r4 $(fig 1000 $p idle_req_per_ws_s))"; sub "BEATS_$P" "$(r4 $(fig 1000 $p idle_beats_per_ws_s))"
		sub "POLLS_$P" "$(r4 $(fig 1000 $p idle_polls_per_ws_s))"; sub "OTHER_$P" "$(r0 $(fig 1000 $p idle_other_requests))"
		sub "SRPS_$P" "$(r1 $(fig 1000 $p idle_server_rps))"
		sub "SVPSS_$P" "$(r0 $(fig 1000 $p supervisor_pss))"; sub "SVRSS_$P" "$(r0 $(fig 1000 $p supervisor_rss))"
		sub "FSPSS_$P" "$(r0 $(fig 1000 $p forkserver_pss))"; sub "TOT_$P" "$(r0 $(fig 1000 $p workers_total_pss))"
	done
	sub EXP "$(r4 $(fig 1000 $H idle_expected_per_ws_s))"
	# ---- tasks (task_bench) ----
	sub TDATE "$(date -u -d "@$TT0" '+%Y-%m-%d %H:%M UTC')"; sub TSECS "$((TT1 - TT0))"
	sub TLOAD0 "$TLOAD0"; sub TLOAD1 "$TLOAD1"
	C2E=$(tfig claim_to_exec_median); R2C=$(tfig result_to_complete_median)
	TP=$(tfig throughput_tasks_s); TPBAD=$(tfig throughput_bad)
	FLC=$(tfig flood_cpu_pct); FLB=$(tfig flood_batch_median); FLM=$(tfig flood_lines_missing)
	MEMP=$(tfig mem_per_task_pss); MEMD=$(tfig mem_per_task_private_dirty)
	IDC=$(tfig idle_claims_per_poll)
	sub C2E "$(r1 $C2E)"; sub C2E95 "$(r1 $(tfig claim_to_exec_p95))"
	sub C2E_OK "$(met "$C2E < 20")"
	sub R2C "$(r1 $R2C)"; sub R2C95 "$(r1 $(tfig result_to_complete_p95))"
	sub R2C_OK "$(met "$R2C < 10")"
	sub TP "$(r0 $TP)"; sub TPBAD "$(r0 $TPBAD)"; sub TPWS "$(r0 $(tfig throughput_ws))"
	sub TP_OK "$(met "$TP >= 50 && $TPBAD == 0")"
	sub FLC "$(r1 $FLC)"; sub FLCA "$(r1 $(tfig flood_cpu_all_pct))"
	sub FLB "$(r0 $FLB)"; sub FLB95 "$(r0 $(tfig flood_batch_p95))"
	sub FLM "$(r0 $FLM)"; sub FLL "$(r0 $(tfig flood_lines))"
	sub FL_OK "$(met "$FLC < 10 && $FLM == 0 && $FLB >= 450 && $FLB <= 600")"
	sub MEMP "$(r1 $MEMP)"; sub MEMD "$(r1 $MEMD)"; sub MEMR "$(r1 $(tfig mem_per_task_rss))"
	sub MEMI "$(r0 $(tfig mem_worker_idle_pss))"; sub MEMA "$(r0 $(tfig mem_worker_after_pss))"
	sub MEM_OK "$(met "$MEMP < 64 && $MEMD < 64")"
	sub IDC "$(r2 $IDC)"; sub IDN "$(r0 $(tfig idle_claims))"; sub IDW "$(r1 $(tfig idle_window_s))"
	sub IDIDS "$(r0 $(tfig idle_claim_runtime_ids))"
	sub ID_OK "$(met "$IDC > 0.8 && $IDC <= 1.05")"
	# ---- the agents' local API (agentapi_bench) ----
	afig() { awk -F, -v f="$1" '$2=="agentapi" && $3==f { v=$4 } END { print (v=="" ? "n/a" : v) }' "$F"; }
	sub ADATE "$(date -u -d "@$AT0" '+%Y-%m-%d %H:%M UTC')"; sub ASECS "$((AT1 - AT0))"
	sub ALOAD0 "$ALOAD0"; sub ALOAD1 "$ALOAD1"; sub ATMP "$ATMP"; sub AFS "$AFS"
	HP99=$(afig health_busy_p99); HMAX=$(afig health_busy_max)
	sub AH50 "$(r2 $(afig health_busy_p50))"; sub AH99 "$(r2 $HP99)"; sub AHMAX "$(r2 $HMAX)"
	sub AHN "$(r0 $(afig health_busy_n))"; sub AHBAD "$(r0 $(afig health_busy_bad))"
	sub AHIDLE "$(r2 $(afig health_idle_p50))"; sub AHOK "$(r0 $(afig health_checkouts_ok))"
	sub AHWALL "$(r1 $(afig health_checkouts_wall))"
	sub AH_OK "$(met "$HMAX < 5")"
	WM=$(afig warm_checkout_median)
	sub AW50 "$(r0 $WM)"; sub AWMIN "$(r0 $(afig warm_checkout_min))"; sub AWMAX "$(r0 $(afig warm_checkout_max))"
	sub AWN "$(r0 $(afig warm_checkout_n))"; sub AWGIT "$(r0 $(afig warm_git_worktree_add_median))"
	sub AWD "$(r0 $(afig warm_daemon_share))"; sub AW_OK "$(met "$WM < 200")"
	for b in cold stale; do B=$(echo $b | tr a-z A-Z)
		sub "AB${B}OK" "$(r0 $(afig burst_${b}_ok))"; sub "AB${B}WALL" "$(r1 $(afig burst_${b}_wall))"
		sub "AB${B}SLOW" "$(r1 $(afig burst_${b}_slowest))"; sub "AB${B}BUSY" "$(r0 $(afig burst_${b}_busy))"
		sub "AB${B}CL" "$(r0 $(afig burst_${b}_clones))"; sub "AB${B}F" "$(r0 $(afig burst_${b}_fetches))"
		sub "AB${B}UP" "$(r0 $(afig burst_${b}_uploads))"
	done
	sub AB_OK "$(met "$(afig burst_cold_ok) == 20 && $(afig burst_stale_ok) == 20 && $(afig burst_cold_clones) == 1 && $(afig burst_cold_fetches) <= 1 && $(afig burst_stale_fetches) == 1")"
	# ---- the websocket push (ws_bench) ----
	wfig() { awk -F, -v f="$1" '$2=="ws" && $3==f { v=$4 } END { print (v=="" ? "n/a" : v) }' "$F"; }
	wn() { awk -F, -v f="$1" '$2=="ws" && $3==f { v=$1 } END { print (v=="" ? "n/a" : v) }' "$F"; }
	wok() { case "$*" in *n/a*) echo "n/a" ;; *) met "$*" ;; esac; } # no ws run yet: no verdict
	sub WDATE "$(date -u -d "@$WT0" '+%Y-%m-%d %H:%M UTC')"; sub WSECS "$((WT1 - WT0))"
	sub WLOAD0 "$WLOAD0"; sub WLOAD1 "$WLOAD1"; sub WBUILD "$WBUILD"
	PDM=$(wfig push_drift_median); PDP=$(wfig push_drift_p99); PDN=$(wfig push_drift_n)
	sub WPDM "$(r0 $PDM)"; sub WPDP "$(r0 $PDP)"; sub WPDX "$(r0 $(wfig push_drift_max))"; sub WPDN "$(r0 $PDN)"
	sub WPD_OK "$(wok "$PDN >= 200 && $PDM < 50 && $PDP < 200")"
	DDX=$(wfig down_drift_max)
	sub WDDM "$(r0 $(wfig down_drift_median))"; sub WDDX "$(r0 $DDX)"; sub WDDN "$(wn down_drift_max)"
	sub WDDR "$(r0 $(wfig down_refused))"; sub WDD_OK "$(wok "$DDX <= 2000")"
	PTM=$(wfig push_task_median)
	sub WPTM "$(r1 $PTM)"; sub WPTP "$(r1 $(wfig push_task_p95))"; sub WPTN "$(wn push_task_median)"
	sub WPT_OK "$(wok "$PTM < 100")"
	RU=$(wfig reconnect_upgrades); RC=$(wfig reconnect_connections); RP=$(wfig reconnect_peak_1s)
	sub WRN "$(wn reconnect_upgrades)"; sub WRU "$(r0 $RU)"; sub WRC "$(r0 $RC)"; sub WRP "$(r0 $RP)"
	sub WRT "$(r0 $(wfig reconnect_runtimes))"; sub WRF "$(r0 $(wfig reconnect_fetches))"
	sub WRS "$(r0 $(wfig reconnect_spread))"; sub WRD "$(r0 $(wfig reconnect_drop_to_upgrade))"
	sub WRR "$(r0 $(wfig reconnect_regs))"
	sub WR_OK "$(wok "$RU == 1 && $RC == 1 && $RP < 600")"
	sub STARTUP_TABLE "$(awk -F, 'NR>1 { printf "| %s | %s | %.0f | %.0f | %.0f |<br>", $1, $2, $3, $4, $5 }' "$OUT/startup.csv")"
	sub MEMORY_TABLE "$(awk -F, 'NR>1 { printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %s |<br>", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$OUT/memory.csv")"
} > "$LOG/subst.sed"
sed -f "$LOG/subst.sed" tests/bench/PERFORMANCE.md.in | sed 's/|<br>/|\n/g' > docs/PERFORMANCE.md
echo "bench: wrote docs/PERFORMANCE.md and docs/perf/ (runs: $((T1 - T0)) s);${FAILED:+ runs not clean:$FAILED}"
[ -z "$FAILED" ]
