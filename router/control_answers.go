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
}

func clientAnswer(c channel.ClientInfo) ClientAnswer {
	return ClientAnswer{
		ID: c.ID.String(), Conn: c.Conn, Name: c.Name, PID: c.PID, UID: c.UID, HelloPID: c.HelloPID,
		Since: c.Since.Format(time.RFC3339Nano), EventsIn: c.FramesIn, BytesIn: c.BytesIn,
		FramesOut: c.FramesOut, BytesOut: c.BytesOut, Pending: c.Pending, Dropped: c.Dropped,
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
	Lost      uint64   `json:"lost" msgpack:"lost"`
	Datagrams uint64   `json:"datagrams" msgpack:"datagrams"`
	Bytes     uint64   `json:"bytes" msgpack:"bytes"`
	Repaired  uint64   `json:"repaired" msgpack:"repaired"`
}

func peerAnswer(p multicast.Peer) PeerAnswer {
	return PeerAnswer{
		Node: p.Node.String(), Host: p.Host, PID: p.PID, Version: p.Version,
		Channels: list(p.Channels), Addr: p.Addr.String(),
		FirstSeen: p.FirstSeen.UTC().Format(time.RFC3339Nano), LastSeen: p.LastSeen.UTC().Format(time.RFC3339Nano),
		LastSeq: p.LastSeq, Lost: p.Lost, Datagrams: p.Datagrams, Bytes: p.Bytes, Repaired: p.Repaired,
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
	Peers         map[string]PeerAnswer    `json:"peers" msgpack:"peers"` // by node id
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

// NetworkAnswer is the network part of stats. While the server has not
// joined the multicast group it shows connected (false) alone.
type NetworkAnswer networkAnswer

// networkAnswer is NetworkAnswer without its methods, shown whole.
type networkAnswer struct {
	Connected         bool   `json:"connected" msgpack:"connected"`
	Delivered         uint64 `json:"delivered" msgpack:"delivered"`
	NoChannel         uint64 `json:"no_channel" msgpack:"no_channel"`
	Refused           uint64 `json:"refused" msgpack:"refused"`
	Malformed         uint64 `json:"malformed" msgpack:"malformed"`
	SendFailed        uint64 `json:"send_failed" msgpack:"send_failed"`
	DatagramsSent     uint64 `json:"datagrams_sent" msgpack:"datagrams_sent"`
	BytesSent         uint64 `json:"bytes_sent" msgpack:"bytes_sent"`
	MessagesSent      uint64 `json:"messages_sent" msgpack:"messages_sent"`
	SendErrors        uint64 `json:"send_errors" msgpack:"send_errors"`
	DatagramsReceived uint64 `json:"datagrams_received" msgpack:"datagrams_received"`
	BytesReceived     uint64 `json:"bytes_received" msgpack:"bytes_received"`
	Heartbeats        uint64 `json:"heartbeats" msgpack:"heartbeats"`
	Own               uint64 `json:"own" msgpack:"own"`
	OtherCluster      uint64 `json:"other_cluster" msgpack:"other_cluster"`
	Dropped           uint64 `json:"dropped" msgpack:"dropped"`
	Duplicates        uint64 `json:"duplicates" msgpack:"duplicates"`
	Expired           uint64 `json:"expired" msgpack:"expired"`
	Evicted           uint64 `json:"evicted" msgpack:"evicted"`
	Lost              uint64 `json:"lost" msgpack:"lost"`
	ReassemblyBytes   int    `json:"reassembly_bytes" msgpack:"reassembly_bytes"`
	Peers             int    `json:"peers" msgpack:"peers"`
	QueueFull         uint64 `json:"queue_full" msgpack:"queue_full"`
	Unsent            uint64 `json:"unsent" msgpack:"unsent"`
	QueueBytes        int    `json:"queue_bytes" msgpack:"queue_bytes"`
	QueuePeak         int    `json:"queue_peak" msgpack:"queue_peak"`
	Unsealed          uint64 `json:"unsealed" msgpack:"unsealed"`
	Sealed            uint64 `json:"sealed" msgpack:"sealed"`
	Forged            uint64 `json:"forged" msgpack:"forged"`
	Replayed          uint64 `json:"replayed" msgpack:"replayed"`
	Repaired          uint64 `json:"repaired" msgpack:"repaired"`
	OutOfOrder        uint64 `json:"out_of_order" msgpack:"out_of_order"`
	Late              uint64 `json:"late" msgpack:"late"`
	Gaps              int    `json:"gaps" msgpack:"gaps"`
	HeldBytes         int    `json:"held_bytes" msgpack:"held_bytes"`
	HeldPeak          int    `json:"held_peak" msgpack:"held_peak"`
	NAKsSent          uint64 `json:"naks_sent" msgpack:"naks_sent"`
	NAKsReceived      uint64 `json:"naks_received" msgpack:"naks_received"`
	NAKsHeard         uint64 `json:"naks_heard" msgpack:"naks_heard"`
	RepairsSent       uint64 `json:"repairs_sent" msgpack:"repairs_sent"`
	Resent            uint64 `json:"resent" msgpack:"resent"`
	Unavailable       uint64 `json:"unavailable" msgpack:"unavailable"`
	RepairLimited     uint64 `json:"repair_limited" msgpack:"repair_limited"`
	RepairsReceived   uint64 `json:"repairs_received" msgpack:"repairs_received"`
	CtlDropped        uint64 `json:"ctl_dropped" msgpack:"ctl_dropped"`
	HistoryBytes      int    `json:"history_bytes" msgpack:"history_bytes"`
	HistoryDatagrams  int    `json:"history_datagrams" msgpack:"history_datagrams"`
}

// netOff is what NetworkAnswer shows while the server is off the network.
type netOff struct {
	Connected bool `json:"connected" msgpack:"connected"`
}

// shown is what the answer shows.
func (n NetworkAnswer) shown() any {
	if !n.Connected {
		return netOff{}
	}
	return networkAnswer(n)
}

// MarshalMsgpack encodes what the answer shows.
func (n NetworkAnswer) MarshalMsgpack() ([]byte, error) { return wire.AppendData(nil, n.shown()) }

// MarshalJSON encodes what the answer shows.
func (n NetworkAnswer) MarshalJSON() ([]byte, error) { return json.Marshal(n.shown()) }

// newNetworkAnswer is the network part of stats.
func newNetworkAnswer(n NetStats) NetworkAnswer {
	if !n.Connected {
		return NetworkAnswer{}
	}
	l := n.Link
	return NetworkAnswer{
		Connected: n.Connected, Delivered: n.Delivered, NoChannel: n.NoChannel, Refused: n.Refused,
		Malformed: n.Malformed, SendFailed: n.SendFailed,
		DatagramsSent: l.DatagramsSent, BytesSent: l.BytesSent, MessagesSent: l.MessagesSent, SendErrors: l.SendErrors,
		DatagramsReceived: l.DatagramsReceived, BytesReceived: l.BytesReceived, Heartbeats: l.Heartbeats,
		Own: l.Own, OtherCluster: l.OtherCluster, Dropped: l.Dropped(), Duplicates: l.Duplicates,
		Expired: l.Expired, Evicted: l.Evicted, Lost: l.Lost, ReassemblyBytes: l.ReassemblyBytes, Peers: l.Peers,
		QueueFull: l.QueueFull, Unsent: l.Unsent, QueueBytes: l.QueueBytes, QueuePeak: l.QueuePeak,
		Unsealed: l.Unsealed, Sealed: l.Sealed, Forged: l.Forged, Replayed: l.Replayed,
		Repaired: l.Repaired, OutOfOrder: l.OutOfOrder, Late: l.Late, Gaps: l.Gaps,
		HeldBytes: l.HeldBytes, HeldPeak: l.HeldPeak, NAKsSent: l.NAKsSent, NAKsReceived: l.NAKsReceived, NAKsHeard: l.NAKsHeard,
		RepairsSent: l.RepairsSent, Resent: l.Resent, Unavailable: l.Unavailable, RepairLimited: l.RepairLimited,
		RepairsReceived: l.RepairsIn, CtlDropped: l.CtlDropped, HistoryBytes: l.HistoryBytes, HistoryDatagrams: l.HistoryCount,
	}
}
