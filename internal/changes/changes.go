// Package changes spreads admin changes (prices, quota policies, credit top-ups, deployment
// overrides, the providers and models of the catalog, A/B experiments) to every replica. The store stays the source of truth: a change is applied on the
// replica that made it at once, then announced through Redis (pub/sub for speed, a version
// counter polled for the messages pub/sub loses); each replica reloads what the change names from
// the store. Without Redis, every replica reloads each topic from the store on a short interval.
package changes

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topic names what changed; its argument (a model, a subject) names which item of it.
type Topic string

// The topics of the bus. Their spelling is shared between replicas (it is part of the Redis
// message and of the version counter's key), so a replica of another version understands them.
const (
	// Pricing: a model's price changed (argument: the model).
	Pricing Topic = "pricing"
	// Policy: a subject's quota policies changed (argument: "<subject type>/<subject id>").
	Policy Topic = "policy"
	// Credits: a credit account was topped up or adjusted (argument: "<subject type>/<subject id>").
	Credits Topic = "credits"
	// Deployments: a deployment's override changed (argument: the deployment id).
	Deployments Topic = "deployments"
	// Catalog: a provider or model defined through the admin API changed (no argument: the whole
	// catalog is read again).
	Catalog Topic = "catalog"
	// Experiments: an A/B experiment changed (no argument: the running ones are read again).
	Experiments Topic = "experiments"
)

// changesChannel carries "<topic>/<argument>" whenever an admin change needs every replica to
// reload something (a subject's quota policies, the price table).
const changesChannel = "llmgate:changes"

// changesVersionPrefix + topic is incremented with every change of that topic, so a replica that
// missed a pub/sub message (while reconnecting) notices within one poll.
const changesVersionPrefix = "llmgate:changes:version:"

// Bus spreads admin changes to every replica: each topic is registered with how to reload one
// item of it and all of it, Announce applies a change here and tells the others, and Watch
// applies the others' changes.
type Bus struct {
	redis redis.UniversalClient // nil without Redis
	log   *slog.Logger

	mu     sync.Mutex
	topics map[Topic]*topic
}

type topic struct {
	one     func(ctx context.Context, arg string) error // reload what arg names
	all     func(ctx context.Context) error             // reload everything
	version int64                                       // last version seen in Redis
}

// New returns a change bus over rdb (nil: store polling only).
func New(rdb redis.UniversalClient, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.Default()
	}
	return &Bus{redis: rdb, log: log, topics: map[Topic]*topic{}}
}

// Register names a topic and how to reload one item of it or all of it. Call before Watch.
func (c *Bus) Register(name Topic, one func(context.Context, string) error, all func(context.Context) error) {
	c.mu.Lock()
	c.topics[name] = &topic{one: one, all: all}
	c.mu.Unlock()
}

// Announce applies a change here and tells the other replicas.
func (c *Bus) Announce(ctx context.Context, name Topic, arg string) error {
	c.mu.Lock()
	t := c.topics[name]
	c.mu.Unlock()
	if t == nil {
		return errors.New("changes: unknown topic " + string(name))
	}
	if err := t.one(ctx, arg); err != nil {
		return err
	}
	if c.redis == nil {
		return nil
	}
	pipe := c.redis.Pipeline()
	pipe.Incr(ctx, changesVersionPrefix+string(name))
	pipe.Publish(ctx, changesChannel, string(name)+"/"+arg)
	_, err := pipe.Exec(ctx)
	return err
}

// Watch applies other replicas' changes until ctx ends.
func (c *Bus) Watch(ctx context.Context, pollEvery time.Duration) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var msgs <-chan *redis.Message
	if c.redis != nil {
		sub := c.redis.Subscribe(ctx, changesChannel)
		defer sub.Close()
		msgs = sub.Channel()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			name, arg, _ := strings.Cut(m.Payload, "/")
			c.mu.Lock()
			tp := c.topics[Topic(name)]
			c.mu.Unlock()
			if tp != nil {
				if err := tp.one(ctx, arg); err != nil && ctx.Err() == nil {
					c.log.Warn("reload after a change failed", "topic", name, "arg", arg, "err", err)
				}
			}
		case <-t.C:
			c.poll(ctx)
		}
	}
}

// poll reloads the topics whose Redis version moved, or every topic without Redis.
func (c *Bus) poll(ctx context.Context) {
	c.mu.Lock()
	names := make([]Topic, 0, len(c.topics))
	for n := range c.topics {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, name := range names {
		c.mu.Lock()
		tp := c.topics[name]
		c.mu.Unlock()
		v := int64(0)
		if c.redis != nil {
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			got, err := c.redis.Get(cctx, changesVersionPrefix+string(name)).Int64()
			cancel()
			if err != nil && !errors.Is(err, redis.Nil) {
				continue // Redis away: keep what we have
			}
			if v = got; v == tp.version {
				continue
			}
		}
		if err := tp.all(ctx); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("reload failed", "topic", name, "err", err)
			}
			continue
		}
		c.mu.Lock()
		tp.version = v
		c.mu.Unlock()
	}
}
