package router

import (
	"fmt"
	"reflect"

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
