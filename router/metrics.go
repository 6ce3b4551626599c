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
		&natsCollector{s: s},
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
// channelCounters, the network's from netMetrics, a peer's from
// peerCounters, the rest from the descriptions below.
type statsCollector struct{ s *Server }

var (
	channelLabels = []string{"channel"}

	descReloads = prometheus.NewDesc("netcluster_reloads_total",
		"Configuration reloads applied.", nil, nil)
	descStart = prometheus.NewDesc("netcluster_start_time_seconds",
		"When the server started, in seconds since the Unix epoch.", nil, nil)

	// The network's metrics are read from the tags of NetStats
	// (netMetrics), a peer's from those of PeerAnswer (peerCounters),
	// but for when it was last seen, which stats shows as a time.
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
	for _, m := range netMetrics {
		ch <- m.desc
	}
	for _, c := range peerCounters {
		ch <- c.desc
	}
	for _, d := range []*prometheus.Desc{descReloads, descStart, descPeerLastSeen} {
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
	collectNetCounters(ch, &n)
	if !n.Connected {
		return
	}
	for _, p := range c.s.Peers() {
		a := peerAnswer(p)
		collectPeerCounters(ch, &a)
		ch <- prometheus.MustNewConstMetric(descPeerLastSeen, prometheus.GaugeValue, float64(p.LastSeen.UnixNano())/1e9, a.Node, a.Host)
	}
}
