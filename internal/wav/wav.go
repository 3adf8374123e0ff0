// Package wav reads the length of a RIFF/WAVE recording from its first bytes, so that a
// transcription whose answer does not say how long its audio was can still be billed per second.
// Only the header is read: the "fmt " chunk's byte rate and the "data" chunk's declared size
// (http://soundfile.sapp.org/doc/WaveFormat/), walking any chunks between them (LIST, fact…).
package wav

import (
	"encoding/binary"
	"errors"
	"math"
)

// ErrNotWAV is returned for bytes that do not start a RIFF/WAVE file with a usable "fmt " chunk
// before its "data" chunk.
var ErrNotWAV = errors.New("wav: not a RIFF/WAVE header with fmt and data chunks")

// Duration is the length in seconds of the WAVE recording whose first bytes are head: the data
// chunk's size over the format's byte rate. head must reach the data chunk's header (a few
// hundred bytes suffice for common files). A data size of 0 or 0xFFFFFFFF (a stream whose length
// was unknown when the header was written) is ErrNotWAV, as the length cannot be told.
func Duration(head []byte) (float64, error) {
	if len(head) < 12 || string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		return 0, ErrNotWAV
	}
	var byteRate uint32
	for p := 12; p+8 <= len(head); {
		id, size := string(head[p:p+4]), binary.LittleEndian.Uint32(head[p+4:p+8])
		body := p + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > len(head) {
				return 0, ErrNotWAV
			}
			byteRate = binary.LittleEndian.Uint32(head[body+8 : body+12])
		case "data":
			if byteRate == 0 || size == 0 || size == math.MaxUint32 {
				return 0, ErrNotWAV
			}
			return float64(size) / float64(byteRate), nil
		}
		// Chunks are padded to an even size.
		next := uint64(body) + uint64(size) + uint64(size&1)
		if next > uint64(len(head)) {
			break
		}
		p = int(next)
	}
	return 0, ErrNotWAV
}

// Seconds is Duration rounded up to whole seconds, as audio is billed.
func Seconds(head []byte) (int64, error) {
	d, err := Duration(head)
	if err != nil {
		return 0, err
	}
	return int64(math.Ceil(d - 1e-9)), nil
}
