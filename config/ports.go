package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Ports is a set of ports as the QoD API takes them (PortsSpec): single
// ports and inclusive ranges.
type Ports struct {
	Ports  []int
	Ranges []PortRange
}

// PortRange is an inclusive range of ports, From <= To.
type PortRange struct {
	From, To int
}

// Empty reports whether no port is listed.
func (p Ports) Empty() bool { return len(p.Ports) == 0 && len(p.Ranges) == 0 }

func (p Ports) String() string {
	var parts []string
	for _, n := range p.Ports {
		parts = append(parts, strconv.Itoa(n))
	}
	for _, r := range p.Ranges {
		parts = append(parts, fmt.Sprintf("%d-%d", r.From, r.To))
	}
	return strings.Join(parts, ",")
}

// rawPorts is a port list as written: `[443, 5010-5020]`, or one port or
// range on its own. An empty list is kept apart from an absent one: on a
// UE it means "send no ports" even when defaults have some.
type rawPorts struct {
	ports Ports
}

const maxPort = 65535

var portRangeRE = regexp.MustCompile(`^\s*(\d+)\s*-\s*(\d+)\s*$`)

func (r *rawPorts) decodeNode(d *decoder, n *yaml.Node, path string) {
	items := []*yaml.Node{n}
	switch {
	case isNull(n):
		d.errorf(n, path, "no ports given; write a list such as [443, 5010-5020], or [] for none")
		return
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case n.Kind != yaml.ScalarNode:
		d.errorf(n, path, "want a list of ports such as [443, 5010-5020], got %s", describe(n))
		return
	}
	for i, item := range items {
		p := path
		if n.Kind == yaml.SequenceNode {
			p = indexPath(path, i)
		}
		item, ok := d.resolve(item)
		if !ok {
			return
		}
		d.nodes[p] = item
		r.decodeItem(d, item, p)
	}
}

func (r *rawPorts) decodeItem(d *decoder, n *yaml.Node, path string) {
	bad := func() {
		d.errorf(n, path, "want a port (0-65535) or a range such as 5010-5020, got %s", describe(n))
	}
	if n.Kind != yaml.ScalarNode {
		bad()
		return
	}
	port := func(s string) (int, bool) {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > maxPort {
			d.errorf(n, path, "port %s is outside 0..%d", s, maxPort)
			return 0, false
		}
		return v, true
	}
	if n.ShortTag() == "!!int" {
		if v, ok := port(n.Value); ok {
			r.ports.Ports = append(r.ports.Ports, v)
		}
		return
	}
	m := portRangeRE.FindStringSubmatch(n.Value)
	if n.ShortTag() != "!!str" || m == nil {
		bad()
		return
	}
	from, ok1 := port(m[1])
	to, ok2 := port(m[2])
	switch {
	case !ok1 || !ok2:
	case from > to:
		d.errorf(n, path, "range %d-%d runs backwards (write %d-%d)", from, to, to, from)
	case from == to:
		r.ports.Ports = append(r.ports.Ports, from)
	default:
		r.ports.Ranges = append(r.ports.Ranges, PortRange{from, to})
	}
}
