package main

import (
	"bytes"
	"strings"
	"testing"
)

// Flags after the session id count: "sessions end ID --config.file F" must
// read F, not fall back to ./qodwatch.yaml.
func TestSessionsFlagsAfterTheID(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"sessions", "end", "abc", "--config.file", "/nonexistent/q.yaml"}, &out, &errOut)
	if code == 0 {
		t.Fatal("want a failure for a missing config")
	}
	if !strings.Contains(errOut.String(), "/nonexistent/q.yaml") {
		t.Fatalf("the error does not name the given config file:\n%s", errOut.String())
	}
}
