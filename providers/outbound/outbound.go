// Package outbound is how every provider adapter reaches its upstream: one HTTP client
// constructor (a pooled transport tuned for a gateway that never follows redirects) and the
// address policy its dialer applies to every connection, after DNS.
//
// The policy is a few rules over net/netip rather than a library (such as code.dny.dev/ssrf): the
// gateway needs two tiers (always refused, and private unless the provider allows it), an allow
// list that overrides both, a reason to show in config errors, and the same check on literal
// base_url addresses at config load; netip already classifies loopback, private, link-local and
// multicast, so the rest is a handful of prefixes.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Class is how the policy treats an address.
type Class uint8

const (
	// Public addresses are always allowed.
	Public Class = iota
	// Private addresses (loopback, RFC 1918, unique local, shared CGNAT space) are refused unless
	// the provider allows its private network or the allow list names them.
	Private
	// Forbidden addresses (link-local, cloud metadata, unspecified, multicast, broadcast,
	// reserved) are refused unless the allow list names them.
	Forbidden
)

var (
	// metadata are cloud instance-metadata endpoints outside link-local space: AWS's IPv6 one
	// (inside fc00::/7) and Alibaba Cloud's (inside 100.64.0.0/10). They would otherwise pass as
	// private addresses.
	metadata = map[netip.Addr]bool{
		netip.MustParseAddr("fd00:ec2::254"):   true,
		netip.MustParseAddr("100.100.100.200"): true,
	}
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // "this host on this network": dials reach the local host
	reserved4   = netip.MustParsePrefix("240.0.0.0/4")   // reserved, and 255.255.255.255 (broadcast)
	cgnat       = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 shared address space
	benchmark   = netip.MustParsePrefix("198.18.0.0/15") // RFC 2544, used inside networks
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052: carries an IPv4 address
	siteLocal6  = netip.MustParsePrefix("fec0::/10")     // deprecated, still routed inside some networks
	broadcast4  = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// canonical strips a zone and turns an address that carries an IPv4 address (IPv4-mapped, NAT64)
// into that IPv4 address, so that ::ffff:169.254.169.254 is judged as 169.254.169.254.
func canonical(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("").Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return ip
}

// Classify returns an address's class and what it is ("link-local", "loopback"…; "" for a
// public address).
func Classify(ip netip.Addr) (Class, string) {
	ip = canonical(ip)
	switch {
	case !ip.IsValid():
		return Forbidden, "not an IP address"
	case metadata[ip] || ip == netip.AddrFrom4([4]byte{169, 254, 169, 254}):
		return Forbidden, "a cloud metadata address"
	case ip.IsUnspecified() || thisNetwork.Contains(ip):
		return Forbidden, "unspecified"
	case ip.IsLinkLocalUnicast():
		return Forbidden, "link-local"
	case ip.IsMulticast():
		return Forbidden, "multicast"
	case ip == broadcast4:
		return Forbidden, "broadcast"
	case reserved4.Contains(ip):
		return Forbidden, "reserved"
	case ip.IsLoopback():
		return Private, "loopback"
	case ip.IsPrivate() || siteLocal6.Contains(ip):
		return Private, "private"
	case cgnat.Contains(ip):
		return Private, "shared (CGNAT) address space"
	case benchmark.Contains(ip):
		return Private, "benchmarking address space"
	}
	return Public, ""
}

// Policy decides which addresses an upstream connection may reach. Public addresses are allowed;
// private ones only with AllowPrivate (local vLLM and Ollama servers live there); forbidden ones
// never. An address inside one of Allow's prefixes is allowed whatever its class.
//
// RootCAs, when set, returns the certificate authorities the connections trust (the system's and
// outbound.ca_file's); nil trusts the system's. It is called on each TLS connection (see
// Config.RootCAs: the first call reads the system's roots).
//
// The zero Policy allows public addresses only.
type Policy struct {
	AllowPrivate bool
	Allow        []netip.Prefix
	RootCAs      func() *x509.CertPool
}

// RefusedError is a connection the policy refused. Its text names the address and its class,
// for logs and config errors; the gateway never shows it to clients.
type RefusedError struct {
	Addr netip.Addr
	// What the address is ("link-local"…).
	What  string
	Class Class
}

func (e *RefusedError) Error() string {
	how := "refused unless outbound.allow lists it"
	if e.Class == Private {
		how = "refused unless the provider sets allow_private_network or outbound.allow lists it"
	}
	return fmt.Sprintf("outbound policy: %s is %s (%s)", e.Addr, e.What, how)
}

// Check returns nil when the policy allows connecting to ip, else a *RefusedError.
func (p Policy) Check(ip netip.Addr) error {
	ip = canonical(ip)
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	class, what := Classify(ip)
	if class == Public || (class == Private && p.AllowPrivate) {
		return nil
	}
	return &RefusedError{Addr: ip, What: what, Class: class}
}

// Control is a net.Dialer Control hook: it runs on the resolved ip:port after the socket is
// created and before it connects, so no packet reaches a refused address whatever DNS answered.
// An address it cannot parse is refused.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{What: "not an IP address", Class: Forbidden}
	}
	return p.Check(ap.Addr())
}

// CheckHost checks a base URL's host name at config load, before any dial: a literal address
// (IPv6 without brackets) is checked as it is, and localhost names (RFC 6761: "localhost" and
// "*.localhost" always mean loopback) as 127.0.0.1. Other names are checked when they are
// dialed, on what they resolve to then.
func (p Policy) CheckHost(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.Check(ip)
	}
	if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return p.Check(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	return nil
}

// ParsePrefix reads one allow-list entry: a CIDR prefix ("10.1.2.0/24") or a single address
// ("127.0.0.1", "::1"). IPv4-mapped forms are stored as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not supported", s)
		}
		ip = canonical(ip)
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR prefix (e.g. 10.1.2.0/24)", s)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Options tune an upstream client. Zero values take the defaults.
type Options struct {
	// MaxIdleConnsPerHost sizes the keep-alive pool (default 512: a gateway keeps many
	// concurrent requests to few hosts, where net/http's default of 2 would re-dial constantly).
	MaxIdleConnsPerHost int
	// DialTimeout bounds connection set-up, TLS included (default 5s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's first byte (default 60s). Streams
	// are not bounded after that.
	ResponseHeaderTimeout time.Duration
	// Policy is checked on every address dialed.
	Policy Policy
}

// NewClient returns the HTTP client of one provider: a large keep-alive pool, bounded dial and
// header waits, HTTP/2 where the upstream offers it over TLS, plain-HTTP upstreams carried on the
// caller's goroutine (h1Transport: no goroutines per connection), no transparent gzip (the gateway
// relays bytes and must see SSE events as they arrive), no proxy from the environment (upstream
// URLs come only from configuration), the address policy on every dial, and no redirects. A
// followed 307/308 would re-send the body with the provider's credentials (custom headers such
// as api-key and x-api-key to any host, Authorization too when only the port differs) and relay
// the target's answer; the 3xx itself is returned instead, for the gateway to answer as an
// upstream error.
func NewClient(o Options) *http.Client {
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Control: o.Policy.Control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.DialTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		// Every connection, busy or idle in the pool, holds these two buffers for its life: at
		// 32 KiB each they were most of what an open stream costs. The relay reads events through
		// its own buffer, and net/http bypasses these for reads and writes larger than them. 2 KiB
		// rather than net/http's 4 KiB: the write buffer takes a request's headers (a body that
		// does not fit after them goes to the socket straight, as larger ones did before), and the
		// read buffer a response's header block and the framing of each streamed chunk.
		WriteBufferSize: 2 << 10,
		ReadBufferSize:  2 << 10,
	}
	if roots := o.Policy.RootCAs; roots != nil {
		// A TLS dial of our own, so that the roots are asked for when a connection needs them,
		// not when the client is made (a TLSClientConfig would need the pool now). It does what
		// the transport does with a TLSClientConfig: the policy's dialer, the host name to
		// verify, HTTP/2 offered (ForceAttemptHTTP2 keeps the transport speaking it when the
		// upstream picks it) and the handshake bounded by DialTimeout.
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(conn, &tls.Config{RootCAs: roots(), ServerName: host, MinVersion: tls.VersionTLS12,
				NextProtos: []string{"h2", "http/1.1"}})
			hctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				conn.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	h1 := &h1Transport{dial: d.DialContext, maxIdle: o.MaxIdleConnsPerHost, idleTimeout: tr.IdleConnTimeout,
		headerTimeout: o.ResponseHeaderTimeout, bufSize: tr.ReadBufferSize}
	return &http.Client{Transport: &splitTransport{h1: h1, std: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Config is the config file's `outbound` section.
type Config struct {
	// Allow lists addresses and CIDR prefixes every provider may connect to whatever their class:
	// the one way to reach a link-local or metadata address, or a private one from a provider
	// that does not set allow_private_network.
	Allow []string `yaml:"allow"`
	// CAFile is a PEM bundle of certificate authorities every provider trusts besides the
	// system's: for upstreams behind a private CA (vLLM or Ollama behind an internal proxy).
	CAFile string `yaml:"ca_file"`
}

// RootCAs reads and checks CAFile, and returns what Policy.RootCAs takes: a function returning the
// system's roots with CAFile's added; nil (the system's roots) when CAFile is empty. Its error
// names outbound.ca_file. The system's roots are read on the function's first call, the first TLS
// connection of an upstream, rather than now: parsed, they take about 1.5 MB, which a gateway
// whose upstreams are plain HTTP, or not called yet, need not hold (crypto/tls reads them on
// first use in the same way when no CA file is set).
func (c Config) RootCAs() (func() *x509.CertPool, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("outbound.ca_file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, errors.New("outbound.ca_file: " + c.CAFile + " holds no PEM certificate")
	}
	return sync.OnceValue(func() *x509.CertPool {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool() // no system roots here: the file's alone
		}
		pool.AppendCertsFromPEM(pem)
		return pool
	}), nil
}

// Prefixes parses Allow; its error names the entry (outbound.allow[i]).
func (c Config) Prefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.Allow))
	for i, s := range c.Allow {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("outbound.allow[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}
