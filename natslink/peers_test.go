package natslink

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLeaving: a link that closes with no link on its subjects to take
// over says so in a last heartbeat, and its peers forget it at once
// (PeerTimeout here is a minute) and know it left NATS (Left); one that
// hands over to a link on the same subjects says nothing, and one that
// moves to another cluster leaves the old one. A server heard again is
// no longer taken as gone.
func TestLeaving(t *testing.T) {
	ns := startNATS(t)
	var log syncBuffer
	open := func(node uuid.UUID, cluster string, held bool) *Link {
		t.Helper()
		l, err := Open(Config{URL: ns.ClientURL(), Node: node, Cluster: cluster, Held: held,
			Heartbeat: 20 * time.Millisecond, PeerTimeout: time.Minute,
			Logger: slog.New(slog.NewTextHandler(&log, nil))}, func(*Event) {})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	hears := func(w *Link, node uuid.UUID) bool {
		for _, p := range w.Peers() {
			if p.Node == node {
				return true
			}
		}
		return false
	}
	watcher := open(uuid.New(), "", false)
	defer watcher.Close()
	node := uuid.New()

	a := open(node, "", false)
	waitFor(t, "the watcher to hear the server", func() bool { return hears(watcher, node) })

	// Handed over on the same subjects: no bye; the new link is heard.
	b := open(node, "", true)
	a.CloseInto(b)
	b.Release()
	since := time.Now()
	waitFor(t, "the link that took over to be heard", func() bool {
		for _, p := range watcher.Peers() {
			if p.Node == node && p.LastSeen.After(since) {
				return true
			}
		}
		return false
	})
	if watcher.Left(node) || strings.Contains(log.String(), "a peer left NATS") {
		t.Fatalf("a link handed over to one on its subjects said it leaves NATS; log:\n%s", log.String())
	}

	// Moved to another cluster: it leaves this one.
	c := open(node, "other", true)
	b.CloseInto(c)
	c.Release()
	waitFor(t, "the watcher to forget the server moved to another cluster", func() bool { return !hears(watcher, node) })
	if !watcher.Left(node) {
		t.Error("the server moved to another cluster is not taken as having left NATS")
	}

	// Back on the watcher's cluster, it is heard, and no longer gone.
	d := open(node, "", false)
	waitFor(t, "the watcher to hear the server again", func() bool { return hears(watcher, node) })
	if watcher.Left(node) {
		t.Error("a server heard again is still taken as having left NATS")
	}

	// Closed: forgotten at once, and gone.
	d.Close()
	waitFor(t, "the watcher to forget the closed link", func() bool { return !hears(watcher, node) })
	if !watcher.Left(node) {
		t.Error("a closed link is not taken as having left NATS")
	}
	if n := strings.Count(log.String(), "a peer left NATS"); n != 2 {
		t.Errorf("the log says %d times that a peer left NATS, want 2:\n%s", n, log.String())
	}
	c.Close()
}
