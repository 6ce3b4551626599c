package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/internal/wire"
)

// controlChannel is the channel the server answers requests on.
const controlChannel = "control"

// session is what the commands of one ncclient run share: the settings,
// the output, and the connection to the control channel, made on first
// use and made again after it breaks.
type session struct {
	set    settings
	stdout io.Writer
	stderr io.Writer

	mu       sync.Mutex
	ctl      *bus.Client
	channels []string // the last answer to `channels`, for completion
}

func newSession(s settings, stdout, stderr io.Writer) *session {
	return &session{set: s, stdout: stdout, stderr: stderr}
}

// close ends the control connection.
func (s *session) close() {
	s.mu.Lock()
	c := s.ctl
	s.ctl = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// errNotRunning marks errors that mean no server is running.
type errNotRunning struct{ err error }

func (e *errNotRunning) Error() string { return e.err.Error() }
func (e *errNotRunning) Unwrap() error { return e.err }

// errQuit is what quit returns: the prompt ends.
var errQuit = errors.New("quit")

// exitCode maps a command's error to the exit status.
func exitCode(err error) int {
	var ue *usageError
	var nr *errNotRunning
	switch {
	case err == nil, errors.Is(err, errQuit):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &nr):
		return exitNoServer
	}
	return exitFailed
}

// report prints a command's error, if any, and returns its exit status.
func (s *session) report(err error) int {
	code := exitCode(err)
	if code != exitOK {
		fmt.Fprintf(s.stderr, "ncclient: %v\n", err)
	}
	return code
}

// dial connects to a channel. When no server serves it, the error says
// whether the server is not running (nothing answers on control either:
// errNotRunning) or the channel does not exist.
// opts come after the defaults, and may change them.
func (s *session) dial(ctx context.Context, channel string, opts ...bus.Option) (*bus.Client, error) {
	// No reconnecting, unless opts say so (listen): a command reports a
	// server that went away, and the next one dials again.
	opts = append([]bus.Option{bus.SocketTemplate(s.set.socket), bus.Name("ncclient"), bus.Timeout(s.set.timeout), bus.Reconnect(false),
		bus.ServerUID(s.set.serverUID)}, opts...)
	c, err := bus.Dial(ctx, channel, opts...)
	if err == nil || !errors.Is(err, bus.ErrNoServer) {
		if err != nil {
			err = fmt.Errorf("connecting to channel %s: %w", channel, err)
		}
		return c, err
	}
	if channel == controlChannel {
		return nil, s.notRunning()
	}
	if _, cerr := s.controlClient(ctx); cerr != nil {
		if exitCode(cerr) == exitNoServer {
			return nil, &errNotRunning{fmt.Errorf("no server serves channel %s (socket %s), and none serves control: is ncserver running?", channel, wire.SocketPath(s.set.socket, channel))}
		}
		return nil, fmt.Errorf("connecting to channel %s: %w", channel, err)
	}
	names, lerr := s.channelNames(ctx, true)
	switch {
	case lerr != nil:
		return nil, fmt.Errorf("channel %s does not exist: nothing answers on %s", channel, wire.SocketPath(s.set.socket, channel))
	case slices.Contains(names, channel):
		return nil, fmt.Errorf("the server serves channel %s, but nothing answers on %s", channel, wire.SocketPath(s.set.socket, channel))
	}
	return nil, fmt.Errorf("channel %s does not exist; the server serves %s", channel, strings.Join(names, ", "))
}

func (s *session) notRunning() error {
	return &errNotRunning{fmt.Errorf("no server is running: nothing answers on %s (is ncserver running, and serving the control channel?)", wire.SocketPath(s.set.socket, controlChannel))}
}

// controlClient returns the connection to the control channel, dialing it
// when there is none or the last one broke.
func (s *session) controlClient(ctx context.Context) (*bus.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctl != nil {
		select {
		case <-s.ctl.Done():
			s.ctl.Close()
			s.ctl = nil
		default:
			return s.ctl, nil
		}
	}
	c, err := bus.Dial(ctx, controlChannel, bus.SocketTemplate(s.set.socket), bus.Name("ncclient"), bus.Timeout(s.set.timeout), bus.Reconnect(false),
		bus.ServerUID(s.set.serverUID))
	if errors.Is(err, bus.ErrNoServer) {
		return nil, s.notRunning()
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the control channel: %w", err)
	}
	s.ctl = c
	return c, nil
}

// interruptContext is a context that SIGINT and SIGTERM cancel: Ctrl-C
// ends a listen, or a request that waits.
func interruptContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// exec runs one command. At the prompt (interactive), the connection to
// control stays open between commands.
func (s *session) exec(ctx context.Context, c call, interactive bool) error {
	switch {
	case c.cmd == nil:
		return nil
	case c.cmd.control:
		return s.controlRequest(ctx, c)
	case c.cmd.run != nil:
		return c.cmd.run(s, ctx, c, interactive)
	}
	switch c.name {
	case "emit":
		return s.emit(ctx, c.arg(0), c.arg(1), c.arg(2))
	case "listen":
		return s.listen(ctx, c.arg(0), c.arg(1), interactive)
	case "help":
		return s.help(c.arg(0))
	case "quit":
		return errQuit
	}
	return usagef("%s: not implemented", c.name)
}

// channelNames returns the channels the server serves, from the cache
// unless refresh is set or the cache is empty.
func (s *session) channelNames(ctx context.Context, refresh bool) ([]string, error) {
	s.mu.Lock()
	names := s.channels
	s.mu.Unlock()
	if names != nil && !refresh {
		return names, nil
	}
	resp, err := s.request(ctx, "channels", nil)
	if err != nil {
		return nil, err
	}
	names = channelsOf(resp)
	slices.Sort(names)
	s.mu.Lock()
	s.channels = names
	s.mu.Unlock()
	return names, nil
}
