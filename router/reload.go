package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/channel"
)

// ReloadReport says what a reload changed.
type ReloadReport struct {
	// File is where the new configuration was read from.
	File string
	// Added are the channels opened, Removed those closed (their clients
	// got error code ChannelGone), Changed those whose rule changed, and
	// Reopened those whose socket path changed, so that they were closed
	// at the old path and opened at the new one. All sorted.
	Added, Removed, Changed, Reopened []string
	// Settings are the top-level keys whose value changed, sorted.
	Settings []string
}

// Empty reports whether the reload changed nothing at all.
func (r ReloadReport) Empty() bool {
	return len(r.Added)+len(r.Removed)+len(r.Changed)+len(r.Reopened)+len(r.Settings) == 0
}

// ReloadFile loads the configuration file at path and applies it with
// Reload. An empty path means the file the server was started with
// (Options.ConfigPath). A file that cannot be read or is not valid
// changes nothing; the error is then a *ConfigError naming file, line and
// key, or the read error.
func (s *Server) ReloadFile(path string) (ReloadReport, error) {
	return s.reloadFile(path, nil)
}

// reloadFile is ReloadFile, with reload's applied.
func (s *Server) reloadFile(path string, applied func(ReloadReport)) (ReloadReport, error) {
	if path == "" {
		path = s.opts.ConfigPath
	}
	if path == "" {
		return ReloadReport{}, errors.New("router: the server runs on a built-in configuration, so a reload must name a file")
	}
	cfg, err := LoadFile(path)
	if err != nil {
		return ReloadReport{}, err
	}
	return s.reload(cfg, applied)
}

// Reload applies a new configuration without dropping the clients of the
// channels that stay:
//
//   - channels new in cfg are opened first, all or none; if one cannot
//     be opened, nothing changes and the error names it;
//   - a kept channel whose socket path changes (a new socket template) is
//     reopened: opened at the new path with the new ones, and closed at
//     the old path afterwards, its clients told where it went;
//   - a new socketmode is applied to the kept sockets in place;
//   - the new routing table is swapped in at once, so changed rules take
//     effect from the next event; new maxframe and maxpending apply to
//     every client from its next frame, and new pinginterval and
//     pingtimeout from the liveness check's next round;
//   - channels cfg drops are closed: their clients get what is queued,
//     then error code ChannelGone with the reason, for at most
//     Options.ShutdownTimeout;
//   - a new metrics address moves the metrics listener (the new one is
//     opened first).
//
// Keys of the multicast link are reported in Settings; they take effect
// when the link is restarted. Reloads are serialized; once Shutdown has
// begun, Reload returns ErrClosed.
func (s *Server) Reload(cfg *Config) (ReloadReport, error) {
	return s.reload(cfg, nil)
}

// reload is Reload. When applied is not nil, it is called with the report
// once the new configuration is in place and before the removed channels
// close: a control request that removes the control channel is answered
// before its asker is disconnected.
func (s *Server) reload(cfg *Config, applied func(ReloadReport)) (ReloadReport, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.closed {
		return ReloadReport{}, ErrClosed
	}
	old := s.cfg.Load()
	s.mu.Lock()
	cur := maps.Clone(s.channels)
	s.mu.Unlock()

	rep := ReloadReport{File: cfg.File, Settings: changedSettings(old, cfg)}
	var keep []string // channels that stay open as they are
	for _, name := range cfg.ChannelNames() {
		ch, ok := cur[name]
		switch {
		case !ok:
			rep.Added = append(rep.Added, name)
		case ch.Path() != cfg.SocketPath(name):
			rep.Reopened = append(rep.Reopened, name)
		default:
			keep = append(keep, name)
		}
		if ok && !sameRule(old.Channels[name], cfg.Channels[name]) {
			rep.Changed = append(rep.Changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cur)) {
		if _, ok := cfg.Channels[name]; !ok {
			rep.Removed = append(rep.Removed, name)
		}
	}

	// Everything that can fail comes first, and is undone on failure.
	var metrics *metricsServer
	if cfg.Metrics != old.Metrics && cfg.Metrics != "" {
		m, err := s.startMetrics(cfg.Metrics)
		if err != nil {
			return ReloadReport{}, err
		}
		metrics = m
	}
	opened := make(map[string]*channel.Channel)
	undo := func() {
		for _, ch := range opened {
			ch.Close()
		}
		if metrics != nil {
			metrics.close()
		}
	}
	for _, name := range slices.Concat(rep.Added, rep.Reopened) {
		ch, err := channel.Listen(s.channelConfig(cfg, name))
		if err != nil {
			undo()
			return ReloadReport{}, fmt.Errorf("router: reload: channel %q: %w", name, err)
		}
		opened[name] = ch
	}
	var moded []string
	for _, name := range keep {
		want := s.channelConfig(cfg, name).Mode
		ch := cur[name]
		if ch.Mode() == want {
			continue
		}
		if err := ch.SetMode(want); err != nil {
			for _, n := range moded {
				cur[n].SetMode(s.channelConfig(old, n).Mode)
			}
			undo()
			return ReloadReport{}, fmt.Errorf("router: reload: %w", err)
		}
		moded = append(moded, name)
	}
	commitNet, err := s.reloadNetwork(old, cfg)
	if err != nil {
		for _, n := range moded {
			cur[n].SetMode(s.channelConfig(old, n).Mode)
		}
		undo()
		return ReloadReport{}, fmt.Errorf("router: reload: %w", err)
	}

	// Nothing fails from here on.
	next := make(map[string]*channel.Channel, len(cfg.Channels))
	for _, name := range keep {
		next[name] = cur[name]
		cur[name].SetLimits(cfg.MaxFrame, cfg.MaxPending)
		cur[name].SetPing(cfg.PingInterval, cfg.PingTimeout)
	}
	maps.Copy(next, opened)
	s.mu.Lock()
	s.channels = next
	s.cfg.Store(cfg)
	s.table.Store(buildTable(cfg, next))
	s.mu.Unlock()
	commitNet()
	oldMetrics := s.metrics
	if cfg.Metrics != old.Metrics {
		s.metrics = metrics
		if oldMetrics != nil {
			oldMetrics.close()
		}
	}
	s.reloads.Add(1)
	for _, name := range rep.Added {
		ch := next[name]
		s.log.Info("channel listening", "channel", name, "socket", ch.Path(), "mode", fmt.Sprintf("%04o", ch.Mode()),
			"propagatetochannels", ruleText(cfg.Channels[name]))
	}

	if applied != nil {
		applied(rep)
	}

	// Close what was removed or moved, all at once, bounded in time.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	type closing struct {
		ch     *channel.Channel
		reason string
	}
	var gone []closing
	for _, name := range rep.Removed {
		gone = append(gone, closing{cur[name], fmt.Sprintf("channel %s was removed from the configuration", name)})
	}
	for _, name := range rep.Reopened {
		gone = append(gone, closing{cur[name], fmt.Sprintf("channel %s moved to %s; connect there", name, cfg.SocketPath(name))})
	}
	for _, g := range gone {
		g.ch.Quiesce()
	}
	for _, g := range gone {
		if err := g.ch.Shutdown(ctx, bus.CodeChannelGone, g.reason); err != nil {
			s.log.Warn("closing a removed channel cut short: queued frames dropped", "channel", g.ch.Name(), "err", err)
		}
		s.log.Info("channel closed by reload", "channel", g.ch.Name(), "reason", g.reason)
	}
	s.log.Info("configuration reloaded", "config", cfg.File, "added", rep.Added, "removed", rep.Removed,
		"changed", rep.Changed, "reopened", rep.Reopened, "settings", rep.Settings)
	return rep, nil
}

// sameRule reports whether two rules route alike.
func sameRule(a, b ChannelConfig) bool {
	return a.PropagateToChannels == b.PropagateToChannels && a.PropagateToNet == b.PropagateToNet &&
		a.DumpToConsole == b.DumpToConsole && a.AcceptFromNet == b.AcceptFromNet
}

// changedSettings lists, sorted, the top-level keys whose values differ.
func changedSettings(a, b *Config) []string {
	return slices.Sorted(slices.Values(differ(settings, a, b, func(*key[Config]) bool { return true })))
}
