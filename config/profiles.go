package config

import (
	"regexp"

	"github.com/qodwatch/qodwatch/policy"
	"gopkg.in/yaml.v3"
)

// rawProfileLadders is api.qos_profiles as written: the operator's profile
// names, a list of ladders, each listed weakest to strongest; escalation
// climbs within one ladder. A ladder of one may be written as a bare name:
//
//	qos_profiles: [[silver, gold, platinum], low-latency]
type rawProfileLadders struct {
	ladders [][]string
	paths   [][]string // where each name was written, for errors
}

func (p *rawProfileLadders) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list of profile ladders such as [[QOS_S, QOS_M, QOS_L], QOS_E], got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		ip := indexPath(path, i)
		item, ok := d.resolve(item)
		if !ok {
			return
		}
		d.nodes[ip] = item
		names := []*yaml.Node{item}
		if item.Kind == yaml.SequenceNode {
			names = item.Content
		}
		var ladder []string
		var where []string
		for j, name := range names {
			np := ip
			if item.Kind == yaml.SequenceNode {
				np = indexPath(ip, j)
			}
			name, ok := d.resolve(name)
			if !ok {
				return
			}
			d.nodes[np] = name
			if name.Kind != yaml.ScalarNode || isNull(name) {
				d.errorf(name, np, "want a profile name, got %s", describe(name))
				continue
			}
			ladder = append(ladder, name.Value)
			where = append(where, np)
		}
		if len(ladder) == 0 {
			if len(names) == 0 {
				d.errorf(item, ip, "an empty ladder: list at least one profile name")
			}
			continue
		}
		p.ladders = append(p.ladders, ladder)
		p.paths = append(p.paths, where)
	}
}

// profileNameRE is CAMARA v1.1's QosProfileName.
var profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,256}$`)

// qosProfiles resolves api.qos_profiles: the DevEdge / v0.8.1 names unless
// a camara-v1 config lists its operator's own.
func (r *resolver) qosProfiles(raw *rawProfileLadders, dialect string) policy.Profiles {
	const path = "api.qos_profiles"
	if raw == nil {
		return policy.DefaultProfiles()
	}
	if dialect != dialectCAMARAv1 {
		// Rules are still checked against the names listed: this one
		// error says what is wrong.
		r.d.errorAt(path, "only camara-v1 operators name their own profiles; %s knows QOS_E, QOS_S, QOS_M and QOS_L", dialect)
	}
	seen := map[string]string{}
	var out policy.Profiles
	for i, ladder := range raw.ladders {
		var kept []string
		for j, name := range ladder {
			p := raw.paths[i][j]
			switch first, dup := seen[name]; {
			case !profileNameRE.MatchString(name):
				r.d.errorAt(p, "%q is not a profile name (%s, as CAMARA's QosProfileName)", name, profileNameRE)
			case dup:
				r.d.errorAt(p, "%q is listed already, at %s: a profile stands on one ladder once", name, first)
			default:
				seen[name] = p
				kept = append(kept, name)
			}
		}
		if len(kept) > 0 {
			out = append(out, kept)
		}
	}
	if len(out) == 0 {
		return policy.DefaultProfiles()
	}
	return out
}
