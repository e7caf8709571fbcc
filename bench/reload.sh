#!/usr/bin/env bash
# Reload of a discovered fleet while it is probed (issue 13): the real
# binary watches N loopback UEs from a file_sd file (one echo each per
# 10 s), then is reloaded through POST /-/reload a few times. It prints how
# long each reload took and what the ICMP engine counted meanwhile: echoes
# lost, sends later than 10 ms and the worst send delay. Probes must go on
# undisturbed: no loss, no send held for long.
#
#   bench/reload.sh                 # 100,000 UEs, 3 reloads
#   RELOADBENCH_UES=250000 RELOADBENCH_RELOADS=5 bench/reload.sh
#
# Needs root (raw ICMP) or ping sockets allowed by ping_group_range. Only
# 127.0.0.0/8 is pinged; the simulator and the daemon listen on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

ues="${RELOADBENCH_UES:-100000}"
reloads="${RELOADBENCH_RELOADS:-3}"
dir="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

go build -o "$dir/qodwatch" ./cmd/qodwatch
free_port() { shuf -i 20000-60000 -n 1; }
api_port="$(free_port)"
web_port="$(free_port)"

# The fleet: 127.1.0.1 on, as bench/fleet addresses its UEs.
{
	printf '[{"labels": {"fleet": "reload"}, "targets": ['
	for ((i = 0; i < ues; i++)); do
		n=$((65536 + 1 + i))
		((i > 0)) && printf ','
		printf '"127.%d.%d.%d"' $((n >> 16)) $(((n >> 8) & 255)) $((n & 255))
	done
	printf ']}]\n'
} >"$dir/fleet.json"

cat >"$dir/qodwatch.yaml" <<EOF
api:
  base_url: http://127.0.0.1:$api_port/qod/v1
  auth: {type: none}
web:
  listen: 127.0.0.1:$web_port
state_dir: $dir/state
defaults:
  application_server: {ipv4: 203.0.113.10}
ue_sd:
  - name: fleet
    file_sd: {files: [$dir/fleet.json], refresh_interval: 10m}
    template: {ipv4: "{{target}}", rule: never, probes: [{icmp: {interval: 10s, timeout: 2s, packets: 1}}]}
rules:
  never:
    breach: {any: ["latency_max > 5s"], for: 30s}
    recover: {all: ["latency_max < 1s"], for: 30s}
    qos: QOS_E
    duration: 10m
EOF

"$dir/qodwatch" simulate --listen "127.0.0.1:$api_port" >"$dir/sim.log" 2>&1 &
pids+=($!)
"$dir/qodwatch" run --config.file "$dir/qodwatch.yaml" --web.enable-lifecycle >"$dir/run.log" 2>&1 &
pids+=($!)

metrics() { curl -s "http://127.0.0.1:$web_port/metrics"; }
value() { # value NAME_AND_LABELS
	metrics | awk -v m="$1" 'index($0, m " ") == 1 { print $2 }'
}
echo "reload benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs: $ues UEs from file_sd, one echo each per 10 s"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 0; i < 300; i++)); do
	grep -q '"ready: \|msg="ready' "$dir/run.log" && break
	sleep 1
done
grep -q 'msg="ready' "$dir/run.log" || { echo "the daemon did not get ready:" >&2; tail -5 "$dir/run.log" >&2; exit 1; }
sleep 12 # a full probe round after ready, so the counts below start from a steady engine

printf '%-8s %10s %10s %8s %10s %14s\n' reload seconds echoes lost "late sends" "max delay s"
for ((k = 1; k <= reloads; k++)); do
	sent0=$(value 'qodwatch_icmp_packets_total{result="sent"}')
	lost0=$(value 'qodwatch_icmp_packets_total{result="lost"}')
	late0=$(value 'qodwatch_icmp_delayed_sends_total')
	t0=$(date +%s.%N)
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$web_port/-/reload")
	t1=$(date +%s.%N)
	[[ "$code" == 200 ]] || { echo "reload answered $code" >&2; exit 1; }
	sleep 12 # every UE probed again after the reload
	sent=$(value 'qodwatch_icmp_packets_total{result="sent"}')
	lost=$(value 'qodwatch_icmp_packets_total{result="lost"}')
	late=$(value 'qodwatch_icmp_delayed_sends_total')
	maxd=$(value 'qodwatch_icmp_send_delay_max_seconds')
	awk -v k="$k" -v t0="$t0" -v t1="$t1" -v s0="$sent0" -v s="$sent" -v l0="$lost0" -v l="$lost" -v d0="$late0" -v d="$late" -v m="$maxd" \
		'BEGIN { printf "%-8d %10.2f %10d %8d %10d %14.3f\n", k, t1 - t0, s - s0, l - l0, d - d0, m }'
done
echo "(max delay: the worst since the start, first probe round included)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
