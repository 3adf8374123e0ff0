// Package audit carries usage records from the request path to the store and loses none that it
// accepted: a bounded in-process queue drained by batch writers (Writers, one by default), with
// an on-disk spool for when the queue is full or the database is down, replayed when the
// database answers. The queue and the batches grow with what they hold and are let go when
// idle, so an idle recorder holds next to no memory.
//
// # Pipeline
//
//	Record ──► queue (QueueSize)   ──► writer: batches (BatchSize / FlushInterval) ──► Sink
//	  │ full                              │ failed after WriteRetries, or DB known down
//	  ▼                                   ▼
//	spool: append-only segments under SpoolDir ──► replayer (oldest first) ──► Sink
//
// In words:
//   - Record never blocks and never waits for the database: a push onto the queue under a short
//     mutex, or, when the queue is full, one JSON encoding and one write(2) of a CRC-framed record to the
//     active spool segment under a short mutex. No fsync, no goroutine per record. The one wait
//     left is the kernel's: if the disk itself stalls (dirty-page throttling, a hung device),
//     that write(2) waits for it, and only once the queue is full.
//   - Each writer (Writers of them take from the queue in parallel, each batch in its own
//     transaction) retries a failed batch WriteRetries times with backoff, then spools it and marks
//     the database down: while it is down, batches go straight to the spool, except for one probe
//     write per ReplayInterval, so the queue keeps draining and Record keeps taking the fast
//     path during an outage.
//   - The replayer replays sealed segments oldest first, in batches, and deletes a segment only
//     once every record in it was committed or dead-lettered. It tries every ReplayInterval and at
//     once when a segment is sealed; when no sealed segment is left it seals the active one. At
//     start (New / NewRecorder) the segments left by a previous run are replayed first, in the
//     background: fresh records are not held back behind them.
//   - A batch the database rejects for its data (see ErrRejected) is split in halves until the
//     bad records are alone; the rest commits and each bad record goes to the dead-letter file.
//   - The spool is bounded (SpoolMaxBytes, every segment together). When an append would take
//     it past the bound, the records are not spooled: they are dropped, counted in
//     Stats.SpoolFullDropped (llmgate_usage_spool_full_dropped_total) as well as Stats.Dropped,
//     and logged at most once every 5 seconds; Record returns false at once, it never waits for
//     room. A batch is cut at the last whole record that fits. What the spool holds is kept and
//     replayed, and room comes back as replay deletes segments. Dropping the newest rather than
//     the oldest keeps the spool append-only, and keeps what is already on disk intact.
//
// # Order
//
// Records reach the Sink in enqueue order within each path (queue batches in order; spool
// records in segment and append order), with no order between the paths: a record spooled
// during an outage is written after records enqueued later. Correctness does not depend on
// order: the Sink is idempotent on (request_id, started_at), and the rollups and credit charges it
// derives are sums keyed by request, so a record written late, or twice, counts once.
//
// # Delivery
//
// At least once into the Sink, exactly once in the ledger (the Sink's idempotency): a batch whose
// commit was not acknowledged (a timeout, a crash between commit and segment deletion, a Close
// deadline in the middle of a write) is written again later and deduplicated by the database.
// Dead-letter entries are at least once too: a crash while replaying a segment can dead-letter one
// of its records again at the next start.
//
// # What survives kill -9
//
// A process kill (SIGKILL, OOM kill, panic) loses only what is in this process's memory:
//   - the records in the queue at that instant (at most QueueSize),
//   - each writer's current batch if its commit had not happened (at most BatchSize per writer;
//     if it had, the rows are in the database),
//   - a record whose Record call was still encoding it.
//
// Everything else survives: rows the database committed, and every spooled record whose write(2)
// returned, fsynced or not, because the kernel's page cache outlives the process. A write cut
// in the middle leaves a torn frame at a segment's tail: the next start detects it (length/CRC),
// saves its bytes to the dead-letter directory and replays the rest of the segment. Damage in
// the middle of a segment (a bad disk block, a stray write) costs only the frames it touches:
// the reader scans forward to the next frame that validates and goes on from there, and the
// bytes it skipped are saved to the dead-letter directory.
//
// A machine crash or power loss can also lose what the kernel had not written to disk: spool
// records appended since the last fsync (at most SpoolSyncInterval, default 1s, ago) and
// segment files created since the last directory fsync (same interval). Fsync policy: the
// active segment and the spool directory are fsynced every SpoolSyncInterval by a background
// goroutine, a rotated segment is fsynced before it is closed (same goroutine, never on the
// request path), and Close fsyncs everything before it returns. Dead-letter entries are fsynced
// as they are written, before the segment that held them is deleted.
//
// Close (SIGTERM) loses nothing: it stops taking records into the queue, writes what is queued
// within its context's deadline, and spools and fsyncs whatever is left; the next start replays
// it. Records passed to Record after Close has begun are spooled while the spool is open and
// dropped (counted) after Close returned.
//
// Without a SpoolDir the recorder behaves as before the spool existed: a full queue drops the
// record and a batch failing all its retries is lost, both counted in Stats.Dropped and logged.
//
// # Spool format
//
// A segment is a file named by a 20-digit sequence number with the suffix ".seg", starting with
// the 8-byte magic "LGSPOOL2" and followed by frames: the 4-byte frame magic "\xffLGF", payload
// length (uint32, little endian), CRC-32C of the length's 4 bytes and the payload (uint32, little
// endian), payload. The frame magic is what a reader scans for after damage; its first byte never
// occurs in a payload (see segment.go). Segments of the previous format, "LGSPOOL1" with frames
// of length, CRC-32C of the payload and payload, are still read (up to their first bad frame,
// having no magic to scan for). The payload is the JSON encoding of
// one store.UsageRecord. JSON rather than a compact binary codec because the record type is still
// growing: a field added to store.UsageRecord is carried through the spool with no codec change,
// and a field the running version does not know (a spool written by another version) is
// detected and dead-lettered rather than silently dropped. It costs a few microseconds per record
// on the overflow path only; the queue path does not encode at all. One caveat of JSON: a
// string that is not valid UTF-8 comes back from the spool with U+FFFD in place of the bad bytes
// (PostgreSQL would have rejected it; this way it is kept, slightly altered). Segments rotate at
// SpoolSegmentBytes. A lock file (flock) keeps two processes from sharing a spool directory.
//
// # Upkeep
//
// Upkeep runs the store's usage housekeeping beside the recorder, once at start and then every
// UpkeepInterval: PostgreSQL's monthly usage_records partitions are made three months ahead while
// the process runs (not only by the migration at start), and with RetentionMonths > 0 records
// older than the current month and the RetentionMonths before it are removed (whole partitions
// dropped in PostgreSQL, rows deleted in bounded batches elsewhere). A failed pass is logged,
// counted and tried again at the next tick; the recorder and the request path never wait for it.
package audit
