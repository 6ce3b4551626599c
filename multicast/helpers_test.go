package multicast_test

import (
	"bytes"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/multicast"
	"github.com/netcluster/netcluster/multicast/mcasttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	mcasttest.Main()
	goleak.VerifyTestMain(m)
}

var group = netip.MustParseAddr("239.255.77.77")

// logBuffer collects a link's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// inbox keeps what a link delivers.
type inbox struct {
	mu   sync.Mutex
	msgs [][]byte
	from []uuid.UUID
}

func (in *inbox) deliver(from uuid.UUID, msg []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, bytes.Clone(msg))
	in.from = append(in.from, from)
}

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.msgs)
}

func (in *inbox) all() [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([][]byte(nil), in.msgs...)
}

// testLink is a link on lo in the test's namespace with its inbox and
// logs.
type testLink struct {
	*multicast.Link
	cfg  multicast.Config
	in   *inbox
	logs *logBuffer
}

// config is a link configuration on lo at port, with short timers.
func config(port int) multicast.Config {
	return multicast.Config{
		Group:       group,
		Port:        port,
		Interface:   mcasttest.Interface,
		TTL:         1,
		Cluster:     "test",
		Node:        uuid.New(),
		Heartbeat:   50 * time.Millisecond,
		PeerTimeout: 300 * time.Millisecond,
		Version:     "test",
	}
}

func openLink(t *testing.T, cfg multicast.Config) *testLink {
	t.Helper()
	return openWith(t, cfg, multicast.Open)
}

// openNodeLink opens a link of node n.
func openNodeLink(t *testing.T, n *multicast.Node, cfg multicast.Config) *testLink {
	t.Helper()
	return openWith(t, cfg, n.Open)
}

func openWith(t *testing.T, cfg multicast.Config, open func(multicast.Config, func(uuid.UUID, []byte)) (*multicast.Link, error)) *testLink {
	t.Helper()
	tl := &testLink{in: &inbox{}, logs: &logBuffer{}}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tl.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tl.cfg = cfg
	l, err := open(cfg, tl.in.deliver)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	tl.Link = l
	t.Cleanup(func() {
		l.Close()
		if t.Failed() {
			t.Logf("log of node %v:\n%s", cfg.Node, tl.logs)
		}
	})
	return tl
}

// waitFor polls cond until it holds or thirty seconds pass: generous,
// for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
