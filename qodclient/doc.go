// Package qodclient speaks the Quality on Demand (QoD) sessions API: create,
// read and delete QoS sessions, as T-Mobile DevEdge QoD v1.1.2 (the CAMARA
// v0.8.1 body) and CAMARA QualityOnDemand v0.8.1 and v1 define it.
//
//	c, err := qodclient.New(qodclient.Config{BaseURL: "https://host/qod/v1", Auth: auth})
//	s, err := c.Create(ctx, qodclient.CreateSessionRequest{...})
//	err = c.Delete(ctx, s.ID) // already gone (404) counts as done
//
// # Requests
//
// Every request carries Content-Type: application/json, the Auth's
// credentials (for TAAP an access token plus a per-request PoP token in
// X-Authorization) and an x-transaction-id (CAMARA v1 also gets it as
// x-correlator). The id is random, or the caller's via WithTransactionID; all
// attempts of one call share it, and it is in every error (TransactionIDOf)
// and in the debug log line of each attempt.
//
// # Errors
//
// A non-success answer is an *APIError whatever its body shape (DevEdge
// {reasonCode, systemMessage, userMessage}, CAMARA {code, message} or
// {status, code, message}, or anything else), matching one category with
// errors.Is: ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
// ErrRateLimited, ErrUnavailable, ErrServer, ErrInvalid; a CAMARA v1.1 code
// also matches its own sentinel (ErrDurationOutOfRange, ErrInvalidSink,
// ErrProfileNotApplicable, ErrExtensionNotAllowed, ErrQuotaExceeded,
// ErrServiceNotApplicable, ErrDeviceIdentifier). A success answer
// that cannot be read (not JSON, no id, over 1 MiB) is an *APIError wrapping
// ErrMalformedResponse. Bodies are read up to 1 MiB.
//
// # CAMARA v1
//
// The camara-v1 dialect also has Extend (POST /sessions/{id}/extend),
// RetrieveSessions (POST /retrieve-sessions: how a lost create is found) and
// QoSProfile (GET {ProfilesURL}/qos-profiles/{name}); the other dialects
// answer them with ErrUnsupported. A v1 session starts REQUESTED (no times)
// and becomes AVAILABLE; SessionInfo.QoSStatus and StatusInfo say where it
// is. The device is sent without networkAccessIdentifier unless
// Config.SendNetworkAccessIdentifier, and with the private address or
// public port of UeID for a device behind NAT. Every debug line carries
// x_correlator.
//
// # Retries
//
// GET and DELETE are retried on network errors, per-attempt timeouts and 429,
// 502, 503 and 504, up to RetryPolicy.MaxAttempts, waiting a capped
// exponential backoff with jitter or the server's Retry-After (seconds or an
// HTTP date), and never past the context's deadline. A Retry-After longer
// than RetryPolicy.MaxDelay is returned to the caller rather than waited for.
// After a 401 the Auth is told to drop its token and the call is repeated
// once, for every method: a 401 means the server did nothing.
//
// # Creating a session is never repeated blindly
//
// A session costs money and a UE can have only one, so POST /sessions is sent
// again only when the server provably did not act on it:
//   - no connection was ever obtained (dial, TLS or proxy failure), or the
//     Auth failed before sending;
//   - the server answered 429 or 503 (it declined), or 401 (see above).
//
// Every other failure after a connection was obtained — a timeout, a reset or
// closed connection, a cancelled context, a gateway's 502 or 504, or a 2xx
// answer that cannot be read — returns an *UnknownOutcomeError
// (errors.Is(err, ErrUnknownOutcome)) carrying the transaction id. The session
// may exist: the caller must reconcile (look it up, or expect 409 CONFLICT on
// the next create for that UE) instead of creating a second one. Any other
// answer (400, 403, 409, 500, ...) is the server's word that nothing was
// created and is returned as an *APIError without retry.
//
// # Times
//
// startedAt and expiresAt are Unix seconds in v0.8.1/DevEdge and RFC 3339 in
// CAMARA v1; both (and Unix milliseconds) are accepted in every dialect.
package qodclient
