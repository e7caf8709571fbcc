package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSimulateRefusesUnknownFault(t *testing.T) {
	var stderr bytes.Buffer
	if code := cmdSimulate([]string{"--dialect", "camara-v1", "--fault", "error-rate=0.2", "--fault", "flood"}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `unknown fault "flood"`) || !strings.Contains(stderr.String(), "drop-create-response") {
		t.Fatalf("stderr lacks the fault list:\n%s", stderr.String())
	}
}
