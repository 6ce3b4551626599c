package router

import (
	"errors"
	"slices"
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
//     opened first);
//   - a change to a key of the multicast link (or to the contents of the
//     key file) opens a new link beside the old one, swaps it in and
//     closes the old one.
//
// Changed top-level keys are reported in Settings. Reloads are
// serialized; once Shutdown has begun, Reload returns ErrClosed.
func (s *Server) Reload(cfg *Config) (ReloadReport, error) {
	return s.reload(cfg, nil)
}

// reload is Reload. When applied is not nil, it is called with the report
// once the new configuration is in place and before the removed channels
// close: a control request that removes the control channel is answered
// before its asker is disconnected.
func (s *Server) reload(cfg *Config, applied func(ReloadReport)) (ReloadReport, error) {
	return s.apply(cfg, applied, false)
}

// sameRule reports whether two rules route alike.
func sameRule(a, b ChannelConfig) bool {
	return len(differ(ruleKeys, &a, &b, func(*key[ChannelConfig]) bool { return true })) == 0
}

// changedSettings lists, sorted, the top-level keys whose values differ.
func changedSettings(a, b *Config) []string {
	return slices.Sorted(slices.Values(append(differ(settings, a, b, func(*key[Config]) bool { return true }), natsDiffer(a, b)...)))
}
