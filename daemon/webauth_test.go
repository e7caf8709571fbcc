package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qodwatch/qodwatch/daemon"
)

// probeUserHash is bcrypt("probe-s3cret"), cost 4.
const probeUserHash = "$2a$04$GhqzhsM.q7d07DgqF4hd2uQikUMmVbFe6KiqX2pzfQCAn8kUzZo0W"

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qodwatch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With basic auth in web.config_file, /-/healthy and /-/ready answer
// without credentials (Kubernetes' and systemd's probes carry none);
// everything else asks for them, and TLS stays on for all (issue 9).
func TestWebConfigLeavesProbesOpen(t *testing.T) {
	t.Parallel()
	for _, withTLS := range []bool{true, false} {
		name := "basic auth"
		if withTLS {
			name += " and TLS"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			webConfig := "basic_auth_users:\n  prober: " + probeUserHash + "\n"
			scheme, client := "http", &http.Client{Timeout: 10 * time.Second}
			if withTLS {
				cert, key, pool := selfSigned(t, dir)
				webConfig += "tls_server_config:\n  cert_file: " + cert + "\n  key_file: " + key + "\n"
				scheme = "https"
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			}
			file := filepath.Join(dir, "web.yaml")
			if err := os.WriteFile(file, []byte(webConfig), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := daemon.ValidateWebConfig(file); err != nil {
				t.Fatal(err)
			}
			d := serverDaemon(t, daemon.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
			addr := startServer(t, func(ctx context.Context, ln net.Listener) error { return d.ServeWebOn(ctx, ln, file) })
			get := func(path string, auth bool) int {
				t.Helper()
				req, err := http.NewRequest(http.MethodGet, scheme+"://"+addr+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if auth {
					req.SetBasicAuth("prober", "probe-s3cret")
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				resp.Body.Close()
				if withTLS && resp.TLS == nil {
					t.Errorf("GET %s answered without TLS", path)
				}
				return resp.StatusCode
			}
			if code := get("/-/healthy", false); code != http.StatusOK {
				t.Errorf("/-/healthy without credentials: %d, want 200", code)
			}
			deadline := time.Now().Add(10 * time.Second)
			for code := get("/-/ready", false); code != http.StatusOK; code = get("/-/ready", false) {
				if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("/-/ready without credentials: %d, want 200 (503 while restoring)", code)
				}
			}
			for _, path := range []string{"/metrics", "/", "/status.json", "//-/ready", "/-/ready/../metrics"} {
				if code := get(path, false); code != http.StatusUnauthorized {
					t.Errorf("%s without credentials: %d, want 401", path, code)
				}
			}
			if code := get("/metrics", true); code != http.StatusOK {
				t.Errorf("/metrics with credentials: %d, want 200", code)
			}
		})
	}
}
