package connect

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/sesame-spa/sesame/internal/md5grant"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// knockDialer knocks with an rc stanza before every connection and signs it with the key
// derived from the stanza's keys, retrying until the server's grant is live.
type knockDialer struct {
	knocker *md5grant.Knocker
	stanza  string
	timeout time.Duration // for the knock and all the attempts together
}

func (k *knockDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	key, _, err := k.knocker.Knock(ctx, k.stanza)
	if err != nil {
		return nil, err
	}
	c, err := md5grant.DialRetry(ctx, &tcpmd5.Dialer{Key: key}, network, addr)
	if err != nil {
		return nil, fmt.Errorf("after knocking with stanza [%s]: %w", k.stanza, err)
	}
	return c, nil
}
