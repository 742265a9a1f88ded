-- 0008: relations between events and the full-text search index, both
-- filled when an event is stored (RoomTx.InsertEvent) and emptied for an
-- event when it is redacted (RoomTx.SetRedactedBy).

-- One row per child event whose content carries an "m.relates_to" with a
-- string rel_type and event_id (client-server-api "Forming relationships
-- between events"; encrypted events carry it in the clear). relates_to is
-- the parent. Replies (m.in_reply_to without rel_type) are not relations.
-- Outliers are indexed too and left out at query time, so an outlier
-- promoted into the timeline later needs nothing more.
CREATE TABLE event_relations (
    event_id   TEXT NOT NULL PRIMARY KEY,
    room_id    TEXT NOT NULL,
    relates_to TEXT NOT NULL,
    rel_type   TEXT NOT NULL
);
CREATE INDEX event_relations_by_parent ON event_relations (relates_to, rel_type);
CREATE INDEX event_relations_by_type ON event_relations (room_id, rel_type, relates_to);

-- The searchable text of events (client-server-api "Server Side Search":
-- content.body of m.room.message, content.name of m.room.name,
-- content.topic of m.room.topic), one row per event. doc_id is the row's
-- ID in the full-text index event_search.
CREATE TABLE event_search_docs (
    doc_id   INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL
);
CREATE INDEX event_search_docs_by_room ON event_search_docs (room_id);

-- The full-text index over event_search_docs.value (an FTS5 external
-- content table: the text is stored once, in event_search_docs). This is
-- the one SQLite-only table of the schema; a PostgreSQL store would use a
-- tsvector column on event_search_docs instead.
CREATE VIRTUAL TABLE event_search USING fts5(
    value, content='event_search_docs', content_rowid='doc_id', tokenize='unicode61 remove_diacritics 2'
);

-- Index what a database upgraded to this version already holds.
INSERT INTO event_relations (event_id, room_id, relates_to, rel_type)
SELECT event_id, room_id,
       json_extract(CAST(json AS TEXT), '$.content."m.relates_to".event_id'),
       json_extract(CAST(json AS TEXT), '$.content."m.relates_to".rel_type')
FROM events
WHERE redacted_by IS NULL AND json_valid(CAST(json AS TEXT))
  AND json_type(CAST(json AS TEXT), '$.content."m.relates_to".event_id') = 'text'
  AND json_type(CAST(json AS TEXT), '$.content."m.relates_to".rel_type') = 'text';

INSERT INTO event_search_docs (event_id, room_id, key, value)
SELECT event_id, room_id, k.key, json_extract(CAST(json AS TEXT), k.path)
FROM events JOIN (
    SELECT 'm.room.message' AS type, 'content.body' AS key, '$.content.body' AS path
    UNION ALL SELECT 'm.room.name', 'content.name', '$.content.name'
    UNION ALL SELECT 'm.room.topic', 'content.topic', '$.content.topic'
) k ON k.type = events.type
WHERE redacted_by IS NULL AND json_valid(CAST(json AS TEXT))
  AND json_type(CAST(json AS TEXT), k.path) = 'text'
  AND json_extract(CAST(json AS TEXT), k.path) <> '';

INSERT INTO event_search (event_search) VALUES ('rebuild');
