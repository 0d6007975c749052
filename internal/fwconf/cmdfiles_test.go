package fwconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommandStanza(t *testing.T) {
	st, _, err := ParseAccess("a.conf", []byte(baseStanza+"ENABLE_CMD_EXEC Y\nCMD_EXEC_USER nobody\n"+
		"CMD_CYCLE_OPEN nft add element inet t s { $IP }\nCMD_CYCLE_CLOSE nft delete element inet t s { $IP }\nCMD_CYCLE_TIMER 7\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := st[0].Cmd
	if !c.Exec || c.User != "nobody" || c.CycleOpen != "nft add element inet t s { $IP }" || c.CycleTimer != 7*time.Second || !st[0].RunsCommands() {
		t.Fatalf("got %+v", c)
	}
	st, _, err = ParseAccess("a.conf", []byte(baseStanza+"CMD_CYCLE_OPEN /bin/true\nCMD_CYCLE_CLOSE NONE\n"), Options{})
	if err != nil || st[0].Cmd.CycleClose != "" || !st[0].RunsCommands() {
		t.Fatalf("NONE: %v %+v", err, st)
	}
	for _, bad := range []string{
		"CMD_CYCLE_OPEN /bin/true\n",                             // no close
		"CMD_CYCLE_CLOSE /bin/true\nCMD_CYCLE_TIMER 5\n",         // no open
		"CMD_CYCLE_OPEN /bin/true\nCMD_CYCLE_CLOSE /bin/false\n", // no timer
		"CMD_CYCLE_TIMER -1\n",
		"CMD_CYCLE_OPEN " + strings.Repeat("x", 256) + "\nCMD_CYCLE_CLOSE NONE\n",
		"ENABLE_CMD_EXEC maybe\n",
	} {
		if _, _, err := ParseAccess("a.conf", []byte(baseStanza+bad), Options{}); !errors.Is(err, ErrValue) {
			t.Errorf("%q: %v, want ErrValue", bad, err)
		}
	}
}

func TestCheckCommandFiles(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fwknopd.conf")
	acc := filepath.Join(dir, "access.conf")
	inc := filepath.Join(dir, "keys.conf")
	if err := os.WriteFile(conf, []byte("ACCESS_FILE "+acc+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(acc, []byte("%include "+inc+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inc, []byte(baseStanza+"ENABLE_CMD_EXEC Y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var read []string
	_, st, _, err := Load(conf, Options{Read: &read})
	if err != nil {
		t.Fatal(err)
	}
	if !st[0].RunsCommands() || strings.Join(read, " ") != conf+" "+acc+" "+inc {
		t.Fatalf("read %v", read)
	}
	euid := os.Geteuid()
	if err := CheckCommandFiles(read, euid); err != nil {
		t.Fatalf("safe files refused: %v", err)
	}
	if err := os.Chmod(inc, 0o620); err != nil {
		t.Fatal(err)
	}
	err = CheckCommandFiles(read, euid)
	if !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), inc) || !strings.Contains(err.Error(), "chmod go-w "+inc) {
		t.Fatalf("group-writable include: %v", err)
	}
	if err := os.Chmod(inc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(acc, 65534, -1); err != nil {
		t.Skipf("cannot chown (not root?): %v", err)
	}
	err = CheckCommandFiles(read, euid)
	if !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "chown root "+acc) {
		t.Fatalf("foreign owner: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckCommandFiles(read, euid); !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("world-writable directory: %v", err)
	}
}
