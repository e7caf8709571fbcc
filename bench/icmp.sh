#!/usr/bin/env bash
# ICMP engine benchmark (issue 3): the engine against 1,000, 10,000 and
# 30,000 distinct loopback addresses at one echo request per second per UE,
# then Debian's fping on the first size, and a table of what each cost.
#
#   bench/icmp.sh                        # 60 s per run, about 4 minutes
#   ICMPBENCH_DURATION=10s bench/icmp.sh # a quick run
#   ICMPBENCH_SIZES=1000 bench/icmp.sh   # other sizes
#   ICMPBENCH_RECORDER=monitor bench/icmp.sh  # results into a monitor.Monitor
#   ICMPBENCH_REGISTRY=1 bench/icmp.sh   # also /metrics through client_golang's registry
#
# Needs root (raw ICMP sockets, installing fping) or ping sockets allowed by
# net.ipv4.ping_group_range. Only 127.0.0.0/8 is pinged. Other load on the
# machine shows in the figures: run it on an otherwise idle host.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${ICMPBENCH_DURATION:-60s}"
[[ "$duration" =~ ^[0-9]+$ ]] && duration="${duration}s" # plain seconds
sizes="${ICMPBENCH_SIZES:-1000,10000,30000}"
recorder="${ICMPBENCH_RECORDER:-count}"
registry="${ICMPBENCH_REGISTRY:-0}"
[[ "$registry" == 1 || "$registry" == true ]] && registry=true || registry=false

if ! command -v fping >/dev/null 2>&1; then
	echo "installing fping ..." >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fping >&2
fi

bin="$(mktemp -d)/icmpbench"
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/icmpbench

echo "ICMP engine benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), $(go version | cut -d' ' -f3), $(fping -v 2>&1 | head -1)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" -sizes "$sizes" -duration "$duration" -recorder "$recorder" -registry="$registry" -fping "$(command -v fping)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
