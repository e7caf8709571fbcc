// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): one datagram per state change to the unix socket named
// by $NOTIFY_SOCKET. It is a few lines of the standard library, so the
// daemon needs no systemd library for Type=notify and WatchdogSec=.
package sdnotify

import (
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// The states qodwatch sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends states to the service manager. The zero Notifier (no
// $NOTIFY_SOCKET: not started by systemd, or not Type=notify) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv reads $NOTIFY_SOCKET: a path, or an abstract socket when it
// starts with "@".
func FromEnv() *Notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return &Notifier{}
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether there is a manager to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends the newline-separated states in one datagram. Without a
// socket it does nothing and returns nil.
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() {
		return nil
	}
	var msg []byte
	for i, s := range states {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, s...)
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write(msg)
	return err
}

// WatchdogInterval is the watchdog timeout systemd set for this process
// ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or names this process), or
// 0 when there is no watchdog. Pings should come at half of it.
func WatchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // meant for another process (our parent, say)
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("WATCHDOG_USEC=" + usec + " is not a positive number of microseconds")
	}
	return time.Duration(n) * time.Microsecond, nil
}
