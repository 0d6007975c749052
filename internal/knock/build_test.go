package knock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
)

var fixedNow = time.Unix(1795432440, 0)

func testEnv() Env {
	return Env{
		Now:      func() time.Time { return fixedNow },
		Username: func() string { return "tester" },
		Resolve: func(ctx context.Context, url, ua string) (netip.Addr, error) {
			return netip.MustParseAddr("198.51.100.7"), nil
		},
	}
}

func base() *Options {
	return &Options{Server: "10.99.0.1", AllowIP: "10.99.0.2", Access: "tcp/22", Key: "fwknoptest",
		HMACKey: "hmactest", UseHMAC: true}
}

// build builds o and decodes the packet with the keys a server would hold.
func build(t *testing.T, o *Options) (*Packet, *spa.Message) {
	t.Helper()
	p, err := Build(context.Background(), o, testEnv())
	if err != nil {
		t.Fatalf("Build(%+v): %v", o, err)
	}
	m, err := spa.Decode([]byte(p.Wire), p.Keys)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return p, m
}

func TestBuildFields(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(o *Options)
		check  func(m *spa.Message) string
		port   int
		hmacOn bool
	}{
		{"default", func(o *Options) {}, func(m *spa.Message) string {
			return fmt.Sprint(m.Type, m.Message, m.Username, m.Timestamp, m.DigestType)
		}, DefaultPort, true},
		{"source", func(o *Options) { o.AllowIP, o.SourceIP = "", true }, nil, DefaultPort, true},
		{"resolve", func(o *Options) { o.AllowIP, o.ResolveIP = "", true }, nil, DefaultPort, true},
		{"ipv6", func(o *Options) { o.AllowIP = "fd99::2" }, nil, DefaultPort, true},
		{"timeout", func(o *Options) { o.FWTimeout = 45 }, nil, DefaultPort, true},
		{"nat", func(o *Options) { o.NATAccess = "10.99.0.5:2222" }, nil, DefaultPort, true},
		{"natNoPort", func(o *Options) { o.NATAccess = "internal.example" }, nil, DefaultPort, true},
		{"natLocalPort", func(o *Options) { o.NATLocal, o.NATPort = true, 55000 }, nil, DefaultPort, true},
		{"cmd", func(o *Options) { o.ServerCmd = "echo hi" }, nil, DefaultPort, true},
		{"user", func(o *Options) { o.User = strings.Repeat("u", 48) }, nil, DefaultPort, true},
		{"offset", func(o *Options) { o.TimeOffset = -2 * time.Minute }, nil, DefaultPort, true},
		{"noHMAC", func(o *Options) { o.HMACKey, o.UseHMAC, o.Digest, o.Mode = "", false, spa.SHA3_512, spa.Legacy }, nil, DefaultPort, false},
		{"port", func(o *Options) { o.Port = 4000; o.HMAC = spa.SHA384 }, nil, 4000, true},
	}
	want := map[string]spa.Message{
		"default":      {Type: spa.AccessMsg, Message: "10.99.0.2,tcp/22", Username: "tester", Timestamp: fixedNow.Unix(), DigestType: spa.SHA256},
		"source":       {Type: spa.AccessMsg, Message: "0.0.0.0,tcp/22"},
		"resolve":      {Type: spa.AccessMsg, Message: "198.51.100.7,tcp/22"},
		"ipv6":         {Type: spa.AccessMsg, Message: "fd99::2,tcp/22"},
		"timeout":      {Type: spa.ClientTimeoutAccessMsg, Message: "10.99.0.2,tcp/22", ClientTimeout: 45},
		"nat":          {Type: spa.NATAccessMsg, Message: "10.99.0.2,tcp/22", NATAccess: "10.99.0.5,2222"},
		"natNoPort":    {Type: spa.NATAccessMsg, Message: "10.99.0.2,tcp/22", NATAccess: "internal.example,22"},
		"natLocalPort": {Type: spa.LocalNATAccessMsg, Message: "10.99.0.2,tcp/55000", NATAccess: "10.99.0.1,22"},
		"cmd":          {Type: spa.CommandMsg, Message: "10.99.0.2,echo hi"},
		"user":         {Type: spa.AccessMsg, Username: strings.Repeat("u", 48)},
		"offset":       {Type: spa.AccessMsg, Timestamp: fixedNow.Unix() - 120},
		"noHMAC":       {Type: spa.AccessMsg, DigestType: spa.SHA3_512},
		"port":         {Type: spa.AccessMsg},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base()
			c.mod(o)
			p, m := build(t, o)
			w := want[c.name]
			if m.Type != w.Type {
				t.Errorf("type %v, want %v", m.Type, w.Type)
			}
			if w.Message != "" && m.Message != w.Message {
				t.Errorf("message %q, want %q", m.Message, w.Message)
			}
			if m.NATAccess != w.NATAccess {
				t.Errorf("NAT %q, want %q", m.NATAccess, w.NATAccess)
			}
			if m.ClientTimeout != w.ClientTimeout {
				t.Errorf("timeout %d, want %d", m.ClientTimeout, w.ClientTimeout)
			}
			if w.Username != "" && m.Username != w.Username {
				t.Errorf("user %q, want %q", m.Username, w.Username)
			}
			if w.Timestamp != 0 && m.Timestamp != w.Timestamp {
				t.Errorf("timestamp %d, want %d", m.Timestamp, w.Timestamp)
			}
			if w.DigestType != 0 && m.DigestType != w.DigestType {
				t.Errorf("digest %v, want %v", m.DigestType, w.DigestType)
			}
			if p.DestPort != c.port {
				t.Errorf("port %d, want %d", p.DestPort, c.port)
			}
			if (p.Keys.HMACKey != nil) != c.hmacOn {
				t.Errorf("HMAC on = %v", p.Keys.HMACKey != nil)
			}
			// The server's keys must matter: a wrong HMAC key fails.
			if c.hmacOn {
				k := p.Keys
				k.HMACKey = []byte("wrong")
				if _, err := spa.Decode([]byte(p.Wire), k); !errors.Is(err, spa.ErrHMACMismatch) {
					t.Errorf("decode with a wrong HMAC key: %v", err)
				}
			}
		})
	}
}

func TestBuildRandPort(t *testing.T) {
	o := base()
	o.RandPort = true
	p, m := build(t, o)
	want := randomPort(m.Random)
	if p.DestPort != want || want < 10000 || want > 65534 {
		t.Errorf("port %d, want %d from random %s", p.DestPort, want, m.Random)
	}
	if randomPort("1960397560119686") != 29603 { // observed with fwknop -r
		t.Errorf("randomPort(19603...) = %d, want 29603", randomPort("1960397560119686"))
	}
	o = base()
	o.NATLocal, o.NATRandPort = true, true
	_, m = build(t, o)
	a, err := spa.ParseAccess(m.Message)
	if err != nil || len(a.Ports) != 1 || a.Ports[0].Port < 10000 {
		t.Errorf("nat-rand-port access %q (%v)", m.Message, err)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(o *Options)
		want error
		text string
	}{
		{"noServer", func(o *Options) { o.Server = "" }, ErrNoServer, "-D"},
		{"noAllow", func(o *Options) { o.AllowIP = "" }, ErrNoAllowIP, "-a IP"},
		{"badAllow", func(o *Options) { o.AllowIP = "10.0.0" }, ErrBadOption, "-a"},
		{"noKey", func(o *Options) { o.Key = "" }, ErrNoKey, "--key-rijndael"},
		{"longKey", func(o *Options) { o.Key = strings.Repeat("k", 33) }, ErrKeyLength, "1..32"},
		{"badB64", func(o *Options) { o.Key, o.KeyBase64 = "", "!!" }, ErrBadOption, "base64"},
		{"noHMACKey", func(o *Options) { o.HMACKey = "" }, ErrNoKey, "--key-hmac"},
		{"longHMAC", func(o *Options) { o.HMACKey = strings.Repeat("h", 129) }, ErrKeyLength, "128"},
		{"sameKeys", func(o *Options) { o.HMACKey = o.Key }, ErrBadOption, "identical"},
		{"legacyHMAC", func(o *Options) { o.Mode = spa.Legacy }, ErrBadOption, "legacy"},
		{"longUser", func(o *Options) { o.User = strings.Repeat("u", 49) }, ErrUserTooLong, "48"},
		{"badAccess", func(o *Options) { o.Access = "icmp/8" }, ErrBadOption, "-A"},
		{"natTwoPorts", func(o *Options) { o.Access, o.NATLocal, o.NATPort = "tcp/22,tcp/23", true, 5 }, ErrBadOption, "single"},
		{"natPortAlone", func(o *Options) { o.NATPort = 5 }, ErrBadOption, "-N"},
		{"natBadPort", func(o *Options) { o.NATAccess = "h:0" }, ErrBadOption, "-N"},
		{"natNoAccess", func(o *Options) { o.Access, o.NATAccess = "", "h:1" }, ErrBadOption, "-A"},
		{"resolveFails", func(o *Options) { o.AllowIP, o.ResolveIP = "", true }, ErrNoAllowIP, "-a IP"},
		{"proxyNotHTTP", func(o *Options) { o.HTTPProxy, o.Proto = "p:3128", "udp" }, ErrBadOption, "-H/HTTP_PROXY"},
		{"spoofUDP", func(o *Options) { o.SpoofSource = "10.9.9.9" }, ErrBadOption, "-P udpraw, tcpraw or icmp"},
		{"spoofV6", func(o *Options) { o.SpoofSource, o.Proto = "::1", "udpraw" }, ErrBadOption, "IPv4"},
		{"badProto", func(o *Options) { o.Proto = "sctp" }, ErrBadOption, "tcpraw"},
		{"hmacOnNoKey", func(o *Options) { o.HMACKey = ""; o.HMAC = spa.SHA512 }, ErrNoKey, "--hmac-digest-type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base()
			c.mod(o)
			env := testEnv()
			if c.name == "resolveFails" {
				env.Resolve = func(context.Context, string, string) (netip.Addr, error) { return netip.Addr{}, errors.New("offline") }
			}
			_, err := Build(context.Background(), o, env)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, c.want, c.text)
			}
		})
	}
}

// TestBuildNoPorts checks the "no -A" request: access "IP,none/0", which spa decodes to an
// Access without ports ("the stanza's OPEN_PORTS").
func TestBuildNoPorts(t *testing.T) {
	o := base()
	o.Access = ""
	o.FWTimeout = 60
	p, m := build(t, o)
	if !p.NoPorts || m.Message != "10.99.0.2,"+NoPortsAccess || m.Type != spa.ClientTimeoutAccessMsg {
		t.Errorf("no -A built %q type %v (NoPorts %v)", m.Message, m.Type, p.NoPorts)
	}
	a, err := spa.ParseAccess(m.Message)
	if err != nil || len(a.Ports) != 0 || a.AllowIP.String() != "10.99.0.2" {
		t.Errorf("ParseAccess(%q) = %+v, %v", m.Message, a, err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/keys"
	if err := rcfile.WriteFile(path, []byte("10.99.0.1: filekey\n")); err != nil {
		t.Fatal(err)
	}
	o := base()
	o.Key, o.KeyFile = "", path
	p, _ := build(t, o)
	if string(p.Keys.Key) != "filekey" {
		t.Errorf("key %q", p.Keys.Key)
	}
	o.Server = "10.99.0.9"
	if _, err := Build(context.Background(), o, testEnv()); !errors.Is(err, ErrNoKey) {
		t.Errorf("missing key-file entry: %v", err)
	}
}

func TestStanzaRoundTrip(t *testing.T) {
	o := &Options{Server: "srv.example", Port: 4000, Proto: "tcp", SourcePort: 5555, RandPort: true,
		Access: "tcp/22,udp/53", SourceIP: true, KeyBase64: "a2V5", HMACKeyBase64: "aG1hYw==", UseHMAC: true,
		Digest: spa.SHA512, HMAC: spa.SHA384, Mode: spa.CTR, FWTimeout: 45, NATAccess: "10.0.0.5:22",
		User: "bob", TimeOffset: 2 * time.Minute, UserAgent: "Fwknop/x", ResolveURL: "http://x/",
		SpoofSource: "10.9.9.9", WgetCmd: "/usr/bin/wget", UseWgetUA: true, ResolveHTTPOnly: true, Verbose: 1, NoSaveArgs: true}
	s := o.Stanza("two")
	text := rcfile.Format(s)
	for _, line := range []string{"DIGEST_TYPE                 SHA512\n", "ALLOW_IP                    source\n",
		"TIME_OFFSET                 120\n", "ENCRYPTION_MODE             CTR\n", "USE_HMAC                    Y\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("stanza lacks %q:\n%s", line, text)
		}
	}
	f, err := rcfile.Parse(strings.NewReader(text), "rc")
	if err != nil {
		t.Fatal(err)
	}
	back, warn, err := FromRC(f, "two")
	if err != nil || len(warn) > 0 {
		t.Fatalf("FromRC: %v %v", err, warn)
	}
	if fmt.Sprintf("%+v", *back) != fmt.Sprintf("%+v", *o) {
		t.Errorf("round trip:\n got %+v\nwant %+v", *back, *o)
	}
}

func TestApplyErrors(t *testing.T) {
	for _, text := range []string{"[s]\nGPG_SIGNING_PW_BASE64 !!\n", "[s]\nSPA_SERVER_PORT 70000\n", "[s]\nENCRYPTION_MODE pcbc\n",
		"[s]\nDIGEST_TYPE sha7\n", "[s]\nTIME_OFFSET 5x\n", "[s]\nFOO bar\n", "[s]\nVERBOSE 5\n", "[s]\nVERBOSE -1\n",
		"[s]\nSPA_SERVER_PROTO invalid\n", "[s]\nALLOW_IP 10.0.0\n", "[s]\nKEY_BASE64 !!\n", "[s]\nHMAC_KEY_BASE64 !!\n",
		"[s]\nSPOOF_SOURCE_IP ::1\n", "[s]\nFW_TIMEOUT 65537\n"} {
		f, err := rcfile.Parse(strings.NewReader(text), "rc")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = FromRC(f, "s")
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Line != 2 || pe.Stanza != "s" || !strings.Contains(err.Error(), "parameter error in rc line 2 ([s])") {
			t.Errorf("%q: %v, want a parameter error naming line 2", text, err)
		}
	}
	f, _ := rcfile.Parse(strings.NewReader("[s]\nUSE_GPG N\nGPG_RECIPIENT x\nVERBOSE Y\nKEY abc def\nACCESS tcp/22 # ssh\n"+
		"ALLOW_IP 10.0.0.2;\nSPA_SERVER_PROTO TCPRAW\nRESOLVE_IP_HTTPS Y\nSERVER_RESOLVE_IPV4 Y\n"), "rc")
	o, warn, err := FromRC(f, "s")
	if err != nil || len(warn) != 1 || !strings.Contains(warn[0], "rc line 5: KEY is \"abc\": the text \"def\"") {
		t.Fatalf("warnings %q, err %v", warn, err)
	}
	if o.Key != "abc" || o.Access != "tcp/22" || o.AllowIP != "10.0.0.2" || o.Verbose != 1 || o.Proto != "tcpraw" ||
		!o.ResolveIP || o.Family != 4 {
		t.Errorf("options %+v", *o)
	}
}

// TestAllowIPOrder: an address (-a, or -s) beats -R, as in fwknop; -R is not even tried.
func TestAllowIPOrder(t *testing.T) {
	env := testEnv()
	env.Resolve = func(context.Context, string, string) (netip.Addr, error) {
		t.Error("-R resolved although an address was given")
		return netip.Addr{}, errors.New("no")
	}
	for _, c := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.ResolveIP = true }, "10.99.0.2"},
		{func(o *Options) { o.AllowIP, o.SourceIP, o.ResolveIP = "", true, true }, "0.0.0.0"},
	} {
		o := base()
		c.mod(o)
		p, err := Build(context.Background(), o, env)
		if err != nil || !strings.HasPrefix(p.Msg.Message, c.want+",") {
			t.Errorf("message %v, %v; want allow-IP %s", p, err, c.want)
		}
	}
}

// TestResolveModes checks the URL, User-Agent and program each -R variant uses.
func TestResolveModes(t *testing.T) {
	var got []string
	env := testEnv()
	env.Resolve = func(_ context.Context, url, ua string) (netip.Addr, error) {
		got = append(got, "http "+url+" "+ua)
		return netip.MustParseAddr("198.51.100.7"), nil
	}
	env.Run = func(_ context.Context, name string, args ...string) ([]byte, error) {
		got = append(got, name+" "+strings.Join(args, " "))
		return []byte("198.51.100.8 is you\n"), nil
	}
	for _, c := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) {}, "http https://www.cipherdyne.org/cgi-bin/myip Fwknop/2.6.10"},
		{func(o *Options) { o.UserAgent = "ua" }, "http https://www.cipherdyne.org/cgi-bin/myip ua"},
		{func(o *Options) { o.ResolveHTTPOnly = true }, "http http://www.cipherdyne.org/cgi-bin/myip Fwknop/2.6.10"},
		{func(o *Options) { o.ResolveHTTPOnly, o.ResolveURL = true, "ip.example/x" }, "http http://ip.example/x Fwknop/2.6.10"},
		{func(o *Options) { o.WgetCmd = "/opt/wget" },
			"/opt/wget -U Fwknop/2.6.10 --secure-protocol=auto --quiet -O - https://www.cipherdyne.org/cgi-bin/myip"},
		{func(o *Options) { o.UseWgetUA = true }, "wget --secure-protocol=auto --quiet -O - https://www.cipherdyne.org/cgi-bin/myip"},
	} {
		got = nil
		o := base()
		o.AllowIP, o.ResolveIP = "", true
		c.mod(o)
		if _, err := Build(context.Background(), o, env); err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("ran %q (%v), want %q", got, err, c.want)
		}
	}
	o := base()
	o.AllowIP, o.ResolveIP, o.ResolveHTTPOnly, o.ResolveURL = "", true, true, "https://ip.example/"
	if _, err := Build(context.Background(), o, env); err == nil || !strings.Contains(err.Error(), "https URL") {
		t.Errorf("--resolve-http-only with https: %v", err)
	}
	o.ResolveHTTPOnly, o.ResolveURL = false, "http://ip.example/"
	if p, err := Build(context.Background(), o, env); err != nil || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "not https") {
		t.Errorf("plain http URL: %v %v", p, err)
	}
}

// TestRunClean runs a real program with an empty environment, as fwknop runs wget.
func TestRunClean(t *testing.T) {
	t.Setenv("SESAME_TEST_LEAK", "x")
	out, err := RunClean(context.Background(), "/usr/bin/env")
	if err != nil || len(out) != 0 {
		t.Errorf("env printed %q, %v", out, err)
	}
}

func TestDumpFormat(t *testing.T) {
	o := base()
	o.NATAccess = "10.99.0.5:22"
	p, _ := build(t, o)
	var b bytes.Buffer
	if err := Dump(&b, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, l := range []string{"   Random Value: " + p.Msg.Random + "\n", "   Message Type: 2 (NAT access msg)\n",
		"     Nat Access: 10.99.0.5,22\n", "    Server Auth: <NULL>\n", "      HMAC Type: 3 (SHA256)\n",
		" Final SPA Data: " + p.Wire + "\n", "SPA Data Digest: " + p.Msg.Digest + "\n"} {
		if !strings.Contains(out, l) {
			t.Errorf("dump lacks %q:\n%s", l, out)
		}
	}
}

func TestParseOffset(t *testing.T) {
	for in, want := range map[string]time.Duration{"30": 30 * time.Second, "2m": 2 * time.Minute, "1h": time.Hour, "2d": 48 * time.Hour} {
		if got, err := ParseOffset(in); err != nil || got != want {
			t.Errorf("ParseOffset(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "65537", "-1", "5w"} {
		if _, err := ParseOffset(in); err == nil {
			t.Errorf("ParseOffset(%q) accepted", in)
		}
	}
}

func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"30", "2m", "1h", "2d", "", "x", "65537", "5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseOffset(s)
		if err == nil && (d < 0 || d > 65536*24*time.Hour) {
			t.Fatalf("ParseOffset(%q) = %v", s, d)
		}
	})
}

func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"10.0.0.5:22", "host", "[fd99::1]:80", "fd99::1", ":", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, p := splitHostPort(s)
		if len(h)+len(p) > len(s) {
			t.Fatalf("splitHostPort(%q) = %q, %q", s, h, p)
		}
	})
}

func BenchmarkBuild(b *testing.B) {
	o := base()
	env := testEnv()
	for b.Loop() {
		if _, err := Build(context.Background(), o, env); err != nil {
			b.Fatal(err)
		}
	}
}
