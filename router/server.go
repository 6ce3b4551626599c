package router

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/channel"
	"github.com/netcluster/netcluster/multicast"
)

// Options are the parts of a server's setup that do not come from the
// configuration file. The zero value is ready to use.
type Options struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Node is the server's node id; the zero UUID means a random one.
	// With a key, never give two runs the same node id: a sealed
	// datagram's nonce is made of the node id and a sequence number that
	// starts again at each run.
	Node uuid.UUID
	// HandshakeTimeout bounds how long a framed client may take, from its
	// connect, to send its whole hello; 0 means 5 s.
	HandshakeTimeout time.Duration
	// LogLevel, when set, is the level of Logger's handler: the control
	// request loglevel changes it. nil means loglevel cannot change the
	// level and says so.
	LogLevel *slog.LevelVar
	// ConfigPath is the configuration file the server was started with:
	// what SIGHUP and a reloadconfig request without a path load. ""
	// means there is none (a built-in configuration), and such a reload
	// must name a file.
	ConfigPath string
	// ShutdownTimeout bounds how long the control request shutdown, and a
	// reload closing the channels it removed, wait for clients to read
	// what is queued for them; 0 means 10 s.
	ShutdownTimeout time.Duration
	// JSONGrace is how long a new connection may stay silent before it is
	// taken for a listen-only client of the JSON text protocol; 0 means
	// channel.DefaultJSONGrace (300 ms).
	JSONGrace time.Duration
	// Restart is what the control request restart does, after the asker
	// has been answered: typically shut the server down and start the
	// program again. It is called on a goroutine of its own, which the
	// server does not wait for, so it must not take long itself (it may
	// start what takes long, such as Shutdown, elsewhere). nil means the
	// server cannot restart itself, and restart answers so.
	Restart func()
}

// ErrClosed is returned by Reload once the server is shutting down.
var ErrClosed = errors.New("router: server is shut down")

// Server is an ncserver: it serves the configured channels and routes
// events between them. It can be embedded in any program.
type Server struct {
	opts  Options
	log   *slog.Logger
	node  uuid.UUID
	cfg   atomic.Pointer[Config]
	table atomic.Pointer[table]

	mu       sync.Mutex
	channels map[string]*channel.Channel
	net      network
	nats     natsState
	// linkMu makes the dedup of an event from a link and its delivery
	// one step, so that with both links on, an event never overtakes
	// one its sender sent before it.
	linkMu sync.Mutex

	started       time.Time
	reloads       atomic.Uint64
	undeliverable atomic.Uint64 // addressed events whose client was not there

	// reloadMu serializes reloads, and Shutdown with them.
	reloadMu sync.Mutex
	closed   bool // under reloadMu: Shutdown has begun
	metrics  *metricsServer

	// bg tracks the goroutines that control requests start (reloads),
	// so that Shutdown waits for them.
	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup

	done    chan struct{}
	shutErr error // set before done is closed
	// shutMu guards shutCancel, set by the first Shutdown: it cuts that
	// Shutdown short for a later caller whose ctx ends first.
	shutMu     sync.Mutex
	shutCancel context.CancelFunc
}

// Start opens every channel of cfg and starts serving them. It opens all
// sockets or none: if one cannot be opened (another server holds it, its
// directory is unusable), those already opened are closed again and the
// error names the channel. So with the multicast link and the metrics
// listener: Start is a reload from the empty configuration (no channels,
// no network, no metrics) to cfg, and fails or succeeds as a whole.
func Start(cfg *Config, opts Options) (*Server, error) {
	s := newServer(opts)
	if _, err := s.apply(cfg, nil, true); err != nil {
		return nil, err
	}
	return s, nil
}

// newServer returns a server that runs on the empty configuration: it
// serves no channel, has no network link and no metrics listener.
func newServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Node == (uuid.UUID{}) {
		opts.Node = uuid.New()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		node:     opts.Node,
		channels: make(map[string]*channel.Channel),
		done:     make(chan struct{}),
		started:  time.Now(),
	}
	empty := &Config{}
	s.cfg.Store(empty)
	s.table.Store(buildTable(empty, s.channels))
	s.net.recent = multicast.NewRecent(recentNet)
	return s
}

func ruleText(r ChannelConfig) string {
	if r.Propagate == nil {
		return "false"
	}
	return r.PropagateToChannels
}

// socketMode is the permission cfg gives the socket of channel name.
func socketMode(cfg *Config, name string) fs.FileMode {
	if name == ControlChannel {
		return 0o600
	}
	if m := cfg.Channels[name].SocketMode; m != 0 {
		return m
	}
	return cfg.SocketMode
}

func (s *Server) channelConfig(cfg *Config, name string) channel.Config {
	return channel.Config{
		Name:             name,
		Path:             cfg.SocketPath(name),
		Mode:             socketMode(cfg, name),
		Group:            cfg.Channels[name].SocketGroup,
		Access:           channelAccess(cfg.Channels[name]),
		MaxFrame:         cfg.MaxFrame,
		MaxPending:       cfg.MaxPending,
		HandshakeTimeout: s.opts.HandshakeTimeout,
		JSONGrace:        s.opts.JSONGrace,
		PingInterval:     cfg.PingInterval,
		PingTimeout:      cfg.PingTimeout,
		Overflow:         overflowPolicy(cfg.Channels[name]),
		StallTimeout:     cfg.StallTimeout,
		Retain:           retainOf(cfg, name),
		Node:             s.node,
		Logger:           s.log,
		Handler:          s.handler(name),
	}
}

// overflowPolicy is the channel package's value of an overflow key.
func overflowPolicy(r ChannelConfig) channel.Overflow {
	if r.Overflow == overflowDrop {
		return channel.OverflowDrop
	}
	return channel.OverflowBlock
}

// Node is the server's node id: the origin of every event that enters
// the bus here.
func (s *Server) Node() uuid.UUID { return s.node }

// Config is the configuration the server runs on.
func (s *Server) Config() *Config { return s.cfg.Load() }

// Done is closed once Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

// ChannelInfo describes one served channel.
type ChannelInfo struct {
	Name   string
	Socket string
	Mode   fs.FileMode
	Rule   ChannelConfig
	// Targets are the channels the rule propagates to.
	Targets []string
	Stats   channel.Stats
}

// Channels describes the served channels, sorted by name.
func (s *Server) Channels() []ChannelInfo {
	t := s.table.Load()
	out := make([]ChannelInfo, 0, len(t.routes))
	for name, r := range t.routes {
		ci := ChannelInfo{Name: name, Socket: r.ch.Path(), Mode: r.ch.Mode(), Rule: r.rule, Stats: r.ch.Stats()}
		for _, d := range r.targets {
			ci.Targets = append(ci.Targets, d.Name())
		}
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Clients describes the clients of one channel; ok is false when the
// server has no such channel.
func (s *Server) Clients(name string) (clients []channel.ClientInfo, ok bool) {
	r := s.table.Load().routes[name]
	if r == nil {
		return nil, false
	}
	return r.ch.ClientInfos(), true
}

// Shutdown stops the server gracefully: it stops accepting clients and
// reading events on every channel, removes the socket files, writes to
// every client what is already queued for it, and closes the clients.
// If ctx ends before the queues are written, the rest are dropped and
// Shutdown returns ctx's error. It returns after every goroutine of the
// server has ended, and is idempotent: a call while a shutdown is under
// way waits for it, and when its own ctx ends first, cuts it short as if
// the first call's ctx had ended (a Close during a graceful stop drops
// what is queued at once).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutMu.Lock()
	if cancel := s.shutCancel; cancel != nil {
		s.shutMu.Unlock()
		select {
		case <-s.done: // stopped already: the first call's result
			return s.shutErr
		default:
		}
		select {
		case <-s.done:
			return s.shutErr
		case <-ctx.Done():
			cancel()
			<-s.done
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.shutCancel = cancel
	s.shutMu.Unlock()
	s.bgMu.Lock()
	s.bgClosed = true
	s.bgMu.Unlock()
	s.reloadMu.Lock() // wait for a reload under way
	s.closed = true
	metrics := s.metrics
	s.reloadMu.Unlock()
	s.mu.Lock()
	chans := make([]*channel.Channel, 0, len(s.channels))
	for _, ch := range s.channels {
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	// Nothing more from the network and NATS, so that no event is
	// routed into a channel that is already flushing; then stop
	// every channel's input; then close the links, which send what
	// the clients' last events brought them.
	s.stopInbound()
	if ctx.Err() == nil {
		for _, ch := range chans {
			ch.Drain() // every channel's clients at once: see Channel.Drain
		}
	}
	for _, ch := range chans {
		ch.Quiesce()
	}
	s.stopDedupWatch()
	s.stopNet()
	s.stopNats()
	for _, ch := range chans {
		if err := ch.Shutdown(ctx, wire.CodeShutdown, "server shutting down"); err != nil && s.shutErr == nil {
			s.shutErr = err
		}
	}
	s.bg.Wait()
	if metrics != nil {
		metrics.close()
	}
	releaseMemoryLimit(s)
	s.log.Info("server stopped")
	close(s.done)
	return s.shutErr
}

// goBackground runs f on a goroutine that Shutdown waits for. It reports
// false, and does not run f, once Shutdown has begun.
func (s *Server) goBackground(f func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.bgClosed {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
	return true
}

// Close shuts the server down at once, dropping what is queued.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Shutdown(ctx)
	return nil
}

// retainOf is what channel name keeps of its recent events: nothing on
// the control channel, whose events are requests and their answers.
func retainOf(cfg *Config, name string) channel.Retain {
	if name == ControlChannel {
		return channel.Retain{}
	}
	return channel.Retain{Bytes: cfg.RetainBytes, Age: cfg.RetainAge}
}
