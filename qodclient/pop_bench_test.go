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
// BenchmarkPoPToken also times the floor itself, interleaved with the PoP
// tokens, and reports floor-ratio (PoP ns/op divided by floor-ns/op).

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
	build := func() {
		if _, err := NewPoPToken(key, benchItems, now); err != nil {
			b.Fatal(err)
		}
	}
	// Each iteration times one PoP token and one bare signature, in
	// alternating order, so that load from other processes hits both alike.
	var pop, floor time.Duration
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if i%2 == 0 {
			build()
			t1 := time.Now()
			signFloor(key)
			pop, floor = pop+t1.Sub(t0), floor+time.Since(t1)
		} else {
			signFloor(key)
			t1 := time.Now()
			build()
			floor, pop = floor+t1.Sub(t0), pop+time.Since(t1)
		}
		i++
	}
	popNs := float64(pop.Nanoseconds()) / float64(i)
	floorNs := float64(floor.Nanoseconds()) / float64(i)
	b.ReportMetric(popNs, "ns/op") // the PoP token alone, replacing the pair's time
	b.ReportMetric(floorNs, "floor-ns/op")
	b.ReportMetric(popNs/floorNs, "floor-ratio")
}
