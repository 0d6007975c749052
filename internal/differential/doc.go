// Package differential holds sesame's differential test against the real fwknopd: one stream
// of packets built by Debian's real fwknop client is sent to the real fwknopd and to
// "sesame server", both in UDP-server mode with the same fwknopd.conf and access.conf text,
// and each packet must get the same verdict and, when granted, the same grant (allow IP,
// proto/ports, timeout) from both.
//
// The package has no code of its own, only TestIntegrationDifferential and its helpers.
// Verdicts are compared as classes (granted, replay, too-old-or-new, username, port-denied,
// source-required, no-stanza-or-decode-failure, malformed, nat-refused, command-refused);
// one table in the test maps fwknopd's log details and sesame's reason= values into them.
// Every intended difference is one entry of the test's intended list, mirrored in
// docs/migrating-from-fwknop.md ("Intended differences (checked by internal/differential)"):
// a case whose verdicts differ must be in that list, and an entry whose verdicts agree
// fails the test, so the list stays true.
//
// Each server runs in its own nstest.Pair, so both see the packets from the same client
// address (10.99.0.2) at the same server address (10.99.0.1). The test waits for each
// server's verdict on a packet before sending the next: sesame logs exactly one line per
// packet ("access granted" or "SPA packet rejected"); fwknopd logs no end-of-packet line, so
// after each packet the test sends it a short sentinel datagram, which fwknopd rejects with a
// log line before it reads anything else, and waits for that line.
//
// It needs root, fwknop, fwknopd, iptables and nft (nstest.Require: skipped outside CI,
// failed under CI=true).
package differential
