package icmp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/monitor"
)

// matchFixture is an engine without sockets: one raw IPv4 socket and one
// target with a packet in flight, to feed hand-made replies to match.
type matchFixture struct {
	e      *Engine
	s      *socket
	t      *target
	serial uint64
	from   [16]byte
}

func newMatchFixture(t *testing.T) *matchFixture {
	t.Helper()
	e := &Engine{token: 0xfeed, slots: newSlotTable(8), serial: 1000, realClock: true}
	e.start = time.Unix(1_700_000_000, 0)
	e.clock = func() time.Time { return e.start }
	s := &socket{checkID: true, id: 77}
	tg, err := newTarget(Target{UE: "cam-7", Addr: netip.MustParseAddr("127.0.0.9"), Interval: time.Second,
		Packets: 1, Timeout: 500 * time.Millisecond}, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &matchFixture{e: e, s: s, t: tg, from: netip.MustParseAddr("127.0.0.9").As16()}
	f.serial = f.send(100 * ms)
	return f
}

// send puts a packet to the target in flight at engine time sent.
func (f *matchFixture) send(sent int64) uint64 {
	serial := f.e.serial
	f.e.serial++
	*f.e.slots.claim(serial) = slot{serial: serial, sentAt: sent, t: f.t, state: slotPending}
	f.s.pending++
	return serial
}

// reply is the echo reply to packet serial as received.
func (f *matchFixture) reply(serial uint64) []byte {
	b := make([]byte, packetLen)
	buildEcho(b, false, echo{id: 77, serial: serial, token: 0xfeed, sent: f.e.slots.at(serial).sentAt})
	return reply(b, false)
}

func (f *matchFixture) match(b []byte, recv int64) (monitor.Result, bool) {
	return f.e.match(f.s, b, f.from, true, recv, f.e.timeAt(recv))
}

func TestMatchInTime(t *testing.T) {
	f := newMatchFixture(t)
	r, ok := f.match(f.reply(f.serial), 130*ms)
	if !ok || r.UE != "cam-7" || r.Probe != "icmp" || r.RTT != 30*time.Millisecond || r.Lost || r.Err != nil {
		t.Fatalf("result %+v ok %v, want cam-7 icmp RTT 30ms", r, ok)
	}
	if !r.At.Equal(f.e.start.Add(130 * time.Millisecond)) {
		t.Fatalf("At %v", r.At)
	}
	if _, ok := f.match(f.reply(f.serial), 140*ms); ok {
		t.Fatal("duplicate recorded")
	}
	c := f.e.c
	if c.Received != 1 || c.Duplicates != 1 || c.Lost != 0 || f.s.pending != 0 {
		t.Fatalf("counters %+v pending %d", c, f.s.pending)
	}
}

func TestMatchLate(t *testing.T) {
	// Arrived 600 ms after sending, timeout 500 ms, not yet expired: it is
	// recorded as lost at its deadline and counted late.
	f := newMatchFixture(t)
	r, ok := f.match(f.reply(f.serial), 700*ms)
	if !ok || !r.Lost || !r.At.Equal(f.e.start.Add(600*time.Millisecond)) {
		t.Fatalf("result %+v ok %v, want lost at 600ms", r, ok)
	}
	if c := f.e.c; c.Lost != 1 || c.Late != 1 || c.Received != 0 || f.s.pending != 0 {
		t.Fatalf("counters %+v pending %d", c, f.s.pending)
	}

	// Expired by the scheduler first: the reply only counts late.
	f = newMatchFixture(t)
	f.e.deadlines.push(deadline{at: 600 * ms, serial: f.serial})
	f.e.opened = nil // no sockets to wait for
	f.e.expire(600 * ms)
	if len(f.e.lostResults) != 1 || !f.e.lostResults[0].Lost || f.e.lostResults[0].UE != "cam-7" {
		t.Fatalf("expire recorded %+v", f.e.lostResults)
	}
	if _, ok := f.match(f.reply(f.serial), 650*ms); ok {
		t.Fatal("late reply recorded")
	}
	if c := f.e.c; c.Lost != 1 || c.Late != 1 || c.Received != 0 {
		t.Fatalf("counters %+v", c)
	}

	// So old that its slot was reused by a newer packet: still ours, late.
	f = newMatchFixture(t)
	old := f.reply(f.serial)
	f.e.slots.at(f.serial).state = slotExpired
	for range len(f.e.slots.slots) - 1 {
		*f.e.slots.at(f.send(900 * ms)) = slot{}
	}
	newer := f.send(900 * ms)
	if f.e.slots.at(f.serial) != f.e.slots.at(newer) {
		t.Fatal("fixture: slot not reused")
	}
	if _, ok := f.match(old, 950*ms); ok || f.e.c.Late != 1 {
		t.Fatalf("reply to a reused slot: ok %v counters %+v", ok, f.e.c)
	}
}

func TestMatchRejectsStrangers(t *testing.T) {
	cases := map[string]func(f *matchFixture) ([]byte, [16]byte){
		"other token": func(f *matchFixture) ([]byte, [16]byte) {
			b := make([]byte, packetLen)
			buildEcho(b, false, echo{id: 77, serial: f.serial, token: 0xbad})
			return reply(b, false), f.from
		},
		"other id (another pinger on a raw socket)": func(f *matchFixture) ([]byte, [16]byte) {
			b := f.reply(f.serial)
			b[4], b[5] = 0, 78
			return b, f.from
		},
		"sequence not the serial's": func(f *matchFixture) ([]byte, [16]byte) {
			b := f.reply(f.serial)
			b[7]++
			return b, f.from
		},
		"from another address": func(f *matchFixture) ([]byte, [16]byte) {
			return f.reply(f.serial), netip.MustParseAddr("127.0.0.10").As16()
		},
		"serial never sent": func(f *matchFixture) ([]byte, [16]byte) {
			b := make([]byte, packetLen)
			buildEcho(b, false, echo{id: 77, serial: f.serial + 5, token: 0xfeed})
			return reply(b, false), f.from
		},
		"echo request": func(f *matchFixture) ([]byte, [16]byte) {
			b := make([]byte, packetLen)
			buildEcho(b, false, echo{id: 77, serial: f.serial, token: 0xfeed})
			return b, f.from
		},
	}
	for name, mk := range cases {
		f := newMatchFixture(t)
		b, from := mk(f)
		if r, ok := f.e.match(f.s, b, from, true, 130*ms, f.e.timeAt(130*ms)); ok {
			t.Errorf("%s: recorded %+v", name, r)
		}
		if c := f.e.c; c.Unmatched != 1 || c.Received != 0 || f.e.slots.at(f.serial).state != slotPending {
			t.Errorf("%s: counters %+v, slot %+v", name, c, *f.e.slots.at(f.serial))
		}
	}
}

func TestMatchIgnoresCopyOnOtherSocket(t *testing.T) {
	// A raw socket bound to the source address and the wildcard one both
	// get the reply; only the sending socket's copy counts.
	f := newMatchFixture(t)
	other := &socket{checkID: true, id: 77}
	if _, ok := f.e.match(other, f.reply(f.serial), f.from, true, 130*ms, f.e.timeAt(130*ms)); ok {
		t.Fatal("copy on the other socket recorded")
	}
	if c := f.e.c; c != (Counters{}) {
		t.Fatalf("copy counted: %+v", c)
	}
	if _, ok := f.match(f.reply(f.serial), 130*ms); !ok {
		t.Fatal("the sending socket's copy not matched")
	}
}

func TestMatchRemovedTargetCountsButDoesNotRecord(t *testing.T) {
	f := newMatchFixture(t)
	f.t.removed = true
	if r, ok := f.match(f.reply(f.serial), 130*ms); ok {
		t.Fatalf("recorded %+v for a removed target", r)
	}
	if f.e.c.Received != 1 {
		t.Fatalf("counters %+v", f.e.c)
	}
}
