// Package multicast is netcluster's network link: it bridges the channels
// of the servers on a LAN over one UDP multicast group, with
// golang.org/x/net/ipv4.
//
// A Link joins the group on one interface and sends each message once,
// in datagrams of at most Config.Payload bytes: a large message is split
// into fragments, and small messages queued together share a datagram
// (packing). Send only queues the message, within a bound
// (Config.SendQueue); the link's writer goroutine packs what is queued
// and writes it, several datagrams per system call on Linux (sendmmsg),
// and the reader takes several per call too (recvmmsg). Receivers
// reassemble the fragments within a memory bound (Config.MaxReassembly),
// drop incomplete messages after Config.ReassemblyTimeout, ignore the
// datagrams of other clusters and, by node id, their own: so several servers can share one
// host. Every node multicasts a heartbeat (node id, host name, pid,
// version, channels) each Config.Heartbeat; the peer table forgets a
// peer silent for Config.PeerTimeout. Bad datagrams are dropped and
// counted in Stats, never fatal.
//
// With Config.Key, the link seals every datagram it writes (AES-256-GCM
// under a key derived for each sender, see Sealer) and drops, and counts,
// every datagram it reads that is unsealed, fails authentication, or was
// accepted before (a replay); without it, it drops sealed datagrams.
// Loss repair and order: each node numbers its data and heartbeats in
// one series (stream 0), and receivers process each peer's stream 0 in
// that order, holding what arrives ahead of a missing datagram
// (Config.HoldPeer, Config.HoldTotal). A missing datagram is asked for
// with a NAK, multicast to the group, and the sender answers from its
// History (Config.History) with a repair, or says it no longer holds it.
// A gap not repaired within Config.GapTimeout is skipped and counted in
// Stats.Lost. NAKs and repairs are numbered in a second series (stream
// 1) and, like everything the link sends, go out through its one writer.
//
// Flow control: every node multicasts statuses (KindStatus, stream 1)
// that report, for each peer whose stream 0 it keeps, its position (the
// last sequence number processed in order) and its window (how many
// datagrams past it its socket buffer and hold bound take). With
// FlowMin (Config.FlowControl), the writer keeps in flight no more than
// the slowest live receiver's position + window, writing NAKs, repairs
// and statuses meanwhile; a receiver silent for Config.PeerTimeout
// leaves the calculation. The history is freed up to the lowest
// position of the live receivers, its bound staying the hard limit.
// Config.MaxRate paces the writer.
//
// A Node owns what outlives a link: both sequence counters, the history,
// the flow-control state and the receiving state (the peer table, each
// peer's window, reassembly). Open makes a Node for its link alone; a
// caller that replaces links on a reload opens them from one Node
// (Node.Open), and each datagram of a peer is then processed once,
// whichever of the node's links reads it. Messages are not dropped by
// id: a caller that also takes events from elsewhere does that.
//
// The datagram format is described in PROTOCOL.md, section "Network
// protocol"; this package's ParseHeader, ParseRecords and ParseHeartbeat
// decode it and work on byte slices, never a socket.
//
// # Concurrency
//
// Send, Peers and Stats are safe for concurrent use. Messages go out in
// the order their Send calls queued them, and Send copies the message,
// so the caller may reuse it at once. When the queue is full, because
// the network or a receiver's window cannot take more, Send waits up to
// Config.SendWait (by default PeerTimeout plus one Heartbeat: longer
// than flow control waits for a stopped receiver) for room and then
// drops the message with ErrQueueFull: a publisher faster than the
// network or its receivers is slowed down, within a bound, and memory
// stays bounded. The deliver function
// given to Open is called one message at a time, each peer's messages in
// the order sent: on a read goroutine of one of the node's links, or on
// a housekeeping goroutine when a skipped gap releases what was held
// behind it; with several links, through the deliver of the last one
// opened. It must
// not block for long, since datagrams that arrive meanwhile queue in the
// socket's buffer and are lost when it fills. Close writes what is still queued, for at most half a second
// (CloseInto, at a swap, at the receivers' pace, for at most SendWait),
// and returns after the link's three goroutines (the writer, the reader
// and the heartbeat timer) have ended. A Node is safe for concurrent
// use.
package multicast
