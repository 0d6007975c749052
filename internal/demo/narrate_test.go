package demo

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestWantColor(t *testing.T) {
	for _, c := range []struct {
		mode     string
		terminal bool
		noColor  string
		want     bool
		err      bool
	}{
		{"auto", true, "", true, false},
		{"", true, "", true, false},
		{"auto", false, "", false, false},
		{"auto", true, "1", false, false},
		{"auto", true, "0", false, false}, // any non-empty value counts
		{"always", false, "1", true, false},
		{"never", true, "", false, false},
		{"yes", true, "", false, true},
	} {
		got, err := WantColor(c.mode, c.terminal, c.noColor)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("WantColor(%q, %v, %q) = %v, %v; want %v, error %v", c.mode, c.terminal, c.noColor, got, err, c.want, c.err)
		}
	}
}

func narrate(color bool) string {
	var b strings.Builder
	n := NewNarrator(&b, color, 12)
	n.Step("knock", "the client knocks")
	n.Say("sent %d bytes", 204)
	n.Quote("line one\nline two\n")
	n.OK("granted")
	n.Step("replay", "again")
	n.Fail("no rejection")
	return b.String()
}

func TestNarratorPlain(t *testing.T) {
	got := narrate(false)
	want := "[ 1/12] knock: the client knocks\n" +
		"        sent 204 bytes\n" +
		"          line one\n" +
		"          line two\n" +
		"        ok: granted\n" +
		"[ 2/12] replay: again\n" +
		"        FAILED: no rejection\n"
	if got != want {
		t.Errorf("plain narration:\n%s\nwant:\n%s", got, want)
	}
}

func TestNarratorColor(t *testing.T) {
	got := narrate(true)
	for _, want := range []string{
		sgrCyan + "[ 1/12]" + sgrReset, sgrBold + "knock:" + sgrReset, sgrDim + "line one" + sgrReset,
		sgrGreen + "ok:" + sgrReset + " granted", sgrRed + sgrBold + "FAILED:" + sgrReset + " no rejection",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("coloured narration lacks %q:\n%q", want, got)
		}
	}
	// Without the escapes it reads exactly as the plain one.
	plain := got
	for _, sgr := range []string{sgrBold, sgrDim, sgrGreen, sgrRed, sgrCyan, sgrReset} {
		plain = strings.ReplaceAll(plain, sgr, "")
	}
	if plain != narrate(false) {
		t.Errorf("coloured text differs from the plain text beyond the escapes:\n%s", plain)
	}
}

// fakeStep records that it ran and returns err.
func fakeStep(name string, ran *[]string, err error) step {
	return step{name, "title of " + name, func(context.Context, *Narrator) (string, error) {
		*ran = append(*ran, name)
		return name + " done", err
	}}
}

func TestRunStepsAllBehave(t *testing.T) {
	var b strings.Builder
	var ran []string
	steps := []step{fakeStep("a", &ran, nil), fakeStep("b", &ran, nil)}
	if err := runSteps(context.Background(), NewNarrator(&b, false, 2), steps); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ran, ",") != "a,b" || !strings.Contains(b.String(), "[2/2] b: title of b\n        ok: b done\n") {
		t.Errorf("ran %v, output:\n%s", ran, b.String())
	}
}

func TestRunStepsStopsAtFailure(t *testing.T) {
	var b strings.Builder
	var ran []string
	boom := errors.New("port answered")
	steps := []step{fakeStep("a", &ran, nil), fakeStep("silent", &ran, boom), fakeStep("c", &ran, nil)}
	err := runSteps(context.Background(), NewNarrator(&b, false, 3), steps)
	var se *StepError
	if !errors.As(err, &se) || se.Num != 2 || se.Name != "silent" || !errors.Is(err, boom) {
		t.Fatalf("error %#v, want step 2 (silent) wrapping %v", err, boom)
	}
	if err.Error() != "step 2 (silent): port answered" {
		t.Errorf("message %q", err.Error())
	}
	if strings.Join(ran, ",") != "a,silent" {
		t.Errorf("ran %v, want a,silent", ran)
	}
	if !strings.Contains(b.String(), "FAILED: port answered") || strings.Contains(b.String(), "[3/3]") {
		t.Errorf("output:\n%s", b.String())
	}
}

func TestRunStepsInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("interrupted (SIGINT)")
	var ran []string
	steps := []step{
		{"wait", "", func(ctx context.Context, _ *Narrator) (string, error) {
			ran = append(ran, "wait")
			cancel(stop)
			return "", errors.New("poll: " + context.Cause(ctx).Error()) // a step that reports ctx only in text
		}},
		fakeStep("later", &ran, nil),
	}
	var b strings.Builder
	err := runSteps(ctx, NewNarrator(&b, false, 2), steps)
	var se *StepError
	if !errors.As(err, &se) || se.Name != "wait" || !errors.Is(err, stop) {
		t.Fatalf("error %v, want step 1 (wait) wrapping the cause", err)
	}
	if len(ran) != 1 {
		t.Errorf("steps ran after the interruption: %v", ran)
	}

	// A step that returns success after the interruption is reported as interrupted too.
	ctx, cancel = context.WithCancelCause(context.Background())
	ok := step{"quick", "", func(context.Context, *Narrator) (string, error) { cancel(stop); return "fine", nil }}
	if err := runSteps(ctx, NewNarrator(&b, false, 1), []step{ok}); !errors.Is(err, stop) {
		t.Errorf("success after cancel: %v, want the cause", err)
	}
}
