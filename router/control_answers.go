package router

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/multicast"
)

// The answers to the control requests, one type each, as PROTOCOL.md
// § 12 describes them; a test holds that page to these types. Each field
// has a json and a msgpack tag, always alike: the server encodes the
// answers as msgpack data, and the JSON protocol's clients get them
// translated field by field.

// ErrorAnswer answers a request that failed.
type ErrorAnswer struct {
	Error string `json:"error" msgpack:"error"`
	// Problems are those of an invalid configuration (reloadconfig).
	Problems []ProblemAnswer `json:"problems,omitempty" msgpack:"problems,omitempty"`
}

// ProblemAnswer is one problem of an invalid configuration.
type ProblemAnswer struct {
	File    string `json:"file" msgpack:"file"`
	Line    int    `json:"line" msgpack:"line"`
	Column  int    `json:"column" msgpack:"column"`
	Key     string `json:"key" msgpack:"key"`
	Message string `json:"message" msgpack:"message"`
}

// errorAnswer is the answer to a failed request: the error, and for an
// invalid configuration each problem.
func errorAnswer(err error) ErrorAnswer {
	out := ErrorAnswer{Error: err.Error()}
	var ce *ConfigError
	if errors.As(err, &ce) {
		out.Problems = make([]ProblemAnswer, len(ce.Problems))
		for i, p := range ce.Problems {
			out.Problems[i] = ProblemAnswer{File: ce.File, Line: p.Line, Column: p.Column, Key: p.Key, Message: p.Msg}
		}
	}
	return out
}

// ShowConfigAnswer answers showconfig: the file the configuration was
// read from, and the configuration under the file's keys (§ 12.1 lists
// them), its secret redacted.
type ShowConfigAnswer struct {
	File   string         `json:"file" msgpack:"file"`
	Config map[string]any `json:"config" msgpack:"config"`
}

// ReloadAnswer answers reloadconfig: the changes applied.
type ReloadAnswer struct {
	File     string   `json:"file" msgpack:"file"`
	Added    []string `json:"added" msgpack:"added"`
	Removed  []string `json:"removed" msgpack:"removed"`
	Changed  []string `json:"changed" msgpack:"changed"`
	Reopened []string `json:"reopened" msgpack:"reopened"`
	Settings []string `json:"settings" msgpack:"settings"`
}

func reloadAnswer(rep ReloadReport) ReloadAnswer {
	return ReloadAnswer{
		File: rep.File, Added: list(rep.Added), Removed: list(rep.Removed),
		Changed: list(rep.Changed), Reopened: list(rep.Reopened), Settings: list(rep.Settings),
	}
}

// ChannelAnswer answers showchannel.
type ChannelAnswer struct {
	Channel string `json:"channel" msgpack:"channel"`
	Socket  string `json:"socket" msgpack:"socket"`
	Mode    string `json:"mode" msgpack:"mode"` // octal, such as "0660"
	// PropagateToChannels is false or the rule's expression.
	PropagateToChannels any            `json:"propagatetochannels" msgpack:"propagatetochannels"`
	PropagateToNet      bool           `json:"propagatetonet" msgpack:"propagatetonet"`
	DumpToConsole       bool           `json:"dumptoconsole" msgpack:"dumptoconsole"`
	AcceptFromNet       bool           `json:"acceptfromnet" msgpack:"acceptfromnet"`
	Targets             []string       `json:"targets" msgpack:"targets"`
	Stats               channel.Stats  `json:"stats" msgpack:"stats"`
	Clients             []ClientAnswer `json:"clients" msgpack:"clients"`
}

// ClientAnswer is one client, as showchannel lists it.
type ClientAnswer struct {
	ID        string `json:"id" msgpack:"id"`
	Conn      uint64 `json:"conn" msgpack:"conn"`
	Name      string `json:"name" msgpack:"name"`
	PID       int    `json:"pid" msgpack:"pid"`
	UID       int    `json:"uid" msgpack:"uid"`
	HelloPID  uint64 `json:"hello_pid" msgpack:"hello_pid"`
	Since     string `json:"since" msgpack:"since"`
	EventsIn  uint64 `json:"events_in" msgpack:"events_in"`
	BytesIn   uint64 `json:"bytes_in" msgpack:"bytes_in"`
	FramesOut uint64 `json:"frames_out" msgpack:"frames_out"`
	BytesOut  uint64 `json:"bytes_out" msgpack:"bytes_out"`
	Pending   int    `json:"pending" msgpack:"pending"`
	Dropped   uint64 `json:"dropped" msgpack:"dropped"`
	// Interest is the patterns the client declared it listens to; null
	// when it takes every event of the channel.
	Interest []string `json:"interest" msgpack:"interest"`
}

func clientAnswer(c channel.ClientInfo) ClientAnswer {
	return ClientAnswer{
		ID: c.ID.String(), Conn: c.Conn, Name: c.Name, PID: c.PID, UID: c.UID, HelloPID: c.HelloPID,
		Since: c.Since.Format(time.RFC3339Nano), EventsIn: c.FramesIn, BytesIn: c.BytesIn,
		FramesOut: c.FramesOut, BytesOut: c.BytesOut, Pending: c.Pending, Dropped: c.Dropped,
		Interest: c.Interest,
	}
}

// ShowClientAnswer answers showclient: the client and its channel.
type ShowClientAnswer struct {
	Channel string `json:"channel" msgpack:"channel"`
	ClientAnswer
}

// ClientCountAnswer answers clientcount.
type ClientCountAnswer struct {
	Total    int            `json:"total" msgpack:"total"`
	Channels map[string]int `json:"channels" msgpack:"channels"` // channel name → its clients
}

// ChannelsAnswer answers channels.
type ChannelsAnswer struct {
	Channels []ChannelSummary `json:"channels" msgpack:"channels"` // sorted by name
}

// ChannelSummary is one channel as channels lists it.
type ChannelSummary struct {
	Name                string   `json:"name" msgpack:"name"`
	Socket              string   `json:"socket" msgpack:"socket"`
	Mode                string   `json:"mode" msgpack:"mode"`
	PropagateToChannels any      `json:"propagatetochannels" msgpack:"propagatetochannels"` // false or the expression
	Targets             []string `json:"targets" msgpack:"targets"`
	Clients             int      `json:"clients" msgpack:"clients"`
}

// PeersAnswer answers peers.
type PeersAnswer struct {
	Network bool         `json:"network" msgpack:"network"` // whether the server has joined the multicast group
	NATS    bool         `json:"nats" msgpack:"nats"`       // whether the server has a NATS link
	Peers   []PeerAnswer `json:"peers" msgpack:"peers"`
}

// PeerAnswer is one peer as peers and stats show it.
type PeerAnswer struct {
	Node      string   `json:"node" msgpack:"node"`
	Host      string   `json:"host" msgpack:"host"`
	PID       int      `json:"pid" msgpack:"pid"`
	Version   string   `json:"version" msgpack:"version"`
	Channels  []string `json:"channels" msgpack:"channels"`
	Addr      string   `json:"addr" msgpack:"addr"`
	FirstSeen string   `json:"first_seen" msgpack:"first_seen"`
	LastSeen  string   `json:"last_seen" msgpack:"last_seen"`
	LastSeq   uint64   `json:"last_seq" msgpack:"last_seq"`
	// The peer's counters are exported too, under their metric tags,
	// labelled with its node and host (peerCounters).
	Lost      uint64 `json:"lost" msgpack:"lost" metric:"netcluster_peer_lost_datagrams_total" help:"Datagrams of the peer that never arrived nor were repaired, skipped."`
	Datagrams uint64 `json:"datagrams" msgpack:"datagrams" metric:"netcluster_peer_datagrams_total" help:"Datagrams received from the peer since it joined the peer table."`
	Bytes     uint64 `json:"bytes" msgpack:"bytes" metric:"netcluster_peer_bytes_total" help:"Bytes of the datagrams received from the peer."`
	Repaired  uint64 `json:"repaired" msgpack:"repaired" metric:"netcluster_peer_repaired_datagrams_total" help:"Datagrams of the peer found missing that then arrived in a repair."`
	// Rate is the bytes per second received from the peer, over the
	// last heartbeat interval.
	// (Prometheus computes it from netcluster_peer_bytes_total.)
	Rate float64 `json:"rate" msgpack:"rate"`
	// Flow control: what the peer, as a receiver of this server's
	// datagrams, last reported (multicast.FlowPeer).
	FlowPosition uint64 `json:"flow_position" msgpack:"flow_position"`
	FlowWindow   int64  `json:"flow_window" msgpack:"flow_window" metric:"netcluster_peer_flow_window" help:"Datagrams past its position that the peer last said it can take."`
	FlowLive     bool   `json:"flow_live" msgpack:"flow_live"`
	FlowHeldMs   uint64 `json:"flow_held_ms" msgpack:"flow_held_ms" metric:"netcluster_peer_flow_held_milliseconds_total" help:"Time this server waited for the peer's window, in milliseconds."`
}

func peerAnswer(p multicast.Peer) PeerAnswer {
	return PeerAnswer{
		Node: p.Node.String(), Host: p.Host, PID: p.PID, Version: p.Version,
		Channels: list(p.Channels), Addr: p.Addr.String(),
		FirstSeen: p.FirstSeen.UTC().Format(time.RFC3339Nano), LastSeen: p.LastSeen.UTC().Format(time.RFC3339Nano),
		LastSeq: p.LastSeq, Lost: p.Lost, Datagrams: p.Datagrams, Bytes: p.Bytes, Repaired: p.Repaired,
		Rate: p.Rate, FlowPosition: p.Flow.Position, FlowWindow: int64(p.Flow.Window), FlowLive: p.Flow.Live,
		FlowHeldMs: uint64(p.Flow.HeldBack.Milliseconds()),
	}
}

// StatsAnswer answers stats.
type StatsAnswer struct {
	Uptime        float64                  `json:"uptime" msgpack:"uptime"` // seconds
	Reloads       uint64                   `json:"reloads" msgpack:"reloads"`
	Undeliverable uint64                   `json:"undeliverable" msgpack:"undeliverable"`
	Channels      map[string]channel.Stats `json:"channels" msgpack:"channels"`
	Total         channel.Stats            `json:"total" msgpack:"total"` // the channels' counters summed
	Network       NetworkAnswer            `json:"network" msgpack:"network"`
	NATS          *NATSStats               `json:"nats,omitempty" msgpack:"nats,omitempty"` // with a NATS link only
	Peers         map[string]PeerAnswer    `json:"peers" msgpack:"peers"`                   // by node id
}

// LogLevelAnswer answers loglevel.
type LogLevelAnswer struct {
	Level    string `json:"level" msgpack:"level"`
	Previous string `json:"previous,omitempty" msgpack:"previous,omitempty"` // when the level was set
}

// OKAnswer answers shutdown and restart.
type OKAnswer struct {
	OK bool `json:"ok" msgpack:"ok"`
}

// NetworkAnswer is the network part of stats: connected and, while it
// is true, the network's counters under their stats names, as the tags
// of NetStats and multicast.Stats give them (netAnswerType is its
// shape; counters.go builds it). While the server has not joined the
// multicast group it shows connected (false) alone.
type NetworkAnswer struct{ stats NetStats }

// netOff is what NetworkAnswer shows while the server is off the network.
type netOff struct {
	Connected bool `json:"connected" msgpack:"connected"`
}

// MarshalMsgpack encodes what the answer shows.
func (n NetworkAnswer) MarshalMsgpack() ([]byte, error) {
	return wire.AppendData(nil, netAnswerOf(&n.stats))
}

// MarshalJSON encodes what the answer shows.
func (n NetworkAnswer) MarshalJSON() ([]byte, error) { return json.Marshal(netAnswerOf(&n.stats)) }

// newNetworkAnswer is the network part of stats.
func newNetworkAnswer(n NetStats) NetworkAnswer { return NetworkAnswer{n} }
