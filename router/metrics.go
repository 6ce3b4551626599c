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
// shows, read at each scrape.
type statsCollector struct{ s *Server }

var (
	channelLabels = []string{"channel"}

	descClients = prometheus.NewDesc("netcluster_channel_clients",
		"Clients connected to the channel.", channelLabels, nil)
	descEventsIn = prometheus.NewDesc("netcluster_channel_events_in_total",
		"Events received from the channel's clients.", channelLabels, nil)
	descBytesIn = prometheus.NewDesc("netcluster_channel_bytes_in_total",
		"Bytes of the events received from the channel's clients.", channelLabels, nil)
	descFramesOut = prometheus.NewDesc("netcluster_channel_frames_out_total",
		"Frames queued for the channel's clients.", channelLabels, nil)
	descBytesOut = prometheus.NewDesc("netcluster_channel_bytes_out_total",
		"Bytes of the frames queued for the channel's clients.", channelLabels, nil)
	descDropped = prometheus.NewDesc("netcluster_channel_dropped_total",
		"Frames not delivered because their receiver was closing or slow.", channelLabels, nil)
	descSlow = prometheus.NewDesc("netcluster_channel_slow_consumer_disconnects_total",
		"Clients disconnected for passing maxpending.", channelLabels, nil)
	descTooBig = prometheus.NewDesc("netcluster_channel_too_big_disconnects_total",
		"Clients disconnected for a frame over maxframe.", channelLabels, nil)
	descUndeliverable = prometheus.NewDesc("netcluster_channel_undeliverable_total",
		"Addressed events (replies) sent on the channel whose client was not connected.", channelLabels, nil)
	descReloads = prometheus.NewDesc("netcluster_reloads_total",
		"Configuration reloads applied.", nil, nil)
	descStart = prometheus.NewDesc("netcluster_start_time_seconds",
		"When the server started, in seconds since the Unix epoch.", nil, nil)
)

// Describe sends the descriptions of every metric.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descEventsIn, descBytesIn, descFramesOut, descBytesOut,
		descDropped, descSlow, descTooBig, descUndeliverable, descReloads, descStart} {
		ch <- d
	}
}

// Collect reads the counters.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ci := range c.s.Channels() {
		st := ci.Stats
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, ci.Name)
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), ci.Name)
		}
		gauge(descClients, float64(st.Clients))
		counter(descEventsIn, st.EventsIn)
		counter(descBytesIn, st.BytesIn)
		counter(descFramesOut, st.FramesOut)
		counter(descBytesOut, st.BytesOut)
		counter(descDropped, st.Dropped)
		counter(descSlow, st.SlowConsumers)
		counter(descTooBig, st.TooBig)
		counter(descUndeliverable, st.Undeliverable)
	}
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(c.s.reloads.Load()))
	ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(c.s.started.UnixNano())/1e9)
}
