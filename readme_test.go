package netcluster

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// fences returns the bodies of the README's fenced code blocks of a
// language, in order.
func fences(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + lang + "\n(.*?)^```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestReadmeCommands keeps the README's two commands and CI in step: the
// first shell block is the two commands, and .ci/run runs the second.
func TestReadmeCommands(t *testing.T) {
	blocks := fences(t, "sh")
	if len(blocks) == 0 {
		t.Fatal("README has no sh block")
	}
	lines := strings.Split(strings.TrimSpace(blocks[0]), "\n")
	want := []string{"go run ./cmd/ncserver", "go test -race -short ./..."}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("README's first commands (-want +got):\n-%q\n+%q", want, lines)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^go test -race -short \./\.\.\. `).Match(ci) {
		t.Errorf(".ci/run does not run the README's test command %q", want[1])
	}
}

// TestReadmeExample checks that the README's Go program is the body of
// Example in bus/example_test.go, which go test compiles and runs.
func TestReadmeExample(t *testing.T) {
	blocks := fences(t, "go")
	if len(blocks) == 0 {
		t.Fatal("README has no go block")
	}
	src, err := os.ReadFile("bus/example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^func Example\(\) \{\n(.*?)^\}`).FindSubmatch(src)
	if m == nil {
		t.Fatal("bus/example_test.go has no func Example")
	}
	if got, want := blocks[0], string(m[1]); got != want {
		t.Errorf("README's Go example differs from bus.Example:\nREADME:\n%s\nExample:\n%s", got, want)
	}
}
