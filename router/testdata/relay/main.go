// Command relay moves bytes between a Unix socket and NATS, and does
// nothing else: no frames read, nothing checked, kept or counted. Two of
// them in place of the two ncservers of BenchmarkNATSBridgeProcs give
// the floor of what a bridge of two processes costs on the machine.
//
//	relay in URL SOCKET SUBJECT    publishes what its one client writes, in messages of up to 64 KiB
//	relay out URL SOCKET SUBJECT   writes what NATS brings to its one client
//
// Either listens on SOCKET, takes one client, and exits when it leaves.
// "out" writes one byte to its client once it has subscribed.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"

	"github.com/nats-io/nats.go"
)

func main() {
	if len(os.Args) != 5 || os.Args[1] != "in" && os.Args[1] != "out" {
		fmt.Fprintln(os.Stderr, "usage: relay in|out URL SOCKET SUBJECT")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(mode, url, sock, subject string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	if mode == "in" {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				if perr := nc.Publish(subject, buf[:n]); perr != nil {
					return perr
				}
			}
			if err != nil {
				return nc.Flush()
			}
		}
	}
	// One callback at a time: the writer is the callback's alone. It
	// flushes when no message waits behind the one it wrote (nats.go
	// counts the message of the callback under way as pending). No
	// message comes before sub is set: nothing is published before the
	// client hears that this relay subscribed.
	w := bufio.NewWriterSize(conn, 64<<10)
	failed := make(chan error, 1)
	var sub *nats.Subscription
	sub, err = nc.Subscribe(subject, func(m *nats.Msg) {
		_, err := w.Write(m.Data)
		if n, _, _ := sub.Pending(); err == nil && n <= 1 {
			err = w.Flush()
		}
		if err != nil {
			select {
			case failed <- err:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	if _, err := conn.Write([]byte{1}); err != nil {
		return err
	}
	gone := make(chan struct{})
	go func() {
		conn.Read(make([]byte, 1)) // the client leaves
		close(gone)
	}()
	select {
	case <-gone:
		return nil
	case err := <-failed:
		return err
	}
}
