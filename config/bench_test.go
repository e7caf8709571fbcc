package config

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse10kUEs: loading (and reloading) a large fleet's config.
func BenchmarkParse10kUEs(b *testing.B) {
	const n = 10_000
	var sb strings.Builder
	sb.WriteString(`dry_run: true
defaults:
  application_server: {ipv4: 203.0.113.10}
  as_ports: [443, 5010-5020]
  probes:
    - icmp: {interval: 1s}
    - throughput: {url: "http://{{ue.target}}:8080/probe"}
  rule: low-latency
ues:
`)
	for i := range n {
		fmt.Fprintf(&sb, "  - {name: ue-%d, msisdn: \"+1555%07d\", ipv4: 10.%d.%d.%d, labels: {site: s%d}}\n", i, i, i>>16, (i>>8)&255, i&255, i%10)
	}
	sb.WriteString(`rules:
  low-latency:
    breach: {any: ["latency_p95 > 80ms", "throughput < 5Mbps"], for: 20s}
    recover: {all: ["latency_p95 < 50ms", "throughput > 8Mbps"], for: 1m}
    qos: QOS_E
    duration: 10m
`)
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Parse("fleet.yaml", data)
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.UEs) != n {
			b.Fatal(len(cfg.UEs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/UE")
}
