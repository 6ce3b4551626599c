package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/netcluster/netcluster/bus"
)

// jsonable turns a decoded msgpack value into one encoding/json writes:
// maps with keys other than strings get string keys, and floats that
// JSON cannot hold (NaN, ±Inf) become strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
	}
	return v
}

// writeJSON writes v as JSON and a newline, indented or on one line.
func writeJSON(w io.Writer, v any, indent bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(jsonable(v)); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// compactJSON renders a value on one line, for tables and listen.
func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonable(v)); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// writeHuman prints a control answer for people: `key: value` lines, and
// tables for lists of maps.
func writeHuman(w io.Writer, command string, resp map[string]any) error {
	var b strings.Builder
	switch command {
	case "showconfig":
		fmt.Fprintf(&b, "file: %v\n", scalar("file", resp["file"]))
		var cfg bytes.Buffer
		writeJSON(&cfg, resp["config"], true)
		b.WriteString(cfg.String())
	case "shutdown":
		b.WriteString("the server is shutting down\n")
	case "restart":
		b.WriteString("the server is restarting\n")
	case "stats":
		// The totals are the last row of the channels' table.
		chans, _ := resp["channels"].(map[string]any)
		if total, ok := resp["total"].(map[string]any); ok && chans != nil {
			resp = maps.Clone(resp)
			chans = maps.Clone(chans)
			chans["(total)"] = total
			resp["channels"] = chans
			delete(resp, "total")
		}
		renderMap(&b, resp, "")
	case "loglevel":
		fmt.Fprintf(&b, "level: %v", scalar("level", resp["level"]))
		if prev, ok := resp["previous"]; ok {
			fmt.Fprintf(&b, " (was %v)", scalar("previous", prev))
		}
		b.WriteString("\n")
	default:
		renderMap(&b, resp, "")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// firstKeys come first, in this order, in key: value lists and tables;
// the others follow sorted.
var firstKeys = []string{"file", "channel", "id", "name", "conn", "pid", "uid", "since", "network", "level", "total", "uptime", "clients", "socket", "mode"}

func orderedKeys(keys []string) []string {
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(firstKeys, a), slices.Index(firstKeys, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}

func mapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return orderedKeys(keys)
}

// renderMap writes the scalars of m first, as key: value lines, then its
// maps and lists of maps, as nested lists or tables.
func renderMap(b *strings.Builder, m map[string]any, indent string) {
	keys := mapKeys(m)
	nested := func(k string) bool {
		switch x := m[k].(type) {
		case map[string]any:
			return len(x) > 0
		case []any:
			return len(x) > 0 && allMaps(x)
		}
		return false
	}
	keys = append(slices.DeleteFunc(slices.Clone(keys), nested), slices.DeleteFunc(keys, func(k string) bool { return !nested(k) })...)
	for _, k := range keys {
		switch x := m[k].(type) {
		case map[string]any:
			switch {
			case len(x) == 0:
				fmt.Fprintf(b, "%s%s: (none)\n", indent, k)
			case allMaps(x):
				fmt.Fprintf(b, "%s%s:\n", indent, k)
				keys := mapKeys(x)
				// Rows such as "(total)" come last.
				keys = append(slices.DeleteFunc(slices.Clone(keys), isSummary), slices.DeleteFunc(keys, func(k string) bool { return !isSummary(k) })...)
				rows := make([]map[string]any, len(keys))
				for i, name := range keys {
					rows[i] = map[string]any{"": name}
					for ck, cv := range x[name].(map[string]any) {
						rows[i][ck] = cv
					}
				}
				renderTable(b, rows, indent+"  ", strings.TrimSuffix(k, "s"))
			default:
				fmt.Fprintf(b, "%s%s:\n", indent, k)
				renderMap(b, x, indent+"  ")
			}
		case []any:
			switch {
			case len(x) == 0:
				fmt.Fprintf(b, "%s%s: (none)\n", indent, k)
			case allMaps(x):
				fmt.Fprintf(b, "%s%s:\n", indent, k)
				rows := make([]map[string]any, len(x))
				for i, r := range x {
					rows[i] = r.(map[string]any)
				}
				renderTable(b, rows, indent+"  ", "")
			default:
				fmt.Fprintf(b, "%s%s: %s\n", indent, k, scalar(k, x))
			}
		default:
			fmt.Fprintf(b, "%s%s: %s\n", indent, k, scalar(k, x))
		}
	}
}

func isSummary(key string) bool { return strings.HasPrefix(key, "(") }

// allMaps reports whether every element (of a map or slice) is a map.
func allMaps(v any) bool {
	check := func(e any) bool { _, ok := e.(map[string]any); return ok }
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if !check(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !check(e) {
				return false
			}
		}
	}
	return true
}

// renderTable writes rows as aligned columns under a header of their
// keys. The column named "" (a map's keys) comes first, headed first.
func renderTable(b *strings.Builder, rows []map[string]any, indent, first string) {
	seen := map[string]bool{}
	var cols []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] && k != "" {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	cols = orderedKeys(cols)
	if first != "" {
		cols = append([]string{""}, cols...)
	}
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = strings.ToUpper(c)
		if c == "" {
			header[i] = strings.ToUpper(first)
		}
	}
	lines := [][]string{header}
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			if v, ok := r[c]; ok {
				cells[i] = scalar(c, v)
			} else {
				cells[i] = "-"
			}
		}
		lines = append(lines, cells)
	}
	alignColumns(b, indent, lines)
}

// alignColumns writes rows of cells as columns two spaces apart, each as
// wide as its widest cell on a terminal: a wide character (日) takes two
// columns, a combining one none. (text/tabwriter counted characters, and
// a client named in Japanese shifted the rows after it.)
func alignColumns(b *strings.Builder, indent string, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], ansi.StringWidth(c))
		}
	}
	for _, r := range rows {
		b.WriteString(indent)
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-ansi.StringWidth(c)+2))
			}
		}
		b.WriteString("\n")
	}
}

// scalar renders one value for a person.
func scalar(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return `""`
		}
		return x
	case []byte:
		return hex.EncodeToString(x)
	case float64:
		if key == "uptime" {
			return (time.Duration(x * float64(time.Second))).Round(time.Millisecond).String()
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if s, ok := e.(string); ok {
				parts[i] = s
			} else {
				parts[i] = compactJSON(e)
			}
		}
		if len(parts) == 0 {
			return "(none)"
		}
		return strings.Join(parts, ", ")
	case map[string]any, map[any]any:
		return compactJSON(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// eventLine renders an event for listen: time, channel, event, the
// sender's first 8 hex digits and the data as compact JSON, or with
// --json one JSON object.
func eventLine(m bus.Message, at time.Time, asJSON bool) string {
	var data any
	derr := m.Decode(&data)
	if asJSON {
		obj := map[string]any{
			"time":    at.Format(time.RFC3339Nano),
			"channel": m.Channel,
			"event":   m.Event,
			"id":      m.ID.String(),
			"origin":  m.Origin.String(),
			"sender":  m.Sender.String(),
			"data":    data,
		}
		if derr != nil {
			obj["data"] = nil
			obj["data_hex"] = hex.EncodeToString(m.Data)
			obj["data_error"] = derr.Error()
		}
		return compactJSON(obj)
	}
	text := compactJSON(data)
	if derr != nil {
		text = fmt.Sprintf("<%d bytes of msgpack: %s>", len(m.Data), hex.EncodeToString(m.Data))
	}
	return fmt.Sprintf("%s %s %s %s %s", at.Format("15:04:05.000"), m.Channel, m.Event, m.Sender.String()[:8], text)
}
