//go:build !linux

package monitor

import "syscall"

// limitUnsent does nothing where TCP_NOTSENT_LOWAT is not known.
func limitUnsent(network, address string, c syscall.RawConn) error { return nil }
