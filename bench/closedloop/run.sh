#!/usr/bin/env bash
# Closed-loop testbed (issue 10): a server namespace and one namespace per
# UE over veth, tbf on each link, the real qodwatch binary probing the UEs
# from the server namespace and buying sessions from the QoD simulator the
# driver runs. Delay comes from a low-rate tbf with a long latency and a
# bulk UDP flow (no netem on these machines). Prints one line per episode
# and exits 1 if a goal is missed.
#
#   bash bench/closedloop/run.sh            # full episodes (~2.5 min)
#   bash bench/closedloop/run.sh -reduced   # CI (~80 s)
#   bash bench/closedloop/run.sh -reduced -episodes blips -window default
#                                           # the blips at the daemon's default window (CI, ~60 s)
#   -window 30s (the default here) is 6x the breach for.
#
# Needs root, ip and tc. Namespaces are named q10-*; they are removed on
# exit, and any left by an earlier run are removed first.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "closedloop: needs root (network namespaces, tc)" >&2; exit 1; }
for tool in ip tc; do
  command -v "$tool" >/dev/null || { echo "closedloop: $tool not installed" >&2; exit 1; }
done

SRV=q10-srv
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep '^q10-' || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}
cleanup
tmp=$(mktemp -d /tmp/q10-closedloop.XXXXXX)
# The daemon's log and config stay when a run fails.
trap 'rc=$?; cleanup; if [ $rc = 0 ]; then rm -rf "$tmp"; else echo "closedloop: logs in $tmp" >&2; fi' EXIT

go build -o "$tmp/qodwatch" ./cmd/qodwatch
go build -o "$tmp/closedloop" ./bench/closedloop
K=$("$tmp/closedloop" -count "$@") # UEs: one per episode (see main.go)

ip netns add "$SRV"
ip -n "$SRV" link set lo up
# Each connection starts from TCP's defaults, not from figures the kernel
# kept from one before the rate changed: runs compare alike.
ip netns exec "$SRV" sysctl -qw net.ipv4.tcp_no_metrics_save=1
for i in $(seq 1 $K); do
  ns=q10-ue$i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.tcp_no_metrics_save=1
  ip link add "q10u$i" netns "$ns" type veth peer name "q10s$i" netns "$SRV"
  # 198.18.10.0/24 (benchmarking, routed nowhere): a /30 per UE.
  ip -n "$SRV" addr add "198.18.10.$((4*i+1))/30" dev "q10s$i"
  ip -n "$ns" addr add "198.18.10.$((4*i+2))/30" dev "q10u$i"
  # MTU-sized packets only, as a radio link sends them. A veth hands TCP
  # 64 KiB segmentation-offload packets to tbf; one queued at 100 Mbit/s
  # (burst 64kb) is larger than the whole bucket once the episode changes
  # the burst to 8kb, so tbf can never send it and the link carries
  # nothing until the episode ends. That stuck link, not the probe, was
  # why the rate-drop episode's throughput runs all timed out.
  ip -n "$SRV" link set dev "q10s$i" gso_max_segs 1
  ip -n "$ns" link set dev "q10u$i" gso_max_segs 1
  ip -n "$SRV" link set "q10s$i" up
  ip -n "$ns" link set "q10u$i" up
  # Both directions shaped; the driver lowers the rates for an episode.
  tc -n "$SRV" qdisc add dev "q10s$i" root tbf rate 100mbit burst 64kb latency 200ms
  tc -n "$ns" qdisc add dev "q10u$i" root tbf rate 100mbit burst 64kb latency 300ms
done

ip netns exec "$SRV" "$tmp/closedloop" -bin "$tmp/qodwatch" -dir "$tmp" -ues $K "$@"
