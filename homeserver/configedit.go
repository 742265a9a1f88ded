package homeserver

// Editing the config file in place: `mxmesh peer add` pins a mesh peer by
// changing the lines of the mesh.peers entry it adds or replaces, and no
// others. The operator's comments, blank lines, key order, quoting and
// indentation survive byte for byte; the new entry copies the indentation
// of the entries beside it. The YAML node tree (gopkg.in/yaml.v3) says
// where things are; the edit is made on the text, because re-encoding the
// tree would reflow the file and drop its blank lines. The result is
// parsed again and must decode to the old configuration plus the pin, or
// nothing is written; the file is replaced atomically.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrAlreadyPinned is returned by PinMeshPeer when the name is pinned and
// replacing was not asked for.
var ErrAlreadyPinned = errors.New("already pinned")

// errNoSplice says the file is laid out in a way the in-place editor does
// not handle (flow collections, aliases, several documents).
var errNoSplice = errors.New("cannot edit mesh.peers in place; add the pin to mesh.peers by hand")

// PinMeshPeer adds p to mesh.peers in the config file of the data
// directory dir, or, with replace, replaces the entry of the same name
// where it stands. The file must hold a valid configuration, and the
// result must validate (a key pinned under two names is refused); on any
// error the file is left as it was. It reports whether an entry was
// replaced. A running node reads the pin when it next starts.
func PinMeshPeer(dir string, p MeshPeer, replace bool) (replaced bool, err error) {
	path, err := filepath.EvalSymlinks(filepath.Join(dir, ConfigFile))
	if err != nil {
		return false, fmt.Errorf("pin mesh peer: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("pin mesh peer: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("pin mesh peer: %w", err)
	}
	out, replaced, err := editMeshPeers(data, p, replace)
	if err != nil {
		return false, fmt.Errorf("pin mesh peer in %s: %w", path, err)
	}
	if err := replaceConfigFile(path, out, fi.Mode().Perm()); err != nil {
		return false, fmt.Errorf("pin mesh peer: %w", err)
	}
	return replaced, nil
}

// editMeshPeers returns the config text data with p pinned (see
// PinMeshPeer).
func editMeshPeers(data []byte, p MeshPeer, replace bool) (out []byte, replaced bool, err error) {
	old, err := ParseConfig(data)
	if err != nil {
		return nil, false, err
	}
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	want := *old
	want.Mesh.Peers = slices.Clone(old.Mesh.Peers)
	at := slices.IndexFunc(want.Mesh.Peers, func(q MeshPeer) bool { return q.Name == p.Name })
	switch {
	case at >= 0 && !replace:
		return nil, false, fmt.Errorf("mesh peer %q (at %s): %w", p.Name, want.Mesh.Peers[at].Addr, ErrAlreadyPinned)
	case at >= 0:
		want.Mesh.Peers[at] = p
	default:
		want.Mesh.Peers = append(want.Mesh.Peers, p)
	}
	if err := want.Validate(); err != nil { // the same key under another name, say
		return nil, false, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, false, fmt.Errorf("parse YAML: %w", err)
	}
	e := newLineEditor(data)
	if err := e.pin(&doc, p, at, len(old.Mesh.Peers)); err != nil {
		return nil, false, err
	}
	out = e.bytes()
	back, err := ParseConfig(out)
	if err != nil || !reflect.DeepEqual(back, &want) {
		return nil, false, errNoSplice
	}
	return out, at >= 0, nil
}

// lineEditor edits a YAML text as lines, each with its line break.
type lineEditor struct {
	lines []string
	eol   string
}

func newLineEditor(data []byte) *lineEditor {
	e := &lineEditor{eol: "\n"}
	for line := range strings.Lines(string(data)) {
		e.lines = append(e.lines, line)
	}
	if len(e.lines) > 0 && strings.HasSuffix(e.lines[0], "\r\n") {
		e.eol = "\r\n"
	}
	return e
}

func (e *lineEditor) bytes() []byte { return []byte(strings.Join(e.lines, "")) }

// splice replaces lines [from, to) with repl.
func (e *lineEditor) splice(from, to int, repl []string) {
	if from > 0 && !strings.HasSuffix(e.lines[from-1], "\n") {
		e.lines[from-1] += e.eol
	}
	e.lines = slices.Replace(e.lines, from, to, repl...)
}

// pin makes the edit: replace item at of mesh.peers (which has n items),
// or append one when at < 0.
func (e *lineEditor) pin(doc *yaml.Node, p MeshPeer, at, n int) error {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return errNoSplice
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 || len(root.Content) == 0 {
		return errNoSplice
	}
	mk, mv := mapValue(root, "mesh")
	if mk == nil {
		// No mesh section: add one at the end, at the indentation of the
		// top-level keys.
		ind := root.Content[0].Column - 1
		lines := append([]string{e.eol, pad(ind) + "mesh:" + e.eol, pad(ind+2) + "peers:" + e.eol},
			peerLines(p, ind+4, ind+6, e.eol)...)
		e.splice(len(e.lines), len(e.lines), lines)
		return nil
	}
	if mv.Kind == yaml.MappingNode && mv.Style&yaml.FlowStyle == 0 && len(mv.Content) > 0 {
		pk, pv := mapValue(mv, "peers")
		if pk == nil {
			// Put peers first in the mesh section.
			ind := mv.Content[0].Column - 1
			e.splice(mk.Line, mk.Line, append([]string{pad(ind) + "peers:" + e.eol}, peerLines(p, ind+2, ind+4, e.eol)...))
			return nil
		}
		return e.pinIn(pk, pv, p, at, n)
	}
	if !isEmpty(mv) {
		return errNoSplice
	}
	ind := mk.Column - 1
	if err := e.clearValue(mk, mv); err != nil {
		return err
	}
	e.splice(mk.Line, mk.Line, append([]string{pad(ind+2) + "peers:" + e.eol}, peerLines(p, ind+4, ind+6, e.eol)...))
	return nil
}

// pinIn edits the value pv of the peers key pk.
func (e *lineEditor) pinIn(pk, pv *yaml.Node, p MeshPeer, at, n int) error {
	if isEmpty(pv) {
		if err := e.clearValue(pk, pv); err != nil {
			return err
		}
		ind := pk.Column - 1
		e.splice(pk.Line, pk.Line, peerLines(p, ind+2, ind+4, e.eol))
		return nil
	}
	if pv.Kind != yaml.SequenceNode || pv.Style&yaml.FlowStyle != 0 || len(pv.Content) != n {
		return errNoSplice
	}
	// Each item starts at its "-" and ends at its last line of content:
	// the last line, before the next one as little indented as the "-",
	// that is neither blank nor a comment. Comments after it stay where
	// they are.
	dashes := make([]int, n)
	for i, it := range pv.Content {
		d, err := e.dashLine(it)
		if err != nil {
			return err
		}
		dashes[i] = d
	}
	dashCol := indentOf(e.lines[dashes[0]])
	keyCol := dashCol + 2
	if first := pv.Content[0]; first.Line-1 == dashes[0] && first.Column-1 > dashCol+1 {
		keyCol = first.Column - 1 // "-   name: …" keeps its spacing
	}
	end := func(i int) int {
		last := dashes[i]
		col := indentOf(e.lines[dashes[i]])
		for l := dashes[i] + 1; l < len(e.lines); l++ {
			if i+1 < n && l == dashes[i+1] {
				break
			}
			t := strings.TrimSpace(e.lines[l])
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			if indentOf(e.lines[l]) <= col {
				break
			}
			last = l
		}
		return last + 1
	}
	if at >= 0 {
		e.splice(dashes[at], end(at), peerLines(p, indentOf(e.lines[dashes[at]]), keyCol, e.eol))
		return nil
	}
	last := end(n - 1)
	e.splice(last, last, peerLines(p, dashCol, keyCol, e.eol))
	return nil
}

// dashLine finds the line of the "-" that starts sequence item it: on the
// item's first line, or alone on a line above it.
func (e *lineEditor) dashLine(it *yaml.Node) (int, error) {
	l, c := it.Line-1, it.Column-1
	if l < 0 || l >= len(e.lines) {
		return 0, errNoSplice
	}
	for {
		line := e.lines[l]
		if c > len(line) {
			return 0, errNoSplice
		}
		before := strings.TrimRight(line[:c], " ")
		if before != "" {
			if strings.TrimSpace(before) != "-" {
				return 0, errNoSplice // "- - x", or the item is not alone
			}
			return l, nil
		}
		if l == 0 {
			return 0, errNoSplice
		}
		l--
		c = len(strings.TrimRight(e.lines[l], "\r\n"))
	}
}

// clearValue removes an explicit empty value ("~", "null", "[]", "{}")
// written after key k, keeping a comment behind it; an implicit one
// ("peers:" and nothing) needs no change.
func (e *lineEditor) clearValue(k, v *yaml.Node) error {
	l := k.Line - 1
	if l < 0 || l >= len(e.lines) || k.Kind != yaml.ScalarNode || k.Style != 0 {
		return errNoSplice
	}
	line := e.lines[l]
	body := strings.TrimRight(line, "\r\n")
	eol := line[len(body):]
	c := k.Column - 1
	if c+len(k.Value) > len(body) || strings.TrimSpace(body[:c]) != "" || body[c:c+len(k.Value)] != k.Value {
		return errNoSplice
	}
	rest := strings.TrimLeft(body[c+len(k.Value):], " ")
	if !strings.HasPrefix(rest, ":") {
		return errNoSplice
	}
	head := body[:len(body)-len(rest)+1]
	rest = strings.TrimLeft(rest[1:], " ")
	if rest == "" || strings.HasPrefix(rest, "#") {
		if v.Kind != yaml.ScalarNode {
			return errNoSplice
		}
		return nil
	}
	tok := ""
	switch {
	case v.Kind == yaml.ScalarNode:
		tok = v.Value
		if tok == "" {
			return errNoSplice
		}
	case strings.HasPrefix(rest, "["), strings.HasPrefix(rest, "{"):
		close := "]"
		if rest[0] == '{' {
			close = "}"
		}
		i := strings.Index(rest, close)
		if i < 0 || strings.TrimSpace(rest[1:i]) != "" {
			return errNoSplice
		}
		tok = rest[:i+1]
	}
	after, ok := strings.CutPrefix(rest, tok)
	if !ok || (after != "" && after[0] != ' ') {
		return errNoSplice
	}
	if after = strings.TrimLeft(after, " "); after != "" {
		if !strings.HasPrefix(after, "#") {
			return errNoSplice
		}
		head += " " + after
	}
	e.lines[l] = head + eol
	return nil
}

// isEmpty reports whether v is a null scalar or an empty flow collection.
func isEmpty(v *yaml.Node) bool {
	switch v.Kind {
	case yaml.ScalarNode:
		return v.Tag == "!!null"
	case yaml.SequenceNode, yaml.MappingNode:
		return v.Style&yaml.FlowStyle != 0 && len(v.Content) == 0
	}
	return false
}

// mapValue returns the key and value nodes of key in mapping m.
func mapValue(m *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// peerLines renders p as a block sequence item: "-" at column dash, the
// keys at column key.
func peerLines(p MeshPeer, dash, key int, eol string) []string {
	if key <= dash+1 {
		key = dash + 2
	}
	return []string{
		pad(dash) + "-" + pad(key-dash-1) + "name: " + yamlScalar(p.Name) + eol,
		pad(key) + "addr: " + yamlScalar(p.Addr) + eol,
		pad(key) + "key: " + yamlScalar(p.Key) + eol,
		pad(key) + fmt.Sprintf("mutual: %t", p.Mutual) + eol,
	}
}

// yamlScalar renders s as a one-line YAML scalar, quoted when it has to be.
func yamlScalar(s string) string {
	b, _ := yaml.Marshal(s)
	return string(bytes.TrimSpace(b))
}

func pad(n int) string { return strings.Repeat(" ", n) }

func indentOf(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// replaceConfigFile replaces path with data: a new file in the same
// directory with mode perm, flushed to disk, then renamed over path, so
// a crash leaves the old or the new file, never part of one.
func replaceConfigFile(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("replace %s: %w", path, err)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; not every system can sync a
	// directory, and the file is in place either way.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
