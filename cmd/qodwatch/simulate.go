package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

// cmdSimulate serves the QoD simulator until SIGINT or SIGTERM.
func cmdSimulate(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9091", "address to serve the API on")
	dialect := fs.String("dialect", qodsim.DialectDevEdge, "the API to speak: devedge (DevEdge QoD v1.1.2) or camara-v1 (CAMARA QualityOnDemand v1.1.0)")
	basePath := fs.String("base-path", "", "path prefix of the API (default /qod/v1, or /quality-on-demand/v1 for camara-v1)")
	availableDelay := fs.Duration("available-delay", 0, "camara-v1: how long a session stays REQUESTED before it becomes AVAILABLE")
	var faults faultFlags
	fs.Var(&faults, "fault", "inject a fault from the start (repeatable; e.g. --fault error-rate=0.2 --fault error-status=429); one of:\n"+qodsim.FaultHelp)
	control := fs.Bool("control", false, "serve the fault switches at /-/faults (GET, PUT fault words) and POST /-/sessions/{id}/terminate, without auth")
	tokenFile := fs.String("bearer-token-file", "", "require this bearer token (read from the file) on every call")
	notifyAuth := fs.String("notify-auth", qodsim.NotifyAPIKey, "how notifications carry their token: apikey or bearer")
	verbose := fs.Bool("verbose", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f, err := qodsim.ParseFaults(faults)
	if err != nil {
		fmt.Fprintf(stderr, "qodwatch simulate: %v\n", err)
		return 2
	}
	opts := qodsim.Options{Dialect: *dialect, BasePath: *basePath, NotifyAuth: *notifyAuth, AvailableDelay: *availableDelay,
		Faults: f, Control: *control}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "qodwatch simulate: bearer token: %v\n", err)
			return 1
		}
		opts.BearerToken = strings.TrimSpace(string(b))
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	shownBase := *basePath
	if shownBase == "" {
		shownBase = qodsim.DefaultBasePath
		if *dialect == qodsim.DialectCAMARAv1 {
			shownBase = qodsim.DefaultV1BasePath
		}
	}
	fmt.Fprintf(stderr, "QoD simulator (%s): http://%s%s/sessions\n", *dialect, *listen, shownBase)
	if f.String() != "none" {
		fmt.Fprintf(stderr, "faults: %s\n", f)
	}
	if *control {
		fmt.Fprintf(stderr, "fault switches: curl -X PUT --data 'error-rate=0.5' http://%s/-/faults\n", *listen)
	}
	if err := qodsim.Run(ctx, *listen, opts); err != nil {
		fmt.Fprintf(stderr, "qodwatch simulate: %v\n", err)
		return 1
	}
	return 0
}

// faultFlags collects repeated --fault flags.
type faultFlags []string

func (f *faultFlags) String() string { return strings.Join(*f, " ") }

func (f *faultFlags) Set(v string) error {
	if _, err := qodsim.ParseFaults([]string{v}); err != nil {
		return err
	}
	*f = append(*f, v)
	return nil
}
