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

// TestDstEntries: an access grant with a destination is its own key next to the same grant
// without one, survives a reopen, and is removed by its full key; lines without "to" (all older
// files) load with no destination, and bad destinations are malformed lines.
func TestDstEntries(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	exp := t0.Add(time.Hour)
	old := fmt.Sprintf("%s\n+ %d 10.0.0.9 6 22 7\n+ %d 10.0.0.9 6 22 7 to fd00::1\n+ %d 10.0.0.9 6 22 7 at 10.0.0.1\n",
		header, exp.UnixMilli(), exp.UnixMilli(), exp.UnixMilli())
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	l := open(t, path, clk)
	if st := l.Stats(); st.Malformed != 2 || st.Loaded != 1 {
		t.Fatalf("stats %+v, want 1 loaded and 2 malformed", st)
	}
	src := netip.MustParseAddr("10.0.0.9")
	with := Key{Src: src, Proto: 6, Port: 22, Dst: netip.MustParseAddr("::ffff:10.0.0.1")}
	with6 := Key{Src: netip.MustParseAddr("fd00::7"), Proto: 17, Port: 53, Dst: netip.MustParseAddr("fd00::1")}
	l.Record([]Entry{{Key: with, Expires: exp, Stanza: 2}, {Key: with6, Expires: exp, Stanza: 3}})
	l.Close()
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), " 10.0.0.9 6 22 2 to 10.0.0.1\n") {
		t.Fatalf("file lacks the destination line:\n%s", data)
	}
	l = open(t, path, clk)
	got := map[Key]Entry{}
	for _, e := range l.Live() {
		got[e.Key] = e
	}
	if len(got) != 3 || got[with.norm()].Stanza != 2 || got[with6].Stanza != 3 || got[key("10.0.0.9", 22)].Stanza != 7 {
		t.Fatalf("after reopen: %+v", got)
	}
	l.Remove(with)
	l.Close()
	l = open(t, path, clk)
	defer l.Close()
	if es := l.Live(); len(es) != 2 {
		t.Fatalf("after Remove of the destination grant: %+v", es)
	}
	for _, e := range l.Live() {
		if e.Key == with.norm() {
			t.Fatal("Remove left the destination grant")
		}
	}
	// Dst on a NAT key is dropped; a Dst of the other family is not storable.
	if k := (Key{Src: src, Kind: Forward, ForwardAll: true, Dst: with.Dst}).norm(); k.Dst.IsValid() {
		t.Fatalf("norm kept Dst on a NAT key: %+v", k)
	}
	if (Key{Src: src, Proto: 6, Port: 22, Dst: with6.Dst}).norm().storable() {
		t.Fatal("a key with a destination of the other family is storable")
	}
}
