package router

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
)

// Options are the parts of a server's setup that do not come from the
// configuration file. The zero value is ready to use.
type Options struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Node is the server's node id; the zero UUID means a random one.
	Node uuid.UUID
	// HandshakeTimeout bounds how long a framed client may take, from its
	// connect, to send its whole hello; 0 means 5 s.
	HandshakeTimeout time.Duration
	// JSONGrace is how long a new connection may stay silent before it is
	// taken for a listen-only client of the JSON text protocol; 0 means
	// channel.DefaultJSONGrace (300 ms).
	JSONGrace time.Duration
}

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

	done     chan struct{}
	shutOnce sync.Once
	shutErr  error
}

// Start opens every channel of cfg and starts serving them. It opens all
// sockets or none: if one cannot be opened (another server holds it, its
// directory is unusable), those already opened are closed again and the
// error names the channel.
func Start(cfg *Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Node == (uuid.UUID{}) {
		opts.Node = uuid.New()
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		node:     opts.Node,
		channels: make(map[string]*channel.Channel),
		done:     make(chan struct{}),
	}
	s.cfg.Store(cfg)
	for _, name := range cfg.ChannelNames() {
		ch, err := channel.Listen(s.channelConfig(cfg, name))
		if err != nil {
			for _, open := range s.channels {
				open.Close()
			}
			return nil, fmt.Errorf("router: channel %q: %w", name, err)
		}
		s.channels[name] = ch
	}
	s.table.Store(buildTable(cfg, s.channels))
	for _, name := range cfg.ChannelNames() {
		ch := s.channels[name]
		s.log.Info("channel listening", "channel", name, "socket", ch.Path(), "mode", fmt.Sprintf("%04o", ch.Mode()),
			"propagatetochannels", ruleText(cfg.Channels[name]))
	}
	if cfg.ConnectToNet {
		s.log.Warn("connecttonet is true, but this build has no multicast link yet: serving local channels only")
	}
	return s, nil
}

func ruleText(r ChannelConfig) string {
	if r.Propagate == nil {
		return "false"
	}
	return r.PropagateToChannels
}

func (s *Server) channelConfig(cfg *Config, name string) channel.Config {
	mode := cfg.SocketMode
	if name == ControlChannel {
		mode = 0o600
	}
	return channel.Config{
		Name:             name,
		Path:             cfg.SocketPath(name),
		Mode:             mode,
		MaxFrame:         cfg.MaxFrame,
		MaxPending:       cfg.MaxPending,
		HandshakeTimeout: s.opts.HandshakeTimeout,
		JSONGrace:        s.opts.JSONGrace,
		Node:             s.node,
		Logger:           s.log,
		Handler:          s.handler(name),
	}
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
	return r.ch.Clients(), true
}

// Shutdown stops the server gracefully: it stops accepting clients and
// reading events on every channel, removes the socket files, writes to
// every client what is already queued for it, and closes the clients.
// If ctx ends before the queues are written, the rest are dropped and
// Shutdown returns ctx's error. It returns after every goroutine of the
// server has ended, and is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.mu.Lock()
		chans := make([]*channel.Channel, 0, len(s.channels))
		for _, ch := range s.channels {
			chans = append(chans, ch)
		}
		s.mu.Unlock()
		// First stop every channel's input, so that no event is routed
		// into a channel that is already flushing.
		for _, ch := range chans {
			ch.Quiesce()
		}
		for _, ch := range chans {
			if err := ch.Shutdown(ctx, bus.CodeShutdown, "server shutting down"); err != nil && s.shutErr == nil {
				s.shutErr = err
			}
		}
		s.log.Info("server stopped")
		close(s.done)
	})
	return s.shutErr
}

// Close shuts the server down at once, dropping what is queued.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Shutdown(ctx)
	return nil
}
