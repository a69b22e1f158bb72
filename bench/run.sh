#!/usr/bin/env bash
# bench/run.sh — guichet's benchmark harness. Performance is measured here,
# never in pass/fail tests.
#
# On one machine it runs the upstream simulator (guichet-sim, zero latency),
# a bare nginx reverse proxy and three guichets in front of it, and measures
# for the simulator directly, nginx, goproxy (below) and each guichet:
#   1. non-streaming throughput/latency with wrk at each CONCURRENCY,
#      CPU time per request of the proxy and of the simulator, peak RSS;
#   2. a constant RATE, open loop (bench/cmd/rateload): p50/p99/p99.9;
#   3. streaming (bench/cmd/streamload): CPU per stream, time-to-first-event;
#   4. IDLE_STREAMS slow streams held open (bench/cmd/idlestreams): RSS.
# The extra proxy, goproxy (bench/cmd/goproxy: httputil.ReverseProxy plus a
# key check), is the floor of any Go gateway: guichet minus goproxy is what
# guichet's own code costs, goproxy minus nginx what Go's net/http costs.
# The three guichets share one configuration (same model, same costs):
#   guichet          embedded, requests carry the master key, which bypasses
#                    identity, rate limits and budgets;
#   guichet-limits   embedded (SQLite in its own data dir, quotas in
#                    process), requests carry a user's key: a role with rpm,
#                    tpm and concurrent limits on the model (too high to
#                    refuse anything) and a budget, so every request is
#                    admitted, counted and charged;
#   guichet-cluster  the same user set-up in cluster mode: PostgreSQL
#                    (a fresh schema, dropped at exit) and Redis (a fresh
#                    key prefix, deleted at exit). Redis's CPU and that of
#                    guichet's PostgreSQL connections are measured apart.
# guichet-limits − guichet is what identity and quotas cost in process;
# guichet-cluster (+ Redis) − guichet what they cost in cluster mode. Before
# measuring, each limited guichet must refuse (429) the second request of a
# throwaway user whose role allows 1 request per minute, and after each run
# its bench user's budget (GET /v1/me/info) must have gone down: the harness
# dies otherwise, so a no-op is never measured. Without a reachable
# PostgreSQL (PG_URL) and Redis (REDIS_URL), guichet-cluster is skipped with
# a warning.
# It writes the Markdown report to $OUT (default bench/results.md) and prints
# it. Usage, from the repository root:
#   bench/run.sh
#   DURATION=3s IDLE_STREAMS=2000 bench/run.sh
#   PHASES="wrk stream" CONCURRENCY="16 64" DURATION=5s OUT=/tmp/r.md bench/run.sh
# Knobs: DURATION (10s per point), CONCURRENCY ("1 16 64 256"), STREAMS (64),
# STREAM_TOKENS (64), RATE (2000), IDLE_STREAMS (10000), TARGETS ("direct
# nginx goproxy guichet guichet-limits guichet-cluster"; direct is needed for
# added latency, guichet for the cost of identity and quotas), IDLE_TARGETS
# ("nginx goproxy guichet"), QUIET_MAX (20: % of one core that other
# processes may use before a measurement), QUIET_WAIT (30 s to wait for
# that), QUIET_BUDGET (180 s: all the waiting and re-measuring a run may
# spend because of other processes, which bounds its length), PHASES ("wrk
# rate stream idle"), OUT (bench/results.md), KEEP_WORK (1: keep the temp
# dir and its logs, e.g. rate-guichet.log, the per-second timeline of the
# constant-rate run), PG_URL (postgres://postgres@127.0.0.1:5432/test?sslmode=disable),
# REDIS_URL (redis://127.0.0.1:6379/0). About 8 minutes with the defaults on
# a quiet machine.
#
# The machine must be otherwise idle: before each point the harness waits
# (up to QUIET_WAIT) for other processes to use less than QUIET_MAX % of a
# core, and records how much CPU others used during the point ("foreign";
# for guichet-cluster, Redis and its PostgreSQL backends are not "others").
#
# Fairness choice: everything shares the same cores (load generator, proxy
# and simulator). nginx runs `worker_processes auto` (one worker per core) and
# guichet runs with Go's default GOMAXPROCS (= cores): neither is pinned.
# Files: bench/post.lua (wrk's request and its JSON summary line) and the
# tools in bench/cmd/ (streamload, rateload, idlestreams, goproxy, benchreport).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-"1 16 64 256"}
STREAMS=${STREAMS:-64}
STREAM_TOKENS=${STREAM_TOKENS:-64}
RATE=${RATE:-2000}
IDLE_STREAMS=${IDLE_STREAMS:-10000}
TARGETS=${TARGETS:-"direct nginx goproxy guichet guichet-limits guichet-cluster"}
IDLE_TARGETS=${IDLE_TARGETS:-"nginx goproxy guichet"}
QUIET_MAX=${QUIET_MAX:-20}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_BUDGET=${QUIET_BUDGET:-180}
QUIET_SPENT=0
PHASES=${PHASES:-"wrk rate stream idle"}
OUT=${OUT:-bench/results.md}
PG_URL=${PG_URL:-"postgres://postgres@127.0.0.1:5432/test?sslmode=disable"}
REDIS_URL=${REDIS_URL:-"redis://127.0.0.1:6379/0"}
RUN_ID=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY="bench-master-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MODEL=bench-chat
# The body of post.lua, for the checks made with curl.
CHAT_BODY='{"model":"'$MODEL'","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}'
# Prices (per million tokens) of the bench model, the same for every guichet,
# and the bench user's budget: large enough never to refuse, small enough
# that /v1/me/info shows it to the nano-unit (a float64 holds 1e15 exactly).
COST_PROMPT=0.1
COST_COMPLETION=0.3
BENCH_BUDGET=1000000

log() { printf '\033[1m[bench %s]\033[0m %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- prerequisites --------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v ss >/dev/null || need+=(iproute2)
command -v pgrep >/dev/null || need+=(procps)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	if [[ $(id -u) -eq 0 ]]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
fi

WORK=$(mktemp -d /tmp/guichet-bench.XXXXXX)
BIN=$WORK/bin
RES=$WORK/results.jsonl
mkdir -p "$BIN" "$WORK/nginx/tmp" "$WORK/data"
: >"$RES"

# --- process bookkeeping: every process we start is stopped on exit ---------
# Services run in their own session (setsid) so that a Ctrl-C reaches only
# this script, which then stops them in order; load generators run in the
# background and are waited for, so that the INT trap fires at once (bash
# would otherwise wait for wrk, which catches SIGINT, and then carry on).
SIM_PID="" NGINX_PID="" GUICHET_PID="" GOPROXY_PID="" LOADGEN_PID="" LIMITS_PID="" CLUSTER_PID=""
stop_pid() { # pid [seconds]
	local pid=$1 secs=${2:-5} i
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
stop_nginx() {
	[[ -n $NGINX_PID ]] || return 0
	local workers
	workers=$(pgrep -P "$NGINX_PID" || true)
	stop_pid "$NGINX_PID"
	for w in $workers; do kill -KILL "$w" 2>/dev/null || true; done
	NGINX_PID=""
}
stop_all() {
	stop_pid "$GUICHET_PID" 10
	GUICHET_PID=""
	stop_pid "$LIMITS_PID" 10
	LIMITS_PID=""
	stop_pid "$CLUSTER_PID" 10
	CLUSTER_PID=""
	stop_pid "$GOPROXY_PID"
	GOPROXY_PID=""
	stop_nginx
	stop_pid "$SIM_PID"
	SIM_PID=""
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$LOADGEN_PID" 2
	stop_all
	drop_cluster_state
	if [[ ${KEEP_WORK:-0} == 1 || $rc -ne 0 ]]; then
		log "logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
# guichet-cluster's state: a PostgreSQL schema and a Redis key prefix of
# this run only, removed at exit (SCHEMA is set once the schema exists).
SCHEMA="" REDIS_PREFIX="bench:$RUN_ID:"
drop_cluster_state() {
	[[ -n $SCHEMA ]] || return 0
	PGCONNECT_TIMEOUT=5 psql -q "$PG_URL" -c "drop schema if exists $SCHEMA cascade" >/dev/null 2>&1 ||
		log "could not drop the PostgreSQL schema $SCHEMA: drop it by hand"
	redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
	SCHEMA=""
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# --- build ------------------------------------------------------------------
log "building guichet, guichet-sim and the bench tools into $BIN"
go build -o "$BIN/" ./cmd/guichet ./cmd/guichet-sim ./bench/cmd/streamload ./bench/cmd/rateload \
	./bench/cmd/idlestreams ./bench/cmd/goproxy ./bench/cmd/benchreport

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
CLK_TCK=$(getconf CLK_TCK)
log "open files limit: $NOFILE"

# --- guichet-cluster's PostgreSQL and Redis ----------------------------------------
wants() { [[ " $TARGETS $IDLE_TARGETS " == *" $1 "* ]]; }
drop_target() { # target reason: take it out of the run, loudly
	log "**********************************************************************"
	log "WARNING: SKIPPING $1: $2"
	log "**********************************************************************"
	TARGETS=$( (tr ' ' '\n' <<<"$TARGETS" | grep -vx "$1" || true) | tr '\n' ' ')
	IDLE_TARGETS=$( (tr ' ' '\n' <<<"$IDLE_TARGETS" | grep -vx "$1" || true) | tr '\n' ' ')
}
# cluster_state: checks PostgreSQL and Redis and creates this run's schema;
# fails, with the reason in WHY, when it cannot.
REDIS_PID="" PG_VERSION="" REDIS_VERSION="" WHY=""
cluster_state() {
	local v
	command -v psql >/dev/null && command -v redis-cli >/dev/null ||
		{ WHY="psql or redis-cli is not installed (apt-get install postgresql-client redis-tools)"; return 1; }
	v=$(PGCONNECT_TIMEOUT=5 psql -Atq "$PG_URL" -c 'show server_version' 2>&1) ||
		{ WHY="PostgreSQL at $PG_URL does not answer: $v"; return 1; }
	[[ $(timeout 5 redis-cli -u "$REDIS_URL" ping 2>&1) == PONG ]] ||
		{ WHY="Redis at $REDIS_URL does not answer PING"; return 1; }
	PG_VERSION=${v%% *}
	v=$(PGCONNECT_TIMEOUT=5 psql -q "$PG_URL" -c "create schema bench_$RUN_ID" 2>&1) ||
		{ WHY="could not create the schema bench_$RUN_ID: $v"; return 1; }
	SCHEMA=bench_$RUN_ID
}
if wants guichet-cluster; then
	if cluster_state; then
		REDIS_VERSION=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | sed -n 's/^redis_version://p')
		# Redis's CPU is measured when it runs on this machine, in this pid namespace.
		REDIS_PID=$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | sed -n 's/^process_id://p')
		if [[ -z $REDIS_PID || $(cat "/proc/$REDIS_PID/comm" 2>/dev/null) != redis-server* ]]; then
			log "Redis (process_id ${REDIS_PID:-?}) is not a local redis-server process: its CPU will not be measured"
			REDIS_PID=""
		fi
		log "guichet-cluster: PostgreSQL $PG_VERSION schema $SCHEMA, Redis $REDIS_VERSION prefix $REDIS_PREFIX (redis-server pid ${REDIS_PID:-not local})"
	else
		PG_VERSION=""
		drop_target guichet-cluster "$WHY"
	fi
fi
# The DSN of guichet-cluster: its own schema, and an application_name by
# which its connections' backends are found for their CPU.
cluster_dsn() {
	local sep='?'
	[[ $PG_URL == *\?* ]] && sep='&'
	echo "$PG_URL${sep}search_path=$SCHEMA&application_name=guichet-$SCHEMA"
}

# --- helpers ----------------------------------------------------------------
# run_bg cmd...: run a load generator and wait for it (see LOADGEN_PID above).
run_bg() {
	"$@" &
	LOADGEN_PID=$!
	local rc=0
	wait "$LOADGEN_PID" || rc=$?
	LOADGEN_PID=""
	return "$rc"
}
alive() { # fail if a service died
	local p
	for p in "$SIM_PID" "$NGINX_PID" "$GUICHET_PID" "$GOPROXY_PID" "$LIMITS_PID" "$CLUSTER_PID"; do
		[[ -z $p ]] || kill -0 "$p" 2>/dev/null || die "process $p died: see the logs in $WORK"
	done
}
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Htln "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
}
wait_http() { # url [curl args...]: wait until it answers 200
	local url=$1 i
	shift
	for ((i = 0; i < 200; i++)); do
		curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
		sleep 0.05
	done
	die "$url did not answer 200"
}
wait_log() { # file sed-expression: wait for the expression to print something
	local file=$1 expr=$2 i v
	for ((i = 0; i < 200; i++)); do
		v=$(sed -n "$expr" "$file" 2>/dev/null | head -1)
		[[ -n $v ]] && { echo "$v"; return 0; }
		sleep 0.05
	done
	cat "$file" >&2
	die "timed out waiting for $file"
}
# cpu_ticks pid...: utime+stime (fields 14 and 15 of /proc/PID/stat) summed.
cpu_ticks() {
	local p t=0 f a
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] || die "process $p is gone: see the logs in $WORK"
		f=$(<"/proc/$p/stat")
		f=${f##*) } # drop "pid (comm) ": field 3 becomes field 1
		read -r -a a <<<"$f"
		t=$((t + a[11] + a[12]))
	done
	echo "$t"
}
# ticks_of pid: like cpu_ticks, but 0 for a process that is gone (Redis,
# PostgreSQL backends: not ours to watch over).
ticks_of() {
	local f a
	f=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	f=${f##*) }
	read -r -a a <<<"$f"
	echo $((a[11] + a[12]))
}
# pg_pids: the PostgreSQL backends serving guichet-cluster's connections
# (when PostgreSQL runs on this machine).
pg_pids() {
	[[ -n $SCHEMA ]] || return 0
	local p
	for p in $(PGCONNECT_TIMEOUT=5 psql -Atq "$PG_URL" -c "select pid from pg_stat_activity where application_name = 'guichet-$SCHEMA'" 2>/dev/null); do
		[[ $(cat "/proc/$p/comm" 2>/dev/null) == postgres* ]] && echo "$p"
	done
	return 0
}
# redis_used_kb: Redis's used_memory now (-1 without guichet-cluster).
redis_used_kb() {
	local b
	[[ -n $SCHEMA ]] && b=$(timeout 5 redis-cli -u "$REDIS_URL" info memory 2>/dev/null | tr -d '\r' | sed -n 's/^used_memory://p')
	echo $((${b:--1024} / 1024))
}
# status_kb field pid...: VmRSS or VmHWM, summed over the pids.
status_kb() {
	local field=$1 p t=0 v
	shift
	for p in "$@"; do
		v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status")
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
reset_hwm() { local p; for p in "$@"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done; }
nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID"); }
proxy_pids() { # target -> pids of the process(es) whose CPU is the proxy's
	case $1 in
	direct) echo "$SIM_PID" ;;
	nginx) nginx_pids ;;
	guichet) echo "$GUICHET_PID" ;;
	goproxy) echo "$GOPROXY_PID" ;;
	guichet-limits) echo "$LIMITS_PID" ;;
	guichet-cluster) echo "$CLUSTER_PID" ;;
	esac
}
url_of() {
	case $1 in
	direct) echo "http://$SIM_ADDR/v1/chat/completions" ;;
	nginx) echo "http://$NGINX_ADDR/v1/chat/completions" ;;
	guichet) echo "http://$GUICHET_ADDR/v1/chat/completions" ;;
	goproxy) echo "http://$GOPROXY_ADDR/v1/chat/completions" ;;
	guichet-limits) echo "http://$LIMITS_ADDR/v1/chat/completions" ;;
	guichet-cluster) echo "http://$CLUSTER_ADDR/v1/chat/completions" ;;
	esac
}
addr_of() { local u; u=$(url_of "$1"); u=${u#http://}; echo "${u%%/*}"; }
# limited target: requests carry a user's key, with limits and a budget.
limited() { [[ $1 == guichet-limits || $1 == guichet-cluster ]]; }
declare -A USER_KEY=() RPM1_ROLE=()
key_of() { # target -> the bearer key its requests carry
	if limited "$1"; then
		[[ -n ${USER_KEY[$1]:-} ]] || die "no user key for $1"
		echo "${USER_KEY[$1]}"
	else
		echo "$KEY"
	fi
}
# busy_ticks: CPU used by the whole machine (user nice system irq softirq steal).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# task_ticks: the part of it charged to processes (user nice system) plus
# steal; irq and softirq (where loopback TCP is processed) go to no process.
task_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat; }
irq_ticks() { awk '/^cpu / { print $7 + $8 }' /proc/stat; }
# children_ticks: sets CHILD_TICKS to the CPU of the shell's finished
# children (the load generators). `times` must run in this shell, not in $().
children_ticks() {
	times >"$WORK/times"
	CHILD_TICKS=$(awk -v hz="$CLK_TCK" 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
		printf "%d\n", t * hz + 0.5 }' "$WORK/times")
}
# wait_quiet: wait until other processes use less than QUIET_MAX % of a core;
# sets BG_PCT to what they used in the last second.
wait_quiet() {
	local waited=0 b0
	while :; do
		b0=$(busy_ticks)
		sleep 1
		BG_PCT=$((($(busy_ticks) - b0) * 100 / CLK_TCK))
		((BG_PCT <= QUIET_MAX)) && return 0
		if ((waited >= QUIET_WAIT || QUIET_SPENT >= QUIET_BUDGET)); then
			log "other processes still use $BG_PCT% of a core: measuring anyway (see the foreign column)"
			return 0
		fi
		((waited == 0)) && log "other processes use $BG_PCT% of a core: waiting up to ${QUIET_WAIT}s for quiet"
		waited=$((waited + 1))
		QUIET_SPENT=$((QUIET_SPENT + 1))
	done
}

# start_stack sim-flags...: a fresh simulator, nginx, goproxy and guichet in
# front of it, plus guichet-limits and guichet-cluster when STACK_TARGETS
# has them.
STACK_TARGETS=$TARGETS
in_stack() { [[ " $STACK_TARGETS " == *" $1 "* ]]; }
STACK=0
start_stack() {
	stop_all
	STACK=$((STACK + 1)) # each stack logs to its own files: sim-1.log, guichet-1.log, …
	setsid "$BIN/guichet-sim" --listen 127.0.0.1:0 --model "$MODEL" "$@" 2>"$WORK/sim-$STACK.log" &
	SIM_PID=$!
	SIM_ADDR=$(wait_log "$WORK/sim-$STACK.log" 's#.*listening on http://\([^ ]*\).*#\1#p')
	wait_http "http://$SIM_ADDR/health"

	NGINX_ADDR=127.0.0.1:$(free_port)
	cat >"$WORK/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process on;
		worker_processes auto;
		worker_rlimit_nofile $NOFILE;
		pid $WORK/nginx/nginx.pid;
		error_log $WORK/nginx/error.log warn;
		events { worker_connections $((NOFILE - 100)); }
		http {
		    access_log off;
		    client_body_temp_path $WORK/nginx/tmp/body;
		    proxy_temp_path $WORK/nginx/tmp/proxy;
		    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
		    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
		    scgi_temp_path $WORK/nginx/tmp/scgi;
		    keepalive_requests 1000000;
		    keepalive_timeout 120s;
		    upstream sim {
		        server $SIM_ADDR;
		        keepalive 256;
		        keepalive_requests 1000000;
		    }
		    server {
		        listen $NGINX_ADDR backlog=4096;
		        location / {
		            proxy_pass http://sim;
		            proxy_http_version 1.1;
		            proxy_set_header Connection "";
		            proxy_buffering off;
		            proxy_read_timeout 300s;
		        }
		    }
		}
	EOF
	setsid nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" 2>>"$WORK/nginx/error.log" &
	NGINX_PID=$!
	wait_http "http://$NGINX_ADDR/health"

	guichet_config guichet "$WORK/data"
	start_guichet guichet
	GUICHET_PID=$STARTED_PID GUICHET_ADDR=$STARTED_ADDR
	local up="guichet $GUICHET_ADDR (pid $GUICHET_PID)"
	if in_stack guichet-limits; then
		guichet_config guichet-limits "$WORK/data-limits"
		start_guichet guichet-limits
		LIMITS_PID=$STARTED_PID LIMITS_ADDR=$STARTED_ADDR
		limits_on guichet-limits
		up+=", guichet-limits $LIMITS_ADDR (pid $LIMITS_PID)"
	fi
	if in_stack guichet-cluster; then
		guichet_config guichet-cluster "$WORK/data-cluster" "$(printf 'storage:\n  postgres: "%s"\n  redis: "%s"\n  redis_prefix: "%s"' "$(cluster_dsn)" "$REDIS_URL" "$REDIS_PREFIX")"
		start_guichet guichet-cluster
		CLUSTER_PID=$STARTED_PID CLUSTER_ADDR=$STARTED_ADDR
		limits_on guichet-cluster
		up+=", guichet-cluster $CLUSTER_ADDR (pid $CLUSTER_PID)"
	fi

	setsid "$BIN/goproxy" -listen 127.0.0.1:0 -upstream "http://$SIM_ADDR" -key "$KEY" 2>"$WORK/goproxy-$STACK.log" &
	GOPROXY_PID=$!
	GOPROXY_ADDR=$(wait_log "$WORK/goproxy-$STACK.log" 's#.*listening on http://\([^ ]*\).*#\1#p')
	log "stack up: sim $SIM_ADDR (pid $SIM_PID, $*), nginx $NGINX_ADDR (pid $NGINX_PID), goproxy $GOPROXY_ADDR (pid $GOPROXY_PID), $up"
}

# guichet_config name data-dir [storage-yaml]: every guichet target has the
# same model, provider and costs; only its storage differs.
guichet_config() {
	{
		printf 'server:\n  data_dir: %s\n' "$2"
		[[ -z ${3:-} ]] || printf '%s\n' "$3"
		cat <<-EOF
			models:
			  - name: $MODEL
			    type: text-generation
			    costs: {prompt_tokens: $COST_PROMPT, completion_tokens: $COST_COMPLETION}
			    providers:
			      - type: vllm
			        url: http://$SIM_ADDR
			        model_name: $MODEL
		EOF
	} >"$WORK/$1.yml"
}

# start_guichet name: starts guichet with $WORK/NAME.yml and the master key;
# sets STARTED_PID and STARTED_ADDR.
start_guichet() {
	local name=$1 code
	GUICHET_MASTER_KEY=$KEY setsid "$BIN/guichet" serve --config "$WORK/$name.yml" --listen 127.0.0.1:0 2>"$WORK/$name-$STACK.log" &
	STARTED_PID=$!
	STARTED_ADDR=$(wait_log "$WORK/$name-$STACK.log" 's#.*listen=http://\([^ ]*\).*#\1#p')
	wait_http "http://$STARTED_ADDR/ready"
	# Auth must be on: a request without a key is refused.
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$STARTED_ADDR/v1/chat/completions" -d '{}')
	[[ $code == 401 ]] || die "$name answered $code without a key: auth is not on"
}

# admin_api addr method path [json]: guichet's admin API with the master key;
# prints the answer's body, dies unless it is a 2xx.
admin_api() {
	local addr=$1 method=$2 path=$3 body=${4:-} out code
	out=$(curl -sS -w '\n%{http_code}' -X "$method" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		${body:+--data-raw "$body"} "http://$addr$path") || die "$method $path on $addr failed"
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	[[ $code == 2?? ]] || die "$method $path on $addr answered $code: $out"
	printf '%s\n' "$out"
}
json_id() { grep -o '"id":[0-9]*' | head -1 | cut -d: -f2; }
json_token() { grep -o '"token":"[^"]*"' | head -1 | cut -d'"' -f4; }

# limits_on target: on the target's first start, creates the bench role
# (rpm, tpm and concurrent limits on the model, too high to refuse
# anything), its user (with a budget) and the user's key, plus a role that
# allows 1 request per minute. On every start, proves that limits are
# enforced: a new throwaway user of that role gets 200, then 429.
limits_on() {
	local t=$1 addr uid tok c1 c2 hdr
	addr=$(addr_of "$t")
	if [[ -z ${USER_KEY[$t]:-} ]]; then
		local rid big=1000000000
		rid=$(admin_api "$addr" POST /v1/admin/roles '{"name":"bench","limits":[{"model":"'$MODEL'","type":"rpm","value":'$big'},{"model":"'$MODEL'","type":"tpm","value":'$big'},{"model":"'$MODEL'","type":"concurrent","value":100000}]}' | json_id)
		uid=$(admin_api "$addr" POST /v1/admin/users '{"email":"bench@example.org","role":'$rid',"budget":'$BENCH_BUDGET'}' | json_id)
		USER_KEY[$t]=$(admin_api "$addr" POST /v1/admin/tokens '{"name":"bench","user":'$uid'}' | json_token)
		RPM1_ROLE[$t]=$(admin_api "$addr" POST /v1/admin/roles '{"name":"bench-rpm1","limits":[{"model":"'$MODEL'","type":"rpm","value":1}]}' | json_id)
		[[ -n ${USER_KEY[$t]} && -n ${RPM1_ROLE[$t]} ]] || die "$t: could not create the bench user and its key"
	fi
	uid=$(admin_api "$addr" POST /v1/admin/users '{"email":"rpm1-'$STACK'@example.org","role":'${RPM1_ROLE[$t]}'}' | json_id)
	tok=$(admin_api "$addr" POST /v1/admin/tokens '{"name":"rpm1","user":'$uid'}' | json_token)
	c1=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' --data-raw "$CHAT_BODY" "$(url_of "$t")")
	c2=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' --data-raw "$CHAT_BODY" "$(url_of "$t")")
	[[ $c1 == 200 && $c2 == 429 ]] ||
		die "$t: a user whose role allows 1 request per minute got $c1 then $c2 (want 200 then 429): limits are not on, and measuring them would measure a no-op"
	# The bench user's requests go through admission: rate-limit headers.
	hdr=$(curl -s -D - -o /dev/null -H "Authorization: Bearer ${USER_KEY[$t]}" -H 'Content-Type: application/json' --data-raw "$CHAT_BODY" "$(url_of "$t")")
	[[ $hdr == "HTTP/1.1 200"* ]] && grep -qi '^x-ratelimit-limit-requests: 1000000000' <<<"$hdr" ||
		die "$t: the bench user's request did not come back 200 with its rate-limit headers: $hdr"
	[[ -n $(budget_of "$t") ]] || die "$t: /v1/me/info shows no budget for the bench user"
	log "$t: limits on (1 rpm: 200 then 429; bench user budget $(budget_of "$t"))"
}
# budget_of target: the bench user's remaining budget, from /v1/me/info.
budget_of() {
	curl -s -H "Authorization: Bearer ${USER_KEY[$1]}" "http://$(addr_of "$1")/v1/me/info" |
		grep -o '"budget":[-0-9.eE+]*' | cut -d: -f2
}

# measure kind target extra-json command...: runs the command with CPU and
# peak-RSS accounting around it and appends one JSON line to $RES. The
# command must print its own JSON result as the last line of stdout.
# Redis's CPU (when local) and that of guichet-cluster's PostgreSQL backends
# are recorded for every target (for the others, it is their idle baseline);
# for a limited target, the bench user's budget before and after the run,
# which must have gone down.
measure() {
	local kind=$1 target=$2 extra=$3
	shift 3
	local pp sp0 sp1 pp0 pp1 m0 m1 i0 i1 c0 t0 t1 out json attempt ours wall foreign
	local r0 r1 rt pgt p b0=null b1=null
	local -A pg0=()
	for attempt in 1 2 3; do
		alive
		pp=$(proxy_pids "$target")
		! limited "$target" || b0=$(budget_of "$target")
		pg0=()
		for p in $(pg_pids); do pg0[$p]=0; done
		wait_quiet
		reset_hwm $pp
		children_ticks
		c0=$CHILD_TICKS
		m0=$(task_ticks)
		i0=$(irq_ticks)
		t0=$(date +%s%N)
		pp0=$(cpu_ticks $pp)
		sp0=$(cpu_ticks "$SIM_PID")
		r0=$([[ -z $REDIS_PID ]] || ticks_of "$REDIS_PID")
		for p in "${!pg0[@]}"; do pg0[$p]=$(ticks_of "$p"); done
		run_bg "$@" >"$WORK/out" 2>>"$WORK/$kind-$target.log" ||
			die "$kind $target failed: $(tail -3 "$WORK/out" "$WORK/$kind-$target.log")"
		out=$(<"$WORK/out")
		pp1=$(cpu_ticks $pp)
		sp1=$(cpu_ticks "$SIM_PID")
		r1=$([[ -z $REDIS_PID ]] || ticks_of "$REDIS_PID")
		pgt=0
		for p in "${!pg0[@]}"; do
			# a backend that ended during the run takes its ticks with it
			if [[ -r /proc/$p/stat ]]; then pgt=$((pgt + $(ticks_of "$p") - pg0[$p])); fi
		done
		t1=$(date +%s%N)
		m1=$(task_ticks)
		i1=$(irq_ticks)
		children_ticks
		# backends opened during the run: all their CPU is the run's
		for p in $(pg_pids); do
			if [[ -z ${pg0[$p]:-} ]]; then pgt=$((pgt + $(ticks_of "$p"))); fi
		done
		[[ -n $SCHEMA ]] || pgt=-1
		rt=$([[ -n $REDIS_PID ]] && echo $((r1 - r0)) || echo -1)
		# CPU that other processes took during the run, in % of one core: a
		# point disturbed by more than 2 × QUIET_MAX is measured again (3 tries
		# at most, within QUIET_BUDGET). Redis and PostgreSQL work for
		# guichet-cluster: not "other processes" in its runs.
		ours=$((sp1 - sp0 + CHILD_TICKS - c0))
		[[ $target == direct ]] || ours=$((ours + pp1 - pp0))
		[[ $target != guichet-cluster ]] || ours=$((ours + (rt > 0 ? rt : 0) + (pgt > 0 ? pgt : 0)))
		wall=$(((t1 - t0) / 1000000))
		foreign=$(((m1 - m0 - ours) * 100000 / CLK_TCK / (wall > 0 ? wall : 1)))
		((foreign > 2 * QUIET_MAX && attempt < 3 && QUIET_SPENT < QUIET_BUDGET)) || break
		QUIET_SPENT=$((QUIET_SPENT + wall / 1000))
		log "$kind $target ${extra%,}: other processes took $foreign% of a core during the run: measuring again"
	done
	if limited "$target"; then
		# Settling follows the response closely: give the last ones a moment.
		sleep 0.2
		b1=$(budget_of "$target")
		[[ -n $b0 && -n $b1 ]] || die "$kind $target: /v1/me/info shows no budget"
		awk -v a="$b0" -v b="$b1" 'BEGIN { exit !(b < a) }' ||
			die "$kind $target: the bench user's budget did not go down during the run ($b0 → $b1): budgets are not on"
	fi
	json=$(tail -1 <<<"$out")
	json=${json#WRK_JSON }
	printf '{"kind":"%s","target":"%s",%s"attempt":%d,"proxy_ticks":%d,"sim_ticks":%d,"loadgen_ticks":%d,"machine_ticks":%d,"irq_ticks":%d,"redis_ticks":%d,"pg_ticks":%d,"redis_used_kb":%d,"wall_ms":%d,"bg_pct_before":%d,"proxy_hwm_kb":%d,"proxy_rss_kb":%d,"budget_before":%s,"budget_after":%s,"result":%s}\n' \
		"$kind" "$target" "$extra" "$attempt" $((pp1 - pp0)) $((sp1 - sp0)) $((CHILD_TICKS - c0)) $((m1 - m0)) $((i1 - i0)) "$rt" "$pgt" "$(redis_used_kb)" "$wall" "$BG_PCT" \
		"$(status_kb VmHWM $pp)" "$(status_kb VmRSS $pp)" "$b0" "$b1" "$json" >>"$RES"
	log "$kind $target ${extra%,}: $json"
}

wrk_run() { # target concurrency [duration]; runs under run_bg, hence exec
	local c=$2 key
	key=$(key_of "$1")
	BENCH_KEY=$key exec wrk -t$((c < 2 ? c : 2)) -c"$c" -d"${3:-$DURATION}" --latency -s "$ROOT/bench/post.lua" "$(url_of "$1")"
}

# --- machine ------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
printf '{"kind":"meta","nproc":%d,"cpu":"%s","go":"%s","nginx":"%s","wrk":"%s","kernel":"%s","date":"%s","duration":"%s","clk_tck":%d,"nofile":%d,"streams":%d,"stream_tokens":%d,"rate":%s,"quiet_max":%d,"commit":"%s","targets":"%s","postgres":"%s","redis":"%s","redis_local":%s,"cost_prompt":%s,"cost_completion":%s,"budget":%s,"redis_used_kb_start":%d}\n' \
	"$(nproc)" "$CPU_MODEL" "$(go env GOVERSION)" "$(nginx -v 2>&1 | sed 's#.*/##')" \
	"$(wrk -v 2>&1 | awk 'NR==1 { print $2 }')" "$(uname -r)" "$(date -u +%Y-%m-%dT%H:%MZ)" \
	"$DURATION" "$CLK_TCK" "$NOFILE" "$STREAMS" "$STREAM_TOKENS" "$RATE" "$QUIET_MAX" \
	"$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git status --porcelain 2>/dev/null | grep -q . && echo +dirty)" \
	"$(echo $TARGETS)" "$PG_VERSION" "$REDIS_VERSION" "$([[ -n $REDIS_PID ]] && echo true || echo false)" \
	"$COST_PROMPT" "$COST_COMPLETION" "$BENCH_BUDGET" "$(redis_used_kb)" >>"$RES"

# --- 1. non-streaming, closed loop (wrk) ---------------------------------------
phase() { [[ " $PHASES " == *" $1 "* ]]; }
if phase wrk || phase rate; then
	start_stack --ttft 0 --itl 0 --output-tokens 16
	for t in $TARGETS; do
		run_bg wrk_run "$t" 64 2s >/dev/null # warm up connections, caches and the Go heap
	done
fi
if phase wrk; then
	log "phase 1/4: non-streaming, wrk, concurrency $CONCURRENCY, $DURATION per point, targets: $TARGETS"
	for c in $CONCURRENCY; do
		for t in $TARGETS; do
			measure wrk "$t" "\"c\":$c," wrk_run "$t" "$c"
		done
	done
fi

# --- 2. constant rate, open loop (same simulator) --------------------------------
# -timeline writes each second's latency to $WORK/rate-TARGET.log.
if phase rate; then
	log "phase 2/4: constant rate $RATE req/s, open loop, $DURATION"
	for t in $TARGETS; do
		measure rate "$t" "" "$BIN/rateload" -url "$(url_of "$t")" -key "$(key_of "$t")" -model "$MODEL" -rate "$RATE" -d "$DURATION" -timeline
	done
fi

# --- 3. streaming -----------------------------------------------------------------
if phase stream; then
	log "phase 3/4: streaming, $STREAMS concurrent streams of $STREAM_TOKENS tokens, $DURATION"
	start_stack --ttft 0 --itl 0 --output-tokens "$STREAM_TOKENS"
	for t in $TARGETS; do
		run_bg "$BIN/streamload" -url "$(url_of "$t")" -key "$(key_of "$t")" -model "$MODEL" -c "$STREAMS" -d 2s >/dev/null
	done
	for t in $TARGETS; do
		measure stream "$t" "" "$BIN/streamload" -url "$(url_of "$t")" -key "$(key_of "$t")" -model "$MODEL" -c "$STREAMS" -d "$DURATION"
	done
fi

# --- 4. idle streams ----------------------------------------------------------------
# A proxy holds two sockets per stream (client and upstream): cap the count
# so that fits in the open-files limit, and say so in the report.
idle=$IDLE_STREAMS
max_idle=$(((NOFILE - 200) / 2))
if phase idle && ((idle > max_idle)); then
	log "IDLE_STREAMS=$IDLE_STREAMS needs $((2 * IDLE_STREAMS + 200)) open files in the proxy, the hard limit is $NOFILE: using $max_idle"
	idle=$max_idle
fi
phase idle || IDLE_TARGETS=""
[[ -z $IDLE_TARGETS ]] || log "phase 4/4: $idle idle streams (sim --ttft 1s --itl 30s), targets: $IDLE_TARGETS"
for t in $IDLE_TARGETS; do
	STACK_TARGETS=$t
	start_stack --ttft 1s --itl 30s --output-tokens 4
	wait_quiet
	pp=$(proxy_pids "$t")
	base_rss=$(status_kb VmRSS $pp)
	base_fds=0
	for p in $pp; do base_fds=$((base_fds + $(ls "/proc/$p/fd" | wc -l))); done
	pids_flag="sim=$SIM_PID"
	i=0
	for p in $pp; do pids_flag+=",proxy$i=$p"; i=$((i + 1)); done
	alive
	run_bg "$BIN/idlestreams" -url "$(url_of "$t")" -key "$(key_of "$t")" -model "$MODEL" -n "$idle" -pids "$pids_flag" \
		>"$WORK/out" 2>>"$WORK/idle-$t.log" || die "idlestreams $t failed: $(tail -3 "$WORK/out" "$WORK/idle-$t.log")"
	out=$(<"$WORK/out")
	sleep 2
	sim_after=$(curl -s "http://$SIM_ADDR/sim/stats")
	printf '{"kind":"idle","target":"%s","requested":%d,"asked":%d,"base_rss_kb":%d,"base_fds":%d,"sim_stats_after":%s,"result":%s}\n' \
		"$t" "$idle" "$IDLE_STREAMS" "$base_rss" "$base_fds" "${sim_after:-null}" "$out" >>"$RES"
	log "idle $t: $out sim after close: $sim_after"
done
stop_all

# --- report -------------------------------------------------------------------------
"$BIN/benchreport" -in "$RES" >"$WORK/results.md"
cp "$WORK/results.md" "$OUT"
cp "$RES" "${OUT%.md}.jsonl"
cat "$OUT"
log "report written to $OUT (raw measurements: ${OUT%.md}.jsonl)"
