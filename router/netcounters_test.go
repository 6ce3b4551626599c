package router_test

import (
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"github.com/netcluster/netcluster/router"
	"github.com/netcluster/netcluster/router/routertest"
)

// netCounters is what the network part of stats and the network part of
// /metrics show, and how they agree: each row's stats keys, summed,
// equal its /metrics series, summed. A row without series is shown by
// stats alone. Every key the network part of stats shows (but
// connected) and every netcluster_net_ series of /metrics is in exactly
// one row, so renaming either side, or dropping or adding a counter
// without saying here where it shows, fails TestNetCountersAgree.
var netCounters = []struct {
	stats   []string
	metrics []string
}{
	{[]string{"datagrams_sent"}, []string{`netcluster_net_datagrams_total{direction="out"}`}},
	{[]string{"datagrams_received"}, []string{`netcluster_net_datagrams_total{direction="in"}`}},
	{[]string{"bytes_sent"}, []string{`netcluster_net_bytes_total{direction="out"}`}},
	{[]string{"bytes_received"}, []string{`netcluster_net_bytes_total{direction="in"}`}},
	{[]string{"messages_sent"}, []string{`netcluster_net_events_total{direction="out"}`}},
	{[]string{"delivered"}, []string{`netcluster_net_events_total{direction="in"}`}},
	{[]string{"own"}, []string{`netcluster_net_ignored_total{reason="own"}`}},
	{[]string{"other_cluster"}, []string{`netcluster_net_ignored_total{reason="other_cluster"}`}},
	{[]string{"duplicates"}, []string{`netcluster_net_ignored_total{reason="duplicate"}`}},
	{[]string{"no_channel"}, []string{`netcluster_net_ignored_total{reason="no_channel"}`}},
	{[]string{"refused"}, []string{`netcluster_net_ignored_total{reason="refused"}`}},
	{[]string{"delivered_already"}, []string{`netcluster_net_ignored_total{reason="delivered_already"}`}},
	// stats sums the link's drops of bad datagrams as dropped, and shows
	// the router's malformed events apart; /metrics has them by reason,
	// both kinds of malformed as one.
	{[]string{"dropped", "malformed"}, []string{
		`netcluster_net_dropped_total{reason="truncated"}`,
		`netcluster_net_dropped_total{reason="bad_magic"}`,
		`netcluster_net_dropped_total{reason="bad_version"}`,
		`netcluster_net_dropped_total{reason="bad_kind"}`,
		`netcluster_net_dropped_total{reason="malformed"}`,
		`netcluster_net_dropped_total{reason="bad_fragment"}`,
		`netcluster_net_dropped_total{reason="no_room"}`,
	}},
	{[]string{"expired"}, []string{`netcluster_net_dropped_total{reason="expired"}`}},
	{[]string{"evicted"}, []string{`netcluster_net_dropped_total{reason="evicted"}`}},
	{[]string{"send_failed", "send_errors"}, []string{`netcluster_net_dropped_total{reason="send_failed"}`}},
	{[]string{"unsent"}, []string{`netcluster_net_dropped_total{reason="unsent"}`}},
	{[]string{"dedup_cut"}, []string{`netcluster_net_dedup_cut_total`}},
	{[]string{"lost"}, []string{`netcluster_net_lost_datagrams_total`}},
	{[]string{"unsealed"}, []string{`netcluster_net_seal_dropped_total{reason="unsealed"}`}},
	{[]string{"sealed"}, []string{`netcluster_net_seal_dropped_total{reason="sealed"}`}},
	{[]string{"forged"}, []string{`netcluster_net_seal_dropped_total{reason="forged"}`}},
	{[]string{"replayed"}, []string{`netcluster_net_seal_dropped_total{reason="replayed"}`}},
	{[]string{"repaired"}, []string{`netcluster_net_repair_total{event="repaired"}`}},
	{[]string{"out_of_order"}, []string{`netcluster_net_repair_total{event="out_of_order"}`}},
	{[]string{"late"}, []string{`netcluster_net_repair_total{event="late"}`}},
	{[]string{"naks_sent"}, []string{`netcluster_net_repair_total{event="nak_sent"}`}},
	{[]string{"naks_received"}, []string{`netcluster_net_repair_total{event="nak_received"}`}},
	{[]string{"naks_heard"}, []string{`netcluster_net_repair_total{event="nak_heard"}`}},
	{[]string{"repairs_sent"}, []string{`netcluster_net_repair_total{event="repair_sent"}`}},
	{[]string{"resent"}, []string{`netcluster_net_repair_total{event="resent"}`}},
	{[]string{"unavailable"}, []string{`netcluster_net_repair_total{event="unavailable"}`}},
	{[]string{"repair_limited"}, []string{`netcluster_net_repair_total{event="limited"}`}},
	{[]string{"repairs_received"}, []string{`netcluster_net_repair_total{event="repair_received"}`}},
	{[]string{"ctl_dropped"}, []string{`netcluster_net_repair_total{event="ctl_dropped"}`}},
	{[]string{"held_bytes"}, []string{`netcluster_net_held_bytes`}},
	{[]string{"history_bytes"}, []string{`netcluster_net_history_bytes`}},
	{[]string{"reassembly_bytes"}, []string{`netcluster_net_reassembly_bytes`}},
	{[]string{"queue_bytes"}, []string{`netcluster_net_send_queue_bytes`}},
	{[]string{"peers"}, []string{`netcluster_net_peers`}},
	{[]string{"status_sent"}, []string{`netcluster_net_flow_total{event="status_sent"}`}},
	{[]string{"status_received"}, []string{`netcluster_net_flow_total{event="status_received"}`}},
	{[]string{"flow_held"}, []string{`netcluster_net_flow_total{event="held"}`}},
	{[]string{"flow_excluded"}, []string{`netcluster_net_flow_total{event="excluded"}`}},
	{[]string{"flow_held_ms"}, []string{`netcluster_net_flow_held_milliseconds_total`}},
	{[]string{"flow_receivers"}, []string{`netcluster_net_flow_receivers`}},
	{[]string{"history_released"}, nil},
	{[]string{"window"}, nil},
	{[]string{"heartbeats"}, nil},
	{[]string{"queue_full"}, nil},
	{[]string{"queue_peak"}, nil},
	{[]string{"gaps"}, nil},
	{[]string{"held_peak"}, nil},
	{[]string{"history_datagrams"}, nil},
}

// peerCounters are the per-peer counters: the key of a peer's map in
// stats and the /metrics series, labelled with the peer's node and host,
// that shows the same value.
var peerCounters = map[string]string{
	"datagrams":    "netcluster_peer_datagrams_total",
	"bytes":        "netcluster_peer_bytes_total",
	"lost":         "netcluster_peer_lost_datagrams_total",
	"repaired":     "netcluster_peer_repaired_datagrams_total",
	"flow_window":  "netcluster_peer_flow_window",
	"flow_held_ms": "netcluster_peer_flow_held_milliseconds_total",
	"last_seen":    "netcluster_peer_last_seen_seconds", // an RFC 3339 time in stats
}

// netMetricTypes are the types of the network metrics on /metrics.
var netMetricTypes = map[string]string{
	"netcluster_net_connected":                     "gauge",
	"netcluster_net_datagrams_total":               "counter",
	"netcluster_net_bytes_total":                   "counter",
	"netcluster_net_events_total":                  "counter",
	"netcluster_net_ignored_total":                 "counter",
	"netcluster_net_dropped_total":                 "counter",
	"netcluster_net_lost_datagrams_total":          "counter",
	"netcluster_net_seal_dropped_total":            "counter",
	"netcluster_net_dedup_cut_total":               "counter",
	"netcluster_net_repair_total":                  "counter",
	"netcluster_net_held_bytes":                    "gauge",
	"netcluster_net_history_bytes":                 "gauge",
	"netcluster_net_reassembly_bytes":              "gauge",
	"netcluster_net_send_queue_bytes":              "gauge",
	"netcluster_net_peers":                         "gauge",
	"netcluster_peer_datagrams_total":              "counter",
	"netcluster_peer_bytes_total":                  "counter",
	"netcluster_peer_lost_datagrams_total":         "counter",
	"netcluster_peer_repaired_datagrams_total":     "counter",
	"netcluster_peer_last_seen_seconds":            "gauge",
	"netcluster_net_flow_total":                    "counter",
	"netcluster_net_flow_held_milliseconds_total":  "counter",
	"netcluster_net_flow_receivers":                "gauge",
	"netcluster_peer_flow_window":                  "gauge",
	"netcluster_peer_flow_held_milliseconds_total": "counter",
}

// exposition is a scrape of /metrics: each series' value, and each
// metric's type.
type exposition struct {
	values map[string]float64 // by series: name{label="value",...}
	types  map[string]string
}

// parseMetrics reads the Prometheus text format of the series whose
// name starts with prefix.
func parseMetrics(t *testing.T, body, prefix string) exposition {
	t.Helper()
	e := exposition{values: map[string]float64{}, types: map[string]string{}}
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if strings.HasPrefix(name, prefix) {
				e.types[name] = typ
			}
			continue
		}
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		e.values[line[:i]] = v
	}
	return e
}

// netCountersServers starts two servers on one group and sends the
// first one traffic of every kind that is easy to make: events both
// ways, an event it delivers, one for a channel it lacks, one for a
// channel that refuses them, garbage, a message that is not an event and
// events of the zero id or sender (malformed, all three). It returns the first one and the second one's node.
func netCountersServers(t *testing.T) (*routertest.Server, uuid.UUID) {
	mcasttest.Need(t)
	port := mcasttest.Port()
	// Heartbeats every 200 ms: slow enough that the counters often stand
	// still between a stats request and a scrape.
	members := func(more string) string {
		return fmt.Sprintf(`"connecttonet": true, "interface": %q, "port": %d, "cluster": "t",
"heartbeat": "200ms", "peertimeout": "5s", %s`, mcasttest.Interface, port, more)
	}
	s1 := routertest.NewServer(t, members(`"metrics": "127.0.0.1:0",
"channels": {"A": {"propagatetonet": true}, "R": {"acceptfromnet": false}}`))
	s2 := routertest.NewServer(t, members(`"channels": {"A": {"propagatetonet": true}, "R": {"propagatetonet": true}, "Z": {"propagatetonet": true}}`))
	waitPeers(t, s1, s2)
	a1, a2 := s1.Dial(t, "A"), s2.Dial(t, "A")
	rec1, rec2 := routertest.Record(t, a1, ".*"), routertest.Record(t, a2, ".*")
	for _, e := range []struct {
		c    interface{ Emit(string, any) error }
		name string
	}{{a1, "there"}, {a2, "back"}, {s2.Dial(t, "R"), "refused"}, {s2.Dial(t, "Z"), "nowhere"}} {
		if err := e.c.Emit(e.name, "x"); err != nil {
			t.Fatal(err)
		}
	}
	rec2.WaitCount(t, "there", 1)
	rec1.WaitCount(t, "back", 1)

	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := multicast.Header{Kind: multicast.KindData, Records: 1, Cluster: multicast.ClusterIDOf("t"), Node: uuid.New()}
	datagram := func(msg []byte) []byte {
		h.Seq++
		return multicast.AppendRecord(multicast.AppendHeader(nil, &h), &multicast.Record{ID: uuid.New(), Count: 1, Total: len(msg), Payload: msg})
	}
	zero := func(mod func(*wire.Message)) []byte {
		m := wire.Message{ID: uuid.New(), Origin: h.Node, Sender: uuid.New(), Channel: "A", Event: "zero"}
		mod(&m)
		return wire.AppendEvent(nil, &m)[wire.HeaderLen:]
	}
	for _, b := range [][]byte{[]byte("garbage"), datagram([]byte{0x93, 0x01, 0x02, 0x03}),
		datagram(zero(func(m *wire.Message) { m.ID = uuid.Nil })), datagram(zero(func(m *wire.Message) { m.Sender = uuid.Nil }))} {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	routertest.WaitFor(t, "every kind of traffic to be counted", func() bool {
		st := s1.NetStats()
		return st.Delivered >= 1 && st.NoChannel == 1 && st.Refused == 1 && st.Malformed == 3 && st.Link.BadMagic == 1
	})
	if n := rec1.Count("zero"); n != 0 {
		t.Errorf("%d events of the zero id or sender delivered", n)
	}
	return s1, s2.Node()
}

// TestNetCountersAgree holds the network part of stats and of /metrics
// to netCounters, peerCounters and netMetricTypes: the same names,
// labels and types, and the same values, read while the counters stand
// still.
func TestNetCountersAgree(t *testing.T) {
	s1, node2 := netCountersServers(t)
	ctl := s1.Dial(t, router.ControlChannel)

	// The counters move with every heartbeat: take stats, a scrape and
	// stats again until the two answers agree, so the scrape between
	// them saw the same counters.
	var nw, peer map[string]any
	var metrics exposition
	routertest.WaitFor(t, "the counters to stand still for a scrape", func() bool {
		before := routertest.Control(t, ctl, "stats", nil)
		metrics = parseMetrics(t, scrape(t, s1, "/metrics"), "netcluster_")
		after := routertest.Control(t, ctl, "stats", nil)
		if !reflect.DeepEqual(before["network"], after["network"]) || !reflect.DeepEqual(before["peers"], after["peers"]) {
			return false
		}
		nw, _ = after["network"].(map[string]any)
		peer, _ = get(t, after, "peers", node2.String()).(map[string]any)
		return true
	})

	if nw["connected"] != true {
		t.Fatalf("stats network.connected = %v, want true", nw["connected"])
	}
	if v := metrics.values["netcluster_net_connected"]; v != 1 {
		t.Errorf("netcluster_net_connected = %v, want 1", v)
	}
	statsKeys := map[string]bool{"connected": true}
	series := map[string]bool{"netcluster_net_connected": true}
	for _, row := range netCounters {
		var fromStats int64
		for _, k := range row.stats {
			statsKeys[k] = true
			v, ok := nw[k]
			if !ok {
				t.Errorf("stats network lacks %s", k)
				continue
			}
			fromStats += num(t, v)
		}
		if row.metrics == nil {
			continue
		}
		var fromMetrics float64
		for _, s := range row.metrics {
			series[s] = true
			v, ok := metrics.values[s]
			if !ok {
				t.Errorf("/metrics lacks %s", s)
			}
			fromMetrics += v
		}
		if float64(fromStats) != fromMetrics {
			t.Errorf("stats network %s sum to %d, /metrics %s to %v", strings.Join(row.stats, "+"), fromStats, strings.Join(row.metrics, "+"), fromMetrics)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(nw)) {
		if !statsKeys[k] {
			t.Errorf("stats network shows %s, which netCounters does not name", k)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(metrics.values)) {
		if strings.HasPrefix(s, "netcluster_net_") && !series[s] {
			t.Errorf("/metrics shows %s, which netCounters does not name", s)
		}
	}

	// The peer's counters, under its node and host.
	labels := fmt.Sprintf(`{host=%q,peer=%q}`, peer["host"], node2.String())
	for key, metric := range peerCounters {
		got, ok := metrics.values[metric+labels]
		if !ok {
			t.Errorf("/metrics lacks %s%s", metric, labels)
			continue
		}
		if key == "last_seen" {
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(peer[key]))
			if want := float64(at.UnixNano()) / 1e9; err != nil || got != want {
				t.Errorf("%s%s = %v; stats last_seen %v (%v)", metric, labels, got, peer[key], err)
			}
			continue
		}
		if want := num(t, peer[key]); got != float64(want) {
			t.Errorf("%s%s = %v; stats peer %s = %d", metric, labels, got, key, want)
		}
	}
	for s := range metrics.values {
		name, _, _ := strings.Cut(s, "{")
		if strings.HasPrefix(name, "netcluster_peer_") && !slices.Contains(slices.Collect(maps.Values(peerCounters)), name) {
			t.Errorf("/metrics shows %s, which peerCounters does not name", s)
		}
	}

	// The types.
	for name, typ := range netMetricTypes {
		if got := metrics.types[name]; got != typ {
			t.Errorf("/metrics: %s is a %q, want %q", name, got, typ)
		}
	}
	for name := range metrics.types {
		if (strings.HasPrefix(name, "netcluster_net_") || strings.HasPrefix(name, "netcluster_peer_")) && netMetricTypes[name] == "" {
			t.Errorf("/metrics has %s, which netMetricTypes does not name", name)
		}
	}

	// What the traffic made nonzero agrees, so the rows above compared
	// live counters, not zeros.
	for _, k := range []string{"delivered", "no_channel", "refused", "malformed", "dropped", "messages_sent", "heartbeats", "peers"} {
		if num(t, nw[k]) == 0 {
			t.Errorf("stats network %s = 0 after traffic that counts it", k)
		}
	}
}

// TestNetCountersOff: off the network, stats and /metrics show that it
// is off, and no other network counter.
func TestNetCountersOff(t *testing.T) {
	ts := routertest.NewServer(t, `"metrics": "127.0.0.1:0", "channels": {"A": {}}`)
	ans := routertest.Control(t, ts.Dial(t, router.ControlChannel), "stats", nil)
	if nw, ok := ans["network"].(map[string]any); !ok || len(nw) != 1 || nw["connected"] != false {
		t.Errorf("stats network = %v, want connected: false alone", ans["network"])
	}
	metrics := parseMetrics(t, scrape(t, ts, "/metrics"), "netcluster_")
	for s, v := range metrics.values {
		switch {
		case s == "netcluster_net_connected":
			if v != 0 {
				t.Errorf("%s = %v, want 0", s, v)
			}
		case strings.HasPrefix(s, "netcluster_net_") || strings.HasPrefix(s, "netcluster_peer_"):
			t.Errorf("/metrics shows %s off the network", s)
		}
	}
	if _, ok := metrics.values["netcluster_net_connected"]; !ok {
		t.Error("/metrics lacks netcluster_net_connected")
	}
}
