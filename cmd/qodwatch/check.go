package main

import (
	"errors"
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
		cfg, err := config.Load(file)
		if err != nil {
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintln(stderr, e.Error())
				}
			} else {
				fmt.Fprintf(stderr, "%s: %v\n", file, err)
			}
			code = 2
			continue
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "%s (warning)\n", w.Error())
		}
		fmt.Fprintln(stdout, cfg.Summary())
	}
	return code
}
