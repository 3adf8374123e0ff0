package oairender

// Pump is the readable side of a translated stream: the bytes rendered and not yet read (Out),
// and the error that ends the stream once they are (Err). A translator embeds one, appends to Out
// and sets Err in Step; Read calls Step only when Out is drained and Err unset, so an upstream
// event is read only when the client asks for more, and nothing is buffered beyond one event.
type Pump struct {
	Out  []byte
	Err  error
	Step func()
	off  int
}

// Read hands out Out, calling Step for more while it is drained.
func (p *Pump) Read(b []byte) (int, error) {
	for p.off >= len(p.Out) {
		if p.Err != nil {
			return 0, p.Err
		}
		p.Out, p.off = p.Out[:0], 0
		p.Step()
	}
	n := copy(b, p.Out[p.off:])
	p.off += n
	return n, nil
}
