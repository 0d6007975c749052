package firewall

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

const helperEnv = "SESAME_FIREWALL_HELPER"

// TestMain doubles as the helper process of TestIntegrationKilledDaemon: with
// SESAME_FIREWALL_HELPER="ADDR PORT MILLIS" it grants ADDR tcp/PORT in the current namespace,
// prints "granted", and waits to be killed.
func TestMain(m *testing.M) {
	if arg := os.Getenv(helperEnv); arg != "" {
		if err := grantAndHang(arg); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func grantAndHang(arg string) error {
	var addr string
	var port uint16
	var ms int
	if _, err := fmt.Sscan(arg, &addr, &port, &ms); err != nil {
		return fmt.Errorf("bad %s=%q: %w", helperEnv, arg, err)
	}
	fw, err := NewNftables(Config{GuardPorts: []Port{{ProtoTCP, port}}})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := fw.Init(ctx); err != nil {
		return err
	}
	g := Grant{Src: mustAddr(addr), Proto: ProtoTCP, Port: port, Timeout: time.Duration(ms) * time.Millisecond}
	if err := fw.Grant(ctx, g); err != nil {
		return err
	}
	fmt.Println("granted")
	time.Sleep(time.Minute)
	return nil
}
