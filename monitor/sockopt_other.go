//go:build !linux

package monitor

import "syscall"

// limitUnsent does nothing where TCP_NOTSENT_LOWAT is not known.
func limitUnsent(network, address string, c syscall.RawConn) error { return nil }

// setTOS does not mark packets where the socket options are not known.
func setTOS(network string, c syscall.RawConn, tos int) error { return nil }
