package icmp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// Sizes of the Linux socket address structures, which sendmmsg and
// recvmmsg read and write as raw bytes.
const (
	sizeofSockaddrInet4 = 16
	sizeofSockaddrInet6 = 28
)

// putSockaddr writes a as a sockaddr_in or sockaddr_in6 into b and returns
// its length.
func putSockaddr(b []byte, a netip.Addr) (uint32, error) {
	if a.Is4() {
		binary.NativeEndian.PutUint16(b[0:], syscall.AF_INET)
		binary.BigEndian.PutUint16(b[2:], 0)
		ip := a.As4()
		copy(b[4:8], ip[:])
		return sizeofSockaddrInet4, nil
	}
	binary.NativeEndian.PutUint16(b[0:], syscall.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], 0)
	ip := a.As16()
	copy(b[8:24], ip[:])
	scope, err := zoneIndex(a.Zone())
	if err != nil {
		return 0, err
	}
	binary.NativeEndian.PutUint32(b[24:], scope)
	return sizeofSockaddrInet6, nil
}

// zoneIndex turns the zone of a link-local IPv6 address (an interface name
// or number) into the scope id the kernel wants.
func zoneIndex(zone string) (uint32, error) {
	if zone == "" {
		return 0, nil
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("resolve IPv6 zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}

// sockaddrAddr returns the address in a sockaddr written by the kernel, in
// 16-byte form (IPv4 mapped), and false when b holds neither family.
func sockaddrAddr(b []byte) (a [16]byte, ok bool) {
	if len(b) < 2 {
		return a, false
	}
	switch binary.NativeEndian.Uint16(b) {
	case syscall.AF_INET:
		if len(b) < 8 {
			return a, false
		}
		a[10], a[11] = 0xff, 0xff
		copy(a[12:], b[4:8])
		return a, true
	case syscall.AF_INET6:
		if len(b) < 24 {
			return a, false
		}
		copy(a[:], b[8:24])
		return a, true
	}
	return a, false
}
