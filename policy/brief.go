package policy

// Brief is the little of a UE's Status a list of many UEs orders them by.
type Brief struct {
	UE         string
	Rule       string // the rule's name
	State      State
	HasSession bool
	QoS        string // the held session's profile; "" without one
	Removed    bool   // removed from the config; kept until its session is gone
}

// Briefs appends the brief of every UE Statuses lists, in the same order,
// to dst. It allocates nothing beyond dst and formats nothing: a view that
// shows a page of a large fleet reads every UE's brief and the Status of
// the page's UEs only (issue 12), and /metrics reads briefs only, instead
// of building every Status under the caller's lock.
func (e *Engine) Briefs(dst []Brief) []Brief {
	for _, u := range e.list {
		if !u.gone {
			b := Brief{UE: u.name, Rule: u.rule.Name, State: u.state, HasSession: u.has, Removed: u.removed}
			if u.has {
				b.QoS = u.sess.QoS
			}
			dst = append(dst, b)
		}
	}
	return dst
}
