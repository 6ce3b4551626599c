package router

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast"
	"github.com/tailscale/hujson"
)

// checker validates one configuration file and collects its problems.
// It works in three steps: check the shape of the HuJSON tree against
// the schema (schema.go), dropping every member that does not fit;
// decode what is left with encoding/json; check the values and build the
// Config.
type checker struct {
	src      []byte
	problems []Problem
	// at maps the dotted key of each scalar the file sets to its offset.
	// Only scalars: a channel named "A.dumptoconsole" has the key of
	// channel A's dumptoconsole, but two scalars' keys never collide, since
	// the last part of a scalar's key has no dot.
	at map[string]int
}

// newChecker returns a checker of a copy of data: the tree that hujson
// parses aliases its input, and decode standardizes the tree in place.
func newChecker(data []byte) *checker {
	src := bytes.Clone(data)
	// A byte order mark, as some editors write, becomes spaces: offsets
	// and so columns stay those of the file.
	if bytes.HasPrefix(src, []byte("\uFEFF")) {
		copy(src, "   ")
	}
	return &checker{src: src, at: make(map[string]int)}
}

// check returns the configuration, or nil when the file cannot be decoded.
// The Config is only valid if no problems were added.
func (c *checker) check() *Config {
	v, err := hujson.Parse(c.src)
	if err != nil {
		c.syntax(err)
		return nil
	}
	if !c.object("", &v, topShape) {
		return nil
	}
	var f map[string]any
	if !c.decode(&v, &f) {
		return nil
	}
	return c.build(f)
}

func (c *checker) err(file string) error {
	slices.SortStableFunc(c.problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &ConfigError{File: file, Problems: c.problems}
}

// add reports a problem with key at byte offset off.
func (c *checker) add(off int, key, format string, args ...any) {
	line, col := lineColumn(c.src, off)
	c.problems = append(c.problems, Problem{Line: line, Column: col, Key: printable(key), Msg: printable(fmt.Sprintf(format, args...))})
}

// printable escapes what a terminal would not show as it is, such as a
// newline in a channel name or a byte that is not UTF-8, so that each
// problem stays on one line.
func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, notPrintable) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case notPrintable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// addAt reports a problem with the first of keys that the file sets, at
// its value; when it sets none of them, with the first, at the start.
func (c *checker) addAt(keys []string, format string, args ...any) {
	for _, k := range keys {
		if off, ok := c.at[k]; ok {
			c.add(off, k, format, args...)
			return
		}
	}
	c.add(0, keys[0], format, args...)
}

// ifDefault returns ", the default" if the file leaves key out.
func (c *checker) ifDefault(key string) string {
	if _, set := c.at[key]; set {
		return ""
	}
	return ", the default"
}

func lineColumn(b []byte, off int) (line, col int) {
	off = min(max(off, 0), len(b))
	line = 1 + bytes.Count(b[:off], []byte("\n"))
	col = off - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}

// hujsonErr matches the position that hujson.Parse puts in its errors.
var hujsonErr = regexp.MustCompile(`(?s)^hujson: line (\d+), column (\d+): (.*)$`)

// syntax reports a HuJSON syntax error, with its position when hujson's
// message carries one.
func (c *checker) syntax(err error) {
	m := hujsonErr.FindStringSubmatch(err.Error())
	if m == nil {
		c.add(0, "", "%v", err)
		return
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	msg := m[3]
	if strings.HasPrefix(msg, "invalid literal") {
		// hujson quotes the text, which may be a secret's value (a
		// password with a backslash in it): it is not repeated.
		msg = "invalid literal (not quoted here: it may hold a secret); look at its quotes and escapes, and for a word other than true, false or null"
	}
	c.problems = append(c.problems, Problem{Line: line, Column: col, Msg: printable(msg)})
}

// decode decodes the checked tree into f: objects as maps, integers as
// json.Number. The shape check has dropped everything that does not fit
// the schema, so a failure here is a bug in the check; it is reported all
// the same.
func (c *checker) decode(v *hujson.Value, f *map[string]any) bool {
	v.Standardize()
	dec := json.NewDecoder(bytes.NewReader(v.Pack()))
	dec.UseNumber()
	if err := dec.Decode(f); err != nil {
		c.add(0, "", "internal error: decoding the checked configuration: %v", err)
		return false
	}
	return true
}

// build checks the values of the decoded file f and converts it to a
// Config: every key takes its value, or its default, then its checks run.
func (c *checker) build(f map[string]any) *Config {
	cfg := &Config{}
	fill(c, "", settings, f, cfg)
	nats, _ := f[natsKey].(map[string]any)
	fill(c, natsKey+".", natsKeys, nats, &cfg.NATS)
	c.crossCheck(cfg)
	c.checkNATSCluster(cfg)
	rules, _ := f[channelsKey].(map[string]any)
	cfg.Channels = c.channels(rules, cfg.StartControl)
	c.inheritSocketMode(cfg)
	return cfg
}

// fill sets every key of t from its value in f, or its default when f
// lacks it, then runs the keys' checks. prefix begins the keys' dotted
// names.
func fill[T any](c *checker, prefix string, keys []key[T], f map[string]any, t *T) {
	for i := range keys {
		k := &keys[i]
		v, ok := f[k.name]
		if !ok {
			v = k.def
		}
		c.set(prefix+k.name, k.typ, k.field(t), v, k.lo, k.hi, k.off)
	}
	for i := range keys {
		if k := &keys[i]; k.check != nil {
			k.check(c, prefix+k.name, t)
		}
	}
}

// set converts v, a value of type typ as decoded or a default, to dst,
// the key's field, and checks its bounds lo..hi (hi == 0: none). A
// duration of 0 passes when off is set.
func (c *checker) set(key string, typ fileType, dst, v any, lo, hi int64, off bool) {
	switch p := dst.(type) {
	case *bool:
		*p, _ = v.(bool)
	case *int:
		*p = asInt(v)
		if hi != 0 {
			c.checkRange(key, *p, int(lo), int(hi))
		}
	case *time.Duration:
		*p = c.duration(key, v.(string), time.Duration(lo), time.Duration(hi), off)
	case *fs.FileMode:
		*p = c.socketMode(key, v.(string))
	case *[]string:
		*p = asStrings(v)
	case *string:
		if typ == tRegexp {
			*p = c.expression(key, v)
			return
		}
		if typ == tStrings {
			*p = joinList(v)
			return
		}
		*p, _ = v.(string)
	}
}

// asInt is an integer as decoded (json.Number, in range: the shape check
// saw to it) or as a default (int).
func asInt(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case int:
		return n
	}
	return 0
}

// crossCheck checks what two keys must agree on.
func (c *checker) crossCheck(f *Config) {
	if f.MaxPending < f.MaxFrame {
		c.addAt([]string{"maxpending", "maxframe"}, "maxpending (%d%s) must be at least maxframe (%d)", f.MaxPending, c.ifDefault("maxpending"), f.MaxFrame)
	}
	sealRoom := 0
	if f.Key != "" || f.KeyFile != "" {
		sealRoom = multicast.TagLen // a sealed datagram's tag takes room of the payload
	}
	if n := multicast.Fragments(f.MaxFrame, max(f.Payload, multicast.MinPayload)-sealRoom); n > multicast.MaxFragments {
		c.addAt([]string{"payload", "maxframe"}, "a frame of maxframe (%d) bytes would take %d datagrams of payload (%d) bytes, more than %d; raise the payload", f.MaxFrame, n, f.Payload, multicast.MaxFragments)
	}
	if f.Heartbeat > 0 && f.PeerTimeout > 0 && f.PeerTimeout < 2*f.Heartbeat {
		c.addAt([]string{"peertimeout", "heartbeat"}, "peertimeout (%v%s) must be at least twice heartbeat (%v)", f.PeerTimeout, c.ifDefault("peertimeout"), f.Heartbeat)
	}
	if f.PingInterval > 0 && f.PingTimeout > 0 && f.PingTimeout < 2*f.PingInterval {
		c.addAt([]string{"pingtimeout", "pinginterval"}, "pingtimeout (%v%s) must be at least twice pinginterval (%v)", f.PingTimeout, c.ifDefault("pingtimeout"), f.PingInterval)
	}
}

func checkCluster(c *checker, key string, f *Config) {
	if len(f.Cluster) > maxClusterLen {
		c.addAt([]string{key}, "%d bytes long, the limit is %d", len(f.Cluster), maxClusterLen)
	}
}

func checkFlowControl(c *checker, key string, f *Config) { checkFlowMode(c, key, f.FlowControl) }

// checkFlowMode checks a flowcontrol key's value: multicast's, and
// nats.flowcontrol.
func checkFlowMode(c *checker, key, v string) {
	if m := multicast.FlowControl(v); m != multicast.FlowMin && m != multicast.FlowNone {
		c.addAt([]string{key}, "%q is neither %q nor %q", clipText(v, 60), multicast.FlowMin, multicast.FlowNone)
	}
}

// checkKey refuses the placeholder that showconfig writes for a key: a
// configuration saved from showconfig needs its secret supplied again.
func checkKey(c *checker, key string, f *Config) {
	if f.Key == redactedSecret {
		c.addAt([]string{key}, "%q stands for a secret that showconfig does not show; supply the secret with \"key\", or better \"keyfile\"", redactedSecret)
	}
}

func checkKeyFile(c *checker, key string, f *Config) {
	if f.Key != "" && f.KeyFile != "" {
		c.addAt([]string{key}, "key and keyfile are both set; use one")
	}
}

func checkSocket(c *checker, key string, f *Config) {
	if f.Socket != "" && !strings.Contains(f.Socket, socketPlaceholder) {
		c.addAt([]string{key}, "%q lacks %q, so every channel would share one path", clipText(f.Socket, 60), socketPlaceholder)
	}
}

// reservedGroup is the multicast block kept for local network control
// protocols (RFC 5771): OSPF, mDNS and the like.
var reservedGroup = netip.MustParsePrefix("224.0.0.0/24")

func checkAddr(c *checker, key string, f *Config) {
	a, err := netip.ParseAddr(f.Addr)
	switch {
	case err != nil || !a.Is4() || !a.IsMulticast():
		c.addAt([]string{key}, "%q is not an IPv4 multicast address (224.0.0.0 to 239.255.255.255); try %q", clipText(f.Addr, 40), defaultAddr)
	case reservedGroup.Contains(a):
		c.addAt([]string{key}, "%s is in 224.0.0.0/24, which is reserved for local network control; use %q, a site-local group", f.Addr, defaultAddr)
	}
}

// duration parses a duration key and checks its range, which 0 is
// outside of unless off is set; it returns 0 when the value is not
// usable.
func (c *checker) duration(key, s string, lo, hi time.Duration, off bool) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.addAt([]string{key}, "want a duration such as \"1s\" or \"500ms\", got %q", clipText(s, 40))
		return 0
	case d == 0 && off:
		return 0
	case d < lo || d > hi:
		c.addAt([]string{key}, "%v is out of range %v..%v", d, lo, hi)
		return 0
	}
	return d
}

// checkMetrics checks the metrics listener's address: "" or host:port.
func checkMetrics(c *checker, key string, f *Config) {
	s := f.Metrics
	if s == "" {
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		c.addAt([]string{key}, "%q is not a host:port address such as \"127.0.0.1:9464\"", clipText(s, 60))
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		c.addAt([]string{key}, "%q: port %q is not a number from 0 to 65535", clipText(s, 60), clipText(port, 20))
	}
}

func (c *checker) checkRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		c.addAt([]string{key}, "%d is out of range %d..%d", n, lo, hi)
	}
}

// socketMode parses an octal socket mode.
func (c *checker) socketMode(key, s string) fs.FileMode {
	m, err := strconv.ParseUint(s, 8, 32)
	switch {
	case err != nil:
		c.addAt([]string{key}, "want an octal string such as %q, got %q", defaultSocketMode, clipText(s, 40))
	case m > 0o777:
		c.addAt([]string{key}, "%q has bits beyond 0777; only permission bits are allowed", clipText(s, 40))
	case m&0o600 != 0o600:
		c.addAt([]string{key}, "%q must include 0600 (the owner reads and writes)", clipText(s, 40))
	}
	return fs.FileMode(m) & fs.ModePerm
}

// channels converts the rules, adding or dropping the control channel as
// startcontrol says.
func (c *checker) channels(rules map[string]any, startControl bool) map[string]ChannelConfig {
	out := make(map[string]ChannelConfig, len(rules)+1)
	for _, name := range slices.Sorted(maps.Keys(rules)) {
		r, _ := rules[name].(map[string]any)
		out[name] = c.rule(name, r)
	}
	_, ok := out[ControlChannel]
	switch {
	case startControl && !ok:
		out[ControlChannel] = c.rule(ControlChannel, nil)
	case !startControl:
		delete(out, ControlChannel) // checked all the same, but not served
	}
	return out
}

// rule checks and converts the rule of channel name.
func (c *checker) rule(name string, r map[string]any) ChannelConfig {
	cc := ChannelConfig{Name: name}
	fill(c, channelsKey+"."+name+".", ruleKeys, r, &cc)
	return cc
}

// checkAcceptFromNet: the control channel never takes events from the
// network, whatever the default: a request from another host must not
// steer this server.
func checkAcceptFromNet(c *checker, key string, r *ChannelConfig) {
	if r.Name != ControlChannel || !r.AcceptFromNet {
		return
	}
	if _, set := c.at[key]; set {
		c.addAt([]string{key}, "the control channel never accepts events from the network")
	}
	r.AcceptFromNet = false
}

// The values of a rule's overflow key.
const (
	overflowBlock = "block"
	overflowDrop  = "drop"
)

func checkOverflow(c *checker, key string, r *ChannelConfig) {
	if r.Overflow != overflowBlock && r.Overflow != overflowDrop {
		c.addAt([]string{key}, "%q is not a policy: \"block\" or \"drop\"", r.Overflow)
	}
}

// expression checks a propagatetochannels value, which the shape check
// has made a bool or a string, and returns the expression ("" for false).
func (c *checker) expression(key string, v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			c.addAt([]string{key}, `true is not allowed; use ".*" for all channels, or false for none`)
		}
	case string:
		if v == "" {
			c.addAt([]string{key}, `empty expression; use ".*" for all channels, or false for none`)
		}
		return v
	}
	return ""
}

// checkPropagate compiles the rule's expression, once, anchored at both
// ends.
func checkPropagate(c *checker, key string, r *ChannelConfig) {
	v := r.PropagateToChannels
	if v == "" {
		return
	}
	// Compile alone first: "a)|(b" would otherwise pass, unanchored.
	if _, err := regexp.Compile(v); err != nil {
		c.addAt([]string{key}, "%v", err)
		r.PropagateToChannels = ""
		return
	}
	re, err := regexp.Compile(`^(?:` + v + `)$`)
	if err != nil { // an unclosed \Q swallows the anchor
		c.addAt([]string{key}, `cannot anchor the expression: \Q without \E quotes the anchor; end the quote with \E`)
		r.PropagateToChannels = ""
		return
	}
	r.Propagate = re
}

// nameProblem reports what is wrong with a channel name, or "" if nothing.
// wire.ValidChannelName is the rule; this says which part of it failed.
func nameProblem(name string) string {
	switch {
	case wire.ValidChannelName(name):
		return ""
	case name == "." || name == "..":
		return fmt.Sprintf("channel name %q is not allowed: it is part of a path", name)
	}
	return "a channel name is 1 to 64 letters, digits, '_', '.' or '-': it is part of a path"
}
