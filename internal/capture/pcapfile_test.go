package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Link-layer framings of an IP packet.
func ethFrame(ip []byte, vlans int) []byte {
	b := make([]byte, 12, 14+4*vlans+len(ip))
	for range vlans {
		b = append(b, 0x81, 0x00, 0x00, 0x07)
	}
	et := []byte{0x08, 0x00}
	if ip[0]>>4 == 6 {
		et = []byte{0x86, 0xdd}
	}
	return append(append(b, et...), ip...)
}

func sllFrame(ip []byte) []byte {
	b := make([]byte, 16, 16+len(ip))
	binary.BigEndian.PutUint16(b[14:], ethertypeOf(ip))
	return append(b, ip...)
}

func sll2Frame(ip []byte) []byte {
	b := make([]byte, 20, 20+len(ip))
	binary.BigEndian.PutUint16(b[0:], ethertypeOf(ip))
	return append(b, ip...)
}

func familyFrame(ip []byte, o orderAppender, v6fam uint32) []byte {
	fam := uint32(2)
	if ip[0]>>4 == 6 {
		fam = v6fam
	}
	return append(o.AppendUint32(nil, fam), ip...)
}

func ethertypeOf(ip []byte) uint16 {
	if ip[0]>>4 == 6 {
		return 0x86dd
	}
	return 0x0800
}

// ngBlock is one pcapng block in byte order o.
func ngBlock(o orderAppender, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := o.AppendUint32(nil, typ)
	b = o.AppendUint32(b, n)
	b = append(b, body...)
	return o.AppendUint32(b, n)
}

// pcapngBytes is a pcapng section in byte order o with one interface of link type link whose
// timestamps tick in units of 10^-tsresol s (0: the default microseconds); packet i is stamped
// i+1 ticks. Packet blocks alternate between enhanced and simple if simple is set.
func pcapngBytes(o orderAppender, link uint16, tsresol byte, simple bool, recs [][]byte) []byte {
	shb := o.AppendUint32(nil, 0x1a2b3c4d)
	shb = o.AppendUint16(shb, 1)
	shb = o.AppendUint16(shb, 0)
	shb = append(shb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b := ngBlock(o, 0x0a0d0d0a, shb)
	idb := o.AppendUint16(nil, link)
	idb = append(idb, 0, 0)
	idb = o.AppendUint32(idb, 65535)
	if tsresol != 0 {
		idb = o.AppendUint16(idb, 9)
		idb = o.AppendUint16(idb, 1)
		idb = append(idb, tsresol, 0, 0, 0)
		idb = append(idb, 0, 0, 0, 0) // opt_endofopt
	}
	b = append(b, ngBlock(o, 1, idb)...)
	b = append(b, ngBlock(o, 4, []byte("name resolution, skipped"))...)
	for i, r := range recs {
		if simple && i%2 == 1 {
			b = append(b, ngBlock(o, 3, append(o.AppendUint32(nil, uint32(len(r))), r...))...)
			continue
		}
		epb := o.AppendUint32(nil, 0)
		epb = o.AppendUint32(epb, 0)
		epb = o.AppendUint32(epb, uint32(i+1))
		epb = o.AppendUint32(epb, uint32(len(r)))
		epb = o.AppendUint32(epb, uint32(len(r)))
		b = append(b, ngBlock(o, 6, append(epb, r...))...)
	}
	return b
}

// readAll reads src to the end and returns the payloads and the capture times.
func readAll(t *testing.T, src *FileSource) ([]string, []time.Time) {
	t.Helper()
	var got []string
	var times []time.Time
	for {
		p, err := src.Read()
		if errors.Is(err, io.EOF) {
			return got, times
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, string(p.Payload))
		times = append(times, src.Time())
	}
}

func TestFileSourceFormats(t *testing.T) {
	k4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte("four")))
	k6 := ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop}, udpHdr(40000, 62201, []byte("six")))
	decoy := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 53, []byte("decoy")))
	frags := frag4(ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte(strings.Repeat("frag", 50)))), 64, 9)
	ips := append([][]byte{k4, decoy, k6}, frags...)
	want := []string{"four", "six", strings.Repeat("frag", 50)}
	frame := func(f func([]byte) []byte) [][]byte {
		var out [][]byte
		for _, p := range ips {
			out = append(out, f(p))
		}
		return append(out, []byte{1, 2, 3}) // a runt record: skipped
	}
	id := func(p []byte) []byte { return p }
	sec := func(i int) time.Time { return time.Unix(int64(i), int64(i)*1000) }
	files := []struct {
		name  string
		data  []byte
		times func(i int) time.Time
	}{
		{"raw", pcapBytes(binary.LittleEndian, false, LinkRaw, frame(id)), sec},
		{"raw dlt 12", pcapBytes(binary.LittleEndian, false, 12, frame(id)), sec},
		{"ethernet big-endian ns", pcapBytes(binary.BigEndian, true, LinkEthernet, frame(func(p []byte) []byte { return ethFrame(p, 0) })),
			func(i int) time.Time { return time.Unix(int64(i), int64(i)) }},
		{"ethernet vlan", pcapBytes(binary.LittleEndian, false, LinkEthernet, frame(func(p []byte) []byte { return ethFrame(p, 2) })), sec},
		{"sll", pcapBytes(binary.LittleEndian, false, LinkSLL, frame(sllFrame)), sec},
		{"sll2", pcapBytes(binary.BigEndian, false, LinkSLL2, frame(sll2Frame)), sec},
		{"null little-endian", pcapBytes(binary.LittleEndian, false, LinkNull, frame(func(p []byte) []byte { return familyFrame(p, binary.LittleEndian, 30) })), sec},
		{"null big-endian", pcapBytes(binary.LittleEndian, false, LinkNull, frame(func(p []byte) []byte { return familyFrame(p, binary.BigEndian, 24) })), sec},
		{"loop", pcapBytes(binary.LittleEndian, false, LinkLoop, frame(func(p []byte) []byte { return familyFrame(p, binary.BigEndian, 24) })), sec},
		{"pcapng ethernet µs", pcapngBytes(binary.LittleEndian, LinkEthernet, 0, false, frame(func(p []byte) []byte { return ethFrame(p, 0) })),
			func(i int) time.Time { return time.Unix(0, int64(i)*1000) }},
		{"pcapng big-endian raw ns, simple blocks", pcapngBytes(binary.BigEndian, LinkRaw, 9, true, frame(id)), nil},
		{"pcapng two sections", append(pcapngBytes(binary.BigEndian, LinkSLL, 6, false, frame(sllFrame)[:2]),
			pcapngBytes(binary.LittleEndian, LinkRaw, 6, false, frame(id)[2:])...), nil},
	}
	dir := t.TempDir()
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(f.name, " ", "_"))
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := NewFileSource(path, "udp dst port 62201")
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got, times := readAll(t, src)
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("got %q, want %q", got, want)
			}
			// The knocks are records 1 and 3, the reassembled datagram completes at the last
			// fragment (record 3+len(frags)).
			if f.times != nil {
				for i, rec := range []int{1, 3, 3 + len(frags)} {
					if !times[i].Equal(f.times(rec)) {
						t.Errorf("packet %d at %v, want %v", i, times[i], f.times(rec))
					}
				}
			}
			st, err := src.Stats()
			if err != nil || st.Received != uint64(len(ips)+1) || st.Rejected != 2 || st.Fragments != uint64(len(frags)) || st.Reassembled != 1 {
				t.Errorf("stats %+v %v: want %d records, the decoy and the runt rejected", st, err, len(ips)+1)
			}
			if _, err := src.Read(); !errors.Is(err, io.EOF) {
				t.Errorf("Read after the end: %v", err)
			}
			if err := src.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := src.Read(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v", err)
			}
			if err := src.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	k4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte("four")))
	good := pcapBytes(binary.LittleEndian, false, LinkRaw, [][]byte{k4})
	shbOnly := ngBlock(binary.LittleEndian, 0x0a0d0d0a, append(binary.LittleEndian.AppendUint32(nil, 0x1a2b3c4d), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(huge[24+8:], 1<<30)
	for _, tc := range []struct {
		name    string
		data    []byte
		filter  string
		openErr error // from NewFileSource
		readErr error // from the first Read
	}{
		{"empty", nil, "", ErrFileFormat, nil},
		{"text", []byte("this is not a capture file"), "", ErrFileFormat, nil},
		{"header cut", good[:10], "", ErrFileFormat, nil},
		{"wifi", pcapBytes(binary.LittleEndian, false, 105, nil), "", ErrFileFormat, nil},
		{"record cut", good[:len(good)-3], "", nil, ErrFileFormat},
		{"record header cut", good[:24+5], "", nil, ErrFileFormat},
		{"huge record", huge, "", nil, ErrFileFormat},
		{"no records", good[:24], "", nil, io.EOF},
		{"bad filter", good, "udp and vlan", ErrFilter, nil},
		{"pcapng no packets", shbOnly, "", nil, io.EOF},
		{"pcapng undeclared interface", append(append([]byte(nil), shbOnly...), ngBlock(binary.LittleEndian, 6, make([]byte, 24))...),
			"", nil, ErrFileFormat},
		{"pcapng block cut", append(append([]byte(nil), shbOnly...), ngBlock(binary.LittleEndian, 6, make([]byte, 24))[:20]...),
			"", nil, ErrFileFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := NewFileSource(path, tc.filter)
			if tc.openErr != nil {
				if !errors.Is(err, tc.openErr) {
					t.Fatalf("NewFileSource: %v, want %v", err, tc.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if _, err := src.Read(); !errors.Is(err, tc.readErr) {
				t.Fatalf("Read: %v, want %v", err, tc.readErr)
			}
		})
	}
	if _, err := NewFileSource(filepath.Join(dir, "missing"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzFileSource: any file content gives packets or errors, never a panic or a hang.
func FuzzFileSource(f *testing.F) {
	k4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte("four")))
	f.Add(pcapBytes(binary.LittleEndian, false, LinkEthernet, [][]byte{ethFrame(k4, 1)}))
	f.Add(pcapBytes(binary.BigEndian, true, LinkSLL2, [][]byte{sll2Frame(k4)}))
	f.Add(pcapngBytes(binary.LittleEndian, LinkRaw, 9, true, [][]byte{k4, k4}))
	flt := mustFilter(f, "udp")
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := newFileSource(io.NopCloser(bytes.NewReader(data)), "fuzz", flt)
		if err != nil {
			if !errors.Is(err, ErrFileFormat) {
				t.Fatalf("error %v does not wrap ErrFileFormat", err)
			}
			return
		}
		defer src.Close()
		for range len(data) + 1 {
			if _, err := src.Read(); err != nil {
				return
			}
		}
		t.Fatal("more packets than bytes")
	})
}

// orderAppender is binary.LittleEndian or binary.BigEndian.
type orderAppender interface {
	binary.ByteOrder
	binary.AppendByteOrder
}
