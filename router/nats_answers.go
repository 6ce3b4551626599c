package router

import (
	"fmt"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
)

// addNatsPeers adds the servers heard over NATS to a peers answer. A
// server heard over both links shows twice, once per link (its addr
// says which).
func (s *Server) addNatsPeers(out *PeersAnswer) {
	out.NATS = s.nats.link.Load() != nil
	for _, p := range s.NATSPeers() {
		out.Peers = append(out.Peers, natsPeerAnswer(p))
	}
}

// addNatsStats adds the NATS link's counters and peers to a stats
// answer. A server heard over both links shows under its node id once,
// as the multicast link sees it.
func (s *Server) addNatsStats(out *StatsAnswer) {
	st, ok := s.NATSStats()
	if !ok {
		return
	}
	out.NATS = &st
	for _, p := range s.NATSPeers() {
		if _, dup := out.Peers[p.Node.String()]; !dup {
			out.Peers[p.Node.String()] = natsPeerAnswer(p)
		}
	}
}

// natsCounter is one field of NATSStats (its embedded natslink.Stats
// included) with a metric tag.
type natsCounter struct {
	index []int
	typ   prometheus.ValueType
	desc  *prometheus.Desc
}

// natsCounters are the NATS link's metrics, read from the tags of
// NATSStats: a new counter is a new tagged field there.
var natsCounters = readNatsCounters(reflect.TypeFor[NATSStats](), nil)

func readNatsCounters(t reflect.Type, prefix []int) []natsCounter {
	var out []natsCounter
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(append([]int(nil), prefix...), i)
		if f.Anonymous {
			out = append(out, readNatsCounters(f.Type, index)...)
			continue
		}
		name := f.Tag.Get("metric")
		if name == "" {
			continue // shown in stats alone
		}
		c := natsCounter{index: index, typ: prometheus.GaugeValue, desc: prometheus.NewDesc(name, f.Tag.Get("help"), nil, nil)}
		switch f.Type.Kind() {
		case reflect.Uint64:
			c.typ = prometheus.CounterValue
		case reflect.Bool, reflect.Int:
		default:
			panic(fmt.Sprintf("router: NATS counter %s is a %s; the counters must be bool, int or uint64", f.Name, f.Type))
		}
		out = append(out, c)
	}
	return out
}

// natsCollector exports the NATS link's counters while there is one.
type natsCollector struct{ s *Server }

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, n := range natsCounters {
		ch <- n.desc
	}
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.s.NATSStats()
	if !ok {
		return
	}
	v := reflect.ValueOf(&st).Elem()
	for _, n := range natsCounters {
		ch <- prometheus.MustNewConstMetric(n.desc, n.typ, netValue(v.FieldByIndex(n.index)))
	}
}
