package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router"
)

// A client on channel A emits an event; a client on channel B, which A's
// rule propagates to, hears it. The README shows this program.
func Example() {
	// This example runs its own server inside the program, on sockets in a
	// temporary directory. With ncserver running, leave out these lines
	// and the sockets option: Dial finds ncserver's sockets by itself.
	dir, _ := os.MkdirTemp("", "nc")
	defer os.RemoveAll(dir)
	cfg, _ := router.Parse("example.json", []byte(`{"socket": "`+dir+`/{channel}.sock",
		"channels": {"A": {"propagatetochannels": "B"}, "B": {}}}`))
	srv, _ := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()
	sockets := bus.SocketTemplate(cfg.Socket)

	ctx := context.Background()
	b, err := bus.Dial(ctx, "B", sockets)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	heard := make(chan struct{})
	b.Once("log", func(m bus.Message) {
		var text string
		if err := m.Decode(&text); err != nil {
			log.Print(err)
		}
		fmt.Printf("B heard %q from channel %s: %s\n", m.Event, m.Channel, text)
		close(heard)
	})

	a, err := bus.Dial(ctx, "A", sockets)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	if err := a.Emit("log", "TESTE"); err != nil {
		log.Fatal(err)
	}
	<-heard
	// Output: B heard "log" from channel A: TESTE
}

// Listeners match event names as regular expressions anchored at both
// ends, and a client hears its own events, as an EventEmitter does.
func ExampleClient_On() {
	dir, _ := os.MkdirTemp("", "nc")
	defer os.RemoveAll(dir)
	cfg, _ := router.Parse("example.json", []byte(`{"socket": "`+dir+`/{channel}.sock", "channels": {"A": {}}}`))
	srv, _ := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()

	c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(cfg.Socket))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	c.On("job-.*", func(m bus.Message) { fmt.Println("job family:", m.Event) })
	c.On("job-done", func(bus.Message) { close(done) })
	c.Emit("job-started", nil)
	c.Emit("jobs", nil) // no listener matches "jobs" in full
	c.Emit("job-done", nil)
	<-done
	// Output:
	// job family: job-started
	// job family: job-done
}

// A client survives a restart of its server: it connects again on its
// own, and its callbacks say so. Events emitted while it has no
// connection wait in its reconnect buffer and go out first once it is
// back.
func ExampleOnReconnect() {
	dir, _ := os.MkdirTemp("", "nc")
	defer os.RemoveAll(dir)
	cfg, _ := router.Parse("example.json", []byte(`{"socket": "`+dir+`/{channel}.sock", "channels": {"A": {}}}`))
	quiet := router.Options{Logger: slog.New(slog.DiscardHandler)}
	srv, _ := router.Start(cfg, quiet)

	back := make(chan struct{})
	c, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(cfg.Socket),
		bus.OnDisconnect(func(err error) {
			var se *bus.ServerError
			if errors.As(err, &se) {
				fmt.Println("disconnected:", se.Code)
			}
		}),
		bus.OnReconnect(func() {
			fmt.Println("connected again")
			close(back)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	srv.Shutdown(context.Background()) // as ncserver does on SIGTERM
	for c.Connected() {
		time.Sleep(time.Millisecond)
	}
	if err := c.Emit("while-down", nil); err != nil { // kept for later
		log.Fatal(err)
	}
	srv, _ = router.Start(cfg, quiet) // a new server on the same sockets
	<-back
	c.Close() // before the server, whose stop it would hear otherwise
	srv.Close()
	// Output:
	// disconnected: server shutting down
	// connected again
}

// A first Dial hears only what comes after it, as an EventEmitter would;
// Since asks for the channel's recent history too, which the listeners
// get first, in order, as far as the server retains it.
func ExampleSince() {
	dir, _ := os.MkdirTemp("", "nc")
	defer os.RemoveAll(dir)
	cfg, _ := router.Parse("example.json", []byte(`{"socket": "`+dir+`/{channel}.sock", "channels": {"A": {}}}`))
	srv, _ := router.Start(cfg, router.Options{Logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()

	pub, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(cfg.Socket))
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	for i := 1; i <= 3; i++ {
		pub.Emit("reading", i)
	}
	pub.Flush(context.Background())
	for srv.Channels()[0].Stats.Retained < 3 { // channel A, the first by name
		time.Sleep(time.Millisecond)
	}

	late, err := bus.Dial(context.Background(), "A", bus.SocketTemplate(cfg.Socket), bus.Since(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer late.Close()
	done := make(chan struct{})
	late.On("reading", func(m bus.Message) {
		var i int
		m.Decode(&i)
		fmt.Println("reading", i)
		if i == 4 {
			close(done)
		}
	})
	pub.Emit("reading", 4)
	<-done
	// Output:
	// reading 1
	// reading 2
	// reading 3
	// reading 4
}
