// Package shield puts a TCP-MD5 signature requirement in front of a TCP service: it
// accepts signed connections on a tcpmd5.Listener and forwards each one to an upstream
// address or hands it to a program inetd-style. It also reads key files, watches the
// kernel's MD5 drop counters, and keeps the expiring per-host keys that SPA grants will
// add to a live listener.
package shield
