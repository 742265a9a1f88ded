// Package store is a node's SQLite database (modernc.org/sqlite, pure Go).
//
// Connection settings: WAL journal (readers never block the writer, and
// `mxmesh user add` can write while the server runs), busy_timeout
// BusyTimeoutMillis, foreign keys on, synchronous=NORMAL (durable at each
// WAL checkpoint; a power cut loses at most the last transactions, never
// corrupts), and BEGIN IMMEDIATE transactions. The node loop is the one
// writer and holds a single connection.
//
// Checkpoints (checkpoint.go): the loop's connection never checkpoints
// inside a commit (wal_autocheckpoint=0). A goroutine owned by the store,
// started by Open and stopped by Close, runs PASSIVE checkpoints from a
// second connection on a timer and once CheckpointFrames frames wait, and
// truncates the WAL after CheckpointIdle without writes. Under writes back
// to back the WAL only restarts once a checkpoint has copied every frame,
// which a background checkpointer racing the writer rarely manages, so at
// WALCapFrames the loop itself runs a blocking RESTART checkpoint after
// its commit; the WAL file stays under the cap plus one transaction. The
// checkpointer touches only the database files, never node state.
//
// Schema: numbered migrations embedded from migrations/NNNN_name.sql,
// versions 1, 2, … without gaps, each applied in its own transaction
// together with its row in schema_migrations(version, name). Opening a
// database runs every migration after its current version; a database
// newer than the binary is refused. A test builds every earlier schema and
// upgrades it, checking the result matches a fresh database.
//
// Portability: the SQL sticks to what SQLite and PostgreSQL share (TEXT,
// BIGINT, BOOLEAN, INSERT … ON CONFLICT … DO UPDATE) so that a PostgreSQL
// store needs no second copy of the queries; only the "?" placeholders
// would be rebound to "$n". The exceptions are marked: the full-text index
// (search.go, an FTS5 table; PostgreSQL would use a tsvector column) and
// json_extract in a few queries over event JSON (relations.go and
// migration 0008).
//
// Files: store.go (open, migrations, transactions), checkpoint.go (WAL
// checkpoints), accounts.go (accounts and devices), room.go, room_fed.go,
// event.go and stream.go (rooms, state groups, events, the stream),
// visibility.go (state lookups for history visibility), relations.go and
// search.go (indexes filled as events are stored), timestamp.go, upgrade.go,
// outbound.go (federation queues), serverkeys.go, e2ee.go, xsign.go,
// todevice.go, presence.go, keybackup.go, media.go, pushers.go, reports.go,
// user_directory.go and deactivate.go, one per client or federation area.
package store
