package config

import (
	"github.com/qodwatch/qodwatch/policy"
)

// The raw types mirror the file as written. Everything that needs parsing
// (durations, sizes, addresses, URLs) stays a string here and is checked in
// resolve.go, where the path of each value is known and every mistake can be
// reported with its position. Pointers tell "not written" from "zero".

type rawFile struct {
	API           *rawAPI                    `yaml:"api"`
	Notifications rawNotifications           `yaml:"notifications"`
	Web           rawWeb                     `yaml:"web"`
	Log           rawLog                     `yaml:"log"`
	Defaults      rawDefaults                `yaml:"defaults"`
	UEs           []rawUE                    `yaml:"ues"`
	UESD          []rawDiscovery             `yaml:"ue_sd"`
	Rules         map[string]policy.RuleSpec `yaml:"rules"`
	Guards        rawGuards                  `yaml:"guards"`
	StateDir      string                     `yaml:"state_dir"`
	DryRun        bool                       `yaml:"dry_run"`
	Tick          string                     `yaml:"tick"`
}

type rawAPI struct {
	BaseURL      string  `yaml:"base_url"`
	Dialect      string  `yaml:"dialect"`
	Auth         rawAuth `yaml:"auth"`
	Timeout      string  `yaml:"timeout"`
	PollInterval string  `yaml:"poll_interval"`
	MaxRetries   *int    `yaml:"max_retries"`
	// camara-v1 only.
	ProfilesURL                 string             `yaml:"profiles_url"`
	QoSProfiles                 *rawProfileLadders `yaml:"qos_profiles"`
	RequestedTimeout            string             `yaml:"requested_timeout"`
	SendNetworkAccessIdentifier bool               `yaml:"send_network_access_identifier"`
}

type rawAuth struct {
	Type             string   `yaml:"type"`
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	PrivateKeyFile   string   `yaml:"private_key_file"`
	Token            string   `yaml:"token"`
	TokenFile        string   `yaml:"token_file"`
	Scopes           []string `yaml:"scopes"`
}

type rawNotifications struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	AuthMode  string `yaml:"auth_mode"`
}

type rawWeb struct {
	Listen       string `yaml:"listen"`
	ConfigFile   string `yaml:"config_file"`
	PerUEMetrics string `yaml:"per_ue_metrics"`
}

type rawLog struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type rawDefaults struct {
	ApplicationServer *rawAppServer     `yaml:"application_server"`
	ASPorts           *rawPorts         `yaml:"as_ports"`
	UEPorts           *rawPorts         `yaml:"ue_ports"`
	Probes            *[]rawProbe       `yaml:"probes"`
	Window            string            `yaml:"window"`
	Rule              string            `yaml:"rule"`
	Group             string            `yaml:"group"`
	Labels            map[string]string `yaml:"labels"`
}

type rawUE struct {
	Name              string            `yaml:"name"`
	MSISDN            string            `yaml:"msisdn"`
	ExternalID        string            `yaml:"external_id"`
	IPv4              rawUEIPv4         `yaml:"ipv4"`
	IPv6              string            `yaml:"ipv6"`
	Target            string            `yaml:"target"`
	ApplicationServer *rawAppServer     `yaml:"application_server"`
	ASPorts           *rawPorts         `yaml:"as_ports"`
	UEPorts           *rawPorts         `yaml:"ue_ports"`
	Probes            *[]rawProbe       `yaml:"probes"`
	Window            string            `yaml:"window"`
	Rule              string            `yaml:"rule"`
	RuleOverride      *policy.RuleSpec  `yaml:"rule_override"`
	Group             string            `yaml:"group"`
	Labels            map[string]string `yaml:"labels"`
}

type rawAppServer struct {
	IPv4 string `yaml:"ipv4"`
	IPv6 string `yaml:"ipv6"`
}

type rawGuards struct {
	policy.GuardsSpec `yaml:",inline"`
	ReleaseOnShutdown bool `yaml:"release_on_shutdown"`
}
