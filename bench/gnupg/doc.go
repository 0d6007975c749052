// Package gnupg benchmarks GnuPG-mode SPA in "sesame server" against Debian's fwknopd 2.6.10
// in one run, each server in its own pair of network namespaces (UDP-server mode), both with
// the same access.conf: one GnuPG stanza (RSA-2048 keys made by gpg, the client's signature
// required via GPG_REMOTE_ID) followed by one Rijndael+HMAC stanza. Run it with
// bench/gnupg.sh; it is the benchmark BenchmarkGnuPGVsFwknopd, so plain "go test" does not run
// it. It needs root, gpg, fwknopd, iptables and nft (it skips without them, fails under CI=true).
//
// Definitions: knocks per second is the rate at which distinct valid GnuPG packets (built
// before timing with sesame's encoder, spa/gnupg) become grants when offered faster than the
// server can grant, with an HMAC key on the GnuPG stanza (without one sesame's decryption
// budget, 1/s per source, is the limit by design). Forged per CPU-second is forged GnuPG
// packets (a real unsigned packet to the server's key with its RSA value replaced by random
// bytes, 573 characters: decrypting one costs an RSA private-key operation) handled per
// second of the server's CPU time (fwknopd: with its reaped gpg and iptables children and
// the home's gpg-agent), with and without HMAC_KEY on the GnuPG stanza. Honoured is the share of 50 valid Rijndael+HMAC knocks and 20 valid GnuPG knocks,
// spread over a 5 s flood of forged GnuPG packets sent as fast as one sender can, that
// became grants.
package gnupg
