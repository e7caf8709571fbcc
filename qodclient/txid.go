package qodclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

type txIDKey struct{}

// NewTransactionID returns a random UUID (version 4) for x-transaction-id.
func NewTransactionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// WithTransactionID makes the calls made with ctx carry id as their
// x-transaction-id, so a caller can record a create's intent under that id
// before sending it. All attempts of one call share the id. The id must match
// ^[a-zA-Z0-9-_:;./<>{}]{1,256}$ (CAMARA's x-correlator), or the call fails
// with ErrInvalid.
func WithTransactionID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, txIDKey{}, id)
}

// transactionID returns the caller's id from ctx, or a new one.
func transactionID(ctx context.Context) (string, error) {
	id, ok := ctx.Value(txIDKey{}).(string)
	if !ok {
		return NewTransactionID(), nil
	}
	if !validTransactionID(id) {
		return "", fmt.Errorf("%w: transaction id %q must match ^[a-zA-Z0-9-_:;./<>{}]{1,256}$", ErrInvalid, truncate(id, 64))
	}
	return id, nil
}

func validTransactionID(id string) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == ':' || c == ';' || c == '.' || c == '/' || c == '<' || c == '>' || c == '{' || c == '}':
		default:
			return false
		}
	}
	return true
}
