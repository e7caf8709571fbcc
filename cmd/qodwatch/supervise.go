package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
	"github.com/qodwatch/qodwatch/sdnotify"
)

// supervised tells systemd (Type=notify, WatchdogSec=) how the daemon is:
// READY=1 once it has restored its sessions and measured every UE once,
// WATCHDOG=1 while its control loop runs, STOPPING=1 when it is told to
// stop. Without $NOTIFY_SOCKET it does nothing. It returns at once; the
// goroutines end with ctx.
func supervised(ctx context.Context, d *daemon.Daemon, log *slog.Logger) {
	n := sdnotify.FromEnv()
	if !n.Enabled() {
		return
	}
	send := func(states ...string) {
		if err := n.Notify(states...); err != nil {
			log.Warn("systemd notification failed", "state", states[0], "err", err)
		}
	}
	go func() {
		select {
		case <-d.Ready():
			send(sdnotify.Ready)
		case <-ctx.Done():
		}
		<-ctx.Done()
		send(sdnotify.Stopping)
	}()
	interval, err := sdnotify.WatchdogInterval()
	if err != nil {
		log.Warn("systemd watchdog off", "err", err)
	}
	if interval > 0 {
		go watchdog(ctx, d, interval, func() { send(sdnotify.Watchdog) })
	}
}

// watchdog pings at half the watchdog interval, but only while the control
// loop has run within that interval plus its tick: a loop stuck on a lock
// stops the pings and systemd restarts the service. Before the loop starts
// (restore at start, bounded by TimeoutStartSec) it pings unconditionally.
func watchdog(ctx context.Context, d *daemon.Daemon, interval time.Duration, ping func()) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		ping()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			last := d.LoopAt()
			if last.IsZero() || time.Since(last) < interval/2+d.TickInterval() {
				break
			}
		}
	}
}
