package config

import (
	"reflect"
	"strconv"

	"gopkg.in/yaml.v3"
)

// rawUEIPv4 is a UE's IPv4 identity as written. The plain form is one
// address: `ipv4: 203.0.113.5`. A device behind carrier NAT is known to the
// network by the NAT's public address, which many devices share, so CAMARA
// v1 also takes the device's own (private) address and the public port the
// NAT gave it:
//
//	ipv4: {public: 203.0.113.5, private: 10.0.0.5, public_port: 5060}
type rawUEIPv4 struct {
	Public     string `yaml:"public"`
	Private    string `yaml:"private"`
	PublicPort int    `yaml:"public_port"`
}

// plainIPv4 is the plain form, as discovery templates produce it.
func plainIPv4(addr string) rawUEIPv4 { return rawUEIPv4{Public: addr} }

func (a *rawUEIPv4) decodeNode(d *decoder, n *yaml.Node, path string) {
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		a.Public = n.Value
	case n.Kind == yaml.MappingNode:
		d.decodeStruct(n, path, reflect.ValueOf(a).Elem())
	default:
		d.errorf(n, path, "want an address (203.0.113.5) or {public: …, private: …, public_port: …}, got %s", describe(n))
	}
}

// natSet reports whether the NAT form's device half was given.
func (a rawUEIPv4) natSet() bool { return a.Private != "" || a.PublicPort != 0 }

// ueIPv4 resolves a UE's ipv4 setting into out.
func (r *resolver) ueIPv4(p string, a rawUEIPv4, out *UE) {
	if !a.natSet() {
		if a.Public != "" {
			out.IPv4 = r.singleAddr(p, a.Public, true, false)
		}
		return
	}
	if a.Public == "" {
		r.d.errorAt(p+".public", "missing: the address the network sees (the NAT's public address); private and public_port only complete it")
	} else {
		out.IPv4 = r.singleAddr(p+".public", a.Public, true, false)
	}
	if a.Private != "" {
		out.IPv4Private = r.singleAddr(p+".private", a.Private, true, false)
	}
	if a.PublicPort < 0 || a.PublicPort > maxPort {
		r.d.errorAt(p+".public_port", "%d is outside 1..%d", a.PublicPort, maxPort)
	} else {
		out.IPv4PublicPort = a.PublicPort
	}
	if r.dialect != dialectCAMARAv1 {
		r.d.errorAt(p, "private and public_port are sent only by the camara-v1 dialect (device.ipv4Address); %s has no place for them and would name the NAT, not the device", r.dialect)
	}
}

// ipv4Identity is how a UE's IPv4 identity reads in messages and how it is
// told apart from another UE's: devices behind one NAT share the public
// address and differ in the private address or the public port.
func ipv4Identity(ue *UE) string {
	if ue.IPv4 == "" {
		return ""
	}
	s := ue.IPv4
	if ue.IPv4Private != "" {
		s += " private " + ue.IPv4Private
	}
	if ue.IPv4PublicPort != 0 {
		s += " public_port " + strconv.Itoa(ue.IPv4PublicPort)
	}
	return s
}
