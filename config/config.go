// Package config reads qodwatch's YAML configuration, checks every value,
// and resolves it into plain values the daemon uses as they are: defaults
// applied, probe templates expanded per UE, rules compiled by package
// policy. Every problem is reported at once, each with its file, line and
// column, as `qodwatch check` prints them.
//
// Secrets are references, never values: a Secret names a file or an
// environment variable and is read when it is used.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qodwatch/qodwatch/policy"
)

// Config is a loaded, valid configuration.
type Config struct {
	File string // the file it was read from, as given

	API           API
	Notifications Notifications
	Web           Web
	Log           Log
	Guards        Guards

	// Rules holds every rule of the rules section, compiled.
	Rules map[string]*policy.Rule
	// UEs in file order, each fully resolved; with ue_sd, the daemon's
	// running config also holds the discovered ones (WithDiscovered).
	UEs []UE
	// Shard is the part of the fleet this config was cut down to
	// (ForShard); the zero value is the whole of it.
	Shard Shard
	// byName is UEs' index by name (indexUEs).
	byName map[string]int
	// Discovery lists the ue_sd sources.
	Discovery []Discovery
	sd        *discoveryContext

	// StateDir is where the daemon keeps its session ledger. Empty only in
	// dry-run mode. Like every path in a Config, a relative path in the file
	// is joined to the config file's directory (so it is absolute when the
	// config's path was).
	StateDir string
	// DryRun: decide, log and export, but call no API.
	DryRun bool
	// Tick is the control loop's interval.
	Tick time.Duration

	// Warnings are doubtful settings that still work, for check to show.
	Warnings Errors
}

// API says how to reach the operator's QoD API.
type API struct {
	BaseURL string // e.g. https://api.example.com/qod/v1; "" only in dry-run mode
	// Dialect is the wire format: "devedge", "camara-v0" or "camara-v1".
	Dialect string
	Auth    Auth
	// Timeout bounds one API call.
	Timeout time.Duration
	// PollInterval is how often each held session is checked with GET.
	PollInterval time.Duration
	// MaxRetries is how often a failed call is retried (0: never).
	MaxRetries int

	// Profiles are the QoS profile names rules may ask for, in ladders
	// (weakest to strongest): DevEdge's four unless a camara-v1 config
	// names its operator's own in api.qos_profiles.
	Profiles policy.Profiles

	// camara-v1 only.
	// ProfilesURL is the QoS Profiles API root; "" derives it from BaseURL
	// (…/quality-on-demand/v1 → …/qos-profiles/v1).
	ProfilesURL string
	// RequestedTimeout: a session still REQUESTED this long after its
	// create was answered is deleted (the network is not providing it).
	RequestedTimeout time.Duration
	// SendNetworkAccessIdentifier sends external_id as the device's
	// networkAccessIdentifier, which CAMARA v1.1 does not allow yet.
	SendNetworkAccessIdentifier bool
}

// Auth types.
const (
	AuthTAAP   = "taap"   // T-Mobile API Access Protocol: token + PoP per request
	AuthOAuth2 = "oauth2" // OAuth 2.0 client credentials
	AuthBearer = "bearer" // a fixed bearer token
	AuthNone   = "none"
)

// Auth says how API calls are authorised. Which fields are set depends on
// Type: taap uses TokenURL, ClientID, ClientSecretRef, PrivateKeyFile;
// oauth2 uses TokenURL, ClientID, ClientSecretRef, Scopes; bearer uses
// TokenRef; none uses nothing.
type Auth struct {
	Type            string
	TokenURL        string
	ClientID        string
	ClientSecretRef Secret
	PrivateKeyFile  string // path of a PEM RSA key (PKCS#8 or PKCS#1)
	TokenRef        Secret
	Scopes          []string
}

// ClientSecret reads the client secret (taap, oauth2) from its file or
// environment variable.
func (a Auth) ClientSecret() (string, error) { return a.ClientSecretRef.Read() }

// Token reads the bearer token (bearer) from its file or environment
// variable.
func (a Auth) Token() (string, error) { return a.TokenRef.Read() }

// Notification token modes: where the operator puts the token.
const (
	NotifyAuthAny    = "any"    // accept the apikey query parameter or a bearer header
	NotifyAuthAPIKey = "apikey" // only ?apikey= (CAMARA v0.8.1, DevEdge)
	NotifyAuthBearer = "bearer" // only Authorization: Bearer (later CAMARA)
)

// Notifications configures the receiver of the operator's session events.
// It is enabled when PublicURL is set; without it the daemon only polls.
type Notifications struct {
	Listen    string // host:port to serve on; set whenever PublicURL is
	PublicURL string // the notificationUrl sent with each session; "" if none
	// TokenRef is the token the operator must present. When not set the
	// daemon generates one and keeps it in StateDir.
	TokenRef Secret
	AuthMode string // NotifyAuthAny, NotifyAuthAPIKey or NotifyAuthBearer
}

// Enabled reports whether the daemon asks for notifications.
func (n Notifications) Enabled() bool { return n.PublicURL != "" }

// Token reads the configured notification token; ok is false when none is
// configured (the daemon then uses the one it generated).
func (n Notifications) Token() (token string, ok bool, err error) {
	if !n.TokenRef.IsSet() {
		return "", false, nil
	}
	t, err := n.TokenRef.Read()
	return t, err == nil, err
}

// Web configures the HTTP server for metrics, the status page, /-/healthy,
// /-/ready and (with --web.enable-lifecycle) /-/reload.
type Web struct {
	Listen string // host:port
	// ConfigFile is an exporter-toolkit web config (TLS, basic auth); ""
	// for plain HTTP. Check its content with exporter-toolkit's
	// web.Validate.
	ConfigFile string
	// PerUEMetrics is "auto", "on" or "off": whether /metrics has the
	// per-UE series of every UE, or only of the UEs holding a session or
	// whose request failed (the fleet families are always there). auto is
	// on up to PerUEMetricsAutoMax UEs (issue 13).
	PerUEMetrics string
}

// PerUEMetricsAutoMax is the largest fleet whose per-UE series web.per_ue_metrics:
// auto keeps: at 10,000 UEs /metrics is 7–16 MB (0.75–1.6 KB and ~15 series
// a UE, by probe kinds), about what one Prometheus target comfortably
// scrapes in seconds; above it the fleet families say what a dashboard of
// 100,000 lines could not.
const PerUEMetricsAutoMax = 10000

// PerUE reports whether /metrics has the per-UE series of every one of n UEs.
func (w Web) PerUE(n int) bool {
	switch w.PerUEMetrics {
	case "on":
		return true
	case "off":
		return false
	}
	return n <= PerUEMetricsAutoMax
}

// Log configures log/slog.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// Guards are the spending limits for all rules (policy.Guards), plus what
// happens to sessions when the daemon stops.
type Guards struct {
	policy.Guards
	// ReleaseOnShutdown ends every held session on SIGTERM. Without it
	// sessions run on until they expire and are adopted after a restart.
	ReleaseOnShutdown bool
}

// UE is one device, resolved: defaults applied, probe templates expanded.
type UE struct {
	Name string

	// Identifiers as the API takes them (ueId / device); at least one is
	// set. IPv4 and IPv6 are single addresses in canonical form.
	MSISDN     string
	ExternalID string
	IPv4       string
	IPv6       string
	// IPv4Private and IPv4PublicPort complete IPv4 for a device behind
	// carrier NAT (camara-v1 only): IPv4 is then the NAT's public address.
	IPv4Private    string
	IPv4PublicPort int

	// Target is the host name or address the probes address ({{ue.target}});
	// by default IPv4, else IPv6. "" when the UE has neither and no target.
	Target string

	ApplicationServer AppServer
	UEPorts, ASPorts  *Ports // nil: not sent

	Probes []Probe
	// Window is the length of the statistics window: defaults.window, the
	// same for every UE (package monitor keeps one length).
	Window time.Duration

	RuleName string
	// Rule is the compiled rule: shared with the other UEs of RuleName, or
	// the UE's own when RuleOverridden.
	Rule           *policy.Rule
	RuleSpec       policy.RuleSpec // the effective spec, override merged
	RuleOverridden bool

	Group  string // "" when in no group
	Labels map[string]string
}

// AppServer is the application server the UE talks to (asId /
// applicationServer): an address or a CIDR prefix, in canonical form.
type AppServer struct {
	IPv4, IPv6 string
}

// Probe kinds.
const (
	ProbeICMP       = "icmp"
	ProbeTCP        = "tcp"
	ProbeHTTP       = "http"
	ProbeThroughput = "throughput"
	ProbePrometheus = "prometheus"
)

// Probe is one probe of one UE, with defaults filled in and placeholders
// expanded. Which fields apply depends on Kind; the others are zero.
type Probe struct {
	Kind     string
	Interval time.Duration
	Timeout  time.Duration // per packet (icmp), per attempt (others)
	TOS      uint8         // IP TOS / traffic class of the probe's packets (dscp << 2); 0: unmarked

	// icmp
	Packets int           // per interval
	Spacing time.Duration // between the packets of one interval
	Source  string        // local address to send from; "" lets the kernel choose

	// tcp
	Address string // host:port

	// http, throughput
	URL string

	// throughput
	MaxBytes int64
	MaxTime  time.Duration
	Upload   bool // POST MaxBytes instead of a GET

	// prometheus
	Server string // base URL of the Prometheus server
	Query  string // PromQL, placeholders expanded and escaped
	Metric string // the name rules read as prom.<Metric>
}

// Load reads and checks the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: "cannot read config: " + describeFileError(err)}}
	}
	return Parse(path, data)
}

// Parse checks the config in data, read from filename. Relative paths in it
// (secret files, state_dir) are taken relative to filename's directory. The
// error, if any, is an Errors listing every problem found.
func Parse(filename string, data []byte) (*Config, error) {
	d := newDecoder(filename)
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return nil, Errors{{File: filename, Line: 1, Column: 1, Msg: "the file is empty"}}
	case err != nil:
		return nil, Errors{syntaxError(filename, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: filename, Line: extra.Line, Column: extra.Column, Msg: "a second YAML document (after ---); put everything in one"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, Errors{syntaxError(filename, err)}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	// A path per mapping value: sized up front, the maps never grow (with
	// 100,000 UEs their growing was a tenth of a load).
	n := countPairs(doc)
	d.nodes, d.keys = make(map[string]*yaml.Node, n), make(map[string]*yaml.Node, n)
	var raw rawFile
	d.decode(doc, "", reflectValue(&raw))
	if doc.Kind != yaml.MappingNode && len(d.errs) == 1 {
		d.errs[0].Msg = "want a mapping of sections (api, ues, rules, ...), got " + describe(doc)
	}
	r := &resolver{d: d, dir: filepath.Dir(filename)}
	cfg := r.resolve(&raw)
	cfg.File = filename
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	cfg.Warnings = r.warnings.sorted()
	return cfg, nil
}

// syntaxError turns yaml.v3's "yaml: line 3: did not find expected key"
// into a positioned Error.
func syntaxError(file string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := Error{File: file}
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		e.Line = line
		msg = strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:])
	}
	e.Msg = "YAML syntax: " + msg
	return e
}

// Summary is one line for `qodwatch check`, e.g.
// "config.yaml: OK: 3 UEs, 2 rules, 5 probes, auth taap, dialect devedge".
func (c *Config) Summary() string {
	probes := 0
	for _, ue := range c.UEs {
		probes += len(ue.Probes)
	}
	ues := plural(len(c.UEs), "UE")
	if len(c.Discovery) > 0 {
		// Discovered UEs are known only when the daemon reads the sources.
		ues = fmt.Sprintf("%s and %s", plural(len(c.UEs), "static UE"), plural(len(c.Discovery), "ue_sd source"))
	}
	s := fmt.Sprintf("%s: OK: %s, %s, %s", c.File, ues, plural(len(c.Rules), "rule"), plural(probes, "probe"))
	if c.API.BaseURL != "" {
		s += fmt.Sprintf(", auth %s, dialect %s", c.API.Auth.Type, c.API.Dialect)
	}
	if c.DryRun {
		s += ", dry run"
	}
	if n := len(c.Warnings); n > 0 {
		s += ", " + plural(n, "warning")
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// RuleNames lists the rules in name order.
func (c *Config) RuleNames() []string {
	return slices.Sorted(maps.Keys(c.Rules))
}

// UE returns the UE called name.
//
// It is a map look-up: the daemon asks for every decision, and a scan of
// 250,000 UEs per decision was two thirds of a shard's CPU.
func (c *Config) UE(name string) (*UE, bool) {
	// A copy of a Config whose UEs were then changed without indexUEs
	// holds a stale map: a position whose UE has another name is not
	// trusted, and the list is searched.
	if i, ok := c.byName[name]; ok && i < len(c.UEs) && c.UEs[i].Name == name {
		return &c.UEs[i], true
	}
	for i := range c.UEs {
		if c.UEs[i].Name == name {
			return &c.UEs[i], true
		}
	}
	return nil, false
}

// indexUEs builds the map UE looks names up in; call it whenever UEs is
// set.
func (c *Config) indexUEs() {
	c.byName = make(map[string]int, len(c.UEs))
	for i := range c.UEs {
		c.byName[c.UEs[i].Name] = i
	}
}

// Check is the core of `qodwatch check FILE`: it loads path and writes
// either its warnings and the one-line summary to out, or every problem,
// one per line as file:line:col: path: msg, and a closing line to errOut.
// The returned error is the Errors found (nil when the config is valid);
// the command exits 2 on it.
func Check(out, errOut io.Writer, path string) error {
	cfg, err := Load(path)
	if err != nil {
		var errs Errors
		n := 1
		if errors.As(err, &errs) {
			n = len(errs)
		}
		fmt.Fprintln(errOut, err)
		fmt.Fprintf(errOut, "%s: FAILED: %s\n", path, plural(n, "problem"))
		return err
	}
	for _, w := range cfg.Warnings {
		// Like compilers: file:line:col: warning: path: msg.
		w.Path, w.Msg = "warning", w.Path+": "+w.Msg
		fmt.Fprintln(out, w.Error())
	}
	fmt.Fprintln(out, cfg.Summary())
	return nil
}

// countPairs counts the key-value pairs and sequence items below n, about
// the number of paths the decoder remembers (aliases are not followed).
func countPairs(n *yaml.Node) int {
	c := 0
	step := 1
	if n.Kind == yaml.MappingNode {
		step = 2 // a key and its value are one path
	}
	for i := step - 1; i < len(n.Content); i += step {
		c += 1 + countPairs(n.Content[i])
	}
	return c
}
