package router

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/internal/wire"
)

// ControlChannel is the name of the channel on which the server answers
// requests such as showconfig and reloadconfig. Its socket is owner-only
// (mode 0600) whatever socketmode says, and it never takes events from the
// network.
const ControlChannel = "control"

// Defaults and limits of the configuration keys that messages name
// besides the schema (schema.go), which holds every key's default.
// config.json at the repository root documents the same values; a test
// keeps them in step.
const (
	defaultAddr       = "239.255.77.77"
	defaultSocketMode = "0660"

	minMaxFrame    = 1024
	maxMaxFrame    = 64 << 20
	maxMaxPending  = 1 << 30
	maxClusterLen  = 64
	minHeartbeat   = 10 * time.Millisecond
	maxHeartbeat   = time.Hour
	maxPeerTimeout = 24 * time.Hour
	// The liveness check of clients.
	minPingInterval = 10 * time.Millisecond
	maxPingInterval = time.Hour
	maxPingTimeout  = 24 * time.Hour
	maxHistory      = 1 << 30
	maxRate         = 1 << 40
	minGapTimeout   = 10 * time.Millisecond
	maxGapTimeout   = time.Hour
	maxClients      = 1 << 20
	maxMemoryLimit  = 1 << 50
	minStallTimeout = 10 * time.Millisecond
	maxStallTimeout = time.Minute
	// The ring of retained events.
	maxRetainBytes = 1 << 30
	minRetainAge   = time.Millisecond
	maxRetainAge   = 24 * time.Hour

	// socketPlaceholder is replaced by the channel name in the socket
	// template.
	socketPlaceholder = wire.ChannelPlaceholder
)

// Config is a parsed, validated ncserver configuration. Its zero value is
// not used directly: get one from [Parse], [LoadFile] or [Defaults].
// A Config is not modified after loading, so it may be shared between
// goroutines; a reload produces a new Config.
type Config struct {
	// File is where the configuration was read from, for messages, such as
	// "config.json" or "config.json (built in)".
	File string
	// Addr ("addr") is the IPv4 multicast group. Default "239.255.77.77".
	Addr string
	// Port ("port") is the UDP port of the group, 1..65535. Default 4454.
	Port int
	// ConnectToNet ("connecttonet") joins the multicast group. Default false.
	ConnectToNet bool
	// DumpNet ("dumpnet") logs every datagram received. Default false.
	DumpNet bool
	// StartControl ("startcontrol") serves the control channel. Default true.
	StartControl bool
	// Interface ("interface") names the network interface for multicast;
	// "" (the default) picks the only interface that is up, supports
	// multicast and is not a loopback, and fails when there are several.
	Interface string
	// TTL ("ttl") is the multicast time-to-live, 0..255. Default 1.
	TTL int
	// Cluster ("cluster") names the cluster; datagrams of another cluster
	// are ignored. At most 64 bytes; default "".
	Cluster string
	// Payload ("payload") is the largest datagram sent, headers included,
	// 576..65507 bytes. Default 1400. Larger events are fragmented.
	Payload int
	// Heartbeat ("heartbeat", a duration such as "1s" in the file) is how
	// often the server announces itself to its peers, 10ms..1h. Default 1 s.
	Heartbeat time.Duration
	// PeerTimeout ("peertimeout", a duration) is how long a silent peer
	// stays in the peer table: at least twice Heartbeat, at most 24 h.
	// Default 5 s.
	PeerTimeout time.Duration
	// History ("history") bounds, in bytes, the datagrams the server keeps
	// to resend when a peer reports them lost (a NAK), 0..1<<30; 0 keeps
	// none, so peers skip what they lose at once. Default 4 MiB.
	History int
	// GapTimeout ("gaptimeout", a duration) is how long the server waits
	// for a datagram missing from a peer's sequence, asking for it again
	// and again, before it skips it and counts it as lost, 10ms..1h.
	// Default 2 s.
	GapTimeout time.Duration
	// FlowControl ("flowcontrol") says which receivers hold a sender
	// back: "min" (the default), the slowest that has reported within
	// PeerTimeout, so that no receiver is outrun; "none", none, so that
	// receivers that cannot keep up lose what their socket cannot hold
	// and repair or skip it.
	FlowControl string
	// MaxRate ("maxrate") bounds the bytes per second of the datagrams
	// the server sends, data, repairs and the rest together, repairs to
	// a quarter of it; 0 (the default) is unbounded.
	MaxRate int
	// Key ("key") is the shared secret that seals datagrams. Never print
	// it: use [Config.Redacted] or [Config.String].
	Key string
	// KeyFile ("keyfile") names a file holding the shared secret, relative
	// to the configuration file's directory unless absolute. Key and
	// KeyFile are mutually exclusive. The file is not read at load, but
	// when the server starts and at each reload: see [Config.Secret].
	KeyFile string
	// Socket ("socket") is the socket path template; it contains
	// "{channel}". "" (the default) means [DefaultSocketTemplate].
	Socket string
	// SocketMode ("socketmode", an octal string such as "0660" in the
	// file) is the permission of the channel sockets. It is at most 0777
	// and includes 0600. Default 0660. The control channel's socket is
	// always 0600.
	SocketMode fs.FileMode
	// MaxFrame ("maxframe") is the largest frame in bytes,
	// 1024..64<<20. Default 1<<20.
	MaxFrame int
	// MaxPending ("maxpending") bounds each client's send queue in bytes,
	// MaxFrame..1<<30. Default 8<<20.
	MaxPending int
	// MemoryLimit ("memorylimit") is the Go runtime's soft memory limit
	// for the whole process, in bytes (debug.SetMemoryLimit): 0 (the
	// default) leaves the runtime's (GOMEMLIMIT, or none), else at least
	// 16 MiB. The server sets it at start and at each reload that
	// changes it, and gives the runtime's back when it shuts down.
	MemoryLimit int
	// Metrics ("metrics") is the host:port address on which the server
	// serves Prometheus metrics at /metrics (and profiles at
	// /debug/pprof/); "" (the default) serves none.
	Metrics string
	// PingInterval ("pinginterval", a duration) is how long a client of
	// protocol version 2 or later may send nothing before the server
	// pings it: 10ms..1h, or 0 to drop nobody for silence and ping only
	// the publishers the server holds back. Default 10 s.
	PingInterval time.Duration
	// PingTimeout ("pingtimeout", a duration) is how long such a client
	// may send nothing, not even the answer to a ping, before the server
	// drops it: at least twice PingInterval, at most 24 h. Default 30 s.
	PingTimeout time.Duration
	// StallTimeout ("stalltimeout", a duration) is how long a client
	// whose queue holds its publishers back may take nothing before it
	// is dropped as a slow consumer and they go on: 10ms..1m. Default
	// 2 s (channel.DefaultStallTimeout says why).
	StallTimeout time.Duration
	// RetainBytes ("retainbytes") bounds, in bytes, the recent events
	// each channel keeps for clients that reconnect and resume, counted
	// with their bookkeeping: 0..1<<30, 0 keeps none. Default 4<<20,
	// what a client's reconnect buffer holds by default.
	RetainBytes int
	// RetainAge ("retainage", a duration) is how long each channel keeps
	// a recent event for clients that resume: 1ms..24h, or 0 to keep
	// none. Default 30 s.
	RetainAge time.Duration
	// NATS ("nats") is the NATS link: off while its URL is "".
	NATS NATSConfig
	// Channels ("channels") maps each channel name to its rule. It holds
	// ControlChannel if and only if StartControl is true.
	Channels map[string]ChannelConfig
}

// ChannelConfig is the rule of one channel.
type ChannelConfig struct {
	// Name is the channel's name, the key in Config.Channels.
	Name string
	// PropagateToChannels ("propagatetochannels") is the expression as
	// written, or "" when the file says false (the default).
	PropagateToChannels string
	// Propagate is PropagateToChannels compiled once, at load, anchored at
	// both ends; nil when PropagateToChannels is "".
	Propagate *regexp.Regexp
	// PropagateToNet ("propagatetonet") sends the channel's messages to the
	// multicast group. Default false.
	PropagateToNet bool
	// DumpToConsole ("dumptoconsole") logs the channel's messages.
	// Default false.
	DumpToConsole bool
	// AcceptFromNet ("acceptfromnet") delivers messages from the network to
	// the channel. Default true, except on the control channel, which never
	// takes events from the network.
	AcceptFromNet bool
	// SocketMode ("socketmode") is the permission of the channel's
	// socket: the top-level SocketMode unless the rule sets it; always
	// 0600 for the control channel.
	SocketMode fs.FileMode
	// SocketGroup ("socketgroup") is the group of the channel's socket,
	// a name or a number; "" (the default) leaves the server's.
	SocketGroup string
	// Allow ("allow") lists the users and groups that may connect, as
	// written; empty (the default): everyone the socket's mode lets in.
	// Publish ("publish") lists those of them that may send events;
	// empty (the default): every client. Each entry is a user name or
	// uid, "user:NAME", or "group:NAME" with a group name or gid.
	Allow, Publish []string
	// AllowSet and PublishSet are Allow and Publish looked up once, at
	// load; nil when empty.
	AllowSet, PublishSet *channel.Principals
	// MaxClients ("maxclients") bounds the channel's clients, and
	// MaxClientsPerUID ("maxclientsperuid") those of one user id; 0 (the
	// default) is no limit.
	MaxClients, MaxClientsPerUID int
	// Overflow ("overflow") is what happens when a client of the channel
	// falls behind: "block" (the default) holds back the publishers that
	// feed it, "drop" drops it at maxpending and never slows a publisher.
	Overflow string
	// PropagateToNATS ("propagatetonats") sends the events that enter
	// the bus on this channel to NATS. Default false.
	PropagateToNATS bool
	// AcceptFromNATS ("acceptfromnats") delivers the channel's events
	// from NATS. Default false; never on the control channel.
	AcceptFromNATS bool
}

// ConfigError lists every problem found in a configuration file.
type ConfigError struct {
	File     string    // as given to Parse
	Problems []Problem // in file order; never empty
}

// Problem is one thing wrong in a configuration file.
type Problem struct {
	Line, Column int    // 1-based; the column counts bytes
	Key          string // dotted path, such as "channels.A.propagatetonet"; "" for the file as a whole
	Msg          string
}

// Error prints one problem per line as "file:line:col: key: msg". With
// several problems, a first line "file: N problems" comes before them.
func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return e.format(e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems", e.name(), len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(e.format(p))
	}
	return b.String()
}

func (e *ConfigError) name() string {
	if e.File == "" {
		return "config"
	}
	return e.File
}

func (e *ConfigError) format(p Problem) string {
	if p.Key == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.name(), p.Line, p.Column, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.name(), p.Line, p.Column, p.Key, p.Msg)
}

// Defaults returns the configuration of an empty file: every key at its
// default, and only the control channel.
func Defaults() *Config {
	c, err := Parse("", []byte("{}"))
	if err != nil {
		panic("router: the defaults do not load: " + err.Error())
	}
	return c
}

// Parse parses and validates a HuJSON configuration. file names the input
// in messages only. On failure the error is a [*ConfigError] listing every
// problem found, each with its line and column.
func Parse(file string, data []byte) (*Config, error) {
	c := newChecker(data)
	cfg := c.check()
	if len(c.problems) > 0 {
		return nil, c.err(file)
	}
	cfg.File = file
	return cfg, nil
}

// LoadFile reads the configuration file at path and parses it with
// [Parse]. A file that cannot be read is an error naming the path and
// wrapping the cause.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("router: reading config: %w", err)
	}
	return Parse(path, data)
}

// ChannelNames returns the names of the configured channels, sorted.
func (c *Config) ChannelNames() []string {
	return slices.Sorted(maps.Keys(c.Channels))
}

// Targets returns, sorted, the names of the channels other than from that
// from's rule propagates to: those its Propagate expression matches in
// full. It returns nil when from is unknown or propagates nowhere. The
// control channel is never a target and never propagates: requests to
// the server stay on it, and application events stay off it.
func (c *Config) Targets(from string) []string {
	re := c.Channels[from].Propagate
	if re == nil || from == ControlChannel {
		return nil
	}
	var out []string
	for _, name := range c.ChannelNames() {
		if name != from && name != ControlChannel && re.MatchString(name) {
			out = append(out, name)
		}
	}
	return out
}

// SocketPath returns the socket path of channel: the socket template, or
// wire.DefaultSocketTemplate when it is empty, with "{channel}" replaced
// by the name. Clients find the socket the same way.
func (c *Config) SocketPath(channel string) string {
	return wire.SocketPath(c.Socket, channel)
}

// DefaultSocketTemplate returns the socket path template used when the
// configuration sets none; see wire.DefaultSocketTemplate.
func DefaultSocketTemplate() string { return wire.DefaultSocketTemplate() }

// Redacted returns a copy of c that is safe to print: each secret (Key),
// when set, is replaced by "(set)". A configuration file that says "(set)"
// for a secret does not load: its secret must be supplied again.
func (c *Config) Redacted() *Config {
	r := *c
	for i := range settings {
		k := &settings[i]
		if p, ok := k.field(&r).(*string); ok && k.secret && *p != "" {
			*p = redactedSecret
		}
	}
	for i := range natsKeys {
		k := &natsKeys[i]
		if p, ok := k.field(&r.NATS).(*string); ok && k.secret && *p != "" {
			*p = redactedSecret
		}
	}
	r.Channels = maps.Clone(c.Channels)
	return &r
}

// String formats c with its key redacted, so that a Config printed or
// logged by accident does not leak the secret. Its receiver is a value so
// that a Config printed by value is redacted too.
func (c Config) String() string {
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(*c.Redacted()))
}
