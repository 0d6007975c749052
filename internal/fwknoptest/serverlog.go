package fwknoptest

import (
	"regexp"
	"strconv"
	"strings"
)

// EventKind classifies a line of fwknopd's log (at -v -v).
type EventKind int

// Event kinds, in the order fwknopd usually logs them for one packet.
const (
	// EventRejected: the packet was dropped before any stanza looked at it
	// ("preprocess_spa_data() returned error ...": too short, not base64, prefix present;
	// "Error initializing FKO context ...": too long).
	EventRejected EventKind = iota + 1
	// EventReplay: the packet's digest was already cached.
	EventReplay
	// EventStanzaError: one stanza failed to authenticate or decrypt the packet
	// ("Error creating fko context: ..."); fwknopd goes on with the next stanza.
	EventStanzaError
	// EventDecoded: a stanza authenticated and decrypted the packet; Dump holds the fields.
	EventDecoded
	// EventStanzaInfo: any other per-stanza line after decoding (policy refusals such as
	// "SPA data time difference is too great", command execution, ...).
	EventStanzaInfo
	// EventRule: a firewall rule was added ("Added access rule to FWKNOP_INPUT for ...").
	EventRule
)

func (k EventKind) String() string {
	switch k {
	case EventRejected:
		return "rejected"
	case EventReplay:
		return "replay"
	case EventStanzaError:
		return "stanza-error"
	case EventDecoded:
		return "decoded"
	case EventStanzaInfo:
		return "stanza-info"
	case EventRule:
		return "rule"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one interesting line of fwknopd's log, attributed to the packet being processed.
type Event struct {
	Kind   EventKind
	Source string // packet source IP as fwknopd printed it
	Stanza int    // 1-based access.conf stanza, 0 when not per-stanza
	Packet int    // 1-based count of datagrams received so far (UDP mode; 0 in pcap mode)
	Size   int    // datagram size from the preceding "Got UDP datagram (N bytes)" line (UDP mode)
	Wire   string // the packet from the preceding "SPA Packet: '...'" line ("" before it is logged)
	Detail string // the text after the "[ip] (stanza #N)" prefix
	Line   string // the whole log line
	Dump   *Dump  // EventDecoded only
}

var (
	reDatagram = regexp.MustCompile(`Got UDP datagram \((\d+) bytes\) from: (\S+)`)
	reStanza   = regexp.MustCompile(`^\[([^\]]+)\] \(stanza #(\d+)\) (.*)$`)
	rePrefixed = regexp.MustCompile(`^\[([^\]]+)\] (.*)$`)
	reRule     = regexp.MustCompile(`^Added .* rule to \S+ for (\S+) -> `)
)

// ParseLog extracts the events of a fwknopd log (run with -v -v). Lines it does not know are
// skipped, so startup noise and iptables chatter do not matter.
func ParseLog(log string) []Event {
	var (
		events []Event
		size   int
		packet int
		wire   string
		src    string
	)
	lines := strings.Split(log, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		if m := reDatagram.FindStringSubmatch(line); m != nil {
			size, _ = strconv.Atoi(m[1])
			packet++
			src, wire = m[2], ""
			continue
		}
		if w, ok := strings.CutPrefix(line, "SPA Packet: '"); ok {
			wire = strings.TrimSuffix(w, "'")
			continue
		}
		ev := Event{Packet: packet, Size: size, Wire: wire, Source: src, Line: line}
		switch {
		case strings.Contains(line, "Replay detected"):
			ev.Kind, ev.Detail = EventReplay, line
			if m := rePrefixed.FindStringSubmatch(line); m != nil {
				ev.Source = m[1]
			}
		case reRule.MatchString(line):
			ev.Kind, ev.Detail = EventRule, line
		default:
			if m := reStanza.FindStringSubmatch(line); m != nil {
				ev.Source, ev.Detail = m[1], m[3]
				ev.Stanza, _ = strconv.Atoi(m[2])
				switch {
				case strings.HasPrefix(ev.Detail, "SPA Decode (res=0)"):
					ev.Kind = EventDecoded
					if d, err := parseBlock(strings.Join(afterHeader(lines[i+1:]), "\n")); err == nil {
						ev.Dump = &d
					}
				case strings.HasPrefix(ev.Detail, "Error creating fko context"),
					strings.HasPrefix(ev.Detail, "SPA Decode (res="):
					ev.Kind = EventStanzaError
				default:
					ev.Kind = EventStanzaInfo
				}
			} else if m := rePrefixed.FindStringSubmatch(line); m != nil &&
				strings.Contains(m[2], "preprocess_spa_data() returned error") {
				ev.Kind, ev.Source, ev.Detail = EventRejected, m[1], m[2]
			} else if strings.HasPrefix(line, "Error initializing FKO context") {
				// Over-long packets: fwknopd reads 1500 bytes and libfko refuses them.
				ev.Kind, ev.Detail = EventRejected, line
			} else {
				continue
			}
		}
		events = append(events, ev)
	}
	return events
}

// afterHeader returns the lines following a "SPA Field Values:" header at the start of lines
// (up to 40 lines), or nil.
func afterHeader(lines []string) []string {
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "SPA Field Values:" {
		return nil
	}
	end := min(len(lines), 41)
	return lines[1:end]
}

// Filter returns the events of kind k.
func Filter(events []Event, k EventKind) []Event {
	var out []Event
	for _, e := range events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// ByPacket returns the events of the n-th datagram fwknopd received (1-based, UDP mode).
func ByPacket(events []Event, n int) []Event {
	var out []Event
	for _, e := range events {
		if e.Packet == n {
			out = append(out, e)
		}
	}
	return out
}

// ByWire returns the events attributed to packet wire.
func ByWire(events []Event, wire string) []Event {
	var out []Event
	for _, e := range events {
		if e.Wire == wire {
			out = append(out, e)
		}
	}
	return out
}
