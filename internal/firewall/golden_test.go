package firewall

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

var update = flag.Bool("update", false, "re-record testdata/nft-*.hex by running nft under strace in a namespace")

// Golden bytes of the messages sesame builds by hand (the ones google/nftables cannot send),
// each with the nft command it equals. The messages google/nftables builds are checked by the
// namespace tests against the kernel.

// goldenRefresh is expiringMsg for one grant:
//
//	add element inet sesame grants4 { 192.0.2.7 . tcp . 22 timeout 1500ms expires 1500ms }
const goldenRefresh = "" +
	"01000000" + // nfgenmsg: family NFPROTO_INET, version 0, resource id 0
	"0b000100" + "73657361 6d650000" + // NFTA_SET_ELEM_LIST_TABLE "sesame\0" (padded)
	"0c000200" + "6772616e 74733400" + // NFTA_SET_ELEM_LIST_SET "grants4\0"
	"34000380" + // NFTA_SET_ELEM_LIST_ELEMENTS (nested)
	"30000180" + // element 1 (nested)
	"14000180" + "10000100" + // NFTA_SET_ELEM_KEY (nested) > NFTA_DATA_VALUE, 12 bytes:
	"c0000207 06000000 00160000" + // 192.0.2.7, tcp (6) in a 4-byte register, port 22 big endian
	"0c000400" + "00000000 000005dc" + // NFTA_SET_ELEM_TIMEOUT 1500 ms, big-endian u64
	"0c000500" + "00000000 000005dc" // NFTA_SET_ELEM_EXPIRATION 1500 ms

// goldenTable is newTableMsg with OWNER|PERSIST:
//
//	add table inet sesame { flags owner, persist; }
const goldenTable = "" +
	"01000000" + // nfgenmsg: family NFPROTO_INET
	"0b000100" + "73657361 6d650000" + // NFTA_TABLE_NAME "sesame\0"
	"08000200" + "00000006" // NFTA_TABLE_FLAGS NFT_TABLE_F_OWNER|NFT_TABLE_F_PERSIST, big-endian u32

func goldenBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refreshGrant is the grant of the golden refresh message.
var refreshGrant = Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: 1500 * time.Millisecond}

func refreshMsg(t *testing.T) netlink.Message {
	t.Helper()
	set := &nftables.Set{Table: &nftables.Table{Name: DefaultTableName, Family: nftables.TableFamilyINet}, Name: setGrants4}
	m, err := expiringMsg(set, []nftables.SetElement{{Key: grantKey(refreshGrant), Timeout: refreshGrant.Timeout}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGoldenMessages(t *testing.T) {
	m := refreshMsg(t)
	if want := goldenBytes(t, goldenRefresh); !bytes.Equal(m.Data, want) {
		t.Errorf("refresh message\n got %x\nwant %x", m.Data, want)
	}
	if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM) ||
		m.Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create {
		t.Errorf("refresh header %+v", m.Header)
	}
	tm, err := newTableMsg(&nftables.Table{Name: DefaultTableName, Family: nftables.TableFamilyINet}, tableFlagOwner|tableFlagPersist)
	if err != nil {
		t.Fatal(err)
	}
	if want := goldenBytes(t, goldenTable); !bytes.Equal(tm.Data, want) {
		t.Errorf("table message\n got %x\nwant %x", tm.Data, want)
	}
	if tm.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE) ||
		tm.Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create {
		t.Errorf("table header %+v", tm.Header)
	}
}

// nftRefreshFixture is what nft sends for the refresh message's command: the NEWSETELEM message
// (header included) as hex, recorded with -update.
const nftRefreshFixture = "testdata/nft-add-element.hex"

// TestRefreshMatchesNft: the refresh message says what nft itself sends for the same command,
// attribute for attribute (order aside; nft also names the set by its transaction id,
// NFTA_SET_ELEM_LIST_SET_ID, which a set that already exists does not need).
func TestRefreshMatchesNft(t *testing.T) {
	if *update {
		recordNftRefresh(t)
	}
	raw, err := os.ReadFile(nftRefreshFixture)
	if err != nil {
		t.Fatalf("%v (record it with go test -run TestRefreshMatchesNft -update)", err)
	}
	var hexText strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			hexText.WriteString(line)
		}
	}
	b := goldenBytes(t, hexText.String())
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fixture: %d messages, %v", len(msgs), err)
	}
	nft := msgs[0]
	ours := refreshMsg(t)
	if netlink.HeaderType(nft.Header.Type) != ours.Header.Type || nft.Header.Flags&unix.NLM_F_CREATE == 0 {
		t.Fatalf("nft sent type %#x flags %#x", nft.Header.Type, nft.Header.Flags)
	}
	if !bytes.Equal(nft.Data[:4], ours.Data[:4]) {
		t.Fatalf("nfgenmsg: nft %x, sesame %x", nft.Data[:4], ours.Data[:4])
	}
	got, want := attrTree(t, ours.Data[4:], 0), attrTree(t, nft.Data[4:], 0)
	want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("%d=", unix.NFTA_SET_ELEM_LIST_SET_ID)) })
	if !slices.Equal(got, want) {
		t.Fatalf("attributes differ from nft's:\nsesame %q\nnft    %q", got, want)
	}
}

// attrTree flattens netlink attributes into sorted "type=hex" strings, nested ones as
// "type{...}" with their children flattened the same way (up to depth 4).
func attrTree(t *testing.T, b []byte, depth int) []string {
	t.Helper()
	as, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatalf("attributes %x: %v", b, err)
	}
	var out []string
	for _, a := range as {
		typ := a.Type &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if a.Type&unix.NLA_F_NESTED != 0 && depth < 4 {
			out = append(out, fmt.Sprintf("%d{%s}", typ, strings.Join(attrTree(t, a.Data, depth+1), ",")))
			continue
		}
		out = append(out, fmt.Sprintf("%d=%x", typ, a.Data))
	}
	slices.Sort(out)
	return out
}

// recordNftRefresh runs the refresh message's command with nft under strace in a new namespace
// and writes the NEWSETELEM message nft sent to the fixture.
func recordNftRefresh(t *testing.T) {
	nstest.Require(t, "nft", "strace")
	ns := nstest.New(t)
	conf := filepath.Join(t.TempDir(), "set.nft")
	if err := os.WriteFile(conf, []byte("table inet sesame {\n\tset grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", conf)
	trace := filepath.Join(t.TempDir(), "strace.out")
	const cmd = "add element inet sesame grants4 { 192.0.2.7 . tcp . 22 timeout 1500ms expires 1500ms }"
	ns.Run(t, "strace", "-qq", "-e", "trace=sendmsg", "-e", "write=all", "-o", trace, "nft", cmd)
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// strace prints each sendmsg's data as " | 00000  14 00 00 00 ...  ascii |" lines.
	var calls [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " | ") {
			calls = append(calls, nil)
			continue
		}
		fields := strings.Fields(line[3:])
		if len(calls) == 0 {
			calls = append(calls, nil)
		}
		for _, h := range fields[1:min(len(fields), 17)] {
			if len(h) != 2 {
				break
			}
			v, err := hex.DecodeString(h)
			if err != nil {
				break
			}
			calls[len(calls)-1] = append(calls[len(calls)-1], v...)
		}
	}
	var found []byte
	for _, c := range calls {
		msgs, err := syscall.ParseNetlinkMessage(c)
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM {
				h := make([]byte, unix.NLMSG_HDRLEN) // host byte order, as netlink has it
				binary.NativeEndian.PutUint32(h[0:], m.Header.Len)
				binary.NativeEndian.PutUint16(h[4:], m.Header.Type)
				binary.NativeEndian.PutUint16(h[6:], m.Header.Flags)
				binary.NativeEndian.PutUint32(h[8:], m.Header.Seq)
				binary.NativeEndian.PutUint32(h[12:], m.Header.Pid)
				found = append(h, m.Data...)
			}
		}
	}
	if found == nil {
		t.Fatalf("no NEWSETELEM in nft's sendmsg calls (%d calls traced)", len(calls))
	}
	version := strings.TrimSpace(ns.Run(t, "nft", "--version"))
	var out strings.Builder
	fmt.Fprintf(&out, "# nft %s\n# recorded from %s under strace (go test ./internal/firewall -run TestRefreshMatchesNft -update)\n", cmd, version)
	for i := 0; i < len(found); i += 16 {
		out.WriteString(hex.EncodeToString(found[i:min(i+16, len(found))]) + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(nftRefreshFixture), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nftRefreshFixture, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
