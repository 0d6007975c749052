package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestArgv0 checks the drop-in names: invoked as fwknop the binary is "sesame knock", as
// fwknopd it is "sesame server".
func TestArgv0(t *testing.T) {
	for _, tc := range []struct{ argv0, want string }{
		{"fwknop", "sesame knock"},
		{"fwknopd", "sesame server"},
		{"sesame", ""},
	} {
		var out, errOut bytes.Buffer
		args := []string{"-V"}
		if tc.argv0 == "sesame" {
			args = []string{"knock", "-V"}
			tc.want = "sesame knock"
		}
		if code := dispatch(tc.argv0, args, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), tc.want) {
			t.Errorf("%s %v: exit %d, stdout %q, stderr %q; want %q", tc.argv0, args, code, out.String(), errOut.String(), tc.want)
		}
	}
}

func TestDispatchErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch("sesame", []string{"bogus"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown command "bogus"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	if code := dispatch("sesame", []string{"help"}, nil, &out, &errOut); code != 0 {
		t.Errorf("help: exit %d", code)
	}
	for _, name := range []string{"server", "knock", "decode", "keygen", "shield", "connect", "ssh-proxy"} {
		if !strings.Contains(out.String(), "  "+name) {
			t.Errorf("help does not list %s:\n%s", name, out.String())
		}
	}
}
