package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestForShardSplitsUEsAndCaps(t *testing.T) {
	base := &Config{}
	for i := range 1000 {
		base.UEs = append(base.UEs, UE{Name: fmt.Sprintf("cam-%d", i)})
	}
	base.Guards.MaxSessions = 10
	base.Guards.MaxSessionsPerGroup = map[string]int{"robots": 4}
	base.Guards.DailyBudget = 3 * time.Hour
	const count = 3
	seen := map[string]int{}
	sessions, robots := 0, 0
	var budget time.Duration
	for i := range count {
		s := Shard{Count: count, Index: i}
		c, err := base.ForShard(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.UEs) < 250 || len(c.UEs) > 420 {
			t.Errorf("%s owns %d of 1000 UEs; hashmod should spread them", s, len(c.UEs))
		}
		for _, ue := range c.UEs {
			seen[ue.Name]++
			if HashMod(ue.Name, count) != i {
				t.Errorf("%s owns %s, which hashes to %d", s, ue.Name, HashMod(ue.Name, count))
			}
		}
		sessions += c.Guards.MaxSessions
		robots += c.Guards.MaxSessionsPerGroup["robots"]
		budget += c.Guards.DailyBudget
		// Discovery merges a sharded config again: the caps must not be
		// split twice.
		again, err := c.ForShard(s)
		if err != nil || again.Guards.MaxSessions != c.Guards.MaxSessions || len(again.UEs) != len(c.UEs) {
			t.Errorf("%s applied twice: %v, max_sessions %d → %d", s, err, c.Guards.MaxSessions, again.Guards.MaxSessions)
		}
	}
	if len(seen) != 1000 {
		t.Errorf("%d of 1000 UEs owned", len(seen))
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s owned by %d shards", name, n)
		}
	}
	if sessions != 10 || robots != 4 || budget != 3*time.Hour {
		t.Errorf("shares add up to max_sessions %d, robots %d, budget %s; want the totals 10, 4, 3h", sessions, robots, budget)
	}
	if base.Guards.MaxSessionsPerGroup["robots"] != 4 || len(base.UEs) != 1000 {
		t.Error("ForShard changed the config it was given")
	}
	if _, err := base.ForShard(Shard{Count: 5, Index: 4}); err == nil || !strings.Contains(err.Error(), "robots 4 split across 5 shards leaves shard 4 none") {
		t.Errorf("a cap smaller than the shard count: %v", err)
	}
}

// HashMod is Prometheus's hashmod relabel action (MD5, its low 8 bytes
// big-endian, modulo n). The values were computed apart from this code
// (Python's hashlib), so a user's `action: hashmod` agrees with the shards.
func TestHashModIsPrometheuss(t *testing.T) {
	for _, c := range []struct {
		s           string
		mod7, mod1k int
	}{{"cam-1", 6, 262}, {"robot-2", 6, 959}, {"ue-1", 4, 117}, {"x", 4, 726}} {
		if got7, got1k := HashMod(c.s, 7), HashMod(c.s, 1000); got7 != c.mod7 || got1k != c.mod1k {
			t.Errorf("HashMod(%q) = %d mod 7, %d mod 1000; want %d, %d", c.s, got7, got1k, c.mod7, c.mod1k)
		}
	}
}

func TestOrdinalOf(t *testing.T) {
	for host, want := range map[string]int{"qodwatch-0": 0, "qodwatch-fleet-12": 12, "a-b-3": 3} {
		if got, err := ordinalOf(host); err != nil || got != want {
			t.Errorf("ordinalOf(%q) = %d, %v; want %d", host, got, err, want)
		}
	}
	for _, host := range []string{"qodwatch", "qodwatch-", "qodwatch-x", "qodwatch-+1", "qodwatch-1a"} {
		if n, err := ordinalOf(host); err == nil {
			t.Errorf("ordinalOf(%q) = %d; want an error", host, n)
		}
	}
}

// A sharded config resolves only its own discovered UEs: with 100,000 UEs
// in the inventory, a shard of four keeps (and checks) about a quarter.
func TestShardResolvesOnlyItsTargets(t *testing.T) {
	var g TargetGroup
	for i := range 400 {
		g.Targets = append(g.Targets, fmt.Sprintf("10.2.%d.%d", i/250, i%250+1))
	}
	g.Labels = map[string]string{"rule": "low"}
	all := loadSD(t, strings.Replace(sdConfig, `name: "cam-{{labels.id}}"`, "", 1)) // names from the targets
	total := 0
	for i := range 4 {
		s := Shard{Count: 4, Index: i}
		c, err := all.ForShard(s)
		if err != nil {
			t.Fatal(err)
		}
		ues, bad := c.ResolveTargets("cams", "u", []TargetGroup{g})
		if len(bad) != 0 {
			t.Fatalf("%s: %v", s, bad)
		}
		for _, u := range ues {
			if !s.Owns(u.Name) {
				t.Errorf("%s resolved %s, another shard's", s, u.Name)
			}
		}
		total += len(ues)
	}
	if total != 400 {
		t.Errorf("the shards resolved %d of 400 targets together", total)
	}
}

// UE finds by name through an index that a copy with other UEs cannot
// mislead.
func TestUELookup(t *testing.T) {
	c := &Config{UEs: []UE{{Name: "a"}, {Name: "b"}}}
	c.indexUEs()
	if u, ok := c.UE("b"); !ok || u != &c.UEs[1] {
		t.Fatalf("UE(b) = %v, %v", u, ok)
	}
	stale := *c
	stale.UEs = []UE{{Name: "b"}, {Name: "c"}} // not re-indexed
	for _, name := range []string{"b", "c"} {
		if u, ok := stale.UE(name); !ok || u.Name != name {
			t.Errorf("stale index: UE(%s) = %v, %v", name, u, ok)
		}
	}
	if _, ok := stale.UE("a"); ok {
		t.Error("stale index found a UE the list no longer has")
	}
}
