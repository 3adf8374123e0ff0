package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/llmgate/store"
)

// Sink is where batches go: the store in production, anything with the same method in tests.
//
// InsertUsage must be idempotent on (RequestID, StartedAt), because a batch may be written again
// after an ambiguous failure or a crash; safe for concurrent use, because the writer and the
// replayer may both be writing; and it must return when ctx ends, because Close relies on that to
// meet its deadline. Errors that mean "this data can never be written" should wrap ErrRejected
// (or be recognised by the default classification, see ErrRejected); every other error is taken
// as transient and the records are kept.
type Sink interface {
	InsertUsage(ctx context.Context, recs []store.UsageRecord) (int, error)
}

// Options is the `usage` section of the config. Zero values mean the defaults.
type Options struct {
	// QueueSize bounds the queue between requests and the writers (default 65536). The queue
	// grows with its backlog up to this bound and is let go when the writers find it empty.
	QueueSize int `yaml:"queue_size"`
	// BatchSize flushes a batch when it holds this many records (default 5000); replay uses the
	// same size. Each batch is one transaction with a fixed cost (temporary table, commit,
	// rollup upserts) of 10-15 ms in PostgreSQL here, so larger batches carry more rows per
	// second: on this 2-core machine 89k rows/s at 5000 against 62k at 1000, and 60k against
	// 36k while other work loaded it (BenchmarkWriterPostgres).
	BatchSize int `yaml:"batch_size"`
	// Writers is how many batch writers drain the queue in parallel, each with its own batch,
	// flushed by BatchSize or FlushInterval, and its own transaction (default 1; the gateway's
	// configuration defaults to 2, see DefaultWriters). The store orders every row lock a batch takes (usage keys,
	// rollups, ledger entries, balances), so concurrent batches that charge the same accounts and
	// add to the same rollups wait for each other instead of deadlocking; a transaction that
	// fails anyway is rolled back whole and retried like any transient failure, and the store's
	// idempotency keeps a retried batch from counting or charging twice. PostgreSQL only: the
	// SQLite store has one writing connection, so the gateway runs one writer there. What a
	// kill -9 loses grows with it: every writer's batch and the queue are in memory.
	Writers int `yaml:"writers"`
	// FlushInterval flushes a non-empty batch at least this often (default 200ms).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// WriteRetries is how many times a failed batch write is retried, with backoff, before the
	// batch is spooled and the database taken as down (default 3: the ledger's contract is
	// three retries, then an alert).
	WriteRetries int `yaml:"write_retries"`
	// WriteTimeout bounds one call into the Sink (default 30s).
	WriteTimeout time.Duration `yaml:"write_timeout"`

	// SpoolDir holds the spool segments. Empty disables the spool: a full queue then drops
	// records and a batch failing its retries is lost (both counted and logged), as before the
	// spool existed. Production sets it (cmd/llmgate: under data_dir).
	SpoolDir string `yaml:"spool_dir"`
	// DeadLetterDir receives records the database rejects and spool bytes that cannot be decoded
	// (default: a "deadletter" directory beside SpoolDir; with neither set, dead letters are only
	// logged).
	DeadLetterDir string `yaml:"dead_letter_dir"`
	// SpoolSegmentBytes rotates the active segment when it would grow past this (default 64 MiB).
	SpoolSegmentBytes int64 `yaml:"spool_segment_bytes"`
	// SpoolMaxBytes bounds the spool on disk, every segment together (default 1 GiB; negative:
	// no bound, the disk is the limit). A full spool refuses new records: they are dropped,
	// counted (Stats.SpoolFullDropped and Stats.Dropped) and logged, never waited for, and what
	// the spool holds is kept and replayed; room comes back as replay deletes segments.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// SpoolSyncInterval is how often the active segment is fsynced (default 1s): the most a
	// machine crash can lose of the spool. A process crash loses none of it.
	SpoolSyncInterval time.Duration `yaml:"spool_sync_interval"`
	// ReplayInterval is how often replay is tried while the database is down, and how often the
	// writer probes it with a fresh batch instead of spooling (default 1s).
	ReplayInterval time.Duration `yaml:"replay_interval"`

	// RetentionMonths is how long usage records are kept, applied by the store's upkeep (see
	// Upkeep): 0 (the default) keeps them forever; N keeps the current month and the N months
	// before it, deleting older records (PostgreSQL drops their monthly partitions). Rollups,
	// credits and the admin audit log are not affected.
	RetentionMonths int `yaml:"retention_months"`
	// UpkeepInterval is how often the store's usage upkeep runs after the one at start: making
	// PostgreSQL's monthly partitions ahead and applying RetentionMonths (default 1h).
	UpkeepInterval time.Duration `yaml:"upkeep_interval"`

	// Registerer, when set, receives the recorder's metrics (see metrics.go); they are
	// unregistered by Close.
	Registerer prometheus.Registerer `yaml:"-"`
}

// DefaultWriters is the gateway's usage.writers when its configuration does not say: on this
// project's 2-core machine, shared with other work, two writers carried charged batches into
// PostgreSQL at 1.1-1.6 times the rows per second of one with 50 accounts, while four gained
// little more there and lost against two with 1,000 accounts (BenchmarkWriterPostgresCharged).
// The package's own default, for an Options without Writers, stays one writer.
const DefaultWriters = 2

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.WriteRetries <= 0 {
		o.WriteRetries = 3
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.DeadLetterDir == "" && o.SpoolDir != "" {
		o.DeadLetterDir = filepath.Join(filepath.Dir(filepath.Clean(o.SpoolDir)), "deadletter")
	}
	if o.SpoolSegmentBytes <= 0 {
		o.SpoolSegmentBytes = 64 << 20
	}
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = 1 << 30
	}
	if o.SpoolSyncInterval <= 0 {
		o.SpoolSyncInterval = time.Second
	}
	if o.ReplayInterval <= 0 {
		o.ReplayInterval = time.Second
	}
	return o
}

// Stats are the recorder's counters, for metrics. A record may be counted in several of them
// over its life (spooled, then replayed).
type Stats struct {
	// Enqueued counts records taken into the queue.
	Enqueued int64
	// Written counts records the Sink acknowledged, fresh and replayed (a record written twice
	// after an ambiguous failure counts twice; the database keeps one row).
	Written int64
	// Dropped counts records lost: no spool configured, or the spool could not take them.
	Dropped int64
	// SpoolFullDropped counts the records of Dropped the spool refused because it was at
	// SpoolMaxBytes.
	SpoolFullDropped int64
	// WriteErrors counts failed Sink calls, each retry and each half of a split batch included.
	WriteErrors int64
	// Spooled counts records appended to the spool: queue full, database down, Close deadline.
	Spooled int64
	// Replayed counts spooled records the Sink acknowledged.
	Replayed int64
	// DeadLettered counts records (and undecodable spool frames or tails) set aside for good.
	DeadLettered int64
	// Backlog is the number of records in the queue now.
	Backlog int
	// SpoolBytes and SpoolSegments are the spool's size on disk now.
	SpoolBytes    int64
	SpoolSegments int
}

// Recorder is the queue, its writers, the spool and its replayer. Record is safe for concurrent
// use; Close once (later calls return nil).
type Recorder struct {
	opts     Options
	sink     Sink
	classify func(error) bool
	log      *slog.Logger
	q        *queue // records from queuedRecords (see there why pointers)
	// kick wakes a writer when the queue holds a whole batch. Writers do not wait for each
	// record: a writer woken by every record costs a thread wake-up per request; instead they take
	// what is queued on kick or on FlushInterval's tick.
	kick chan struct{}
	// kickAt is the queue length that kicks a writer: a batch, or half the queue when a batch
	// would not fit in it (else the queue would fill, and spool, before a writer took it).
	kickAt  int
	spool   *spool       // nil without SpoolDir
	dead    *deadLetters // never nil; logs only without a directory
	metrics *metrics

	// closeMu makes closing and sending exclusive: once closed is set under the write lock, no
	// Record pushes onto the queue any more, so it can be drained to empty.
	closeMu sync.RWMutex
	closed  bool

	// life guards the side effects of the writers and the replayer (spooling, dead-lettering,
	// deleting segments) against Close: when Close's deadline passes while writers are stuck in
	// the Sink, Close sets shut, spools their batches itself and closes the spool; a goroutine,
	// when it returns, sees shut and exits without touching anything.
	life     sync.Mutex
	shut     bool
	inflight [][]store.UsageRecord // by writer: its batch while it is being written
	busy     int                   // writers with a batch in inflight
	live     int                   // writers that have not exited

	stop    chan struct{}   // closed by Close
	stopCtx context.Context // Close's context; written before stop is closed
	// writeCtx is the context of the writer's writes before Close; Close cancels it when its
	// deadline passes, so a write in flight then ends at once (with a Sink that honours it).
	writeCtx    context.Context
	writeCancel context.CancelFunc
	writerDone  chan struct{} // closed when every writer has exited
	replayStop  context.CancelFunc
	replayDone  chan struct{}
	replayWake  chan struct{}
	closeOnce   sync.Once
	closeErr    error

	down      atomic.Bool  // the last write failed: spool batches instead of retrying
	nextProbe atomic.Int64 // unix nanos: when the writer may try the database again while down

	enqueued, written, dropped, writeErrors atomic.Int64
	spooled, replayed, deadLettered         atomic.Int64
	spoolFull                               atomic.Int64 // of dropped: refused by a full spool
	lastDropLog                             atomic.Int64

	cursor replayCursor // replayer goroutine only
}

// New starts a recorder: it opens the spool (replaying what a previous run left there, in the
// background), registers the metrics and starts the writer. It fails when the spool directory
// cannot be used or the metrics cannot be registered.
func New(sink Sink, opts Options, log *slog.Logger) (*Recorder, error) {
	opts = opts.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{opts: opts, sink: sink, log: log,
		q: newQueue(opts.QueueSize), stop: make(chan struct{}),
		writerDone: make(chan struct{}), replayWake: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		inflight: make([][]store.UsageRecord, opts.Writers), live: opts.Writers}
	r.kickAt = max(1, min(opts.BatchSize, opts.QueueSize/2))
	r.classify = classifier(sink)
	r.dead = newDeadLetters(opts.DeadLetterDir, log, &r.deadLettered)
	if opts.SpoolDir == "" {
		log.Error("usage spool disabled (usage.spool_dir is empty): " +
			"records are LOST when the queue is full or the database is down")
	} else {
		sp, err := openSpool(opts.SpoolDir, opts.SpoolSegmentBytes, opts.SpoolSyncInterval, log, r.wakeReplay, opts.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		r.spool = sp
		if n, b := sp.backlog(); n > 0 {
			log.Info("usage spool: replaying what a previous run left", "segments", n, "bytes", b)
		}
	}
	m, err := newMetrics(r, opts.Registerer)
	if err != nil {
		if r.spool != nil {
			r.spool.close()
		}
		return nil, err
	}
	r.metrics = m
	r.writeCtx, r.writeCancel = context.WithCancel(context.Background())
	var writers sync.WaitGroup
	for id := range opts.Writers {
		writers.Go(func() { r.run(id) })
	}
	go func() {
		writers.Wait()
		close(r.writerDone)
	}()
	if r.spool != nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.replayStop, r.replayDone = cancel, make(chan struct{})
		go r.replayLoop(ctx)
	}
	return r, nil
}

// NewRecorder is New for callers that cannot handle an error: when the spool or the metrics
// cannot be set up it logs the error loudly and carries on with what works (without metrics, or
// without a spool), rather than refusing to start the gateway.
func NewRecorder(sink Sink, opts Options, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.Default()
	}
	for {
		r, err := New(sink, opts, log)
		if err == nil {
			return r
		}
		log.Error("usage recorder degraded", "err", err)
		if errors.Is(err, errMetrics) {
			opts.Registerer = nil
		} else {
			opts.SpoolDir, opts.DeadLetterDir = "", "" // without both, New cannot fail
		}
	}
}

// Record takes one record without ever blocking: into the queue, or, when the queue is full
// (or Close has begun), into the spool. It reports false only when the record was lost (no
// spool, or the spool failed); that is counted in Stats.Dropped and logged.
func (r *Recorder) Record(rec store.UsageRecord) bool {
	r.closeMu.RLock()
	if !r.closed {
		p := queuedRecords.Get().(*store.UsageRecord)
		*p = rec
		if n, ok := r.q.push(p); ok {
			r.closeMu.RUnlock()
			r.enqueued.Add(1)
			if n >= r.kickAt {
				r.kickWriter()
			}
			return true
		}
		*p = store.UsageRecord{}
		queuedRecords.Put(p)
	}
	r.closeMu.RUnlock()
	return r.overflow(rec)
}

// kickWriter wakes a writer unless one is already being woken.
func (r *Recorder) kickWriter() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// queuedRecords hold the records in the queue, reused so that Record allocates nothing. The
// queue holds pointers rather than records because a record is some 500 bytes: a ring of values
// would be copied whole each time it grows, and a full one (32 MB at the default QueueSize) would
// be one object the collector counts as live heap until the queue is idle again.
var queuedRecords = sync.Pool{New: func() any { return new(store.UsageRecord) }}

// dequeue appends a record taken from the queue to batch and gives its holder back to
// queuedRecords, cleared so that the pool does not keep its strings alive.
func dequeue(batch []store.UsageRecord, p *store.UsageRecord) []store.UsageRecord {
	batch = append(batch, *p)
	*p = store.UsageRecord{}
	queuedRecords.Put(p)
	return batch
}

// overflow spools one record the queue could not take.
func (r *Recorder) overflow(rec store.UsageRecord) bool {
	if r.spool == nil {
		r.dropped.Add(1)
		r.logDrop("usage queue full and no spool: record dropped", 1, nil)
		return false
	}
	if err := r.spool.appendOne(&rec); err != nil {
		r.dropped.Add(1)
		if errors.Is(err, errSpoolFull) {
			r.spoolFull.Add(1)
			r.logDrop("usage spool full (usage.spool_max_bytes): record dropped", 1, err)
			return false
		}
		r.logDrop("usage spool append failed: record dropped", 1, err)
		return false
	}
	r.spooled.Add(1)
	return true
}

// logDrop logs lost records at most once every 5 seconds, so a full disk does not also flood
// the log from every request; Stats.Dropped has the exact count.
func (r *Recorder) logDrop(msg string, n int, err error) {
	now := time.Now().UnixNano()
	last := r.lastDropLog.Load()
	if now-last < int64(5*time.Second) || !r.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	r.log.Error(msg, "records", n, "dropped_total", r.dropped.Load(), "err", err)
}

// Stats returns a snapshot of the counters.
func (r *Recorder) Stats() Stats {
	s := Stats{
		Enqueued: r.enqueued.Load(), Written: r.written.Load(), Dropped: r.dropped.Load(), SpoolFullDropped: r.spoolFull.Load(),
		WriteErrors: r.writeErrors.Load(), Spooled: r.spooled.Load(), Replayed: r.replayed.Load(),
		DeadLettered: r.deadLettered.Load(), Backlog: r.q.len(),
	}
	if r.spool != nil {
		s.SpoolSegments, s.SpoolBytes = r.spool.backlog()
	}
	return s
}

// SpoolState is what readiness needs to know of the spool: whether there is one, how much it
// holds, its bound, and whether it can take another record.
type SpoolState struct {
	// Enabled is false without a spool directory: records the database cannot take are lost.
	Enabled bool
	// Bytes is the spool's size on disk, every segment together; MaxBytes its bound (0: none).
	Bytes, MaxBytes int64
	// Full says the spool would refuse a record of ordinary size now (Options.SpoolMaxBytes).
	Full bool
}

// SpoolState reports the spool's room, by the same rule appends follow.
func (r *Recorder) SpoolState() SpoolState {
	if r.spool == nil {
		return SpoolState{}
	}
	return SpoolState{Enabled: true, Bytes: r.spool.bytes.Load(), MaxBytes: max(r.spool.maxBytes, 0), Full: !r.spool.fits(typicalFrameBytes)}
}

// Close stops taking records into the queue, writes what is queued within ctx's deadline, and
// spools whatever is not written by then (fsynced before Close returns), so the next start
// replays it. It returns an error only when records were lost (the spool failed, or there is
// none and the database did not take them) or the spool could not be fsynced.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { r.closeErr = r.close(ctx) })
	return r.closeErr
}

func (r *Recorder) close(ctx context.Context) error {
	droppedBefore := r.dropped.Load()
	r.closeMu.Lock()
	r.closed = true
	r.closeMu.Unlock()
	r.stopCtx = ctx
	close(r.stop)
	if r.replayStop != nil {
		r.replayStop() // the spool keeps; the database is the drain's
	}

	r.awaitWriter(ctx)
	if r.replayDone != nil {
		select {
		case <-r.replayDone:
		case <-ctx.Done():
		}
	}

	r.life.Lock()
	r.shut = true
	r.life.Unlock()

	var errs []error
	if r.spool != nil {
		if err := r.spool.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.dead.close(); err != nil {
		errs = append(errs, err)
	}
	r.writeCancel()
	r.metrics.unregister()
	if lost := r.dropped.Load() - droppedBefore; lost > 0 {
		errs = append(errs, fmt.Errorf("audit: %d usage records lost while closing", lost))
	}
	if s := r.Stats(); s.SpoolBytes > 0 {
		r.log.Info("usage recorder closed with a spool backlog; the next start replays it",
			"segments", s.SpoolSegments, "bytes", s.SpoolBytes)
	}
	return errors.Join(errs...)
}

// awaitWriter waits for the writers to drain. When ctx ends first, each writer is either about
// to finish (every write it starts from now on spools at once) or stuck in the Sink: once every
// writer still running is stuck, none of them takes from the queue any more, and Close takes
// over their batches and the queue, spools them, and leaves the writers to exit on their own.
func (r *Recorder) awaitWriter(ctx context.Context) {
	select {
	case <-r.writerDone:
		return
	case <-ctx.Done():
	}
	r.writeCancel()
	for {
		r.life.Lock()
		if r.live > 0 && r.busy == r.live {
			r.shut = true
			var batch []store.UsageRecord
			for id, b := range r.inflight {
				batch = append(batch, b...)
				r.inflight[id] = nil
			}
			r.busy = 0
			batch = r.takeAll(batch)
			r.spoolLocked(batch, "close deadline while the database was busy")
			r.life.Unlock()
			r.log.Warn("usage writers still in the database at the close deadline; their batches and the queue were spooled",
				"records", len(batch))
			return
		}
		r.life.Unlock()
		select {
		case <-r.writerDone:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// spoolLocked appends records to the spool, or counts them lost when there is none or it fails.
// r.life is held.
func (r *Recorder) spoolLocked(recs []store.UsageRecord, why string) {
	if len(recs) == 0 {
		return
	}
	if r.spool == nil {
		r.dropped.Add(int64(len(recs)))
		r.log.Error("usage records lost: no spool", "records", len(recs), "reason", why)
		return
	}
	n, err := r.spool.appendBatch(recs)
	r.spooled.Add(int64(n))
	if err != nil {
		r.dropped.Add(int64(len(recs) - n))
		if errors.Is(err, errSpoolFull) { // one batch per flush interval while it lasts: rate-limited
			r.spoolFull.Add(int64(len(recs) - n))
			r.logDrop("usage spool full (usage.spool_max_bytes): records dropped", len(recs)-n, err)
			return
		}
		r.log.Error("usage records lost: spool append failed", "records", len(recs)-n, "reason", why, "err", err)
	}
}

func (r *Recorder) wakeReplay() {
	select {
	case r.replayWake <- struct{}{}:
	default:
	}
}

// Writers is the number of batch writers the recorder runs (Options.Writers, defaults applied).
func (r *Recorder) Writers() int { return r.opts.Writers }
