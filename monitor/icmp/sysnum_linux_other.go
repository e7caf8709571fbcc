//go:build linux && !amd64 && !386

package icmp

import "syscall"

const (
	sysRECVMMSG = syscall.SYS_RECVMMSG
	sysSENDMMSG = syscall.SYS_SENDMMSG
)
