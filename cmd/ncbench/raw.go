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
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "raw.sock"), Net: "unix"})
	if err != nil {
		return Result{}, fmt.Errorf("raw: %w", err)
	}
	defer ln.Close()
	w, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		return Result{}, fmt.Errorf("raw: %w", err)
	}
	defer w.Close()
	r, err := ln.Accept()
	if err != nil {
		return Result{}, fmt.Errorf("raw: %w", err)
	}
	defer r.Close()

	payload, _ := newPayload(size)
	m := wire.Message{ID: uuid.New(), Origin: uuid.New(), Sender: uuid.New(), Channel: "A", Event: benchEvent, Data: payload}
	frame := wire.AppendEvent(nil, &m)
	dataAt := len(frame) - len(payload)
	fillAt := dataAt + len(binHeader(size))

	var sent, received atomic.Uint64
	stopProgress := e.progress("raw", func() (uint64, uint64) { return sent.Load(), received.Load() })
	defer stopProgress()
	start := time.Now()
	writeErr := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(w, 64<<10)
		var deadline time.Time
		if duration > 0 {
			deadline = start.Add(duration)
		}
		var err error
		for seq := uint64(0); ; seq++ {
			if duration == 0 && seq >= count {
				break
			}
			if seq%256 == 0 && (ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline))) {
				break
			}
			fillPayload(frame[fillAt:], 0, seq)
			if _, err = bw.Write(frame); err != nil {
				break
			}
			sent.Store(seq + 1)
		}
		if err == nil {
			err = bw.Flush()
		}
		w.(*net.UnixConn).CloseWrite()
		writeErr <- err
	}()

	var sc seqCounter
	var corrupt uint64
	br := bufio.NewReaderSize(r, max(64<<10, 2*len(frame)))
	var readErr error
	for {
		hdr, err := br.Peek(wire.HeaderLen)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		n := int(binary.BigEndian.Uint32(hdr))
		f, err := br.Peek(wire.HeaderLen + n)
		if err != nil {
			readErr = fmt.Errorf("raw: frame of %d bytes: %w", n, err)
			break
		}
		if len(f) != len(frame) {
			corrupt++
		} else if _, seq, ok := parsePayload(f[dataAt:], size); ok {
			sc.see(seq)
			received.Store(sc.ok)
		} else {
			corrupt++
		}
		br.Discard(len(f))
	}
	elapsed := time.Since(start)
	stopProgress()
	if err := <-writeErr; err != nil && readErr == nil {
		readErr = err
	}
	sc.finish(sent.Load())
	res := Result{
		Name: "raw", Publishers: 1, Subscribers: 1, Size: size,
		Sent: sent.Load(), Delivered: sc.ok, Lost: sc.lost, Reordered: sc.reordered, Corrupt: corrupt,
		Seconds: elapsed.Seconds(),
	}
	if readErr != nil {
		res.Errors = append(res.Errors, readErr.Error())
	}
	res.rates()
	return res, nil
}
