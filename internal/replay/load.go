package replay

import (
	"bytes"
	"time"
)

// load parses a digest file into mem. Comment and empty lines are ignored; corrupt lines are
// counted in Skipped and otherwise ignored.
func load(mem *Memory, data []byte, now time.Time, legacyKeep time.Duration) LoadStats {
	var st LoadStats
	nowNs := now.UnixNano()
	if n := len(data) / 80; n > 0 {
		mem.t = newTable(n)
	}
	var batch [32]slot
	nb := 0
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		st.Lines++
		digest, exp, legacy, ok := parseLine(line, legacyKeep)
		if !ok {
			st.Skipped++
			continue
		}
		if legacy {
			st.Legacy++
		}
		if exp <= nowNs {
			st.Expired++
			continue
		}
		k, canonical := keyOf(digest)
		if !canonical {
			if mem.t.putMax(k, exp) {
				mem.odd[k] = string(digest)
			}
			continue
		}
		batch[nb] = slot{k: k, exp: exp}
		nb++
		if nb == len(batch) {
			mem.t.putBatch(batch[:nb])
			nb = 0
		}
	}
	mem.t.putBatch(batch[:nb])
	st.Loaded = mem.t.len()
	return st
}

// parseLine parses "<digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time> [<expires>]"
// and returns the digest and its expiry in Unix ns (never for forever).
func parseLine(line []byte, legacyKeep time.Duration) (digest []byte, exp int64, legacy, ok bool) {
	var f [9][]byte
	n := 0
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if n == len(f) {
			return nil, 0, false, false
		}
		f[n] = line[i:j]
		n++
		i = j
	}
	if n != 7 && n != 8 {
		return nil, 0, false, false
	}
	if !validDigestBytes(f[0]) {
		return nil, 0, false, false
	}
	proto, ok1 := atoi(f[1])
	sport, ok2 := atoi(f[3])
	dport, ok3 := atoi(f[5])
	added, ok4 := atoi(f[6])
	if !ok1 || !ok2 || !ok3 || !ok4 || proto > 255 || sport > 65535 || dport > 65535 {
		return nil, 0, false, false
	}
	if n == 7 {
		if legacyKeep <= 0 {
			return f[0], never, true, true
		}
		if added > (never-int64(legacyKeep))/1e9 {
			return nil, 0, false, false
		}
		return f[0], added*1e9 + int64(legacyKeep), true, true
	}
	expSec, ok5 := atoi(f[7])
	if !ok5 || expSec > never/1_000_000_000 {
		return nil, 0, false, false
	}
	if expSec == 0 {
		return f[0], never, false, true
	}
	return f[0], expSec * 1e9, false, true
}

// atoi parses a non-negative decimal of at most 18 digits.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
