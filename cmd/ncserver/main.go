// Command ncserver serves the channels of a netcluster configuration: one
// Unix socket per channel (a named pipe on Windows), with events routed
// between them by the channels' rules.
//
// Usage:
//
//	ncserver [flags] [config.json]
//
// With no path it runs on the default configuration built into the
// binary (the config.json shipped with netcluster). SIGINT and SIGTERM
// stop it gracefully, as does the control request shutdown: queued frames
// are written, socket files removed, and it exits 0. SIGHUP reloads the
// configuration file it was started with, as the control request
// reloadconfig does; a file that is not valid changes nothing. The
// control request restart stops it gracefully and executes the same
// binary again, with the same arguments and environment and the same
// process id, so that it reads its configuration file anew (Unix only).
//
// Started by the Windows service manager, it runs as a service: Stop and
// Shutdown stop it as SIGTERM does, and ParamChange reloads as SIGHUP
// does. A service has no console: -log-file names where its logs go.
//
// -cpuprofile and -memprofile write profiles of a real deployment for go
// tool pprof.
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
	exitFailed = 1 // the server could not start, stop cleanly or restart
	exitUsage  = 2 // bad flags or a bad configuration
)

func main() {
	code, restart := run(os.Args[1:], os.Stderr)
	if restart {
		err := reexec() // returns only when it failed
		fmt.Fprintln(os.Stderr, "ncserver: cannot restart:", err)
		code = exitFailed
	}
	os.Exit(code)
}

// run runs ncserver with the given arguments until it stops, and reports
// whether it stopped to be started again (the control request restart).
func run(args []string, stderr io.Writer) (code int, restart bool) {
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
	logFile := fs.String("log-file", "", "append logs to this file instead of standard error (a Windows service has none)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	grace := fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful stop (a signal, control shutdown or restart) and the closing of channels a reload removed may take to write queued frames")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file, from start to stop")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file when the server stops")
	if err := fs.Parse(args); err != nil {
		return exitUsage, false
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitUsage, false
	}
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			fmt.Fprintln(stderr, "ncserver: -log-file:", err)
			return exitUsage, false
		}
		defer f.Close()
		stderr = f
	}
	log, lv, err := newLogger(stderr, *level, *format)
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage, false
	}
	cfg, err := loadConfig(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage, false
	}
	if *check {
		fmt.Fprintf(stderr, "ncserver: %s is valid (%d channels)\n", cfg.File, len(cfg.Channels))
		return exitOK, false
	}
	stopProfile, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintln(stderr, "ncserver:", err)
		return exitUsage, false
	}
	defer func() {
		if err := stopProfile(); err != nil {
			log.Error("writing profile", "err", err)
		}
	}()
	a := &app{cfg: cfg, log: log, grace: *grace,
		opts: router.Options{Logger: log, LogLevel: lv, ConfigPath: fs.Arg(0), ShutdownTimeout: *grace}}
	if code, ok := runAsService(a); ok {
		return code, false
	}
	return a.runUntilStopped(controls{}, nil)
}

func loadConfig(path string) (*router.Config, error) {
	if path == "" {
		return router.Parse("config.json (built in)", netcluster.DefaultConfig)
	}
	return router.LoadFile(path)
}

// app is a configured ncserver, ready to run: from the console, or as a
// Windows service.
type app struct {
	cfg   *router.Config
	opts  router.Options
	log   *slog.Logger
	grace time.Duration
}

// controls are what steers a running server besides signals and control
// requests: the Windows service manager. A nil channel never fires.
type controls struct {
	stop   <-chan struct{} // closed: stop gracefully, as on SIGTERM
	reload <-chan struct{} // reload the configuration file, as on SIGHUP
}

// runUntilStopped starts the server, calls ready once it serves, and
// serves until it is stopped. It reports whether the control request
// restart stopped it, for the caller to start ncserver again.
func (a *app) runUntilStopped(c controls, ready func()) (code int, restart bool) {
	restarts := make(chan struct{}, 1)
	opts := a.opts
	if canRestart {
		opts.Restart = func() {
			select {
			case restarts <- struct{}{}:
			default: // a restart is under way already
			}
		}
	}
	// Catch the signals before the sockets exist: a SIGTERM sent as soon
	// as they appear must stop the server gracefully, not kill it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	a.log.Info("starting", "config", a.cfg.File, "pid", os.Getpid())
	srv, err := router.Start(a.cfg, opts)
	if err != nil {
		a.log.Error("cannot start", "err", err)
		return exitFailed, false
	}
	if ready != nil {
		ready()
	}
	return exitOK, serve(srv, a.log, a.grace, sigs, c, restarts)
}

// serve waits for a signal on sigs, a request of c, the control request restart,
// or for the server to stop on the control request shutdown, and stops
// the server. SIGHUP reloads the configuration. A second SIGINT or
// SIGTERM during a graceful stop cuts it short. It reports whether the
// server stopped to restart.
func serve(srv *router.Server, log *slog.Logger, grace time.Duration, sigs <-chan os.Signal, c controls, restarts <-chan struct{}) (restart bool) {
wait:
	for {
		select {
		case <-srv.Done():
			return false // stopped by the control request shutdown
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(srv, log, "SIGHUP")
				continue
			}
			log.Info("stopping", "signal", sig.String())
			break wait
		case <-c.reload:
			reload(srv, log, "service ParamChange")
		case <-c.stop:
			log.Info("stopping", "reason", "service stop")
			break wait
		case <-restarts:
			restart = true
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					log.Warn("SIGHUP: configuration not reloaded; the server is stopping")
					continue
				}
				log.Warn("second signal: stopping at once", "signal", sig.String())
				cancel()
			case <-ctx.Done():
			}
			return
		}
	}()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("queued frames were dropped at shutdown", "err", err)
	}
	if restart {
		log.Info("stopped; starting again", "pid", os.Getpid())
	}
	return restart
}

// reload applies the configuration file again, on SIGHUP or the service
// manager's ParamChange (the cause, for the log).
func reload(srv *router.Server, log *slog.Logger, cause string) {
	rep, err := srv.ReloadFile("")
	if err != nil {
		log.Error(cause+": configuration not reloaded; nothing changed", "err", err)
		return
	}
	if rep.Empty() {
		log.Info(cause+": configuration reloaded; nothing changed", "config", rep.File)
	}
}

// newLogger returns the server's logger and the level it logs at, which
// the control request loglevel changes.
func newLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	}
	return nil, nil, fmt.Errorf("-log-format %q: want text or json", format)
}
