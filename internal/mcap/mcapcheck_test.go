package mcap

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// mcapcheckDir holds the node script that reads and writes files with
// @mcap/core, the MCAP project's own library, and its locked dependencies.
const mcapcheckDir = "testdata/mcapcheck"

var (
	npmOnce sync.Once
	npmSkip string // why the independent reader cannot run; empty when it can
	npmErr  string // how installing it failed
)

// mcapcheck runs check.mjs with args and returns its standard output. It
// installs the script's dependencies with npm ci the first time, and
// skips the test when node or npm is missing.
func mcapcheck(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	npmOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			npmSkip = "node is not installed; the files cannot be checked with @mcap/core"
			return
		}
		if _, err := os.Stat(filepath.Join(mcapcheckDir, "node_modules", "@mcap", "core")); err == nil {
			return
		}
		if _, err := exec.LookPath("npm"); err != nil {
			npmSkip = "npm is not installed; @mcap/core cannot be installed"
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = mcapcheckDir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = "npm ci in " + mcapcheckDir + " failed: " + err.Error() + "\n" + string(out)
		}
	})
	if npmSkip != "" {
		t.Skip(npmSkip)
	}
	if npmErr != "" {
		t.Fatal(npmErr)
	}
	cmd := exec.Command("node", append([]string{"check.mjs"}, args...)...)
	cmd.Dir = mcapcheckDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &checkError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type checkError struct {
	err    error
	stderr string
}

func (e *checkError) Error() string { return e.err.Error() + ": " + e.stderr }

// checked is what check.mjs prints about a file.
type checked struct {
	Header struct {
		Profile string `json:"profile"`
		Library string `json:"library"`
	} `json:"header"`
	Channels []struct {
		ID              uint16            `json:"id"`
		SchemaID        uint16            `json:"schemaId"`
		Topic           string            `json:"topic"`
		MessageEncoding string            `json:"messageEncoding"`
		Metadata        map[string]string `json:"metadata"`
	} `json:"channels"`
	Messages []struct {
		ChannelID   uint16 `json:"channelId"`
		Sequence    uint32 `json:"sequence"`
		LogTime     uint64 `json:"logTime,string"`
		PublishTime uint64 `json:"publishTime,string"`
		Data        string `json:"data"`
	} `json:"messages"`
	Statistics *struct {
		MessageCount  uint64            `json:"messageCount,string"`
		ChannelCount  uint32            `json:"channelCount"`
		ChannelCounts map[string]string `json:"channelMessageCounts"`
	} `json:"statistics"`
	SummaryChannels int `json:"summaryChannels"`
	ChunkIndexes    int `json:"chunkIndexes"`
	IndexedMessages []struct {
		ChannelID uint16 `json:"channelId"`
		Sequence  uint32 `json:"sequence"`
		LogTime   uint64 `json:"logTime,string"`
		Data      string `json:"data"`
	} `json:"indexedMessages"`
}

// checkWithMcapCore has @mcap/core read the file at path.
func checkWithMcapCore(t testing.TB, path string) (*checked, error) {
	t.Helper()
	out, err := mcapcheck(t, "read", path)
	if err != nil {
		return nil, err
	}
	var c checked
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("check.mjs printed %q: %v", out, err)
	}
	return &c, nil
}
