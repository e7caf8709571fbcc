package qodsim

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// OpenAPI is the project's own OpenAPI 3 description of the DevEdge QoD
// v1.1.2 API, the document every request is checked against.
//
//go:embed openapi/devedge-qod-v1.1.2.yaml
var OpenAPI []byte

// OpenAPIv1 is the project's own copy of the CAMARA QualityOnDemand
// v1.1.0 description (release r3.2), checked against by a CAMARA v1
// simulator; OpenAPIQoSProfiles is CAMARA QoS Profiles v1.1.0 likewise.
// Both are the published documents, unchanged (Apache-2.0).
var (
	//go:embed openapi/quality-on-demand-v1.1.0.yaml
	OpenAPIv1 []byte
	//go:embed openapi/qos-profiles-v1.1.0.yaml
	OpenAPIQoSProfiles []byte
)

// Operation ids in the embedded documents.
const (
	opCreate = "createSession"
	opGet    = "getSession"
	opDelete = "deleteSession"

	opExtend           = "extendQosSessionDuration"
	opRetrieveSessions = "retrieveSessionsByDevice"
	opGetProfile       = "getQosProfile"
	opRetrieveProfiles = "retrieveQoSProfiles"
)

// opNames are the operations as Faults.Only names them.
var opNames = map[string]string{
	opCreate: "create", opGet: "get", opDelete: "delete", opExtend: "extend",
	opRetrieveSessions: "retrieve-sessions", opGetProfile: "qos-profile", opRetrieveProfiles: "retrieve-qos-profiles",
}

// Operations lists the operation names Faults.Only takes.
func Operations() []string {
	out := make([]string, 0, len(opNames))
	for _, n := range opNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// apiSpec is the loaded document with one ready route per operation.
type apiSpec struct {
	doc    *openapi3.T
	routes map[string]*routers.Route // by operation id
	opts   *openapi3filter.Options
}

var (
	specOnce   sync.Once
	loadedSpec *apiSpec
	specErr    error

	v1SpecOnce   sync.Once
	loadedV1Spec *apiSpec
	v1SpecErr    error
)

// loadSpec parses and checks the embedded DevEdge document once per process.
func loadSpec() (*apiSpec, error) {
	// DevEdge's own create page sends "192.168.0.1/24" in ueId and asId:
	// its format ipv4/ipv6 (as published in v0.8.1) takes a prefix too.
	specOnce.Do(func() { loadedSpec, specErr = parseSpec(OpenAPI, checkIPOrPrefix, opCreate, opGet, opDelete) })
	return loadedSpec, specErr
}

// loadV1Spec parses the CAMARA v1.1 QoD and QoS Profiles documents once per
// process, as one set of routes.
func loadV1Spec() (*apiSpec, error) {
	v1SpecOnce.Do(func() {
		qod, err := parseSpec(OpenAPIv1, checkIP, opCreate, opGet, opDelete, opExtend, opRetrieveSessions)
		if err != nil {
			v1SpecErr = err
			return
		}
		prof, err := parseSpec(OpenAPIQoSProfiles, checkIP, opGetProfile, opRetrieveProfiles)
		if err != nil {
			v1SpecErr = err
			return
		}
		for id, r := range prof.routes {
			qod.routes[id] = r
		}
		loadedV1Spec = qod
	})
	return loadedV1Spec, v1SpecErr
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseSpec loads an embedded document; checkAddr is what its ipv4 and
// ipv6 formats accept.
func parseSpec(data []byte, checkAddr func(v4 bool) func(string) error, required ...string) (*apiSpec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load embedded OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("check embedded OpenAPI document: %w", err)
	}
	s := &apiSpec{doc: doc, routes: map[string]*routers.Route{}}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			// The simulator checks auth itself (TAAP PoP tokens are beyond
			// what kin-openapi can verify), so the routes carry an empty,
			// non-nil security list, which kin-openapi treats as "none".
			opCopy := *op
			opCopy.Security = &openapi3.SecurityRequirements{}
			s.routes[op.OperationID] = &routers.Route{
				Spec: doc, Path: path, PathItem: item, Method: method, Operation: &opCopy,
			}
		}
	}
	for _, id := range required {
		if s.routes[id] == nil {
			return nil, fmt.Errorf("check embedded OpenAPI document: operation %q missing", id)
		}
	}
	s.opts = &openapi3filter.Options{
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// The simulator applies the default duration itself.
		SkipSettingDefaults: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			// Values can be secrets (notificationAuthToken): keep them
			// out of error messages.
			openapi3.DisableSchemaErrorDetails(),
			openapi3.WithStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(v string) error {
				if !uuidPattern.MatchString(v) {
					return errors.New("not a UUID")
				}
				return nil
			})),
			openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(checkAbsoluteHTTPURL)),
			// kin-openapi checks ipv4/ipv6 only when asked; the published
			// documents declare them, and a strict operator checks them.
			openapi3.WithStringFormatValidator("ipv4", openapi3.NewCallbackValidator(checkAddr(true))),
			openapi3.WithStringFormatValidator("ipv6", openapi3.NewCallbackValidator(checkAddr(false))),
		},
	}
	return s, nil
}

// checkIP accepts a single address of the family, without zone or mask, in
// any form netip parses (canonical or not: RFC 4291 allows both).
func checkIP(v4 bool) func(string) error {
	return func(v string) error {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" || a.Is4() != v4 {
			if v4 {
				return errors.New("not an IPv4 address")
			}
			return errors.New("not an IPv6 address")
		}
		return nil
	}
}

// checkIPOrPrefix accepts what checkIP does, or a prefix of the family
// (address/mask, the mask valid for the family).
func checkIPOrPrefix(v4 bool) func(string) error {
	single := checkIP(v4)
	return func(v string) error {
		if !strings.Contains(v, "/") {
			return single(v)
		}
		p, err := netip.ParsePrefix(v)
		if err != nil || p.Addr().Is4() != v4 {
			if v4 {
				return errors.New("not an IPv4 address or prefix")
			}
			return errors.New("not an IPv6 address or prefix")
		}
		return nil
	}
}

// checkAbsoluteHTTPURL accepts what the simulator can deliver a notification to.
func checkAbsoluteHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("URL scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	return nil
}

// validate checks r (whose body has already been read into body) against
// the operation. The message it returns is safe to show to the caller.
func (s *apiSpec) validate(ctx context.Context, opID string, r *http.Request, body []byte, pathParams map[string]string) error {
	req := r.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams,
		Route:      s.routes[opID],
		Options:    s.opts,
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return errors.New(describeValidationError(err))
	}
	return nil
}

// describeValidationError turns a kin-openapi error into one line naming
// the place and the reason, without the offending value.
func describeValidationError(err error) string {
	var schemaErr *openapi3.SchemaError
	if errors.As(err, &schemaErr) {
		where := "/" + strings.Join(schemaErr.JSONPointer(), "/")
		var reqErr *openapi3filter.RequestError
		if errors.As(err, &reqErr) && reqErr.Parameter != nil {
			where = reqErr.Parameter.In + " parameter " + reqErr.Parameter.Name
		} else {
			where = "body " + where
		}
		return "Schema validation failed at " + where + ": " + schemaErr.Reason
	}
	var reqErr *openapi3filter.RequestError
	if errors.As(err, &reqErr) {
		switch {
		case reqErr.Parameter != nil:
			msg := reqErr.Reason
			if reqErr.Err != nil {
				msg = reqErr.Err.Error()
			}
			return fmt.Sprintf("Invalid %s parameter %s: %s", reqErr.Parameter.In, reqErr.Parameter.Name, msg)
		case reqErr.RequestBody != nil:
			msg := reqErr.Reason
			if reqErr.Err != nil {
				msg = reqErr.Err.Error()
			}
			return "Invalid request body: " + msg
		}
	}
	return "Invalid request: " + err.Error()
}
