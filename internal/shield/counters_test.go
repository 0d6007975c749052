package shield

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const netstatSample = `TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPAOGood
TcpExt: 0 7 2 3 0
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`

func TestParseNetstat(t *testing.T) {
	c, err := ParseNetstat(strings.NewReader(netstatSample))
	if err != nil {
		t.Fatal(err)
	}
	if c != (Counters{NotFound: 7, Unexpected: 2, Failure: 3}) {
		t.Errorf("got %+v", c)
	}
	for _, bad := range []string{"", "IpExt: a\nIpExt: 1\n", "TcpExt: TCPMD5NotFound\nTcpExt: 1 2\n", "TcpExt: TCPMD5NotFound\nTcpExt: x\n"} {
		if _, err := ParseNetstat(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadCountersReal(t *testing.T) {
	if _, err := ReadCounters(); err != nil {
		t.Fatal(err)
	}
}

func TestWatchCounters(t *testing.T) {
	vals := []Counters{{}, {}, {NotFound: 4, Failure: 1}}
	i := 0
	read := func() (Counters, error) {
		c := vals[min(i, len(vals)-1)]
		i++
		return c, nil
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { WatchCounters(ctx, log, tick, read); close(done) }()
	tick <- time.Time{} // no change: no line
	tick <- time.Time{} // +4 no signature, +1 wrong
	tick <- time.Time{} // no change again
	cancel()
	<-done
	out := buf.String()
	if strings.Count(out, "md5 probes") != 1 || !strings.Contains(out, "no_signature=4") || !strings.Contains(out, "wrong_signature=1") {
		t.Errorf("log:\n%s", out)
	}
}

func FuzzParseNetstat(f *testing.F) {
	f.Add([]byte(netstatSample))
	f.Add([]byte("TcpExt: a b\nTcpExt: 1 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseNetstat(bytes.NewReader(data))
	})
}
