package router

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestConfigReferenceDoc holds docs/configuration.md to the schema: a
// table row for every key, whose default column is the schema's default
// as the file spells it.
func TestConfigReferenceDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // key -> default column
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	check := func(name string, def any) {
		t.Helper()
		col, ok := rows[name]
		if !ok {
			t.Errorf("docs/configuration.md has no row for key %q", name)
			return
		}
		if !strings.HasPrefix(col, "`") {
			return // prose, such as "see Sockets"
		}
		want, _ := json.Marshal(def)
		if col != "`"+string(want)+"`" {
			t.Errorf("docs/configuration.md gives %q the default %s; the schema's is %s", name, col, want)
		}
	}
	for i := range settings {
		if settings[i].typ != tObject {
			check(settings[i].name, settings[i].def)
		}
	}
	for i := range ruleKeys {
		check(ruleKeys[i].name, ruleKeys[i].def)
	}
	for i := range natsKeys {
		check(natsKeys[i].name, natsKeys[i].def)
	}
}

// TestRelinkKeysDoc holds the list of keys that reopen the multicast
// link on reload, in docs/operation.md, to the schema.
func TestRelinkKeysDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/operation.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`changed network keys \(([^)]*)\)`).FindSubmatch(doc)
	if m == nil {
		t.Fatal(`docs/operation.md has no "changed network keys (…)" list`)
	}
	var got, want []string
	for _, k := range regexp.MustCompile("`([a-z]+)`").FindAllSubmatch(m[1], -1) {
		got = append(got, string(k[1]))
	}
	for i := range settings {
		if settings[i].reload == relink {
			want = append(want, settings[i].name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("docs/operation.md lists the network keys %q; the schema's are %q", got, want)
	}
}
