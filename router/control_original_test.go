package router_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// originalRequest sends a control request as the original netcluster's
// REPL did, on a JSON connection to the control channel: its client's
// exact object, channel, broadcast, event and data, without an id. It
// returns the data of the answer.
func originalRequest(t *testing.T, jc *jsonConn, cmd string, data any) any {
	t.Helper()
	d, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	jc.send(fmt.Sprintf(`{"channel":"control","broadcast":false,"event":"nc-control-%s","data":%s}`, cmd, d))
	m := jc.mustNext()
	if m["event"] != "nc-control-"+cmd+"-response" || m["broadcast"] != false {
		t.Fatalf("the original client heard %v, want the answer to %s", m, cmd)
	}
	return m["data"]
}

// TestControlOriginalForms asks showconfig, showchannel and showclient
// with the data the original REPL sent, and today's forms on the same
// connection.
func TestControlOriginalForms(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {"propagatetochannels": ".*"}, "B": {}}`)
	inA := ts.Dial(t, "A", bus.Name("worker"))
	jc := dialJSON(t, ts.Path(router.ControlChannel))

	cfg, ok := originalRequest(t, jc, "showconfig", "").(map[string]any)
	if !ok {
		t.Fatalf("showconfig '' answered %v, want the configuration object", cfg)
	}
	chans, _ := cfg["channels"].(map[string]any)
	a, _ := chans["A"].(map[string]any)
	if cfg["socket"] != ts.Template || a["propagatetochannels"] != ".*" || cfg["file"] != nil {
		t.Errorf("showconfig '' answered %v", cfg)
	}
	if today, _ := originalRequest(t, jc, "showconfig", nil).(map[string]any); today["file"] != "test.json" || today["config"] == nil {
		t.Errorf("showconfig null answered %v, want file and config", today)
	}

	clients, ok := originalRequest(t, jc, "showchannel", "A").([]any)
	if !ok || len(clients) != 1 {
		t.Fatalf("showchannel 'A' answered %v, want A's one client", clients)
	}
	if c, _ := clients[0].(map[string]any); c["id"] != inA.ID().String() || c["name"] != "worker" {
		t.Errorf("showchannel 'A' answered %v, want the client %v", clients, inA.ID())
	}
	if got, _ := originalRequest(t, jc, "showchannel", "Z").(map[string]any); !strings.Contains(fmt.Sprint(got["error"]), `no channel "Z"`) {
		t.Errorf("showchannel 'Z' answered %v, want an error naming Z", got)
	}
	if today, _ := originalRequest(t, jc, "showchannel", map[string]any{"channel": "A"}).(map[string]any); today["channel"] != "A" {
		t.Errorf("showchannel {channel: A} answered %v", today)
	}

	c, _ := originalRequest(t, jc, "showclient", map[string]any{"channel": "A", "client": inA.ID().String()}).(map[string]any)
	if c["id"] != inA.ID().String() || c["channel"] != "A" || c["name"] != "worker" {
		t.Errorf("showclient {channel, client} answered %v", c)
	}
	c, _ = originalRequest(t, jc, "showclient", map[string]any{"channel": "B", "client": inA.ID().String()}).(map[string]any)
	if !strings.Contains(fmt.Sprint(c["error"]), "no client") {
		t.Errorf("showclient of a client on another channel answered %v, want an error", c)
	}
	if today, _ := originalRequest(t, jc, "showclient", map[string]any{"id": inA.ID().String()}).(map[string]any); today["channel"] != "A" {
		t.Errorf("showclient {id} answered %v", today)
	}
}

// TestControlOriginalReload reloads with a configuration object, as the
// original REPL did: what showconfig answered, changed. A valid object
// is applied and answered "done"; an invalid one is refused naming the
// key, and changes nothing.
func TestControlOriginalReload(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	jc := dialJSON(t, ts.Path(router.ControlChannel))
	cfg := originalRequest(t, jc, "showconfig", "").(map[string]any)
	chans := cfg["channels"].(map[string]any)

	chans["B"] = map[string]any{"propagatetochannels": "A"}
	bad := deepCopy(cfg)
	bad["channels"].(map[string]any)["B"] = map[string]any{"propagatetochannels": "(unclosed"}
	bad["maxframe"] = 12
	ans, _ := originalRequest(t, jc, "reloadconfig", bad).(map[string]any)
	problems, _ := ans["problems"].([]any)
	var keys []string
	for _, p := range problems {
		p, _ := p.(map[string]any)
		keys = append(keys, fmt.Sprint(p["key"]))
		if p["file"] != router.ObjectConfigName {
			t.Errorf("problem %v: file, want %q", p, router.ObjectConfigName)
		}
	}
	slices.Sort(keys)
	if want := []string{"channels.B.propagatetochannels", "maxframe"}; !slices.Equal(keys, want) {
		t.Errorf("an invalid object answered %v; want problems with keys %v", ans, want)
	}
	if names := ts.Config().ChannelNames(); !slices.Equal(names, []string{"A", "control"}) || ts.Config().File != "test.json" {
		t.Errorf("after an invalid object the server has channels %v from %q; want it unchanged", names, ts.Config().File)
	}

	if got := originalRequest(t, jc, "reloadconfig", cfg); got != router.OriginalReloaded {
		t.Fatalf("a valid object answered %v, want %q", got, router.OriginalReloaded)
	}
	if names := ts.Config().ChannelNames(); !slices.Equal(names, []string{"A", "B", "control"}) {
		t.Errorf("after the reload the server has channels %v, want A, B, control", names)
	}
	if got := ts.Config().Targets("B"); !slices.Equal(got, []string{"A"}) {
		t.Errorf("B propagates to %v, want A", got)
	}
	// The new channel serves, and the asker was kept.
	b := ts.Dial(t, "B")
	rec := routertest.Record(t, ts.Dial(t, "A"), "hop")
	b.Emit("hop", 1)
	rec.WaitCount(t, "hop", 1)
	if cfg, _ := originalRequest(t, jc, "showconfig", nil).(map[string]any); cfg["file"] != router.ObjectConfigName {
		t.Errorf("showconfig after the reload names file %v, want %q", cfg["file"], router.ObjectConfigName)
	}
	// Today's form, a path, still reloads from a file.
	if ans, _ := originalRequest(t, jc, "reloadconfig", map[string]any{"path": "no-such-file.json"}).(map[string]any); !strings.Contains(fmt.Sprint(ans["error"]), "no-such-file.json") {
		t.Errorf("reloadconfig {path} answered %v, want an error naming the file", ans)
	}
}

// deepCopy copies a decoded JSON object deeply.
func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}
