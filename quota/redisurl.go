package quota

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewRedisClient connects to Redis as configured by redis_url, in one of the forms of the design:
//
//	redis://[[user]:pass@]host[:port][/db]                  single node
//	rediss://[[user]:pass@]host[:port][/db]                 single node over TLS
//	redis+cluster://[[user]:pass@]h1:p1,h2:p2,…             Redis Cluster (seed nodes)
//	redis+sentinel://[[user]:pass@]master@h1:p1,h2:p2,…[/db] Sentinel: master name, sentinels
//
// The port defaults to 6379 (26379 for sentinels). Special characters in the password are
// percent-encoded. The client honours context deadlines, so Resilient's timeout cuts a call to a
// hung server short. Errors name the problem and never contain the password.
func NewRedisClient(rawURL string) (redis.UniversalClient, error) {
	c, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch {
	case c.cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.addrs, Username: c.user, Password: c.password, ContextTimeoutEnabled: true,
		}), nil
	case c.master != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.master, SentinelAddrs: c.addrs, Username: c.user, Password: c.password,
			DB: c.db, ContextTimeoutEnabled: true,
		}), nil
	default:
		o := &redis.Options{
			Addr: c.addrs[0], Username: c.user, Password: c.password, DB: c.db, ContextTimeoutEnabled: true,
		}
		if c.tls {
			host, _, _ := net.SplitHostPort(c.addrs[0])
			o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		return redis.NewClient(o), nil
	}
}

// redisConfig is a parsed redis_url.
type redisConfig struct {
	addrs          []string
	user, password string
	db             int
	tls, cluster   bool
	master         string // sentinel mode when set
}

func parseRedisURL(raw string) (redisConfig, error) {
	var c redisConfig
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return c, fmt.Errorf("redis_url: missing scheme (want redis://, rediss://, redis+cluster:// or redis+sentinel://)")
	}
	defaultPort := "6379"
	switch scheme {
	case "redis":
	case "rediss":
		c.tls = true
	case "redis+cluster":
		c.cluster = true
	case "redis+sentinel":
		defaultPort = "26379"
	default:
		return c, fmt.Errorf("redis_url: unknown scheme (want redis, rediss, redis+cluster or redis+sentinel)")
	}
	// The last '@' ends the userinfo (and, for a sentinel, the master name), so a password may
	// hold any character but '@' unescaped. Nothing before it is ever quoted in an error.
	var prefix, hosts string
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		prefix, hosts = rest[:i], rest[i+1:]
	} else {
		hosts = rest
	}
	if strings.ContainsAny(hosts, "?#") {
		return c, fmt.Errorf("redis_url: query parameters and fragments are not supported")
	}
	hosts, path, _ := strings.Cut(hosts, "/")
	userinfo := prefix
	if scheme == "redis+sentinel" {
		if i := strings.LastIndexByte(prefix, '@'); i >= 0 {
			userinfo, c.master = prefix[:i], prefix[i+1:]
		} else {
			userinfo, c.master = "", prefix
		}
		if c.master == "" {
			return c, fmt.Errorf("redis_url: redis+sentinel needs the master name before the hosts (redis+sentinel://master@h1:p1,h2:p2)")
		}
		var err error
		if c.master, err = url.PathUnescape(c.master); err != nil {
			return c, fmt.Errorf("redis_url: invalid escape in the master name")
		}
	}
	if userinfo != "" {
		user, pass, _ := strings.Cut(userinfo, ":")
		var err error
		if c.user, err = url.PathUnescape(user); err != nil {
			return c, fmt.Errorf("redis_url: invalid escape in the user name")
		}
		if c.password, err = url.PathUnescape(pass); err != nil {
			return c, fmt.Errorf("redis_url: invalid escape in the password")
		}
	}
	if hosts == "" {
		return c, fmt.Errorf("redis_url: no host")
	}
	for i, h := range strings.Split(hosts, ",") {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			// Hosts are not quoted: in a URL without '@' a mistyped password would sit here.
			return c, fmt.Errorf("redis_url: host %d: %w", i+1, err)
		}
		c.addrs = append(c.addrs, addr)
	}
	if len(c.addrs) > 1 && !c.cluster && c.master == "" {
		return c, fmt.Errorf("redis_url: %d hosts for %s://, which takes one (use redis+cluster:// or redis+sentinel://)", len(c.addrs), scheme)
	}
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return c, fmt.Errorf("redis_url: the database (after the last /) is not a non-negative number")
		}
		if c.cluster && db != 0 {
			return c, fmt.Errorf("redis_url: Redis Cluster has only database 0, not %d", db)
		}
		c.db = db
	}
	return c, nil
}

// hostPort validates one host[:port], adding the default port.
func hostPort(h, defaultPort string) (string, error) {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a bare name, or a bracketed IPv6 literal.
		host, port = h, defaultPort
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		} else if strings.ContainsAny(h, ":[]") {
			return "", fmt.Errorf("not host[:port]")
		}
	}
	if host == "" {
		return "", fmt.Errorf("empty host name")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("invalid port")
	}
	return net.JoinHostPort(host, port), nil
}
