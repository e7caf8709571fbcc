module github.com/qodwatch/qodwatch

go 1.26.0

require (
	github.com/getkin/kin-openapi v0.153.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/exporter-toolkit v0.20.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
