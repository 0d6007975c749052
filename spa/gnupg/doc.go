// Package gnupg is the OpenPGP half of fwknop's GnuPG mode (mode "Asymmetric", encryption
// type 2): an spa.Opener that decrypts a packet's OpenPGP message with a server's secret key
// and enforces fwknopd's signature policy, and an spa.Sealer that encrypts (and signs) the
// way fwknop's client does through gpgme. The framing (the stripped "hQ", the HMAC, the
// 400-character rule, the plaintext) is package spa's: spa.DecodeGnuPG, spa.NewGnuPGDecoder
// and spa.EncodeGnuPG. Encode is the client's one call.
//
// It is pure, like spa: keys come in parsed (openpgp.EntityList, secret keys already
// decrypted), the clock and the random source are passed in, nothing reads files or runs
// gpg (package internal/gpgkeys gets keys out of a GnuPG home directory).
//
// OpenPGP is ProtonMail/go-crypto's v1 openpgp package. Messages are what gpg 2.2 makes for
// fwknop: public-key session key packets (RSA, ElGamal or ECDH), a SEIPD v1 packet (MDC),
// optionally compressed, holding a one-pass signature, the literal data and the signature.
//
// # Signature policy (Policy, as fwknopd 2.6.10 applies GPG_* of a stanza)
//
// With RequireSig false (GPG_DISABLE_SIG Y without GPG_REQUIRE_SIG) any signature, or none,
// is accepted. Otherwise, in this order:
//
//   - no signature: spa.ErrNotSigned (fwknopd: "Missing GPG signature", even with
//     GPG_IGNORE_SIG_VERIFY_ERROR Y);
//   - the signer's key is not in the keyring, or the signature does not verify (or the key
//     is expired or revoked): spa.ErrBadSignature. fwknopd with GPG_IGNORE_SIG_VERIFY_ERROR Y
//     accepts both and then matches the signer by the ID the signature claims; sesame never
//     does, since anyone able to encrypt to the server's public key could then pass as any
//     listed signer;
//   - the signer's key is not valid in the server's keyring (GnuPG validity below marginal,
//     for example imported but not signed with "gpg --quick-lsign-key"): spa.ErrSignerNotValid,
//     unless IgnoreVerifyError (GPG_IGNORE_SIG_VERIFY_ERROR Y), as fwknopd;
//   - GPG_FINGERPRINT_ID, when set, must list the signer's fingerprint; then GPG_REMOTE_ID,
//     when set, must list its short ID (the last 8 hex digits of the fingerprint): else
//     spa.ErrSignerNotAllowed. fwknopd compares with the key that made the signature; sesame
//     also accepts the primary key's fingerprint or ID when a signing subkey signed, and
//     compares hex case-insensitively (fwknopd needs upper case).
//
// # Work per packet
//
// Opening costs at most one private-key operation per decryption key (a message whose
// session key packets name one of the server's keys more than once, or use the wildcard key
// ID more than once, is refused after the first), one symmetric decryption of at most 1500
// bytes (decompression capped at 4096 bytes) and one signature verification.
package gnupg
