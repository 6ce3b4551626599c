package router

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/netcluster/netcluster/channel"
	"github.com/prometheus/client_golang/prometheus"
)

// channelCounter is one field of channel.Stats, read from its tags: the
// table of a channel's counters is channel.Stats itself. The control
// answers show the struct as it is (its json tags); the total of stats
// and the Prometheus metrics walk channelCounters. A new counter is one
// new field there, with its tags.
type channelCounter struct {
	field int              // index in channel.Stats
	gauge bool             // an int: a value now, not a count since the channel opened
	desc  *prometheus.Desc // nil when the field has no metric tag
}

// channelCounters are the fields of channel.Stats, in order.
var channelCounters = readChannelCounters()

func readChannelCounters() []channelCounter {
	t := reflect.TypeFor[channel.Stats]()
	out := make([]channelCounter, t.NumField())
	for i := range out {
		f := t.Field(i)
		c := channelCounter{field: i}
		switch f.Type.Kind() {
		case reflect.Int:
			c.gauge = true
		case reflect.Uint64:
		default:
			panic(fmt.Sprintf("router: channel.Stats.%s is a %s; the counters must be int or uint64", f.Name, f.Type))
		}
		if name := f.Tag.Get("metric"); name != "" {
			c.desc = prometheus.NewDesc(name, f.Tag.Get("help"), channelLabels, nil)
		}
		out[i] = c
	}
	return out
}

// value reads the counter from st.
func (c channelCounter) value(st *channel.Stats) float64 {
	v := reflect.ValueOf(st).Elem().Field(c.field)
	if c.gauge {
		return float64(v.Int())
	}
	return float64(v.Uint())
}

// metric is the counter's Prometheus metric for the channel named name.
func (c channelCounter) metric(st *channel.Stats, name string) prometheus.Metric {
	t := prometheus.CounterValue
	if c.gauge {
		t = prometheus.GaugeValue
	}
	return prometheus.MustNewConstMetric(c.desc, t, c.value(st), name)
}

// addStats adds each counter of st to total.
func addStats(total *channel.Stats, st channel.Stats) {
	tv, sv := reflect.ValueOf(total).Elem(), reflect.ValueOf(st)
	for _, c := range channelCounters {
		f := tv.Field(c.field)
		if c.gauge {
			f.SetInt(f.Int() + sv.Field(c.field).Int())
		} else {
			f.SetUint(f.Uint() + sv.Field(c.field).Uint())
		}
	}
}

// The network's counters are the fields of NetStats and of its Link
// (multicast.Stats), read from their tags as multicast.Stats describes
// them: the network part of stats and the network metrics are built
// from them here. A new counter is one new field there, with its tags.
// Unlike a channel's counters they do not map one to one: stats sums
// the fields of one stats name (dropped), and Prometheus groups the
// fields of one metric by their label and sums those of one series.
var (
	// netAnswerType is the network part of stats while the server is on
	// the network: one field per stats name, in the order the names
	// first appear, typed as the fields they sum.
	netAnswerType reflect.Type
	// netAnswerSums are, for each field of netAnswerType, the indexes
	// in NetStats of the fields it sums.
	netAnswerSums [][][]int
	// netMetrics are the network's Prometheus metrics.
	netMetrics []netMetric
)

// netMetric is one Prometheus metric of the network.
type netMetric struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	off    bool // shown while the server is off the network too: it reads Connected
	series []netSeries
}

// netSeries is one series of a netMetric: its label value (none when
// the metric has no label) and the indexes in NetStats of the fields it
// sums.
type netSeries struct {
	label  []string
	fields [][]int
}

func init() { readNetCounters() }

// netField is one tagged field of NetStats, the fields of Link
// included.
type netField struct {
	reflect.StructField
	index []int // in NetStats
}

// netFields lists the fields of t (NetStats), and those of its struct
// fields in their place, in order.
func netFields(t reflect.Type, prefix []int) []netField {
	var out []netField
	for i := range t.NumField() {
		f := t.Field(i)
		index := append(slices.Clone(prefix), i)
		switch f.Type.Kind() {
		case reflect.Struct:
			out = append(out, netFields(f.Type, index)...)
		case reflect.Bool, reflect.Int, reflect.Uint64:
			out = append(out, netField{f, index})
		default:
			panic(fmt.Sprintf("router: network counter %s is a %s; the counters must be bool, int or uint64", f.Name, f.Type))
		}
	}
	return out
}

// readNetCounters sets netAnswerType, netAnswerSums and netMetrics from
// the tags of NetStats.
func readNetCounters() {
	fields := netFields(reflect.TypeFor[NetStats](), nil)
	netAnswerType, netAnswerSums = readNetAnswer(fields)
	netMetrics = readNetMetrics(fields)
}

// readNetAnswer builds the network part of stats from the fields'
// stats tags.
func readNetAnswer(fields []netField) (reflect.Type, [][][]int) {
	var answer []reflect.StructField
	var sums [][][]int
	for _, f := range fields {
		key := f.Tag.Get("stats")
		if key == "" {
			continue
		}
		i := slices.IndexFunc(answer, func(a reflect.StructField) bool { return a.Tag.Get("json") == key })
		if i < 0 {
			i = len(answer)
			answer = append(answer, reflect.StructField{Name: strings.ToUpper(key[:1]) + key[1:], Type: f.Type,
				Tag: reflect.StructTag(fmt.Sprintf(`json:%q msgpack:%q`, key, key))})
			sums = append(sums, nil)
		}
		if answer[i].Type != f.Type {
			panic(fmt.Sprintf("router: network counter %s is a %s, but %s sums %ss", f.Name, f.Type, key, answer[i].Type))
		}
		sums[i] = append(sums[i], f.index)
	}
	return reflect.StructOf(answer), sums
}

// readNetMetrics builds the network's metrics from the fields' metric,
// label and help tags.
func readNetMetrics(fields []netField) []netMetric {
	type metric struct {
		name, help, label string // label: the label's name
		kind              reflect.Kind
		netMetric
	}
	var metrics []*metric
	for _, f := range fields {
		name := f.Tag.Get("metric")
		if name == "" {
			continue
		}
		i := slices.IndexFunc(metrics, func(m *metric) bool { return m.name == name })
		if i < 0 {
			i = len(metrics)
			metrics = append(metrics, &metric{name: name, kind: f.Type.Kind()})
		}
		m := metrics[i]
		label, value, _ := strings.Cut(f.Tag.Get("label"), "=")
		if len(m.series) > 0 && label != m.label || m.kind != f.Type.Kind() {
			panic(fmt.Sprintf("router: network counter %s: its metric %s has another label or type", f.Name, name))
		}
		m.label = label
		if help := f.Tag.Get("help"); help != "" && m.help != "" {
			panic(fmt.Sprintf("router: network counter %s: its metric %s has its help already", f.Name, name))
		} else if help != "" {
			m.help = help
		}
		m.off = m.off || f.Name == "Connected" && len(f.index) == 1 // NetStats.Connected
		j := slices.IndexFunc(m.series, func(s netSeries) bool { return label == "" || s.label[0] == value })
		if j < 0 {
			j = len(m.series)
			m.series = append(m.series, netSeries{})
			if label != "" {
				m.series[j].label = []string{value}
			}
		}
		m.series[j].fields = append(m.series[j].fields, f.index)
	}
	out := make([]netMetric, len(metrics))
	for i, m := range metrics {
		if m.help == "" {
			panic(fmt.Sprintf("router: no network counter gives the help of the metric %s", m.name))
		}
		var labels []string
		if m.label != "" {
			labels = []string{m.label}
		}
		m.typ = prometheus.CounterValue
		if m.kind != reflect.Uint64 {
			m.typ = prometheus.GaugeValue
		}
		m.desc = prometheus.NewDesc(m.name, m.help, labels, nil)
		out[i] = m.netMetric
	}
	return out
}

// netValue reads a network counter as Prometheus does.
func netValue(v reflect.Value) float64 {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return 1
		}
		return 0
	case reflect.Int:
		return float64(v.Int())
	}
	return float64(v.Uint())
}

// collectNetCounters sends the network's metrics of n: only those that
// read Connected while the server is off the network.
func collectNetCounters(ch chan<- prometheus.Metric, n *NetStats) {
	src := reflect.ValueOf(n).Elem()
	for _, m := range netMetrics {
		if !n.Connected && !m.off {
			continue
		}
		for _, s := range m.series {
			var v float64
			for _, index := range s.fields {
				v += netValue(src.FieldByIndex(index))
			}
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, v, s.label...)
		}
	}
}

// netAnswerOf is the network part of stats for n, connected alone while
// the server is off the network.
func netAnswerOf(n *NetStats) any {
	if !n.Connected {
		return netOff{}
	}
	src := reflect.ValueOf(n).Elem()
	out := reflect.New(netAnswerType).Elem()
	for i, sum := range netAnswerSums {
		f := out.Field(i)
		for _, index := range sum {
			switch v := src.FieldByIndex(index); v.Kind() {
			case reflect.Bool:
				f.SetBool(f.Bool() || v.Bool())
			case reflect.Int:
				f.SetInt(f.Int() + v.Int())
			default:
				f.SetUint(f.Uint() + v.Uint())
			}
		}
	}
	return out.Interface()
}

// peerCounter is one field of PeerAnswer with a metric tag: a peer's
// counter (uint64) or gauge (int64, float64), exported labelled with the
// peer's node and host.
type peerCounter struct {
	field int
	vt    prometheus.ValueType
	desc  *prometheus.Desc
}

// peerLabels label the metrics of a peer.
var peerLabels = []string{"peer", "host"}

// peerCounters are the fields of PeerAnswer that are exported, in order.
var peerCounters = readPeerCounters()

func readPeerCounters() []peerCounter {
	t := reflect.TypeFor[PeerAnswer]()
	var out []peerCounter
	for i := range t.NumField() {
		f := t.Field(i)
		if name := f.Tag.Get("metric"); name != "" {
			vt := prometheus.CounterValue
			switch f.Type.Kind() {
			case reflect.Uint64:
			case reflect.Int64, reflect.Float64:
				vt = prometheus.GaugeValue
			default:
				panic(fmt.Sprintf("router: PeerAnswer.%s is a %s; the exported counters must be uint64, the gauges int64 or float64", f.Name, f.Type))
			}
			out = append(out, peerCounter{field: i, vt: vt, desc: prometheus.NewDesc(name, f.Tag.Get("help"), peerLabels, nil)})
		}
	}
	return out
}

// collectPeerCounters sends the counters of the peer that p shows.
func collectPeerCounters(ch chan<- prometheus.Metric, p *PeerAnswer) {
	v := reflect.ValueOf(p).Elem()
	for _, c := range peerCounters {
		var x float64
		switch f := v.Field(c.field); f.Kind() {
		case reflect.Uint64:
			x = float64(f.Uint())
		case reflect.Int64:
			x = float64(f.Int())
		default:
			x = f.Float()
		}
		ch <- prometheus.MustNewConstMetric(c.desc, c.vt, x, p.Node, p.Host)
	}
}
