package natslink

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// pipeDialer dials NATS (Config.dialer) and can break the connections
// it made: their writes fail with a broken pipe while their reads go
// on, as when the NATS server has gone and nats.go has yet to read the
// end of the connection. nats.go counts itself connected meanwhile.
type pipeDialer struct {
	mu    sync.Mutex
	conns []*pipeConn
	// failed counts the writes refused; published, those with a
	// message to subject.
	failed, published atomic.Int64
	subject           []byte
}

type pipeConn struct {
	net.Conn
	d      *pipeDialer
	broken atomic.Bool
}

func (d *pipeDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	pc := &pipeConn{Conn: c, d: d}
	d.mu.Lock()
	d.conns = append(d.conns, pc)
	d.mu.Unlock()
	return pc, nil
}

func (c *pipeConn) Write(p []byte) (int, error) {
	if !c.broken.Load() {
		return c.Conn.Write(p)
	}
	c.d.failed.Add(1)
	if bytes.Contains(p, c.d.subject) {
		c.d.published.Add(1)
	}
	return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
}

// breakPipe breaks the connections made so far.
func (d *pipeDialer) breakPipe() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.broken.Store(true)
	}
}

// cut closes the connections made so far: nats.go reads the end of
// them, and reconnects.
func (d *pipeDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Conn.Close()
	}
	d.conns = nil
}

// TestBrokenPipeNoSpin: while nats.go, connected as far as it knows,
// fails every write (a broken pipe, before it reads the end of the
// connection), the outage buffer is tried again once a Heartbeat or
// so, and logged once; then, nats.go reconnected, it goes. Before,
// outageLoop tried again at once, each attempt failing and kicking the
// next, and logged each one: a busy loop of hundreds a second.
func TestBrokenPipeNoSpin(t *testing.T) {
	ns := startNATS(t)
	log := &syncBuffer{}
	subject := Subject("netcluster", "", "A")
	d := &pipeDialer{subject: []byte(subject)}
	const heartbeat = 100 * time.Millisecond
	l, err := Open(Config{URL: ns.ClientURL(), Node: uuid.New(), Buffer: 1 << 20, Heartbeat: heartbeat,
		PeerTimeout: 2 * time.Second, ReconnectWait: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(log, nil)), dialer: d}, func(*Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	waitFor(t, "the link to connect", l.Connected)
	sub := subscribeA(t, ns.ClientURL())

	d.breakPipe()
	// Past nats.go's write buffer (32 KiB): written, and refused, at once.
	data := bytes.Repeat([]byte{'x'}, 40<<10)
	publishA(t, l, false, uuid.New(), data)
	const broken = 600 * time.Millisecond
	time.Sleep(broken)
	if !l.nc.IsConnected() {
		t.Fatal("nats.go saw the connection go: the test proves less than it says")
	}
	attempts := d.published.Load()
	sending := strings.Count(log.String(), "sending the events kept while NATS was away")
	d.cut()
	if got := eventsOf(t, sub, false, 1, l); !bytes.Equal(got[0], data) {
		t.Errorf("got an event of %d bytes, want %d", len(got[0]), len(data))
	}
	t.Logf("in %v of a broken pipe: %d attempts, %d logged", broken, attempts, sending)
	if most := int64(broken/heartbeat) + 2; attempts > most {
		t.Errorf("the event was handed to nats.go %d times in %v of a broken pipe, want at most %d", attempts, broken, most)
	}
	if sending > 1 {
		t.Errorf("%q logged %d times in %v of a broken pipe, want once at most", "sending the events kept while NATS was away", sending, broken)
	}
}
