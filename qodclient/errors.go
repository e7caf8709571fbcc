package qodclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error categories, for errors.Is. An *APIError matches the category of its
// HTTP status; request validation errors match ErrInvalid.
var (
	ErrUnauthorized      = errors.New("unauthorized")        // 401
	ErrForbidden         = errors.New("forbidden")           // 403
	ErrNotFound          = errors.New("not found")           // 404, 410
	ErrConflict          = errors.New("conflict")            // 409: e.g. the UE already has a session
	ErrRateLimited       = errors.New("rate limited")        // 429
	ErrUnavailable       = errors.New("service unavailable") // 502, 503, 504
	ErrServer            = errors.New("server error")        // 500 and other 5xx
	ErrInvalid           = errors.New("invalid request")     // 400, 422, and failed Validate
	ErrMalformedResponse = errors.New("malformed response")  // a success answer we cannot read

	// ErrUnknownOutcome marks a create that may or may not have made a
	// session; see UnknownOutcomeError.
	ErrUnknownOutcome = errors.New("outcome unknown")

	// ErrUnsupported: the dialect has no such operation (extend,
	// retrieve-sessions and qos-profiles are CAMARA v1's).
	ErrUnsupported = errors.New("not supported by this dialect")
)

// CAMARA QualityOnDemand v1.1 error codes, for errors.Is. An *APIError
// whose code is one of these matches it as well as its status category
// (SESSION_EXTENSION_NOT_ALLOWED is also ErrConflict, QUOTA_EXCEEDED also
// ErrRateLimited). Codes match with or without the QUALITY_ON_DEMAND. prefix,
// since gateways differ.
var (
	ErrDurationOutOfRange   = errors.New("duration out of range")         // 400 QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE
	ErrInvalidSink          = errors.New("invalid sink")                  // 400 INVALID_SINK
	ErrProfileNotApplicable = errors.New("qos profile not applicable")    // 422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE
	ErrExtensionNotAllowed  = errors.New("session extension not allowed") // 409 QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED
	ErrQuotaExceeded        = errors.New("quota exceeded")                // 429 QUOTA_EXCEEDED: not retried
	ErrServiceNotApplicable = errors.New("service not applicable")        // 422 SERVICE_NOT_APPLICABLE
	ErrDeviceIdentifier     = errors.New("device identifier not usable")  // 422 MISSING/UNNECESSARY/UNSUPPORTED_IDENTIFIER, 404 IDENTIFIER_NOT_FOUND
)

// codeCategory is the v1.1 code's sentinel, or nil.
func codeCategory(code string) error {
	switch strings.TrimPrefix(code, "QUALITY_ON_DEMAND.") {
	case "DURATION_OUT_OF_RANGE":
		return ErrDurationOutOfRange
	case "INVALID_SINK":
		return ErrInvalidSink
	case "QOS_PROFILE_NOT_APPLICABLE":
		return ErrProfileNotApplicable
	case "SESSION_EXTENSION_NOT_ALLOWED":
		return ErrExtensionNotAllowed
	case "QUOTA_EXCEEDED":
		return ErrQuotaExceeded
	case "SERVICE_NOT_APPLICABLE":
		return ErrServiceNotApplicable
	case "MISSING_IDENTIFIER", "UNNECESSARY_IDENTIFIER", "UNSUPPORTED_IDENTIFIER", "IDENTIFIER_NOT_FOUND":
		return ErrDeviceIdentifier
	}
	return nil
}

// maxBody caps how much of any response body is read.
const maxBody = 1 << 20

// maxMessage caps the server text kept in an APIError.
const maxMessage = 512

// APIError is an answer from the API that is not a success, or a success
// whose body cannot be read (then Unwrap gives ErrMalformedResponse).
type APIError struct {
	Method        string // e.g. POST
	Path          string // relative to the base URL, e.g. /sessions
	Status        int    // HTTP status
	Code          string // CAMARA code, or DevEdge systemMessage
	ReasonCode    string // DevEdge reasonCode, e.g. ERR-1091
	Message       string // CAMARA message or DevEdge userMessage (capped, sanitised)
	TransactionID string // the x-transaction-id the request carried (and, in CAMARA v1, its x-correlator)
	// RetryAfter is the server's Retry-After, 0 when absent.
	RetryAfter time.Duration
	// Err is the cause when the body was unreadable (wraps ErrMalformedResponse).
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	switch {
	case e.Code != "":
		b.WriteString(" " + e.Code)
	case e.Err == nil:
		if t := http.StatusText(e.Status); t != "" {
			b.WriteString(" " + strings.ToUpper(strings.ReplaceAll(t, " ", "_")))
		}
	}
	if e.ReasonCode != "" {
		b.WriteString(" [" + e.ReasonCode + "]")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.TransactionID != "" {
		b.WriteString(" (transaction id " + e.TransactionID + ")")
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Err }

// Is reports the error's category, taken from the HTTP status, and its
// CAMARA v1.1 code's (see ErrDurationOutOfRange and the others).
func (e *APIError) Is(target error) bool {
	if e.Err != nil || target == nil {
		return false
	}
	return target == category(e.Status) || target == codeCategory(e.Code)
}

func category(status int) error {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound, http.StatusGone:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return ErrUnavailable
	}
	if status >= 500 && status <= 599 {
		return ErrServer
	}
	return nil
}

// UnknownOutcomeError is returned by Create when the request may have reached
// the server but no readable answer came back (timeout, lost connection, a
// gateway's 502/504, an unreadable success body). A session may exist: find
// it again (or wait for the server's 409) before creating another.
type UnknownOutcomeError struct {
	TransactionID string
	Err           error
}

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("create session: outcome unknown, a session may exist (transaction id %s): %v", e.TransactionID, e.Err)
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrUnknownOutcome }

// requestError is a failure without an answer from the server (network,
// timeout, authorisation), tagged with what was being done.
type requestError struct {
	method, path, txID string
	err                error
}

func (e *requestError) Error() string {
	return fmt.Sprintf("%s %s (transaction id %s): %v", e.method, e.path, e.txID, e.err)
}

func (e *requestError) Unwrap() error { return e.err }

// TransactionIDOf returns the x-transaction-id carried by an error from this
// package, or "".
func TransactionIDOf(err error) string {
	var api *APIError
	var unk *UnknownOutcomeError
	var req *requestError
	switch {
	case errors.As(err, &unk):
		return unk.TransactionID
	case errors.As(err, &api):
		return api.TransactionID
	case errors.As(err, &req):
		return req.txID
	}
	return ""
}

// wireError is the union of the DevEdge and CAMARA error bodies.
type wireError struct {
	Code          string `json:"code"`
	Message       string `json:"message"`
	ReasonCode    string `json:"reasonCode"`
	SystemMessage string `json:"systemMessage"`
	UserMessage   string `json:"userMessage"`
	// CAMARA v1 repeats the HTTP status; the status line is what counts.
	Status json.RawMessage `json:"status"`
}

// decodeError turns a non-success answer into an *APIError. It never fails:
// an unreadable body becomes the message, cut short and cleaned.
func decodeError(method, path, txID string, status int, header http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Method: method, Path: path, Status: status, TransactionID: txID}
	if header != nil {
		e.RetryAfter, _ = parseRetryAfter(header.Get("Retry-After"), now)
	}
	var w wireError
	if len(body) > 0 && json.Unmarshal(body, &w) == nil {
		e.Code = cleanText(firstNonEmpty(w.Code, w.SystemMessage), 64)
		e.ReasonCode = cleanText(w.ReasonCode, 64)
		e.Message = cleanText(firstNonEmpty(w.Message, w.UserMessage), maxMessage)
		if e.Code != "" || e.Message != "" || e.ReasonCode != "" {
			return e
		}
	}
	// Not one of the known shapes: a proxy's HTML page, plain text, ...
	e.Message = cleanText(string(body), 200)
	return e
}

// cleanText makes server-supplied text safe for one log line: valid UTF-8,
// no control characters, collapsed spaces, at most n bytes.
func cleanText(s string, n int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1 > n {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
