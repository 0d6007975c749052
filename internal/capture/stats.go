package capture

// SourceStats are a source's packet counters since it opened. Under a flood, Dropped is where
// a lost knock shows: packets the kernel accepted for the source but had no room for.
// Received - Dropped - Rejected is what Read returned, plus what is still queued.
type SourceStats struct {
	// Received counts packets the kernel had for the source, Dropped included: for a Sniffer
	// those its socket filter accepted (PACKET_STATISTICS), for a UDPServer the datagrams
	// read plus Dropped.
	Received uint64
	// Dropped counts packets the kernel dropped because the source's buffer was full: the
	// Sniffer's receive ring (PACKET_STATISTICS), or the UDP socket's receive buffer (its
	// sk_drops, read with SO_MEMINFO, which also counts datagrams with a bad checksum).
	Dropped uint64
	// Rejected counts received packets (or reassembled datagrams) Read skipped: truncated by
	// the snap length, malformed, or failing the userspace check of the filter. Always 0 for a
	// UDPServer.
	Rejected uint64
	// Fragments counts the IP fragments Read took in for reassembly (not in Rejected);
	// Reassembled the datagrams rebuilt from them, which then count like one packet; and
	// FragmentsDiscarded the fragments reassembly dropped: overlapping (RFC 5722), timed out,
	// malformed, or over the memory limits (DefaultFragLimits).
	Fragments, Reassembled, FragmentsDiscarded uint64
}

// add adds o's counters to s.
func (s *SourceStats) add(o SourceStats) {
	s.Received += o.Received
	s.Dropped += o.Dropped
	s.Rejected += o.Rejected
	s.Fragments += o.Fragments
	s.Reassembled += o.Reassembled
	s.FragmentsDiscarded += o.FragmentsDiscarded
}

// Statser is a Source with counters: Sniffer, ResilientSniffer, MultiSniffer, FileSource and
// UDPServer. Stats may be called from any goroutine, also while Read runs.
type Statser interface {
	Stats() (SourceStats, error)
}

var (
	_ Statser = (*Sniffer)(nil)
	_ Statser = (*ResilientSniffer)(nil)
	_ Statser = (*UDPServer)(nil)
)
