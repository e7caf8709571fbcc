package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qodwatch/qodwatch/config"
	"github.com/qodwatch/qodwatch/qodclient"
)

// notifyTokenFile keeps a generated notification token in the state
// directory: sessions outlive the process, and their notifications must
// still be accepted after a restart; `qodwatch sessions create` hands out
// the same one.
const notifyTokenFile = "notification-token"

// NotificationToken is the token the operator must send with
// notifications: notifications.token if configured, else the one kept in
// state_dir, generated once by whoever needs it first (daemon or CLI).
// ok is false when notifications are off.
func NotificationToken(cfg *config.Config) (token string, ok bool, err error) {
	n := cfg.Notifications
	if !n.Enabled() {
		return "", false, nil
	}
	tok, ok, err := n.Token()
	if err != nil {
		return "", false, fmt.Errorf("notifications.token: %w", err)
	}
	if ok {
		return tok, true, nil
	}
	if cfg.StateDir == "" {
		return randomToken(), true, nil
	}
	path := filepath.Join(cfg.StateDir, notifyTokenFile)
	if tok, ok := readToken(path); ok {
		return tok, true, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return "", false, fmt.Errorf("keep notification token: %w", err)
	}
	// Written aside and linked into place, so that a daemon and a CLI
	// generating one at the same moment end up with the same token.
	tmp, err := os.CreateTemp(cfg.StateDir, ".notification-token-*")
	if err != nil {
		return "", false, fmt.Errorf("keep notification token: %w", err)
	}
	defer os.Remove(tmp.Name())
	tok = randomToken()
	_, werr := tmp.WriteString(tok + "\n")
	serr := tmp.Sync()
	if cerr := tmp.Close(); werr != nil || serr != nil || cerr != nil {
		return "", false, fmt.Errorf("keep notification token: %w", errors.Join(werr, serr, cerr))
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return "", false, fmt.Errorf("keep notification token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", false, fmt.Errorf("keep notification token: %w", err)
	}
	if tok, ok := readToken(path); ok {
		return tok, true, nil
	}
	return "", false, fmt.Errorf("keep notification token: %s is unreadable or too short", path)
}

func readToken(path string) (string, bool) {
	b, err := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	return tok, err == nil && len(tok) >= 16
}

// CreateRequestFor is the POST /sessions body for ue made by the create
// with transaction id txid, as the daemon sends it: with the notification
// URL of that create and the daemon's token, so the notification of a
// session made by hand is tied to its create as the daemon's are.
func CreateRequestFor(cfg *config.Config, ue *config.UE, qos string, seconds int, txid string) (qodclient.CreateSessionRequest, error) {
	tok, ok, err := NotificationToken(cfg)
	if err != nil {
		return qodclient.CreateSessionRequest{}, err
	}
	if !ok {
		return createRequest(ue, qos, seconds, "", ""), nil
	}
	return createRequest(ue, qos, seconds, notifyURLFor(cfg.Notifications.PublicURL, txid), tok), nil
}
