package router_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// scrape GETs a path of the metrics endpoint and returns the body.
func scrape(t *testing.T, ts *routertest.Server, path string) string {
	t.Helper()
	addr := ts.MetricsAddr()
	if addr == nil {
		t.Fatal("the metrics endpoint is off")
	}
	resp, err := http.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	ts := routertest.NewServer(t, `"metrics": "127.0.0.1:0", "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	a := ts.Dial(t, "A")
	routertest.Record(t, ts.Dial(t, "B"), "e") // a listener: the server sends it what it listens to
	for range 5 {
		if err := a.Emit("e", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "5 events counted", func() bool { return stats(t, ts, "A").EventsIn == 5 })
	body := scrape(t, ts, "/metrics")
	for _, want := range []string{
		"# TYPE netcluster_channel_clients gauge",
		`netcluster_channel_clients{channel="A"} 1`,
		`netcluster_channel_clients{channel="control"} 0`,
		"# TYPE netcluster_channel_events_in_total counter",
		`netcluster_channel_events_in_total{channel="A"} 5`,
		`netcluster_channel_frames_out_total{channel="B"} 5`,
		`netcluster_channel_slow_consumer_disconnects_total{channel="A"} 0`,
		`netcluster_channel_undeliverable_total{channel="B"} 0`,
		"netcluster_reloads_total 0",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(scrape(t, ts, "/debug/pprof/"), "goroutine") {
		t.Error("/debug/pprof/ does not list the goroutine profile")
	}

	// A reload that turns metrics off closes the listener.
	addr := ts.MetricsAddr().String()
	if _, err := ts.Reload(ts.ParseConfig(t, `"channels": {"A": {}, "B": {}}`)); err != nil {
		t.Fatal(err)
	}
	if ts.MetricsAddr() != nil {
		t.Error("MetricsAddr after metrics were turned off")
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("the old metrics listener still answers")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestMetricsOff(t *testing.T) {
	ts := routertest.NewServer(t, `"channels": {"A": {}}`)
	if ts.MetricsAddr() != nil {
		t.Errorf("metrics listen at %v with no metrics key", ts.MetricsAddr())
	}
}

// TestMetricsAddressInUse: a metrics address that cannot be had fails
// Start, which then leaves no socket behind, and fails a reload, which
// then changes nothing.
func TestMetricsAddressInUse(t *testing.T) {
	ts := routertest.NewServer(t, `"metrics": "127.0.0.1:0", "channels": {"A": {}}`)
	taken := ts.MetricsAddr().String()

	dir := routertest.ShortTempDir(t)
	cfg, err := router.Parse("second.json", []byte(`{"socket": "`+dir+`/{channel}.sock", "metrics": "`+taken+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)}); err == nil {
		srv.Close()
		t.Fatal("a second server on the metrics address started")
	} else if !strings.Contains(err.Error(), "metrics endpoint") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(dir + "/control.sock"); !os.IsNotExist(err) {
		t.Errorf("the failed server left its socket: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := ts.Reload(ts.ParseConfig(t, `"metrics": "`+ln.Addr().String()+`", "channels": {"A": {}, "B": {}}`)); err == nil {
		t.Fatal("reload to a metrics address in use: no error")
	}
	if ts.MetricsAddr().String() != taken || len(ts.Channels()) != 2 {
		t.Error("a failed reload changed the server")
	}
	scrape(t, ts, "/metrics")
	http.DefaultClient.CloseIdleConnections()
}

// TestChannelCountersAgree holds the copies of a channel's counters to
// their one table, channel.Stats: each field that the stats answer
// shows is on /metrics under its metric tag with the same value, and
// the answer's total is the sum of its channels.
func TestChannelCountersAgree(t *testing.T) {
	ts := routertest.NewServer(t, `"metrics": "127.0.0.1:0", "channels": {"A": {"propagatetochannels": "B"}, "B": {}}`)
	a := ts.Dial(t, "A")
	routertest.Record(t, ts.Dial(t, "B"), "e") // a listener: the server sends it what it listens to
	ctl := ts.Dial(t, router.ControlChannel)
	for range 7 {
		if err := a.Emit("e", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "7 events on B", func() bool { return stats(t, ts, "B").FramesOut == 7 })
	body := scrape(t, ts, "/metrics")
	ans := routertest.Control(t, ctl, "stats", nil)

	typ := reflect.TypeFor[channel.Stats]()
	shown := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		metric := f.Tag.Get("metric")
		if key == "-" {
			if metric != "" {
				t.Errorf("channel.Stats.%s: on /metrics as %s, but not in stats", f.Name, metric)
			}
			continue
		}
		shown++
		if metric == "" || f.Tag.Get("help") == "" {
			t.Errorf("channel.Stats.%s: in stats as %s, but with no metric and help", f.Name, key)
			continue
		}
		var sum int64
		for _, v := range get(t, ans, "channels").(map[string]any) {
			sum += num(t, get(t, v, key))
		}
		if got := num(t, get(t, ans, "total", key)); got != sum {
			t.Errorf("total %s = %d, want the channels' sum %d", key, got, sum)
		}
		// The control channel's counters move with every request; A
		// and B stand still once B has its events.
		for _, ch := range []string{"A", "B"} {
			n := num(t, get(t, ans, "channels", ch, key))
			want := fmt.Sprintf("%s{channel=%q} %s\n", metric, ch, strconv.FormatFloat(float64(n), 'g', -1, 64))
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q (stats shows %s %s = %d)", want, ch, key, n)
			}
		}
	}
	if shown < 10 {
		t.Errorf("stats shows %d counters of channel.Stats, want at least 10", shown)
	}
	if n := num(t, get(t, ans, "channels", "B", "frames_out")); n != 7 {
		t.Errorf("B frames_out = %d, want 7", n)
	}
}
