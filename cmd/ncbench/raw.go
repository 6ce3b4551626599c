package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/netcluster/netcluster/internal/wire"
)

// runRaw sends the frames a publisher would send, byte for byte, over a
// bare Unix socket with no server: one writer with a 64 KiB buffer, one
// reader that parses each frame's length prefix and checks its sequence
// number and data as a subscriber does. That is the most any server can
// deliver on this machine, so every other run is reported as a share of
// it.
func (e *env) runRaw(ctx context.Context, count uint64, duration time.Duration, size int) (Result, error) {
	dir, err := os.MkdirTemp("", "ncraw")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	w, r, closeAll, err := rawPair(filepath.Join(dir, "raw.sock"))
	if err != nil {
		return Result{}, fmt.Errorf("raw: %w", err)
	}
	defer closeAll()

	rr := newRawRun(size)
	stopProgress := e.progress("raw", func() (uint64, uint64) { return rr.sent.Load(), rr.received.Load() })
	defer stopProgress()
	start := time.Now()
	writeErr := make(chan error, 1)
	go func() {
		var deadline time.Time
		if duration > 0 {
			deadline = start.Add(duration)
		}
		writeErr <- rr.write(ctx, w, count, duration, deadline)
	}()
	readErr := rr.read(r)
	elapsed := time.Since(start)
	stopProgress()
	if err := <-writeErr; err != nil && readErr == nil {
		readErr = err
	}
	rr.sc.finish(rr.sent.Load())
	res := Result{
		Name: "raw", Publishers: 1, Subscribers: 1, Size: size,
		Sent: rr.sent.Load(), Delivered: rr.sc.ok, Lost: rr.sc.lost, Reordered: rr.sc.reordered, Corrupt: rr.corrupt,
		Seconds: elapsed.Seconds(),
	}
	if readErr != nil {
		res.Errors = append(res.Errors, readErr.Error())
	}
	res.rates()
	return res, nil
}

// rawPair listens on a Unix socket at path and connects to it: w is the
// dialing end, r the accepted one. closeAll closes both and the
// listener.
func rawPair(path string) (w *net.UnixConn, r net.Conn, closeAll func(), err error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	r, err = ln.Accept()
	if err != nil {
		c.Close()
		ln.Close()
		return nil, nil, nil, err
	}
	return c.(*net.UnixConn), r, func() {
		r.Close()
		c.Close()
		ln.Close()
	}, nil
}

// rawRun is one raw run: the frame the writer sends over and over, with
// its sequence number changed, and what the reader makes of it.
type rawRun struct {
	size     int
	frame    []byte
	dataAt   int // where the event's data starts in frame
	fillAt   int // where fillPayload writes in frame
	sent     atomic.Uint64
	received atomic.Uint64 // sc.ok, for the progress lines
	sc       seqCounter    // touched by the reader only
	corrupt  uint64        // touched by the reader only
}

func newRawRun(size int) *rawRun {
	payload, _ := newPayload(size)
	m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: benchEvent, Data: payload}
	frame := wire.AppendEvent(nil, &m)
	dataAt := len(frame) - len(payload)
	return &rawRun{size: size, frame: frame, dataAt: dataAt, fillAt: dataAt + len(binHeader(size))}
}

// write sends count frames (or, with a duration, frames until the
// deadline) on w through a 64 KiB buffer, then closes w for writing.
func (rr *rawRun) write(ctx context.Context, w *net.UnixConn, count uint64, duration time.Duration, deadline time.Time) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var err error
	for seq := uint64(0); ; seq++ {
		if duration == 0 && seq >= count {
			break
		}
		if seq%256 == 0 && (ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline))) {
			break
		}
		fillPayload(rr.frame[rr.fillAt:], 0, seq)
		if _, err = bw.Write(rr.frame); err != nil {
			break
		}
		rr.sent.Store(seq + 1)
	}
	if err == nil {
		err = bw.Flush()
	}
	w.CloseWrite()
	return err
}

// read parses frames from r until it ends, checking each as a subscriber
// does. It returns nil at the end of the stream.
func (rr *rawRun) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, max(64<<10, 2*len(rr.frame)))
	for {
		hdr, err := br.Peek(wire.HeaderLen)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return err
			}
			return nil
		}
		n := int(binary.BigEndian.Uint32(hdr))
		f, err := br.Peek(wire.HeaderLen + n)
		if err != nil {
			return fmt.Errorf("raw: frame of %d bytes: %w", n, err)
		}
		if len(f) != len(rr.frame) {
			rr.corrupt++
		} else if _, seq, ok := parsePayload(f[rr.dataAt:], rr.size); ok {
			rr.sc.see(seq)
			rr.received.Store(rr.sc.ok)
		} else {
			rr.corrupt++
		}
		br.Discard(len(f))
	}
}
