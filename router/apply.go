package router

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/netcluster/netcluster/channel"
)

// Start and every reload apply a configuration the same way, from the
// running one (for Start, the empty configuration) to the new one:
//
//   - plan works out what changes, touching nothing;
//   - prepare does everything that can fail (opens the new sockets, the
//     new multicast link, the new metrics listener, changes socket
//     modes), and is undone as a whole when one step fails;
//   - commit swaps the new state in, closes what is gone and logs; it
//     cannot fail.

// linkChange is what applying a configuration does to a link that is on
// or off: the multicast link, the metrics listener.
type linkChange int

const (
	linkSame   linkChange = iota // as it was, on or off
	linkOn                       // off before, on now: opened
	linkOff                      // on before, off now: closed
	linkReopen                   // on before and now, set up differently: replaced
)

var linkChangeNames = [...]string{linkSame: "same", linkOn: "on", linkOff: "off", linkReopen: "reopen"}

func (c linkChange) String() string {
	if int(c) < len(linkChangeNames) {
		return linkChangeNames[c]
	}
	return fmt.Sprintf("linkChange(%d)", int(c))
}

// changeOf is the change of a link that was on (wasOn) and is on (isOn),
// and whose keys differ or not.
func changeOf(wasOn, isOn, differ bool) linkChange {
	switch {
	case !differ || !wasOn && !isOn:
		return linkSame
	case !wasOn:
		return linkOn
	case !isOn:
		return linkOff
	}
	return linkReopen
}

// openChannel is what a plan needs to know of a channel that is open.
type openChannel struct {
	path  string      // where its socket is
	mode  fs.FileMode // its socket's permissions
	group string      // its socket's group as configured
}

// plan is what applying a configuration changes.
type plan struct {
	// report is what Reload returns: channels added, removed, changed
	// and reopened, the top-level keys changed.
	report ReloadReport
	// keep are the channels that stay open as they are, sorted; remode
	// those of them whose socket mode changes.
	keep, remode []string
	// net is the multicast link's change. When it is linkSame and the
	// link is on, prepareNet still reopens it if the key file's contents
	// changed: only reading the file tells.
	net linkChange
	// metrics is the metrics listener's change.
	metrics linkChange
	// nats is the NATS link's change.
	nats linkChange
}

// samePath reports whether open, the path a channel's socket is open
// at, and next, the path a new configuration gives it, name the same
// socket: the same path once cleaned ("dir/./A.sock"), or the same file
// reached another way (through a symlinked directory). The channel
// keeps its socket then, and its clients.
func samePath(open, next string) bool {
	if filepath.Clean(open) == filepath.Clean(next) {
		return true
	}
	if runtime.GOOS == "windows" {
		// Named pipes: a stat would open them, the channel's own and
		// whatever the new name is, as a client. Their names are not
		// case-sensitive.
		return strings.EqualFold(filepath.Clean(open), filepath.Clean(next))
	}
	a, err := os.Stat(open)
	if err != nil {
		return false
	}
	b, err := os.Stat(next)
	return err == nil && os.SameFile(a, b)
}

// makePlan works out what applying cfg changes on a server that runs old
// and has the channels open. It touches nothing.
func makePlan(old, cfg *Config, open map[string]openChannel) plan {
	p := plan{report: ReloadReport{File: cfg.File, Settings: changedSettings(old, cfg)}}
	rep := &p.report
	for _, name := range cfg.ChannelNames() {
		ch, ok := open[name]
		switch {
		case !ok:
			rep.Added = append(rep.Added, name)
		case !samePath(ch.path, cfg.SocketPath(name)):
			rep.Reopened = append(rep.Reopened, name)
		default:
			p.keep = append(p.keep, name)
			if ch.mode != socketMode(cfg, name) || ch.group != cfg.Channels[name].SocketGroup {
				p.remode = append(p.remode, name)
			}
		}
		if ok && !sameRule(old.Channels[name], cfg.Channels[name]) {
			rep.Changed = append(rep.Changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(open)) {
		if _, ok := cfg.Channels[name]; !ok {
			rep.Removed = append(rep.Removed, name)
		}
	}
	p.net = changeOf(old.ConnectToNet, cfg.ConnectToNet, netKeysDiffer(old, cfg))
	p.metrics = changeOf(old.Metrics != "", cfg.Metrics != "", old.Metrics != cfg.Metrics)
	p.nats = changeOf(old.NATS.On(), cfg.NATS.On(), natsKeysDiffer(old, cfg))
	return p
}

// transaction applies one configuration: its plan, what prepare opened,
// and then commit or undo.
type transaction struct {
	s        *Server
	old, cfg *Config
	plan
	// start is true for Start, whose errors read differently.
	start bool
	// cur are the channels open before.
	cur map[string]*channel.Channel

	// What prepare did, for commit to use or undo to take back.
	opened     map[string]*channel.Channel // sockets of Added and Reopened
	remoded    []string                    // kept channels whose mode is changed
	newMetrics *metricsServer              // the new metrics listener
	commitNet  func()                      // swaps the new multicast link in
	commitNats func()                      // swaps the new NATS link in
	undoNats   func()                      // closes it
}

// apply makes cfg the server's configuration, for Start (start true, the
// server running the empty configuration) and for every reload. When
// applied is not nil, it is called with the report once cfg is in place
// and before the channels that are gone close.
func (s *Server) apply(cfg *Config, applied func(ReloadReport), start bool) (ReloadReport, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.closed {
		return ReloadReport{}, ErrClosed
	}
	s.mu.Lock()
	cur := maps.Clone(s.channels)
	s.mu.Unlock()
	open := make(map[string]openChannel, len(cur))
	for name, ch := range cur {
		open[name] = openChannel{path: ch.Path(), mode: ch.Mode(), group: ch.Group()}
	}
	t := &transaction{s: s, old: s.cfg.Load(), cfg: cfg, start: start, cur: cur}
	t.plan = makePlan(t.old, cfg, open)
	if err := t.prepare(); err != nil {
		t.undo()
		return ReloadReport{}, err
	}
	t.commit(applied)
	return t.report, nil
}

// prepare does every step that can fail, in order: the metrics listener,
// the new sockets, the socket modes, the multicast link. On an error the
// caller undoes what it did.
func (t *transaction) prepare() error {
	s, cfg := t.s, t.cfg
	if t.plan.metrics == linkOn || t.plan.metrics == linkReopen {
		m, err := s.startMetrics(cfg.Metrics)
		if err != nil {
			return err
		}
		t.newMetrics = m
	}
	t.opened = make(map[string]*channel.Channel)
	for _, name := range slices.Concat(t.report.Added, t.report.Reopened) {
		chcfg := s.channelConfig(cfg, name)
		chcfg.Paused = true // until commit has put its route in place
		ch, err := channel.Listen(chcfg)
		if err != nil {
			return t.failed(fmt.Errorf("channel %q: %w", name, err))
		}
		t.opened[name] = ch
	}
	for _, name := range t.remode {
		if err := t.cur[name].SetMode(socketMode(cfg, name)); err != nil {
			return t.failed(err)
		}
		if err := t.cur[name].SetGroup(cfg.Channels[name].SocketGroup); err != nil {
			t.cur[name].SetMode(socketMode(t.old, name))
			return t.failed(err)
		}
		t.remoded = append(t.remoded, name)
	}
	commitNats, undoNats, err := s.prepareNats(cfg, t.plan.nats)
	if err != nil {
		return t.failed(err)
	}
	t.commitNats, t.undoNats = commitNats, undoNats
	commitNet, err := s.prepareNet(t.old, cfg, t.plan.net)
	if err != nil {
		if t.start {
			return err // Start's network errors have always read as they are
		}
		return t.failed(err)
	}
	t.commitNet = commitNet
	return nil
}

// failed names the operation in an error of prepare: "router: reload: ",
// or "router: " for Start.
func (t *transaction) failed(err error) error {
	if t.start {
		return fmt.Errorf("router: %w", err)
	}
	return fmt.Errorf("router: reload: %w", err)
}

// undo takes back what prepare did.
func (t *transaction) undo() {
	for _, name := range t.remoded {
		t.cur[name].SetMode(socketMode(t.old, name))
		t.cur[name].SetGroup(t.old.Channels[name].SocketGroup)
	}
	for _, ch := range t.opened {
		ch.Close()
	}
	if t.newMetrics != nil {
		t.newMetrics.close()
	}
	if t.undoNats != nil {
		t.undoNats()
	}
}

// commit swaps in what prepare opened and the new routing table, applies
// the new limits to the kept channels, then closes what is gone. Nothing
// in it fails.
func (t *transaction) commit(applied func(ReloadReport)) {
	s, cfg := t.s, t.cfg
	next := make(map[string]*channel.Channel, len(cfg.Channels))
	for _, name := range t.keep {
		next[name] = t.cur[name]
		t.cur[name].SetLimits(cfg.MaxFrame, cfg.MaxPending)
		t.cur[name].SetPing(cfg.PingInterval, cfg.PingTimeout)
		t.cur[name].SetAccess(channelAccess(cfg.Channels[name]))
		t.cur[name].SetFlow(overflowPolicy(cfg.Channels[name]), cfg.StallTimeout)
		t.cur[name].SetRetain(retainOf(cfg, name))
	}
	maps.Copy(next, t.opened)
	s.mu.Lock()
	s.channels = next
	s.cfg.Store(cfg)
	s.table.Store(buildTable(cfg, next))
	s.mu.Unlock()
	// A channel serves its clients only now that its route is in place:
	// an event routed before would find none and be lost.
	for _, ch := range t.opened {
		ch.Start()
	}
	t.commitNet()
	s.applyMemoryLimit(t.old, cfg)
	t.commitNats()
	s.setDedupWindow(cfg)
	if t.plan.metrics != linkSame {
		prev := s.metrics
		s.metrics = t.newMetrics
		if prev != nil {
			prev.close()
		}
	}
	if !t.start {
		s.reloads.Add(1)
	}
	for _, name := range t.report.Added {
		ch := next[name]
		s.log.Info("channel listening", "channel", name, "socket", ch.Path(), "mode", fmt.Sprintf("%04o", ch.Mode()),
			"propagatetochannels", ruleText(cfg.Channels[name]))
	}
	if applied != nil {
		applied(t.report)
	}
	t.closeGone()
	if !t.start {
		rep := t.report
		s.log.Info("configuration reloaded", "config", cfg.File, "added", rep.Added, "removed", rep.Removed,
			"changed", rep.Changed, "reopened", rep.Reopened, "settings", rep.Settings)
	}
}

// closeGone closes the channels removed or moved, all at once, bounded in
// time by Options.ShutdownTimeout: their clients get what is queued, then
// error code ChannelGone with the reason.
func (t *transaction) closeGone() {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.opts.ShutdownTimeout)
	defer cancel()
	type closing struct {
		ch     *channel.Channel
		reason string
	}
	var gone []closing
	for _, name := range t.report.Removed {
		gone = append(gone, closing{t.cur[name], fmt.Sprintf("channel %s was removed from the configuration", name)})
	}
	for _, name := range t.report.Reopened {
		gone = append(gone, closing{t.cur[name], fmt.Sprintf("channel %s moved to %s; connect there", name, t.cfg.SocketPath(name))})
	}
	for _, g := range gone {
		g.ch.Drain() // all at once: see Channel.Drain
	}
	for _, g := range gone {
		g.ch.Quiesce()
	}
	for _, g := range gone {
		if err := g.ch.Shutdown(ctx, wire.CodeChannelGone, g.reason); err != nil {
			t.s.log.Warn("closing a removed channel cut short: queued frames dropped", "channel", g.ch.Name(), "err", err)
		}
		t.s.log.Info("channel closed by reload", "channel", g.ch.Name(), "reason", g.reason)
	}
}
