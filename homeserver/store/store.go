package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned when an insert collides with an existing row.
var ErrExists = errors.New("store: already exists")

// BusyTimeoutMillis is how long a connection waits on another process's
// lock (for example `mxmesh user add` while the server runs) before
// failing with SQLITE_BUSY.
const BusyTimeoutMillis = 5000

// Store is a node's SQLite database. The node loop is its one writer; it
// holds a single connection, so statements are serialised and a
// transaction sees its own writes. Safe for concurrent use (database/sql
// queues callers on the one connection), but only the loop should write.
// A second connection, the checkpointer's (checkpoint.go), only ever runs
// WAL checkpoints.
type Store struct {
	DB   *sql.DB
	path string
	ckpt *checkpointer // nil until Open has started it
}

// Migration is one numbered schema step, migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in order. Versions start at 1
// and have no gaps.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("store: migration file %q: want NNNN_name.sql", name)
		}
		data, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(data)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// dsn builds the modernc.org/sqlite connection string: WAL journal
// without auto-checkpoint (checkpoint.go), a busy timeout, foreign keys
// on, and BEGIN IMMEDIATE transactions so a writer takes the write lock up
// front instead of failing at COMMIT.
func dsn(file string) string {
	return "file:" + escapeFile(file) + "?_pragma=busy_timeout(" + strconv.Itoa(BusyTimeoutMillis) + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// escapeFile escapes a file name for a "file:" URI.
func escapeFile(file string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(file)
}

// Open opens (creating if needed) the database at file and brings its
// schema up to date.
func Open(file string) (*Store, error) {
	s, err := OpenAt(file, -1)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenAt opens the database and migrates it to schema version upTo (-1:
// the latest). Tests use it to build every earlier schema.
func OpenAt(file string, upTo int) (*Store, error) {
	return openAt(file, upTo, defaultCheckpointConfig)
}

// openAt is OpenAt with a checkpoint policy.
func openAt(file string, upTo int, cfg checkpointConfig) (*Store, error) {
	db, err := sql.Open("sqlite", dsn(file))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", file, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	s := &Store{DB: db, path: file}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", file, describe(err))
	}
	// A file system without shared memory for the wal-index leaves the
	// database in its old journal mode, and then commits write straight
	// into the database: nothing to checkpoint.
	if strings.EqualFold(mode, "wal") {
		if s.ckpt, err = startCheckpointer(file, cfg); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := s.Migrate(upTo); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// describe adds a hint to the SQLite errors operators are likely to see.
func describe(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "file is not a database") || strings.Contains(msg, "malformed"):
		return fmt.Errorf("database is corrupt or not an SQLite file: %w", err)
	case strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY"):
		return fmt.Errorf("database is locked by another process: %w", err)
	}
	return err
}

// queryStrings runs a query whose rows are one text column and returns
// them in order; errors name op.
func (s *Store) queryStrings(op, query string, args ...any) ([]string, error) {
	rows, err := s.DB.Query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, describe(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, describe(err))
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, describe(err))
	}
	return out, nil
}

// Close stops the checkpointer and closes the database. It also reports
// the last error a background checkpoint met.
func (s *Store) Close() error {
	var ckptErr error
	if s.ckpt != nil {
		ckptErr = s.ckpt.close()
	}
	if err := s.DB.Close(); err != nil {
		return errors.Join(fmt.Errorf("store: close: %w", err), ckptErr)
	}
	return ckptErr
}

// Version returns the schema version (0 for an empty database).
func (s *Store) Version() (int, error) {
	if _, err := s.DB.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL
	)`); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", describe(err))
	}
	var v sql.NullInt64
	if err := s.DB.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", describe(err))
	}
	return int(v.Int64), nil
}

// Migrate applies the migrations after the current version up to upTo
// (-1: all), each in its own transaction with its schema_migrations row.
// A database newer than this binary is an error.
func (s *Store) Migrate(upTo int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	if upTo < 0 || upTo > len(ms) {
		upTo = len(ms)
	}
	cur, err := s.Version()
	if err != nil {
		return err
	}
	if cur > len(ms) {
		return fmt.Errorf("store: database schema version %d is newer than this binary (%d)", cur, len(ms))
	}
	for _, m := range ms[cur:upTo] {
		err := s.Tx(func(tx *sql.Tx) error {
			if _, err := tx.Exec(m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(`INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.Name, describe(err))
		}
	}
	return nil
}

// Tx runs f in a transaction, committing if it returns nil and rolling
// back otherwise.
func (s *Store) Tx(f func(tx *sql.Tx) error) error {
	tx, err := s.DB.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", describe(err))
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", describe(err))
	}
	s.afterCommit()
	return nil
}
