package server

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/sesame-spa/sesame/internal/fwconf"
)

// fwknopdVars are the variables fwknopd 2.6.10's -D lists, in its order (numbered from 0).
var fwknopdVars = []string{
	"CONFIG_FILE", "OVERRIDE_CONFIG", "PCAP_INTF", "PCAP_FILE", "ENABLE_PCAP_PROMISC", "PCAP_FILTER",
	"PCAP_DISPATCH_COUNT", "PCAP_LOOP_SLEEP", "ENABLE_PCAP_ANY_DIRECTION", "EXIT_AT_INTF_DOWN",
	"MAX_SNIFF_BYTES", "ENABLE_SPA_PACKET_AGING", "MAX_SPA_PACKET_AGE", "ENABLE_DIGEST_PERSISTENCE",
	"RULES_CHECK_THRESHOLD", "CMD_EXEC_TIMEOUT", "ENABLE_SPA_OVER_HTTP", "ENABLE_TCP_SERVER",
	"TCPSERV_PORT", "ENABLE_UDP_SERVER", "UDPSERV_PORT", "UDPSERV_SELECT_TIMEOUT", "LOCALE",
	"SYSLOG_IDENTITY", "SYSLOG_FACILITY", "ENABLE_X_FORWARDED_FOR", "ENABLE_DESTINATION_RULE",
	"ENABLE_RULE_PREPEND", "ENABLE_NAT_DNS", "ENABLE_IPT_FORWARDING", "ENABLE_IPT_LOCAL_NAT",
	"ENABLE_IPT_SNAT", "SNAT_TRANSLATE_IP", "ENABLE_IPT_OUTPUT", "FLUSH_IPT_AT_INIT", "FLUSH_IPT_AT_EXIT",
	"IPT_INPUT_ACCESS", "IPT_OUTPUT_ACCESS", "IPT_FORWARD_ACCESS", "IPT_DNAT_ACCESS", "IPT_SNAT_ACCESS",
	"IPT_MASQUERADE_ACCESS", "ENABLE_IPT_COMMENT_CHECK", "FWKNOP_RUN_DIR", "FWKNOP_CONF_DIR",
	"ACCESS_FILE", "ACCESS_FOLDER", "FWKNOP_PID_FILE", "DIGEST_FILE", "GPG_HOME_DIR", "GPG_EXE",
	"SUDO_EXE", "FIREWALL_EXE", "VERBOSE", "FAULT_INJECTION_TAG",
}

const notSet = "<not set>"

// dumpFwknopd writes the -D text in fwknopd 2.6.10's layout: "Current fwknopd config
// settings:" with one "%3d. %-28s =  '%s'" line per variable in fwknopd's order, then "Current
// fwknopd access settings:" with a "SOURCE (N):  ..." block per stanza, its values right-aligned
// ("%27s:  %s"), keys hidden as fwknopd hides them. Values are sesame's effective ones (its
// defaults differ where the README says so). sesame's own variables follow each part, in the
// same layout. Unlike fwknopd, OVERRIDE_CONFIG shows the -O list (fwknopd shows the config
// file when there is none).
func dumpFwknopd(w io.Writer, o *options, sc *fwconf.Server, s *settings) {
	fmt.Fprintln(w, "Current fwknopd config settings:")
	n := 0
	line := func(name, v string) {
		if v == "" {
			v = notSet
		}
		fmt.Fprintf(w, "%3d. %-28s =  '%s'\n", n, name, v)
		n++
	}
	for _, name := range fwknopdVars {
		line(name, serverValue(o, sc, s, name))
	}
	var own []string
	for name, v := range fwconf.Variables {
		if strings.HasPrefix(name, "SESAME_") && v.Scope&fwconf.InServer != 0 {
			own = append(own, name)
		}
	}
	slices.Sort(own)
	for _, name := range own {
		line(name, serverValue(o, sc, s, name))
	}
	fmt.Fprintln(w, "\nCurrent fwknopd access settings:")
	for _, st := range s.policy.Stanzas {
		dumpStanza(w, &st)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

// serverValue is a fwknopd.conf variable's effective value ("" = not set).
func serverValue(o *options, sc *fwconf.Server, s *settings, name string) string {
	switch name {
	case "CONFIG_FILE":
		return o.configFile
	case "OVERRIDE_CONFIG":
		return o.overrideConfig
	case "LOCALE":
		return s.locale
	case "VERBOSE":
		if o.verbose > 0 {
			return strconv.Itoa(o.verbose)
		}
		return ""
	case "FWKNOP_PID_FILE":
		return sc.PIDFile
	case "DIGEST_FILE":
		return sc.DigestFile
	case "SESAME_FLEET_REDIS":
		return fwconf.RedactURL(sc.Raw[name])
	case "ENABLE_PCAP_ANY_DIRECTION":
		return sc.Raw[name] // fwknopd shows it only when set
	}
	if v, ok := sc.Raw[name]; ok {
		return v
	}
	return fwconf.Variables[name].Default
}

// dumpStanza writes one stanza in fwknopd's -D layout.
func dumpStanza(w io.Writer, st *fwconf.Stanza) {
	fmt.Fprintf(w, "SOURCE (%d):  %s\n%s\n", st.Num, st.SourceText, strings.Repeat("=", 62))
	line := func(name, v string) {
		if v == "" {
			v = notSet
		}
		fmt.Fprintf(w, "%27s:  %s\n", name, v)
	}
	raw := func(name string) string { return st.Raw[name] }
	hidden := func(name string) string {
		if _, ok := st.Raw[name]; ok {
			return "<see the access.conf file>"
		}
		return ""
	}
	yes := func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	}
	rawYes := func(name string) string {
		v := strings.ToUpper(raw(name))
		return yes(strings.HasPrefix(v, "Y"))
	}
	hmacType := 0
	if len(st.Keys.HMACKey) > 0 {
		hmacType = int(st.Keys.HMACType)
		if hmacType == 0 {
			hmacType = 3 // SHA256, fwknopd's default
		}
	}
	line("DESTINATION", raw("DESTINATION"))
	line("OPEN_PORTS", raw("OPEN_PORTS"))
	line("RESTRICT_PORTS", raw("RESTRICT_PORTS"))
	keyShown := func(k []byte) string {
		if len(k) > 0 {
			return "<see the access.conf file>"
		}
		return ""
	}
	line("KEY", keyShown(st.Keys.Key))
	line("KEY_BASE64", hidden("KEY_BASE64"))
	line("KEY_LEN", strconv.Itoa(len(st.Keys.Key)))
	line("HMAC_KEY", keyShown(st.Keys.HMACKey))
	line("HMAC_KEY_BASE64", hidden("HMAC_KEY_BASE64"))
	line("HMAC_KEY_LEN", strconv.Itoa(len(st.Keys.HMACKey)))
	line("HMAC_DIGEST_TYPE", strconv.Itoa(hmacType))
	line("FW_ACCESS_TIMEOUT", strconv.Itoa(int(st.FWAccessTimeout.Seconds())))
	line("MAX_FW_TIMEOUT", strconv.Itoa(int(st.MaxFWTimeout.Seconds())))
	line("ENABLE_CMD_EXEC", rawYes("ENABLE_CMD_EXEC"))
	line("ENABLE_CMD_SUDO_EXEC", rawYes("ENABLE_CMD_SUDO_EXEC"))
	for _, name := range []string{"CMD_SUDO_EXEC_USER", "CMD_SUDO_EXEC_GROUP", "CMD_EXEC_USER", "CMD_EXEC_GROUP",
		"CMD_CYCLE_OPEN", "CMD_CYCLE_CLOSE"} {
		line(name, raw(name))
	}
	line("CMD_CYCLE_TIMER", strconv.Itoa(int(st.Cmd.CycleTimer.Seconds())))
	line("REQUIRE_USERNAME", st.RequireUsername)
	line("REQUIRE_SOURCE_ADDRESS", yes(st.RequireSourceAddress))
	line("FORCE_NAT (ip)", "")
	line("FORCE_NAT (proto)", "")
	line("FORCE_NAT (port)", "0")
	line("FORCE_SNAT (ip)", "")
	line("FORCE_MASQUERADE", rawYes("FORCE_MASQUERADE"))
	line("DISABLE_DNAT", rawYes("DISABLE_DNAT"))
	line("FORWARD_ALL", rawYes("FORWARD_ALL"))
	expire := ""
	if !st.AccessExpire.IsZero() {
		expire = st.AccessExpire.Local().Format("Mon Jan _2 15:04:05 2006") // ctime(3)
	}
	line("ACCESS_EXPIRE", expire)
	line("GPG_HOME_DIR", raw("GPG_HOME_DIR"))
	line("GPG_EXE", raw("GPG_EXE"))
	line("GPG_DECRYPT_ID", raw("GPG_DECRYPT_ID"))
	line("GPG_DECRYPT_PW", hidden("GPG_DECRYPT_PW"))
	line("GPG_REQUIRE_SIG", yes(st.GPG.RequireSig))
	line("GPG_IGNORE_SIG_VERIFY_ERROR", yes(st.GPG.IgnoreSigVerifyError))
	line("GPG_REMOTE_ID", raw("GPG_REMOTE_ID"))
	line("GPG_FINGERPRINT_ID", raw("GPG_FINGERPRINT_ID"))
	line("SESAME_REQUIRE_SOURCE_MATCH", yes(st.SourceMustMatch()))
	line("SESAME_MD5", yes(st.MD5))
}
