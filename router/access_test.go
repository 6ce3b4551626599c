//go:build !windows

package router_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netcluster/netcluster/bus"
	"github.com/netcluster/netcluster/router/routertest"
)

// TestAccessConfig runs a server whose channels restrict access, from
// the configuration file's keys: a channel that admits this process's
// user by name, one that admits only another uid (whose refusal is
// logged with the client's uid and pid, and counted in the stats
// answer), and one over maxclients.
func TestAccessConfig(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skipf("this system does not name the current user: %v", err)
	}
	ts := routertest.NewServer(t, fmt.Sprintf(`"channels": {
		"mine": {"allow": [%q]},
		"theirs": {"allow": [4242], "socketgroup": %q},
		"small": {"maxclients": 1},
	}`, me.Username, strconv.Itoa(os.Getgid())))
	ts.Dial(t, "mine")
	ts.Dial(t, "small")

	var se *bus.ServerError
	_, err = bus.Dial(context.Background(), "theirs", bus.SocketTemplate(ts.Template))
	if !errors.As(err, &se) || se.Code != bus.CodeForbidden {
		t.Errorf("dial theirs: %v, want CodeForbidden", err)
	}
	_, err = bus.Dial(context.Background(), "small", bus.SocketTemplate(ts.Template))
	if !errors.As(err, &se) || se.Code != bus.CodeTooManyClients {
		t.Errorf("dial small: %v, want CodeTooManyClients", err)
	}
	logs := ts.Logs.String()
	if want := fmt.Sprintf("uid=%d", os.Getuid()); !strings.Contains(logs, "refused client") || !strings.Contains(logs, want) || !strings.Contains(logs, fmt.Sprintf("pid=%d", os.Getpid())) {
		t.Errorf("the refusal is not logged with %s and pid=%d:\n%s", want, os.Getpid(), logs)
	}
	if fi, err := os.Stat(ts.Path("theirs")); err != nil || int(fi.Sys().(*syscall.Stat_t).Gid) != os.Getgid() {
		t.Errorf("socket of theirs: %v; want group %d", err, os.Getgid())
	}

	ctl := ts.Dial(t, "control")
	stats := routertest.Control(t, ctl, "stats", nil)
	total, _ := stats["total"].(map[string]any)
	if fmt.Sprint(total["refused_allow"]) != "1" || fmt.Sprint(total["refused_limit"]) != "1" {
		t.Errorf("stats total: refused_allow %v, refused_limit %v; want 1 and 1", total["refused_allow"], total["refused_limit"])
	}
}
