package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qtunnel/qtunnel/core/cert"
	"github.com/qtunnel/qtunnel/core/proto"
	"go.yaml.in/yaml/v3"
)

// The file is walked as a yaml.Node tree rather than decoded into structs:
// nodes carry line numbers, and walking them is what lets every error say
// where it is, and unknown keys and wrong types be told apart.

// parser collects the errors of one Parse call.
type parser struct {
	file    string // as given to Parse
	name    string // for messages
	dir     string // base of relative paths
	errs    []*Error
	dropped int             // errors past keepErrors, counted only
	failed  map[string]bool // fields with an error, so checks across fields stay quiet about them

	backend string // the address "backend:" names, added to the targets last

	home     string // the user's home, once looked up
	homeErr  error
	homeDone bool
}

func newParser(file string) *parser {
	name := file
	if name == "" {
		name = "config"
	}
	dir := filepath.Dir(file)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &parser{file: file, name: name, dir: dir, failed: map[string]bool{}}
}

// keepErrors bounds the errors kept for sorting: a hostile file can hold
// hundreds of thousands, which would cost seconds to format and sort when
// only maxErrors are shown.
const keepErrors = 20 * maxErrors

// add records an error; cause may be nil.
func (p *parser) add(line int, field string, cause error, format string, args ...any) {
	if p.full() {
		p.dropped++ // and checks across fields no longer matter
		return
	}
	p.failed[field] = true
	p.errs = append(p.errs, &Error{File: p.name, Line: line, Field: field, Msg: fmt.Sprintf(format, args...), Err: cause})
}

// full reports whether further errors are only counted.
func (p *parser) full() bool { return len(p.errs) >= keepErrors }

// result returns the collected errors sorted by line (stable, so errors
// on one line keep the order they were found in), at most maxErrors of
// them, joined; nil if there are none.
func (p *parser) result() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	if n := len(p.errs) + p.dropped; n > maxErrors {
		last := p.errs[maxErrors-1]
		p.errs = append(p.errs[:maxErrors:maxErrors], &Error{File: p.name, Line: last.Line,
			Msg: fmt.Sprintf("%d more errors not shown; fix these first", n-maxErrors)})
	}
	return joinErrors(p.errs)
}

// pair is one key and its value in a mapping.
type pair struct {
	name     string     // the key
	path     string     // the key's field path, such as "trust.pin"
	key, val *yaml.Node // the nodes
}

// topKeys maps each top-level key to its role ("" for both).
func topKeys() map[string]Mode {
	return map[string]Mode{
		"mode": "", "transport": "", "secret-file": "", "log": "", "state-dir": "",
		"control": "", "metrics": "", "drain-timeout": "", "congestion": "",

		"server": ModeClient, "servers": ModeClient, "failover-after": ModeClient, "trust": ModeClient, "pool": ModeClient, "forwards": ModeClient,

		"listen": ModeServer, "secret-files": ModeServer, "cert-file": ModeServer,
		"key-file": ModeServer, "targets": ModeServer, "default-target": ModeServer,
		"backend": ModeServer, "limits": ModeServer, "masquerade": ModeServer,
	}
}

// roleHint explains, for keys that people put in the wrong role's file,
// where the setting goes instead.
func roleHint(key string) string {
	switch key {
	case "listen":
		return "; a client's listen addresses go under forwards"
	case "secret-files":
		return "; a client has one secret-file"
	case "targets", "default-target", "backend":
		return "; a client names its target in forwards"
	}
	return ""
}

// parse reads data into a Config, which is nil if the file could not be
// read as a YAML mapping at all.
func (p *parser) parse(data []byte) *Config {
	if len(data) > MaxFileSize {
		p.add(0, "", nil, "the file is larger than %d bytes (1 MiB), the limit for a configuration file", MaxFileSize)
		return nil
	}
	root := p.document(data)
	if root == nil {
		return nil
	}
	p.noAnchors(root)
	c := &Config{File: p.file}
	p.top(c, root)
	return c
}

// document parses data as exactly one YAML document holding a mapping and
// returns that mapping, or nil after recording why not.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(1, "", nil, "the file is empty; want keys such as \"mode: client\"")
		} else {
			p.syntax(data, err)
		}
		return nil
	}
	// A second document would be silently ignored otherwise.
	var extra yaml.Node
	switch err := decode(dec, &extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntax(data, err)
	default:
		p.add(extra.Line, "", nil, "a second YAML document (after \"---\"); a configuration file holds one")
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		p.add(1, "", nil, "the file is empty; want keys such as \"mode: client\"")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", nil, "want keys such as \"mode: client\", got %s", describe(root))
		return nil
	}
	return root
}

// decode reads one document. The YAML parser has panicked on malformed
// input in the past; a configuration file must never crash the program.
func decode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

// syntax records a YAML syntax error at the line the YAML library names
// ("yaml: line 3: did not find expected key").
func (p *parser) syntax(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				line, msg = n, text
			}
		}
	}
	if parserProblem(msg) {
		// The library numbers lines from 0 for these (and leaves out
		// line 0), unlike its scanner's errors; TestParseErrors pins this.
		line++
	}
	// The end of the stream counts as a line after the last one.
	lines := bytes.Count(data, []byte("\n"))
	if !bytes.HasSuffix(data, []byte("\n")) {
		lines++
	}
	if line > lines && lines > 0 {
		line = lines
	}
	p.add(line, "", err, "YAML syntax error: %s", msg)
}

// parserProblem reports whether msg is one of the YAML library's parser
// errors (as opposed to its scanner's), which it reports a line early.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>", "did not find expected <document start>",
		"did not find expected node content", "did not find expected '-' indicator",
		"did not find expected key", "did not find expected ',' or ']'",
		"did not find expected ',' or '}'", "found undefined tag handle",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// noAnchors refuses anchors and aliases anywhere in the tree: an alias can
// repeat a node without bound (a "billion laughs" file), and a
// configuration file has no need of them. The walk uses its own stack, as
// the tree can be thousands of levels deep.
func (p *parser) noAnchors(root *yaml.Node) {
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case n.Kind == yaml.AliasNode:
			p.add(n.Line, "", nil, "YAML anchors and aliases are not supported (*%s); write the value out", short(n.Value))
			continue
		case n.Anchor != "":
			p.add(n.Line, "", nil, "YAML anchors and aliases are not supported (&%s); write the value out", short(n.Anchor))
		}
		// Push in reverse so errors come out in file order.
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
}

// pairs returns a mapping's keys and values, refusing keys that are not
// names and keys set twice.
func (p *parser) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			continue // reported by noAnchors
		}
		if k.Kind != yaml.ScalarNode || !plainTag(k.Tag) && k.Tag != "!!merge" {
			p.add(k.Line, path, nil, "want a key name, got %s", describe(k))
			continue
		}
		full := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, full, nil, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{name: k.Value, path: full, key: k, val: v})
	}
	return out
}

// joinPath appends a key to a field path, quoting keys that are not plain
// words so that the path stays readable.
func joinPath(path, key string) string {
	plain := key != "" && strings.IndexFunc(key, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	}) < 0
	if !plain {
		key = strconv.Quote(short(key))
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknown reports a key that does not belong where it is.
func (p *parser) unknown(kv pair, known []string) {
	switch {
	case kv.name == "secret":
		p.add(kv.key.Line, kv.path, nil, "a secret does not belong in a configuration file, which is shared and backed up; put it in its own file (mode 0600) and name that in secret-file")
	case kv.key.Tag == "!!merge":
		p.add(kv.key.Line, kv.path, nil, "YAML merge keys (<<) are not supported; write the keys out")
	case p.full():
		p.dropped++ // spare the suggestion's cost
	default:
		if s := suggest(kv.name, known); s != "" {
			p.add(kv.key.Line, kv.path, nil, "unknown key; did you mean %s?", s)
		} else if len(known) <= 8 {
			p.add(kv.key.Line, kv.path, nil, "unknown key; want one of %s", strings.Join(known, ", "))
		} else {
			p.add(kv.key.Line, kv.path, nil, "unknown key")
		}
	}
}

// suggest returns the known key closest to name, if it is close enough to
// be a likely typo. Case and '_' for '-' are forgiven first.
func suggest(name string, known []string) string {
	if len(name) > 64 {
		return ""
	}
	norm := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	best, bestDist := "", 3 // at most two edits
	if n := utf8.RuneCountInString(norm); n <= 4 {
		bestDist = 2 // short words are all close to each other
	}
	for _, k := range known {
		if d := editDistance(norm, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// top reads the top-level mapping into c.
func (p *parser) top(c *Config, root *yaml.Node) {
	pairs := p.pairs(root, "")
	at := map[string]int{} // line of each key present
	for _, kv := range pairs {
		at[kv.name] = kv.key.Line
	}

	// The mode decides which other keys belong, so it comes first.
	for _, kv := range pairs {
		if kv.name == "mode" {
			c.Mode = Mode(p.required(kv.path, kv.val, p.enum(kv, "client", "server"), "client or server"))
		}
	}
	modeOK := c.Mode != ""
	if _, ok := at["mode"]; !ok {
		p.add(root.Line, "mode", nil, "missing; want mode: client or mode: server")
	}

	roles := topKeys()
	known := make([]string, 0, len(roles))
	for k := range roles {
		known = append(known, k)
	}
	slices.Sort(known)

	for _, kv := range pairs {
		role, ok := roles[kv.name]
		if !ok {
			p.unknown(kv, known)
			delete(at, kv.name)
			continue
		}
		if role != "" && modeOK && role != c.Mode {
			p.add(kv.key.Line, kv.path, nil, "only for mode: %s%s", role, roleHint(kv.name))
			delete(at, kv.name)
			continue
		}
		p.topValue(c, kv)
	}

	switch {
	case !modeOK:
		// Which keys are required depends on the mode.
	case c.Mode == ModeClient:
		p.checkClient(root, at)
	case c.Mode == ModeServer:
		p.checkServer(c, root, at)
	}
}

// topValue reads one top-level key whose role fits.
func (p *parser) topValue(c *Config, kv pair) {
	f, v := kv.path, kv.val
	switch kv.name {
	case "mode": // read first, in top
	case "transport":
		c.Transport = p.enum(kv, "quic", "tcp")
	case "secret-file":
		if s := p.path(f, v); s != "" {
			c.SecretFiles = []string{s}
		}
	case "log":
		for _, kv := range p.mapping(kv, "a mapping with level and format") {
			switch kv.name {
			case "level":
				c.LogLevel = p.enum(kv, "debug", "info", "warn", "error")
			case "format":
				c.LogFormat = p.enum(kv, "text", "json")
			default:
				p.unknown(kv, []string{"level", "format"})
			}
		}
	case "state-dir":
		c.StateDir = p.path(f, v)
	case "control":
		// off (or none) turns the socket off, as the -control flag does;
		// anything else is a path.
		if s := p.text(f, v); s == "off" || s == "none" {
			c.Control = s
		} else {
			c.Control = p.path(f, v)
		}
	case "metrics":
		c.Metrics = p.addr(f, v, false, 0, "127.0.0.1:9100")
	case "drain-timeout":
		c.DrainTimeout = p.duration(f, v)
	case "congestion":
		c.Congestion = p.enum(kv, "bbr", "reno")

	case "server":
		c.Server = p.required(f, v, p.addr(f, v, true, 1, "vps.example.com:443"), "the server's host:port")
	case "servers":
		p.servers(c, kv)
	case "failover-after":
		c.FailoverAfter = p.duration(f, v)
	case "trust":
		p.trust(c, kv)
	case "pool":
		c.Pool = p.integer(f, v, 1, 256)
	case "forwards":
		p.forwards(c, kv)

	case "listen":
		c.Listen = p.required(f, v, p.addr(f, v, false, 0, ":443"), "the address to listen on, such as \":443\"")
	case "secret-files":
		c.SecretFiles = p.pathList(f, v)
	case "cert-file":
		c.CertFile = p.path(f, v)
	case "key-file":
		c.KeyFile = p.path(f, v)
	case "targets":
		p.targets(c, kv)
	case "default-target":
		c.DefaultTarget = p.targetName(f, v)
	case "backend":
		// Added to the targets by checkServer, once all are known.
		p.backend = p.required(f, v, p.addr(f, v, true, 1, "10.0.0.6:80"), "the default target's host:port")
	case "limits":
		p.limits(c, kv)
	case "masquerade":
		c.Masquerade = p.masquerade(f, v)
	}
}

// backendName is the target that "backend: ADDR" stands for.
const backendName = "default"

// checkClient checks what a client file needs as a whole.
func (p *parser) checkClient(root *yaml.Node, at map[string]int) {
	one, ok1 := at["server"]
	many, ok2 := at["servers"]
	switch {
	case !ok1 && !ok2:
		p.add(root.Line, "server", nil, "missing; want the server's host:port, such as vps.example.com:443 (or servers: a list of them)")
	case ok1 && ok2:
		p.add(max(one, many), "servers", nil, "set server or servers, not both")
	}
	if _, ok := at["forwards"]; !ok {
		p.add(root.Line, "forwards", nil, "missing; want a list of forwards such as [{listen: 127.0.0.1:5432, target: db}]")
	}
}

// checkServer checks what a server file needs as a whole.
func (p *parser) checkServer(c *Config, root *yaml.Node, at map[string]int) {
	if _, ok := at["listen"]; !ok {
		p.add(root.Line, "listen", nil, "missing; want the address to listen on, such as \":443\"")
	}
	if a, ok := at["secret-file"]; ok {
		if b, ok := at["secret-files"]; ok {
			p.add(max(a, b), "secret-files", nil, "set secret-file or secret-files, not both")
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") && !p.failed["cert-file"] && !p.failed["key-file"] {
		set, missing := "cert-file", "key-file"
		if c.CertFile == "" {
			set, missing = missing, set
		}
		p.add(at[set], set, nil, "%s is needed too: a certificate and its key go together", missing)
	}

	// "backend: ADDR" is a target named backendName, last, and the default.
	if line, ok := at["backend"]; ok {
		if dl, ok := at["default-target"]; ok {
			p.add(line, "backend", nil, "not together with default-target (line %d): backend is the default target's address; use targets with default-target, or backend alone", dl)
		}
		if p.backend != "" {
			if slices.ContainsFunc(c.Targets, func(t Target) bool { return t.Name == backendName }) {
				p.add(line, "backend", nil, "there is already a target named %q; backend would add another (name the default in default-target instead)", backendName)
			}
			c.Targets = append(c.Targets, Target{Name: backendName, Address: p.backend})
			c.DefaultTarget = backendName
		}
	} else if c.DefaultTarget != "" && !p.failed["targets"] {
		found := slices.ContainsFunc(c.Targets, func(t Target) bool { return t.Name == c.DefaultTarget })
		if !found && !p.failed[joinPath("targets", c.DefaultTarget)] {
			names := make([]string, len(c.Targets))
			for i, t := range c.Targets {
				names[i] = t.Name
			}
			msg := fmt.Sprintf("%q is not one of the targets", c.DefaultTarget)
			if s := suggest(c.DefaultTarget, names); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
			} else if len(names) > 0 && len(names) <= 8 {
				msg += " (" + strings.Join(names, ", ") + ")"
			}
			p.add(at["default-target"], "default-target", nil, "%s", msg)
		}
	}

	if len(c.Targets) == 0 && !p.failed["targets"] && !p.failed["backend"] {
		if line, ok := at["targets"]; ok {
			p.add(line, "targets", nil, "empty; a server needs at least one target (name: host:port)")
		} else if _, ok := at["backend"]; !ok {
			p.add(root.Line, "targets", nil, "missing; a server needs at least one target: set targets (name: host:port) or backend (host:port)")
		}
	}
}

// mapping returns the pairs of kv's value, a mapping; nothing (null)
// counts as an empty mapping.
func (p *parser) mapping(kv pair, want string) []pair {
	switch v := kv.val; {
	case v.Kind == yaml.AliasNode:
		return nil
	case v.Kind == yaml.MappingNode:
		return p.pairs(v, kv.path)
	case isNull(v):
		return nil
	default:
		p.add(v.Line, kv.path, nil, "want %s, got %s", want, describe(v))
		return nil
	}
}

// sequence returns the items of kv's value, a list of at most max (the
// rest are left out); it reports an empty list ("empty; " and emptyWhy),
// a value that is not a list (want, what it got, hint) and a longer one.
func (p *parser) sequence(kv pair, noun string, max int, emptyWhy, want, hint string) []*yaml.Node {
	v := kv.val
	switch {
	case v.Kind == yaml.AliasNode:
		return nil
	case isNull(v) || v.Kind == yaml.SequenceNode && len(v.Content) == 0:
		p.add(kv.key.Line, kv.path, nil, "empty; %s", emptyWhy)
		return nil
	case v.Kind != yaml.SequenceNode:
		p.add(v.Line, kv.path, nil, "%s, got %s%s", want, describe(v), hint)
		return nil
	}
	items := v.Content
	if len(items) > max {
		p.add(kv.key.Line, kv.path, nil, "%d %s; at most %d are allowed", len(items), noun, max)
		items = items[:max]
	}
	return items
}

// servers reads a client's list of servers: each a host:port, or a
// mapping with address and its own pin or sni.
func (p *parser) servers(c *Config, kv pair) {
	const want = "want a list of host:port such as [vps1.example.com:443, vps2.example.com:443]"
	items := p.sequence(kv, "servers", MaxServers, want, want, " (for one, use server)")
	seen := map[string]int{} // address -> line
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", kv.path, i)
		var e ServerEntry
		switch it.Kind {
		case yaml.AliasNode:
			continue
		case yaml.ScalarNode:
			e.Address = p.required(f, it, p.addr(f, it, true, 1, "vps.example.com:443"), "the server's host:port")
		case yaml.MappingNode:
			hasAddr := false
			for _, kv := range p.pairs(it, f) {
				switch kv.name {
				case "address":
					hasAddr = true
					e.Address = p.required(kv.path, kv.val, p.addr(kv.path, kv.val, true, 1, "vps.example.com:443"), "the server's host:port")
				case "pin":
					e.Pin = p.pin(kv)
				case "sni":
					e.SNI = p.sni(kv)
				default:
					p.unknown(kv, []string{"address", "pin", "sni"})
				}
			}
			if !hasAddr {
				p.add(it.Line, f+".address", nil, "missing; want the server's host:port, such as vps.example.com:443")
			}
		default:
			p.add(it.Line, f, nil, "want host:port or a mapping with address (and pin, sni), got %s", describe(it))
			continue
		}
		if e.Address == "" {
			continue
		}
		if first, dup := seen[e.Address]; dup {
			p.add(it.Line, f, nil, "%q is already listed at line %d", e.Address, first)
			continue
		}
		seen[e.Address] = it.Line
		c.Servers = append(c.Servers, e)
	}
	if len(c.Servers) > 0 {
		c.Server = c.Servers[0].Address
	}
}

// pin reads a certificate pin into its canonical form; "" if empty or
// not a pin (reported).
func (p *parser) pin(kv pair) string {
	s := p.text(kv.path, kv.val)
	if s == "" {
		return ""
	}
	pin, err := cert.ParsePin(s)
	if err != nil {
		p.add(kv.val.Line, kv.path, err, "want sha256: and 64 hex digits (the SHA-256 of the server's certificate), got %s", describe(kv.val))
		return ""
	}
	return pin.String()
}

// sni reads a server name; "" if it cannot be one (reported).
func (p *parser) sni(kv pair) string {
	s := p.text(kv.path, kv.val)
	if strings.ContainsAny(s, " /") {
		p.add(kv.val.Line, kv.path, nil, "want a server name such as vps.example.com, got %s", describe(kv.val))
		return ""
	}
	return s
}

func (p *parser) trust(c *Config, kv pair) {
	for _, kv := range p.mapping(kv, "a mapping with pin, ca or sni") {
		f, v := kv.path, kv.val
		switch kv.name {
		case "pin":
			c.Trust.Pin = p.pin(kv)
		case "ca":
			switch s := p.text(f, v); {
			case s == "system":
				c.Trust.CA = s
			case strings.EqualFold(s, "system"):
				p.add(v.Line, f, nil, "want system (in lower case) or a path, got %s", describe(v))
			case s != "":
				c.Trust.CA = p.resolve(f, v.Line, s)
			}
		case "sni":
			c.Trust.SNI = p.sni(kv)
		default:
			p.unknown(kv, []string{"pin", "ca", "sni"})
		}
	}
}

// limitKeys are the keys of limits, in the order the docs give them.
var limitKeys = []string{"max-clients", "max-pending", "max-streams", "max-relays", "handshakes-per-second",
	"wrong-secrets", "block-max", "handshake-timeout", "idle-timeout", "memory-mib"}

func (p *parser) limits(c *Config, kv pair) {
	for _, kv := range p.mapping(kv, "a mapping with "+strings.Join(limitKeys, ", ")) {
		f, v := kv.path, kv.val
		switch kv.name {
		case "max-clients":
			c.Limits.MaxClients = p.integer(f, v, 1, math.MaxInt32)
		case "max-pending":
			c.Limits.MaxPending = p.integer(f, v, 1, math.MaxInt32)
		case "max-streams":
			c.Limits.MaxStreams = p.integer(f, v, 1, 1<<20)
		case "max-relays":
			c.Limits.MaxRelays = p.integer(f, v, 1, math.MaxInt32)
		case "handshakes-per-second":
			c.Limits.HandshakesPerSecond = p.integer(f, v, 1, 1<<20)
		case "wrong-secrets":
			c.Limits.WrongSecrets = p.integer(f, v, 1, 1000)
		case "block-max":
			c.Limits.BlockMax = p.duration(f, v)
		case "handshake-timeout":
			c.Limits.HandshakeTimeout = p.duration(f, v)
		case "idle-timeout":
			c.Limits.IdleTimeout = p.duration(f, v)
		case "memory-mib":
			c.Limits.MemoryMiB = p.integer(f, v, 16, 1<<24)
		default:
			p.unknown(kv, limitKeys)
		}
	}
}

// masquerade checks the web site to show; see masquerade.Handler. A
// directory must exist when the server starts, not when the file is read.
func (p *parser) masquerade(field string, n *yaml.Node) string {
	s := p.text(field, n)
	switch {
	case s == "", s == "off", s == "default":
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			p.add(n.Line, field, err, "want a site such as https://www.example.com, got %s", describe(n))
		}
	case strings.Contains(s, "://"):
		p.add(n.Line, field, nil, "want default, off, an http:// or https:// site, or a directory; got %s", describe(n))
	default:
		return p.path(field, n)
	}
	return s
}

func (p *parser) forwards(c *Config, kv pair) {
	items := p.sequence(kv, "forwards", MaxForwards, "a client needs at least one forward (listen and target)",
		"want a list of forwards such as [{listen: 127.0.0.1:5432, target: db}]", "")
	names := map[string]int{}   // name -> line
	listens := map[string]int{} // listen address -> line
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", kv.path, i)
		if it.Kind == yaml.AliasNode {
			continue
		}
		if it.Kind != yaml.MappingNode {
			p.add(it.Line, f, nil, "want a mapping with listen (and target, name), got %s", describe(it))
			continue
		}
		var fw Forward
		nameLine, listenLine, hasListen := it.Line, 0, false
		for _, kv := range p.pairs(it, f) {
			switch kv.name {
			case "name":
				fw.Name = p.text(kv.path, kv.val)
				if fw.Name != "" {
					nameLine = kv.key.Line
					p.checkName(kv.path, kv.val.Line, "name", fw.Name)
				}
			case "listen":
				hasListen, listenLine = true, kv.key.Line
				fw.Listen = p.required(kv.path, kv.val, p.addr(kv.path, kv.val, false, 0, "127.0.0.1:5432"), "the local host:port to listen on")
			case "target":
				fw.Target = p.targetName(kv.path, kv.val)
			default:
				p.unknown(kv, []string{"name", "listen", "target"})
			}
		}
		if !hasListen {
			p.add(it.Line, f+".listen", nil, "missing; want the local host:port to listen on, such as 127.0.0.1:5432")
		}
		named := fw.Name != ""
		if !named {
			fw.Name = fw.Target
			if fw.Name == "" {
				fw.Name = "default"
			}
		}
		if first, dup := names[fw.Name]; dup {
			hint := ""
			if !named {
				hint = " (a forward without a name is named after its target, or \"default\"; give it a name)"
			}
			p.add(nameLine, f+".name", nil, "%q is already the name of the forward at line %d; names must be unique%s", fw.Name, first, hint)
		} else {
			names[fw.Name] = nameLine
		}
		// Port 0 asks for any free port, so two of them do not clash.
		if _, port, _ := net.SplitHostPort(fw.Listen); fw.Listen != "" && strings.TrimLeft(port, "0") != "" {
			if first, dup := listens[fw.Listen]; dup {
				p.add(listenLine, f+".listen", nil, "%q is already the listen address of the forward at line %d", fw.Listen, first)
			} else {
				listens[fw.Listen] = listenLine
			}
		}
		c.Forwards = append(c.Forwards, fw)
	}
}

func (p *parser) targets(c *Config, kv pair) {
	if kv.val.Kind == yaml.SequenceNode {
		p.add(kv.val.Line, kv.path, nil, "want a mapping of names to addresses such as {db: 10.0.0.5:5432}, got a list")
		return
	}
	pairs := p.mapping(kv, "a mapping of names to addresses such as {db: 10.0.0.5:5432}")
	if len(pairs) > MaxTargets {
		p.add(kv.key.Line, kv.path, nil, "%d targets; at most %d are allowed", len(pairs), MaxTargets)
		pairs = pairs[:MaxTargets]
	}
	for _, kv := range pairs {
		switch {
		case kv.name == "":
			p.add(kv.key.Line, kv.path, nil, "a target name must not be empty (a client that names no target gets default-target)")
		default:
			p.checkName(kv.path, kv.key.Line, "target name", kv.name)
		}
		addr := p.required(kv.path, kv.val, p.addr(kv.path, kv.val, true, 1, "10.0.0.5:5432"), "the target's host:port")
		c.Targets = append(c.Targets, Target{Name: kv.name, Address: addr})
	}
}

// checkName checks a target or forward name: what proto can carry.
func (p *parser) checkName(field string, line int, what, name string) bool {
	if len(name) > proto.MaxTargetLen {
		p.add(line, field, nil, "a %s of %d bytes; at most %d are allowed", what, len(name), proto.MaxTargetLen)
		return false
	}
	if !proto.ValidTarget(name) {
		p.add(line, field, nil, "a %s must not contain control characters", what)
		return false
	}
	return true
}

// targetName reads a target's name as a client or default-target names it.
func (p *parser) targetName(field string, n *yaml.Node) string {
	s := p.scalar(field, n, "a target name")
	if s != "" && !p.checkName(field, n.Line, "target name", s) {
		return ""
	}
	return s
}

// plainTag reports whether a scalar with this tag can be read as text:
// strings, and numbers, booleans and dates as written. Null, binary data
// and application tags cannot.
func plainTag(tag string) bool {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return true
	}
	return false
}

// isNull reports whether n is YAML's null: "~", "null" or nothing.
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// scalar returns n's text. Numbers and booleans count as their text (so
// that "name: 2024" works); null is "", the same as leaving the key out.
func (p *parser) scalar(field string, n *yaml.Node, want string) string {
	switch {
	case n.Kind == yaml.AliasNode:
		return "" // reported by noAnchors
	case isNull(n):
		return ""
	case n.Kind == yaml.ScalarNode && plainTag(n.Tag):
		return n.Value
	}
	p.add(n.Line, field, nil, "want %s, got %s", want, describe(n))
	return ""
}

// text is scalar for plain strings, refusing control characters (tabs,
// line breaks), which no name, address or path here needs.
func (p *parser) text(field string, n *yaml.Node) string {
	s := p.scalar(field, n, "a string")
	if hasControl(s) {
		p.add(n.Line, field, nil, "must not contain control characters (such as tabs or line breaks), got %s", describe(n))
		return ""
	}
	return s
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// required reports a key present with no value; s is the value read.
func (p *parser) required(field string, n *yaml.Node, s, want string) string {
	if s == "" && !p.failed[field] && n.Kind != yaml.AliasNode {
		p.add(n.Line, field, nil, "want %s, got %s", want, describe(n))
	}
	return s
}

// enum reads one of choices; "" (absent) is allowed.
func (p *parser) enum(kv pair, choices ...string) string {
	s := p.text(kv.path, kv.val)
	if s == "" || slices.Contains(choices, s) {
		return s
	}
	want := strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
	hint := ""
	if slices.Contains(choices, strings.ToLower(s)) {
		hint = " (write it in lower case)"
	}
	p.add(kv.val.Line, kv.path, nil, "want %s, got %s%s", want, describe(kv.val), hint)
	return ""
}

// integer reads a YAML integer from lo to hi; null (absent) is 0.
func (p *parser) integer(field string, n *yaml.Node, lo, hi int64) int {
	if n.Kind == yaml.AliasNode || isNull(n) {
		return 0
	}
	want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	if hi == math.MaxInt32 {
		want = fmt.Sprintf("a whole number of at least %d", lo)
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		hint := ""
		if _, err := strconv.Atoi(n.Value); err == nil && n.Kind == yaml.ScalarNode {
			hint = " (write it without quotes)"
		}
		p.add(n.Line, field, nil, "want a whole number, got %s%s", describe(n), hint)
		return 0
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < lo || v > hi {
		p.add(n.Line, field, err, "want %s, got %s", want, describe(n))
		return 0
	}
	return int(v)
}

// duration reads a Go duration, more than 0; null (absent) is 0.
func (p *parser) duration(field string, n *yaml.Node) time.Duration {
	s := p.scalar(field, n, `a Go duration such as "10s" or "5m"`)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.add(n.Line, field, err, "want a Go duration such as \"10s\" or \"5m\", got %s", describe(n))
		return 0
	}
	if d <= 0 {
		p.add(n.Line, field, nil, "want more than 0, got %s (leave it out for the default)", describe(n))
		return 0
	}
	return d
}

// addr reads a host:port. The host may be empty unless needHost; the port
// is a number from minPort to 65535 (0 means any free port).
func (p *parser) addr(field string, n *yaml.Node, needHost bool, minPort int, example string) string {
	s := p.text(field, n)
	if s == "" {
		return ""
	}
	if strings.Contains(s, "://") {
		p.add(n.Line, field, nil, "want host:port such as %q, got %s; write it without a scheme", example, describe(n))
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		p.add(n.Line, field, err, "want host:port such as %q, got %s", example, describe(n))
		return ""
	}
	if needHost && host == "" {
		p.add(n.Line, field, nil, "missing host in %s; want host:port such as %q", describe(n), example)
		return ""
	}
	if strings.ContainsAny(host, " /\\") {
		p.add(n.Line, field, nil, "bad host %q in %s; want host:port such as %q", short(host), describe(n), example)
		return ""
	}
	num, err := strconv.Atoi(port)
	if err != nil || strings.TrimLeft(port, "0123456789") != "" || num < minPort || num > 65535 {
		p.add(n.Line, field, nil, "bad port %q in %s; want a number from %d to 65535", short(port), describe(n), minPort)
		return ""
	}
	return s
}

// path reads a file or directory path (see resolve).
func (p *parser) path(field string, n *yaml.Node) string {
	s := p.text(field, n)
	if s == "" {
		return ""
	}
	return p.resolve(field, n.Line, s)
}

// pathList reads a list of paths (secret-files).
func (p *parser) pathList(field string, n *yaml.Node) []string {
	switch {
	case n.Kind == yaml.AliasNode:
		return nil
	case isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		p.add(n.Line, field, nil, "want at least one path")
		return nil
	case n.Kind != yaml.SequenceNode:
		p.add(n.Line, field, nil, "want a list of paths such as [/etc/qtunnel/secret.new, /etc/qtunnel/secret], got %s (for one file, use secret-file)", describe(n))
		return nil
	}
	var out []string
	seen := map[string]int{}
	for i, it := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s := p.path(f, it)
		switch first, dup := seen[s]; {
		case s == "":
			if !p.failed[f] && it.Kind != yaml.AliasNode {
				p.add(it.Line, f, nil, "want a path, got %s", describe(it))
			}
		case dup:
			p.add(it.Line, f, nil, "%q is already listed at line %d", s, first)
		default:
			seen[s] = it.Line
			out = append(out, s)
		}
	}
	return out
}

// resolve expands a leading "~/" to the user's home and makes a relative
// path relative to the file's directory, not to wherever the program
// happens to run.
func (p *parser) resolve(field string, line int, s string) string {
	switch {
	case s == "~" || strings.HasPrefix(s, "~/") || runtime.GOOS == "windows" && strings.HasPrefix(s, `~\`):
		home, err := p.homeDir()
		if err != nil {
			p.add(line, field, err, "cannot expand ~ in %q: %v", short(s), err)
			return ""
		}
		return filepath.Join(home, s[1:])
	case strings.HasPrefix(s, "~"):
		p.add(line, field, nil, "only ~/ (your own home) is expanded; write the full path instead of %q", short(s))
		return ""
	case filepath.IsAbs(s):
		return filepath.Clean(s)
	default:
		return filepath.Join(p.dir, s)
	}
}

// homeDir looks the user's home up once per parse.
func (p *parser) homeDir() (string, error) {
	if !p.homeDone {
		p.homeDone = true
		p.home, p.homeErr = os.UserHomeDir()
		if p.homeErr == nil && !filepath.IsAbs(p.home) {
			p.homeErr = fmt.Errorf("home directory %q is not an absolute path", p.home)
		}
	}
	return p.home, p.homeErr
}

// describe says what a node holds, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch {
	case n.Tag == "!!null":
		return "nothing"
	case n.Tag == "!!str":
		return strconv.Quote(short(n.Value))
	case plainTag(n.Tag):
		return short(n.Value)
	}
	return "a value tagged " + strconv.Quote(short(n.Tag))
}

// short cuts s to a length that fits in a message.
func short(s string) string {
	const limit = 60
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit-3]) + "..."
}
