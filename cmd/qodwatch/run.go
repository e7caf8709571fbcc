package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/daemon"
)

// cmdRun is the daemon: SIGHUP reloads, SIGINT/SIGTERM stop cleanly.
func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config.file", "qodwatch.yaml", "configuration file")
	stateDir := fs.String("state.dir", "", "override state_dir of the config")
	webListen := fs.String("web.listen-address", "", "override web.listen of the config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigError(stderr, *file, err)
		return 2
	}
	if *stateDir != "" {
		abs, err := filepath.Abs(*stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "qodwatch: --state.dir: %v\n", err)
			return 2
		}
		cfg.StateDir = abs
	}
	if *webListen != "" {
		cfg.Web.Listen = *webListen
	}
	log := newLogger(stderr, cfg.Log)
	d, err := daemon.New(daemon.Options{Config: cfg, ConfigFile: *file, Logger: log})
	if err != nil {
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
	if cfg.Web.Listen != "" {
		serve("web", func(ctx context.Context) error { return d.ServeWeb(ctx, cfg.Web.Listen, cfg.Web.ConfigFile) })
		log.Info("web server", "listen", cfg.Web.Listen)
	}
	if cfg.Notifications.Enabled() {
		serve("notifications", func(ctx context.Context) error { return d.ServeNotifications(ctx, cfg.Notifications.Listen) })
		log.Info("notification receiver", "listen", cfg.Notifications.Listen, "public_url", cfg.Notifications.PublicURL)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go func() {
		select {
		case err := <-serveErr:
			log.Error("server failed; stopping", "err", err)
			cancelRun()
		case <-runCtx.Done():
		}
	}()
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
