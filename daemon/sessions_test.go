package daemon

import (
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/policy"
	"github.com/qodwatch/qodwatch/qodclient"
)

func TestGrantedDuration(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name string
		info qodclient.SessionInfo
		want time.Duration
	}{
		{"duration field", qodclient.SessionInfo{Duration: 300, StartedAt: start, ExpiresAt: start.Add(time.Hour)}, 5 * time.Minute},
		{"operator's span", qodclient.SessionInfo{StartedAt: start, ExpiresAt: start.Add(90 * time.Second)}, 90 * time.Second},
		{"no times", qodclient.SessionInfo{}, 10 * time.Minute},
		{"expiry before start", qodclient.SessionInfo{StartedAt: start, ExpiresAt: start.Add(-time.Second)}, 10 * time.Minute},
	}
	for _, c := range cases {
		if got := grantedDuration(&c.info, 10*time.Minute); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEndReason(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cases := []struct {
		expires time.Time
		want    policy.EndReason
	}{
		{now.Add(time.Minute), policy.EndTerminated},
		{now.Add(expiryNoticeSlack + time.Millisecond), policy.EndTerminated},
		{now.Add(expiryNoticeSlack), policy.EndExpired},
		{now.Add(-time.Second), policy.EndExpired},
		{time.Time{}, policy.EndTerminated},
	}
	for _, c := range cases {
		if got := endReason(policy.Session{ExpiresAt: c.expires}, now); got != c.want {
			t.Errorf("expires %v before now: %v, want %v", now.Sub(c.expires), got, c.want)
		}
	}
}
