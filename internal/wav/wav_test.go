package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// header builds a WAVE header: fmt with the byte rate, the extra chunks, then a data chunk
// declaring size bytes (the samples themselves are not needed).
func header(byteRate, size uint32, extra ...[]byte) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + size))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(byteRate / 2)
	le(byteRate)
	le(uint16(2))
	le(uint16(16))
	for _, e := range extra {
		b.Write(e)
	}
	b.WriteString("data")
	le(size)
	return b.Bytes()
}

func TestDuration(t *testing.T) {
	odd := append([]byte("LIST\x03\x00\x00\x00abc"), 0) // odd size, padded
	for _, tc := range []struct {
		name string
		head []byte
		want float64
		err  bool
	}{
		{"3 s at 16 kHz", header(32000, 96000), 3, false},
		{"1.5 s", header(16000, 24000), 1.5, false},
		{"chunk before data", header(16000, 16000, []byte("fact\x04\x00\x00\x00\x10\x00\x00\x00")), 1, false},
		{"padded odd chunk", header(16000, 8000, odd), 0.5, false},
		{"not RIFF", []byte("ID3\x04 this is an mp3 file"), 0, true},
		{"truncated", header(16000, 16000)[:30], 0, true},
		{"unknown length", header(16000, 0xFFFFFFFF), 0, true},
		{"zero rate", header(0, 100), 0, true},
		{"empty", nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Duration(tc.head)
			if tc.err != (err != nil) || (err != nil && !errors.Is(err, ErrNotWAV)) || d != tc.want {
				t.Errorf("Duration = %v, %v; want %v (error %v)", d, err, tc.want, tc.err)
			}
		})
	}
}

// TestSeconds: whole seconds rounded up, from the declared size or the file's own size when that
// is more (a header that understates its data, or a stream's unknown size).
func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		declared uint32
		fileSize int64
		want     int64
	}{
		{"as declared", 24000, 44 + 24000, 2},
		{"declared more than sent", 64000, 44 + 100, 4},
		{"understated", 16000, 44 + 160000, 10},
		{"unknown size", 0xFFFFFFFF, 44 + 48000, 3},
		{"nothing", 0, 44, 0},
	} {
		i, err := Parse(header(16000, tc.declared))
		if err != nil || i.DataOffset != 44 {
			t.Fatalf("%s: %+v, %v", tc.name, i, err)
		}
		if got := i.Seconds(tc.fileSize); got != tc.want {
			t.Errorf("%s: %d s, want %d", tc.name, got, tc.want)
		}
	}
}

func FuzzDuration(f *testing.F) {
	f.Add(header(32000, 96000))
	f.Add(header(16000, 8000, []byte("LIST\x03\x00\x00\x00abc\x00")))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := Duration(b); err == nil && d <= 0 {
			t.Errorf("Duration %v without error", d)
		}
		if i, err := Parse(b); err == nil && (i.ByteRate == 0 || i.DataOffset > int64(len(b)) || i.Seconds(int64(len(b))) < 0) {
			t.Errorf("Parse %+v", i)
		}
	})
}
