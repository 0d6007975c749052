// Package knock is sesame's SPA client library. [Build] turns fwknop client options
// ([Options], from the command line and ~/.fwknoprc through package rcfile) into an
// encoded SPA packet (via spa.Encode, or spa/gnupg in GnuPG mode, -g: see gnupg.go), and a [Sender] sends it over UDP, TCP, HTTP, ICMP, raw
// UDP or a raw TCP SYN, raw packets optionally from a spoofed IPv4 source (-Q) ([NetSender] is
// the real one). [Knock] does both. -R learns the allow-IP over HTTPS with sesame's own client,
// over plain HTTP (--resolve-http-only), or by running wget as fwknop does (-w,
// --use-wget-user-agent).
//
// Packets use fwknop 2.6's client format. Beyond fwknop, servers and allow-IPs may be IPv6
// ([Options].Family forces a family), and a username longer than fwknopd's 48-byte limit
// ([MaxUsername]) or an HMAC key over 128 bytes is an error instead of being cut.
//
// # Knocking without -A: "the stanza's OPEN_PORTS"
//
// fwknop's client, given no -A, builds the access message "<allow-ip>,none/0" and then
// refuses it itself (port 0), so "open whatever the server allows" has never worked with
// fwknop. sesame sends that exact encoding ([NoPortsAccess], message type 1, or 3 with -f)
// and gives it a meaning: sesame's server grants the OPEN_PORTS of the access stanza that
// authenticates the packet, still subject to RESTRICT_PORTS, and refuses the packet when
// the stanza has no OPEN_PORTS. [Packet].NoPorts reports that such a packet was built.
//
// fwknopd 2.6 refuses such a packet: its decoder rejects port 0 while it builds the
// packet's context, so it logs FKO_ERROR_INVALID_DATA_DECODE_ACCESS_VALIDFAIL for the
// stanza, caches nothing and adds no rule (TestIntegrationTransportsToFwknopd in
// internal/cmd/knock checks this against the real fwknopd).
package knock
