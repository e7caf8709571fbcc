// Package qodsim simulates the T-Mobile DevEdge Quality on Demand API v1.1.2
// (whose bodies are CAMARA QualityOnDemand v0.8.1's) so that qodwatch and
// its users can develop and test without an operator, the way
// net/http/httptest stands in for a web server.
//
// A Simulator is an http.Handler serving
//
//	POST   {BasePath}/sessions
//	GET    {BasePath}/sessions/{id}
//	DELETE {BasePath}/sessions/{id}
//
// and, in TAAP mode, the token endpoint /oauth2/v6/tokens (also reachable as
// /oauth2/v2/tokens). Every API request is checked against the project's own
// OpenAPI description (the embedded OpenAPI variable, also served without
// auth at GET {BasePath}/openapi.yaml) and must carry
// x-transaction-id, which is echoed in the answer; errors use the DevEdge
// body {"reasonCode","systemMessage","userMessage"}.
//
// It behaves like a network: a session ends when its duration runs out, when
// it is deleted, or when the test calls Terminate; a second live session for
// the same device is refused with 409. When a session ends other than by
// DELETE, a SESSION_TERMINATED notification is POSTed to its notificationUrl
// + "/notifications" in the background, with bounded retries.
//
// Auth is one of: none, a static bearer token (Options.BearerToken), TAAP
// (Options.TAAP): an access token from the token endpoint plus a PoP token
// in X-Authorization on every call, verified with the client's public key,
// or plain OAuth 2.0 client credentials (Options.OAuth2, token endpoint
// /oauth2/token) as Open Gateway operators use.
//
// Faults (SetFaults) add latency, inject 5xx/429 answers with Retry-After,
// expire issued tokens, or drop the answer to a create after creating the
// session, which is the ambiguous outcome a careful client must reconcile.
//
// With Options.Dialect DialectCAMARAv1 it speaks CAMARA QualityOnDemand
// v1.1.0 instead, checked against the embedded OpenAPIv1 and
// OpenAPIQoSProfiles (the published r3.2 documents):
//
//	POST   {BasePath}/sessions                      201, qosStatus REQUESTED
//	GET    {BasePath}/sessions/{id}
//	DELETE {BasePath}/sessions/{id}
//	POST   {BasePath}/sessions/{id}/extend          capped at the profile's maxDuration
//	POST   {BasePath}/retrieve-sessions             the device's sessions, [] if none
//	GET    {ProfilesBasePath}/qos-profiles/{name}
//	POST   {ProfilesBasePath}/retrieve-qos-profiles
//
// A session becomes AVAILABLE Options.AvailableDelay after its create
// (never with Faults.StuckRequested); each status change is a CloudEvent
// (type org.camaraproject.quality-on-demand.v1.qos-status-changed,
// application/cloudevents+json) POSTed to the sink itself with the sink
// credential as bearer token. A session the network ends (Terminate) stays
// UNAVAILABLE/NETWORK_TERMINATED, holding its device, until it is deleted
// or TerminatedRetention (360 s) has passed. Errors are {status, code,
// message} with the v1.1 codes; x-correlator is echoed.
//
// Requests returns the log of what the simulator saw, for tests to assert on.
// Times come from Options.Now so that tests can drive expiry with a fake
// clock and ExpireDue instead of waiting.
package qodsim
