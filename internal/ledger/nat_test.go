package ledger

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// natEntries are one of each NAT kind, sharing the source, protocol and port of an access
// entry: all four are different grants.
func natEntries(exp time.Time) []Entry {
	src := netip.MustParseAddr("10.0.0.1")
	return []Entry{
		{Key: Key{Src: src, Proto: 6, Port: 55000}, Expires: exp, Stanza: 1},
		{Key: Key{Src: src, Proto: 6, Port: 55000, Kind: Forward, NATAddr: netip.MustParseAddr("10.0.0.5"), NATPort: 22},
			Expires: exp, Stanza: 2, Masquerade: true},
		{Key: Key{Src: src, Proto: 6, Port: 55000, Kind: LocalNAT, NATAddr: netip.MustParseAddr("::ffff:10.0.0.254"), NATPort: 22},
			Expires: exp, Stanza: 3},
		{Key: Key{Src: netip.MustParseAddr("fd00::7"), Kind: Forward, ForwardAll: true}, Expires: exp, Stanza: 4,
			SNAT: netip.MustParseAddr("fd00::1")},
		{Key: Key{Src: src, Proto: 17, Port: 53, Kind: Forward, NATAddr: netip.MustParseAddr("fd00::5"), NATPort: 53},
			Expires: exp, Stanza: 5, DisableDNAT: true},
	}
}

// TestNATEntries: NAT grants are recorded under their full key, survive a reopen with their
// values, and can be removed; old access-only lines still load as access grants.
func TestNATEntries(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	exp := t0.Add(time.Hour)
	old := fmt.Sprintf("%s\n+ %d 10.0.0.9 6 22 7\n", header, exp.UnixMilli())
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	l := open(t, path, clk)
	es := natEntries(exp)
	merged := l.Record(es)
	for i := range es {
		want := es[i]
		want.Key = want.Key.norm()
		if merged[i] != want {
			t.Errorf("Record returned %+v, want %+v", merged[i], want)
		}
	}
	l.Close()
	l = open(t, path, clk)
	if st := l.Stats(); st.Malformed != 0 || st.Loaded != len(es)+1 {
		t.Fatalf("reopen stats %+v, want %d loaded", st, len(es)+1)
	}
	got := map[Key]Entry{}
	for _, e := range l.Live() {
		got[e.Key] = e
	}
	if e := got[key("10.0.0.9", 22)]; e.Kind != Access || e.Stanza != 7 {
		t.Fatalf("old line loaded as %+v", e)
	}
	for _, e := range es {
		e.Key = e.Key.norm()
		if got[e.Key] != e {
			t.Errorf("after reopen %+v, want %+v", got[e.Key], e)
		}
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{" 6 55000 2 forward 10.0.0.5:22 masq -\n", " 0 0 4 forward - fd00::1 -\n",
		" 17 53 5 forward [fd00::5]:53 - nodnat\n", " local-nat 10.0.0.254:22 - -\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("file lacks %q:\n%s", want, data)
		}
	}
	// The later expiry wins per full key, and the values go with it.
	fwd := es[1]
	fwd.Expires, fwd.Masquerade, fwd.SNAT = t0.Add(time.Minute), false, netip.MustParseAddr("10.0.0.2")
	if m := l.Record([]Entry{fwd}); m[0].Expires != exp || !m[0].Masquerade {
		t.Fatalf("shorter forward grant merged to %+v", m[0])
	}
	fwd.Expires = exp.Add(time.Hour)
	if m := l.Record([]Entry{fwd}); m[0].Expires != fwd.Expires || m[0].Masquerade || m[0].SNAT != fwd.SNAT {
		t.Fatalf("longer forward grant merged to %+v", m[0])
	}
	l.Remove(es[1].Key, es[3].Key)
	l.Close()
	l = open(t, path, clk)
	defer l.Close()
	if n := len(l.Live()); n != len(es)-1 {
		t.Fatalf("after removing 2 NAT grants %d live, want %d", n, len(es)-1)
	}
}

func TestNATLinesRejected(t *testing.T) {
	exp := t0.Add(time.Hour).UnixMilli()
	for _, line := range []string{
		"+ %d 10.0.0.1 6 22 1 access 10.0.0.5:22 - -",
		"+ %d 10.0.0.1 6 22 1 local-nat - - -",
		"+ %d 10.0.0.1 6 22 1 local-nat 10.0.0.5:22 masq -",
		"+ %d 10.0.0.1 6 22 1 forward 10.0.0.5 - -",
		"+ %d 10.0.0.1 6 22 1 forward 10.0.0.5:22 - yes",
		"+ %d 10.0.0.1 6 22 1 forward - - nodnat",
		"+ %d 10.0.0.1 6 22 1 forward 10.0.0.5:22 10.0.0.1%%eth0 -",
		"+ %d 10.0.0.1 6 22 1 forward 10.0.0.5:22",
		"+ %d 10.0.0.1 6 22 1 forward 10.0.0.5:22 - - extra",
	} {
		m, st, err := parse([]byte(header+"\n"+fmt.Sprintf(line, exp)+"\n"), t0.UnixMilli())
		if err != nil || st.Malformed != 1 || len(m) != 0 {
			t.Errorf("%q: loaded %v, %+v, %v; want malformed", line, m, st, err)
		}
	}
}
