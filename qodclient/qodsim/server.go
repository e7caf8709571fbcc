package qodsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// sweepInterval is how often servers end due sessions on their own.
const sweepInterval = 250 * time.Millisecond

// Server is a Simulator listening on a loopback port, like
// httptest.Server.
type Server struct {
	*Simulator
	// URL is the API base, e.g. http://127.0.0.1:41234/qod/v1.
	URL string
	// TokenURL is the TAAP token endpoint (set even when TAAP is off).
	TokenURL string
	// OAuth2TokenURL is the OAuth 2.0 token endpoint (set even when off).
	OAuth2TokenURL string
	// ProfilesURL is the QoS Profiles API base of a CAMARA v1 simulator,
	// e.g. http://127.0.0.1:41234/qos-profiles/v1 (set in every dialect).
	ProfilesURL string

	http *http.Server
	done chan struct{}
}

// NewServer starts a Simulator on 127.0.0.1 at a free port, with a
// background sweeper ending due sessions. It panics if opts are invalid or
// no port can be had, like httptest.NewServer. Call Close when done.
func NewServer(opts Options) *Server {
	sim := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("qodsim: listen on a loopback port: %v", err))
	}
	srv := &Server{
		Simulator:      sim,
		URL:            "http://" + ln.Addr().String() + sim.opts.BasePath,
		TokenURL:       "http://" + ln.Addr().String() + DefaultTokenPath,
		OAuth2TokenURL: "http://" + ln.Addr().String() + OAuth2TokenPath,
		ProfilesURL:    "http://" + ln.Addr().String() + sim.opts.ProfilesBasePath,
		http:           &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		done:           make(chan struct{}),
	}
	sim.startSweeper(sweepInterval)
	go func() {
		defer close(srv.done)
		_ = srv.http.Serve(ln) // returns ErrServerClosed on Close
	}()
	return srv
}

// Close stops the server: connections are closed, requests in flight and
// notification deliveries are cut short and waited for.
func (s *Server) Close() {
	_ = s.http.Close()
	<-s.done
	s.Simulator.Close()
}

// Run serves the simulator on addr until ctx is done, for `qodwatch
// simulate --listen ADDR`. It returns nil after a clean shutdown.
func Run(ctx context.Context, addr string, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("qodsim: listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, opts)
}

// Serve is Run on a listener the caller opened; it closes ln.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	sim, err := newSimulator(opts)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer sim.Close()
	sim.startSweeper(sweepInterval)
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	tokenURL := ""
	switch {
	case sim.opts.TAAP != nil:
		tokenURL = base + DefaultTokenPath
	case sim.opts.OAuth2 != nil:
		tokenURL = base + OAuth2TokenPath
	}
	sim.log.Info("qodsim listening", "dialect", sim.opts.Dialect, "url", base+sim.opts.BasePath, "token_url", tokenURL,
		"auth", authMode(sim.opts), "notify_auth", sim.opts.NotifyAuth)

	select {
	case err := <-errc:
		return fmt.Errorf("qodsim: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("qodsim: serve: %w", err)
	}
	return nil
}

func authMode(o Options) string {
	switch {
	case o.TAAP != nil:
		return "taap"
	case o.OAuth2 != nil:
		return "oauth2"
	case o.BearerToken != "":
		return "bearer"
	}
	return "none"
}
