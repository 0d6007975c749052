package shield

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--listen", ":1", "--upstream", "a:1"}, "--key-file"},
		{[]string{"--key-file", "k", "--listen", ":1"}, "exactly one"},
		{[]string{"--key-file", "k", "--upstream", "a:1", "--exec", "--", "x"}, "exactly one"},
		{[]string{"--key-file", "k", "--exec"}, "program after --"},
		{[]string{"--key-file", "k", "--upstream", "a:1", "stray"}, "unexpected"},
		{[]string{"--key-file", "k", "--upstream", "a:1"}, ""},
		{[]string{"--key-file", "k", "--exec", "--", "sshd", "-i"}, ""},
	} {
		var errb bytes.Buffer
		o, err := parse(tc.args, &errb)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want %q", tc.args, err, tc.err)
		case tc.err == "" && o.exec && strings.Join(o.program, " ") != "sshd -i":
			t.Errorf("%q: program %q", tc.args, o.program)
		}
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"--key-file", "/nonexistent", "--listen", "127.0.0.1:0", "--upstream", "a:1"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "key file") {
		t.Errorf("missing key file: exit %d, %q", code, errb.String())
	}
}
