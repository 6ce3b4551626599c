package main

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// snapshot is what top shows once: the counters of the last read, and
// the rates between the read before and it. Batch mode's -json prints
// it as it is.
type snapshot struct {
	Time string `json:"time"` // of the last read, RFC 3339
	// Interval is the time between the two reads of stats, in seconds,
	// by the server's clock: the rates of channels and peers are over it.
	Interval float64        `json:"interval"`
	Uptime   float64        `json:"uptime"`
	Channels []topChannel   `json:"channels"`
	Channel  string         `json:"channel,omitempty"` // whose clients are listed
	Clients  []topClient    `json:"clients,omitempty"`
	Network  map[string]any `json:"network"` // stats' network part, as the server gave it
	Peers    []topPeer      `json:"peers"`
	// Net are the rates of the network as a whole (datagrams and events
	// in and out); empty while the server is off the network.
	Net map[string]float64 `json:"net_rates,omitempty"`
	// NATS is stats' nats part, as the server gave it, and NATSRates the
	// rates of its counters natsRateKeys: both only while the server has
	// a NATS link, connected or not.
	NATS      map[string]any     `json:"nats,omitempty"`
	NATSRates map[string]float64 `json:"nats_rates,omitempty"`
}

// topChannel is one channel: its counters and their rates.
type topChannel struct {
	Name string `json:"name"`
	channelCounters
	EventsInRate  float64 `json:"events_in_rate"`
	EventsOutRate float64 `json:"events_out_rate"` // frames_out a second
	BytesInRate   float64 `json:"bytes_in_rate"`
	BytesOutRate  float64 `json:"bytes_out_rate"`
	DroppedRate   float64 `json:"dropped_rate"`
}

// topClient is one client of the selected channel.
type topClient struct {
	clientCounters
	// Rates are over the time between the two answers to showchannel,
	// by this side's clock; a client that came since counts from 0.
	EventsInRate  float64 `json:"events_in_rate"`
	EventsOutRate float64 `json:"events_out_rate"`
	BytesInRate   float64 `json:"bytes_in_rate"`
	BytesOutRate  float64 `json:"bytes_out_rate"`
}

// topPeer is one peer, heard over multicast or over NATS.
type topPeer struct {
	peerCounters
	DatagramsRate float64 `json:"datagrams_rate"`
	BytesRate     float64 `json:"bytes_rate"`
	RepairedRate  float64 `json:"repaired_rate"`
	LostRate      float64 `json:"lost_rate"` // skipped a second
	// Loss is the share of the peer's datagrams found missing over the
	// interval, repaired or skipped: (repaired+lost)/(datagrams+lost).
	Loss float64 `json:"loss"`
}

// rate is how much a counter grew a second; a counter that went back
// (a channel reopened by a reload) counts from 0.
func rate(prev, cur uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	if cur < prev {
		prev = 0
	}
	return float64(cur-prev) / secs
}

// netRateKeys are the network counters whose rates top shows.
var netRateKeys = []string{"datagrams_received", "datagrams_sent", "delivered", "messages_sent", "bytes_received", "bytes_sent", "lost", "repaired"}

// natsRateKeys are the NATS link's counters whose rates top shows.
var natsRateKeys = []string{"events_in", "events_out", "msgs_in", "msgs_out", "bytes_in", "bytes_out", "dropped", "dropped_in", "missed_in"}

// makeSnapshot computes the rates between prev (nil for none) and cur.
func makeSnapshot(prev, cur *sample) *snapshot {
	if prev == nil {
		prev = &sample{stats: statsAnswer{Uptime: cur.stats.Uptime}}
	}
	secs := cur.stats.Uptime - prev.stats.Uptime
	snap := &snapshot{
		Time: cur.at.UTC().Format(time.RFC3339Nano), Interval: secs, Uptime: cur.stats.Uptime,
		Channel: cur.channel, Network: cur.stats.Network, Channels: []topChannel{}, Peers: []topPeer{},
	}
	for _, name := range slices.Sorted(maps.Keys(cur.stats.Channels)) {
		c, p := cur.stats.Channels[name], prev.stats.Channels[name]
		snap.Channels = append(snap.Channels, topChannel{Name: name, channelCounters: c,
			EventsInRate: rate(p.EventsIn, c.EventsIn, secs), EventsOutRate: rate(p.FramesOut, c.FramesOut, secs),
			BytesInRate: rate(p.BytesIn, c.BytesIn, secs), BytesOutRate: rate(p.BytesOut, c.BytesOut, secs),
			DroppedRate: rate(p.Dropped, c.Dropped, secs)})
	}
	for _, node := range slices.Sorted(maps.Keys(cur.stats.Peers)) {
		c, p := cur.stats.Peers[node], prev.stats.Peers[node]
		tp := topPeer{peerCounters: c, DatagramsRate: rate(p.Datagrams, c.Datagrams, secs), BytesRate: rate(p.Bytes, c.Bytes, secs),
			RepairedRate: rate(p.Repaired, c.Repaired, secs), LostRate: rate(p.Lost, c.Lost, secs)}
		if seen := tp.DatagramsRate + tp.LostRate; seen > 0 {
			tp.Loss = (tp.RepairedRate + tp.LostRate) / seen
		}
		snap.Peers = append(snap.Peers, tp)
	}
	if on, _ := cur.stats.Network["connected"].(bool); on {
		snap.Net = map[string]float64{}
		for _, k := range netRateKeys {
			snap.Net[k] = rate(counterOf(prev.stats.Network, k), counterOf(cur.stats.Network, k), secs)
		}
	}
	if cur.stats.NATS != nil {
		snap.NATS, snap.NATSRates = cur.stats.NATS, map[string]float64{}
		for _, k := range natsRateKeys {
			snap.NATSRates[k] = rate(counterOf(prev.stats.NATS, k), counterOf(cur.stats.NATS, k), secs)
		}
	}
	if cur.channel != "" {
		snap.Clients = clientRates(prev, cur)
	}
	return snap
}

// counterOf reads a counter of stats' network or nats part; 0 from a
// nil map.
func counterOf(m map[string]any, key string) uint64 {
	if f, ok := m[key].(float64); ok && f > 0 {
		return uint64(f)
	}
	return 0
}

// clientRates are the clients of cur's channel with their rates; without
// an earlier read of the same channel, the rates are 0.
func clientRates(prev, cur *sample) []topClient {
	secs := 0.0
	before := map[uint64]clientCounters{}
	if prev.channel == cur.channel && !prev.clientsAt.IsZero() {
		secs = cur.clientsAt.Sub(prev.clientsAt).Seconds()
		for _, c := range prev.clients {
			before[c.Conn] = c
		}
	}
	out := make([]topClient, 0, len(cur.clients))
	for _, c := range cur.clients {
		p := before[c.Conn]
		out = append(out, topClient{clientCounters: c,
			EventsInRate: rate(p.EventsIn, c.EventsIn, secs), EventsOutRate: rate(p.FramesOut, c.FramesOut, secs),
			BytesInRate: rate(p.BytesIn, c.BytesIn, secs), BytesOutRate: rate(p.BytesOut, c.BytesOut, secs)})
	}
	return out
}

// sortKey is an order of the channel and client tables.
type sortKey struct {
	name    string
	key     byte // its key in the live view
	channel func(a, b topChannel) int
	client  func(a, b topClient) int
}

// sortKeys are the orders, the first by name and the others largest
// first.
var sortKeys = []sortKey{
	{"name", 'n', func(a, b topChannel) int { return strings.Compare(a.Name, b.Name) },
		func(a, b topClient) int { return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Conn, b.Conn)) }},
	{"in", 'i', func(a, b topChannel) int { return cmp.Compare(b.EventsInRate, a.EventsInRate) },
		func(a, b topClient) int { return cmp.Compare(b.EventsInRate, a.EventsInRate) }},
	{"out", 'o', func(a, b topChannel) int { return cmp.Compare(b.EventsOutRate, a.EventsOutRate) },
		func(a, b topClient) int { return cmp.Compare(b.EventsOutRate, a.EventsOutRate) }},
	{"bytes", 'b', func(a, b topChannel) int {
		return cmp.Compare(b.BytesInRate+b.BytesOutRate, a.BytesInRate+a.BytesOutRate)
	},
		func(a, b topClient) int {
			return cmp.Compare(b.BytesInRate+b.BytesOutRate, a.BytesInRate+a.BytesOutRate)
		}},
	{"pending", 'p', func(a, b topChannel) int { return cmp.Compare(b.Pending, a.Pending) },
		func(a, b topClient) int { return cmp.Compare(b.Pending, a.Pending) }},
	{"dropped", 'd', func(a, b topChannel) int { return cmp.Compare(b.Dropped, a.Dropped) },
		func(a, b topClient) int { return cmp.Compare(b.Dropped, a.Dropped) }},
	{"clients", 'c', func(a, b topChannel) int { return cmp.Compare(b.Clients, a.Clients) },
		func(a, b topClient) int { return cmp.Compare(a.Conn, b.Conn) }},
}

func sortKeyNames() []string {
	names := make([]string, len(sortKeys))
	for i, k := range sortKeys {
		names[i] = k.name
	}
	return names
}

// sortKeyOf is the index of the order named name, or -1.
func sortKeyOf(name string) int {
	return slices.IndexFunc(sortKeys, func(k sortKey) bool { return k.name == name })
}

// sort orders the snapshot's tables by sortKeys[key], reversed if
// reverse is set; ties go by name.
func (snap *snapshot) sort(key int, reverse bool) {
	k := sortKeys[key]
	sign := 1
	if reverse {
		sign = -1
	}
	slices.SortStableFunc(snap.Channels, func(a, b topChannel) int {
		return sign * cmp.Or(k.channel(a, b), strings.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(snap.Clients, func(a, b topClient) int {
		return sign * cmp.Or(k.client(a, b), strings.Compare(a.Name, b.Name), cmp.Compare(a.Conn, b.Conn))
	})
}
