package channel

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// admission is what a channel needs to admit or refuse connections: its
// Access, the connections each uid holds, and the refusals.
type admission struct {
	access atomic.Pointer[Access]
	// perUID counts the connections of each uid (-1: unknown), handshaking
	// or not; refusing holds the refused connections still being told
	// why. Both under Channel.mu.
	perUID   map[int]int
	refusing map[net.Conn]struct{}

	refusedAllow, refusedLimit, refusedPublish atomic.Uint64

	logMu    sync.Mutex
	lastLog  time.Time
	unlogged int // refusals not logged since lastLog
}

// maxRefusing bounds the refused connections told why at once; past it,
// a refused connection is closed without a word, so that a flood of
// connections over a limit costs no more than the limit.
const maxRefusing = 64

// Publish states of a connection (Conn.publish).
const (
	publishOK      uint32 = iota
	publishDenied         // Access.Publish does not admit it
	publishDropped        // it sent an event all the same, and is being closed
)

// uidKey is the key of a connection in perUID.
func uidKey(cr Cred, known bool) int {
	if !known {
		return -1
	}
	return cr.UID
}

// admitLocked decides whether a new connection may join; ch.mu is held.
// It returns 0, or the code and reason of a refusal.
func (ch *Channel) admitLocked(cr Cred, known bool) (wire.ErrorCode, string) {
	a := ch.access.Load()
	if a.Allow != nil {
		if !known {
			return wire.CodeForbidden, fmt.Sprintf("channel %s admits only the users and groups it lists, and this system does not tell who the client is", ch.cfg.Name)
		}
		if !a.Allow.Admits(cr) {
			return wire.CodeForbidden, fmt.Sprintf("uid %d (gid %d) is not allowed on channel %s", cr.UID, cr.GID, ch.cfg.Name)
		}
	}
	if n := len(ch.all); a.MaxClients > 0 && n >= a.MaxClients {
		return wire.CodeTooManyClients, fmt.Sprintf("channel %s has %d clients, its limit (maxclients)", ch.cfg.Name, n)
	}
	if n := ch.perUID[uidKey(cr, known)]; a.MaxClientsPerUID > 0 && n >= a.MaxClientsPerUID {
		return wire.CodeTooManyClients, fmt.Sprintf("uid %d has %d clients on channel %s, its limit (maxclientsperuid)", cr.UID, n, ch.cfg.Name)
	}
	return 0, ""
}

// refuseLocked counts and logs a refused connection, and tells the
// client why on a goroutine of its own; ch.mu is held.
func (ch *Channel) refuseLocked(nc net.Conn, cr Cred, known bool, code wire.ErrorCode, reason string) {
	if code == wire.CodeForbidden {
		ch.refusedAllow.Add(1)
	} else {
		ch.refusedLimit.Add(1)
	}
	ch.logRefusal(cr, known, code, reason)
	if len(ch.refusing) >= maxRefusing {
		nc.Close()
		return
	}
	ch.refusing[nc] = struct{}{}
	ch.wg.Add(1)
	go ch.tellRefused(nc, code, reason)
}

// logRefusal logs a refusal with the client's uid and pid: each one,
// unless they come faster than one a second, when the next one logged
// says how many were not.
func (ch *Channel) logRefusal(cr Cred, known bool, code wire.ErrorCode, reason string) {
	ch.logMu.Lock()
	defer ch.logMu.Unlock()
	now := time.Now()
	if now.Sub(ch.lastLog) < time.Second {
		ch.unlogged++
		return
	}
	args := []any{"code", code.String(), "reason", reason}
	if known {
		args = append(args, "uid", cr.UID, "gid", cr.GID, "pid", cr.PID)
		if prog := programName(cr.PID); prog != "" {
			args = append(args, "program", prog)
		}
	}
	if ch.unlogged > 0 {
		args = append(args, "not_logged_since_last", ch.unlogged)
	}
	ch.lastLog, ch.unlogged = now, 0
	ch.log.Warn("refused client", args...)
}

// tellRefused waits for the refused client's first words, to know which
// protocol it speaks and so that its hello is not lost to a closed
// socket, then sends it the reason (an Error frame, or the JSON nc-error
// event) and closes it.
func (ch *Channel) tellRefused(nc net.Conn, code wire.ErrorCode, reason string) {
	defer ch.wg.Done()
	defer func() {
		ch.mu.Lock()
		delete(ch.refusing, nc)
		ch.mu.Unlock()
		nc.Close()
	}()
	since := time.Now()
	nc.SetReadDeadline(since.Add(ch.cfg.JSONGrace))
	if ch.stopping.Load() {
		return
	}
	br := bufio.NewReaderSize(nc, 512)
	first, err := br.Peek(1)
	var ne net.Error
	asJSON := false
	switch {
	case err == nil && first[0] == '{':
		asJSON = true
	case err == nil:
		nc.SetReadDeadline(since.Add(ch.cfg.HandshakeTimeout))
		if ch.stopping.Load() { // Quiesce's deadline may be the one just replaced
			return
		}
		if _, err := wire.NewFrameReader(br, 64<<10).ReadFrame(); err != nil {
			return
		}
	case errors.As(err, &ne) && ne.Timeout() && !ch.stopping.Load():
		asJSON = true // silent: an original agent that only listens
	default:
		return
	}
	msg := wire.AppendError(nil, &wire.ErrorFrame{Code: code, Message: reason})
	if asJSON {
		msg = ch.jsonError(code, reason)
	}
	nc.SetWriteDeadline(time.Now().Add(errorGrace))
	nc.Write(msg)
}

// SetAccess changes who may use the channel. Connected clients that the
// new allow list does not admit are closed with wire.CodeForbidden; the
// publish list applies to the next event of each client; new limits
// apply to the next connections (clients over them stay).
func (ch *Channel) SetAccess(a Access) {
	ch.mu.Lock()
	ch.access.Store(&a)
	conns := ch.connsLocked()
	ch.mu.Unlock()
	for _, c := range conns {
		if a.Allow != nil && (!c.credKnown || !a.Allow.Admits(c.cred)) {
			ch.refusedAllow.Add(1)
			c.finish(slog.LevelWarn, wire.CodeForbidden,
				fmt.Sprintf("uid %d is no longer allowed on channel %s", c.cred.UID, ch.cfg.Name), errorGrace)
			continue
		}
		next := publishState(&a, c.cred, c.credKnown)
		for {
			cur := c.publish.Load()
			if cur == publishDropped || c.publish.CompareAndSwap(cur, next) {
				break
			}
		}
	}
}

// publishState is the publish state of a new connection.
func publishState(a *Access, cr Cred, known bool) uint32 {
	if a.Publish == nil || known && a.Publish.Admits(cr) {
		return publishOK
	}
	return publishDenied
}

// mayHandle checks that the sender of an event may publish on the
// channel; one that may not is closed, once, with wire.CodeForbidden.
func (ch *Channel) mayHandle(from *Conn) bool {
	if from.publish.Load() == publishOK {
		return true
	}
	if from.publish.CompareAndSwap(publishDenied, publishDropped) {
		ch.refusedPublish.Add(1)
		from.finish(slog.LevelWarn, wire.CodeForbidden,
			fmt.Sprintf("uid %d may listen on channel %s but not publish (publish)", from.cred.UID, ch.cfg.Name), errorGrace)
	}
	return false
}

// jsonError is the nc-error message, in JSON text, that a JSON client
// hears last.
func (ch *Channel) jsonError(code wire.ErrorCode, reason string) []byte {
	data := wire.ErrorEventData(code, reason)
	node := ch.cfg.Node
	ev := wire.AppendEvent(nil, &wire.Message{
		ID: uuid.New(), Origin: node, Sender: node, Channel: ch.cfg.Name, Event: ErrorEvent, Data: data,
	})
	text, err := wire.AppendJSON(nil, ev[wire.HeaderLen:])
	if err != nil { // cannot happen: the data is a map of a number and a string
		return nil
	}
	return text
}
