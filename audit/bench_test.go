package audit

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/llmgate/store"
)

// discardSink acknowledges every batch at once: the writer drains the channel as fast as it can.
type discardSink struct{}

func (discardSink) InsertUsage(_ context.Context, recs []store.UsageRecord) (int, error) {
	return len(recs), nil
}

// latencies collects per-call durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// quantiles returns p50, p99, p99.9 and the maximum.
func (l *latencies) quantiles() (p50, p99, p999, max time.Duration) {
	slices.Sort(l.all)
	q := func(f float64) time.Duration { return l.all[min(len(l.all)-1, int(f*float64(len(l.all))))] }
	return q(0.50), q(0.99), q(0.999), l.all[len(l.all)-1]
}

// timeRecords calls Record b.N times from GOMAXPROCS×parallel goroutines, timing every call.
func timeRecords(b *testing.B, r *Recorder, parallel int) *latencies {
	var l latencies
	b.SetParallelism(parallel)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1<<16)
		i := 0
		for pb.Next() {
			rec := rec(i)
			t0 := time.Now()
			r.Record(rec)
			local = append(local, time.Since(t0))
			i++
		}
		l.add(local)
	})
	b.StopTimer()
	p50, p99, p999, max := l.quantiles()
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(p999.Nanoseconds()), "p99.9-ns")
	b.ReportMetric(float64(max.Nanoseconds()), "max-ns")
	return &l
}

// BenchmarkRecord is the request path's cost: Record into the channel, with the writer draining
// it concurrently into a sink that acknowledges at once, from 1, 4 and 16 goroutines per CPU.
// It reports the per-call latency distribution (p50, p99, p99.9, max) and the share of calls
// that found the queue full and went to the spool (the writer gets a smaller share of the CPU as
// the recording goroutines multiply). Maxima of milliseconds are the scheduler, not the
// recorder: with more runnable goroutines than CPUs, a goroutine can be descheduled between the
// two clock reads.
func BenchmarkRecord(b *testing.B) {
	for _, par := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			r := mustNew(b, discardSink{}, spoolOpts(b))
			timeRecords(b, r, par)
			closeRecorder(b, r, 10*time.Second)
			b.ReportMetric(100*float64(r.Stats().Spooled)/float64(b.N), "spooled-%")
		})
	}
}

// BenchmarkRecordSpool is the overflow path: the sink is stuck and the queue holds one record,
// so nearly every call encodes its record and appends it to the spool (one write(2) under the
// spool's mutex), from 1 and 4 goroutines per CPU.
func BenchmarkRecordSpool(b *testing.B) {
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			opts := spoolOpts(b)
			opts.QueueSize, opts.SpoolSyncInterval = 1, time.Second
			r := mustNew(b, gatedSink{release: make(chan struct{})}, opts)
			timeRecords(b, r, par)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			r.Close(ctx)
		})
	}
}

// BenchmarkWriterPostgresCharged is BenchmarkWriterPostgres with every record charged: the
// records' users, each with a credit account, take them in turn, so each batch of 5,000 also
// appends 5,000 ledger entries and moves one balance per user (50 or 1,000 users), with 1, 2 and
// 4 writers (Options.Writers) committing batches in parallel. The floor is the same 50,000
// rows/s. Run with -benchtime=200000x or so.
func BenchmarkWriterPostgresCharged(b *testing.B) {
	for _, accounts := range []int{50, 1000} {
		for _, writers := range []int{1, 2, 4} {
			benchWriterCharged(b, accounts, writers)
		}
	}
}

func benchWriterCharged(b *testing.B, accounts, writers int) {
	b.Run(fmt.Sprintf("batch=5000/accounts=%d/writers=%d", accounts, writers), func(b *testing.B) {
		st, dsn := newPG(b, pg)
		for u := range accounts {
			if _, err := st.EnsureCreditAccount(context.Background(), "user", fmt.Sprintf("user-%d", u)); err != nil {
				b.Fatal(err)
			}
		}
		opts := spoolOpts(b)
		opts.QueueSize, opts.BatchSize, opts.Writers = b.N, 5000, writers
		r := mustNew(b, st, opts)
		recs := make([]store.UsageRecord, b.N)
		for i := range recs {
			recs[i] = rec(i)
			cost := 150_000 + int64(i)
			recs[i].UserID, recs[i].CostPicoUSD, recs[i].Charge = fmt.Sprintf("user-%d", i%accounts), &cost, true
			recs[i].PayerType, recs[i].PayerID = "user", recs[i].UserID
		}
		b.ResetTimer()
		start := time.Now()
		for i := range recs {
			r.Record(recs[i])
		}
		closeRecorder(b, r, 10*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
		if l := readLedger(b, dsn); l.rows != int64(b.N) {
			b.Fatalf("%d rows, want %d", l.rows, b.N)
		}
		if s := r.Stats(); s.Spooled != 0 {
			b.Fatalf("spooled %d: the benchmark measures the writer alone", s.Spooled)
		}
		a, err := st.CreditAccountOf(context.Background(), "user", "user-0")
		if err != nil || a.ChargedPicoUSD.Sign() <= 0 {
			b.Fatalf("user-0's account %+v, %v: want charges", a, err)
		}
	})
}
