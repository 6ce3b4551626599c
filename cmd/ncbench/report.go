package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one ncbench invocation measured; --json prints it
// as it is.
type Report struct {
	Machine Machine `json:"machine"`
	Server  string  `json:"server"` // "process" and its binary, "in-process", or the socket template of a running server
	// ServerPID is the process the server ran in: ncbench's own when
	// in process; zero for a running server.
	ServerPID int      `json:"server_pid,omitempty"`
	Runs      []Result `json:"runs"`
	Memory    *Memory  `json:"memory,omitempty"`
}

// Machine says where the figures were measured.
type Machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	CPU        string `json:"cpu,omitempty"`
	GoVersion  string `json:"go"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Result is one run. Delivered counts only events that arrived intact
// and in sequence; Lost, Reordered and Corrupt count the others.
type Result struct {
	Name        string `json:"name"`
	Channel     string `json:"channel,omitempty"`
	SubChannel  string `json:"sub_channel,omitempty"`
	Publishers  int    `json:"publishers"`
	Subscribers int    `json:"subscribers"`
	Size        int    `json:"size"`
	Window      uint64 `json:"window,omitempty"`
	// Work is what each subscriber's listener spent on each event.
	Work         time.Duration `json:"work_ns,omitempty"`
	Sent         uint64        `json:"sent"`
	Delivered    uint64        `json:"delivered"`
	Lost         uint64        `json:"lost"`
	Reordered    uint64        `json:"reordered"` // events from the past: late ones and duplicates
	Doubled      uint64        `json:"doubled"`   // of Reordered, those that had already arrived
	Corrupt      uint64        `json:"corrupt"`
	Disconnects  uint64        `json:"disconnects"` // subscriber connections that ended during the run
	Seconds      float64       `json:"seconds"`
	EventsPerSec float64       `json:"events_per_s,omitempty"`
	DeliveriesPS float64       `json:"deliveries_per_s,omitempty"`
	MBPerSec     float64       `json:"mb_per_s,omitempty"`
	RawRatio     float64       `json:"raw_ratio,omitempty"` // deliveries/s over the raw socket's frames/s, same invocation
	Latency      *Latency      `json:"latency,omitempty"`
	// Of the interest runs: Names is how many distinct event names the
	// publisher cycles through, one subscriber each, so each event is
	// for one subscriber; ServerBytesPerEvent is what the server wrote
	// to its clients per event emitted, and Filtered how many (event,
	// client) pairs it did not write, from the channel's stats.
	Names               int      `json:"names,omitempty"`
	ServerBytesPerEvent float64  `json:"server_bytes_per_event,omitempty"`
	Filtered            uint64   `json:"filtered,omitempty"`
	Errors              []string `json:"errors,omitempty"`
}

// rates fills in the per-second figures. Events per second counts an
// event once it reached every subscriber it was sent to.
func (r *Result) rates() {
	if r.Seconds <= 0 {
		return
	}
	per := r.receivers()
	r.EventsPerSec = float64(r.Delivered/per) / r.Seconds
	r.DeliveriesPS = float64(r.Delivered) / r.Seconds
	r.MBPerSec = float64(r.Delivered) * float64(r.Size) / r.Seconds / 1e6
}

// Honest reports whether every event sent arrived intact and in order.
func (r *Result) Honest() bool {
	return r.Lost == 0 && r.Reordered == 0 && r.Corrupt == 0 && len(r.Errors) == 0 &&
		r.Delivered == r.Sent*r.receivers()
}

// receivers is how many subscribers each event is for: all of them, or
// one in an interest run.
func (r *Result) receivers() uint64 {
	if r.Names > 0 {
		return 1
	}
	return uint64(max(r.Subscribers, 1))
}

func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// setRatios relates every run to the raw socket's rate.
func (rep *Report) setRatios() {
	var raw float64
	for _, r := range rep.Runs {
		if r.Name == "raw" {
			raw = r.DeliveriesPS
		}
	}
	if raw == 0 {
		return
	}
	for i := range rep.Runs {
		if r := &rep.Runs[i]; r.Name != "raw" && r.Latency == nil && r.DeliveriesPS > 0 {
			r.RawRatio = r.DeliveriesPS / raw
		}
	}
}

func (rep *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *Report) writeText(w io.Writer) {
	m := rep.Machine
	server := rep.Server
	if rep.ServerPID != 0 {
		server += fmt.Sprintf(" (pid %d)", rep.ServerPID)
	}
	fmt.Fprintf(w, "ncbench: server %s; %d CPUs (%s), %s %s/%s, GOMAXPROCS %d\n",
		server, m.CPUs, m.CPU, m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if slices.ContainsFunc(rep.Runs, func(r Result) bool { return r.Latency == nil }) {
		fmt.Fprintln(tw, "run\tpub\tsub\tsize\tsent\tdelivered\tevents/s\tdeliveries/s\tMB/s\tof raw\tlost\treordered\tdoubled\tcorrupt\tdisconnects\t")
	}
	for _, r := range rep.Runs {
		if r.Latency != nil {
			continue
		}
		ratio := "-"
		if r.RawRatio > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*r.RawRatio)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%.1f\t%s\t%d\t%d\t%d\t%d\t%d\t\n",
			r.label(), r.Publishers, r.Subscribers, r.Size, r.Sent, r.Delivered,
			si(r.EventsPerSec), si(r.DeliveriesPS), r.MBPerSec, ratio, r.Lost, r.Reordered, r.Doubled, r.Corrupt, r.Disconnects)
	}
	tw.Flush()
	lat := false
	for _, r := range rep.Runs {
		if r.Latency == nil {
			continue
		}
		if !lat {
			fmt.Fprintln(w)
			lat = true
		}
		l := r.Latency
		fmt.Fprintf(w, "%s: %d round trips of %d bytes: min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (lost %d, reordered %d, corrupt %d)\n",
			r.Name, r.Delivered, r.Size, usText(l.Min), usText(l.P50), usText(l.P90), usText(l.P99), usText(l.P999), usText(l.Max),
			r.Lost, r.Reordered, r.Corrupt)
	}
	rep.writeInterest(w)
	if mem := rep.Memory; mem != nil {
		fmt.Fprintln(w)
		mem.writeText(w)
	}
	for _, r := range rep.Runs {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s: %s\n", r.Name, e)
		}
	}
}

// label names the run in the text report.
func (r *Result) label() string {
	if r.Work > 0 {
		return fmt.Sprintf("%s (work %v)", r.Name, r.Work)
	}
	return r.Name
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func usText(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.0fµs", v)
}

// writeInterest compares the two interest runs, when there are.
func (rep *Report) writeInterest(w io.Writer) {
	var on, all *Result
	for i := range rep.Runs {
		switch r := &rep.Runs[i]; r.Name {
		case "interest":
			on = r
		case "interest-all":
			all = r
		}
	}
	if on == nil || all == nil {
		return
	}
	fmt.Fprintf(w, "\ninterest, %d subscribers of one event name each: deliveries/s %s declared, %s receiving all (%.1fx); "+
		"server bytes written per event %.0f and %.0f (%.1fx fewer); %d deliveries filtered out\n",
		on.Names, si(on.DeliveriesPS), si(all.DeliveriesPS), ratio(on.DeliveriesPS, all.DeliveriesPS),
		on.ServerBytesPerEvent, all.ServerBytesPerEvent, ratio(all.ServerBytesPerEvent, on.ServerBytesPerEvent), on.Filtered)
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
