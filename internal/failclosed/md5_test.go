package failclosed

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/md5grant"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// TestIntegrationMD5NoBypass: a SESAME_MD5 stanza's grant opens only the signed listener. A
// knock for tcp/22 (README's per-user recipe) leaves port 22 shut to the granted address, the
// listener refuses unsigned handshakes from it, and only a connection signed with the key
// derived from the stanza's keys gets through to the service.
func TestIntegrationMD5NoBypass(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	out := outsider(t, srv)
	sesametest.Listen(t, srv, ":22", sesametest.Echo)
	conf := safeConf + "SESAME_MD5_LISTEN 0.0.0.0:2222;\nSESAME_MD5_UPSTREAM 127.0.0.1:22;\n"
	sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: conf,
		Access: stanza(60, "OPEN_PORTS tcp/22", "SESAME_MD5 Y")})
	listener := nstest.SrvIP4 + ":2222"
	key, err := md5grant.Derive(spa.Keys{Key: []byte(testKey), HMACKey: []byte(testHMAC)})
	if err != nil {
		t.Fatal(err)
	}
	signed := func(ns *nstest.NS) bool {
		ok := false
		ns.Do(t, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			if c, err := tcpmd5.Dial(ctx, "tcp", listener, key); err == nil {
				c.Close()
				ok = true
			}
			return nil
		})
		return ok
	}
	if signed(cli) || dial(t, cli, sshAddr, 300*time.Millisecond) {
		t.Fatal("before the knock the client reaches the service")
	}
	knock(t, cli, nstest.SrvIP4, nstest.CliIP4)
	deadline := time.Now().Add(3 * time.Second)
	for !signed(cli) {
		if time.Now().After(deadline) {
			t.Fatal("signed connection to the listener still refused 3 s after the knock")
		}
	}
	for _, tc := range []struct {
		what string
		ns   *nstest.NS
		addr string
	}{
		{"granted address, plain port 22", cli, sshAddr},
		{"granted address, listener unsigned", cli, listener},
		{"outsider, plain port 22", out, outAddr},
		{"outsider, listener unsigned", out, net.JoinHostPort(outSrv, "2222")},
	} {
		if dial(t, tc.ns, tc.addr, 300*time.Millisecond) {
			t.Errorf("%s: connected without a signature", tc.what)
		}
	}
	if signed(out) {
		t.Error("outsider with the client's key connected (the key is bound to the granted address)")
	}
}
