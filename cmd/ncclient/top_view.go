package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// topView runs the live view until q, Ctrl-C or the context's end.
func (s *session) topView(ctx context.Context, o topOptions, in io.Reader, out io.Writer) error {
	m := &topModel{s: s, ctx: ctx, delay: o.delay, channel: o.channel, sortKey: sortKeyOf(o.sortKey)}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, tea.ErrInterrupted) || errors.Is(err, context.Canceled) {
		err = nil
	}
	if err == nil {
		err = m.fatal
	}
	return err
}

// topModel is the state of the live view.
type topModel struct {
	s     *session
	ctx   context.Context
	delay time.Duration

	channel string // selected: whose clients are shown; "" before the first answer
	sortKey int
	reverse bool

	prev  *sample
	snap  *snapshot
	err   error // of the last read; the view shows it and goes on
	fatal error // ends the view: no server
	width int
	high  int
}

// sampleMsg is a read of the counters, or its error.
type sampleMsg struct {
	smp *sample
	err error
	// tick is set on the reads of the refresh: each schedules the
	// next. A read for a new selection is not one.
	tick bool
}

// tickMsg says it is time to read again.
type tickMsg struct{}

func (m *topModel) Init() tea.Cmd { return m.read(true) }

// read asks the server for the counters, off the view's goroutine.
func (m *topModel) read(tick bool) tea.Cmd {
	channel := m.channel
	return func() tea.Msg {
		smp, err := m.s.readSample(m.ctx, channel)
		return sampleMsg{smp, err, tick}
	}
}

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.high = msg.Width, msg.Height
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tickMsg:
		return m, m.read(true)
	case sampleMsg:
		var next tea.Cmd
		if msg.tick {
			next = tea.Tick(m.delay, func(time.Time) tea.Msg { return tickMsg{} })
		}
		if msg.err != nil {
			m.err = msg.err
			if exitCode(msg.err) == exitNoServer {
				m.fatal = msg.err
				return m, tea.Quit
			}
			return m, next
		}
		m.err = nil
		if m.take(msg.smp) {
			// A channel was selected for the first time: read its
			// clients now rather than at the next refresh.
			return m, tea.Batch(next, m.read(false))
		}
		return m, next
	}
	return m, nil
}

// take makes the snapshot of a new read, and selects the first channel
// when none is (or the one selected is gone); it reports whether it did.
func (m *topModel) take(smp *sample) (selected bool) {
	if m.prev != nil {
		m.snap = makeSnapshot(m.prev, smp)
		m.snap.sort(m.sortKey, m.reverse)
	}
	m.prev = smp
	if _, ok := smp.stats.Channels[m.channel]; !ok && len(smp.stats.Channels) > 0 {
		names := make([]string, 0, len(smp.stats.Channels))
		for n := range smp.stats.Channels {
			names = append(names, n)
		}
		slices.Sort(names)
		m.channel = names[0]
		return true
	}
	return false
}

// key handles a key: q quits, the arrows select a channel, the sort keys
// sort and r reverses.
func (m *topModel) key(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "q", "ctrl+c", "esc":
		return tea.Quit
	case "up", "k", "shift+tab":
		return m.selectBy(-1)
	case "down", "j", "tab":
		return m.selectBy(1)
	case "r":
		m.reverse = !m.reverse
	default:
		r := []rune(k.Text)
		if len(r) != 1 {
			return nil
		}
		i := slices.IndexFunc(sortKeys, func(s sortKey) bool { return rune(s.key) == r[0] })
		if i < 0 {
			return nil
		}
		m.sortKey = i
	}
	if m.snap != nil {
		m.snap.sort(m.sortKey, m.reverse)
	}
	return nil
}

// selectBy moves the selection by d channels, in the order shown, and
// reads the new channel's clients at once.
func (m *topModel) selectBy(d int) tea.Cmd {
	if m.snap == nil || len(m.snap.Channels) == 0 {
		return nil
	}
	i := slices.IndexFunc(m.snap.Channels, func(c topChannel) bool { return c.Name == m.channel })
	i = (i + d + len(m.snap.Channels)) % len(m.snap.Channels)
	m.channel = m.snap.Channels[i].Name
	return m.read(false)
}

var (
	titleStyle    = lipgloss.NewStyle().Bold(true)
	headerStyle   = lipgloss.NewStyle().Bold(true).Underline(true)
	selectedStyle = lipgloss.NewStyle().Reverse(true)
	errorStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("9"))
	helpStyle     = lipgloss.NewStyle().Faint(true)
)

// help is the last line of the view.
const help = "q quit  ↑/↓ channel  sort: n name  i in  o out  b bytes  p pending  d dropped  c clients  r reverse"

// View draws the screen, on the terminal's alternate screen.
func (m *topModel) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = true
	return v
}

func (m *topModel) screen() string {
	if m.width == 0 {
		return ""
	}
	var lines []string
	switch {
	case m.snap == nil && m.err == nil:
		lines = []string{"ncclient top: reading the server's counters…"}
	case m.snap != nil:
		lines = m.tableLines()
	}
	if m.err != nil {
		lines = append(lines, errorStyle.Render(m.err.Error()))
	}
	// Fill the screen, keeping the help on the last line.
	lines = lines[:min(len(lines), max(m.high-1, 0))]
	for len(lines) < m.high-1 {
		lines = append(lines, "")
	}
	lines = append(lines, helpStyle.Render(fmt.Sprintf("%s  [sort %s%s]", help, sortKeys[m.sortKey].name, map[bool]string{true: " reversed"}[m.reverse])))
	clip := lipgloss.NewStyle().MaxWidth(m.width)
	for i, l := range lines {
		lines[i] = clip.Render(l)
	}
	return strings.Join(lines, "\n")
}

// tableLines are the view's lines but the help: a summary, then the
// tables with their titles, the channel table's selected row marked.
// The client table gets the rows the others leave.
func (m *topModel) tableLines() []string {
	tables := snapshotTables(m.snap)
	var peers []string
	peerT := tables[len(tables)-1]
	peers = append(peers, "", titleStyle.Render(peerT.title))
	for _, l := range peerT.more {
		peers = append(peers, titleStyle.Render(l))
	}
	if len(peerT.rows) > 0 {
		pl := peerT.lines()
		peers = append(peers, headerStyle.Render(pl[0]))
		peers = append(peers, pl[1:]...)
	}
	lines := []string{titleStyle.Render(summaryLine(m.snap)), ""}
	chT := tables[0]
	cl := chT.lines()
	lines = append(lines, "  "+headerStyle.Render(cl[0]))
	for i, l := range cl[1:] {
		if chT.rows[i][0] == m.channel {
			l = "> " + selectedStyle.Render(l)
		} else {
			l = "  " + l
		}
		lines = append(lines, l)
	}
	if len(tables) == 3 {
		clT := tables[1]
		lines = append(lines, "", titleStyle.Render(fmt.Sprintf("%s (%d)", clT.title, len(clT.rows))))
		ll := clT.lines()
		lines = append(lines, headerStyle.Render(ll[0]))
		room := max(m.high-1-len(lines)-len(peers), 0)
		rows := ll[1:]
		if len(rows) > room {
			rows = rows[:max(room-1, 0)]
			rows = append(rows, helpStyle.Render(fmt.Sprintf("… %d more", len(ll)-1-len(rows))))
		}
		lines = append(lines, rows...)
	}
	return append(lines, peers...)
}
