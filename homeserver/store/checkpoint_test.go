package store

import (
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A WAL write load: each transaction inserts rowsPerTx rows of a 3000-byte
// random blob, a few pages per commit.
const rowsPerTx = 4

func createLoad(t *testing.T, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS ckpt_load (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

func writeLoad(tx *sql.Tx) error {
	for range rowsPerTx {
		if _, err := tx.Exec(`INSERT INTO ckpt_load (v) VALUES (randomblob(3000))`); err != nil {
			return err
		}
	}
	return nil
}

func countLoad(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.DB.QueryRow(`SELECT COUNT(*) FROM ckpt_load`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// walSnap is the wal-index before or after one commit.
type walSnap struct{ mx, backfill uint32 }

func snap(t *testing.T, c *checkpointer) walSnap {
	t.Helper()
	mx, bf, ok := c.walIndex()
	if !ok {
		t.Fatal("wal-index header unreadable")
	}
	return walSnap{mx, bf}
}

// checkpointedInline says whether frames were copied into the database
// between before and after. Only a checkpoint raises nBackfill; a WAL
// restart at the start of a write sets it to 0.
func checkpointedInline(before, after walSnap) bool {
	return after.backfill != 0 && after.backfill != before.backfill
}

// The instrument first: with SQLite's auto-checkpoint on, it sees the
// commits that checkpoint inline.
func TestInlineCheckpointDetector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(50)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	createLoad(t, db)
	shm, err := os.Open(path + "-shm")
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Close()
	c := &checkpointer{shm: shm}
	inline := 0
	for range 100 {
		before := snap(t, c)
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := writeLoad(tx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if checkpointedInline(before, snap(t, c)) {
			inline++
		}
	}
	if inline == 0 {
		t.Fatal("auto-checkpoint on, yet no commit seen checkpointing")
	}
}

// Under a write load with the checkpointer running, no loop commit copies
// the WAL into the database: the background checkpointer does, between
// commits (its lock is held across each commit so the two are told
// apart), and the WAL is restarted over and over.
func TestLoopCommitsNeverCheckpoint(t *testing.T) {
	cfg := checkpointConfig{frames: 50, capFrames: 1 << 30, interval: time.Millisecond, idle: time.Hour}
	s, err := openAt(filepath.Join(t.TempDir(), "db"), -1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.DB.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("loop connection wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	createLoad(t, s.DB)
	c := s.ckpt
	restarts := 0
	const commits = 400
	for range commits {
		c.mu.Lock()
		before := snap(t, c)
		err := s.Tx(writeLoad)
		after := snap(t, c)
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if checkpointedInline(before, after) {
			t.Fatalf("a loop commit checkpointed: wal-index %+v → %+v", before, after)
		}
		if after.mx < before.mx {
			restarts++
		}
		if after.mx-after.backfill >= cfg.frames {
			// Let the woken checkpointer run before the next commit, so
			// that the test sees WAL restarts.
			waitFor(t, "a background checkpoint", func() bool {
				mx, bf, _ := c.walIndex()
				return mx == bf
			})
		}
	}
	if restarts == 0 || c.passive.Load() == 0 {
		t.Fatalf("WAL never restarted (%d restarts, %d passive checkpoints)", restarts, c.passive.Load())
	}
	if n := countLoad(t, s); n != commits*rowsPerTx {
		t.Fatalf("%d rows, want %d", n, commits*rowsPerTx)
	}
}

// waitFor polls cond until it holds; a generous deadline only catches a
// checkpointer that never runs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// boundedLoad runs commits write transactions back to back on a store
// opened with cfg and fails if the WAL file ever grows past the cap plus
// one transaction. The data must survive a reopen. It returns the store's
// checkpointer, closed, for its counters.
func boundedLoad(t *testing.T, cfg checkpointConfig, commits int) *checkpointer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	s, err := openAt(path, -1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	createLoad(t, s.DB)
	var pageSize int64
	if err := s.DB.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	maxWAL, maxTx := int64(0), uint32(0)
	for range commits {
		before := snap(t, s.ckpt)
		if err := s.Tx(writeLoad); err != nil {
			t.Fatal(err)
		}
		if after := snap(t, s.ckpt); after.mx > before.mx {
			maxTx = max(maxTx, after.mx-before.mx)
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		maxWAL = max(maxWAL, fi.Size())
	}
	// WAL file: a 32-byte header and frames of a 24-byte header and a page.
	frameSize := pageSize + 24
	if limit := 32 + int64(cfg.capFrames+maxTx)*frameSize; maxWAL > limit {
		t.Fatalf("WAL grew to %d bytes, cap is %d frames (%d bytes with one transaction)", maxWAL, cfg.capFrames, limit)
	}
	if written := int64(commits) * int64(maxTx) * frameSize; maxWAL*3 > written {
		t.Fatalf("load too small to test the cap: %d bytes written, WAL at most %d", written, maxWAL)
	}
	c := s.ckpt
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := countLoad(t, s); n != commits*rowsPerTx {
		t.Fatalf("%d rows after reopen, want %d", n, commits*rowsPerTx)
	}
	return c
}

// With the checkpointer starved (never woken during the load), the loop's
// blocking checkpoint at the cap alone keeps the WAL bounded.
func TestWALBoundedWhenCheckpointerStarved(t *testing.T) {
	c := boundedLoad(t, checkpointConfig{frames: 1 << 30, capFrames: 200, interval: time.Hour, idle: time.Hour}, 300)
	if c.blocking.Load() == 0 || c.passive.Load() != 0 {
		t.Fatalf("%d blocking, %d passive checkpoints; want blocking only", c.blocking.Load(), c.passive.Load())
	}
}

// Under writes back to back the background checkpointer never catches up
// with the writer (a WAL restarts only once every frame is copied), so the
// WAL reaches the cap; the loop's blocking checkpoint there must not give
// up because a background one is running.
func TestWALBoundedUnderSustainedLoad(t *testing.T) {
	c := boundedLoad(t, checkpointConfig{frames: 16, capFrames: 200, interval: time.Millisecond, idle: time.Hour}, 600)
	if c.passive.Load()+c.blocking.Load() == 0 {
		t.Fatal("no checkpoint ran")
	}
}

// Once writes stop, the checkpointer truncates the WAL file to nothing.
func TestIdleTruncate(t *testing.T) {
	cfg := checkpointConfig{frames: 1 << 30, capFrames: 1 << 30, interval: time.Millisecond, idle: 10 * time.Millisecond}
	path := filepath.Join(t.TempDir(), "db")
	s, err := openAt(path, -1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	createLoad(t, s.DB)
	for range 20 {
		if err := s.Tx(writeLoad); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "an idle TRUNCATE", func() bool {
		fi, err := os.Stat(path + "-wal")
		return err == nil && fi.Size() == 0 && s.ckpt.truncate.Load() > 0
	})
	// Everything is in the database file itself now: a reader of the
	// file alone (no WAL) sees every row.
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var n int
	if err := ro.QueryRow(`SELECT COUNT(*) FROM ckpt_load`).Scan(&n); err != nil || n != 20*rowsPerTx {
		t.Fatalf("database file holds %d rows (%v), want %d", n, err, 20*rowsPerTx)
	}
}

// A second writer on the same file (as `mxmesh user add` while the server
// runs) gets its own checkpointer; closing it leaves the first working.
func TestSecondWriterWithCheckpointers(t *testing.T) {
	cfg := checkpointConfig{frames: 16, capFrames: 400, interval: time.Millisecond, idle: 5 * time.Millisecond}
	path := filepath.Join(t.TempDir(), "db")
	a, err := openAt(path, -1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	createLoad(t, a.DB)
	b, err := openAt(path, -1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		w := a
		if i%3 == 0 {
			w = b
		}
		if err := w.Tx(writeLoad); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := a.Tx(writeLoad); err != nil {
			t.Fatal(err)
		}
	}
	if n := countLoad(t, a); n != 150*rowsPerTx {
		t.Fatalf("%d rows, want %d", n, 150*rowsPerTx)
	}
}

// BenchmarkCommit times back-to-back write transactions (commit plus
// afterCommit: what the loop waits for) with SQLite checkpointing inside
// the commit (the old setting) and with the background checkpointer.
func BenchmarkCommit(b *testing.B) {
	run := func(b *testing.B, db *sql.DB, tx func(func(*sql.Tx) error) error) {
		if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS ckpt_load (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		d := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if err := tx(writeLoad); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(d[len(d)-1].Microseconds()), "max-µs")
	}
	b.Run("inline", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		s := &Store{DB: db}
		run(b, db, s.Tx)
	})
	b.Run("background", func(b *testing.B) {
		s, err := Open(filepath.Join(b.TempDir(), "db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s.DB, s.Tx)
	})
}
