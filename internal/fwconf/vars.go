package fwconf

// Scope says which file a variable belongs in.
type Scope uint8

// Scopes.
const (
	InServer Scope = 1 << iota // fwknopd.conf
	InAccess                   // access.conf (a SOURCE stanza)
)

// Support says what sesame does with a variable.
type Support uint8

const (
	// Supported: sesame implements it.
	Supported Support = iota
	// NoEffect: accepted, but sesame has no use for it (a warning when set to anything but
	// fwknopd's default).
	NoEffect
	// DefaultOnly: accepted only with fwknopd's default value (compared case-insensitively on
	// the first letter for Y/N variables, field by field for chain specs); anything else is a
	// startup error.
	DefaultOnly
	// Unsupported: any use is a startup error.
	Unsupported
)

// Variable describes one configuration variable.
type Variable struct {
	Scope   Scope
	Support Support
	Default string // fwknopd 2.6.10's default on Debian, as `fwknopd -D` shows it; "" = not set
	Note    string // why it is not supported, or what to use instead
}

// Variables is the one table of every variable fwknopd 2.6 knows in fwknopd.conf and
// access.conf, plus sesame's own SESAME_* variables. The server flips entries to Supported as
// features land; parsing consults only this table to decide between accepting, warning and
// refusing.
var Variables = map[string]Variable{
	// fwknopd.conf: capture.
	"PCAP_INTF":                 {InServer, Supported, "eth0", ""},
	"PCAP_FILE":                 {InServer, Supported, "", "sesame decides the file's packets at their capture time and grants nothing (as with -t)"},
	"ENABLE_PCAP_PROMISC":       {InServer, NoEffect, "N", "sesame does not put the interface in promiscuous mode"},
	"PCAP_FILTER":               {InServer, Supported, "udp port 62201", ""},
	"PCAP_DISPATCH_COUNT":       {InServer, NoEffect, "100", "sesame has no pcap dispatch loop"},
	"PCAP_LOOP_SLEEP":           {InServer, NoEffect, "100000", "sesame has no pcap loop sleep"},
	"ENABLE_PCAP_ANY_DIRECTION": {InServer, Supported, "N", ""},
	"EXIT_AT_INTF_DOWN":         {InServer, Supported, "N", "sesame keeps running and reattaches when the interface returns; Y exits as fwknopd (default Y there) does, leaving guard and grants in place"},
	"MAX_SNIFF_BYTES":           {InServer, NoEffect, "1500", "sesame reads whole packets"},
	"ENABLE_SPA_PACKET_AGING":   {InServer, Supported, "Y", ""},
	"MAX_SPA_PACKET_AGE":        {InServer, Supported, "120", ""},
	"ENABLE_DIGEST_PERSISTENCE": {InServer, Supported, "Y", ""},
	"RULES_CHECK_THRESHOLD":     {InServer, NoEffect, "20", "grants expire in the kernel"},
	"CMD_EXEC_TIMEOUT":          {InServer, NoEffect, "", "unused by fwknopd 2.6 too"},
	"ENABLE_SPA_OVER_HTTP":      {InServer, Supported, "N", ""},
	"ALLOW_ANY_USER_AGENT":      {InServer, Supported, "N", "fwknop 2.6.11's; 2.6.10 ignores it as unknown"},
	"ENABLE_TCP_SERVER":         {InServer, Supported, "N", ""},
	"TCPSERV_PORT":              {InServer, Supported, "62201", ""},
	"ENABLE_UDP_SERVER":         {InServer, Supported, "N", ""},
	"UDPSERV_PORT":              {InServer, Supported, "62201", ""},
	"UDPSERV_SELECT_TIMEOUT":    {InServer, NoEffect, "500000", "sesame does not poll"},
	"ENABLE_NFQ_CAPTURE":        {InServer, NoEffect, "N", "NFQUEUE builds only (Debian's fwknopd ignores it too); sesame captures on PCAP_INTF"},
	"NFQ_INTERFACE":             {InServer, NoEffect, "", "NFQUEUE capture is not implemented"},
	"NFQ_PORT":                  {InServer, NoEffect, "62201", "NFQUEUE capture is not implemented"},
	"NFQ_TABLE":                 {InServer, NoEffect, "mangle", "NFQUEUE capture is not implemented"},
	"NFQ_CHAIN":                 {InServer, NoEffect, "FWKNOP_NFQ", "NFQUEUE capture is not implemented"},
	"NFQ_QUEUE_NUMBER":          {InServer, NoEffect, "1", "NFQUEUE capture is not implemented"},
	"NFQ_LOOP_SLEEP":            {InServer, NoEffect, "500000", "NFQUEUE capture is not implemented"},

	// fwknopd.conf: process and logging.
	"CONFIG_FILE":             {InServer, NoEffect, "", "set by the -c option"},
	"OVERRIDE_CONFIG":         {InServer, NoEffect, "", "set by the -O option"},
	"LOCALE":                  {InServer, NoEffect, "", "sesame does not change its locale"},
	"SYSLOG_IDENTITY":         {InServer, NoEffect, "fwknopd", "sesame logs to stderr/journald"},
	"SYSLOG_FACILITY":         {InServer, NoEffect, "LOG_DAEMON", "sesame logs to stderr/journald"},
	"VERBOSE":                 {InServer, NoEffect, "", "sesame's log level is set by -v"},
	"ENABLE_X_FORWARDED_FOR":  {InServer, Supported, "N", "the header's address is the sender's to choose: only behind a proxy that overwrites it"},
	"ENABLE_DESTINATION_RULE": {InServer, Supported, "N", ""},
	"ENABLE_RULE_PREPEND":     {InServer, NoEffect, "N", "sesame grants through nftables sets, which have no order"},
	"ENABLE_NAT_DNS":          {InServer, Supported, "Y", "NAT requests may name a host; resolved with a short deadline"},
	"FWKNOP_RUN_DIR":          {InServer, Supported, "/run/fwknop", ""},
	"FWKNOP_CONF_DIR":         {InServer, NoEffect, "/etc/fwknop", "sesame reads the files named by -c, -a and ACCESS_FILE"},
	"ACCESS_FILE":             {InServer, Supported, "/etc/fwknop/access.conf", ""},
	"ACCESS_FOLDER":           {InServer, Supported, "", ""},
	"FWKNOP_PID_FILE":         {InServer, Supported, "/run/fwknop/fwknopd.pid", ""},
	"DIGEST_FILE":             {InServer, Supported, "/run/fwknop/digest.cache", ""},
	"DIGEST_DB_FILE":          {InServer, NoEffect, "/run/fwknop/digest_db.cache", "sesame uses DIGEST_FILE"},
	"GPG_HOME_DIR":            {InServer | InAccess, Supported, "/root/.gnupg", "read once at start and reload by asking gpg (internal/gpgkeys)"},
	"GPG_EXE":                 {InServer | InAccess, Supported, "/usr/bin/gpg", "used at start and reload only, never per packet"},
	"SUDO_EXE":                {InServer, Supported, "/usr/bin/sudo", ""},
	"FIREWALL_EXE":            {InServer, NoEffect, "/usr/sbin/iptables", "sesame drives nftables through netlink"},
	"AFL_PKT_FILE":            {InServer, Unsupported, "", "fwknopd fuzzing builds only"},
	"FAULT_INJECTION_TAG":     {InServer, Unsupported, "", "fwknopd test builds only"},

	// fwknopd.conf: iptables (Debian's build).
	"ENABLE_IPT_FORWARDING":    {InServer, Supported, "N", "NAT message types 2 and 4 (Forward grants in sesame's table)"},
	"ENABLE_IPT_LOCAL_NAT":     {InServer, Supported, "N", "NAT message types 5 and 6 (LocalNAT grants in sesame's table)"},
	"ENABLE_IPT_SNAT":          {InServer, Supported, "N", "SNAT (or MASQUERADE) of forwarded grants"},
	"SNAT_TRANSLATE_IP":        {InServer, Supported, "", "the SNAT address with ENABLE_IPT_SNAT (unset: MASQUERADE)"},
	"ENABLE_IPT_OUTPUT":        {InServer, DefaultOnly, "N", "OUTPUT chain rules are not implemented"},
	"FLUSH_IPT_AT_INIT":        {InServer, Supported, "N", "sesame keeps live grants across a restart; Y revokes them at start, as fwknopd (default Y there) does"},
	"FLUSH_IPT_AT_EXIT":        {InServer, Supported, "N", "sesame keeps live grants when it stops; Y revokes them (the guard stays), as fwknopd (default Y there) removes its rules"},
	"IPT_INPUT_ACCESS":         {InServer, DefaultOnly, "ACCEPT, filter, INPUT, 1, FWKNOP_INPUT, 1", "sesame uses its own nftables table; see SESAME_HOST_CHAIN"},
	"IPT_OUTPUT_ACCESS":        {InServer, DefaultOnly, "ACCEPT, filter, OUTPUT, 1, FWKNOP_OUTPUT, 1", "sesame uses its own nftables table"},
	"IPT_FORWARD_ACCESS":       {InServer, DefaultOnly, "ACCEPT, filter, FORWARD, 1, FWKNOP_FORWARD, 1", "sesame uses its own nftables table"},
	"IPT_DNAT_ACCESS":          {InServer, DefaultOnly, "DNAT, nat, PREROUTING, 1, FWKNOP_PREROUTING, 1", "sesame uses its own nftables table"},
	"IPT_SNAT_ACCESS":          {InServer, DefaultOnly, "SNAT, nat, POSTROUTING, 1, FWKNOP_POSTROUTING, 1", "sesame uses its own nftables table"},
	"IPT_MASQUERADE_ACCESS":    {InServer, DefaultOnly, "MASQUERADE, nat, POSTROUTING, 1, FWKNOP_MASQUERADE, 1", "sesame uses its own nftables table"},
	"ENABLE_IPT_COMMENT_CHECK": {InServer, NoEffect, "Y", "sesame does not use the comment match"},

	// fwknopd.conf: other firewalls' builds (unknown to Debian's fwknopd, known here).
	"ENABLE_FIREWD_FORWARDING":    {InServer, NoEffect, "N", "firewalld builds only"},
	"ENABLE_FIREWD_LOCAL_NAT":     {InServer, NoEffect, "N", "firewalld builds only"},
	"ENABLE_FIREWD_SNAT":          {InServer, NoEffect, "N", "firewalld builds only"},
	"ENABLE_FIREWD_OUTPUT":        {InServer, NoEffect, "N", "firewalld builds only"},
	"FLUSH_FIREWD_AT_INIT":        {InServer, NoEffect, "Y", "firewalld builds only"},
	"FLUSH_FIREWD_AT_EXIT":        {InServer, NoEffect, "Y", "firewalld builds only"},
	"FIREWD_INPUT_ACCESS":         {InServer, NoEffect, "", "firewalld builds only"},
	"FIREWD_OUTPUT_ACCESS":        {InServer, NoEffect, "", "firewalld builds only"},
	"FIREWD_FORWARD_ACCESS":       {InServer, NoEffect, "", "firewalld builds only"},
	"FIREWD_DNAT_ACCESS":          {InServer, NoEffect, "", "firewalld builds only"},
	"FIREWD_SNAT_ACCESS":          {InServer, NoEffect, "", "firewalld builds only"},
	"FIREWD_MASQUERADE_ACCESS":    {InServer, NoEffect, "", "firewalld builds only"},
	"ENABLE_FIREWD_COMMENT_CHECK": {InServer, NoEffect, "Y", "firewalld builds only"},
	"FLUSH_IPFW_AT_INIT":          {InServer, NoEffect, "Y", "ipfw builds only"},
	"FLUSH_IPFW_AT_EXIT":          {InServer, NoEffect, "Y", "ipfw builds only"},
	"IPFW_START_RULE_NUM":         {InServer, NoEffect, "", "ipfw builds only"},
	"IPFW_MAX_RULES":              {InServer, NoEffect, "", "ipfw builds only"},
	"IPFW_ACTIVE_SET_NUM":         {InServer, NoEffect, "", "ipfw builds only"},
	"IPFW_EXPIRE_SET_NUM":         {InServer, NoEffect, "", "ipfw builds only"},
	"IPFW_EXPIRE_PURGE_INTERVAL":  {InServer, NoEffect, "", "ipfw builds only"},
	"IPFW_ADD_CHECK_STATE":        {InServer, NoEffect, "", "ipfw builds only"},
	"PF_ANCHOR_NAME":              {InServer, NoEffect, "", "pf builds only"},
	"PF_EXPIRE_INTERVAL":          {InServer, NoEffect, "", "pf builds only"},

	// fwknopd.conf: listed in the sample file, implemented by no fwknopd.
	"ENABLE_EXTERNAL_CMDS":  {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},
	"EXTERNAL_CMD_OPEN":     {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},
	"EXTERNAL_CMD_CLOSE":    {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},
	"EXTERNAL_CMD_ALARM":    {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},
	"ENABLE_EXT_CMD_PREFIX": {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},
	"EXT_CMD_PREFIX":        {InServer, NoEffect, "", "not implemented by fwknopd 2.6 either"},

	// fwknopd.conf: sesame's own.
	"SESAME_GUARD_PORTS":    {InServer, Supported, "", ""},
	"SESAME_HOST_CHAIN":     {InServer, Supported, "none", ""},
	"SESAME_TABLE":          {InServer, Supported, "sesame", ""},
	"SESAME_TABLE_OWNER":    {InServer, Supported, "Y", ""},
	"SESAME_REPLAY_MARGIN":  {InServer, Supported, "60", ""},
	"SESAME_MD5_LISTEN":     {InServer, Supported, "", ""},
	"SESAME_METRICS_LISTEN": {InServer, Supported, "", ""},
	"SESAME_MD5_UPSTREAM":   {InServer, Supported, "", ""},
	// The fleet (package fleet): "" defaults mean the fleet package's own defaults.
	"SESAME_FLEET_REDIS":         {InServer, Supported, "", ""},
	"SESAME_FLEET_GROUP":         {InServer, Supported, "", ""},
	"SESAME_FLEET_KEY_FILE":      {InServer, Supported, "", ""},
	"SESAME_FLEET_ON_ERROR":      {InServer, Supported, "", ""},
	"SESAME_FLEET_TIMEOUT":       {InServer, Supported, "", ""},
	"SESAME_FLEET_MAX_SKEW":      {InServer, Supported, "", ""},
	"SESAME_FLEET_WAIT_REPLICAS": {InServer, Supported, "", ""},
	"SESAME_FLEET_NAME":          {InServer, Supported, "", ""},
	"SESAME_FLEET_TLS_CA":        {InServer, Supported, "", ""},
	"SESAME_FLEET_TLS_CERT":      {InServer, Supported, "", ""},
	"SESAME_FLEET_TLS_KEY":       {InServer, Supported, "", ""},

	// access.conf.
	"SOURCE":                      {InAccess, Supported, "", ""},
	"DESTINATION":                 {InAccess, Supported, "", ""},
	"OPEN_PORTS":                  {InAccess, Supported, "", ""},
	"RESTRICT_PORTS":              {InAccess, Supported, "", ""},
	"KEY":                         {InAccess, Supported, "", ""},
	"KEY_BASE64":                  {InAccess, Supported, "", ""},
	"HMAC_KEY":                    {InAccess, Supported, "", ""},
	"HMAC_KEY_BASE64":             {InAccess, Supported, "", ""},
	"HMAC_DIGEST_TYPE":            {InAccess, Supported, "", ""},
	"ENCRYPTION_MODE":             {InAccess, Supported, "", ""},
	"FW_ACCESS_TIMEOUT":           {InAccess, Supported, "30", ""},
	"MAX_FW_TIMEOUT":              {InAccess, Supported, "300", ""},
	"ENABLE_CMD_EXEC":             {InAccess, Supported, "N", ""},
	"ENABLE_CMD_SUDO_EXEC":        {InAccess, Supported, "N", ""},
	"CMD_SUDO_EXEC_USER":          {InAccess, Supported, "", ""},
	"CMD_SUDO_EXEC_GROUP":         {InAccess, Supported, "", ""},
	"CMD_EXEC_USER":               {InAccess, Supported, "", ""},
	"CMD_EXEC_GROUP":              {InAccess, Supported, "", ""},
	"CMD_CYCLE_OPEN":              {InAccess, Supported, "", ""},
	"CMD_CYCLE_CLOSE":             {InAccess, Supported, "", ""},
	"CMD_CYCLE_TIMER":             {InAccess, Supported, "0", ""},
	"REQUIRE_USERNAME":            {InAccess, Supported, "", ""},
	"REQUIRE_SOURCE_ADDRESS":      {InAccess, Supported, "N", ""},
	"REQUIRE_SOURCE":              {InAccess, Supported, "N", ""},
	"GPG_DECRYPT_ID":              {InAccess, Supported, "", ""},
	"GPG_DECRYPT_PW":              {InAccess, Supported, "", ""},
	"GPG_ALLOW_NO_PW":             {InAccess, Supported, "N", ""},
	"GPG_REQUIRE_SIG":             {InAccess, Supported, "", ""},
	"GPG_DISABLE_SIG":             {InAccess, Supported, "N", ""},
	"GPG_IGNORE_SIG_VERIFY_ERROR": {InAccess, Supported, "N", ""},
	"GPG_REMOTE_ID":               {InAccess, Supported, "", ""},
	"GPG_FINGERPRINT_ID":          {InAccess, Supported, "", ""},
	"ACCESS_EXPIRE":               {InAccess, Supported, "", ""},
	"ACCESS_EXPIRE_EPOCH":         {InAccess, Supported, "", ""},
	"FORCE_NAT":                   {InAccess, Supported, "", ""},
	"FORCE_SNAT":                  {InAccess, Supported, "", ""},
	"FORCE_MASQUERADE":            {InAccess, Supported, "N", ""},
	"DISABLE_DNAT":                {InAccess, Supported, "N", ""},
	"FORWARD_ALL":                 {InAccess, Supported, "N", ""},
	"SESAME_REQUIRE_SOURCE_MATCH": {InAccess, Supported, "N", ""},
	"SESAME_MD5":                  {InAccess, Supported, "N", ""},
}

// needs maps fwknopd.conf variables that sesame refuses to the Y/N switch that makes them
// matter: while the switch is N they change nothing in sesame (fwknopd reads the chain specs
// only with their switch on), so they are a warning unless at their default. With the switch
// on they are checked as usual: the iptables chain specs must keep their defaults, since
// sesame grants NAT through its own nftables table.
var needs = map[string]string{
	"IPT_FORWARD_ACCESS":     "ENABLE_IPT_FORWARDING",
	"IPT_DNAT_ACCESS":        "ENABLE_IPT_FORWARDING",
	"IPT_SNAT_ACCESS":        "ENABLE_IPT_SNAT",
	"IPT_MASQUERADE_ACCESS":  "ENABLE_IPT_SNAT",
	"IPT_OUTPUT_ACCESS":      "ENABLE_IPT_OUTPUT",
	"ENABLE_X_FORWARDED_FOR": "ENABLE_SPA_OVER_HTTP",
	"ALLOW_ANY_USER_AGENT":   "ENABLE_SPA_OVER_HTTP",
}

// checkSupport applies the table to one setting: an error for unsupported uses, a warning for
// settings without effect.
func checkSupport(p pos, name, value string, v Variable) (*Warning, error) {
	switch v.Support {
	case Unsupported:
		return nil, p.errorf(ErrUnsupported, name, "remove it", "%s is not supported by sesame (%s)", name, v.Note)
	case DefaultOnly:
		if !sameValue(value, v.Default) {
			return nil, p.errorf(ErrUnsupported, name, "remove it or set it to "+v.Default,
				"%q is not supported by sesame (%s)", value, v.Note)
		}
	case NoEffect:
		if !sameValue(value, v.Default) {
			w := p.warn(name, "has no effect in sesame (%s)", v.Note)
			return &w, nil
		}
	}
	return nil, nil
}

// sameValue compares a value with a default: Y/N values on their first letter, lists field by
// field ignoring blanks, and anything else exactly.
func sameValue(v, def string) bool {
	if def == "Y" || def == "N" {
		b, ok := parseYN(v)
		return ok && b == (def == "Y")
	}
	return normList(v) == normList(def)
}
