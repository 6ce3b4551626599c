// Package router is the server side of netcluster that ties the pieces
// together: the configuration (HuJSON, validated strictly, with every
// problem named by file, line and key), the routing table built from the
// channels' propagation rules, and the embeddable Server that opens one
// channel.Channel per configured channel and routes events between them,
// and bridges them to other servers over UDP multicast and NATS.
//
// # Routing
//
// An event that a client emits on channel C goes to every other client of
// C, and to every client of each channel D != C whose name fully matches
// C's propagatetochannels expression. Rules apply once, where the event
// entered: propagation is one hop, so it never loops and no channel gets
// an event twice. The routing table is immutable once built; a reload
// swaps it whole, so routing takes no lock shared by publishers.
//
// An event addressed to one client (a reply: wire.Message.To is set) is
// not fanned out. It goes to that client only, looked up on the sender's
// channel and on the channels whose rules reach the sender's channel;
// if it is not there but the request came from another server, the
// reply goes back to that server (netreply.go, nats.go); else the event
// is dropped and counted.
//
// # Network
//
// With connecttonet, the Server joins a UDP multicast group through a
// multicast.Link. Events of channels with propagatetonet are sent to the
// group once; events from the group are delivered to the local channel
// of that name when it accepts them (acceptfromnet), then to its
// propagation targets, and never back to the network. The link drops
// duplicates, its own datagrams and those of other clusters. Peers and
// NetStats describe the link.
//
// # NATS
//
// With nats.url, the Server also (or instead) bridges channels through
// NATS with a natslink.Link: events that enter here on a channel with
// propagatetonats are published on <prefix>.<cluster>.<channel>; events
// from NATS are delivered to a channel with acceptfromnats and its
// propagation targets, never sent on. Both links share one dedup by
// event id, and Server.linkMu makes dedup and delivery one step, so an
// event that arrives over both is delivered once and in order. NATSStats
// and NATSPeers describe the link.
//
// # Control, reload and metrics
//
// On the control channel the server answers the requests of
// PROTOCOL.md § 12 (showconfig, reloadconfig, stats, shutdown, ...) to the
// asker only; the control channel never takes part in propagation. Each
// answer is a struct (StatsAnswer, ChannelAnswer, ...) whose json and
// msgpack tags name its fields on the wire; a test holds PROTOCOL.md to
// them.
// Server.Reload applies a new configuration without dropping the clients
// of the channels that stay; a configuration that fails changes nothing.
// Start is the same step from the empty configuration (apply.go): a plan
// of what to open, close, reopen and change, then a prepare that opens
// everything that can fail and is undone as a whole, then a commit that
// swaps the new state in and closes what is gone.
// The "metrics" key serves the counters of stats in the Prometheus text
// format, and Go's profiles, over HTTP. A channel's counters have one
// table, channel.Stats, whose tags name each in stats and on /metrics.
//
// # Concurrency
//
// Server's methods are safe for concurrent use. Events are routed on the
// read goroutine of the client that sent them; every receiving client has
// its own bounded queue and writer, so per-sender order is kept at every
// receiver and a slow receiver never stalls the sender (it is dropped when
// its queue passes maxpending). Shutdown stops every goroutine the server
// started before it returns.
package router
