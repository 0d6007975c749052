// Package fwknoptest drives Debian's real fwknop 2.6 binaries from Go tests.
//
// It is the reference side of sesame's interop tests and is meant to be reused by other
// packages' tests and benchmarks:
//
//   - Client runs the real client ("fwknop -T -B FILE -v") and returns the wire packet it
//     built together with its parsed "-v" field dump (Dump).
//   - StartServer runs the real fwknopd in the foreground inside a network namespace made
//     by internal/nstest (UDP-server mode by default, iptables inside the namespace), with
//     helpers to send packets, wait for log lines, read its decoded-packet events and list
//     its iptables rules.
//   - Matrix is a pairwise covering set of client configurations (digest type, HMAC type,
//     encryption mode, message type, username, key form and key length). Each Case knows
//     its fwknop client flags, its spa.Keys, the spa.Message it stands for and the
//     access.conf stanza that accepts it, so the same table drives client-to-sesame,
//     sesame-to-fwknopd and recorded-fixture tests.
//   - Vectors are packets recorded from the real client for every case of Recorded (the
//     Matrix, then a few Extras) in testdata/vectors.json, so a machine without fwknop still
//     checks bytes. It is the repository's one set of recorded fwknop packets: spa's tests and
//     sesame decode's read it too. Regenerate it with
//     "go test ./internal/fwknoptest -run TestVectors -update" (needs root and fwknop).
//
// Live helpers call nstest.Require, so they skip without root or the binaries, and fail
// under CI=true.
package fwknoptest
