package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/qodwatch/qodwatch/config"
)

// cmdCheck validates config files like `promtool check config`: a summary
// and exit 0, or every problem as file:line:col and exit 2.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: qodwatch check FILE...") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, file := range fs.Args() {
		if err := config.Check(stdout, stderr, file); err != nil {
			code = 2
		}
	}
	return code
}
