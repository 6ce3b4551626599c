package router

import (
	"time"

	"github.com/google/uuid"
)

// With both links on, the dedup remembers each id for dedupWindow: as
// late as NATS brings its copies when all is well. While NATS is away,
// its copies come much later: a sender keeps what it sends meanwhile in
// its buffer, and sends it once it hears the receivers again; a
// JetStream consumer delivers from where it stopped. The multicast
// copies were delivered long before. So while NATS is behind, the dedup
// remembers each id for as long as that has lasted, plus dedupWindow,
// and for dedupWindow more after it ends, while the late copies come.
// Its bound (dedupMost ids a generation) still holds; what it forgets
// earlier is counted (NetStats.DedupCut).
//
// NATS is behind while this server's connection to it is down, or while
// a server heard over multicast is no longer heard over NATS, although
// it was and did not say it left NATS (its connection is down: it keeps
// its events for NATS until it is back); and, once it was behind, for
// as long as the JetStream consumer lags by more than jsLagBehind
// events, delivering what this server missed. A consumer always lags
// by the events in flight, so that lag alone never starts an episode.

const (
	// dedupTick is how often dedupWatch looks at the links.
	dedupTick = 250 * time.Millisecond
	// jsLagBehind is a JetStream consumer's lag past which it is still
	// catching up: four times what it may have in flight unacknowledged
	// (NATS's default max_ack_pending, 1000).
	jsLagBehind = 4000
)

// dedupWatch stretches the dedup's window while NATS is behind; it runs
// while both links are on (setDedupWindow).
type dedupWatch struct {
	stop, done chan struct{}
	// heard are the servers heard over NATS, and when last, while they
	// are heard over multicast too.
	heard map[uuid.UUID]time.Time
	// since is when NATS fell behind, zero when it has not; over is when
	// it caught up, zero until then: the stretched window holds for
	// dedupWindow after.
	since, over time.Time
}

// startDedupWatch starts dedupWatch unless it runs.
func (s *Server) startDedupWatch() {
	if s.net.watch != nil {
		return
	}
	w := &dedupWatch{stop: make(chan struct{}), done: make(chan struct{}), heard: make(map[uuid.UUID]time.Time)}
	if s.goBackground(func() { s.dedupWatch(w) }) {
		s.net.watch = w
	}
}

// stopDedupWatch ends dedupWatch if it runs, and waits for it: it sets
// the window no more once this returns.
func (s *Server) stopDedupWatch() {
	if w := s.net.watch; w != nil {
		close(w.stop)
		<-w.done
		s.net.watch = nil
	}
}

func (s *Server) dedupWatch(w *dedupWatch) {
	defer close(w.done)
	t := time.NewTicker(dedupTick)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			was := w.since
			s.net.recent.SetWindow(w.window(now, s.natsBehind(w, now)), dedupMost)
			switch {
			case was.IsZero() && !w.since.IsZero():
				s.log.Info("NATS is behind multicast: the dedup keeps event ids until NATS has brought what it kept", "since", w.since)
			case !was.IsZero() && w.since.IsZero():
				s.log.Info("NATS has caught up with multicast: the dedup keeps event ids for its usual window again",
					"window", dedupWindow, "behind_for", now.Sub(was).Round(time.Millisecond))
			}
		}
	}
}

// natsBehind is when NATS fell behind multicast, as far as the links
// tell now; zero when it is not behind.
func (s *Server) natsBehind(w *dedupWatch, now time.Time) time.Time {
	link, mc := s.nats.link.Load(), s.net.link.Load()
	if link == nil || mc == nil {
		return time.Time{}
	}
	since := link.DownSince()
	earlier := func(t time.Time) {
		if !t.IsZero() && (since.IsZero() || t.Before(since)) {
			since = t
		}
	}
	onNet := make(map[uuid.UUID]bool)
	for _, p := range mc.Peers() {
		onNet[p.Node] = true
	}
	for _, p := range link.Peers() {
		w.heard[p.Node] = p.LastSeen
	}
	timeout := s.Config().PeerTimeout
	for node, last := range w.heard {
		switch {
		case !onNet[node] || link.Left(node):
			delete(w.heard, node) // gone from both links, never on multicast, or off NATS
		case now.Sub(last) > timeout:
			earlier(last)
		}
	}
	if since.IsZero() && !w.since.IsZero() && link.JetStreamLag() > jsLagBehind {
		since = w.since // still catching up
	}
	return since
}

// window is the dedup's window now, NATS behind since since (zero: it is
// not).
func (w *dedupWatch) window(now, since time.Time) time.Duration {
	switch {
	case !since.IsZero():
		if w.since.IsZero() || since.Before(w.since) {
			w.since = since
		}
		w.over = time.Time{}
	case w.since.IsZero():
	case w.over.IsZero():
		w.over = now // caught up: the late copies come now
	case now.Sub(w.over) > dedupWindow:
		w.since, w.over = time.Time{}, time.Time{}
	}
	if w.since.IsZero() {
		return dedupWindow
	}
	return dedupWindow + now.Sub(w.since)
}
