// Package qodclient speaks the Quality on Demand API.
package qodclient
