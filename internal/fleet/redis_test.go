package fleet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nstest"
)

// The tests run Debian's redis-server on loopback: one shared instance for the package
// (started in TestMain), and their own for tests that kill it or configure it. Each is
// started with a temp dir, --port, --save "" and stopped by PID.

var (
	redisBin    string // "" when redis-server is missing: Redis tests skip
	sharedOnce  sync.Once
	sharedDir   string
	sharedSrv   *redisServer // the package's instance, started by the first test that needs it
	sharedStart error
)

func TestMain(m *testing.M) {
	bin, err := exec.LookPath("redis-server")
	switch {
	case err == nil:
		redisBin = bin
	case nstest.InCI():
		fmt.Fprintln(os.Stderr, "internal/fleet: redis-server is missing under CI=true (apt-get install redis-server)")
		os.Exit(1)
	}
	code := m.Run()
	if sharedSrv != nil {
		sharedSrv.stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// needRedis skips t when redis-server is missing (TestMain has already failed under CI).
func needRedis(t testing.TB) {
	t.Helper()
	if redisBin == "" {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
}

// shared returns the package's redis-server, starting it on first use (TestMain stops it).
func shared(t testing.TB) *redisServer {
	t.Helper()
	needRedis(t)
	sharedOnce.Do(func() {
		if sharedDir, sharedStart = os.MkdirTemp("", "fleet-redis-"); sharedStart == nil {
			sharedSrv, sharedStart = startRedis(sharedDir, nil)
		}
	})
	if sharedStart != nil {
		t.Fatalf("start redis-server: %v", sharedStart)
	}
	return sharedSrv
}

// redisServer is one redis-server process.
type redisServer struct {
	dir   string
	port  int
	extra []string
	ready string // the log line that says it serves

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startRedis starts redis-server on a free loopback port with dir as its working directory.
// extra are more arguments; a first element "--sentinel" starts a sentinel from a config file
// (the second element).
func startRedis(dir string, extra []string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisServer{dir: dir, port: port, extra: extra, ready: "Ready to accept connections"}
	return r, r.start()
}

// newRedis starts a redis-server for t alone and stops it when t ends.
func newRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	needRedis(t)
	r, err := startRedis(t.TempDir(), extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *redisServer) args() []string {
	port := strconv.Itoa(r.port)
	if len(r.extra) > 1 && r.extra[0] == "--sentinel" {
		r.ready = "+monitor master"
		return append([]string{r.extra[1], "--sentinel", "--port", port, "--bind", "127.0.0.1"}, r.extra[2:]...)
	}
	if tlsPort := argValue(r.extra, "--tls-port"); tlsPort != "" {
		port = "0"
	}
	return append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--logfile", ""}, r.extra...)
}

func argValue(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// start runs redis-server and waits for its ready line.
func (r *redisServer) start() error {
	cmd := exec.Command(redisBin, r.args()...)
	cmd.Dir = r.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var omu sync.Mutex
	var out bytes.Buffer
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			omu.Lock()
			out.WriteString(sc.Text() + "\n")
			omu.Unlock()
			if strings.Contains(sc.Text(), r.ready) {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); pw.Close(); close(done) }()
	log := func() string { omu.Lock(); defer omu.Unlock(); return out.String() }
	select {
	case <-ready:
		r.mu.Lock()
		r.cmd, r.done = cmd, done
		r.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("redis-server %v exited (%v):\n%s", r.args(), werr, log())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server %v not ready after 20 s:\n%s", r.args(), log())
	}
}

// stop kills the process by PID and waits for it to exit.
func (r *redisServer) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// url is a redis:// URL for r.
func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

// client is a plain go-redis client for r (the tests' attacker and inspector).
func (r *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// testKey is the fleet key of the tests' gateways.
var testKey = bytes.Repeat([]byte{0x5a}, 32)

// logBuf collects a Fleet's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gateway is one Fleet in a test, with its log.
type gateway struct {
	*Fleet
	log *logBuf
}

// groupName returns a group name unique to t.
func groupName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if validName(string(r)) {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("%.40s-%s", n, randomHex(4))
}

// newGateway returns a Fleet on url, closed when t ends.
func newGateway(t testing.TB, url, group string, mods ...func(*Config)) *gateway {
	t.Helper()
	lb := &logBuf{}
	cfg := Config{URL: url, Group: group, Key: testKey, Timeout: time.Second,
		Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mods {
		m(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &gateway{f, lb}
}

// run runs g.Run with a recording applier until t ends.
func (g *gateway) run(t testing.TB) *recorder {
	rec := &recorder{ch: make(chan event, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(ctx, rec); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rec
}

// event is one Applier call.
type event struct {
	kind    string // "apply", "revoke", "revoke-all"
	entries []ledger.Entry
	keys    []ledger.Key
	at      time.Time
}

// recorder is an Applier that reports each call on ch.
type recorder struct{ ch chan event }

func (r *recorder) Apply(es []ledger.Entry) error {
	r.ch <- event{kind: "apply", entries: es, at: time.Now()}
	return nil
}

func (r *recorder) Revoke(ks []ledger.Key) error {
	r.ch <- event{kind: "revoke", keys: ks, at: time.Now()}
	return nil
}

func (r *recorder) RevokeAll() error {
	r.ch <- event{kind: "revoke-all", at: time.Now()}
	return nil
}

// next waits for the next call (10 s at most: a bound for failure, not a measurement).
func (r *recorder) next(t testing.TB) event {
	t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no Applier call within 10 s")
		return event{}
	}
}

// eventually retries cond every 10 ms until it holds (10 s at most).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
