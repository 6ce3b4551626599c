package channel

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netcluster/netcluster/internal/wire"

	"github.com/google/uuid"
)

// errorGrace is how long a client that broke the protocol has to read
// the error frame that says so.
const errorGrace = time.Second

// Cred is what the kernel says about the process at the other end of a
// connection: its pid, uid and gid, and where the system tells them, its
// supplementary groups.
type Cred struct {
	PID, UID, GID int
	Groups        []int
}

// Conn is one client connection of a channel. It reads the client's
// frames on one goroutine and writes to it from a bounded queue on
// another.
type Conn struct {
	ch *Channel
	id uint64
	nc net.Conn
	// log is the connection's logger: the channel's with the conn key,
	// and the client's name and pid once its hello has given them.
	log       atomic.Pointer[slog.Logger]
	since     time.Time
	cred      Cred       // the peer's credentials, when credKnown
	credKnown bool       // whether the system told cred
	hello     wire.Hello // set by the handshake, before mode leaves modeUndecided

	// mode is modeUndecided until the first byte or the JSON grace says
	// which protocol the client speaks. It changes once, under mu, and
	// can be read without it.
	mode atomic.Uint32

	// received is the event being handed to the Handler, reused for
	// each (a local whose address went to the Handler would escape);
	// only the read loop uses it.
	received Event
	// readBuf is the pooled buffer that the read loop's getBuf gave
	// the frame being read, nil when the frame is too large to pool;
	// only the read loop uses it.
	readBuf *frameBuf

	removed atomic.Bool // has left the channel; receiverList callers skip it
	// interest is what the client listens to (interest.go): nil when it
	// takes every event. Set by the handshake before mode leaves
	// modeUndecided, then by the read loop only.
	interest atomic.Pointer[filter]
	// publish says whether the client may send events (Access.Publish):
	// publishOK, publishDenied, or publishDropped once it sent one all the same.
	publish atomic.Uint32

	mu         sync.Mutex
	queue      sendQueue   // frames waiting for the writer
	spare      sendQueue   // the arrays of the last batch written, for reuse
	wbufs      net.Buffers // what WriteTo consumes, a field so as not to escape per write; writer only
	wsent      [][]byte    // the entries of wbufs before WriteTo consumed them; writer only
	wdeadline  int64       // when the writer last set the write deadline (writeBuffers), monoNow; writer only
	pending    int         // what the queued frames cost, being written or not (entryCost)
	closeAfter bool        // close once the queue is written
	lastWords  []byte      // the error message finish queued, which is not an event (unsentEvents)
	graceTimer *time.Timer // closes a finishing client that does not read
	wake       chan struct{}
	// drained is closed, and set to nil, when the queue goes under its
	// low-water mark or the client is dropped: it lets go the readers
	// held for this client (flow.go). Made by the first of them.
	drained      chan struct{}
	stallDropped bool          // dropped for stalltimeout already
	dead         chan struct{} // closed when the socket is closed
	killOnce     sync.Once

	graceJSON bool // taken for JSON because it stayed silent; read loop only

	// version is the protocol version the handshake settled on; set
	// before mode becomes modeBinary, so a reader that loads mode first
	// may read it.
	version uint64
	pings   atomic.Uint64 // pings and pongs received from the client
	live    liveness      // the liveness check's; only its goroutine uses it
	// inRead is set while the read loop waits in a read of the socket
	// (socketReader): a client that sends nothing then is silent of its
	// own accord; otherwise the server holds its reader.
	inRead atomic.Bool

	// Back-pressure (flow.go), in monoNow nanoseconds: when the queue
	// last passed its high-water mark, when the writer last wrote a
	// chunk, when this client's own reader was last let go. waitingOn is
	// the client this client's reader is held for, nil when it is not.
	overSince, tookAt, heldUntil atomic.Int64
	// unread is what the client's socket held unread at the last stall
	// check (socketUnread), 0 before the first.
	unread    atomic.Int64
	waitingOn atomic.Pointer[Conn]

	framesIn, bytesIn   atomic.Uint64
	framesOut, bytesOut atomic.Uint64
	dropped             atomic.Uint64 // events meant for the client that it is never sent (drop)

	// retainFrom is the seq of the first event its queue got (retain.go).
	retainFrom uint64
	// retainAfter is the id of the event before retainFrom, the newest
	// in the ring when it was set; zero when there was none.
	retainAfter [16]byte
	// readDone is closed when the read loop has ended; drainSent is set
	// once the connection is sent a Drain (drain.go).
	readDone  chan struct{}
	drainSent atomic.Bool
}

// ClientInfo describes a connection for the control channel.
type ClientInfo struct {
	Conn      uint64    // the channel's number for the connection
	ID        uuid.UUID // the client's id from its handshake
	Name      string    // the client's name from its handshake
	PID       int       // from the socket's peer credentials; 0 if unknown
	UID       int       // from the socket's peer credentials; -1 if unknown
	Since     time.Time // when it connected
	FramesIn  uint64    // events received from it
	BytesIn   uint64
	FramesOut uint64 // frames written to it
	BytesOut  uint64
	Pending   int    // what is queued for it now, in bytes: the buffers and their bookkeeping, which maxpending bounds
	Dropped   uint64 // events not delivered to it because it was closing or slow, or cut off when its connection ended
	HelloPID  uint64 // the process id the client gave in its hello
	// Protocol is "binary" for the framed protocol, "json" for the JSON
	// text protocol (PROTOCOL.md § 10).
	Protocol string
	// Interest is the patterns the client declared it listens to; nil
	// when it takes every event of the channel.
	Interest []string
}

// Channel is the channel the connection belongs to.
func (c *Conn) Channel() *Channel { return c.ch }

// ID is the client's id: from its Hello, or for a JSON client one the
// server chose (PROTOCOL.md § 10.6). It is set once the protocol is known,
// which is before the connection's first event reaches the Handler.
func (c *Conn) ID() uuid.UUID { return c.hello.ClientID }

// Info returns the connection's identity and counters.
func (c *Conn) Info() ClientInfo {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	ci := ClientInfo{
		Conn: c.id, ID: c.hello.ClientID, Name: c.hello.Name, UID: -1, Since: c.since,
		FramesIn: c.framesIn.Load(), BytesIn: c.bytesIn.Load(),
		FramesOut: c.framesOut.Load(), BytesOut: c.bytesOut.Load(), Pending: pending,
		Dropped: c.dropped.Load(), HelloPID: c.hello.PID,
		Protocol: "binary", Interest: c.Interest(),
	}
	if c.mode.Load() == modeJSON {
		ci.Protocol = "json"
	}
	if c.credKnown {
		ci.PID, ci.UID = c.cred.PID, c.cred.UID
	}
	return ci
}

// pendingNow is what is queued for the client now, in bytes.
func (c *Conn) pendingNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// serve runs the connection: handshake, then the read loop, until the
// client leaves or the channel stops reading; then it waits for the
// writer.
func (c *Conn) serve() {
	defer c.ch.wg.Done()
	writerDone := make(chan struct{})
	br := bufio.NewReaderSize(socketReader{c}, firstReadBuffer)
	// The connection is among the channel's receivers from its accept on,
	// so events that arrive while its protocol is unknown are held in its
	// queue; the writer starts once the protocol is known.
	if mode := c.handshake(br); mode != modeUndecided {
		go func() {
			defer close(writerDone)
			c.writeLoop()
		}()
		if mode == modeJSON {
			// Past the bytes the handshake peeked, the larger buffer
			// reads from the socket directly.
			c.jsonReadLoop(bufio.NewReaderSize(br, jsonReadBuffer))
		} else {
			c.readLoop(br)
		}
	} else {
		close(writerDone)
		c.kill(slog.LevelDebug, "")
	}
	close(c.readDone)
	c.ch.readers.Done()
	<-writerDone
	c.kill(slog.LevelDebug, "")
	c.mu.Lock()
	if c.graceTimer != nil {
		c.graceTimer.Stop()
	}
	// Dead, so push queues nothing more: give back the buffers of what
	// was never written, and count its events as dropped.
	c.drop(c.unsentEvents(c.queue.frames, 0))
	c.queue.release()
	c.queue, c.spare, c.pending = sendQueue{}, sendQueue{}, 0
	c.mu.Unlock()
	c.ch.remove(c)
}

// socketReader reads c's socket for the read loop, and marks the time
// it waits in a read (Conn.inRead). Two atomic stores per read of up to
// 32 KiB cost nothing beside the system call.
type socketReader struct{ c *Conn }

func (r socketReader) Read(p []byte) (int, error) {
	r.c.inRead.Store(true)
	n, err := r.c.nc.Read(p)
	r.c.inRead.Store(false)
	return n, err
}

func (c *Conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// kill closes the socket now, dropping whatever is queued.
func (c *Conn) kill(level slog.Level, reason string) {
	c.killOnce.Do(func() {
		if reason != "" {
			c.logger().Log(context.Background(), level, "closing client", "reason", reason)
		}
		close(c.dead)
		c.nc.Close()
	})
}

// peerClosed stops the writer of a client that has closed its end of
// the socket (a write failed with err): the events it sent before it
// closed may still wait, unread, on ours, and must be handled as any
// others. What is queued for it is dropped, and so is whatever comes
// for it later; the reader goes on to the end of what the client sent
// and closes the connection there (readFailed), or after errorGrace if
// the end does not come.
func (c *Conn) peerClosed(err error) {
	c.mu.Lock()
	c.closeAfter = true // enqueue drops from now on
	dropped := c.unsentEvents(c.queue.frames, 0)
	c.pending -= c.queue.cost
	c.queue.release()
	t := time.AfterFunc(errorGrace, func() {
		c.kill(slog.LevelDebug, "client closed its end and sent nothing more: "+err.Error())
	})
	c.graceTimer = t
	c.mu.Unlock()
	c.drop(dropped)
}

// finish queues an error frame as the last thing the client hears, and
// closes the connection once it is written, or after grace (when not 0)
// if the client does not read.
func (c *Conn) finish(level slog.Level, code wire.ErrorCode, reason string, grace time.Duration) {
	c.logger().Log(context.Background(), level, "closing client", "code", code.String(), "reason", reason)
	c.mu.Lock()
	frame := c.errorMessage(code, reason)
	if c.closeAfter || c.isDead() {
		c.mu.Unlock()
		return
	}
	cost := entryCost(frame, nil)
	c.pending += cost + c.queue.add(frame, nil, cost)
	c.closeAfter, c.lastWords = true, frame
	c.wakeHeldLocked()
	if grace > 0 {
		// Set before the writer is woken: lastWordsOut replaces it.
		c.graceTimer = time.AfterFunc(grace, func() { c.kill(slog.LevelWarn, "client did not read its last frames") })
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// poke wakes the writer.
func (c *Conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) logger() *slog.Logger { return c.log.Load() }
