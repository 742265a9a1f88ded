package store

// WAL checkpoints, run off the node loop.
//
// In WAL mode a commit appends its pages to the -wal file; a checkpoint
// copies them back into the database file and fsyncs both files. By
// default SQLite runs that checkpoint inside the commit that takes the WAL
// past 1000 pages, so under load one send in about 70 paid for a copy and
// two fsyncs, and every request queued behind it on the node loop waited
// too (BENCHMARKS.md, "Homeserver").
//
// Here the loop's connection has wal_autocheckpoint=0, so no commit ever
// checkpoints, and a checkpointer goroutine owned by the store (started by
// Open, stopped by Close) checkpoints from a second connection:
//
//   - PASSIVE every CheckpointInterval when the WAL has frames not yet in
//     the database, and as soon as a loop commit sees CheckpointFrames of
//     them. PASSIVE takes no lock that a writer or reader waits on; it copies
//     what no reader still needs, and the next write transaction starts the
//     WAL again from its beginning once everything has been copied.
//   - TRUNCATE once nothing has been written for CheckpointIdle, which gives
//     the WAL file's disk space back. TRUNCATE waits for the writer, so it
//     runs only when idle, with a short busy timeout (checkpointBusyMillis)
//     so that it gives up rather than hold up `mxmesh user add`.
//   - A blocking RESTART on the loop's own connection, after (never inside)
//     a commit, when the WAL has grown to WALCapFrames anyway. The WAL
//     starts again from its beginning only if a checkpoint has copied every
//     frame before the next write begins, which under writes back to back
//     a checkpointer racing the loop never manages; the checkpointer may
//     also get no CPU, or a long reader in another process may keep PASSIVE
//     from finishing. The loop then waits for a running background
//     checkpoint and for readers (up to the busy timeout) rather than let
//     the file grow without bound; the background checkpoints have already
//     copied most frames, so this one is short. A RESTART that could not
//     finish is retried only after another WALCapFrames.
//
// The checkpointer reads and writes only the database files, never node
// state, so the simulator's runs stay deterministic.
//
// How many frames the WAL holds is read from the wal-index header in the
// -shm file (SQLite file format, "WAL-Index Format", §2.2 of
// https://www.sqlite.org/walformat.html): native byte order, mxFrame at
// byte 16 of each of the two 48-byte header copies, nBackfill at byte 96.
// A read that races a writer may see two different copies; it is retried
// and then given up, and the figure is only ever used to decide when to
// checkpoint, never for correctness.

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// CheckpointFrames is how many WAL frames (one page each) not yet in
	// the database make a loop commit wake the checkpointer. SQLite's own
	// default auto-checkpoint threshold, so the WAL stays about the same
	// size as before (4 MiB with 4 KiB pages).
	CheckpointFrames = 1000
	// WALCapFrames is the WAL length, in frames, past which the loop runs
	// a blocking checkpoint itself after its commit (32 MiB with 4 KiB
	// pages).
	WALCapFrames = 8000
	// CheckpointInterval is how often the checkpointer looks at the WAL
	// without being woken.
	CheckpointInterval = time.Second
	// CheckpointIdle is how long the WAL must go without a new frame
	// before the checkpointer truncates it.
	CheckpointIdle = 5 * time.Second
	// checkpointBusyMillis is the checkpointer connection's busy timeout:
	// how long an idle TRUNCATE waits for a writer before giving up.
	checkpointBusyMillis = 100
)

// checkpointConfig holds the checkpoint policy; tests shrink it.
type checkpointConfig struct {
	frames    uint32        // wake the checkpointer at this many un-copied frames
	capFrames uint32        // blocking checkpoint in the loop at this WAL length
	interval  time.Duration // timer
	idle      time.Duration // TRUNCATE after this long without new frames
}

var defaultCheckpointConfig = checkpointConfig{
	frames:    CheckpointFrames,
	capFrames: WALCapFrames,
	interval:  CheckpointInterval,
	idle:      CheckpointIdle,
}

// checkpointer runs WAL checkpoints from its own connection on its own
// goroutine. All its methods are safe for concurrent use. mu is held for
// the whole of each checkpoint, the background ones and the loop's
// blocking one (tests hold it to keep the checkpointer out of a commit).
type checkpointer struct {
	cfg  checkpointConfig
	db   *sql.DB  // the checkpointer's own connection
	shm  *os.File // the -shm file, for the wal-index header
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex

	closeOnce sync.Once

	nextCap atomic.Uint32 // loop: WAL length of the next blocking checkpoint
	err     atomic.Pointer[error]

	// Counters, for tests and measurements.
	passive, truncate, blocking atomic.Uint64
}

// startCheckpointer opens the checkpointer's connection to file (whose WAL
// the loop's connection has already created) and starts its goroutine.
func startCheckpointer(file string, cfg checkpointConfig) (*checkpointer, error) {
	db, err := sql.Open("sqlite", checkpointDSN(file))
	if err != nil {
		return nil, fmt.Errorf("store: open checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open checkpoint connection: %w", describe(err))
	}
	shm, err := os.Open(file + "-shm")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open wal-index: %w", err)
	}
	c := &checkpointer{
		cfg:  cfg,
		db:   db,
		shm:  shm,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	c.nextCap.Store(cfg.capFrames)
	go c.run()
	return c, nil
}

// checkpointDSN is the checkpointer's connection string: no
// auto-checkpoint, a short busy timeout (it only ever checkpoints).
func checkpointDSN(file string) string {
	return "file:" + escapeFile(file) + "?_pragma=busy_timeout(" + fmt.Sprint(checkpointBusyMillis) + ")" +
		"&_pragma=wal_autocheckpoint(0)"
}

// walIndex reads the WAL length (mxFrame) and how much of it is already in
// the database (nBackfill) from the wal-index header. ok is false if the
// header could not be read consistently.
func (c *checkpointer) walIndex() (mxFrame, backfill uint32, ok bool) {
	var b [100]byte
	for range 3 {
		if _, err := c.shm.ReadAt(b[:], 0); err != nil {
			return 0, 0, false
		}
		if string(b[:48]) == string(b[48:96]) {
			ne := binary.NativeEndian
			return ne.Uint32(b[16:]), ne.Uint32(b[96:]), true
		}
	}
	return 0, 0, false
}

// poke wakes the checkpointer without waiting.
func (c *checkpointer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run is the checkpointer's goroutine. A wake from the loop means
// CheckpointFrames frames wait, but by the time it is read a checkpoint may
// have copied them, so it is checked again; a tick checkpoints whatever
// waits, and after CheckpointIdle of ticks with nothing to copy the WAL is
// truncated.
func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.interval)
	defer t.Stop()
	var quietSince time.Time
	for {
		ticked := false
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-t.C:
			ticked = true
		}
		mx, backfill, ok := c.walIndex()
		switch {
		case !ok || mx-backfill >= c.cfg.frames || (ticked && mx > backfill):
			c.checkpoint("PASSIVE", &c.passive)
			quietSince = time.Time{}
		case !ticked || mx == 0:
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) >= c.cfg.idle:
			c.checkpoint("TRUNCATE", &c.truncate)
			quietSince = time.Time{}
		}
	}
}

// checkpoint runs one checkpoint of mode on the checkpointer's connection
// and counts it in n if it finished. SQLITE_BUSY is reported by the pragma
// as busy=1, not as an error: the next round tries again.
func (c *checkpointer) checkpoint(mode string, n *atomic.Uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var busy, log, done int
	err := c.db.QueryRow("PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done)
	if err != nil {
		err = fmt.Errorf("store: %s checkpoint: %w", mode, describe(err))
		c.err.Store(&err)
		return
	}
	if busy == 0 {
		n.Add(1)
	}
}

// afterCommit runs on the writer after each transaction has committed: it
// wakes the checkpointer once enough frames wait, and past the cap
// checkpoints itself. The commit has happened whatever this meets, so an
// error is kept for Close rather than returned to the caller.
func (s *Store) afterCommit() {
	c := s.ckpt
	if c == nil {
		return
	}
	mx, backfill, ok := c.walIndex()
	if !ok {
		return
	}
	if next := c.nextCap.Load(); mx >= next {
		// A checkpoint already running on the other connection would make
		// this one return busy at once: wait for it.
		c.mu.Lock()
		var busy, log, done int
		err := s.DB.QueryRow("PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &log, &done)
		c.mu.Unlock()
		if err != nil {
			err = fmt.Errorf("store: blocking checkpoint: %w", describe(err))
			c.err.Store(&err)
			return
		}
		if busy == 0 {
			c.blocking.Add(1)
			c.nextCap.Store(c.cfg.capFrames)
		} else {
			c.nextCap.Store(mx + c.cfg.capFrames)
		}
		return
	}
	if mx-backfill >= c.cfg.frames {
		c.poke()
	}
}

// close stops the goroutine and closes the checkpointer's connection. It
// returns the last error a background checkpoint met, if any. Closing
// twice is a no-op, as for sql.DB.
func (c *checkpointer) close() error {
	var err error
	c.closeOnce.Do(func() { err = c.doClose() })
	return err
}

func (c *checkpointer) doClose() error {
	close(c.stop)
	<-c.done
	var errs []error
	if p := c.err.Load(); p != nil {
		errs = append(errs, *p)
	}
	if err := c.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close checkpoint connection: %w", err))
	}
	if err := c.shm.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close wal-index: %w", err))
	}
	return errors.Join(errs...)
}
