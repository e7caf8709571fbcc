//go:build !linux

package icmp

import "errors"

// The engine batches with sendmmsg and recvmmsg and reads kernel receive
// timestamps: it runs on Linux only. Elsewhere New fails with this error.
var errUnsupported = errors.New("the ICMP engine needs Linux")

const (
	maxSendBatch = 1
	maxRecvBatch = 1
)

type sysSocket struct{}

func (s *socket) open(Mode, uint16) error          { return errUnsupported }
func (s *socket) close() error                     { return nil }
func (s *socket) wake()                            {}
func (s *socket) queue(*target, echo) bool         { return false }
func (s *socket) flush() []sendFailure             { return nil }
func (s *socket) batched() int                     { return 0 }
func (s *socket) batchEntry(int) (*target, uint64) { return nil, 0 }
func (s *socket) sendCalls() uint64                { return 0 }
func (s *socket) recvCalls() uint64                { return 0 }
func (s *socket) resetBatch()                      {}
func (s *socket) doneReading()                     {}
func (s *socket) quiet() bool                      { return true }
func (s *socket) read() (int, error)               { return 0, errUnsupported }
func (s *socket) readNow() (int, error)            { return 0, errUnsupported }
func (s *socket) message(int) ([]byte, [16]byte, bool, int64, uint32) {
	return nil, [16]byte{}, false, 0, 0
}

const minGoodRcvBuf = 0
