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
	"reflect"
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
// fileConfig, dropping every member that does not fit; decode what is
// left with encoding/json; check the values and build the Config.
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
	if !c.object("", &v, reflect.TypeFor[fileConfig]()) {
		return nil
	}
	f := defaultFile()
	if !c.decode(&v, &f) {
		return nil
	}
	return c.build(&f)
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
	c.problems = append(c.problems, Problem{Line: line, Column: col, Msg: printable(m[3])})
}

// decode decodes the checked tree into f, whose fields hold the defaults.
// The shape check has dropped everything encoding/json could refuse, so a
// failure here is a bug in the check; it is reported all the same.
func (c *checker) decode(v *hujson.Value, f *fileConfig) bool {
	v.Standardize()
	dec := json.NewDecoder(bytes.NewReader(v.Pack()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(f); err != nil {
		c.add(0, "", "internal error: decoding the checked configuration: %v", err)
		return false
	}
	return true
}

// build checks the values of f and converts it to a Config.
func (c *checker) build(f *fileConfig) *Config {
	c.checkAddr(f.Addr)
	c.checkRange("port", f.Port, 1, 65535)
	c.checkRange("ttl", f.TTL, 0, 255)
	c.checkRange("maxframe", f.MaxFrame, minMaxFrame, maxMaxFrame)
	c.checkRange("maxpending", f.MaxPending, minMaxFrame, maxMaxPending)
	if f.MaxPending < f.MaxFrame {
		c.addAt([]string{"maxpending", "maxframe"}, "maxpending (%d%s) must be at least maxframe (%d)", f.MaxPending, c.ifDefault("maxpending"), f.MaxFrame)
	}
	c.checkRange("payload", f.Payload, multicast.MinPayload, multicast.MaxDatagram)
	sealRoom := 0
	if f.Key != "" || f.KeyFile != "" {
		sealRoom = multicast.TagLen // a sealed datagram's tag takes room of the payload
	}
	if n := multicast.Fragments(f.MaxFrame, max(f.Payload, multicast.MinPayload)-sealRoom); n > multicast.MaxFragments {
		c.addAt([]string{"payload", "maxframe"}, "a frame of maxframe (%d) bytes would take %d datagrams of payload (%d) bytes, more than %d; raise the payload", f.MaxFrame, n, f.Payload, multicast.MaxFragments)
	}
	heartbeat := c.duration("heartbeat", f.Heartbeat, minHeartbeat, maxHeartbeat)
	peerTimeout := c.duration("peertimeout", f.PeerTimeout, 2*minHeartbeat, maxPeerTimeout)
	if heartbeat > 0 && peerTimeout > 0 && peerTimeout < 2*heartbeat {
		c.addAt([]string{"peertimeout", "heartbeat"}, "peertimeout (%v%s) must be at least twice heartbeat (%v)", peerTimeout, c.ifDefault("peertimeout"), heartbeat)
	}
	pingInterval, pingTimeout := c.pingDurations(f.PingInterval, f.PingTimeout)
	c.checkRange("history", f.History, 0, maxHistory)
	gapTimeout := c.duration("gaptimeout", f.GapTimeout, minGapTimeout, maxGapTimeout)
	if len(f.Cluster) > maxClusterLen {
		c.addAt([]string{"cluster"}, "%d bytes long, the limit is %d", len(f.Cluster), maxClusterLen)
	}
	if f.Key != "" && f.KeyFile != "" {
		c.addAt([]string{"keyfile"}, "key and keyfile are both set; use one")
	}
	c.checkMetrics(f.Metrics)
	if f.Socket != "" && !strings.Contains(f.Socket, socketPlaceholder) {
		c.addAt([]string{"socket"}, "%q lacks %q, so every channel would share one path", clipText(f.Socket, 60), socketPlaceholder)
	}
	return &Config{
		Addr:         f.Addr,
		Port:         f.Port,
		ConnectToNet: f.ConnectToNet,
		DumpNet:      f.DumpNet,
		StartControl: f.StartControl,
		Interface:    f.Interface,
		TTL:          f.TTL,
		Cluster:      f.Cluster,
		Payload:      f.Payload,
		Heartbeat:    heartbeat,
		PeerTimeout:  peerTimeout,
		History:      f.History,
		GapTimeout:   gapTimeout,
		Key:          f.Key,
		KeyFile:      f.KeyFile,
		Socket:       f.Socket,
		SocketMode:   c.socketMode(f.SocketMode),
		MaxFrame:     f.MaxFrame,
		MaxPending:   f.MaxPending,
		Metrics:      f.Metrics,
		PingInterval: pingInterval,
		PingTimeout:  pingTimeout,
		Channels:     c.channels(f),
	}
}

// reservedGroup is the multicast block kept for local network control
// protocols (RFC 5771): OSPF, mDNS and the like.
var reservedGroup = netip.MustParsePrefix("224.0.0.0/24")

func (c *checker) checkAddr(s string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is4() || !a.IsMulticast():
		c.addAt([]string{"addr"}, "%q is not an IPv4 multicast address (224.0.0.0 to 239.255.255.255); try %q", clipText(s, 40), defaultAddr)
	case reservedGroup.Contains(a):
		c.addAt([]string{"addr"}, "%s is in 224.0.0.0/24, which is reserved for local network control; use %q, a site-local group", s, defaultAddr)
	}
}

// duration parses a duration key and checks its range; it returns 0 when
// the value is not usable.
func (c *checker) duration(key, s string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.addAt([]string{key}, "want a duration such as \"1s\" or \"500ms\", got %q", clipText(s, 40))
		return 0
	case d < lo || d > hi:
		c.addAt([]string{key}, "%v is out of range %v..%v", d, lo, hi)
		return 0
	}
	return d
}

// pingDurations parses and checks pinginterval and pingtimeout: an
// interval of 0 turns the liveness check off, and then the timeout is
// not used, but still checked.
func (c *checker) pingDurations(interval, timeout string) (time.Duration, time.Duration) {
	var iv time.Duration
	if d, err := time.ParseDuration(interval); err == nil && d == 0 {
		iv = 0
	} else {
		iv = c.duration("pinginterval", interval, minPingInterval, maxPingInterval)
	}
	to := c.duration("pingtimeout", timeout, 2*minPingInterval, maxPingTimeout)
	if iv > 0 && to > 0 && to < 2*iv {
		c.addAt([]string{"pingtimeout", "pinginterval"}, "pingtimeout (%v%s) must be at least twice pinginterval (%v)", to, c.ifDefault("pingtimeout"), iv)
	}
	return iv, to
}

// checkMetrics checks the metrics listener's address: "" or host:port.
func (c *checker) checkMetrics(s string) {
	if s == "" {
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		c.addAt([]string{"metrics"}, "%q is not a host:port address such as \"127.0.0.1:9464\"", clipText(s, 60))
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		c.addAt([]string{"metrics"}, "%q: port %q is not a number from 0 to 65535", clipText(s, 60), clipText(port, 20))
	}
}

func (c *checker) checkRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		c.addAt([]string{key}, "%d is out of range %d..%d", n, lo, hi)
	}
}

// socketMode parses the octal socket mode.
func (c *checker) socketMode(s string) fs.FileMode {
	m, err := strconv.ParseUint(s, 8, 32)
	switch {
	case err != nil:
		c.addAt([]string{"socketmode"}, "want an octal string such as %q, got %q", defaultSocketMode, clipText(s, 40))
	case m > 0o777:
		c.addAt([]string{"socketmode"}, "%q has bits beyond 0777; only permission bits are allowed", clipText(s, 40))
	case m&0o600 != 0o600:
		c.addAt([]string{"socketmode"}, "%q must include 0600 (the owner reads and writes)", clipText(s, 40))
	}
	return fs.FileMode(m) & fs.ModePerm
}

// channels converts the rules, adding or dropping the control channel as
// startcontrol says.
func (c *checker) channels(f *fileConfig) map[string]ChannelConfig {
	out := make(map[string]ChannelConfig, len(f.Channels)+1)
	for _, name := range slices.Sorted(maps.Keys(f.Channels)) {
		out[name] = c.rule(name, f.Channels[name])
	}
	_, ok := out[ControlChannel]
	switch {
	case f.StartControl && !ok:
		out[ControlChannel] = c.rule(ControlChannel, fileRule{})
	case !f.StartControl:
		delete(out, ControlChannel) // checked all the same, but not served
	}
	return out
}

// rule checks and converts the rule of channel name.
func (c *checker) rule(name string, r fileRule) ChannelConfig {
	key := "channels." + name + "."
	cc := ChannelConfig{
		Name:           name,
		PropagateToNet: r.PropagateToNet,
		DumpToConsole:  r.DumpToConsole,
		// The control channel never takes events from the network: a
		// request from another host must not steer this server.
		AcceptFromNet: name != ControlChannel,
	}
	if r.AcceptFromNet != nil {
		if *r.AcceptFromNet && name == ControlChannel {
			c.addAt([]string{key + "acceptfromnet"}, "the control channel never accepts events from the network")
		}
		cc.AcceptFromNet = *r.AcceptFromNet
	}
	cc.PropagateToChannels, cc.Propagate = c.propagate(key+"propagatetochannels", r.PropagateToChannels)
	return cc
}

// propagate checks and compiles a propagatetochannels value, which the
// shape check has made nil, a bool or a string.
func (c *checker) propagate(key string, v any) (string, *regexp.Regexp) {
	switch v := v.(type) {
	case bool:
		if v {
			c.addAt([]string{key}, `true is not allowed; use ".*" for all channels, or false for none`)
		}
		return "", nil
	case string:
		if v == "" {
			c.addAt([]string{key}, `empty expression; use ".*" for all channels, or false for none`)
			return "", nil
		}
		// Compile alone first: "a)|(b" would otherwise pass, unanchored.
		if _, err := regexp.Compile(v); err != nil {
			c.addAt([]string{key}, "%v", err)
			return "", nil
		}
		re, err := regexp.Compile(`^(?:` + v + `)$`)
		if err != nil { // an unclosed \Q swallows the anchor
			c.addAt([]string{key}, `cannot anchor the expression: \Q without \E quotes the anchor; end the quote with \E`)
			return "", nil
		}
		return v, re
	}
	return "", nil
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
