package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// icmpCollector exports the shared ICMP engine's own counts: with a large
// fleet, a loss seen on every UE at once is the prober's (sends refused,
// replies read too late) before it is the network's, and only these tell
// the two apart.
type icmpCollector struct {
	d        *Daemon
	packets  *prometheus.Desc
	delayed  *prometheus.Desc
	maxDelay *prometheus.Desc
	calls    *prometheus.Desc
}

func newICMPCollector(d *Daemon) *icmpCollector {
	return &icmpCollector{
		d: d,
		packets: prometheus.NewDesc("qodwatch_icmp_packets_total",
			"Echo requests of the shared ICMP engine by result: sent (accepted by the kernel), received (matched within the timeout), lost (timed out; includes late), late (answered after the timeout), duplicate, unmatched (replies that are not ours), send_error, host_dropped (replies this host's kernel dropped on a full socket queue: the daemon read too late), unjudged (timed out while replies were being dropped so: neither lost nor recorded).",
			[]string{"result"}, nil),
		delayed: prometheus.NewDesc("qodwatch_icmp_delayed_sends_total",
			"Echo requests sent more than 10 ms after they were due: the engine could not keep up.", nil, nil),
		maxDelay: prometheus.NewDesc("qodwatch_icmp_send_delay_max_seconds",
			"The longest an echo request has waited past its due time since the start.", nil, nil),
		calls: prometheus.NewDesc("qodwatch_icmp_syscalls_total",
			"sendmmsg and recvmmsg calls of the shared ICMP engine, by direction: packets per call shows how well they batch.",
			[]string{"direction"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *icmpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.delayed, c.maxDelay, c.calls} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Without ICMP probes there is
// no engine and nothing to say.
func (c *icmpCollector) Collect(ch chan<- prometheus.Metric) {
	c.d.icmpMu.Lock()
	eng := c.d.icmpEng
	c.d.icmpMu.Unlock()
	if eng == nil {
		return
	}
	n := eng.Counters()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, x := range []struct {
		result string
		v      uint64
	}{{"sent", n.Sent}, {"received", n.Received}, {"lost", n.Lost}, {"late", n.Late},
		{"duplicate", n.Duplicates}, {"unmatched", n.Unmatched}, {"send_error", n.SendErrors},
		{"host_dropped", n.HostDrops}, {"unjudged", n.Unjudged}} {
		counter(c.packets, x.v, x.result)
	}
	counter(c.delayed, n.DelayedSends)
	ch <- prometheus.MustNewConstMetric(c.maxDelay, prometheus.GaugeValue, n.MaxSendDelay.Seconds())
	counter(c.calls, n.SendCalls, "send")
	counter(c.calls, n.RecvCalls, "receive")
}
