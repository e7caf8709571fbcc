package icmp

type slotState uint8

const (
	slotFree     slotState = iota // never used, or its send failed
	slotPending                   // sent, waiting for the reply
	slotAnswered                  // reply matched in time
	slotExpired                   // timed out (a reply now is late)
)

// slot records one sent packet. Slots live in a ring indexed by the low bits
// of the packet's serial, so matching a reply is one array index and two
// compares: no map, no allocation. An answered or expired slot stays until
// the ring comes round again, which is how late replies are told apart from
// strangers.
type slot struct {
	serial uint64
	sentAt int64
	t      *target
	state  slotState
}

type slotTable struct {
	slots []slot
	mask  uint64
}

func newSlotTable(size int) slotTable {
	n := 1
	for n < size {
		n <<= 1
	}
	return slotTable{slots: make([]slot, n), mask: uint64(n - 1)}
}

// at returns the slot where serial lives (or would live); the caller
// compares the serial.
func (s *slotTable) at(serial uint64) *slot { return &s.slots[serial&s.mask] }

// claim returns the slot for a new packet with serial. When the ring is so
// full that the slot still waits for its reply (more packets in flight than
// slots), the ring doubles first.
func (s *slotTable) claim(serial uint64) *slot {
	for s.slots[serial&s.mask].state == slotPending {
		s.grow()
	}
	return s.at(serial)
}

// grow doubles the ring. Used slots hold serials from a window narrower than
// the old ring, so they stay distinct in the new one.
func (s *slotTable) grow() {
	bigger := newSlotTable(2 * len(s.slots))
	for _, sl := range s.slots {
		if sl.state != slotFree {
			*bigger.at(sl.serial) = sl
		}
	}
	*s = bigger
}
