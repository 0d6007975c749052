package ledger

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad: any file content parses without panic, with consistent counts, and what loads
// re-serialises into a file that loads equal.
func FuzzLoad(f *testing.F) {
	exp := t0.Add(time.Hour).UnixMilli()
	f.Add([]byte(header + "\n" + fmt.Sprintf("+ %d 10.0.0.1 6 22 1\n+ %d ::ffff:1.2.3.4 17 53 -2\n", exp, exp)))
	f.Add([]byte(header + "\n" + fmt.Sprintf("+ %d fe80::1%%eth0 6 22 0\n- 10.0.0.1 6 22\n*\n+ 1 1.1.1.1 6 1 1\n+ %d", exp, exp)))
	f.Add([]byte(header + "\n\n# c\n+ 99999999999999999999 1.2.3.4 6 22 1\n- 1.2.3.4 256 1\n"))
	f.Add([]byte(header + "\n" + fmt.Sprintf("+ %d 10.0.0.1 6 55000 1 forward 10.0.0.5:22 masq -\n+ %d fd00::7 0 0 2 forward - fd00::1 -\n", exp, exp) +
		fmt.Sprintf("+ %d 10.0.0.1 6 55000 3 local-nat 10.0.0.254:22 - -\n- 10.0.0.1 6 55000 forward 10.0.0.5:22\n", exp)))
	f.Add([]byte(header + "\n" + fmt.Sprintf("+ %d 10.0.0.1 6 22 1 to 10.0.0.254\n+ %d fd00::7 17 53 2 to fd00::1\n- 10.0.0.1 6 22 to 10.0.0.254\n", exp, exp)))
	f.Add([]byte("# sesame gr"))
	f.Add([]byte("junk\n"))
	nowMs := t0.UnixMilli()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, st, err := parse(data, nowMs)
		if err != nil {
			return
		}
		if st.Loaded != len(m) || st.Malformed > st.Lines || st.Loaded+st.Expired > st.Lines {
			t.Fatalf("inconsistent stats %+v (len %d)", st, len(m))
		}
		for k, r := range m {
			if k != k.norm() || !k.storable() || r.exp <= nowMs {
				t.Fatalf("loaded %v %+v", k, r)
			}
		}
		m2, st2, err := parse(snapshot(m), nowMs)
		if err != nil || !maps.Equal(m, m2) || st2.Malformed != 0 || st2.Torn || st2.Lines != len(m) {
			t.Fatalf("round trip: %v, %+v\n%v\n%v", err, st2, m, m2)
		}
	})
}

// BenchmarkLoad100k measures Open of a ledger of 100,000 live grants (IPv4 and IPv6), which
// parses the file and rewrites it (fsync included); "parse" measures the parsing alone.
func BenchmarkLoad100k(b *testing.B) {
	clk := &clock{t: t0}
	m := map[Key]rec{}
	for i := range 100_000 {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if i%2 == 1 {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 16), 13: byte(i >> 8), 14: byte(i), 15: 1})
		}
		m[Key{Src: src, Proto: 6, Port: uint16(i)}] = rec{exp: t0.Add(time.Hour).UnixMilli() + int64(i), stanza: i % 7}
	}
	data := snapshot(m)
	b.Run("open", func(b *testing.B) {
		path := filepath.Join(dir(b), "grants")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			l, err := Open(path, clk.Now)
			if err != nil {
				b.Fatal(err)
			}
			if l.Stats().Loaded != len(m) {
				b.Fatalf("loaded %d", l.Stats().Loaded)
			}
			l.Close()
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if got, _, _ := parse(data, t0.UnixMilli()); len(got) != len(m) {
				b.Fatalf("parsed %d", len(got))
			}
		}
	})
}

// BenchmarkRecord measures the hot path: one grant per call, appended to the file.
func BenchmarkRecord(b *testing.B) {
	clk := &clock{t: t0}
	l, err := Open(filepath.Join(dir(b), "grants"), clk.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	es := make([]Entry, 1)
	i := 0
	for b.Loop() {
		es[0] = Entry{Key: Key{Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Proto: 6, Port: 22},
			Expires: t0.Add(time.Minute), Stanza: 1}
		l.Record(es)
		i++
	}
}
