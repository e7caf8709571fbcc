package icmp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// PermissionError says that no ICMP socket could be opened for lack of
// permission, and exactly what is missing.
type PermissionError struct {
	Mode Mode // the mode asked for: which remedies apply

	// PingGroupRange is the value of sysctl net.ipv4.ping_group_range
	// ("" when it could not be read); GID and Groups are the process's
	// effective and supplementary groups, which the kernel checks against it.
	PingGroupRange string
	GID            int
	Groups         []int

	Err error // the last failure from the kernel
}

func (e *PermissionError) Error() string {
	var b strings.Builder
	b.WriteString("open ICMP socket: permission denied: ")
	var needs []string
	if e.Mode != ModeRaw {
		rng := e.PingGroupRange
		if rng == "" {
			rng = "unreadable"
		} else {
			rng = fmt.Sprintf("%q", rng)
		}
		needs = append(needs, fmt.Sprintf(
			"unprivileged ICMP needs the process's group (gid %d, groups %v) within sysctl net.ipv4.ping_group_range (now %s; e.g. sysctl -w net.ipv4.ping_group_range=\"%d %d\")",
			e.GID, e.Groups, rng, e.GID, e.GID))
	}
	if e.Mode != ModeUnprivileged {
		needs = append(needs,
			"raw ICMP needs capability CAP_NET_RAW (e.g. setcap cap_net_raw=ep on the binary, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)")
	}
	b.WriteString(strings.Join(needs, ", or "))
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *PermissionError) Unwrap() error { return e.Err }

// newPermissionError describes the missing permission of this process.
func newPermissionError(mode Mode, err error) *PermissionError {
	e := &PermissionError{Mode: mode, GID: os.Getegid(), Err: err}
	if b, rerr := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); rerr == nil {
		e.PingGroupRange = strings.Join(strings.Fields(string(b)), " ")
	}
	e.Groups, _ = os.Getgroups()
	return e
}

// isPermission reports whether err is the kernel refusing an ICMP socket:
// EACCES for a ping socket outside ping_group_range, EPERM for a raw socket
// without CAP_NET_RAW.
func isPermission(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}
