package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netcluster/netcluster/internal/wire"
	"github.com/netcluster/netcluster/router"
)

// modulePath is the module whose tree ncbench builds ncserver from.
const modulePath = "github.com/netcluster/netcluster"

// benchConfig is the configuration of the server the runs use: sockets
// under dir, channel f.channel propagating to f.to, f.to and f.ping, and
// the control channel, whose stats the interest run reads.
func benchConfig(f *flags, dir string) (template, text string) {
	template = dir + "/{channel}.sock"
	chans := map[string]string{f.channel: fmt.Sprintf(`{"propagatetochannels": %q}`, "^"+f.to+"$")}
	for _, c := range []string{f.to, f.ping} {
		if _, ok := chans[c]; !ok {
			chans[c] = "{}"
		}
	}
	var members []string
	for name, rule := range chans {
		members = append(members, fmt.Sprintf("%q: %s", name, rule))
	}
	return template, fmt.Sprintf(`{"socket": %q, "startcontrol": true, "channels": {%s}}`, template, strings.Join(members, ", "))
}

// startInProcess starts a server in this process on sockets in a new
// temporary directory.
func startInProcess(f *flags) (template string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "ncbench")
	if err != nil {
		return "", nil, err
	}
	template, text := benchConfig(f, dir)
	cfg, err := router.Parse("ncbench.json", []byte(text))
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	log := slog.New(slog.NewTextHandler(f.serverLogging, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := router.Start(cfg, router.Options{Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return template, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		os.RemoveAll(dir)
	}, nil
}

// ncserverBinary returns the ncserver binary to start: -ncserver when
// given, else one built with go build from the netcluster tree that
// holds the working directory, into dir.
func ncserverBinary(ctx context.Context, f *flags, dir string) (string, error) {
	if f.ncserver != "" {
		bin, err := exec.LookPath(f.ncserver)
		if err != nil {
			return "", fmt.Errorf("-ncserver: %w", err)
		}
		return filepath.Abs(bin)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ncserver")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/ncserver")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ncserver in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// errNoTree says where ncserver can come from when ncbench cannot build
// it.
var errNoTree = errors.New("ncbench starts an ncserver built from the netcluster tree it runs in; " +
	"run it inside the tree, or pass -ncserver PATH, -socket TEMPLATE or -inprocess")

// moduleRoot finds the directory of the netcluster go.mod at or above
// the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errNoTree
		}
		dir = parent
	}
}

// process is an ncserver process that ncbench started, on a
// configuration of its own in a temporary directory.
type process struct {
	cmd      *exec.Cmd
	dir      string
	template string
	done     chan struct{}
}

// pid is the server process's id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// startProcess writes the configuration that config makes for a new
// temporary directory, starts bin on it with its log at level on logTo,
// and waits until it serves every one of channels: the server opens its
// channels' sockets one after another.
func startProcess(ctx context.Context, bin string, config func(dir string) (template, text string), channels []string, level string, logTo io.Writer) (*process, error) {
	dir, err := os.MkdirTemp("", "ncserver")
	if err != nil {
		return nil, err
	}
	template, text := config(dir)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &process{cmd: exec.Command(bin, "-log-level", level, path), dir: dir, template: template, done: make(chan struct{})}
	p.cmd.Stderr = logTo
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for len(channels) > 0 {
			c, err := net.Dial("unix", wire.SocketPath(template, channels[0]))
			if err != nil {
				break
			}
			c.Close()
			channels = channels[1:]
		}
		if len(channels) == 0 {
			return p, nil
		}
		sock := wire.SocketPath(template, channels[0])
		select {
		case <-p.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%s exited before it served its sockets", bin)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not serve %s within 10s", bin, sock)
		}
	}
}

// stop ends the process with SIGTERM (SIGKILL after 10 s) and removes
// its directory.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	os.RemoveAll(p.dir)
}

// startServerProcess starts ncserver bin on the runs' configuration.
func startServerProcess(ctx context.Context, f *flags, bin string) (*process, error) {
	config := func(dir string) (string, string) { return benchConfig(f, dir) }
	return startProcess(ctx, bin, config, []string{f.channel, f.to, f.ping}, "warn", f.serverLogging)
}
