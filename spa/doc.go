// Package spa is the Single Packet Authorization wire format of fwknop 2.6 (libfko protocol
// "3.0.0"), byte-compatible with Debian's fwknop-client and fwknop-server 2.6.10. It is pure:
// no sockets, files, clocks or processes; randomness comes from the io.Reader given to Encode.
//
// # Plaintext
//
// The encoded data is ASCII fields joined by ':' (b64 = standard base64, '=' padding removed):
//
//	random ":" b64(username) ":" timestamp ":" version ":" type ":" b64(message)
//	       [":" b64(nat_access)] [":" b64(server_auth)] [":" client_timeout]
//
// with these rules:
//
//   - random: 16 decimal digits.
//   - username: printable ASCII except " / \ [ ] : ; | = , + * ? < >; at most 48 bytes (its
//     base64 at most 64 characters).
//   - timestamp: decimal Unix seconds, 1..12 digits (int64 here; libfko's own decoder breaks
//     in 2038).
//   - version: 1..8 characters, "3.0.0".
//   - type: 0 command, 1 access, 2 NAT access, 3 access + timeout, 4 NAT + timeout, 5 local
//     NAT, 6 local NAT + timeout.
//   - message: "ip,proto/port[,proto/port...]" (tcp or udp, ports 1..65535, < 256 bytes) or,
//     for commands, "ip,command text". The IP is dotted-quad IPv4 ("0.0.0.0" = use the
//     packet's source); sesame also accepts IPv6.
//   - nat_access: "host,port", only for types 2, 4, 5, 6.
//   - server_auth: optional, any type; the stock client never sends it.
//   - client_timeout: decimal seconds 0..65536, only for types 3, 4, 6.
//
// The plaintext that gets encrypted is encoded ":" digest, where digest is the unpadded base64
// of MD5, SHA-1, SHA-256 (default), SHA-384, SHA-512, SHA3-256 or SHA3-512 over the encoded
// data. No field names the digest type: the decoder infers it from the length (22, 27, 43,
// 64, 86 characters), trying SHA-2 before SHA-3 for 43 and 86.
//
// # Encryption
//
// Always AES-256. An 8-byte random salt and the passphrase (1..32 bytes) give key and IV by
// OpenSSL's EVP_BytesToKey with MD5 and one round: D1 = MD5(pass‖salt), D2 = MD5(D1‖pass‖salt),
// D3 = MD5(D2‖pass‖salt), key = D1‖D2, IV = D3. The plaintext gets PKCS#7 padding (in every
// mode) and is encrypted in CBC (default), ECB, full-block CFB, OFB or CTR (the IV is the
// initial big-endian counter); "legacy" is CBC with the passphrase padded with '0' to 16
// bytes or cut to 16. The mode is not on the wire: both sides configure it. The ciphertext is
// "Salted__" ‖ salt ‖ AES output, base64-encoded without '=', which always starts with
// "U2FsdGVkX1".
//
// # Wire
//
//	wire = b64text[10:] ‖ b64(HMAC(hmac_key, b64text))    (HMAC optional)
//
// The HMAC (MD5 ... SHA3-512, type configured on both sides, SHA-256 by default) covers the
// whole base64 text including the "U2FsdGVkX1" prefix, and is appended without separator; the
// prefix is then stripped. A receiver re-adds the prefix before checking the HMAC and
// decrypting. fwknopd drops payloads outside 140..1500 bytes, payloads that still start with
// the prefix (a replay-cache dodge) and any non-base64 byte, and treats 400 characters or
// more as GnuPG (GnuPG strips "hQ" the same way; see gnupg.go: DecodeGnuPG, EncodeGnuPG,
// GnuPGDecoder, with the OpenPGP work behind Opener and Sealer, implemented by package
// spa/gnupg). The replay cache key is ReplayDigest, SHA-256 over the wire bytes.
//
// # Decoding
//
// Decode (or a per-stanza Decoder) checks in fwknopd's order: CheckWire, the GnuPG length,
// the HMAC (one HMAC and no allocation to reject a forgery with a Decoder), base64 and block
// length, decryption, "16 digits then ':'" (how a wrong key or mode shows), then
// DecodePlaintext's field checks. Every failure wraps exactly one of the Err* sentinels.
// sesame is stricter than libfko in a few places where libfko's C parsing is loose: numeric
// fields must be digits only (libfko's strtol accepts signs and trailing junk), and allow-IPs
// with leading zeros (octal to inet_aton) are refused.
package spa
