package rcfile

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// RunFileName is the file in $HOME where fwknop saves the last command line (-l, --show-last).
const RunFileName = ".fwknop.run"

// ErrUnsavable: a command line the run file cannot hold.
var ErrUnsavable = errors.New("command line cannot be saved")

// FormatRun renders args as fwknop 2.6.10 writes its run file: "fwknop", then each argument
// after one blank, a trailing blank and a newline. The format has no quoting, so an argument
// with a blank or a newline in it is ErrUnsavable (fwknop would save it split in two).
func FormatRun(args []string) (string, error) {
	var b strings.Builder
	b.WriteString("fwknop ")
	for _, a := range args {
		if a == "" || strings.IndexFunc(a, unicode.IsSpace) >= 0 {
			return "", fmt.Errorf("argument %q is empty or contains a blank, which %s cannot hold: %w", a, RunFileName, ErrUnsavable)
		}
		b.WriteString(a + " ")
	}
	b.WriteString("\n")
	return b.String(), nil
}

// ParseRun returns the arguments of a run file's text: its first line split at blanks, without
// the first word (the program name), as fwknop's -l reads it.
func ParseRun(text string) []string {
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	return f[1:]
}

// ReadRun reads the run file at path. Its first line, without the newline, is returned as
// well, for --show-last.
func ReadRun(path string) (args []string, line string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("saved command line: %w", err)
	}
	line, _, _ = strings.Cut(string(data), "\n")
	return ParseRun(line), strings.TrimRight(line, "\r"), nil
}

// WriteRun saves args (see FormatRun) to path with mode 0600.
func WriteRun(path string, args []string) error {
	text, err := FormatRun(args)
	if err != nil {
		return err
	}
	return WriteFile(path, []byte(text))
}
