package fleet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/replay"
)

// Redis killed: policy Closed refuses every knock with an error; policy Local answers from
// the local cache (refusing its own replays, also of digests Redis accepted before), counts
// and logs; publishes wait. Redis restarted on the same port: both recover by themselves,
// the digests accepted locally reach Redis, the kept grant reaches the other gateway.
func TestRedisDownPolicies(t *testing.T) {
	r := newRedis(t)
	group := groupName(t)
	ctx := context.Background()
	closed := newGateway(t, r.URL(), group, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	local := newGateway(t, r.URL(), group, func(c *Config) {
		c.Timeout = 200 * time.Millisecond
		c.OnError, c.Local = Local, replay.NewMemory(time.Now)
	})
	rl := local.run(t)
	rc := closed.run(t)
	waitReading(t, local, closed)
	now := time.Now()
	if fresh, err := local.CheckAndAdd(ctx, "before-outage", now, time.Minute); err != nil || !fresh {
		t.Fatalf("before the outage: %v %v", fresh, err)
	}

	r.Stop()
	if _, err := closed.CheckAndAdd(ctx, "during-outage", now, time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed during the outage: %v, want ErrUnavailable", err)
	}
	if st := closed.Status(); st.Connected || st.LastError == "" || st.LocalFallbacks != 0 {
		t.Errorf("closed status %+v", st)
	}
	if fresh, err := local.CheckAndAdd(ctx, "during-outage", now, time.Minute); err != nil || !fresh {
		t.Fatalf("local during the outage: %v %v, want fresh from the local cache", fresh, err)
	}
	for _, d := range []string{"during-outage", "before-outage"} {
		if fresh, err := local.CheckAndAdd(ctx, d, now, time.Minute); err != nil || fresh {
			t.Errorf("local, replay of %s during the outage: %v %v, want a replay", d, fresh, err)
		}
	}
	if st := local.Status(); st.LocalFallbacks != 3 || st.Connected {
		t.Errorf("local status %+v, want 3 fallbacks", st)
	}
	if n := local.log.count("fall back to the local cache"); n != 1 {
		t.Errorf("fallback logged %d times, want once\n%s", n, local.log)
	}
	kept := grants(time.Now(), 1)
	if err := local.Publish(ctx, kept); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("publish during the outage: %v", err)
	}

	r.Restart(t) // same port, empty
	eventually(t, "closed recovers", func() bool {
		fresh, err := closed.CheckAndAdd(ctx, "after-outage", time.Now(), time.Minute)
		return err == nil && fresh
	})
	eventually(t, "locally accepted digest written to redis", func() bool {
		seen, err := closed.Seen(ctx, "during-outage")
		return err == nil && seen
	})
	if fresh, err := closed.CheckAndAdd(ctx, "during-outage", time.Now(), time.Minute); err != nil || fresh {
		t.Errorf("replay on the other gateway of a digest accepted during the outage: %v %v", fresh, err)
	}
	if ev := rc.next(t); ev.kind != "apply" || !sameEntries(ev.entries, kept) {
		t.Errorf("closed applied %s %v, want the grant kept during the outage %v", ev.kind, ev.entries, kept)
	}
	if fresh, err := local.CheckAndAdd(ctx, "after-outage", time.Now(), time.Minute); err != nil || fresh {
		t.Errorf("local after recovery: %v %v, want a replay from redis", fresh, err)
	}
	if st := local.Status(); !st.Connected || st.LocalFallbacks != 3 {
		t.Errorf("local status after recovery %+v", st)
	}
	if local.log.count("redis reachable again") == 0 || closed.log.count("redis unreachable") == 0 {
		t.Errorf("outage not logged:\n%s\n%s", local.log, closed.log)
	}
	select {
	case ev := <-rl.ch:
		t.Errorf("local applied %s %v: its own grant", ev.kind, ev.entries)
	default:
	}
}
