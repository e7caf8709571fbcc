package policy

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func dueOf(t *testing.T, e *Engine, ue string) time.Time {
	t.Helper()
	s, ok := e.Status(ue)
	if !ok {
		t.Fatalf("no status for %s", ue)
	}
	return s.Due
}

func mustEval(t *testing.T, e *Engine, now time.Time, ue string, obs Observation) Decision {
	t.Helper()
	d, err := e.Evaluate(now, ue, withSpans(obs))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A breach seen at an odd moment is due exactly `for` later, and an
// evaluation at that instant fires: not a nanosecond earlier, and not one
// tick later.
func TestDueBreachForFiresAtExactlySincePlusFor(t *testing.T) {
	e := NewEngine(defaultGuards())
	if err := e.SetUE("cam", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(123456789 * time.Nanosecond)
	mustEval(t, e, now, "cam", obsGood)
	if due := dueOf(t, e, "cam"); !due.IsZero() || !e.NextDue().IsZero() {
		t.Fatalf("idle UE due at %v (next %v); want none", due, e.NextDue())
	}
	since := now.Add(17 * time.Millisecond) // the sample showing the breach
	mustEval(t, e, since, "cam", obsBad)
	want := since.Add(20 * time.Second)
	if due := dueOf(t, e, "cam"); !due.Equal(want) || !e.NextDue().Equal(want) {
		t.Fatalf("due %v, next %v; want since+for = %v", due, e.NextDue(), want)
	}
	// More samples on the way change nothing.
	mustEval(t, e, since.Add(7*time.Second+3), "cam", obsBad)
	if due := dueOf(t, e, "cam"); !due.Equal(want) {
		t.Fatalf("due moved to %v by a later sample; want %v", due, want)
	}
	if got := e.DueUEs(want.Add(-1), nil); len(got) != 0 {
		t.Fatalf("DueUEs a nanosecond early = %v", got)
	}
	if d := mustEval(t, e, want.Add(-1), "cam", obsBad); d.Kind != None {
		t.Fatalf("fired a nanosecond early: %v", d)
	}
	if got := e.DueUEs(want, nil); !slices.Equal(got, []string{"cam"}) {
		t.Fatalf("DueUEs at since+for = %v, want [cam]", got)
	}
	d := mustEval(t, e, want, "cam", obsBad)
	if d.Kind != Request || !d.At.Equal(want) {
		t.Fatalf("at since+for: %v, want a Request at %v", d, want)
	}
	if due := dueOf(t, e, "cam"); !due.IsZero() || !e.NextDue().IsZero() {
		t.Fatalf("due %v while the request is in flight; want none", due)
	}
}

// Missing data pauses the `for`: no due time while paused, and the pause
// moves the due time by its length.
func TestDuePausedByMissingData(t *testing.T) {
	e := NewEngine(defaultGuards())
	if err := e.SetUE("cam", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, t0, "cam", obsBad)
	mustEval(t, e, t0.Add(5*time.Second), "cam", obsNone)
	if due := dueOf(t, e, "cam"); !due.IsZero() {
		t.Fatalf("due %v with no data; want none (the for is paused)", due)
	}
	mustEval(t, e, t0.Add(8*time.Second), "cam", obsBad)
	want := t0.Add(23 * time.Second) // 20s of breach plus the 3s pause
	if due := dueOf(t, e, "cam"); !due.Equal(want) {
		t.Fatalf("due %v after the pause; want %v", due, want)
	}
	if d := mustEval(t, e, want, "cam", obsBad); d.Kind != Request {
		t.Fatalf("at the due time after a pause: %v", d)
	}
}

// The recovery `for` and min_session are due at their ends, the release
// fires at the due time, and the outcome makes the UE due at once; the
// cooldown that follows is due at its end.
func TestDueRecoveryMinSessionAndCooldown(t *testing.T) {
	g := defaultGuards() // min_session 1m, cooldown 5m
	e := NewEngine(g)
	if err := e.SetUE("cam", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, t0, "cam", obsBad)
	req := mustEval(t, e, t0.Add(20*time.Second), "cam", obsBad)
	opened := t0.Add(20*time.Second + 150*time.Millisecond)
	if err := e.Opened(opened, "cam", Session{ID: "s1", QoS: req.QoS, ExpiresAt: opened.Add(req.Duration)}); err != nil {
		t.Fatal(err)
	}
	if due := dueOf(t, e, "cam"); !due.Equal(opened) {
		t.Fatalf("due %v right after Opened; want %v (evaluate at once)", due, opened)
	}
	// Still in breach: the renewal (renew_before 1m) is next.
	mustEval(t, e, opened.Add(time.Millisecond), "cam", obsBad)
	if due, want := dueOf(t, e, "cam"), opened.Add(req.Duration-time.Minute); !due.Equal(want) {
		t.Fatalf("due %v with a session held in breach; want the renewal at %v", due, want)
	}
	good := opened.Add(10 * time.Second)
	mustEval(t, e, good, "cam", obsGood)
	if due, want := dueOf(t, e, "cam"), good.Add(60*time.Second); !due.Equal(want) {
		t.Fatalf("due %v while recovering; want the recovery for at %v", due, want)
	}
	// min_session (1m from opened) is over before the for (70s from
	// opened), so the release fires at the for's end.
	at := good.Add(60 * time.Second)
	if d := mustEval(t, e, at.Add(-1), "cam", obsGood); d.Kind != None {
		t.Fatalf("released a nanosecond early: %v", d)
	}
	rel := mustEval(t, e, at, "cam", obsGood)
	if rel.Kind != Release {
		t.Fatalf("at the recovery's due time: %v, want a release", rel)
	}
	ended := at.Add(80 * time.Millisecond)
	if err := e.Ended(ended, "cam", "s1", EndReleased); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, ended, "cam", obsBad)
	if due, want := dueOf(t, e, "cam"), ended.Add(5*time.Minute); !due.Equal(want) {
		t.Fatalf("due %v in cooldown; want its end %v", due, want)
	}
}

// min_session longer than the recovery's for: due at min_session's end.
func TestDueMinSession(t *testing.T) {
	g := defaultGuards()
	g.MinSession = 10 * time.Minute
	e := NewEngine(g)
	if err := e.SetUE("cam", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	if err := e.Adopt(t0, "cam", Session{ID: "s1", QoS: "QOS_E", StartedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, t0.Add(time.Second), "cam", obsGood)
	mustEval(t, e, t0.Add(61*time.Second), "cam", obsGood)
	if due, want := dueOf(t, e, "cam"), t0.Add(10*time.Minute); !due.Equal(want) {
		t.Fatalf("due %v; want min_session's end %v", due, want)
	}
	if d := mustEval(t, e, t0.Add(10*time.Minute), "cam", obsGood); d.Kind != Release {
		t.Fatalf("at min_session's end: %v", d)
	}
}

// A retryable failure is due at its retry time, which fires the request.
func TestDueBackoff(t *testing.T) {
	e := NewEngine(defaultGuards())
	if err := e.SetUE("cam", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, t0, "cam", obsBad)
	mustEval(t, e, t0.Add(20*time.Second), "cam", obsBad)
	failed := t0.Add(21 * time.Second)
	if err := e.Failed(failed, "cam", Failure{Err: fmt.Errorf("503"), Retryable: true, RetryAfter: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, failed, "cam", obsBad)
	retry := failed.Add(1500 * time.Millisecond)
	if due := dueOf(t, e, "cam"); !due.Equal(retry) {
		t.Fatalf("due %v in backoff; want %v", due, retry)
	}
	if d := mustEval(t, e, retry, "cam", obsBad); d.Kind != Request {
		t.Fatalf("at the retry time: %v", d)
	}
}

// Escalation is due when both the breach and the session have lasted its
// `after`, ahead of the renewal.
func TestDueEscalation(t *testing.T) {
	e := NewEngine(defaultGuards())
	if err := e.SetUE("cam", mustRule(t, "r", videoUplink())); err != nil { // escalate after 3m
		t.Fatal(err)
	}
	mustEval(t, e, t0, "cam", tput(2))
	req := mustEval(t, e, t0.Add(15*time.Second), "cam", tput(2))
	if req.Kind != Request {
		t.Fatalf("%v", req)
	}
	opened := t0.Add(16 * time.Second)
	if err := e.Opened(opened, "cam", Session{ID: "s1", QoS: req.QoS, ExpiresAt: opened.Add(req.Duration)}); err != nil {
		t.Fatal(err)
	}
	mustEval(t, e, opened, "cam", tput(2))
	want := opened.Add(3 * time.Minute) // the session started after the breach
	if due := dueOf(t, e, "cam"); !due.Equal(want) {
		t.Fatalf("due %v; want the escalation at %v", due, want)
	}
	if d := mustEval(t, e, want, "cam", tput(2)); d.Kind != Escalate {
		t.Fatalf("at the escalation's due time: %v", d)
	}
}

// NextDue is the earliest across UEs, DueUEs lists exactly those due, and
// UEs leave the heap when nothing is timed or they are removed.
func TestDueAcrossUEs(t *testing.T) {
	e := NewEngine(defaultGuards())
	const n = 200
	for i := range n {
		if err := e.SetUE(fmt.Sprint("ue", i), mustRule(t, "r", lowLatency())); err != nil {
			t.Fatal(err)
		}
	}
	// UE i breaches at t0 + (i*7 mod n) ms: due 20s later.
	breachAt := func(i int) time.Time { return t0.Add(time.Duration(i*7%n) * time.Millisecond) }
	for i := range n {
		mustEval(t, e, breachAt(i), fmt.Sprint("ue", i), obsBad)
	}
	if got, want := e.NextDue(), t0.Add(20*time.Second); !got.Equal(want) {
		t.Fatalf("NextDue %v, want %v", got, want)
	}
	now := t0.Add(20*time.Second + 49*time.Millisecond)
	got := e.DueUEs(now, nil)
	slices.Sort(got)
	var want []string
	for i := range n {
		if !breachAt(i).Add(20 * time.Second).After(now) {
			want = append(want, fmt.Sprint("ue", i))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("DueUEs = %v, want %v", got, want)
	}
	// Half recover: they leave the heap; the rest stay due in order.
	for i := 0; i < n; i += 2 {
		mustEval(t, e, now, fmt.Sprint("ue", i), obsGood)
	}
	if err := e.SetUE("ue1", mustRule(t, "r", lowLatency())); err != nil {
		t.Fatal(err)
	}
	e.RemoveUE(now, "ue3")
	var firstOdd time.Time
	for i := 1; i < n; i += 2 {
		if i == 3 {
			continue
		}
		if at := breachAt(i).Add(20 * time.Second); firstOdd.IsZero() || at.Before(firstOdd) {
			firstOdd = at
		}
	}
	if got := e.NextDue(); !got.Equal(firstOdd) {
		t.Fatalf("NextDue %v after the even UEs recovered; want %v", got, firstOdd)
	}
	if len(e.due) != n/2-1 {
		t.Fatalf("%d UEs in the due heap, want %d", len(e.due), n/2-1)
	}
	checkDueHeap(t, e)
}

// checkDueHeap checks the heap's order and back-pointers, and that it holds
// exactly the UEs with a due time.
func checkDueHeap(t testing.TB, e *Engine) {
	t.Helper()
	for i, u := range e.due {
		if int(u.duePos) != i+1 {
			t.Fatalf("heap[%d] = %s has duePos %d", i, u.name, u.duePos)
		}
		if i > 0 && u.due.Before(e.due[(i-1)/2].due) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	var min time.Time
	for _, u := range e.list {
		if u.gone {
			if u.duePos != 0 {
				t.Fatalf("gone UE %s still in the due heap", u.name)
			}
			continue
		}
		if u.due.IsZero() != (u.duePos == 0) {
			t.Fatalf("UE %s: due %v but duePos %d", u.name, u.due, u.duePos)
		}
		if !u.due.IsZero() && (min.IsZero() || u.due.Before(min)) {
			min = u.due
		}
	}
	if !e.NextDue().Equal(min) {
		t.Fatalf("NextDue %v, earliest due of any UE %v", e.NextDue(), min)
	}
}
