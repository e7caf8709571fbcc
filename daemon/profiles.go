package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

// profileCaps are the longest sessions the operator's QoS profiles grant,
// by profile name (CAMARA v1; empty otherwise).
type profileCaps map[string]time.Duration

// checkProfiles reads, with GET /qos-profiles/{name}, the profile of every
// rule and escalation of cfg (CAMARA v1 only). A profile the operator does
// not know, or not ACTIVE, is an error: the start or reload is refused
// rather than every create failing with 422. A rule asking for longer
// sessions than the profile's maxDuration has them capped; a threshold
// tighter than what the profile promises (packetDelayBudget,
// targetMinDownstreamRate) is warned about: with the session held, the
// breach may never end or the recovery never come, and the session is
// renewed for ever.
func checkProfiles(ctx context.Context, cfg *config.Config, api SessionAPI, log *slog.Logger) (profileCaps, error) {
	v1, ok := api.(camaraAPI)
	if cfg.API.Dialect != "camara-v1" || cfg.DryRun || !ok {
		return nil, nil
	}
	rules := map[string][]*policy.Rule{} // profile -> rules using it
	var names []string
	use := func(qos string, r *policy.Rule) {
		if _, seen := rules[qos]; !seen {
			names = append(names, qos)
		}
		if !slices.Contains(rules[qos], r) {
			rules[qos] = append(rules[qos], r)
		}
	}
	for i := range cfg.UEs {
		r := cfg.UEs[i].Rule
		if r == nil {
			continue
		}
		use(r.QoS, r)
		if r.Escalate != nil {
			use(r.Escalate.To, r)
		}
	}
	slices.Sort(names)
	caps := profileCaps{}
	var problems []string
	for _, name := range names {
		txid := qodclient.NewTransactionID()
		cctx, cancel := context.WithTimeout(qodclient.WithTransactionID(ctx, txid), 4*max(cfg.API.Timeout, time.Second))
		p, err := v1.QoSProfile(cctx, name)
		cancel()
		switch {
		case errors.Is(err, qodclient.ErrNotFound):
			problems = append(problems, fmt.Sprintf("QoS profile %s is not offered by the operator (GET /qos-profiles/%s: 404)", name, name))
			continue
		case err != nil:
			// Unreachable now is not wrong: creates will tell.
			log.Warn("QoS profile could not be checked", "qos", name, "transaction_id", txid, "err", err)
			continue
		case p.Status != qodclient.ProfileActive:
			problems = append(problems, fmt.Sprintf("QoS profile %s is %s at the operator: no new session can use it", name, p.Status))
			continue
		}
		if p.MaxDuration > 0 {
			caps[name] = p.MaxDuration
		}
		for _, r := range rules[name] {
			if p.MaxDuration > 0 && r.QoS == name && r.Duration > p.MaxDuration {
				log.Warn("rule asks for longer sessions than its QoS profile grants; capped", "rule", r.Name, "qos", name,
					"duration", r.Duration, "max_duration", p.MaxDuration)
			}
			for _, w := range tighterThanPromised(r, p) {
				log.Warn("rule threshold is tighter than its QoS profile promises", "rule", r.Name, "qos", name, "check", w)
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("qos profiles: %s", strings.Join(problems, "; "))
	}
	return caps, nil
}

// tighterThanPromised lists the conditions of r that a session of profile
// p may not satisfy even when the network delivers what p promises.
func tighterThanPromised(r *policy.Rule, p *qodclient.Profile) []string {
	var out []string
	downstream := float64(p.TargetMinDownstreamRate) / 8 // bytes per second
	check := func(side string, cs policy.CondSetInfo) {
		for _, c := range cs.Conditions {
			latency := strings.HasPrefix(c.Metric, "latency_")
			throughput := strings.HasPrefix(c.Metric, "throughput")
			switch {
			case latency && p.PacketDelayBudget > 0 && c.Threshold < p.PacketDelayBudget.Seconds():
				// The profile keeps latency under its budget, not under
				// this threshold.
				out = append(out, fmt.Sprintf("%s %q: the profile's packetDelayBudget is %s", side, c.Text, p.PacketDelayBudget))
			case throughput && downstream > 0 && c.Threshold > downstream:
				out = append(out, fmt.Sprintf("%s %q: the profile's targetMinDownstreamRate is %d bit/s", side, c.Text, p.TargetMinDownstreamRate))
			}
		}
	}
	check("breach", r.Breach())
	check("recover", r.Recover())
	return out
}

// capDuration is d within the profile's maxDuration. The caller holds d.mu.
func (d *Daemon) capDuration(qos string, want time.Duration) time.Duration {
	if c, ok := d.profileCaps[qos]; ok && want > c {
		return c
	}
	return want
}
