// Command ncserver serves the channels of a netcluster configuration: one
// Unix socket per channel, with events routed between them by the
// channels' rules.
//
// Usage:
//
//	ncserver [flags] [config.json]
//
// With no path it runs on the default configuration built into the
// binary (the config.json shipped with netcluster). SIGINT and SIGTERM
// stop it gracefully: queued frames are written, socket files removed,
// and it exits 0. -cpuprofile and -memprofile write profiles of a real
// deployment for go tool pprof.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netcluster/netcluster"
	"github.com/netcluster/netcluster/router"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the server could not start or stop cleanly
	exitUsage  = 2 // bad flags or a bad configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ncserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ncserver [flags] [config.json]\n\n"+
			"Serves the channels of a netcluster configuration. With no path, it runs\n"+
			"on the default configuration built into the binary.\n\nflags:\n")
		fs.PrintDefaults()
	}
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	check := fs.Bool("check", false, "validate the configuration and exit")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful stop may take to write queued frames")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file, from start to stop")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file when the server stops")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitUsage
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage
	}
	cfg, err := loadConfig(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(stderr, "ncserver: %s is valid (%d channels)\n", cfg.File, len(cfg.Channels))
		return exitOK
	}
	stopProfile, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage
	}
	defer func() {
		if err := stopProfile(); err != nil {
			log.Error("writing profile", "err", err)
		}
	}()
	// Catch the signals before the sockets exist: a SIGTERM sent as soon
	// as they appear must stop the server gracefully, not kill it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	log.Info("starting", "config", cfg.File, "pid", os.Getpid())
	srv, err := router.Start(cfg, router.Options{Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	return serve(srv, log, *grace, sigs)
}

func loadConfig(path string) (*router.Config, error) {
	if path == "" {
		return router.Parse("config.json (built in)", netcluster.DefaultConfig)
	}
	return router.LoadFile(path)
}

// serve waits for a signal on sigs and stops the server. A second SIGINT
// or SIGTERM during a graceful stop cuts it short.
func serve(srv *router.Server, log *slog.Logger, grace time.Duration, sigs <-chan os.Signal) int {
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Warn("SIGHUP: reloading the configuration is not supported yet; restart the server to apply changes")
			continue
		}
		log.Info("stopping", "signal", sig.String())
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			log.Warn("second signal: stopping at once")
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("queued frames were dropped at shutdown", "err", err)
	}
	return exitOK
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}
