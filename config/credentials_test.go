package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// credentialsConfig names every file setting through systemd's
// ${CREDENTIALS_DIRECTORY}, as deploy/systemd/qodwatch.service does.
const credentialsConfig = `
api:
  base_url: https://api.example.com/qod/v1
  auth:
    type: taap
    token_url: https://api.example.com/oauth2/v6/tokens
    client_id: my-app
    client_secret_file: ${CREDENTIALS_DIRECTORY}/client-secret
    private_key_file: ${CREDENTIALS_DIRECTORY}/test-pop-key.pem
notifications:
  public_url: https://qodwatch.example.com/cb
  token_file: ${CREDENTIALS_DIRECTORY}/notify-token
state_dir: state
defaults:
  application_server: {ipv4: 203.0.113.10}
  probes: [{icmp: {}}]
  rule: r
ues: [{name: cam, ipv4: 10.0.0.1}]
rules:
  r:
    breach: {any: ["latency_p95 > 80ms"], for: 20s}
    recover: {all: ["latency_p95 < 50ms"], for: 1m}
    qos: QOS_E
    duration: 10m
`

func TestCredentialsDirectoryExpandedInFileSettings(t *testing.T) {
	creds, err := filepath.Abs("testdata/secrets")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds+"/")
	cfg, err := Parse(filepath.Join(t.TempDir(), "config.yaml"), []byte(credentialsConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.API.Auth.PrivateKeyFile, filepath.Join(creds, "test-pop-key.pem"); got != want {
		t.Errorf("private_key_file = %q, want %q", got, want)
	}
	if s, err := cfg.API.Auth.ClientSecret(); err != nil || s == "" {
		t.Errorf("client secret from the credentials directory: %q, %v", s, err)
	}
	if tok, ok, err := cfg.Notifications.Token(); err != nil || !ok || tok == "" {
		t.Errorf("notification token from the credentials directory: ok=%v, %v", ok, err)
	}
}

func TestCredentialsDirectoryUnsetIsAnErrorPerSetting(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	_, err := Parse(filepath.Join(t.TempDir(), "config.yaml"), []byte(credentialsConfig))
	if err == nil {
		t.Fatal("config loaded without CREDENTIALS_DIRECTORY")
	}
	for _, path := range []string{"api.auth.client_secret_file", "api.auth.private_key_file", "notifications.token_file"} {
		if !strings.Contains(err.Error(), path+": CREDENTIALS_DIRECTORY is not set") {
			t.Errorf("no error at %s naming CREDENTIALS_DIRECTORY in:\n%v", path, err)
		}
	}
}
