package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree into the raw structs of raw.go. It is
// stricter and more talkative than yaml.v3's own decoding: it reports every
// unknown key (with a suggestion), every duplicate key and every wrong type,
// each with its line and column, and it remembers the node of every path so
// that the checks run after decoding can point at the right place.
type decoder struct {
	file  string
	errs  Errors
	nodes map[string]*yaml.Node // path → value node
	keys  map[string]*yaml.Node // path → key node of that value
	// bad holds the paths that failed to decode. Later checks stay quiet
	// at and below them: their values are unknown, not wrong.
	bad map[string]bool
	// budget bounds the nodes visited, so aliases cannot make a small file
	// expand into a huge one ("billion laughs"); depth bounds the nesting,
	// so an alias inside itself cannot recurse for ever.
	budget int
	depth  int
}

// nodeDecoder is implemented by raw types with a YAML shape of their own
// (probe lists, port lists).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

const (
	nodeBudget = 1 << 20
	maxDepth   = 50
)

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		nodes:  map[string]*yaml.Node{},
		keys:   map[string]*yaml.Node{},
		bad:    map[string]bool{},
		budget: nodeBudget,
	}
}

// errorf records a problem at node n, found while decoding.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.add(n, path, format, args...)
}

func (d *decoder) add(n *yaml.Node, path, format string, args ...any) {
	e := Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// errorAt records a problem at path, found after decoding. A path that is
// not in the file (a missing field) is reported at the key of its nearest
// ancestor that is.
func (d *decoder) errorAt(path, format string, args ...any) {
	if d.failed(path) {
		return
	}
	d.add(d.nodeFor(path), path, format, args...)
}

// failed reports whether path or one of its ancestors failed to decode.
func (d *decoder) failed(path string) bool {
	for p := path; ; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// failedWithin reports whether path or anything below it failed to decode.
func (d *decoder) failedWithin(path string) bool {
	for b := range d.bad {
		if b == path || strings.HasPrefix(b, path+".") || strings.HasPrefix(b, path+"[") {
			return true
		}
	}
	return false
}

// keyErrorAt is errorAt pointing at the key rather than the value; for
// problems with the key's presence (a field that must not be set).
func (d *decoder) keyErrorAt(path, format string, args ...any) {
	if d.failed(path) {
		return
	}
	n := d.keys[path]
	if n == nil {
		n = d.nodeFor(path)
	}
	d.add(n, path, format, args...)
}

func (d *decoder) nodeFor(path string) *yaml.Node {
	if n, ok := d.nodes[path]; ok {
		return n
	}
	for p := parentPath(path); ; p = parentPath(p) {
		if n, ok := d.keys[p]; ok {
			return n
		}
		if n, ok := d.nodes[p]; ok {
			return n // a list item: its first line
		}
		if p == "" {
			return nil
		}
	}
}

// has reports whether path was written in the file.
func (d *decoder) has(path string) bool {
	_, ok := d.nodes[path]
	return ok
}

// parentPath strips the last element: "a.b[2]" → "a.b", "a.b" → "a".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// resolve follows aliases and counts the node against the budget.
func (d *decoder) resolve(n *yaml.Node) (*yaml.Node, bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.budget--
	if d.budget == 0 {
		d.errorf(n, "", "document too large after expanding aliases")
	}
	return n, d.budget > 0
}

// enter counts one level of nesting; callers defer d.leave() when ok.
func (d *decoder) enter(n *yaml.Node, path string) bool {
	if d.depth >= maxDepth {
		if d.budget > 0 {
			d.errorf(n, path, "nested too deeply: is an alias (*name) used inside its own anchor (&name)?")
			d.budget = -1 // one such error is enough; stop decoding
		}
		return false
	}
	d.depth++
	return true
}

func (d *decoder) leave() { d.depth-- }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	if isNull(n) {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "something else"
}

// decode fills v from n. Problems are recorded, never returned: decoding
// goes on so that one run reports every mistake.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	n, ok := d.resolve(n)
	if !ok || !d.enter(n, path) {
		return
	}
	defer d.leave()
	d.nodes[path] = n
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	if isNull(n) {
		return // leave the zero value: "key:" with nothing means unset
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Map:
		d.decodeMap(n, path, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, indexPath(path, i), s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want a string, got %s", describe(n))
			return
		}
		// Any scalar is taken as written: client_id: 0123 means "0123".
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.errorf(n, path, "want a whole number, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("config: no decoding for %s at %s", v.Type(), path))
	}
}

// pair is one key and its value in a mapping.
type pair struct {
	key, value *yaml.Node
}

// pairs lists the entries of a mapping, expanding merge keys ("<<: *base";
// keys written in the mapping win over merged ones) and reporting duplicate
// and non-string keys.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.errorf(k, path, "want a name as key, got %s", describe(k))
			continue
		}
		if prev, dup := first[k.Value]; dup {
			d.errorf(k, joinPath(path, k.Value), "duplicate key (first at line %d)", prev.Line)
			continue
		}
		first[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, dup := first[p.key.Value]; !dup {
			first[p.key.Value] = p.key
			own = append(own, p)
		}
	}
	return own
}

func (d *decoder) mergePairs(v *yaml.Node, path string) []pair {
	v, ok := d.resolve(v)
	if !ok || !d.enter(v, path) {
		return nil
	}
	defer d.leave()
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, m := range v.Content {
			m, ok := d.resolve(m)
			if !ok {
				return out
			}
			if m.Kind != yaml.MappingNode {
				d.errorf(m, path, "a merge (<<) takes a mapping or a list of mappings, got %s", describe(m))
				continue
			}
			for _, p := range d.pairs(m, path) {
				if !seen[p.key.Value] { // the first mapping listed wins
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
		return out
	}
	d.errorf(v, path, "a merge (<<) takes a mapping or a list of mappings, got %s", describe(v))
	return nil
}

// field is one struct field as it appears in YAML.
type field struct {
	name  string
	index []int // for reflect.Value.FieldByIndex; longer for inlined structs
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf lists the YAML keys of struct type t: the yaml tag's name, else
// the field name in snake case; `yaml:",inline"` structs add their own keys.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			for _, sub := range fieldsOf(f.Type) {
				fs = append(fs, field{sub.name, append([]int{i}, sub.index...)})
			}
			continue
		}
		if name == "" {
			name = snakeCase(f.Name)
		}
		fs = append(fs, field{name, []int{i}})
	}
	fieldCache.Store(t, fs)
	return fs
}

// snakeCase turns a Go field name into its YAML key for types without tags:
// OnMissingData → on_missing_data, QoS → qos, MaxSessionsPerGroup →
// max_sessions_per_group.
func snakeCase(s string) string {
	if strings.ToUpper(s) == s || s == "QoS" {
		return strings.ToLower(s)
	}
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prevLower := rs[i-1] >= 'a' && rs[i-1] <= 'z'
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			if prevLower || (nextLower && rs[i-1] >= 'A' && rs[i-1] <= 'Z') {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		name := p.key.Value
		i := slicesIndex(fs, name)
		if i < 0 && path == "" && strings.HasPrefix(name, "x-") {
			continue // a place for YAML anchors, as in Compose files
		}
		if i < 0 {
			names := make([]string, len(fs))
			for j, f := range fs {
				names[j] = f.name
			}
			d.errorf(p.key, joinPath(path, name), "unknown key%s", suggest(name, names))
			continue
		}
		fp := joinPath(path, name)
		d.keys[fp] = p.key
		d.decode(p.value, fp, v.FieldByIndex(fs[i].index))
	}
}

func slicesIndex(fs []field, name string) int {
	for i, f := range fs {
		if f.name == name {
			return i
		}
	}
	return -1
}

func (d *decoder) decodeMap(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		panic("config: map keys must be strings")
	}
	m := reflect.MakeMap(v.Type())
	for _, p := range d.pairs(n, path) {
		fp := joinPath(path, p.key.Value)
		d.keys[fp] = p.key
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.value, fp, e)
		m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(v.Type().Key()), e)
	}
	v.Set(m)
}

// mapKeys returns the keys of m in the order they appear in the file, so
// that checks report in a stable, readable order.
func (d *decoder) mapKeys(path string, keys []string) []string {
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := d.keys[joinPath(path, keys[i])], d.keys[joinPath(path, keys[j])]
		if a == nil || b == nil {
			return keys[i] < keys[j]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return keys
}
