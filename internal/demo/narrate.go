package demo

import (
	"fmt"
	"io"
	"strings"
)

// ANSI SGR sequences the narration uses when colour is on.
const (
	sgrBold  = "\x1b[1m"
	sgrDim   = "\x1b[2m"
	sgrGreen = "\x1b[32m"
	sgrRed   = "\x1b[31m"
	sgrCyan  = "\x1b[36m"
	sgrReset = "\x1b[0m"
)

// WantColor decides whether the narration is coloured. mode is "auto", "always" or
// "never" (the --color flag; "" is "auto"). "auto" colours only when stdout is a terminal
// and NO_COLOR (noColor, https://no-color.org) is unset or empty; "always" ignores both.
// Any other mode is an error.
func WantColor(mode string, terminal bool, noColor string) (bool, error) {
	switch mode {
	case "", "auto":
		return terminal && noColor == "", nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", mode)
}

// A Narrator writes the demo's story: numbered step headings, what happened, and a
// verdict per step. With color false it writes plain text and no escape sequences.
// Write errors are ignored (a closed stdout must not stop the cleanup).
type Narrator struct {
	w     io.Writer
	color bool
	n     int // steps begun
	total int
}

// NewNarrator returns a Narrator for a story of total steps written to w.
func NewNarrator(w io.Writer, color bool, total int) *Narrator {
	return &Narrator{w: w, color: color, total: total}
}

func (n *Narrator) paint(sgr, s string) string {
	if !n.color {
		return s
	}
	return sgr + s + sgrReset
}

// Step begins the next step: "[ 3/11] name: title".
func (n *Narrator) Step(name, title string) {
	n.n++
	num := fmt.Sprintf("[%*d/%d]", len(fmt.Sprint(n.total)), n.n, n.total)
	fmt.Fprintf(n.w, "%s %s %s\n", n.paint(sgrCyan, num), n.paint(sgrBold, name+":"), title)
}

// Say writes one line of what happened, indented under the step.
func (n *Narrator) Say(format string, args ...any) {
	fmt.Fprintf(n.w, "        %s\n", fmt.Sprintf(format, args...))
}

// Quote writes text (log lines, command output) indented and dimmed, one line per line.
func (n *Narrator) Quote(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(n.w, "          %s\n", n.paint(sgrDim, l))
	}
}

// OK closes a step that behaved: "        ok: summary".
func (n *Narrator) OK(format string, args ...any) {
	fmt.Fprintf(n.w, "        %s %s\n", n.paint(sgrGreen, "ok:"), fmt.Sprintf(format, args...))
}

// Fail closes a step that misbehaved: "        FAILED: reason".
func (n *Narrator) Fail(format string, args ...any) {
	fmt.Fprintf(n.w, "        %s %s\n", n.paint(sgrRed+sgrBold, "FAILED:"), fmt.Sprintf(format, args...))
}
