package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestPolicyTable judges addresses without dialing any of them.
func TestPolicyTable(t *testing.T) {
	const (
		pub  = "public"
		priv = "private"
		forb = "forbidden"
	)
	for _, tc := range []struct {
		addr, class, what string
	}{
		{"8.8.8.8", pub, ""},
		{"1.1.1.1", pub, ""},
		{"2606:4700:4700::1111", pub, ""},
		{"100.63.255.255", pub, ""},
		{"100.128.0.0", pub, ""},
		{"172.32.0.1", pub, ""},
		{"127.0.0.1", priv, "loopback"},
		{"127.8.9.10", priv, "loopback"},
		{"::1", priv, "loopback"},
		{"::ffff:127.0.0.1", priv, "loopback"},
		{"10.0.0.1", priv, "private"},
		{"172.16.5.4", priv, "private"},
		{"192.168.1.1", priv, "private"},
		{"fc00::1", priv, "private"},
		{"fd12:3456::1", priv, "private"},
		{"fec0::1", priv, "private"},
		{"::ffff:10.1.2.3", priv, "private"},
		{"100.64.0.1", priv, "shared (CGNAT) address space"},
		{"198.18.0.1", priv, "benchmarking address space"},
		{"169.254.169.254", forb, "a cloud metadata address"},
		{"::ffff:169.254.169.254", forb, "a cloud metadata address"},
		{"64:ff9b::a9fe:a9fe", forb, "a cloud metadata address"}, // NAT64 of 169.254.169.254
		{"fd00:ec2::254", forb, "a cloud metadata address"},
		{"100.100.100.200", forb, "a cloud metadata address"},
		{"169.254.1.2", forb, "link-local"},
		{"fe80::1", forb, "link-local"},
		{"fe80::1%eth0", forb, "link-local"},
		{"0.0.0.0", forb, "unspecified"},
		{"0.1.2.3", forb, "unspecified"},
		{"::", forb, "unspecified"},
		{"::ffff:0.0.0.0", forb, "unspecified"},
		{"224.0.0.1", forb, "multicast"},
		{"239.255.255.250", forb, "multicast"},
		{"ff02::1", forb, "multicast"},
		{"255.255.255.255", forb, "broadcast"},
		{"240.0.0.1", forb, "reserved"},
	} {
		ip := netip.MustParseAddr(tc.addr)
		class, what := Classify(ip)
		got := map[Class]string{Public: pub, Private: priv, Forbidden: forb}[class]
		if got != tc.class || what != tc.what {
			t.Errorf("%s: %s (%q), want %s (%q)", tc.addr, got, what, tc.class, tc.what)
		}
		// The default policy allows public addresses only; AllowPrivate adds the private ones;
		// only an allow-list entry lets a forbidden one through.
		for _, p := range []struct {
			name  string
			pol   Policy
			allow bool
		}{
			{"default", Policy{}, tc.class == pub},
			{"allow_private_network", Policy{AllowPrivate: true}, tc.class != forb},
			{"allow list", Policy{Allow: []netip.Prefix{mustPrefix(t, ip.WithZone("").String())}}, true},
			{"unrelated allow list", Policy{Allow: []netip.Prefix{mustPrefix(t, "203.0.113.0/24")}}, tc.class == pub},
		} {
			err := p.pol.Check(ip)
			if (err == nil) != p.allow {
				t.Errorf("%s with the %s policy: %v, want allowed=%v", tc.addr, p.name, err, p.allow)
			}
			var re *RefusedError
			if err != nil && (!errors.As(err, &re) || !strings.Contains(err.Error(), tc.what)) {
				t.Errorf("%s: refusal %v does not say what the address is", tc.addr, err)
			}
		}
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1/32", "::1": "::1/128", "10.1.2.3/24": "10.1.2.0/24",
		"::ffff:10.0.0.1": "10.0.0.1/32", "::ffff:10.0.0.0/104": "10.0.0.0/8", "fd00::/8": "fd00::/8",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0", "10.0.0.0/8/8"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

func TestCheckHost(t *testing.T) {
	var p Policy
	for host, refused := range map[string]bool{
		"api.openai.com": false, "169.254.169.254": true, "::ffff:127.0.0.1": true, "0.0.0.0": true,
		"localhost": true, "LOCALHOST.": true, "vllm.localhost": true, "8.8.8.8": false, "fd00:ec2::254": true,
	} {
		if err := p.CheckHost(host); (err != nil) != refused {
			t.Errorf("CheckHost(%q) = %v, want refused=%v", host, err, refused)
		}
	}
	if err := (Policy{AllowPrivate: true}).CheckHost("localhost"); err != nil {
		t.Errorf("localhost with allow_private_network: %v", err)
	}
}

// TestControlHook calls the dialer hook as net.Dialer does, with resolved addresses: nothing is
// dialed.
func TestControlHook(t *testing.T) {
	var p Policy
	for _, addr := range []string{"169.254.169.254:80", "[::ffff:169.254.169.254]:80", "[fd00:ec2::254]:80", "100.100.100.200:80",
		"0.0.0.0:443", "[::]:443", "[::ffff:127.0.0.1]:8080", "127.0.0.1:8000", "10.0.0.1:443", "[fe80::1%eth0]:80", "garbage"} {
		var re *RefusedError
		if err := p.Control("tcp", addr, nil); !errors.As(err, &re) {
			t.Errorf("Control(%s) = %v, want a refusal", addr, err)
		}
	}
	if err := p.Control("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Errorf("a public address was refused: %v", err)
	}
	if err := (Policy{AllowPrivate: true}).Control("tcp", "10.0.0.1:443", nil); err != nil {
		t.Errorf("a private address with AllowPrivate: %v", err)
	}
	if err := (Policy{AllowPrivate: true}).Control("tcp", "169.254.169.254:80", nil); err == nil {
		t.Error("AllowPrivate let the metadata address through")
	}
}

// counting is a loopback upstream that counts the connections it accepts.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestClientDialsOnlyWhatPolicyAllows: real dials, to loopback only. By default the upstream never
// sees a connection; allowing private networks, or listing the address, lets it through.
func TestClientDialsOnlyWhatPolicyAllows(t *testing.T) {
	srv, conns := counting(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	get := func(p Policy, url string) error {
		c := NewClient(Options{Policy: p})
		defer c.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	localhostURL := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{srv.URL, localhostURL} {
		err := get(Policy{}, u)
		var re *RefusedError
		if !errors.As(err, &re) || conns.Load() != 0 {
			t.Fatalf("default policy, %s: err %v, %d connections reached the upstream; want a refusal and none", u, err, conns.Load())
		}
	}
	if err := get(Policy{AllowPrivate: true}, srv.URL); err != nil || conns.Load() != 1 {
		t.Errorf("AllowPrivate: %v (%d connections)", err, conns.Load())
	}
	if err := get(Policy{Allow: []netip.Prefix{mustPrefix(t, "127.0.0.1")}}, srv.URL); err != nil || conns.Load() != 2 {
		t.Errorf("allow list: %v (%d connections)", err, conns.Load())
	}
}

// TestClientDoesNotFollowRedirects: the 3xx comes back; the host it names is never contacted, so
// no credential header travels there.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	other, reached := counting(t, func(http.ResponseWriter, *http.Request) {})
	up, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	})
	c := NewClient(Options{Policy: Policy{AllowPrivate: true}})
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, up.URL, strings.NewReader(`{}`))
	req.Header.Set("X-Api-Key", "sk-secret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || reached.Load() != 0 {
		t.Errorf("HTTP %d, %d connections reached the redirect's target", resp.StatusCode, reached.Load())
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
