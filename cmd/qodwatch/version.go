package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionText is what `qodwatch version` prints: the module version and
// the commit the binary was built from, as the go command stamped them
// (issue 9: "qodwatch devel" told an operator nothing). A binary built
// without VCS information (-buildvcs=false, GOFLAGS=-buildvcs=false, or
// outside a git checkout) says so instead of leaving the lines out.
func versionText(bi *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	if !ok {
		fmt.Fprintf(&b, "qodwatch, version unknown (no build information in the binary)\n")
		fmt.Fprintf(&b, "  go version:  %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(&b, "qodwatch, version %s\n", version)
	if rev, ok := settings["vcs.revision"]; ok {
		fmt.Fprintf(&b, "  revision:    %s\n", rev)
		fmt.Fprintf(&b, "  modified:    %s\n", orUnknown(settings["vcs.modified"]))
		fmt.Fprintf(&b, "  commit time: %s\n", orUnknown(settings["vcs.time"]))
	} else {
		fmt.Fprintf(&b, "  revision:    unknown: built without VCS information (-buildvcs=false, or not in a git checkout)\n")
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, "  go version:  %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
