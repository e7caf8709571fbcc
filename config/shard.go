package config

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"
)

// Shard is one process's part of a fleet split across Count processes (a
// StatefulSet's pods): it owns the UEs whose name hashes to Index. The zero
// value is the whole fleet.
type Shard struct {
	// The tags are how a state file records the shard that wrote it.
	Count int `json:"count"`
	Index int `json:"index"`
}

// Whole reports whether s is the whole fleet (no sharding).
func (s Shard) Whole() bool { return s.Count <= 1 }

func (s Shard) String() string {
	if s.Whole() {
		return "whole fleet"
	}
	return fmt.Sprintf("shard %d of %d", s.Index, s.Count)
}

// Owns reports whether the UE called name is s's.
func (s Shard) Owns(name string) bool {
	return s.Whole() || HashMod(name, s.Count) == s.Index
}

// HashMod is Prometheus's hashmod relabelling: the MD5 of s, its low 8
// bytes as a big-endian number, modulo n. Users who shard their scrapes the
// same way can tell which shard watches a UE.
func HashMod(s string, n int) int {
	sum := md5.Sum([]byte(s))
	return int(binary.BigEndian.Uint64(sum[8:]) % uint64(n))
}

// Validate checks count and index.
func (s Shard) Validate() error {
	switch {
	case s.Count < 1:
		return fmt.Errorf("shard count %d: want 1 or more", s.Count)
	case s.Index < 0 || s.Index >= s.Count:
		return fmt.Errorf("shard index %d is outside 0..%d", s.Index, s.Count-1)
	}
	return nil
}

// OrdinalFromHostname is the ordinal a StatefulSet gives its pod, the number
// after the hostname's last '-' (qodwatch-3 → 3).
func OrdinalFromHostname() (int, error) {
	host, err := os.Hostname()
	if err != nil {
		return 0, err
	}
	return ordinalOf(host)
}

func ordinalOf(host string) (int, error) {
	i := strings.LastIndexByte(host, '-')
	n, err := strconv.Atoi(host[i+1:])
	if i < 0 || err != nil || n < 0 || host[i+1] == '+' {
		return 0, fmt.Errorf("hostname %q does not end in -ORDINAL as a StatefulSet pod's does; give --shard.index", host)
	}
	return n, nil
}

// ForShard returns c with only the UEs s owns and, the first time, the
// spending caps split: max_sessions and each max_sessions_per_group cap
// give shard i the total/count, one more for the first total%count shards,
// so the shares add up to the total; daily_budget gives each shard
// total/count. A static split needs no coordination (nothing to fail or
// wait for between shards); its price is that one shard may meet its share
// while another has room. A cap smaller than the shard count would leave a
// shard none (0 means "no cap"), so it is an error.
func (c *Config) ForShard(s Shard) (*Config, error) {
	if s.Whole() {
		return c, nil
	}
	out := *c
	if out.Shard != s {
		if !out.Shard.Whole() {
			return nil, fmt.Errorf("config already split for %s, not %s", out.Shard, s)
		}
		share := func(what string, total int) (int, error) {
			n := total / s.Count
			if s.Index < total%s.Count {
				n++
			}
			if total > 0 && n == 0 {
				return 0, fmt.Errorf("%s %d split across %d shards leaves shard %d none; give at least %d", what, total, s.Count, s.Index, s.Count)
			}
			return n, nil
		}
		g := &out.Guards
		var err error
		if g.MaxSessions, err = share("guards.max_sessions", g.MaxSessions); err != nil {
			return nil, err
		}
		if len(g.MaxSessionsPerGroup) > 0 {
			g.MaxSessionsPerGroup = maps.Clone(g.MaxSessionsPerGroup)
			for grp, total := range g.MaxSessionsPerGroup {
				if g.MaxSessionsPerGroup[grp], err = share("guards.max_sessions_per_group."+grp, total); err != nil {
					return nil, err
				}
			}
		}
		if total := g.DailyBudget; total > 0 {
			g.DailyBudget = (total / time.Duration(s.Count)).Truncate(time.Second)
			if g.DailyBudget == 0 {
				return nil, fmt.Errorf("guards.daily_budget %s split across %d shards leaves each less than a second", total, s.Count)
			}
		}
		out.Shard = s
	}
	owned := make([]UE, 0, len(c.UEs)/s.Count+1)
	for _, ue := range c.UEs {
		if s.Owns(ue.Name) {
			owned = append(owned, ue)
		}
	}
	out.UEs = owned
	out.indexUEs()
	return &out, nil
}
