package router

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBadPropagatePatternQuotesUserText checks that an invalid
// propagatetochannels expression is reported in the user's own words:
// the error quotes the expression as written, never the anchored
// "^(?:...)$" the server compiles from it.
func TestBadPropagatePatternQuotesUserText(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"lone paren", "(", "missing closing ): `(`"},
		{"unclosed paren", "A|(B", "missing closing ): `A|(B`"},
		{"unbalanced alternation", "a)|(b", "unexpected ): `a)|(b`"},
		{"unclosed quote", `\QA`, `\Q without \E`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr, err := json.Marshal(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse("test.json", []byte(`{"channels": {"A": {"propagatetochannels": `+string(expr)+`}, "B": {}}}`))
			if err == nil {
				t.Fatalf("propagatetochannels %q: no error", tt.expr)
			}
			msg := err.Error()
			if !strings.Contains(msg, "channels.A.propagatetochannels") || !strings.Contains(msg, tt.want) {
				t.Errorf("propagatetochannels %q: %v; want the key and %q", tt.expr, msg, tt.want)
			}
			if strings.Contains(msg, "^(?:") {
				t.Errorf("propagatetochannels %q: %v; the error quotes the anchored expression", tt.expr, msg)
			}
		})
	}
}
