package qodsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	f, err := ParseFaults([]string{"latency=150ms,error-rate=0.25", "error-status=429 error-code=QUOTA_EXCEEDED", "only=create,extend", "drop-create-response", "refuse-extend=false"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Latency != 150*time.Millisecond || f.ErrorRate != 0.25 || f.ErrorStatus != 429 || f.ErrorCode != "QUOTA_EXCEEDED" ||
		strings.Join(f.Only, ",") != "create,extend" || !f.DropCreateResponse || f.RefuseExtend {
		t.Fatalf("parsed %+v", f)
	}
	if again, err := ParseFaults([]string{f.String()}); err != nil || again.String() != f.String() {
		t.Fatalf("String does not read back: %q -> %+v, %v", f.String(), again, err)
	}
	for _, bad := range []string{"error-rate=2", "error-status=200", "latency", "only=teleport", "flood", "fail-next=-1"} {
		if _, err := ParseFaults([]string{bad}); err == nil {
			t.Errorf("ParseFaults(%q) accepted", bad)
		}
	}
}

// The control endpoint switches faults on a running simulator and ends
// sessions from the network side.
func TestControlEndpoint(t *testing.T) {
	srv := startServer(t, Options{Dialect: DialectCAMARAv1, Control: true, Faults: Faults{StuckRequested: true}})
	root := strings.TrimSuffix(srv.URL, DefaultV1BasePath)
	if a := call(t, http.MethodGet, root+"/-/faults", "", nil); a.status != 200 || strings.TrimSpace(string(a.body)) != "stuck-requested" {
		t.Fatalf("GET /-/faults: %d %q", a.status, a.body)
	}
	if a := call(t, http.MethodPut, root+"/-/faults", "fail-next=1 error-status=429 error-code=QUOTA_EXCEEDED", nil); a.status != 200 {
		t.Fatalf("PUT /-/faults: %d %q", a.status, a.body)
	}
	v1Code(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody("", "")), 429, "QUOTA_EXCEEDED")
	info := v1Info(t, v1Call(t, http.MethodPost, srv.URL+"/sessions", v1CreateBody("", "")), http.StatusCreated)
	if a := call(t, http.MethodPost, root+"/-/sessions/"+info.SessionID+"/terminate", "", nil); a.status != 200 {
		t.Fatalf("terminate: %d %q", a.status, a.body)
	}
	if got := v1Info(t, v1Call(t, http.MethodGet, srv.URL+"/sessions/"+info.SessionID, ""), 200); got.StatusInfo != InfoNetworkTerminated {
		t.Fatalf("after terminate: %+v", got)
	}
	if a := call(t, http.MethodPut, root+"/-/faults", "flood", nil); a.status != 400 {
		t.Fatalf("bad fault word: %d", a.status)
	}
	// Off by default.
	plain := startServer(t, Options{})
	if a := call(t, http.MethodGet, strings.TrimSuffix(plain.URL, DefaultBasePath)+"/-/faults", "", nil); a.status != 404 {
		t.Fatalf("control endpoint without Control: %d", a.status)
	}
}
