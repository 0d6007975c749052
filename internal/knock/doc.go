// Package knock is sesame's SPA client library: it turns fwknop client options (from the
// command line and ~/.fwknoprc, see package rcfile) into an SPA packet (Build, via spa.Encode)
// and sends it over UDP, TCP, HTTP, ICMP or raw UDP (Sender).
//
// Packets are byte-compatible with fwknop 2.6's client. Beyond fwknop, servers and allow-IPs
// may be IPv6 (Options.Family forces a family), and a username longer than fwknopd's 48-byte
// limit is an error instead of being cut.
//
// # Knocking without -A: "the stanza's OPEN_PORTS"
//
// fwknop's client, given no -A, builds the access message "<allow-ip>,none/0" and then fails
// its own validation (port 0), so "open whatever the server allows" has never worked. sesame
// keeps that exact encoding and gives it a meaning:
//
//	message type 1 (or 3 with -f), message "<allow-ip>,none/0"
//
// means "open the OPEN_PORTS of the access stanza that authenticates this packet". The
// server half (sesame server) must:
//
//   - accept the single pair "none/0" (lower case, nothing else in the list) where it parses
//     access messages; spa.ParseAccess should return an Access with no Ports for it;
//   - grant exactly the stanza's OPEN_PORTS list when Ports is empty, and refuse the packet
//     ("no ports requested and stanza has no OPEN_PORTS") when the stanza has none;
//   - still apply RESTRICT_PORTS to that list.
//
// fwknopd 2.6 rejects such a packet clearly: its decoder refuses port 0 while it builds the
// packet's context, so it logs "Error creating fko context: Args contain invalid data:
// FKO_ERROR_INVALID_DATA_DECODE_ACCESS_VALIDFAIL" for the stanza, caches nothing and adds no
// rule (checked by TestIntegrationTransportsToFwknopd in internal/cmd/knock).
// The constant NoPortsAccess is that "none/0" text. sesame knock prints a note when it
// sends one.
package knock
