package connect

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/md5grant"
)

func TestParseKnock(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stanza string // "" = no knock
		err    string
	}{
		{[]string{"srv", "2222"}, "", ""},
		{[]string{"--knock", "srv", "2222"}, "srv", ""},
		{[]string{"srv", "2222", "--knock"}, "srv", ""},
		{[]string{"--knock=alice", "srv", "2222"}, "alice", ""},
		{[]string{"--knock=alice", "--rc-file", "/x", "srv", "2222"}, "alice", ""},
		{[]string{"--knock", "--key", "k", "srv", "2222"}, "", "drop --key-file/--key"},
		{[]string{"--knock", "--key-file", "f", "srv", "2222"}, "", "drop --key-file/--key"},
		{[]string{"--rc-file", "/x", "srv", "2222"}, "", "--rc-file needs --knock"},
	} {
		o, err := parse(tc.args, io.Discard)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case o.knock != (tc.stanza != "") || o.stanza != tc.stanza:
			t.Errorf("%q: knock=%v stanza=%q", tc.args, o.knock, o.stanza)
		}
	}
}

// A knock that cannot be built (no such stanza) fails the command before any dial.
func TestKnockBadStanza(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "rc")
	os.WriteFile(rc, []byte("[other]\nSPA_SERVER 127.0.0.1\nKEY k\n"), 0o600)
	var errb bytes.Buffer
	code := Main([]string{"--knock", "--rc-file", rc, "--timeout", "1s", "srv", "1"}, nil, io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "stanza [srv] not found") {
		t.Errorf("exit %d, %q", code, errb.String())
	}
	d := &knockDialer{knocker: &md5grant.Knocker{RCPath: rc}, stanza: "other", timeout: 300 * time.Millisecond}
	// Stanza "other" knocks over UDP to 127.0.0.1:62201 (nobody listens) and then dials a
	// port where nothing answers: the retries end at the timeout.
	start := time.Now()
	if _, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:9"); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("dial without a server: %v after %v", err, time.Since(start))
	}
}
