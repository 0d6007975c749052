package fleet

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
)

func itoa(i int) string { return strconv.Itoa(i) }

// grants returns n grants from 192.0.2.x to tcp/22, expiring a minute (plus i ms) after now.
func grants(now time.Time, n int) []ledger.Entry {
	es := make([]ledger.Entry, n)
	for i := range es {
		es[i] = ledger.Entry{Key: ledger.Key{Src: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Proto: 6, Port: 22},
			Expires: unixMilli(now.Add(time.Minute).UnixMilli() + int64(i)), Stanza: 1}
	}
	return es
}

func sameEntries(a, b []ledger.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y ledger.Entry) bool {
		return x.Key == y.Key && x.Expires.Equal(y.Expires) && x.Stanza == y.Stanza
	})
}

// A grant published by A is applied by B with the same absolute expiry; A skips its own.
func TestFanoutAToB(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	a := newGateway(t, shared(t).URL(), group)
	b := newGateway(t, shared(t).URL(), group)
	ra, rb := a.run(t), b.run(t)
	waitReading(t, a, b)

	es := grants(time.Now(), 2)
	es[1].Src = netip.MustParseAddr("2001:db8::7")
	es[1].Proto, es[1].Port = 17, 62201
	start := time.Now()
	if err := a.Publish(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	var got []ledger.Entry
	for len(got) < 2 {
		ev := rb.next(t)
		if ev.kind != "apply" {
			t.Fatalf("B got %s", ev.kind)
		}
		got = append(got, ev.entries...)
	}
	t.Logf("A → B in %v", time.Since(start))
	if !sameEntries(got, es) {
		t.Errorf("B applied %v, want %v", got, es)
	}
	// B publishes; when A has applied that, it has read past its own message.
	back := grants(time.Now(), 3)[2:]
	if err := b.Publish(context.Background(), back); err != nil {
		t.Fatal(err)
	}
	if ev := ra.next(t); !sameEntries(ev.entries, back) {
		t.Errorf("A applied %v, want only B's %v", ev.entries, back)
	}
	// Applied is counted when Apply returns, just after the recorder reported the call.
	eventually(t, "A counts B's grant", func() bool { return a.Status().Applied == 1 })
	if st := a.Status(); st.Published != 2 || st.Applied != 1 || st.Refused != 0 {
		t.Errorf("A status %+v", st)
	}
	live, err := b.Live(context.Background())
	if err != nil || len(live) != 3 {
		t.Errorf("Live = %v, %v; want 3 grants", live, err)
	}
}

// waitReading waits until the gateways' readers have caught up: from then on they read every
// message added to the stream.
func waitReading(t *testing.T, gs ...*gateway) {
	t.Helper()
	for _, g := range gs {
		eventually(t, "catch-up done", func() bool { return g.catchUps.Load() > 0 })
	}
}

// A gateway started after a grant gets it from the live hash; an expired one it skips and
// deletes from the hash.
func TestCatchUpOnStart(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	now := time.Now()
	a := newGateway(t, shared(t).URL(), group)
	long := grants(now, 1)
	long[0].Expires = now.Add(time.Hour).Truncate(time.Millisecond)
	short := grants(now, 2)[1:]
	short[0].Expires = now.Add(10 * time.Minute).Truncate(time.Millisecond)
	if err := a.Publish(context.Background(), append(long, short...)); err != nil {
		t.Fatal(err)
	}
	b := newGateway(t, shared(t).URL(), group, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(30 * time.Minute) }
	})
	rb := b.run(t)
	ev := rb.next(t)
	if ev.kind != "apply" || !sameEntries(ev.entries, long) {
		t.Fatalf("B caught up %s %v, want %v", ev.kind, ev.entries, long)
	}
	c := client(t, shared(t))
	eventually(t, "expired grant pruned", func() bool {
		return !c.HExists(context.Background(), b.live, keyString(short[0].Key)).Val()
	})
	if ttl := c.PTTL(context.Background(), b.live).Val(); ttl <= 50*time.Minute {
		t.Errorf("live hash PTTL %v, want about an hour", ttl)
	}
}

// Revoke and RevokeAll reach the other gateway and empty the live hash; a copy of the revoked
// grant written back into the hash is refused by the gateway that saw the revocation.
func TestRevokePropagates(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	ctx := context.Background()
	a := newGateway(t, shared(t).URL(), group)
	b := newGateway(t, shared(t).URL(), group)
	rb := b.run(t)
	waitReading(t, b)
	es := grants(time.Now(), 3)
	if err := a.Publish(ctx, es); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 3; n += len(rb.next(t).entries) {
	}
	c := client(t, shared(t))
	saved := c.HGet(ctx, a.live, keyString(es[0].Key)).Val()
	if err := a.Revoke(ctx, []ledger.Key{es[0].Key}); err != nil {
		t.Fatal(err)
	}
	if ev := rb.next(t); ev.kind != "revoke" || !slices.Equal(ev.keys, []ledger.Key{es[0].Key}) {
		t.Fatalf("B got %s %v", ev.kind, ev.keys)
	}
	if live, _ := b.Live(ctx); len(live) != 2 {
		t.Errorf("Live after revoke: %v", live)
	}
	c.HSet(ctx, a.live, keyString(es[0].Key), saved) // an attacker restores the revoked grant
	if live, _ := b.Live(ctx); len(live) != 2 {
		t.Errorf("Live shows a revoked grant again: %v", live)
	}
	if err := a.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := rb.next(t); ev.kind != "revoke-all" {
		t.Fatalf("B got %s", ev.kind)
	}
	if n := c.Exists(ctx, a.live).Val(); n != 0 {
		t.Errorf("live hash still exists after revoke-all")
	}
}

// Messages written to Redis without the fleet key, tampered, replayed or stale open nothing:
// each is refused, counted and logged, and a genuine message after them is applied.
func TestForgedMessagesRefused(t *testing.T) {
	needRedis(t)
	group := groupName(t)
	ctx := context.Background()
	a := newGateway(t, shared(t).URL(), group)
	b := newGateway(t, shared(t).URL(), group)
	rb := b.run(t)
	waitReading(t, b)
	refused0 := b.Status().Refused
	c := client(t, shared(t))
	add := func(text string) {
		t.Helper()
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: a.stream, Values: []any{"m", text}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	g := grants(now, 1)[0]
	mk := func(sent time.Time, id string) message {
		return message{Kind: kindGrant, Sent: sent.UnixMilli(), Origin: "gw-c", ID: id, Grant: g}
	}
	// 1. Signed with another key.
	evil := codec{key: make([]byte, 32), group: group}
	m := mk(now, randomHex(16))
	add(evil.seal(&m))
	// 2. A genuine message with its port changed.
	add(strings.Replace(a.codec.seal(&m), " 6 22 1 ", " 6 23 1 ", 1))
	// 3. Signed for another group.
	other := codec{key: a.codec.key, group: group + "x"}
	add(other.seal(&m))
	// 4. Garbage, and an entry without the field.
	add("S1 g hello")
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: a.stream, Values: []any{"x", "y"}}).Err(); err != nil {
		t.Fatal(err)
	}
	// 5. A genuine message signed 10 s before it was written (captured, then replayed).
	old := mk(now.Add(-10*time.Second), randomHex(16))
	add(a.codec.seal(&old))
	// 6. A genuine message (applied), then the same message again (replayed).
	fresh := mk(time.Now(), randomHex(16))
	add(a.codec.seal(&fresh))
	if ev := rb.next(t); ev.kind != "apply" || !sameEntries(ev.entries, []ledger.Entry{g}) {
		t.Fatalf("B got %s %v, want the genuine grant only", ev.kind, ev.entries)
	}
	add(a.codec.seal(&fresh))
	// 7. Forged entry in the live hash (read at catch-up and by Live).
	c.HSet(ctx, a.live, "203.0.113.9/6/22", evil.seal(&m))
	if live, err := b.Live(ctx); err != nil || len(live) != 0 {
		t.Errorf("Live = %v, %v; want nothing", live, err)
	}
	// A genuine message from A: when B has applied it, B has judged everything before it.
	next := grants(time.Now(), 2)[1:]
	if err := a.Publish(ctx, next); err != nil {
		t.Fatal(err)
	}
	if ev := rb.next(t); ev.kind != "apply" || !sameEntries(ev.entries, next) {
		t.Fatalf("B got %s %v, want %v (and nothing forged)", ev.kind, ev.entries, next)
	}
	const want = 7 // 1, 2, 3, 4 (two), 5, 6's copy
	if got := b.Status().Refused - refused0; got != want {
		t.Errorf("refused %d, want %d\n%s", got, want, b.log)
	}
	if n := b.log.count("fleet: message refused"); n != want {
		t.Errorf("%d refusals logged, want %d\n%s", n, want, b.log)
	}
	for _, reason := range []string{"bad message authentication code", "stale", "replayed", "malformed"} {
		if b.log.count(reason) == 0 {
			t.Errorf("no refusal logged for %q\n%s", reason, b.log)
		}
	}
}

// The live hash keeps the later expiry for a key, as the ledger does: a shorter grant
// published after a longer one does not cut it.
func TestLiveKeepsLaterExpiry(t *testing.T) {
	needRedis(t)
	a := newGateway(t, shared(t).URL(), groupName(t))
	ctx := context.Background()
	now := time.Now()
	e := grants(now, 1)
	for _, step := range []struct{ publish, want time.Duration }{
		{time.Hour, time.Hour}, {10 * time.Minute, time.Hour}, {2 * time.Hour, 2 * time.Hour},
	} {
		e[0].Expires = now.Add(step.publish).Truncate(time.Millisecond)
		if err := a.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
		live, err := a.Live(ctx)
		if err != nil || len(live) != 1 || !live[0].Expires.Equal(now.Add(step.want).Truncate(time.Millisecond)) {
			t.Errorf("after publishing +%v: %v %v, want +%v", step.publish, live, err, step.want)
		}
	}
}
