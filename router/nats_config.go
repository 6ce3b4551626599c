package router

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/natslink"
)

// natsKey is the top-level key of the NATS link's settings, an object
// whose keys are natsKeys.
const natsKey = "nats"

// Defaults and limits of the NATS keys that messages name.
const (
	defaultNATSPrefix = "netcluster"
	maxNATSBuffer     = 1 << 30
	// defaultNATSPendingMsgs is nats.go's default of 500,000 lowered:
	// one event a message, that let a server that delivered slower than
	// NATS brought hold up to about 260 MiB per channel (benchmarks.md).
	defaultNATSPendingMsgs = 65536
)

// NATSConfig is the NATS link's part of the configuration ("nats"). The
// link is on while URL is not "".
type NATSConfig struct {
	// URL ("url", a string or an array of strings in the file) lists
	// the NATS servers to connect to, joined by ",": nats.go tries them
	// in turn. "" (the default) leaves the link off.
	URL string
	// User and Password ("user", "password") authenticate with a user
	// name and password; Token ("token") with a token. Password and
	// Token are secrets: never shown nor logged.
	User, Password, Token string
	// NKeyFile ("nkeyfile") names a file holding an nkey seed;
	// CredsFile ("credsfile") a credentials file (a user JWT and its
	// seed). Relative to the configuration file's directory, read by
	// nats.go at each connect.
	NKeyFile, CredsFile string
	// CA ("tlsca") is the file of the certificate authorities the
	// servers' certificates are checked against; Cert and Key ("tlscert",
	// "tlskey") the client certificate and its key. Relative as above.
	CA, Cert, Key string
	// Prefix ("prefix") begins every subject. Default "netcluster".
	Prefix string
	// Name ("name") is the connection's name that the NATS server shows;
	// "" (the default) is "ncserver <host name>".
	Name string
	// Buffer ("buffer") bounds, in bytes, what is kept for NATS while the
	// connection is down; past it events are dropped and counted. 0
	// keeps nothing. Default 8 MiB.
	Buffer int
	// PendingMsgs and PendingBytes ("pendingmsgs", "pendingbytes")
	// bound what nats.go keeps of each subscription's messages that the
	// server has not delivered yet; past either one nats.go drops them
	// (counted in dropped_in). Flow control keeps senders within half of
	// them. Default 65,536 messages and 64 MiB.
	PendingMsgs, PendingBytes int
	// Pack ("pack") sends the events of channels to NATS in packs: the
	// events that come while the previous pack is sent go in one message
	// (natslink.HeaderPack). Several times the throughput, but a plain
	// NATS program listening gets packs, not one event per message.
	// Servers read packs whether or not they send them. Default false.
	Pack bool
	// JetStream ("jetstream") takes the bridged channels' events through
	// a JetStream stream that keeps them for MaxAge ("maxage") and up to
	// MaxBytes ("maxbytes"), and a durable consumer named Durable
	// ("durable"; "" is the host name): a server that was down gets what
	// it missed. Default false, "1h", 64 MiB, "".
	JetStream bool
	MaxAge    time.Duration
	MaxBytes  int
	Durable   string
	// FlowControl ("flowcontrol") says which receiving servers hold
	// the sending back, as the top-level key of that name does for
	// multicast: "min" (the default) sends no further ahead of the
	// slowest server that reports taking this one's events than it says
	// it can take; "none" sends as fast as NATS takes the events.
	FlowControl string
	// WriteTimeout ("writetimeout") bounds a write to the NATS
	// connection: a NATS server, or a path to it, that takes nothing
	// for that long loses the connection, and the link reconnects.
	// Default "10s".
	WriteTimeout time.Duration
	// CatchUp ("catchup") is how long a server that starts waits before
	// it takes what it missed from the stream, so that its clients,
	// which reconnect on their own, are back to hear it. Default "5s".
	CatchUp time.Duration
}

// On reports whether the configuration connects to NATS.
func (n *NATSConfig) On() bool { return n.URL != "" }

// natsKeys are the keys of the "nats" object.
var natsKeys = []key[NATSConfig]{
	{name: "url", typ: tStrings, def: "", check: checkNATSURL,
		doc:   `NATS server URLs, tried in turn; "" leaves the link off`,
		field: func(n *NATSConfig) any { return &n.URL }},
	{name: "user", typ: tString, def: "",
		doc:   "user name, with password",
		field: func(n *NATSConfig) any { return &n.User }},
	{name: "password", typ: tString, def: "", secret: true, check: checkNATSSecret,
		doc:   "password of user",
		field: func(n *NATSConfig) any { return &n.Password }},
	{name: "token", typ: tString, def: "", secret: true, check: checkNATSSecret,
		doc:   "authentication token",
		field: func(n *NATSConfig) any { return &n.Token }},
	{name: "nkeyfile", typ: tString, def: "",
		doc:   "file holding an nkey seed",
		field: func(n *NATSConfig) any { return &n.NKeyFile }},
	{name: "credsfile", typ: tString, def: "", check: checkNATSAuth,
		doc:   "credentials file (user JWT and seed)",
		field: func(n *NATSConfig) any { return &n.CredsFile }},
	{name: "tlsca", typ: tString, def: "",
		doc:   "file of the CAs that NATS servers' certificates are checked against",
		field: func(n *NATSConfig) any { return &n.CA }},
	{name: "tlscert", typ: tString, def: "",
		doc:   "client certificate file, with tlskey",
		field: func(n *NATSConfig) any { return &n.Cert }},
	{name: "tlskey", typ: tString, def: "", check: checkNATSTLS,
		doc:   "client key file, with tlscert",
		field: func(n *NATSConfig) any { return &n.Key }},
	{name: "prefix", typ: tString, def: defaultNATSPrefix, check: checkNATSPrefix,
		doc:   "first tokens of every subject",
		field: func(n *NATSConfig) any { return &n.Prefix }},
	{name: "name", typ: tString, def: "",
		doc:   `connection name; "" is "ncserver <host name>"`,
		field: func(n *NATSConfig) any { return &n.Name }},
	{name: "buffer", typ: tInt, def: 8 << 20, lo: 0, hi: maxNATSBuffer,
		doc:   "bytes kept for NATS while disconnected; past them events are dropped",
		field: func(n *NATSConfig) any { return &n.Buffer }},
	{name: "pendingmsgs", typ: tInt, def: defaultNATSPendingMsgs, lo: 64, hi: 1 << 24,
		doc:   "messages of a channel from NATS held for delivery at most; past them nats.go drops",
		field: func(n *NATSConfig) any { return &n.PendingMsgs }},
	{name: "pendingbytes", typ: tInt, def: 64 << 20, lo: 128 << 10, hi: 1 << 30,
		doc:   "bytes of a channel's messages from NATS held for delivery at most; past them nats.go drops",
		field: func(n *NATSConfig) any { return &n.PendingBytes }},
	{name: "pack", typ: tBool, def: false,
		doc:   "send the events waiting for NATS together, several to a message: faster, but plain NATS listeners see packs",
		field: func(n *NATSConfig) any { return &n.Pack }},
	{name: "flowcontrol", typ: tString, def: string(multicast.FlowMin), check: checkNATSFlowControl,
		doc:   `"min": send no faster than the slowest server that takes these events can take them; "none": as fast as NATS takes them`,
		field: func(n *NATSConfig) any { return &n.FlowControl }},
	{name: "writetimeout", typ: tDuration, def: natslink.DefaultWriteTimeout.String(), lo: int64(100 * time.Millisecond), hi: int64(time.Hour),
		doc:   "how long a write to NATS may wait; past it the connection is dropped and made again",
		field: func(n *NATSConfig) any { return &n.WriteTimeout }},
	{name: "jetstream", typ: tBool, def: false,
		doc:   "keep the bridged events in a JetStream stream, for servers that were down",
		field: func(n *NATSConfig) any { return &n.JetStream }},
	{name: "maxage", typ: tDuration, def: "1h", lo: int64(time.Second), hi: int64(365 * 24 * time.Hour),
		doc:   "how long the stream keeps an event",
		field: func(n *NATSConfig) any { return &n.MaxAge }},
	{name: "maxbytes", typ: tInt, def: 64 << 20, lo: 1 << 10, hi: 1 << 40,
		doc:   "bytes the stream keeps at most",
		field: func(n *NATSConfig) any { return &n.MaxBytes }},
	{name: "catchup", typ: tDuration, def: "5s", lo: int64(time.Millisecond), hi: int64(time.Hour), off: true,
		doc:   "how long a starting server waits for its clients before it delivers what it missed",
		field: func(n *NATSConfig) any { return &n.CatchUp }},
	{name: "durable", typ: tString, def: "", check: checkNATSDurable,
		doc:   `name of this server's durable consumer; "" is the host name`,
		field: func(n *NATSConfig) any { return &n.Durable }},
}

func checkNATSFlowControl(c *checker, key string, n *NATSConfig) {
	checkFlowMode(c, key, n.FlowControl)
}

// checkNATSDurable: a consumer name is one subject token.
func checkNATSDurable(c *checker, key string, n *NATSConfig) {
	if n.Durable != "" && (strings.Contains(n.Durable, ".") || !natslink.ValidSubject(n.Durable)) {
		c.addAt([]string{key}, "%q is not a consumer name: no '.', spaces, '*' nor '>'", clipText(n.Durable, 60))
	}
}

// splitList is a tStrings value as the file lists it.
func splitList(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

// joinList is a tStrings value as decoded (a string or an array of
// strings) joined by ",", the items trimmed.
func joinList(v any) string {
	var items []string
	switch v := v.(type) {
	case string:
		items = strings.Split(v, ",")
	case []any:
		for _, x := range v {
			s, _ := x.(string)
			items = append(items, s)
		}
	}
	out := items[:0]
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

// shownURL is u as a problem quotes it, unless it may hold credentials
// (an "@"): those are never printed.
func shownURL(u string) string {
	if strings.Contains(u, "@") {
		return "a URL with an \"@\" (not shown: it may hold credentials)"
	}
	return strconv.Quote(clipText(u, 60))
}

func checkNATSURL(c *checker, key string, n *NATSConfig) {
	for _, u := range splitList(n.URL) {
		s := u
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		p, err := url.Parse(s)
		if err != nil || p.Host == "" {
			c.addAt([]string{key}, "%s is not a NATS URL such as \"nats://127.0.0.1:4222\"", shownURL(u))
			return
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			c.addAt([]string{key}, "%s: the scheme must be nats, tls, ws or wss", shownURL(u))
			return
		}
		if p.User != nil {
			// showconfig shows URLs: secrets go in the secret keys.
			c.addAt([]string{key}, "a URL holds credentials; set them with user and password, or token, which are never shown")
			return
		}
	}
}

// checkNATSSecret refuses the placeholder showconfig writes for a secret.
func checkNATSSecret(c *checker, key string, n *NATSConfig) {
	v := n.Password
	if strings.HasSuffix(key, ".token") {
		v = n.Token
	}
	if v == redactedSecret {
		c.addAt([]string{key}, "%q stands for a secret that showconfig does not show; supply the secret", redactedSecret)
	}
}

// checkNATSAuth: one way to authenticate.
func checkNATSAuth(c *checker, key string, n *NATSConfig) {
	prefix := strings.TrimSuffix(key, "credsfile")
	ways := 0
	for _, set := range []bool{n.User != "" || n.Password != "", n.Token != "", n.NKeyFile != "", n.CredsFile != ""} {
		if set {
			ways++
		}
	}
	switch {
	case ways > 1:
		c.addAt([]string{prefix + "user", prefix + "token", prefix + "nkeyfile", prefix + "credsfile"},
			"user and password, token, nkeyfile and credsfile are exclusive; set one")
	case n.User != "" && n.Password == "":
		c.addAt([]string{prefix + "user"}, "user %q has no password", clipText(n.User, 40))
	case n.Password != "" && n.User == "":
		c.addAt([]string{prefix + "password"}, "password without user")
	}
}

func checkNATSTLS(c *checker, key string, n *NATSConfig) {
	prefix := strings.TrimSuffix(key, "tlskey")
	if (n.Cert == "") != (n.Key == "") {
		c.addAt([]string{prefix + "tlscert", key}, "tlscert and tlskey go together; set both or neither")
	}
}

func checkNATSPrefix(c *checker, key string, n *NATSConfig) {
	if !natslink.ValidSubject(n.Prefix) {
		c.addAt([]string{key}, "%q is not a NATS subject: tokens separated by '.', none empty, no spaces, '*' nor '>'", clipText(n.Prefix, 60))
	}
}

// checkNATSCluster: the cluster name is a token of every subject.
func (c *checker) checkNATSCluster(cfg *Config) {
	if cfg.NATS.On() && cfg.Cluster != "" && (strings.Contains(cfg.Cluster, ".") || strings.HasPrefix(cfg.Cluster, "$") || !natslink.ValidSubject(cfg.Cluster)) {
		c.addAt([]string{"cluster"}, "%q is a token of the NATS subjects: no '.', spaces, '*' nor '>', no '$' first", clipText(cfg.Cluster, 60))
	}
}

// checkAcceptFromNATS: the control channel never takes events from NATS.
func checkAcceptFromNATS(c *checker, key string, r *ChannelConfig) {
	if r.Name == ControlChannel && r.AcceptFromNATS {
		c.addAt([]string{key}, "the control channel never accepts events from NATS")
		r.AcceptFromNATS = false
	}
}

// natsPath is a file of the nats object: as written when absolute, else
// relative to the configuration file's directory.
func (c *Config) natsPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// natsShown is the nats object as showconfig shows it, secrets redacted.
func natsShown(c *Config) map[string]any { return fileMap(natsKeys, &c.NATS) }

// natsDiffer lists, as "nats.<key>", the keys of the nats object that
// differ in a and b.
func natsDiffer(a, b *Config) []string {
	var out []string
	for _, k := range differ(natsKeys, &a.NATS, &b.NATS, func(*key[NATSConfig]) bool { return true }) {
		out = append(out, fmt.Sprintf("%s.%s", natsKey, k))
	}
	return out
}
