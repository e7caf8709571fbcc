package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// GuardsSpec is the guards section as the user writes it. Empty fields take
// the defaults documented on Guards.
type GuardsSpec struct {
	MaxSessions         int            `yaml:"max_sessions"`
	MaxSessionsPerGroup map[string]int `yaml:"max_sessions_per_group,omitempty"`
	MinSession          string         `yaml:"min_session"`
	Cooldown            string         `yaml:"cooldown"`
	DailyBudget         string         `yaml:"daily_budget"`
	RenewBefore         string         `yaml:"renew_before"`
	StaleAfter          string         `yaml:"stale_after,omitempty"`
	OnMissingData       string         `yaml:"on_missing_data"`
}

// Guards limit what the engine may spend, for every rule. The zero value
// limits nothing; CompileGuards fills the defaults below.
type Guards struct {
	// MaxSessions caps the sessions held at once across all UEs (0: no cap).
	// A UE counts from its request until its session is confirmed gone.
	MaxSessions int
	// MaxSessionsPerGroup caps them per group of UEs (absent or 0: no cap).
	MaxSessionsPerGroup map[string]int
	// MinSession is the least time a session is kept once opened, even if
	// the UE recovers sooner (default 1m).
	MinSession time.Duration
	// Cooldown is how long a UE waits after its session ended (released by
	// us, ended by the network, or expired) before a new one (default 5m).
	Cooldown time.Duration
	// DailyBudget caps the session time across all UEs per UTC day
	// (0: no cap). A session's full duration is charged when it is requested
	// and the unused part refunded when it ends early, so the sum can never
	// pass the budget; time is charged to the day of the request.
	DailyBudget time.Duration
	// RenewBefore is how long before expiry a session is replaced while the
	// UE has not recovered (default 1m; at most half the session's length).
	RenewBefore time.Duration
	// StaleAfter makes a source with its newest sample older than this count
	// as no data (0: only an empty window is no data).
	StaleAfter time.Duration
	// OnMissingData is the default meaning of no data (default hold).
	OnMissingData MissingData
}

// Defaults of CompileGuards for fields left empty.
const (
	DefaultMinSession  = time.Minute
	DefaultCooldown    = 5 * time.Minute
	DefaultRenewBefore = time.Minute
)

// CompileGuards checks spec and fills defaults. Mistakes are *FieldErrors
// with an empty Rule, joined when there are several.
func CompileGuards(spec GuardsSpec) (Guards, error) {
	var errs []error
	bad := func(field, value, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)})
	}
	g := Guards{
		MaxSessions: spec.MaxSessions,
		MinSession:  DefaultMinSession,
		Cooldown:    DefaultCooldown,
		RenewBefore: DefaultRenewBefore,
	}
	if spec.MaxSessions < 0 {
		bad("max_sessions", fmt.Sprint(spec.MaxSessions), "must not be negative (0 means no cap)")
	}
	if len(spec.MaxSessionsPerGroup) > 0 {
		g.MaxSessionsPerGroup = make(map[string]int, len(spec.MaxSessionsPerGroup))
		for _, name := range slices.Sorted(maps.Keys(spec.MaxSessionsPerGroup)) {
			n := spec.MaxSessionsPerGroup[name]
			switch {
			case name == "":
				bad("max_sessions_per_group", "", "has a group with an empty name")
			case n < 0:
				bad("max_sessions_per_group."+name, fmt.Sprint(n), "must not be negative (0 means no cap)")
			default:
				g.MaxSessionsPerGroup[name] = n
			}
		}
	}
	dur := func(field, s string, into *time.Duration) {
		if s == "" {
			return
		}
		d, err := ParseDuration(s)
		if err != nil {
			bad(field, "", "%v", err)
			return
		}
		*into = d
	}
	dur("min_session", spec.MinSession, &g.MinSession)
	dur("cooldown", spec.Cooldown, &g.Cooldown)
	dur("daily_budget", spec.DailyBudget, &g.DailyBudget)
	dur("renew_before", spec.RenewBefore, &g.RenewBefore)
	dur("stale_after", spec.StaleAfter, &g.StaleAfter)
	if spec.DailyBudget != "" && g.DailyBudget == 0 {
		bad("daily_budget", spec.DailyBudget, "is zero, which would forbid every session; leave it out for no cap")
	}
	if spec.RenewBefore != "" && g.RenewBefore == 0 {
		bad("renew_before", spec.RenewBefore, "must be above zero, or a session would expire before it is renewed")
	}
	switch m, ok := parseMissing(spec.OnMissingData); {
	case !ok:
		bad("on_missing_data", spec.OnMissingData, "must be hold or breach")
	case m == MissingInherit:
		g.OnMissingData = MissingHold
	default:
		g.OnMissingData = m
	}
	if len(errs) > 0 {
		return Guards{}, errors.Join(errs...)
	}
	return g, nil
}
