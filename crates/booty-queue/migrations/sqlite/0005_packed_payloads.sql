-- booty-queue's SQLite store, version 5: payloads are stored LZ4-compressed in `payload_lz4`.
--
-- A webhook payload is some 12 KB of JSON, four pages of the file, which every insert wrote twice: to the
-- log, then to the file at the checkpoint. Compressed (LZ4 block format, the uncompressed length before
-- it as 4 little-endian bytes) it is some 2.7 KB, and the job fits in one page. New jobs leave `payload`
-- NULL; jobs stored before keep their JSON there and are read from it. Either column is cleared when the
-- job becomes final, as `payload` always was.
ALTER TABLE booty_jobs ADD COLUMN payload_lz4 BLOB;
