package cmdexec

import "strings"

// CycleVars are the substitutions fwknopd makes in CMD_CYCLE_OPEN and CMD_CYCLE_CLOSE.
type CycleVars struct {
	IP            string // $IP and $SRC: the address the grant opens (the allow IP)
	PktSrc        string // $PKT_SRC: the packet's source address
	Dst           string // $DST: the packet's destination address
	Port          string // $PORT: the requested port
	Proto         string // $PROTO: the protocol number (6 tcp, 17 udp)
	Timeout       string // $TIMEOUT: when the cycle closes, in Unix seconds (the packet's timestamp plus the close delay, as fwknopd)
	ClientTimeout string // $CLIENT_TIMEOUT: the client's requested timeout in seconds (0: none)
}

// Expand replaces the $NAME substitutions of a cycle command template. Longer names are tried
// first, so $PKT_SRC is not read as $P... and $CLIENT_TIMEOUT not as $TIMEOUT. Unknown $NAMEs
// stay as written. Values are inserted as they are: Split then cuts at their blanks (none of
// these values holds one).
func Expand(template string, v CycleVars) string {
	r := strings.NewReplacer(
		"$CLIENT_TIMEOUT", v.ClientTimeout,
		"$PKT_SRC", v.PktSrc,
		"$TIMEOUT", v.Timeout,
		"$PROTO", v.Proto,
		"$PORT", v.Port,
		"$SRC", v.IP,
		"$DST", v.Dst,
		"$IP", v.IP,
	)
	return r.Replace(template)
}
