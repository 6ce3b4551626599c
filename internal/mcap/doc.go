// Package mcap writes and reads MCAP files (mcap.dev): the container
// format for timestamped publish/subscribe messages that ncclient record
// writes and ncclient replay reads, and that other MCAP tools (Foxglove,
// the mcap command line tool) open.
//
// The package follows the MCAP specification, version 0. By default the
// Writer writes unchunked files: the magic, a Header, Channel records (each one
// before the first message on it), Message records, a Data End record
// with the CRC-32 of the data section, then a summary section (every
// Channel again, one Statistics record), a summary offset section and a
// Footer with the CRC-32 of the summary, and the magic again. Schemas are
// not written: every channel has schema id 0, as the specification
// allows for self-describing encodings such as msgpack. The Writer keeps
// in memory only the channels and a count per channel; messages go
// straight to the underlying writer, so memory does not grow with the
// length of a recording. With the Chunked option, messages are gathered
// into chunks, compressed with lz4 or not, each followed by its Message
// Index records, and the summary gets a Chunk Index per chunk; memory is
// then one chunk and one chunk index per chunk written.
//
// The reader (Open) accepts what the specification allows a writer to
// write, chunked files with uncompressed or lz4 chunks included, and checks
// everything before it yields a message: the magic at both ends, that
// every record fits in its parent, the Data End CRC, the summary CRC,
// the CRC of each chunk, and that every message names a channel defined
// before it. A file that fails any check is refused whole, with a
// *FormatError naming the byte offset of the fault; Messages then never
// yields anything from a damaged file. Chunks compressed otherwise (zstd)
// are refused with an error naming the compression.
//
// # Concurrency
//
// A Writer or a File is used by one goroutine at a time.
package mcap
