// Package gnupginterop holds the interoperability tests of sesame's GnuPG mode against
// Debian's real fwknop 2.6.10 client and fwknopd, with keys made by the real gpg 2.2 in each
// test (package gpgtest): fwknop -g packets decoded by sesame's server pipeline, sesame's
// encoder (spa/gnupg) accepted by fwknopd, every refusal compared packet for packet with
// fwknopd's verdict, a knock-and-connect against sesame server in network namespaces, and
// ECC keys between sesame's own encoder and server. It has no code of its own.
package gnupginterop
