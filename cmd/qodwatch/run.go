package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

// cmdRun is the daemon: SIGHUP (and POST /-/reload with
// --web.enable-lifecycle) reloads, SIGINT/SIGTERM stop cleanly.
func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config.file", "qodwatch.yaml", "configuration file")
	stateDir := fs.String("state.dir", "", "override state_dir of the config")
	webListen := fs.String("web.listen-address", "", "override web.listen of the config")
	webMaxConns := fs.Int("web.max-connections", daemon.DefaultWebLimits().MaxConnections, "connections the web server serves at once; more wait")
	lifecycle := fs.Bool("web.enable-lifecycle", false, "serve POST /-/reload (SIGHUP reloads in any case)")
	enablePprof := fs.Bool("web.enable-pprof", false, "serve Go's CPU and memory profiles at /debug/pprof/ (they show the UEs' names)")
	notifyMaxConns := fs.Int("notifications.max-connections", daemon.DefaultNotifyLimits().MaxConnections, "connections the notification receiver serves at once; more wait")
	shardCount := fs.Int("shard.count", 1, "processes the fleet is split across (hashmod of the UE name, as Prometheus shards scrapes)")
	shardIndex := fs.Int("shard.index", -1, "this process's shard, 0..count-1 (default: the StatefulSet ordinal at the end of the hostname)")
	handoverFor := fs.Duration("shard.handover", daemon.DefaultHandover, "after a reshard, how long a gained UE counts as possibly holding its previous shard's session")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	shard, err := shardOf(*shardCount, *shardIndex)
	if err != nil {
		fmt.Fprintf(stderr, "qodwatch: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigError(stderr, *file, err)
		return 2
	}
	// The flags override the file, at start and at every reload alike.
	adjust := func(c *config.Config) error {
		if *stateDir != "" {
			abs, err := filepath.Abs(*stateDir)
			if err != nil {
				return fmt.Errorf("--state.dir: %w", err)
			}
			c.StateDir = abs
		}
		if *webListen != "" {
			c.Web.Listen = *webListen
		}
		return nil
	}
	if err := adjust(cfg); err != nil {
		fmt.Fprintf(stderr, "qodwatch: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.Log)
	// New takes the state directory's lock first: a second daemon on it
	// stops here, naming the holder, before it touches any session.
	d, err := daemon.New(daemon.Options{Config: cfg, ConfigFile: *file, Logger: log, Adjust: adjust,
		WebLimits:    daemon.ServerLimits{MaxConnections: *webMaxConns},
		NotifyLimits: daemon.ServerLimits{MaxConnections: *notifyMaxConns}, EnableLifecycle: *lifecycle, EnablePprof: *enablePprof,
		Shard: shard, Handover: *handoverFor})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	// Everything that can still fail at the start fails here, before Run
	// adopts the stored sessions: a daemon that cannot start must not end
	// sessions it did not open (release_on_shutdown).
	webLn, notifyLn, err := listenAll(cfg)
	if err != nil {
		d.Close()
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = d.Reload() // logged; a refused config keeps the old one
			}
		}
	}()

	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	serve := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				serveErr <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if webLn != nil {
		serve("web", func(ctx context.Context) error { return d.ServeWebOn(ctx, webLn, cfg.Web.ConfigFile) })
		log.Info("web server", "listen", cfg.Web.Listen)
	}
	if notifyLn != nil {
		serve("notifications", func(ctx context.Context) error { return d.ServeNotificationsOn(ctx, notifyLn) })
		log.Info("notification receiver", "listen", cfg.Notifications.Listen, "public_url", cfg.Notifications.PublicURL)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go func() {
		select {
		case err := <-serveErr:
			log.Error("server failed; stopping", "err", err)
			d.Abort(err)
			cancelRun()
		case <-runCtx.Done():
		}
	}()
	supervised(runCtx, d, log)
	err = d.Run(runCtx)
	stop()
	wg.Wait()
	if err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// listenAll validates the web config file and binds the web and
// notification addresses; nil listeners for servers not configured.
func listenAll(cfg *config.Config) (web, notify net.Listener, err error) {
	if cfg.Web.Listen != "" {
		if err := daemon.ValidateWebConfig(cfg.Web.ConfigFile); err != nil {
			return nil, nil, err
		}
		if web, err = daemon.Listen(cfg.Web.Listen); err != nil {
			return nil, nil, fmt.Errorf("web.listen: %w", err)
		}
	}
	if cfg.Notifications.Enabled() {
		if notify, err = daemon.Listen(cfg.Notifications.Listen); err != nil {
			if web != nil {
				web.Close()
			}
			return nil, nil, fmt.Errorf("notifications.listen: %w", err)
		}
	}
	return web, notify, nil
}

func printConfigError(w io.Writer, file string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", file, err)
}

// shardOf is the shard the flags name; an index of -1 is taken from the
// hostname, as a StatefulSet's pod has it.
func shardOf(count, index int) (config.Shard, error) {
	if count == 1 && index <= 0 {
		return config.Shard{}, nil
	}
	if index == -1 && count > 1 {
		n, err := config.OrdinalFromHostname()
		if err != nil {
			return config.Shard{}, fmt.Errorf("--shard.index: %w", err)
		}
		index = n
	}
	s := config.Shard{Count: count, Index: index}
	if err := s.Validate(); err != nil {
		return config.Shard{}, fmt.Errorf("--shard.count/--shard.index: %w", err)
	}
	return s, nil
}
