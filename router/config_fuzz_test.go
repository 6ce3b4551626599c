package router

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary input. It must never panic; what it
// accepts must hold every invariant a Config promises, and what it
// rejects must come with well-formed problems.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{
		filepath.Join("..", "config.json"),
		filepath.Join("..", "testdata", "config", "*", "*.json"),
		filepath.Join("..", "testdata", "fuzz", "config", "*"),
	} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, tc := range parseProblemCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.json", data)
		if err != nil {
			checkConfigError(t, data, err)
			return
		}
		checkConfig(t, c)
	})
}

// checkConfigError checks that err is a well-formed *ConfigError for data.
func checkConfigError(t *testing.T, data []byte, err error) {
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is a %T, want a *ConfigError", err, err)
	}
	if ce.File != "fuzz.json" || len(ce.Problems) == 0 {
		t.Fatalf("ConfigError = %+v, want File fuzz.json and at least one problem", ce)
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, p := range ce.Problems {
		switch {
		case p.Line < 1 || p.Line > len(lines):
			t.Errorf("problem %+v: line out of 1..%d", p, len(lines))
		case p.Column < 1 || p.Column > len(lines[p.Line-1])+1:
			t.Errorf("problem %+v: column out of 1..%d", p, len(lines[p.Line-1])+1)
		case strings.Contains(p.Msg, "internal error"):
			t.Errorf("problem %+v: the shape check let through what encoding/json refuses", p)
		}
	}
	want := len(ce.Problems)
	if want > 1 {
		want++ // the "N problems" line
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != want {
		t.Errorf("Error() has %d lines, want %d:\n%s", got, want, err)
	}
}

// checkConfig checks the invariants of a Config that Parse accepted.
func checkConfig(t *testing.T, c *Config) {
	if a, err := netip.ParseAddr(c.Addr); err != nil || !a.Is4() || !a.IsMulticast() || reservedGroup.Contains(a) {
		t.Errorf("Addr %q is no usable IPv4 multicast group", c.Addr)
	}
	switch {
	case c.Port < 1 || c.Port > 65535,
		c.TTL < 0 || c.TTL > 255,
		c.MaxFrame < minMaxFrame || c.MaxFrame > maxMaxFrame,
		c.MaxPending < c.MaxFrame || c.MaxPending > maxMaxPending,
		len(c.Cluster) > maxClusterLen,
		c.Key != "" && c.KeyFile != "",
		c.Socket != "" && !strings.Contains(c.Socket, socketPlaceholder),
		c.SocketMode > 0o777 || c.SocketMode&0o600 != 0o600:
		t.Errorf("accepted out-of-bounds values: %+v", c)
	}
	if _, ok := c.Channels[ControlChannel]; ok != c.StartControl {
		t.Errorf("control channel present = %v, StartControl = %v", ok, c.StartControl)
	}
	for name, ch := range c.Channels {
		checkChannelConfig(t, c, name, ch)
	}
}

func checkChannelConfig(t *testing.T, c *Config, name string, ch ChannelConfig) {
	if p := nameProblem(name); p != "" || ch.Name != name {
		t.Errorf("channel %q (Name %q) accepted: %s", name, ch.Name, p)
	}
	if (ch.Propagate == nil) != (ch.PropagateToChannels == "") {
		t.Errorf("channel %q: Propagate %v for expression %q", name, ch.Propagate, ch.PropagateToChannels)
	}
	if ch.Propagate != nil && ch.Propagate.String() != "^(?:"+ch.PropagateToChannels+")$" {
		t.Errorf("channel %q: Propagate %v is not %q anchored", name, ch.Propagate, ch.PropagateToChannels)
	}
	if name == ControlChannel && ch.AcceptFromNet {
		t.Error("the control channel accepts events from the network")
	}
	targets := c.Targets(name)
	if !slices.IsSorted(targets) || slices.Contains(targets, name) {
		t.Errorf("Targets(%q) = %q: unsorted or holding the channel itself", name, targets)
	}
	for _, d := range targets {
		if _, ok := c.Channels[d]; !ok || !ch.Propagate.MatchString(d) {
			t.Errorf("Targets(%q) holds %q, which is no channel it propagates to", name, d)
		}
	}
}
