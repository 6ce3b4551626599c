package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitFile is the systemd unit shipped for ncserver.
const unitFile = "../../contrib/ncserver.service"

// verifyUnit runs systemd-analyze verify on a copy of the unit whose
// ExecStart runs the test's ncserver binary (verify insists that the
// command exists), and returns what it said: systemd-analyze reports
// unknown keys and bad values on its output but may still exit 0, so any
// output is a failure.
func verifyUnit(t *testing.T, text string) (string, error) {
	t.Helper()
	text = strings.ReplaceAll(text, "/usr/local/bin/ncserver", binary)
	path := filepath.Join(t.TempDir(), "ncserver.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestSystemdUnit(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/ncserver /etc/netcluster/config.json",
		"ExecReload=/bin/kill -HUP $MAINPID", "RuntimeDirectory=netcluster", "Environment=XDG_RUNTIME_DIR=/run",
		"NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !strings.Contains(string(text), want+"\n") {
			t.Errorf("%s lacks the line %q", unitFile, want)
		}
	}
	checkMemoryLines(t, string(text))
	// The command line is one ncserver takes: check it on the shipped
	// config.json instead of /etc's.
	out, err := exec.Command(binary, "-check", "../../config.json").CombinedOutput()
	if err != nil {
		t.Errorf("ncserver -check config.json: %v\n%s", err, out)
	}

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the unit's syntax is not verified")
	}
	if out, err := verifyUnit(t, string(text)); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	// The check can fail: a broken copy is refused.
	broken := strings.Replace(string(text), "Restart=on-failure", "Restart=sometimes", 1)
	if out, err := verifyUnit(t, broken); err == nil && out == "" {
		t.Error("systemd-analyze verify passed a unit with Restart=sometimes; the check proves nothing")
	}
}

// checkMemoryLines checks that the unit's Go memory limit sits under its
// MemoryHigh, which sits under its MemoryMax.
func checkMemoryLines(t *testing.T, text string) {
	t.Helper()
	mib := func(key, unit string) int {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + key + `=(\d+)` + unit + `$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("%s lacks %s=<n>%s", unitFile, key, unit)
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	limit, high, most := mib("Environment=GOMEMLIMIT", "MiB"), mib("MemoryHigh", "M"), mib("MemoryMax", "M")
	if !(0 < limit && limit < high && high < most) {
		t.Errorf("%s: GOMEMLIMIT %d MiB, MemoryHigh %d M, MemoryMax %d M: want each under the next", unitFile, limit, high, most)
	}
}
