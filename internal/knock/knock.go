package knock

import (
	"context"
	"net/netip"
)

// TargetOf returns where p goes according to o.
func TargetOf(o *Options, p *Packet) Target {
	proto := o.Proto
	if proto == "" && o.HTTPProxy != "" {
		proto = ProtoHTTP // -H implies HTTP, as in fwknop
	}
	t := Target{Server: o.Server, Port: p.DestPort, Proto: proto, SourcePort: o.SourcePort,
		Family: o.Family, HTTPProxy: o.HTTPProxy, UserAgent: o.UserAgent, ICMPType: o.ICMPType, ICMPCode: o.ICMPCode}
	if a, err := netip.ParseAddr(o.SpoofSource); err == nil {
		t.SpoofSource = a.Unmap()
	}
	return t
}

// Knock builds the packet for o and sends it with s.
func Knock(ctx context.Context, o *Options, env Env, s Sender) (*Packet, Sent, error) {
	p, err := Build(ctx, o, env)
	if err != nil {
		return nil, Sent{}, err
	}
	sent, err := s.Send(ctx, TargetOf(o, p), p.Wire)
	if err != nil {
		return p, sent, err
	}
	return p, sent, nil
}
