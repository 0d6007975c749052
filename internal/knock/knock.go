package knock

import "context"

// TargetOf returns where p goes according to o.
func TargetOf(o *Options, p *Packet) Target {
	return Target{Server: o.Server, Port: p.DestPort, Proto: o.Proto, SourcePort: o.SourcePort,
		Family: o.Family, HTTPProxy: o.HTTPProxy, UserAgent: o.UserAgent, ICMPType: o.ICMPType, ICMPCode: o.ICMPCode}
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
