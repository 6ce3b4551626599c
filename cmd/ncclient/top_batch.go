package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// topBatch prints a snapshot every delay: count of them, or until
// interrupted. Each shows the rates since the read before it.
func (s *session) topBatch(ctx context.Context, o topOptions) error {
	prev, err := s.readSample(ctx, o.channel)
	if err != nil {
		return err
	}
	if prev.gone != nil {
		return fmt.Errorf("top: %w", prev.gone) // a channel that goes later leaves the others shown
	}
	key := sortKeyOf(o.sortKey)
	for n := 0; o.count == 0 || n < o.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.delay):
		}
		cur, err := s.readSample(ctx, o.channel)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		snap := makeSnapshot(prev, cur)
		snap.sort(key, false)
		prev = cur
		if s.set.json {
			err = writeJSON(s.stdout, snap, false)
		} else {
			err = writePlain(s.stdout, snap)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writePlain writes a snapshot as text: its tables, and a blank line.
func writePlain(w io.Writer, snap *snapshot) error {
	var b strings.Builder
	b.WriteString(summaryLine(snap) + "\n")
	tables := snapshotTables(snap)
	for i, t := range tables {
		b.WriteString("\n" + t.title + "\n")
		for _, l := range t.more {
			b.WriteString(l + "\n")
		}
		if i == len(tables)-1 && len(t.rows) == 0 {
			break // no peers: no header either
		}
		for _, l := range t.lines() {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// summaryLine is the first line of a snapshot.
func summaryLine(snap *snapshot) string {
	var in, out, bin, bout float64
	for _, c := range snap.Channels {
		in, out, bin, bout = in+c.EventsInRate, out+c.EventsOutRate, bin+c.BytesInRate, bout+c.BytesOutRate
	}
	at, _ := time.Parse(time.RFC3339Nano, snap.Time)
	return fmt.Sprintf("%s  uptime %s  interval %.2fs  channels %d  events/s in %s out %s  bytes/s in %s out %s",
		at.Local().Format(time.TimeOnly), (time.Duration(snap.Uptime) * time.Second).String(), snap.Interval, len(snap.Channels),
		count(in), count(out), size(bin), size(bout))
}

// table is one table of a snapshot: a title, a header and rows, every
// column but the first aligned right.
type table struct {
	title  string
	more   []string // lines under the title, before the header
	header []string
	rows   [][]string
	left   int // how many columns from the first are aligned left
}

// widths are the widths of the table's columns.
func (t *table) widths() []int {
	w := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			w[i] = max(w[i], ansi.StringWidth(c))
		}
	}
	return w
}

// line renders one row.
func (t *table) line(r []string, widths []int) string {
	var b strings.Builder
	for i, c := range r {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := strings.Repeat(" ", widths[i]-ansi.StringWidth(c)) // as a terminal shows it: 日 is two columns
		if i < t.left {
			b.WriteString(c + pad)
		} else {
			b.WriteString(pad + c)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// lines renders the header and the rows.
func (t *table) lines() []string {
	w := t.widths()
	out := []string{t.line(t.header, w)}
	for _, r := range t.rows {
		out = append(out, t.line(r, w))
	}
	return out
}

// snapshotTables are the tables of a snapshot: channels, the clients of
// the selected channel, and the network.
func snapshotTables(snap *snapshot) []*table {
	tables := []*table{channelTable(snap)}
	if snap.Channel != "" {
		tables = append(tables, clientTable(snap))
	}
	return append(tables, peerTable(snap))
}

func channelTable(snap *snapshot) *table {
	t := &table{title: "channels", left: 1,
		header: []string{"CHANNEL", "CLIENTS", "IN/s", "OUT/s", "BYTES IN/s", "BYTES OUT/s", "PENDING", "DROPPED", "SLOW"}}
	for _, c := range snap.Channels {
		t.rows = append(t.rows, []string{c.Name, fmt.Sprint(c.Clients), count(c.EventsInRate), count(c.EventsOutRate),
			size(c.BytesInRate), size(c.BytesOutRate), size(float64(c.Pending)), fmt.Sprint(c.Dropped), fmt.Sprint(c.SlowConsumers)})
	}
	return t
}

func clientTable(snap *snapshot) *table {
	t := &table{title: "clients of " + snap.Channel, left: 2,
		header: []string{"NAME", "ID", "PID", "UID", "IN/s", "OUT/s", "BYTES IN/s", "BYTES OUT/s", "PENDING", "DROPPED"}}
	for _, c := range snap.Clients {
		name := c.Name
		if name == "" {
			name = "-"
		}
		t.rows = append(t.rows, []string{name, shortID(c.ID), fmt.Sprint(c.PID), fmt.Sprint(c.UID),
			count(c.EventsInRate), count(c.EventsOutRate), size(c.BytesInRate), size(c.BytesOutRate),
			size(float64(c.Pending)), fmt.Sprint(c.Dropped)})
	}
	return t
}

func peerTable(snap *snapshot) *table {
	title := "network: off"
	if snap.Net != nil {
		n := snap.Net
		title = fmt.Sprintf("network: datagrams/s in %s out %s  events/s in %s out %s  repaired/s %s  skipped/s %s",
			count(n["datagrams_received"]), count(n["datagrams_sent"]), count(n["delivered"]), count(n["messages_sent"]),
			count(n["repaired"]), count(n["lost"]))
	}
	t := &table{title: title, left: 3,
		header: []string{"PEER", "HOST", "ADDR", "DGRAMS/s", "BYTES/s", "LOSS", "REPAIRED/s", "REPAIRED", "SKIPPED"}}
	if l := natsLine(snap); l != "" {
		t.more = []string{l}
	}
	for _, p := range snap.Peers {
		t.rows = append(t.rows, []string{shortID(p.Node), p.Host, p.Addr, count(p.DatagramsRate), size(p.BytesRate),
			fmt.Sprintf("%.1f%%", 100*p.Loss), count(p.RepairedRate), fmt.Sprint(p.Repaired), fmt.Sprint(p.Lost)})
	}
	return t
}

// natsLine is the NATS link's state and rates, "" without a link:
// whether it is connected, and to which NATS server; events, messages
// and bytes a second each way; events dropped on their way out and
// missed on their way in, a second; what waits in its buffer; and the
// JetStream consumer's lag when it has one.
func natsLine(snap *snapshot) string {
	if snap.NATS == nil {
		return ""
	}
	state := "nats: disconnected"
	if on, _ := snap.NATS["connected"].(bool); on {
		state = "nats: connected"
		if srv, _ := snap.NATS["server"].(string); srv != "" {
			state += " to " + srv
		}
	}
	if stalled, _ := snap.NATS["stalled"].(bool); stalled {
		state += " (stalled)"
	}
	r := snap.NATSRates
	l := fmt.Sprintf("%s  events/s in %s out %s  messages/s in %s out %s  bytes/s in %s out %s  dropped/s %s  missed/s %s  buffered %s",
		state, count(r["events_in"]), count(r["events_out"]), count(r["msgs_in"]), count(r["msgs_out"]),
		size(r["bytes_in"]), size(r["bytes_out"]), count(r["dropped"]), count(r["missed_in"]),
		size(float64(counterOf(snap.NATS, "buffered"))))
	if lag := counterOf(snap.NATS, "jetstream_lag"); lag > 0 {
		l += fmt.Sprintf("  jetstream lag %d", lag)
	}
	return l
}

// shortID is the first 8 characters of an id, as showclient takes them.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// count renders a rate of events: whole numbers from 10 on, k and M
// past 100,000.
func count(v float64) string {
	switch {
	case v >= 1e8:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e5:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 10 || v == 0:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// size renders bytes, or bytes a second, in B, KiB, MiB or GiB.
func size(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 || v >= 100 {
		return fmt.Sprintf("%.0f%s", v, units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}
