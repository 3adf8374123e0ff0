package quota

import (
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want redisConfig
	}{
		{"redis://localhost", redisConfig{addrs: []string{"localhost:6379"}}},
		{"redis://:s3cret@10.0.0.1:6380/2", redisConfig{addrs: []string{"10.0.0.1:6380"}, password: "s3cret", db: 2}},
		{"redis://app:p%40ss@h:1", redisConfig{addrs: []string{"h:1"}, user: "app", password: "p@ss"}},
		{"redis://:pa/ss:w@h", redisConfig{addrs: []string{"h:6379"}, password: "pa/ss:w"}},
		{"redis://[::1]:7000", redisConfig{addrs: []string{"[::1]:7000"}}},
		{"redis://[::1]", redisConfig{addrs: []string{"[::1]:6379"}}},
		{"rediss://:pw@cache.example.com:6380", redisConfig{addrs: []string{"cache.example.com:6380"}, password: "pw", tls: true}},
		{"redis+cluster://:pw@h1:7000,h2:7001,h3", redisConfig{addrs: []string{"h1:7000", "h2:7001", "h3:6379"}, password: "pw", cluster: true}},
		{"redis+sentinel://mymaster@s1:26380,s2", redisConfig{addrs: []string{"s1:26380", "s2:26379"}, master: "mymaster"}},
		{"redis+sentinel://:p@ss@mymaster@s1:1/3", redisConfig{addrs: []string{"s1:1"}, password: "p@ss", master: "mymaster", db: 3}},
	} {
		got, err := parseRedisURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	const pw = "hunter2"
	for _, tc := range []struct{ url, want string }{
		{"localhost:6379", "missing scheme"},
		{"http://:hunter2@h", "unknown scheme"},
		{"redis://:hunter2@", "no host"},
		{"redis://:hunter2@h:0", "host 1: invalid port"},
		{"redis://:hunter2@h:port", "host 1: invalid port"},
		{"redis://:hunter2", "host 1: empty host name"}, // the '@' forgotten
		{"redis://hunter2:x", "host 1: invalid port"},
		{"redis://:hunter2@h1:1,h2:2", "2 hosts"},
		{"redis+cluster://:hunter2@h1:1,,h2:2", "host 2: empty host name"},
		{"redis+cluster://:hunter2@h1:1/1", "only database 0"},
		{"redis://:hunter2@h/x", "not a non-negative number"},
		{"redis://:hunter2@h?dial_timeout=1s", "query parameters"},
		{"redis+sentinel://:hunter2@@s1", "master name"},
		{"redis+sentinel://s1:26379", "master name"},
		{"redis://:%zzhunter2@h", "invalid escape in the password"},
	} {
		_, err := parseRedisURL(tc.url)
		switch {
		case err == nil:
			t.Errorf("%s: no error", tc.url)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %q, want it to say %q", tc.url, err, tc.want)
		case strings.Contains(err.Error(), pw):
			t.Errorf("%s: %q leaks the password", tc.url, err)
		}
	}
}

func TestNewRedisClientKinds(t *testing.T) {
	for url, want := range map[string]string{
		"redis://h:1":                  "*redis.Client",
		"rediss://h:1":                 "*redis.Client",
		"redis+cluster://h1:1,h2:2":    "*redis.ClusterClient",
		"redis+sentinel://m@s1:1,s2:2": "*redis.Client", // a failover client is a Client
	} {
		c, err := NewRedisClient(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got := reflect.TypeOf(c).String(); got != want {
			t.Errorf("%s: %s, want %s", url, got, want)
		}
		c.Close()
	}
	c, _ := NewRedisClient("rediss://:pw@cache.example.com:6380/1")
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || !o.ContextTimeoutEnabled || o.DB != 1 || o.Password != "pw" {
		t.Errorf("rediss options: %+v", o)
	}
}
