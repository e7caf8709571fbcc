// Command qodwatch watches network quality per UE and buys a QoD session only
// when it is needed.
//
//	qodwatch run --config.file FILE     the daemon
//	qodwatch check FILE...              validate configs
//	qodwatch demo                       the whole job against the built-in simulator
//	qodwatch simulate --listen ADDR     a QoD API simulator
//	qodwatch sessions list|get|create|end
//	qodwatch version
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/qodwatch/qodwatch/config"
)

const usage = `usage: qodwatch COMMAND [flags]

commands:
  run --config.file FILE      run the daemon
  check FILE...               validate config files (exit 0: valid, 2: problems)
  demo                        watch a scripted degradation buy and end a session (built-in simulator)
  simulate --listen ADDR      serve a QoD API simulator (DevEdge v1.1.2 contract)
  sessions list|get|create|end --config.file FILE
                              operator tools sharing the daemon's state file
  version                     print the version and the commit it was built from

Run 'qodwatch COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "demo":
		return cmdDemo(rest, stdout, stderr)
	case "simulate":
		return cmdSimulate(rest, stderr)
	case "sessions":
		return cmdSessions(rest, stdout, stderr)
	case "version", "--version", "-version":
		bi, ok := debug.ReadBuildInfo()
		fmt.Fprint(stdout, versionText(bi, ok))
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "qodwatch: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// newLogger builds the configured slog logger.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
