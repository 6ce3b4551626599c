package router

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// planConfig parses a test configuration: body is the text between the
// braces. A body without a socket template gets a fixed one.
func planConfig(t testing.TB, body string) *Config {
	t.Helper()
	if !strings.Contains(body, `"socket"`) {
		body = `"socket": "/run/nc/{channel}.sock", ` + body
	}
	cfg, err := Parse("new.json", []byte("{"+body+"}"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openAs describes the channels of cfg as a server running it has them
// open.
func openAs(cfg *Config) map[string]openChannel {
	open := make(map[string]openChannel)
	for _, name := range cfg.ChannelNames() {
		open[name] = openChannel{path: cfg.SocketPath(name), mode: socketMode(cfg, name)}
	}
	return open
}

// TestMakePlan works out, from pairs of configurations, what applying the
// second to a server running the first opens, closes, reopens and
// changes: channels, the multicast link, the metrics listener.
func TestMakePlan(t *testing.T) {
	const (
		twoChannels = `"channels": {"A": {"propagatetochannels": "B"}, "B": {}}`
		netOn       = `"connecttonet": true, "interface": "lo"`
	)
	tests := []struct {
		name     string
		old, new string // bodies for planConfig; old "" is the empty configuration
		// open, when not nil, changes what the server has open.
		open func(map[string]openChannel)
		want plan
		// anySettings skips the check of report.Settings.
		anySettings bool
	}{
		{
			name: "nothing changes",
			old:  twoChannels, new: twoChannels,
			want: plan{keep: []string{"A", "B", "control"}},
		},
		{
			name: "start",
			new:  netOn + `, "metrics": "127.0.0.1:0", ` + twoChannels,
			want: plan{
				report: ReloadReport{Added: []string{"A", "B", "control"}},
				net:    linkOn, metrics: linkOn,
			},
			anySettings: true,
		},
		{
			name:        "start without network or metrics",
			new:         `"startcontrol": false, "channels": {"A": {}}`,
			want:        plan{report: ReloadReport{Added: []string{"A"}}},
			anySettings: true,
		},
		{
			name: "channel added",
			old:  twoChannels, new: `"channels": {"A": {"propagatetochannels": "B"}, "B": {}, "C": {}}`,
			want: plan{report: ReloadReport{Added: []string{"C"}}, keep: []string{"A", "B", "control"}},
		},
		{
			name: "channel removed",
			old:  twoChannels, new: `"channels": {"B": {}}`,
			want: plan{report: ReloadReport{Removed: []string{"A"}}, keep: []string{"B", "control"}},
		},
		{
			name: "everything removed",
			old:  twoChannels, new: `"startcontrol": false`,
			want: plan{report: ReloadReport{Removed: []string{"A", "B", "control"}, Settings: []string{"startcontrol"}}},
		},
		{
			name: "rule changed",
			old:  twoChannels, new: `"channels": {"A": {"propagatetochannels": false}, "B": {"dumptoconsole": true}}`,
			want: plan{report: ReloadReport{Changed: []string{"A", "B"}}, keep: []string{"A", "B", "control"}},
		},
		{
			name: "acceptfromnet changed",
			old:  twoChannels, new: `"channels": {"A": {"propagatetochannels": "B"}, "B": {"acceptfromnet": false}}`,
			want: plan{report: ReloadReport{Changed: []string{"B"}}, keep: []string{"A", "B", "control"}},
		},
		{
			name: "socket template changed",
			old:  twoChannels, new: `"socket": "/run/nc2/{channel}", "channels": {"A": {}, "B": {}}`,
			want: plan{report: ReloadReport{Changed: []string{"A"}, Reopened: []string{"A", "B", "control"},
				Settings: []string{"socket"}}},
		},
		{
			name: "one channel's socket moved",
			old:  twoChannels, new: twoChannels,
			open: func(open map[string]openChannel) { open["B"] = openChannel{path: "/elsewhere/B.sock", mode: 0o660} },
			want: plan{report: ReloadReport{Reopened: []string{"B"}}, keep: []string{"A", "control"}},
		},
		{
			name: "socket mode changed",
			old:  twoChannels, new: `"socketmode": "0600", ` + twoChannels,
			// The control channel's socket is 0600 whatever socketmode says.
			// The others' rules inherit the mode: they change.
			want: plan{report: ReloadReport{Settings: []string{"socketmode"}, Changed: []string{"A", "B"}},
				keep: []string{"A", "B", "control"}, remode: []string{"A", "B"}},
		},
		{
			name: "socket mode changed outside",
			old:  twoChannels, new: twoChannels,
			open: func(open map[string]openChannel) { open["A"] = openChannel{path: open["A"].path, mode: 0o666} },
			want: plan{keep: []string{"A", "B", "control"}, remode: []string{"A"}},
		},
		{
			name: "network on",
			old:  twoChannels, new: netOn + ", " + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"connecttonet", "interface"}},
				keep: []string{"A", "B", "control"}, net: linkOn},
		},
		{
			name: "network off",
			old:  netOn + ", " + twoChannels, new: `"interface": "lo", ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"connecttonet"}},
				keep: []string{"A", "B", "control"}, net: linkOff},
		},
		{
			name: "network key changed",
			old:  netOn + ", " + twoChannels, new: netOn + `, "port": 5000, ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"port"}},
				keep: []string{"A", "B", "control"}, net: linkReopen},
		},
		{
			name: "network key changed while off",
			old:  twoChannels, new: `"port": 5000, ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"port"}}, keep: []string{"A", "B", "control"}},
		},
		{
			name: "history resized in place",
			old:  netOn + ", " + twoChannels, new: netOn + `, "history": 1024, ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"history"}}, keep: []string{"A", "B", "control"}},
		},
		{
			name: "maxframe reaches clients and the link",
			old:  netOn + ", " + twoChannels, new: netOn + `, "maxframe": 4096, ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"maxframe"}},
				keep: []string{"A", "B", "control"}, net: linkReopen},
		},
		{
			name: "metrics on",
			old:  twoChannels, new: `"metrics": "127.0.0.1:9100", ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"metrics"}},
				keep: []string{"A", "B", "control"}, metrics: linkOn},
		},
		{
			name: "metrics off",
			old:  `"metrics": "127.0.0.1:9100", ` + twoChannels, new: twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"metrics"}},
				keep: []string{"A", "B", "control"}, metrics: linkOff},
		},
		{
			name: "metrics moved",
			old:  `"metrics": "127.0.0.1:9100", ` + twoChannels, new: `"metrics": "127.0.0.1:9101", ` + twoChannels,
			want: plan{report: ReloadReport{Settings: []string{"metrics"}},
				keep: []string{"A", "B", "control"}, metrics: linkReopen},
		},
		{
			name: "metrics kept",
			old:  `"metrics": "127.0.0.1:9100", ` + twoChannels, new: `"metrics": "127.0.0.1:9100", ` + twoChannels,
			want: plan{keep: []string{"A", "B", "control"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := &Config{}
			if tt.old != "" {
				old = planConfig(t, tt.old)
			}
			cfg := planConfig(t, tt.new)
			open := map[string]openChannel{}
			if tt.old != "" {
				open = openAs(old)
			}
			if tt.open != nil {
				tt.open(open)
			}
			got := makePlan(old, cfg, open)
			want := tt.want
			want.report.File = "new.json"
			if tt.anySettings {
				want.report.Settings = got.report.Settings
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("makePlan:\n got %s\nwant %s", planText(got), planText(want))
			}
		})
	}
}

func planText(p plan) string {
	r := p.report
	return fmt.Sprintf("added %q removed %q changed %q reopened %q settings %q keep %q remode %q net %v metrics %v",
		r.Added, r.Removed, r.Changed, r.Reopened, r.Settings, p.keep, p.remode, p.net, p.metrics)
}

// TestChangeOf covers every combination of a link's on/off change.
func TestChangeOf(t *testing.T) {
	tests := []struct {
		wasOn, isOn, differ bool
		want                linkChange
	}{
		{false, false, false, linkSame},
		{false, false, true, linkSame}, // keys of a link that stays off
		{true, true, false, linkSame},
		{false, true, true, linkOn},
		{true, false, true, linkOff},
		{true, true, true, linkReopen},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("was %v is %v differ %v", tt.wasOn, tt.isOn, tt.differ)
		t.Run(name, func(t *testing.T) {
			if got := changeOf(tt.wasOn, tt.isOn, tt.differ); got != tt.want {
				t.Errorf("changeOf = %v, want %v", got, tt.want)
			}
		})
	}
}
