// Package policy turns a UE's windowed statistics into decisions to open,
// extend and end QoD sessions. It is pure and deterministic: no goroutines,
// no I/O, and the clock is passed in.
package policy
