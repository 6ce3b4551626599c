package router_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// roundTripRule is a rule whose every key differs from its default, as
// the file spells the values: the round trip's channel "A" has it.
var roundTripRule = map[string]string{
	"propagatetochannels": `"B|C"`,
	"propagatetonet":      "true",
	"dumptoconsole":       "true",
	"acceptfromnet":       "false",
	"socketmode":          `"0640"`,
	"socketgroup":         fmt.Sprintf("%q", strconv.Itoa(os.Getgid())),
	"allow":               fmt.Sprintf(`[%d, "group:%d"]`, os.Getuid(), os.Getgid()),
	"publish":             fmt.Sprintf(`["%d"]`, os.Getuid()),
	"maxclients":          "100",
	"maxclientsperuid":    "10",
	"overflow":            `"drop"`,
	"propagatetonats":     "true",
	"acceptfromnats":      "true",
}

// mustStayDefault are the keys the round trip leaves at their defaults,
// and why.
var mustStayDefault = map[string]string{
	"startcontrol": "showconfig is asked on the control channel",
	"key":          "it is a secret, never shown: TestShowconfigSecret covers it, with keyfile set here",
}

// TestShowconfigRoundTrip sets every key of the schema to a value other
// than its default, asks the running server for showconfig on the control
// channel, saves the answer's config as a file and loads it: the
// configuration loaded is the one the server runs. A key that showconfig
// leaves out, or shows in a way the loader reads otherwise, fails it; so
// does a key of the schema that this test gives no value.
func TestShowconfigRoundTrip(t *testing.T) {
	dir := routertest.ShortTempDir(t)
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("round-trip-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	template := dir + "/{channel}.sock"
	values := map[string]string{
		"addr": `"239.255.12.34"`, "port": fmt.Sprint(mcasttest.Port()),
		"connecttonet": "true", "dumpnet": "true", "interface": fmt.Sprintf("%q", mcasttest.Interface),
		"ttl": "2", "cluster": `"round-trip"`, "payload": "1200",
		"heartbeat": `"250ms"`, "peertimeout": `"2s"`, "history": "65536", "gaptimeout": `"500ms"`, "flowcontrol": `"none"`, "maxrate": "1000000",
		"keyfile": fmt.Sprintf("%q", keyFile), "socket": fmt.Sprintf("%q", template), "socketmode": `"0600"`,
		"maxframe": "65536", "maxpending": "131072", "metrics": `"127.0.0.1:0"`,
		"pinginterval": `"2s"`, "pingtimeout": `"7s"`, "memorylimit": "1073741824", "stalltimeout": `"750ms"`,
		"retainbytes": "65536", "retainage": `"5s"`,
	}
	inNamespace := false
	t.Run("private network namespace", func(t *testing.T) {
		mcasttest.Need(t) // skips, and leaves inNamespace false, outside one
		inNamespace = true
	})
	stayDefault := maps.Clone(mustStayDefault)
	if !inNamespace {
		// Outside a private network namespace the server must not join a
		// group: connecttonet keeps its default.
		stayDefault["connecttonet"] = "no private network namespace"
		delete(values, "connecttonet")
	}
	var members []string
	for _, name := range router.SettingNames() {
		v, ok := values[name]
		switch {
		case ok && name != "socket": // routertest sets the socket template
			members = append(members, fmt.Sprintf("%q: %s", name, v))
		case !ok && stayDefault[name] == "":
			t.Errorf("key %q has no value in the round trip: give it one other than its default", name)
		}
	}
	var rule []string
	for _, name := range router.RuleKeyNames() {
		v, ok := roundTripRule[name]
		if !ok {
			t.Errorf("rule key %q has no value in the round trip: give it one other than its default", name)
			continue
		}
		rule = append(rule, fmt.Sprintf("%q: %s", name, v))
	}
	members = append(members, fmt.Sprintf(`"channels": {"A": {%s}, "B": {}, "C": {"dumptoconsole": true}}`, strings.Join(rule, ", ")))
	// The nats object's keys but its secrets and files, which the link
	// reads at start; no NATS server listens there, and the server starts
	// all the same.
	members = append(members, `"nats": {"url": ["nats://127.0.0.1:1", "nats://127.0.0.1:2"], "prefix": "rt.trip", "name": "round trip", "buffer": 4096}`)
	ts := routertest.NewServerWith(t, dir, template, strings.Join(members, ",\n"))

	running := ts.Config()
	checkNotDefault(t, running, stayDefault)
	saved := filepath.Join(dir, "saved.json")
	shown := saveShowconfig(t, ts, saved)
	for _, name := range append(router.SettingNames(), "channels") {
		if _, ok := shown[name]; !ok {
			t.Errorf("showconfig leaves out %q", name)
		}
	}
	loaded, err := router.LoadFile(saved)
	if err != nil {
		t.Fatalf("the configuration showconfig shows does not load: %v", err)
	}
	if d := configDiff(running, loaded); d != "" {
		t.Errorf("saved from showconfig and loaded, the configuration differs (-running +loaded):\n%s", d)
	}
}

// checkNotDefault checks that every key of c but those stayDefault
// names, and every key of channel A's rule, differs from its default.
func checkNotDefault(t *testing.T, c *router.Config, stayDefault map[string]string) {
	t.Helper()
	def := router.Defaults()
	for _, name := range router.SettingNames() {
		if stayDefault[name] == "" && router.SettingValue(c, name) == router.SettingValue(def, name) {
			t.Errorf("the round trip leaves %q at its default %v", name, router.SettingValue(c, name))
		}
	}
	for _, name := range router.RuleKeyNames() {
		if router.RuleValue(c.Channels["A"], name) == router.RuleValue(router.ChannelConfig{Name: "A", AcceptFromNet: true}, name) {
			t.Errorf("the round trip leaves rule key %q of A at its default", name)
		}
	}
}

// saveShowconfig asks ts for showconfig on a client of its control
// channel, writes the config it shows, as JSON, to path, and returns it.
func saveShowconfig(t *testing.T, ts *routertest.Server, path string) map[string]any {
	t.Helper()
	ans := routertest.Control(t, ts.Dial(t, router.ControlChannel), "showconfig", nil)
	cfg, ok := ans["config"].(map[string]any)
	if !ok {
		t.Fatalf("showconfig answered %v", ans)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// configDiff lists the keys whose values differ in a and b, "" if none
// does. File, where each was read from, is not compared, nor the compiled
// expressions, whose source is.
func configDiff(a, b *router.Config) string {
	var d []string
	for _, name := range router.SettingNames() {
		if va, vb := router.SettingValue(a, name), router.SettingValue(b, name); va != vb {
			d = append(d, fmt.Sprintf("-%s: %v\n+%s: %v", name, va, name, vb))
		}
	}
	names := slices.Sorted(slices.Values(append(a.ChannelNames(), b.ChannelNames()...)))
	for _, ch := range slices.Compact(names) {
		ra, oka := a.Channels[ch]
		rb, okb := b.Channels[ch]
		if oka != okb {
			d = append(d, fmt.Sprintf("channel %s: in the first %v, in the second %v", ch, oka, okb))
			continue
		}
		for _, name := range router.RuleKeyNames() {
			if va, vb := router.RuleValue(ra, name), router.RuleValue(rb, name); va != vb {
				d = append(d, fmt.Sprintf("-channels.%s.%s: %v\n+channels.%s.%s: %v", ch, name, va, ch, name, vb))
			}
		}
	}
	// Whatever the schema does not list must be equal too: a field of
	// Config without a key fails here.
	ca, cb := *a, *b
	ca.File, cb.File = "", ""
	ca.Channels, cb.Channels = nil, nil
	if len(d) == 0 && !reflect.DeepEqual(ca, cb) {
		d = append(d, fmt.Sprintf("-%+v\n+%+v", ca, cb))
	}
	return strings.Join(d, "\n")
}

// TestShowconfigSecret: showconfig never shows the key, and a file saved
// from it does not load until the secret is supplied again: the loader
// refuses the placeholder, naming the key, its line and how to supply it.
func TestShowconfigSecret(t *testing.T) {
	const secret = "never-shown-secret"
	ts := routertest.NewServer(t, fmt.Sprintf(`"key": %q`, secret))
	saved := filepath.Join(ts.Dir, "saved.json")
	saveShowconfig(t, ts, saved)
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) {
		t.Fatalf("showconfig shows the secret:\n%s", data)
	}
	_, err = router.LoadFile(saved)
	var ce *router.ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 {
		t.Fatalf("loading the saved file: %v, want one problem", err)
	}
	p := ce.Problems[0]
	line := 1 + strings.Count(string(data[:strings.Index(string(data), `"key":`)]), "\n")
	if p.Key != "key" || p.Line != line || !strings.Contains(p.Msg, `"keyfile"`) || !strings.Contains(p.Msg, `"key"`) {
		t.Errorf("problem %+v; want key \"key\" at line %d, saying to supply it with \"key\" or \"keyfile\"", p, line)
	}
	if !strings.HasPrefix(err.Error(), saved+":") {
		t.Errorf("error %q does not name the file", err)
	}
}
