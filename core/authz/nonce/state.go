package nonce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// state is what the log describes; Store and Memory share it.
type state struct {
	entries   map[string]entry
	floor     int64 // ops expiring at or before it are refused
	highWater int64 // newest accepted issued_at
	records   int   // records decoded (decodeLog only)
}

type entry struct{ issued, expires int64 }

func newState() state { return state{entries: map[string]entry{}} }

func (st *state) checkClock(now time.Time, skew time.Duration) error {
	n := now.UnixNano()
	if st.highWater != 0 && n < st.highWater-int64(skew) {
		return fmt.Errorf("%w: clock reads %s, an op issued at %s was already accepted (skew %s)",
			ErrClockRollback, now.UTC().Format(time.RFC3339), time.Unix(0, st.highWater).UTC().Format(time.RFC3339), skew)
	}
	if st.floor != 0 && n < st.floor {
		return fmt.Errorf("%w: clock reads %s, ops expiring up to %s were already pruned",
			ErrClockRollback, now.UTC().Format(time.RFC3339), time.Unix(0, st.floor).UTC().Format(time.RFC3339))
	}
	return nil
}

// admit says whether an op may be added.
func (st *state) admit(opID string, exp int64) error {
	if _, ok := st.entries[opID]; ok {
		return fmt.Errorf("%w: %s", ErrReplay, opID)
	}
	if exp <= st.floor {
		return fmt.Errorf("%w: op %s expires at %s, at or before %s", ErrExpired, opID,
			time.Unix(0, exp).UTC().Format(time.RFC3339), time.Unix(0, st.floor).UTC().Format(time.RFC3339))
	}
	return nil
}

func (st *state) add(opID string, iss, exp int64) {
	st.entries[opID] = entry{iss, exp}
	st.highWater = max(st.highWater, iss)
}

func (st *state) prunable(now time.Time, skew time.Duration) bool {
	cut := now.Add(-skew).UnixNano()
	for _, e := range st.entries {
		if e.expires < cut {
			return true
		}
	}
	return false
}

// pruned returns a copy without entries that expired more than skew ago,
// with the floor raised to the newest expiry dropped.
func (st *state) pruned(now time.Time, skew time.Duration) state {
	cut := now.Add(-skew).UnixNano()
	next := state{entries: make(map[string]entry, len(st.entries)), floor: st.floor, highWater: st.highWater}
	for id, e := range st.entries {
		if e.expires < cut {
			next.floor = max(next.floor, e.expires)
			continue
		}
		next.entries[id] = e
	}
	return next
}

const (
	header      = "felhom-nonce v1\n"
	frameHeader = 8
	kindOp      = 1
	kindState   = 2
	maxPayload  = 1 + 8 + 8 + 1 + MaxOpIDLen
	maxFrame    = frameHeader + maxPayload
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func appendFrame(b, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

func encodeOp(opID string, iss, exp int64) []byte {
	p := make([]byte, 0, 18+len(opID))
	p = append(p, kindOp)
	p = binary.BigEndian.AppendUint64(p, uint64(iss))
	p = binary.BigEndian.AppendUint64(p, uint64(exp))
	p = append(p, byte(len(opID)))
	return append(p, opID...)
}

func encodeState(floor, highWater int64) []byte {
	p := []byte{kindState}
	p = binary.BigEndian.AppendUint64(p, uint64(floor))
	return binary.BigEndian.AppendUint64(p, uint64(highWater))
}

// encode writes a whole log holding st.
func (st *state) encode() []byte {
	b := []byte(header)
	b = appendFrame(b, encodeState(st.floor, st.highWater))
	for id, e := range st.entries {
		b = appendFrame(b, encodeOp(id, e.issued, e.expires))
	}
	return b
}

var errCorrupt = errors.New("nonce log is corrupt")

// decodeLog reads a log. good is the length of the valid prefix: when it
// is shorter than data, the rest is a torn last record to drop.
func decodeLog(data []byte) (st state, good int, err error) {
	if len(data) < len(header) || string(data[:len(header)]) != header {
		return state{}, 0, fmt.Errorf("%w: missing header %q", errCorrupt, header)
	}
	st = newState()
	off := len(header)
	for off < len(data) {
		payload, ok := frameAt(data, off)
		if !ok {
			if len(data)-off <= maxFrame {
				return st, off, nil // torn tail
			}
			return state{}, 0, fmt.Errorf("%w: invalid record at offset %d with %d bytes after it", errCorrupt, off, len(data)-off)
		}
		if err := st.apply(payload); err != nil {
			return state{}, 0, fmt.Errorf("%w: record at offset %d: %v", errCorrupt, off, err)
		}
		st.records++
		off += frameHeader + len(payload)
	}
	return st, off, nil
}

func frameAt(data []byte, off int) ([]byte, bool) {
	if len(data)-off < frameHeader {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(data[off:]))
	sum := binary.BigEndian.Uint32(data[off+4:])
	if n == 0 || n > maxPayload || len(data)-off-frameHeader < n {
		return nil, false
	}
	payload := data[off+frameHeader : off+frameHeader+n]
	if crc32.Checksum(payload, crcTable) != sum {
		return nil, false
	}
	return payload, true
}

func (st *state) apply(p []byte) error {
	switch p[0] {
	case kindOp:
		if len(p) < 18 || len(p) != 18+int(p[17]) || p[17] == 0 {
			return fmt.Errorf("op record of %d bytes", len(p))
		}
		iss := int64(binary.BigEndian.Uint64(p[1:]))
		exp := int64(binary.BigEndian.Uint64(p[9:]))
		st.add(string(p[18:]), iss, exp)
	case kindState:
		if len(p) != 17 {
			return fmt.Errorf("state record of %d bytes", len(p))
		}
		st.floor = max(st.floor, int64(binary.BigEndian.Uint64(p[1:])))
		st.highWater = max(st.highWater, int64(binary.BigEndian.Uint64(p[9:])))
	default:
		return fmt.Errorf("unknown record kind %d", p[0])
	}
	return nil
}
