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
	basePath := fs.String("base-path", qodsim.DefaultBasePath, "path prefix of the API")
	tokenFile := fs.String("bearer-token-file", "", "require this bearer token (read from the file) on every call")
	notifyAuth := fs.String("notify-auth", qodsim.NotifyAPIKey, "how notifications carry their token: apikey or bearer")
	verbose := fs.Bool("verbose", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := qodsim.Options{BasePath: *basePath, NotifyAuth: *notifyAuth}
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
	fmt.Fprintf(stderr, "QoD simulator: http://%s%s/sessions\n", *listen, *basePath)
	if err := qodsim.Run(ctx, *listen, opts); err != nil {
		fmt.Fprintf(stderr, "qodwatch simulate: %v\n", err)
		return 1
	}
	return 0
}
