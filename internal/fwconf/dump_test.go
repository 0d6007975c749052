package fwconf

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDumpServerRoundTrip(t *testing.T) {
	conf := "PCAP_INTF vsrv\nFWKNOP_RUN_DIR /tmp/r\nDIGEST_FILE $FWKNOP_RUN_DIR/dc\nSESAME_GUARD_PORTS tcp/22,udp/53\nRULES_CHECK_THRESHOLD 5\n"
	s, _, err := ParseServer("f", []byte(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := DumpServer(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"\nPCAP_INTF vsrv\n", "\nDIGEST_FILE /tmp/r/dc\n",
		"\nFWKNOP_PID_FILE /tmp/r/fwknopd.pid\n", "\nRULES_CHECK_THRESHOLD 5\n", "\nSESAME_REPLAY_MARGIN 60\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "IPFW_") || strings.Contains(out, "PCAP_LOOP_SLEEP") {
		t.Errorf("dump shows defaults sesame does not use:\n%s", out)
	}
	s2, _, err := ParseServer("f", b.Bytes(), Options{})
	if err != nil || s2.String() != s.String() {
		t.Errorf("round trip: %v\n%s\n%s", err, s, s2)
	}
}

func TestDumpAccess(t *testing.T) {
	conf := "SOURCE 10.0.0.0/8, ANY\nKEY fwknoptest\nHMAC_KEY hmactest\nOPEN_PORTS tcp/22\nACCESS_EXPIRE 12/31/2030\n" +
		"SOURCE 10.0.0.1\nKEY_BASE64 AAECAw==\n"
	st, _, err := ParseAccess("a.conf", []byte(conf), Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	var hidden, shown bytes.Buffer
	DumpAccess(&hidden, st, DumpOptions{})
	DumpAccess(&shown, st, DumpOptions{ShowKeys: true})
	h := hidden.String()
	for _, want := range []string{"# stanza #1 (a.conf:1)\n", "SOURCE ANY, 10.0.0.0/8\n",
		"# KEY_BASE64 (hidden, 10 bytes)\n", "# HMAC_KEY_BASE64 (hidden, 8 bytes)\n", "HMAC_DIGEST_TYPE sha256\n",
		"ACCESS_EXPIRE_EPOCH 1924905600\n", "# stanza #2 (a.conf:6)\nSOURCE 10.0.0.1\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("dump lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "Zndrbm9wdGVzdA") {
		t.Errorf("hidden dump shows a key:\n%s", h)
	}
	if !strings.Contains(shown.String(), "KEY_BASE64 Zndrbm9wdGVzdA==\n") {
		t.Errorf("ShowKeys dump lacks the key:\n%s", shown.String())
	}
	st2, _, err := ParseAccess("b.conf", shown.Bytes(), Options{Location: time.UTC})
	if err != nil || len(st2) != 2 || string(st2[0].Keys.HMACKey) != "hmactest" || !st2[0].AccessExpire.Equal(st[0].AccessExpire) {
		t.Errorf("dump does not parse back: %v", err)
	}
}

// TestVariablesComplete checks that every variable of the fwknop notes (§11.1, §11.2) is in
// the table, in the right file.
func TestVariablesComplete(t *testing.T) {
	server := strings.Fields(`VERBOSE PCAP_INTF PCAP_FILE ENABLE_PCAP_PROMISC PCAP_FILTER PCAP_DISPATCH_COUNT
		PCAP_LOOP_SLEEP ENABLE_PCAP_ANY_DIRECTION EXIT_AT_INTF_DOWN MAX_SNIFF_BYTES ENABLE_SPA_PACKET_AGING
		MAX_SPA_PACKET_AGE ENABLE_DIGEST_PERSISTENCE RULES_CHECK_THRESHOLD CMD_EXEC_TIMEOUT ENABLE_SPA_OVER_HTTP
		ALLOW_ANY_USER_AGENT ENABLE_TCP_SERVER TCPSERV_PORT ENABLE_UDP_SERVER UDPSERV_PORT UDPSERV_SELECT_TIMEOUT
		ENABLE_NFQ_CAPTURE NFQ_INTERFACE NFQ_PORT NFQ_TABLE NFQ_CHAIN NFQ_QUEUE_NUMBER NFQ_LOOP_SLEEP LOCALE
		SYSLOG_IDENTITY SYSLOG_FACILITY ENABLE_X_FORWARDED_FOR ENABLE_DESTINATION_RULE ENABLE_RULE_PREPEND
		ENABLE_NAT_DNS GPG_HOME_DIR GPG_EXE SUDO_EXE FIREWALL_EXE FLUSH_IPT_AT_INIT FLUSH_IPT_AT_EXIT
		ENABLE_IPT_FORWARDING ENABLE_IPT_LOCAL_NAT ENABLE_IPT_SNAT SNAT_TRANSLATE_IP ENABLE_IPT_OUTPUT
		IPT_INPUT_ACCESS IPT_OUTPUT_ACCESS IPT_FORWARD_ACCESS IPT_DNAT_ACCESS IPT_SNAT_ACCESS IPT_MASQUERADE_ACCESS
		ENABLE_IPT_COMMENT_CHECK IPFW_START_RULE_NUM IPFW_MAX_RULES IPFW_ACTIVE_SET_NUM IPFW_EXPIRE_SET_NUM
		IPFW_EXPIRE_PURGE_INTERVAL IPFW_ADD_CHECK_STATE FLUSH_IPFW_AT_INIT FLUSH_IPFW_AT_EXIT PF_ANCHOR_NAME
		PF_EXPIRE_INTERVAL FWKNOP_RUN_DIR FWKNOP_CONF_DIR ACCESS_FILE ACCESS_FOLDER FWKNOP_PID_FILE DIGEST_FILE
		DIGEST_DB_FILE AFL_PKT_FILE FAULT_INJECTION_TAG ENABLE_EXTERNAL_CMDS EXTERNAL_CMD_OPEN EXTERNAL_CMD_CLOSE
		EXTERNAL_CMD_ALARM ENABLE_EXT_CMD_PREFIX EXT_CMD_PREFIX SESAME_GUARD_PORTS SESAME_HOST_CHAIN SESAME_REPLAY_MARGIN
		SESAME_MD5_LISTEN SESAME_MD5_UPSTREAM`)
	access := strings.Fields(`SOURCE DESTINATION OPEN_PORTS RESTRICT_PORTS KEY KEY_BASE64 HMAC_KEY HMAC_KEY_BASE64
		HMAC_DIGEST_TYPE ENCRYPTION_MODE FW_ACCESS_TIMEOUT MAX_FW_TIMEOUT ENABLE_CMD_EXEC ENABLE_CMD_SUDO_EXEC
		CMD_SUDO_EXEC_USER CMD_SUDO_EXEC_GROUP CMD_EXEC_USER CMD_EXEC_GROUP CMD_CYCLE_OPEN CMD_CYCLE_CLOSE
		CMD_CYCLE_TIMER REQUIRE_USERNAME REQUIRE_SOURCE_ADDRESS REQUIRE_SOURCE GPG_HOME_DIR GPG_EXE GPG_DECRYPT_ID
		GPG_DECRYPT_PW GPG_ALLOW_NO_PW GPG_REQUIRE_SIG GPG_DISABLE_SIG GPG_IGNORE_SIG_VERIFY_ERROR GPG_REMOTE_ID
		GPG_FINGERPRINT_ID ACCESS_EXPIRE ACCESS_EXPIRE_EPOCH FORCE_NAT FORCE_SNAT FORCE_MASQUERADE DISABLE_DNAT
		FORWARD_ALL SESAME_REQUIRE_SOURCE_MATCH SESAME_MD5`)
	for _, n := range server {
		if v, ok := Variables[n]; !ok || v.Scope&InServer == 0 {
			t.Errorf("%s missing from the fwknopd.conf variables", n)
		}
	}
	for _, n := range access {
		if v, ok := Variables[n]; !ok || v.Scope&InAccess == 0 {
			t.Errorf("%s missing from the access.conf variables", n)
		}
	}
	for n, v := range Variables {
		if v.Support != Supported && v.Note == "" {
			t.Errorf("%s is not Supported but has no Note for its error/warning", n)
		}
		if v.Support == DefaultOnly && v.Default == "" {
			t.Errorf("%s is DefaultOnly without a default", n)
		}
	}
}
