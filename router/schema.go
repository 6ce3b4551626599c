package router

import (
	"cmp"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/netcluster/netcluster/multicast"
)

// The configuration schema: every key of the configuration file, defined
// once. The loader (defaults and checks), showconfig, the reload's diff
// and the check that config.json documents every key all read these
// tables; a new key is a new row here, a field of Config or
// ChannelConfig, and a comment in config.json.

// fileType is how the file spells a key's value, and so what the key's
// field in Config or ChannelConfig is.
type fileType int

const (
	tBool     fileType = iota // true or false; a bool field
	tInt                      // an integer; an int field
	tString                   // a string; a string field
	tDuration                 // a string such as "1s"; a time.Duration field
	tMode                     // an octal string such as "0660"; an fs.FileMode field
	tRegexp                   // false or a regular expression string; a string field, "" for false
	tObject                   // an object: "channels", or one channel's rule
	tList                     // a list of strings and integers; a []string field
	tStrings                  // a string or an array of strings; a string field, the strings joined by ","
)

// reloadEffect says what a reload that changes a key does.
type reloadEffect int

const (
	// The zero reloadEffect, which the table leaves unsaid: the reload
	// applies the new value to the running server in place (sockets,
	// limits, rules, the metrics listener, the history).
	_ reloadEffect = iota
	// relink: the reload opens a new multicast link with the new value
	// and swaps it in (see netKeysDiffer). Every key can be reloaded:
	// none needs the server restarted.
	relink
)

// redactedSecret stands for a secret that is set in what the server
// shows: showconfig and Config.String print it instead of the value. The
// loader refuses it as a secret, so a configuration saved from showconfig
// does not run with "(set)" as its key.
const redactedSecret = "(set)"

// key is one key of the configuration file: of the top level when T is
// Config, of a channel's rule when T is ChannelConfig.
type key[T any] struct {
	name string
	typ  fileType
	// def is the default as the file spells it: a bool, an int or a string
	// (false for a tRegexp).
	def any
	// doc is the key's one-line description; config.json and the README
	// say more.
	doc    string
	reload reloadEffect
	// secret: never shown nor logged; shown as redactedSecret when set.
	secret bool
	// lo and hi bound an int, or a duration in nanoseconds; hi == 0 means
	// no bound. off allows a duration of 0 (off) outside them.
	lo, hi int64
	off    bool
	// field returns a pointer to the key's field of t, of the type typ
	// names.
	field func(t *T) any
	// check, when set, checks what the bounds do not, once every key of
	// t has its value.
	check func(c *checker, key string, t *T)
	// show, when set, gives the value showconfig shows instead of the
	// field's.
	show func(t *T) any
}

// want says how the file spells the key's value, for messages.
func (k *key[T]) want() string {
	switch k.typ {
	case tBool:
		return "true or false"
	case tInt:
		return "an integer"
	case tDuration:
		if k.off {
			return fmt.Sprintf("a duration such as %q, or \"0s\" for off", k.def)
		}
		return fmt.Sprintf("a duration such as %q", k.def)
	case tMode:
		return fmt.Sprintf("an octal string such as %q", k.def)
	case tRegexp:
		return "false or a regular expression string"
	case tObject:
		return "an object"
	case tList:
		return "a list of names and numbers"
	case tStrings:
		return "a string or an array of strings"
	}
	return "a string"
}

// channelsKey is the top-level key of the channels' rules: channel name
// -> rule, each rule's keys being ruleKeys.
const channelsKey = "channels"

// settings are the top-level keys but "channels", in the order config.json
// lists them.
var settings = []key[Config]{
	{name: "addr", typ: tString, def: defaultAddr, reload: relink, check: checkAddr,
		doc:   "UDP multicast group (IPv4, outside 224.0.0.0/24)",
		field: func(c *Config) any { return &c.Addr }},
	{name: "port", typ: tInt, def: 4454, reload: relink, lo: 1, hi: 65535,
		doc:   "UDP port of the group",
		field: func(c *Config) any { return &c.Port }},
	{name: "connecttonet", typ: tBool, def: false, reload: relink,
		doc:   "join the multicast group",
		field: func(c *Config) any { return &c.ConnectToNet }},
	{name: "dumpnet", typ: tBool, def: false, reload: relink,
		doc:   "log every datagram received",
		field: func(c *Config) any { return &c.DumpNet }},
	{name: "startcontrol", typ: tBool, def: true,
		doc:   "serve the control channel",
		field: func(c *Config) any { return &c.StartControl }},
	{name: "interface", typ: tString, def: "", reload: relink,
		doc:   `network interface for multicast; "" picks the only one`,
		field: func(c *Config) any { return &c.Interface }},
	{name: "ttl", typ: tInt, def: 1, reload: relink, lo: 0, hi: 255,
		doc:   "multicast time-to-live",
		field: func(c *Config) any { return &c.TTL }},
	{name: "cluster", typ: tString, def: "", reload: relink, check: checkCluster,
		doc:   "cluster name; datagrams of other clusters are ignored",
		field: func(c *Config) any { return &c.Cluster }},
	{name: "payload", typ: tInt, def: multicast.DefaultPayload, reload: relink, lo: multicast.MinPayload, hi: multicast.MaxPayload,
		doc:   "largest datagram sent, headers included, in bytes",
		field: func(c *Config) any { return &c.Payload }},
	{name: "heartbeat", typ: tDuration, def: "1s", reload: relink, lo: int64(minHeartbeat), hi: int64(maxHeartbeat),
		doc:   "how often the server announces itself to its peers",
		field: func(c *Config) any { return &c.Heartbeat }},
	{name: "peertimeout", typ: tDuration, def: "5s", reload: relink, lo: int64(2 * minHeartbeat), hi: int64(maxPeerTimeout),
		doc:   "how long a silent peer stays in the peer table",
		field: func(c *Config) any { return &c.PeerTimeout }},
	{name: "history", typ: tInt, def: multicast.DefaultHistory, lo: 0, hi: maxHistory,
		doc:   "bytes of sent datagrams kept to answer NAKs",
		field: func(c *Config) any { return &c.History }},
	{name: "gaptimeout", typ: tDuration, def: "2s", reload: relink, lo: int64(minGapTimeout), hi: int64(maxGapTimeout),
		doc:   "how long a missing datagram is asked for before it counts as lost",
		field: func(c *Config) any { return &c.GapTimeout }},
	{name: "flowcontrol", typ: tString, def: string(multicast.FlowMin), reload: relink, check: checkFlowControl,
		doc:   `"min": never outrun the slowest live receiver; "none": send as fast as the link can`,
		field: func(c *Config) any { return &c.FlowControl }},
	{name: "maxrate", typ: tInt, def: 0, reload: relink, lo: 0, hi: maxRate,
		doc:   "bytes per second of datagrams sent, data and repairs; 0 is unbounded",
		field: func(c *Config) any { return &c.MaxRate }},
	{name: "key", typ: tString, def: "", reload: relink, secret: true, check: checkKey,
		doc:   "shared secret that seals datagrams",
		field: func(c *Config) any { return &c.Key }},
	{name: "keyfile", typ: tString, def: "", reload: relink, check: checkKeyFile,
		doc:   "file holding the shared secret",
		field: func(c *Config) any { return &c.KeyFile }},
	{name: "socket", typ: tString, def: "", check: checkSocket,
		doc:   `socket path template with "{channel}"; "" is the platform's default`,
		field: func(c *Config) any { return &c.Socket },
		// The effective template, never "": what clients must use.
		show: func(c *Config) any { return cmp.Or(c.Socket, DefaultSocketTemplate()) }},
	{name: "socketmode", typ: tMode, def: defaultSocketMode,
		doc:   "permission of the channel sockets",
		field: func(c *Config) any { return &c.SocketMode }},
	{name: "maxframe", typ: tInt, def: 1 << 20, reload: relink, lo: minMaxFrame, hi: maxMaxFrame,
		doc:   "largest frame in bytes",
		field: func(c *Config) any { return &c.MaxFrame }},
	{name: "maxpending", typ: tInt, def: 8 << 20, lo: minMaxFrame, hi: maxMaxPending,
		doc:   "bound of each client's send queue in bytes",
		field: func(c *Config) any { return &c.MaxPending }},
	{name: "memorylimit", typ: tInt, def: 0, lo: 0, hi: maxMemoryLimit, check: checkMemoryLimit,
		doc:   "Go soft memory limit of the server in bytes; 0 leaves the runtime's",
		field: func(c *Config) any { return &c.MemoryLimit }},
	{name: "metrics", typ: tString, def: "", check: checkMetrics,
		doc:   `host:port of the metrics endpoint; "" is off`,
		field: func(c *Config) any { return &c.Metrics }},
	{name: "pinginterval", typ: tDuration, def: "10s", lo: int64(minPingInterval), hi: int64(maxPingInterval), off: true,
		doc:   "how long a client may be silent before it is pinged",
		field: func(c *Config) any { return &c.PingInterval }},
	{name: "pingtimeout", typ: tDuration, def: "30s", lo: int64(2 * minPingInterval), hi: int64(maxPingTimeout),
		doc:   "how long a client may be silent before it is dropped",
		field: func(c *Config) any { return &c.PingTimeout }},
	{name: "stalltimeout", typ: tDuration, def: "2s", lo: int64(minStallTimeout), hi: int64(maxStallTimeout),
		doc:   "how long a client that holds its publishers back may take nothing before it is dropped",
		field: func(c *Config) any { return &c.StallTimeout }},
	{name: "retainbytes", typ: tInt, def: 4 << 20, lo: 0, hi: maxRetainBytes,
		doc:   "bytes of recent events each channel keeps for clients that resume; 0 keeps none",
		field: func(c *Config) any { return &c.RetainBytes }},
	{name: "retainage", typ: tDuration, def: "30s", lo: int64(minRetainAge), hi: int64(maxRetainAge), off: true,
		doc:   "how long each channel keeps a recent event for clients that resume",
		field: func(c *Config) any { return &c.RetainAge }},
}

// ruleKeys are the keys of one channel's rule.
var ruleKeys = []key[ChannelConfig]{
	{name: "propagatetochannels", typ: tRegexp, def: false, check: checkPropagate,
		doc:   "false, or an expression naming the channels events go to",
		field: func(r *ChannelConfig) any { return &r.PropagateToChannels }},
	{name: "propagatetonet", typ: tBool, def: false,
		doc:   "send the channel's events to the multicast group",
		field: func(r *ChannelConfig) any { return &r.PropagateToNet }},
	{name: "dumptoconsole", typ: tBool, def: false,
		doc:   "log the channel's events",
		field: func(r *ChannelConfig) any { return &r.DumpToConsole }},
	{name: "acceptfromnet", typ: tBool, def: true, check: checkAcceptFromNet,
		doc:   "deliver the channel's events from the network (never on control)",
		field: func(r *ChannelConfig) any { return &r.AcceptFromNet }},
	{name: "socketmode", typ: tMode, def: defaultSocketMode, check: checkRuleSocketMode,
		doc:   "permission of the channel's socket; unset: the top-level socketmode",
		field: func(r *ChannelConfig) any { return &r.SocketMode }},
	{name: "socketgroup", typ: tString, def: "", check: checkSocketGroup,
		doc:   `group of the channel's socket, a name or number; "" is the server's`,
		field: func(r *ChannelConfig) any { return &r.SocketGroup }},
	{name: "allow", typ: tList, def: []string{}, check: checkAllow,
		doc:   "users and groups that may connect; [] is everyone the socket lets in",
		field: func(r *ChannelConfig) any { return &r.Allow }},
	{name: "publish", typ: tList, def: []string{}, check: checkPublish,
		doc:   "users and groups that may send events; [] is every client",
		field: func(r *ChannelConfig) any { return &r.Publish }},
	{name: "maxclients", typ: tInt, def: 0, lo: 0, hi: maxClients,
		doc:   "most clients connected at once; 0 is no limit",
		field: func(r *ChannelConfig) any { return &r.MaxClients }},
	{name: "maxclientsperuid", typ: tInt, def: 0, lo: 0, hi: maxClients,
		doc:   "most clients of one user connected at once; 0 is no limit",
		field: func(r *ChannelConfig) any { return &r.MaxClientsPerUID }},
	{name: "overflow", typ: tString, def: overflowBlock, check: checkOverflow,
		doc:   `"block" holds publishers back for a slow client, "drop" drops it at maxpending`,
		field: func(r *ChannelConfig) any { return &r.Overflow }},
	{name: "propagatetonats", typ: tBool, def: false,
		doc:   "send the channel's events to NATS",
		field: func(r *ChannelConfig) any { return &r.PropagateToNATS }},
	{name: "acceptfromnats", typ: tBool, def: false, check: checkAcceptFromNATS,
		doc:   "deliver the channel's events from NATS (never on control)",
		field: func(r *ChannelConfig) any { return &r.AcceptFromNATS }},
}

// value returns the key's field of t as a comparable value.
func (k *key[T]) value(t *T) any {
	switch p := k.field(t).(type) {
	case *bool:
		return *p
	case *int:
		return *p
	case *string:
		return *p
	case *time.Duration:
		return *p
	case *fs.FileMode:
		return *p
	case *[]string:
		return strings.Join(*p, "\x00") // comparable
	}
	panic("router: key " + k.name + ": field of an unknown type")
}

// fileValue returns the key's field of t as the file spells it, a secret
// that is set as redactedSecret.
func (k *key[T]) fileValue(t *T) any {
	if k.show != nil {
		return k.show(t)
	}
	if p, ok := k.field(t).(*[]string); ok {
		return append([]string{}, *p...)
	}
	switch v := k.value(t).(type) {
	case time.Duration:
		return v.String()
	case fs.FileMode:
		return fmt.Sprintf("%04o", v)
	case string:
		switch {
		case k.secret && v != "":
			return redactedSecret
		case k.typ == tRegexp && v == "":
			return false
		case k.typ == tStrings:
			return splitList(v)
		}
		return v
	default:
		return v
	}
}

// fileMap renders t under the keys of the file, secrets redacted.
func fileMap[T any](keys []key[T], t *T) map[string]any {
	m := make(map[string]any, len(keys)+1)
	for i := range keys {
		m[keys[i].name] = keys[i].fileValue(t)
	}
	return m
}

// differ returns, in table order, the names of the keys whose values
// differ in a and b, of those that keep says to look at.
func differ[T any](keys []key[T], a, b *T, keep func(*key[T]) bool) []string {
	var out []string
	for i := range keys {
		k := &keys[i]
		if keep(k) && k.value(a) != k.value(b) {
			out = append(out, k.name)
		}
	}
	return out
}
