package tcpmd5_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// A listener that only peers holding the key can reach, and a client that holds it.
func Example() {
	key, err := tcpmd5.ParseKey("hex:636f727265637420686f727365")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	l, err := tcpmd5.Listen(ctx, "tcp", "127.0.0.1:0", tcpmd5.Any(key))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello, signed peer\n")
		c.Close()
	}()

	c, err := tcpmd5.Dial(ctx, "tcp", l.Addr().String(), key)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg, _ := io.ReadAll(c)
	fmt.Print(string(msg))

	// Without the key the SYN gets no answer, so the dial times out.
	d := net.Dialer{Timeout: 300 * time.Millisecond}
	_, err = d.Dial("tcp", l.Addr().String())
	fmt.Println("unsigned dial timed out:", err.(net.Error).Timeout())
	// Output:
	// hello, signed peer
	// unsigned dial timed out: true
}

// Keys can be granted to single hosts and taken back on a live listener.
func ExampleListener_SetKey() {
	l, err := tcpmd5.Listen(context.Background(), "tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	key, _ := tcpmd5.ParseKey("base64:c2VjcmV0LWZvci1vbmUtaG9zdA==")
	host := netip.MustParsePrefix("192.0.2.10/32")
	if err := l.SetKey(host, key); err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Keys()[0].Prefix, l.Keys()[0].Key)
	if err := l.RemoveKey(host); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(l.Keys()), "rules; the port is still closed to everyone")
	// Output:
	// 192.0.2.10/32 tcpmd5.Key(19 bytes)
	// 0 rules; the port is still closed to everyone
}

// A dialer that picks the key per server.
func ExampleDialer() {
	keys := map[netip.Addr]string{netip.MustParseAddr("192.0.2.1"): "key-for-one"}
	d := &tcpmd5.Dialer{
		Dialer: net.Dialer{Timeout: 5 * time.Second},
		KeyFor: func(remote netip.AddrPort) (tcpmd5.Key, error) {
			s, ok := keys[remote.Addr()]
			if !ok {
				return tcpmd5.Key{}, fmt.Errorf("no key for %v", remote.Addr())
			}
			return tcpmd5.ParseKey(s)
		},
	}
	_ = d // d.DialContext(ctx, "tcp", "192.0.2.1:22")
}
