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

// Info is what a WAVE header says about the audio after it.
type Info struct {
	// ByteRate is the bytes of samples per second (never 0).
	ByteRate uint32
	// DataOffset is where the samples begin: after the data chunk's header.
	DataOffset int64
	// DataSize is the data chunk's declared size; 0 or 0xFFFFFFFF when the writer did not know
	// it (a stream).
	DataSize uint32
}

// Parse reads the header at the start of a WAVE file. head must reach the data chunk's header
// (a few hundred bytes suffice for common files).
func Parse(head []byte) (Info, error) {
	if len(head) < 12 || string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		return Info{}, ErrNotWAV
	}
	var byteRate uint32
	for p := 12; p+8 <= len(head); {
		id, size := string(head[p:p+4]), binary.LittleEndian.Uint32(head[p+4:p+8])
		body := p + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > len(head) {
				return Info{}, ErrNotWAV
			}
			byteRate = binary.LittleEndian.Uint32(head[body+8 : body+12])
		case "data":
			if byteRate == 0 {
				return Info{}, ErrNotWAV
			}
			return Info{ByteRate: byteRate, DataOffset: int64(body), DataSize: size}, nil
		}
		// Chunks are padded to an even size.
		next := uint64(body) + uint64(size) + uint64(size&1)
		if next > uint64(len(head)) {
			break
		}
		p = int(next)
	}
	return Info{}, ErrNotWAV
}

// Duration is the length in seconds that the WAVE header at the start of head declares.
// A header that does not declare its data size is ErrNotWAV.
func Duration(head []byte) (float64, error) {
	i, err := Parse(head)
	if err != nil {
		return 0, err
	}
	if i.DataSize == 0 || i.DataSize == math.MaxUint32 {
		return 0, ErrNotWAV
	}
	return float64(i.DataSize) / float64(i.ByteRate), nil
}

// Seconds is the length in whole seconds (rounded up, as audio is billed) of a WAVE file of
// fileSize bytes with this header: its declared data size, or the bytes the file holds after the
// data chunk's header when they are more, so that a header cannot make audio look shorter than
// the file is (trailing chunks then count as audio: an overestimate by their size).
func (i Info) Seconds(fileSize int64) int64 {
	size := int64(i.DataSize)
	if i.DataSize == math.MaxUint32 {
		size = 0
	}
	size = max(size, fileSize-i.DataOffset)
	if size <= 0 || i.ByteRate == 0 {
		return 0
	}
	return (size + int64(i.ByteRate) - 1) / int64(i.ByteRate)
}
