package fleet

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/replay"
)

// The Fleet is a replay.Cache, so the server can use it in place of the local cache.
var _ replay.Cache = (*Fleet)(nil)

const digest1 = "Cnq1ZcxUbI6j1nfrfnNR1wH0Y1iV1B2D3E4F5G6H7I8" // 43 characters, as spa.ReplayDigest makes

// A digest accepted by one gateway is a replay on the other, and of many concurrent checks on
// both exactly one is fresh.
func TestReplayAcceptedOnceAcrossGateways(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	a := newGateway(t, shared(t).URL(), group)
	b := newGateway(t, shared(t).URL(), group)
	ctx := context.Background()
	now := time.Now()
	if fresh, err := a.CheckAndAdd(ctx, digest1, now, time.Minute); err != nil || !fresh {
		t.Fatalf("A first: fresh=%v err=%v, want fresh", fresh, err)
	}
	for name, g := range map[string]*gateway{"B": b, "A again": a} {
		if fresh, err := g.CheckAndAdd(ctx, digest1, now, time.Minute); err != nil || fresh {
			t.Errorf("%s: fresh=%v err=%v, want a replay", name, fresh, err)
		}
	}
	if seen, err := b.Seen(ctx, digest1); err != nil || !seen {
		t.Errorf("B.Seen = %v, %v", seen, err)
	}

	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Go(func() {
			ok, err := g.CheckAndAdd(ctx, "concurrent-digest", now, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Errorf("%d of 32 concurrent checks were fresh, want 1", fresh.Load())
	}
}

// A gateway restarted (a new Fleet) still refuses what it accepted before; the Redis key
// expires after keep and does not contain the digest.
func TestReplayRefusedAfterRestart(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	ctx := context.Background()
	a := newGateway(t, shared(t).URL(), group)
	if fresh, err := a.CheckAndAdd(ctx, digest1, time.Now(), 90*time.Second); err != nil || !fresh {
		t.Fatalf("first: %v %v", fresh, err)
	}
	a.Close()
	a2 := newGateway(t, shared(t).URL(), group)
	if fresh, err := a2.CheckAndAdd(ctx, digest1, time.Now(), 90*time.Second); err != nil || fresh {
		t.Fatalf("after restart: fresh=%v err=%v, want a replay", fresh, err)
	}
	c := client(t, shared(t))
	keys, err := c.Keys(ctx, "sesame:{"+group+"}:replay:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("replay keys %v, %v", keys, err)
	}
	if strings.Contains(keys[0], digest1) || keys[0] != a2.replayName(digest1) {
		t.Errorf("key %q", keys[0])
	}
	if ttl := c.PTTL(ctx, keys[0]).Val(); ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Errorf("PTTL %v, want about 90 s", ttl)
	}
	// Another group (or another fleet key) does not share digests.
	other := newGateway(t, shared(t).URL(), group+"x")
	if fresh, err := other.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || !fresh {
		t.Errorf("other group: fresh=%v err=%v, want fresh", fresh, err)
	}
}

func TestReplayBadDigest(t *testing.T) {
	needRedis(t)
	a := newGateway(t, shared(t).URL(), groupName(t))
	for _, d := range []string{"", "a b", strings.Repeat("x", 65), "tab\there"} {
		if _, err := a.CheckAndAdd(context.Background(), d, time.Now(), time.Minute); !errors.Is(err, errBadDigest) {
			t.Errorf("%q: %v", d, err)
		}
	}
}

// WaitReplicas: with a replica the checks pass; with none, each write fails (and Closed
// refuses).
func TestReplayWaitReplicas(t *testing.T) {
	master := newRedis(t, "--repl-diskless-sync-delay", "0")
	replica := newRedis(t, "--replicaof", "127.0.0.1", itoa(master.Port))
	mc := client(t, master)
	eventually(t, "replica online", func() bool {
		info := mc.Info(context.Background(), "replication").Val()
		return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})
	_ = replica
	group := groupName(t)
	ctx := context.Background()
	a := newGateway(t, master.URL(), group, func(c *Config) { c.WaitReplicas = 1 })
	if fresh, err := a.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); err != nil || !fresh {
		t.Fatalf("with a replica: %v %v", fresh, err)
	}
	if err := a.Publish(ctx, grants(time.Now(), 1)); err != nil {
		t.Fatalf("publish with a replica: %v", err)
	}
	lone := newRedis(t)
	b := newGateway(t, lone.URL(), group, func(c *Config) { c.WaitReplicas = 1; c.Timeout = 100 * time.Millisecond })
	if _, err := b.CheckAndAdd(ctx, digest1, time.Now(), time.Minute); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("without replicas: %v, want a WAIT failure", err)
	}
}
