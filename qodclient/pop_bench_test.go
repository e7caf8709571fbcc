package qodclient

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
	"time"
)

// The PoP goal is to cost no more than 1.1x a bare RSA signature with the
// same 2048-bit key. Run both:
//
//	go test -run=^$ -bench=. -benchtime=2s ./qodclient
//
// BenchmarkPoPToken also times the floor itself around its loop and reports
// floor-ratio (PoP ns/op divided by bare-signature ns/op).

var benchItems = []PoPItem{
	{"Content-Type", "application/json"},
	{"Authorization", "Bearer 0123456789abcdef0123456789abcdef"},
	{"uri", "/qod/v1/sessions"},
	{"http-method", "POST"},
	{"body", `{"ueId":{"msisdn":"+15551230007","ipv4addr":"10.44.0.7"},"asId":{"ipv4addr":"203.0.113.10"},"qos":"QOS_E","duration":600}`},
}

func signFloor(key *rsa.PrivateKey) {
	digest := sha256.Sum256([]byte("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDB9"))
	if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
		panic(err)
	}
}

func BenchmarkRSASignFloor(b *testing.B) {
	key := testKey()
	b.ReportAllocs()
	for b.Loop() {
		signFloor(key)
	}
}

func BenchmarkPoPToken(b *testing.B) {
	key := testKey()
	now := time.Unix(1700000000, 0)
	// The floor, timed in this same run just before and after the loop
	// (testing.Benchmark cannot nest), for the ratio.
	floor := timeFloor(key, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPoPToken(key, benchItems, now); err != nil {
			b.Fatal(err)
		}
	}
	popNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	floor = (floor + timeFloor(key, 100)) / 2
	b.ReportMetric(floor, "floor-ns/op")
	b.ReportMetric(popNs/floor, "floor-ratio")
}

// timeFloor returns the mean ns of n bare signatures.
func timeFloor(key *rsa.PrivateKey, n int) float64 {
	start := time.Now()
	for range n {
		signFloor(key)
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}
