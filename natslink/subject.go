package natslink

import (
	"strings"

	"github.com/google/uuid"
)

// The headers of an event on NATS. HeaderEvent is required; the ids are
// UUIDs in their text form, and a missing one is made up by the
// receiving server (ID, Sender) or left zero (Origin, To, Re).
const (
	HeaderEvent  = "Nc-Event"  // the event name
	HeaderID     = "Nc-Id"     // the event's id, unique per event
	HeaderOrigin = "Nc-Origin" // the node id of the server where the event entered the bus
	HeaderSender = "Nc-Sender" // the id of the client that emitted it
	HeaderTo     = "Nc-To"     // a reply's addressee (the asker)
	HeaderRe     = "Nc-Re"     // the id of the request a reply answers
	// HeaderChannel names a reply's channel: its subject is the asker's
	// node's, not a channel's.
	HeaderChannel = "Nc-Channel"
	// HeaderSeq numbers the events a link sends on a channel's subject:
	// the link's epoch (16 hex digits, new each time a server opens its
	// link, but passed on to a link that takes over on the same
	// subjects, CloseInto), a dot, and the number of the message's first
	// event among
	// those of the epoch on the subject, from 1. A pack's events follow
	// on from it. A receiver that finds numbers skipped counts those
	// events as missed (Stats.MissedIn). Replies are not numbered.
	HeaderSeq = "Nc-Seq"
)

// The headers of a heartbeat.
const (
	headerNode    = "Nc-Node"
	headerHost    = "Nc-Host"
	headerPID     = "Nc-Pid"
	headerVersion = "Nc-Version"
)

// DefaultCluster is the subject token of the cluster named "".
const DefaultCluster = "default"

// nodeToken and hbToken begin the subjects that are not a channel's.
const (
	nodeToken = "$node"
	hbToken   = "$hb"
)

// ClusterToken is the subject token of a cluster name.
func ClusterToken(cluster string) string {
	if cluster == "" {
		return DefaultCluster
	}
	return cluster
}

// Subject is the subject of channel's events.
func Subject(prefix, cluster, channel string) string {
	return prefix + "." + ClusterToken(cluster) + "." + channel
}

// NodeSubject is the subject of the replies for the asker on node. It
// is outside <prefix>.<cluster>.>, the subjects of the channels, which a
// JetStream stream keeps: replies are not kept.
func NodeSubject(prefix, cluster string, node uuid.UUID) string {
	return prefix + "." + nodeToken + "." + ClusterToken(cluster) + "." + node.String()
}

// hbSubject is the subject of the heartbeats, outside the channels'
// subjects too.
func hbSubject(prefix, cluster string) string {
	return prefix + "." + hbToken + "." + ClusterToken(cluster)
}

// ValidSubject reports whether s is a NATS subject without wildcards:
// tokens separated by '.', none empty, none holding a space, '*' or '>'.
func ValidSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
