package main

import (
	"github.com/sesame-spa/sesame/internal/cmd/connect"
	"github.com/sesame-spa/sesame/internal/cmd/decode"
	"github.com/sesame-spa/sesame/internal/cmd/keygen"
	"github.com/sesame-spa/sesame/internal/cmd/knock"
	"github.com/sesame-spa/sesame/internal/cmd/server"
	"github.com/sesame-spa/sesame/internal/cmd/shield"
	"github.com/sesame-spa/sesame/internal/cmd/sshproxy"
	"github.com/sesame-spa/sesame/internal/demo"
)

func init() {
	register("decode", "inspect one SPA packet: verify, decrypt and print its fields", decode.Main)
	register("keygen", "generate fwknop keys (KEY_BASE64 / HMAC_KEY_BASE64)", keygen.Main)
	register("knock", "send an SPA packet (fwknop's client)", knock.Main)
	register("server", "the SPA server (fwknopd)", server.Main)
	register("shield", "put a TCP-MD5 signature requirement in front of a service", shield.Main)
	register("connect", "TCP-MD5 client: relay stdio or forward a local port", connect.Main)
	register("demo", "a narrated knock-and-connect tour in throwaway network namespaces (root)", demo.Main)
	register("ssh-proxy", "knock, then relay stdio to the opened port (ssh ProxyCommand)", sshproxy.Main)
}
