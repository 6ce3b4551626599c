package router_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

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
	ts.Dial(t, "B")
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
