// Package md5grant gives each SPA user a TCP-MD5 (RFC 2385) key of their own: when sesame's
// server grants an address for an access stanza with SESAME_MD5 Y, the server's TCP-MD5
// listener (SESAME_MD5_LISTEN) gets a key for exactly that address (/32 or /128), derived
// from the stanza's SPA keys, for as long as the grant lasts. The client derives the same
// key from the same keys in its ~/.fwknoprc stanza, so no extra secret is distributed, and
// a second user (or a scanner) at another address, or at the same address without the
// stanza's keys, cannot complete a TCP handshake.
//
// # Key derivation (version 1)
//
// Both sides compute the key with HKDF (RFC 5869) over SHA-256:
//
//	K     = the stanza's Rijndael key (KEY / KEY_BASE64) as the cipher uses it: with
//	        ENCRYPTION_MODE legacy only its first 16 bytes
//	H     = the stanza's HMAC key (HMAC_KEY / HMAC_KEY_BASE64); empty when there is none
//	IKM   = len(K) || K || len(H) || H        lengths as 4-byte big-endian unsigned integers
//	salt  = "sesame tcp-md5 v1"               17 ASCII bytes
//	info  = "tcp-md5"                         7 ASCII bytes
//	key   = HKDF-SHA256(IKM, salt, info, L = 32)
//
// The 32 output bytes are the TCP-MD5 key, used raw (the kernel takes 1 to 80 arbitrary
// bytes). The HMAC digest type and the encryption mode (except legacy's 16-byte cut) do
// not enter the derivation. K must not be empty. Test vectors are in derive_test.go; they
// were checked against an independent Python implementation of RFC 5869.
//
// # Setting it up
//
// Server, fwknopd.conf and access.conf (package fwconf documents the variables):
//
//	SESAME_MD5_LISTEN    [::]:2222         the TCP-MD5 listener the server runs (Service);
//	                                       0.0.0.0:2222 would be IPv4 only
//	SESAME_MD5_UPSTREAM  127.0.0.1:22      where signed connections are relayed
//
//	SOURCE ANY
//	KEY_BASE64 ...
//	HMAC_KEY_BASE64 ...
//	OPEN_PORTS tcp/2222
//	SESAME_MD5 Y                           grants of this stanza also install its key
//
// The listener starts with an unguessable random key for 0.0.0.0/0 and ::/0, so it answers
// nobody until a grant. The firewall grant (nftables) is made as usual; the key comes on
// top of it, through the server's OnGrant hook (Service.OnGrant), and is removed within
// DefaultExpireEvery of the grant's end. Connections already established keep their key.
//
// Client: "sesame connect --knock[=STANZA] HOST 2222" knocks with the ~/.fwknoprc stanza
// (Knocker) and dials with the derived key (DialRetry), e.g. as an ssh ProxyCommand.
//
// # Limits
//
// TCP-MD5 signs addresses and ports, so it does not survive NAT: use IPv6 or direct paths.
// The kernel keeps one key per source prefix, so two users behind one address cannot both
// hold a grant: the last grant wins, and the earlier user's next connection fails until
// they knock again (connections already established keep their key).
// One listener socket holds about 960 keys with the default net.core.optmem_max (128 KiB),
// so about that many grants can be live at once; further grants fail (logged) until some
// expire, and a warning is logged when the live grants reach 90 % of the table. So that
// one authorised user knocking with many allow-IPs cannot fill it, a stanza holds at most
// Config.MaxKeysPerStanza live keys (DefaultMaxKeysPerStanza, 64); grants beyond that get
// no key (ErrStanzaFull), and Service.Check lets a server refuse such a knock before it
// opens the firewall. Root on the server can read the keys (ss -i).
package md5grant
