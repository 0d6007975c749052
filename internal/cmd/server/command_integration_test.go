package server

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// A command message from the real client runs its command as CMD_EXEC_USER (nobody), without a
// shell; the same command from a stanza without ENABLE_CMD_EXEC is refused.
func TestIntegrationCommandMessage(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	out, err := os.MkdirTemp("", "sesame-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	if err := os.Chmod(out, 0o777); err != nil { // nobody writes here
		t.Fatal(err)
	}
	srv, cli := nstest.Pair(t)
	other := third(t, srv)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n",
		Access: accessStanza(nstest.CliIP4, "ENABLE_CMD_EXEC Y", "CMD_EXEC_USER nobody") + accessStanza("10.98.0.2")})

	made := filepath.Join(out, "made")
	fwknop(t, cli, "-D", nstest.SrvIP4, "-a", nstest.CliIP4, "--server-cmd", "touch "+made)
	d.WaitLog(t, 1, 5*time.Second, "command finished", "exit=0", "kind=command")
	d.WaitLog(t, 1, time.Second, "command accepted", "src="+nstest.CliIP4, "run_as=nobody/")
	fi, err := os.Stat(made)
	if err != nil {
		t.Fatalf("the command made no file: %v", err)
	}
	if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != nobody.Uid {
		t.Errorf("file owned by uid %s, want nobody (%s)", uid, nobody.Uid)
	}

	refused := filepath.Join(out, "refused")
	fwknop(t, other, "-D", "10.98.0.1", "-a", "10.98.0.2", "--server-cmd", "touch "+refused)
	d.WaitLog(t, 1, 5*time.Second, "SPA packet rejected", "src=10.98.0.2", `reason="command messages not allowed"`)
	if _, err := os.Stat(refused); err == nil {
		t.Error("a stanza without ENABLE_CMD_EXEC ran the command")
	}
}

// A command cycle drives an nftables set of the test's own instead of a grant: the real
// client's knock adds the address; the server is killed (SIGKILL) and restarted, and the
// close still removes it after CMD_CYCLE_TIMER.
func TestIntegrationCommandCycleKill9(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	srv.Run(t, "nft", "add table inet cyc; add set inet cyc s { type ipv4_addr; }")
	t.Cleanup(func() { _ = srv.Command("nft", "delete", "table", "inet", "cyc").Run() })
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n",
		Access: accessStanza("ANY", "CMD_CYCLE_OPEN nft add element inet cyc s { $IP }",
			"CMD_CYCLE_CLOSE nft delete element inet cyc s { $IP }", "CMD_CYCLE_TIMER 3")})
	inSet := func() bool {
		return strings.Contains(srv.Run(t, "nft", "list", "set", "inet", "cyc", "s"), nstest.CliIP4)
	}

	start := time.Now()
	fwknop(t, cli, "-D", nstest.SrvIP4, "-a", nstest.CliIP4, "-A", "tcp/22")
	d.WaitLog(t, 1, 5*time.Second, "command finished", "kind=cycle-open", "exit=0")
	if !inSet() {
		t.Fatal("the open command did not add the address")
	}
	if fw := d.FWList(t); len(fw) != 0 {
		t.Errorf("a cycle stanza made firewall grants: %v", fw)
	}
	d.Stop(t, syscall.SIGKILL)
	d.Restart(t)
	d.WaitLog(t, 1, time.Second, "CMD_CYCLE_CLOSE pending from a previous run", "allow="+nstest.CliIP4)
	d.WaitLog(t, 1, 6*time.Second, "command finished", "kind=cycle-close", "exit=0")
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("closed after %v, want about 3 s", el)
	}
	if inSet() {
		t.Error("the close command did not remove the address")
	}
	if b, err := os.ReadFile(filepath.Join(d.Dir, "run", "sesame-sesame.closes")); err != nil || strings.Contains(string(b), "delete") {
		t.Errorf("pending closes after the close ran: %q %v", b, err)
	}
}

// A stanza that runs commands refuses configuration files others could change, naming the
// file and the fix; the same files without commands load.
func TestLoadRefusesUnsafeCommandFiles(t *testing.T) {
	dir := t.TempDir()
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	sesametest.WriteFile(t, conf, "FWKNOP_RUN_DIR "+dir+"\n")
	sesametest.WriteFile(t, access, accessStanza("ANY", "ENABLE_CMD_EXEC Y"))
	if _, err := loadSettings(&options{configFile: conf, accessFile: access}); err != nil {
		t.Fatalf("safe files: %v", err)
	}
	if err := os.Chmod(access, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := loadSettings(&options{configFile: conf, accessFile: access})
	if err == nil || !strings.Contains(err.Error(), "chmod go-w "+access) || !strings.Contains(err.Error(), "runs commands") {
		t.Fatalf("world-writable access.conf: %v", err)
	}
	sesametest.WriteFile(t, access, accessStanza("ANY"))
	if err := os.Chmod(access, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSettings(&options{configFile: conf, accessFile: access}); err != nil {
		t.Fatalf("no commands, loose files: %v", err)
	}
}
