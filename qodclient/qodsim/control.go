package qodsim

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The fault switches in text, for `qodwatch simulate --fault` and the
// control endpoint, so users can rehearse outages against the simulator.

// FaultHelp describes the words ParseFaults takes.
const FaultHelp = `latency=DURATION          delay every answer
error-rate=0..1           answer that share of API calls with error-status
fail-next=N               answer the next N API calls with error-status
error-status=CODE         the injected status (default 503; 429, 500, ...)
error-code=CODE           its CAMARA code (camara-v1), e.g. QUOTA_EXCEEDED
retry-after=DURATION      Retry-After on injected 429 and 503
only=OP,OP                inject errors only into these operations (` + "create, get, delete, extend, retrieve-sessions, qos-profile, retrieve-qos-profiles" + `)
drop-create-response      make the session, then drop the answer (outcome unknown)
stuck-requested           camara-v1 sessions stay REQUESTED
refuse-extend             camara-v1 extend answers 409 SESSION_EXTENSION_NOT_ALLOWED
expire-tokens             revoke the access tokens issued so far (401 until renewed)
none                      no faults`

// ParseFaults reads fault words (one per element, each "name" or
// "name=value", also several separated by commas or spaces) into Faults.
func ParseFaults(words []string) (Faults, error) {
	var f Faults
	var items []string
	for _, w := range words {
		// only=a,b keeps its commas; other words may be comma-separated.
		for _, part := range strings.Fields(w) {
			if strings.HasPrefix(part, "only=") {
				items = append(items, part)
				continue
			}
			for _, x := range strings.Split(part, ",") {
				if x != "" {
					items = append(items, x)
				}
			}
		}
	}
	for _, it := range items {
		name, val, hasVal := strings.Cut(it, "=")
		needVal := func() error {
			if !hasVal || val == "" {
				return fmt.Errorf("fault %q needs a value (%s=...)", name, name)
			}
			return nil
		}
		var err error
		switch name {
		case "none":
			f = Faults{}
		case "latency", "retry-after":
			if err = needVal(); err == nil {
				var d time.Duration
				if d, err = time.ParseDuration(val); err == nil && d < 0 {
					err = errors.New("negative")
				}
				if name == "latency" {
					f.Latency = d
				} else {
					f.RetryAfter = d
				}
			}
		case "error-rate":
			if err = needVal(); err == nil {
				f.ErrorRate, err = strconv.ParseFloat(val, 64)
				if err == nil && (f.ErrorRate < 0 || f.ErrorRate > 1) {
					err = errors.New("not within 0..1")
				}
			}
		case "fail-next":
			if err = needVal(); err == nil {
				f.FailNext, err = strconv.Atoi(val)
				if err == nil && f.FailNext < 0 {
					err = errors.New("negative")
				}
			}
		case "error-status":
			if err = needVal(); err == nil {
				f.ErrorStatus, err = strconv.Atoi(val)
				if err == nil && (f.ErrorStatus < 400 || f.ErrorStatus > 599) {
					err = errors.New("not a 4xx or 5xx status")
				}
			}
		case "error-code":
			if err = needVal(); err == nil {
				f.ErrorCode = val
			}
		case "only":
			if err = needVal(); err == nil {
				f.Only = nil
				for _, op := range strings.Split(val, ",") {
					if !slices.Contains(Operations(), op) {
						err = fmt.Errorf("unknown operation %q (want %s)", op, strings.Join(Operations(), ", "))
						break
					}
					f.Only = append(f.Only, op)
				}
			}
		case "drop-create-response", "stuck-requested", "refuse-extend", "expire-tokens":
			on := true
			if hasVal {
				on, err = strconv.ParseBool(val)
			}
			switch name {
			case "drop-create-response":
				f.DropCreateResponse = on
			case "stuck-requested":
				f.StuckRequested = on
			case "refuse-extend":
				f.RefuseExtend = on
			default:
				f.ExpireTokens = on
			}
		default:
			return Faults{}, fmt.Errorf("unknown fault %q; the faults are:\n%s", name, FaultHelp)
		}
		if err != nil {
			return Faults{}, fmt.Errorf("fault %s: %q: %w", name, val, err)
		}
	}
	return f, nil
}

// Faults returns the faults in effect.
func (s *Simulator) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	f.Only = slices.Clone(f.Only)
	return f
}

// String shows the faults as ParseFaults reads them.
func (f Faults) String() string {
	var w []string
	add := func(on bool, s string) {
		if on {
			w = append(w, s)
		}
	}
	add(f.Latency > 0, "latency="+f.Latency.String())
	add(f.ErrorRate > 0, "error-rate="+strconv.FormatFloat(f.ErrorRate, 'g', -1, 64))
	add(f.FailNext > 0, "fail-next="+strconv.Itoa(f.FailNext))
	add(f.ErrorStatus != 0, "error-status="+strconv.Itoa(f.ErrorStatus))
	add(f.ErrorCode != "", "error-code="+f.ErrorCode)
	add(f.RetryAfter > 0, "retry-after="+f.RetryAfter.String())
	add(len(f.Only) > 0, "only="+strings.Join(f.Only, ","))
	add(f.DropCreateResponse, "drop-create-response")
	add(f.StuckRequested, "stuck-requested")
	add(f.RefuseExtend, "refuse-extend")
	add(f.ExpireTokens, "expire-tokens")
	if len(w) == 0 {
		return "none"
	}
	return strings.Join(w, " ")
}

// ControlPath is where Options.Control serves the fault switches:
//
//	GET  /-/faults                      the faults in effect
//	PUT  /-/faults                      body: fault words (see FaultHelp); replaces them
//	POST /-/sessions/{id}/terminate     the network ends the session
//
// They need no auth: the control endpoint is for a simulator on loopback.
const ControlPath = "/-/"

func (s *Simulator) serveControl(r *http.Request, body []byte) *reply {
	text := func(status int, msg string) *reply {
		h := http.Header{}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		return &reply{status: status, header: h, body: []byte(msg + "\n")}
	}
	p := r.URL.Path
	switch {
	case p == "/-/faults" && r.Method == http.MethodGet:
		return text(http.StatusOK, s.Faults().String())
	case p == "/-/faults" && r.Method == http.MethodPut:
		f, err := ParseFaults([]string{string(body)})
		if err != nil {
			return text(http.StatusBadRequest, err.Error())
		}
		s.SetFaults(f)
		s.log.Warn("qodsim faults set", "faults", f.String())
		return text(http.StatusOK, f.String())
	case strings.HasPrefix(p, "/-/sessions/") && strings.HasSuffix(p, "/terminate") && r.Method == http.MethodPost:
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/-/sessions/"), "/terminate")
		if err := s.Terminate(id); err != nil {
			return text(http.StatusNotFound, err.Error())
		}
		return text(http.StatusOK, "terminated "+id)
	}
	return text(http.StatusNotFound, "control: GET or PUT /-/faults, POST /-/sessions/{id}/terminate")
}
