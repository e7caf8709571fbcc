package qodclient

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// PoPItem is one signed element of a PoP token: a header name as sent with
// its value, or one of the pseudo items "uri", "http-method", "body".
type PoPItem struct {
	Name, Value string
}

// PoPLifetime is how long a PoP token is valid (exp - iat).
const PoPLifetime = 120 * time.Second

// popHeader is the constant JWT header, encoded once.
var popHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))

var b64 = base64.RawURLEncoding

// NewPoPToken builds a TAAP proof-of-possession token: an RS256 JWT whose
// claims are ehts (item names joined by ";"), edts (base64url SHA-256 of the
// item values concatenated in the same order), iat, exp (iat+120), a random
// jti and v "1".
//
// The claims are written by hand rather than with encoding/json: the names
// are restricted to characters that need no escaping and the other values
// are digits, base64url and hex, so the output is valid JSON by construction.
// All the time goes into the RSA signature (see BenchmarkPoPToken).
func NewPoPToken(key *rsa.PrivateKey, items []PoPItem, now time.Time) (string, error) {
	if key == nil {
		return "", errors.New("pop token: no private key")
	}
	if len(items) == 0 {
		return "", errors.New("pop token: no items to sign")
	}
	h := sha256.New()
	namesLen := 0
	for _, it := range items {
		if err := checkPoPName(it.Name); err != nil {
			return "", err
		}
		namesLen += len(it.Name) + 1
		io.WriteString(h, it.Value)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])

	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)

	iat := now.Unix()
	claims := make([]byte, 0, 128+namesLen)
	claims = append(claims, `{"iat":`...)
	claims = strconv.AppendInt(claims, iat, 10)
	claims = append(claims, `,"exp":`...)
	claims = strconv.AppendInt(claims, iat+int64(PoPLifetime/time.Second), 10)
	claims = append(claims, `,"ehts":"`...)
	for i, it := range items {
		if i > 0 {
			claims = append(claims, ';')
		}
		claims = append(claims, it.Name...)
	}
	claims = append(claims, `","edts":"`...)
	claims = b64.AppendEncode(claims, sum[:])
	claims = append(claims, `","jti":"`...)
	claims = hex.AppendEncode(claims, jti[:])
	claims = append(claims, `","v":"1"}`...)

	sigLen := key.Size()
	tok := make([]byte, 0, len(popHeader)+2+b64.EncodedLen(len(claims))+b64.EncodedLen(sigLen))
	tok = append(tok, popHeader...)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, claims)
	digest := sha256.Sum256(tok)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("pop token: sign: %w", err)
	}
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, sig)
	return string(tok), nil
}

// checkPoPName allows visible ASCII except ';' (the ehts separator) and the
// characters JSON would need to escape.
func checkPoPName(name string) error {
	if name == "" {
		return errors.New("pop token: empty item name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ';' || c == '"' || c == '\\' {
			return fmt.Errorf("pop token: item name %q has a character not allowed in ehts", name)
		}
	}
	return nil
}
