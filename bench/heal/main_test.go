package heal

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// The "other program" that removes sesame's objects. The keeper ignores transactions sent from
// its own process (they are its own writes), so a removal sent on another socket of the
// benchmark process would never be healed: it has to come from another process. The benchmark
// re-runs its own binary with helperEnv set, inside the namespace ("ip netns exec"); the helper
// opens its netlink socket once and then acts on one byte per command read from stdin, so the
// measured window excludes process start-up (unlike the nft CLI):
//
//	't'  delete table inet $SESAME_HEAL_TABLE (one NFT_MSG_DELTABLE transaction)
//	'p'  find the rule with comment "sesame" in chain inet $SESAME_HEAL_HOST_TABLE $SESAME_HEAL_HOST_CHAIN
//	'r'  delete the rule found by 'p' (one NFT_MSG_DELRULE transaction)
//
// It answers each command with 'k' once the kernel has acknowledged it, or 'e' (the error goes
// to stderr). It exits at the end of stdin.
const helperEnv = "SESAME_HEAL_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := helper(); err != nil {
			fmt.Fprintln(os.Stderr, "heal helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper() error {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil { // open the socket now
		return err
	}
	sesame := &nftables.Table{Name: os.Getenv("SESAME_HEAL_TABLE"), Family: nftables.TableFamilyINet}
	ht := &nftables.Table{Name: os.Getenv("SESAME_HEAL_HOST_TABLE"), Family: nftables.TableFamilyINet}
	hc := &nftables.Chain{Name: os.Getenv("SESAME_HEAL_HOST_CHAIN"), Table: ht}
	in := bufio.NewReader(os.Stdin)
	var hook *nftables.Rule
	for {
		cmd, err := in.ReadByte()
		if err != nil {
			return nil // end of stdin: the benchmark is done
		}
		switch cmd {
		case 't':
			c.DelTable(sesame)
			err = c.Flush()
		case 'p':
			hook, err = findHook(c, hc)
		case 'r':
			if hook == nil {
				err = fmt.Errorf("no hook rule prepared")
				break
			}
			if err = c.DelRule(hook); err == nil {
				err = c.Flush()
			}
			hook = nil
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		reply := []byte{'k'}
		if err != nil {
			fmt.Fprintf(os.Stderr, "heal helper: command %q: %v\n", cmd, err)
			reply[0] = 'e'
		}
		if _, err := os.Stdout.Write(reply); err != nil {
			return err
		}
	}
}

// findHook returns sesame's hook rule in the host chain ch.
func findHook(c *nftables.Conn, ch *nftables.Chain) (*nftables.Rule, error) {
	rules, err := c.GetRules(ch.Table, ch)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if s, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && s == "sesame" {
			return r, nil
		}
	}
	return nil, fmt.Errorf("no rule with comment \"sesame\" in chain inet %s %s", ch.Table.Name, ch.Name)
}
