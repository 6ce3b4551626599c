package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves /metrics and /debug/pprof/ on the address of the
// configuration key "metrics".
type metricsServer struct {
	addr net.Addr
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// startMetrics listens on addr and serves the server's metrics there.
// The listener is open when it returns, so a bad address fails Start or
// Reload, not later.
func (s *Server) startMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("router: metrics endpoint: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&statsCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m := &metricsServer{
		addr: ln.Addr(),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)},
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics endpoint stopped", "addr", m.addr.String(), "err", err)
		}
	}()
	s.log.Info("metrics endpoint listening", "addr", m.addr.String(), "path", "/metrics")
	if ta, ok := m.addr.(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
		s.log.Warn("the metrics endpoint, with its profiles, is reachable from other hosts; bind it to 127.0.0.1 unless the network is trusted",
			"addr", m.addr.String())
	}
	return m, nil
}

// close stops the listener and every open request, and waits for Serve
// to return.
func (m *metricsServer) close() {
	m.srv.Close()
	<-m.done
}

// MetricsAddr is the address the metrics endpoint listens on, or nil when
// it is off. With "metrics": "127.0.0.1:0" it tells which port was chosen.
func (s *Server) MetricsAddr() net.Addr {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.metrics == nil || s.closed {
		return nil
	}
	return s.metrics.addr
}

// statsCollector exports the counters that the control request stats
// shows, read at each scrape. A channel's counters come from
// channelCounters, the rest from the descriptions below.
type statsCollector struct{ s *Server }

var (
	channelLabels = []string{"channel"}

	descReloads = prometheus.NewDesc("netcluster_reloads_total",
		"Configuration reloads applied.", nil, nil)
	descStart = prometheus.NewDesc("netcluster_start_time_seconds",
		"When the server started, in seconds since the Unix epoch.", nil, nil)

	descNetConnected = prometheus.NewDesc("netcluster_net_connected",
		"1 when the server has joined the multicast group.", nil, nil)
	descNetDatagrams = prometheus.NewDesc("netcluster_net_datagrams_total",
		"Datagrams sent (direction=\"out\") and received (direction=\"in\", good or bad).", []string{"direction"}, nil)
	descNetBytes = prometheus.NewDesc("netcluster_net_bytes_total",
		"Bytes of the datagrams sent and received.", []string{"direction"}, nil)
	descNetEvents = prometheus.NewDesc("netcluster_net_events_total",
		"Events sent to the group (direction=\"out\") and delivered from it to a local channel (direction=\"in\").", []string{"direction"}, nil)
	descNetIgnored = prometheus.NewDesc("netcluster_net_ignored_total",
		"Datagrams and events from the network set aside, by reason: own, other_cluster, duplicate, no_channel, refused.", []string{"reason"}, nil)
	descNetDropped = prometheus.NewDesc("netcluster_net_dropped_total",
		"Datagrams, fragments and events from the network dropped as bad or unplaceable, and sends that failed, by reason.", []string{"reason"}, nil)
	descNetLost = prometheus.NewDesc("netcluster_net_lost_datagrams_total",
		"Datagrams of peers that never arrived nor were repaired, skipped.", nil, nil)
	descNetRepair = prometheus.NewDesc("netcluster_net_repair_total",
		"Loss repair: datagrams repaired (event=\"repaired\"), held out of order (\"out_of_order\"), late, NAKs sent, received, and heard from others (\"nak_heard\"), repairs sent, datagrams resent, sequence numbers answered unavailable, NAK answers cut by the rate (\"limited\"), repairs received, NAKs and repairs dropped unsent (\"ctl_dropped\").", []string{"event"}, nil)
	descNetHeld = prometheus.NewDesc("netcluster_net_held_bytes",
		"Bytes held for datagrams that arrived ahead of a missing one.", nil, nil)
	descNetHistory = prometheus.NewDesc("netcluster_net_history_bytes",
		"Bytes of sent datagrams kept to answer NAKs.", nil, nil)
	descPeerRepaired = prometheus.NewDesc("netcluster_peer_repaired_datagrams_total",
		"Datagrams of the peer found missing that then arrived in a repair.", []string{"peer", "host"}, nil)
	descNetReassembly = prometheus.NewDesc("netcluster_net_reassembly_bytes",
		"Bytes held for incomplete fragmented messages.", nil, nil)
	descNetQueue = prometheus.NewDesc("netcluster_net_send_queue_bytes",
		"Bytes charged to the multicast send queue: messages queued or being written.", nil, nil)
	descPeers = prometheus.NewDesc("netcluster_net_peers",
		"Servers of the cluster heard from lately.", nil, nil)
	descNetSeal = prometheus.NewDesc("netcluster_net_seal_dropped_total",
		"Datagrams dropped by sealing, by reason: unsealed (this server has a key), sealed (it has none), forged (failing authentication), replayed.", []string{"reason"}, nil)

	peerLabels       = []string{"peer", "host"}
	descPeerDatagram = prometheus.NewDesc("netcluster_peer_datagrams_total",
		"Datagrams received from the peer since it joined the peer table.", peerLabels, nil)
	descPeerBytes = prometheus.NewDesc("netcluster_peer_bytes_total",
		"Bytes of the datagrams received from the peer.", peerLabels, nil)
	descPeerLost = prometheus.NewDesc("netcluster_peer_lost_datagrams_total",
		"Datagrams of the peer that never arrived nor were repaired, skipped.", peerLabels, nil)
	descPeerLastSeen = prometheus.NewDesc("netcluster_peer_last_seen_seconds",
		"When the peer's last datagram arrived, in seconds since the Unix epoch.", peerLabels, nil)
)

// Describe sends the descriptions of every metric.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range channelCounters {
		if c.desc != nil {
			ch <- c.desc
		}
	}
	for _, d := range []*prometheus.Desc{descReloads, descStart,
		descNetConnected, descNetDatagrams, descNetBytes, descNetEvents, descNetIgnored, descNetDropped,
		descNetLost, descNetReassembly, descNetQueue, descPeers,
		descNetSeal, descNetRepair, descNetHeld, descNetHistory,
		descPeerDatagram, descPeerBytes, descPeerLost, descPeerLastSeen, descPeerRepaired} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ci := range c.s.Channels() {
		for _, cc := range channelCounters {
			if cc.desc != nil {
				ch <- cc.metric(&ci.Stats, ci.Name)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(c.s.reloads.Load()))
	ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(c.s.started.UnixNano())/1e9)
	c.collectNet(ch)
}

// collectNet reads the counters of the network link and its peers.
func (c *statsCollector) collectNet(ch chan<- prometheus.Metric) {
	n := c.s.NetStats()
	l := n.Link
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	connected := 0.0
	if n.Connected {
		connected = 1
	}
	metric(descNetConnected, prometheus.GaugeValue, connected)
	if !n.Connected {
		return
	}
	metric(descNetDatagrams, prometheus.CounterValue, float64(l.DatagramsSent), "out")
	metric(descNetDatagrams, prometheus.CounterValue, float64(l.DatagramsReceived), "in")
	metric(descNetBytes, prometheus.CounterValue, float64(l.BytesSent), "out")
	metric(descNetBytes, prometheus.CounterValue, float64(l.BytesReceived), "in")
	metric(descNetEvents, prometheus.CounterValue, float64(l.MessagesSent), "out")
	metric(descNetEvents, prometheus.CounterValue, float64(n.Delivered), "in")
	for reason, v := range map[string]uint64{"own": l.Own, "other_cluster": l.OtherCluster, "duplicate": l.Duplicates,
		"no_channel": n.NoChannel, "refused": n.Refused} {
		metric(descNetIgnored, prometheus.CounterValue, float64(v), reason)
	}
	for reason, v := range map[string]uint64{"truncated": l.Truncated, "bad_magic": l.BadMagic, "bad_version": l.BadVersion,
		"bad_kind": l.BadKind, "malformed": l.Malformed + n.Malformed, "bad_fragment": l.BadFragment, "no_room": l.NoRoom,
		"expired": l.Expired, "evicted": l.Evicted, "send_failed": n.SendFailed + l.SendErrors,
		"unsent": l.Unsent} {
		metric(descNetDropped, prometheus.CounterValue, float64(v), reason)
	}
	metric(descNetLost, prometheus.CounterValue, float64(l.Lost))
	for reason, v := range map[string]uint64{"unsealed": l.Unsealed, "sealed": l.Sealed, "forged": l.Forged, "replayed": l.Replayed} {
		metric(descNetSeal, prometheus.CounterValue, float64(v), reason)
	}
	for event, v := range map[string]uint64{"repaired": l.Repaired, "out_of_order": l.OutOfOrder, "late": l.Late,
		"nak_sent": l.NAKsSent, "nak_received": l.NAKsReceived, "nak_heard": l.NAKsHeard, "repair_sent": l.RepairsSent, "resent": l.Resent,
		"unavailable": l.Unavailable, "limited": l.RepairLimited, "repair_received": l.RepairsIn, "ctl_dropped": l.CtlDropped} {
		metric(descNetRepair, prometheus.CounterValue, float64(v), event)
	}
	metric(descNetHeld, prometheus.GaugeValue, float64(l.HeldBytes))
	metric(descNetHistory, prometheus.GaugeValue, float64(l.HistoryBytes))
	metric(descNetReassembly, prometheus.GaugeValue, float64(l.ReassemblyBytes))
	metric(descNetQueue, prometheus.GaugeValue, float64(l.QueueBytes))
	peers := c.s.Peers()
	metric(descPeers, prometheus.GaugeValue, float64(len(peers)))
	for _, p := range peers {
		id := p.Node.String()
		metric(descPeerDatagram, prometheus.CounterValue, float64(p.Datagrams), id, p.Host)
		metric(descPeerBytes, prometheus.CounterValue, float64(p.Bytes), id, p.Host)
		metric(descPeerLost, prometheus.CounterValue, float64(p.Lost), id, p.Host)
		metric(descPeerRepaired, prometheus.CounterValue, float64(p.Repaired), id, p.Host)
		metric(descPeerLastSeen, prometheus.GaugeValue, float64(p.LastSeen.UnixNano())/1e9, id, p.Host)
	}
}
