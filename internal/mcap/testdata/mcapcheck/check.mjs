// check.mjs reads and writes MCAP files with @mcap/core, the reader and
// writer of the MCAP project, so that the Go tests can hold their files
// to an implementation other than their own.
//
//   node check.mjs read FILE    prints the file as JSON: header, channels,
//                               statistics and every message (data in hex),
//                               read in order and, for a chunked file,
//                               again through its indexes
//   node check.mjs write FILE   writes a chunked file of known messages
//                               and prints them as JSON
//
// It exits 1 with the reader's error on stderr when the file is refused.
import { readFileSync, openSync, readSync, fstatSync, writeFileSync } from "node:fs";
import { McapIndexedReader, McapStreamReader, McapWriter } from "@mcap/core";
import { loadDecompressHandlers } from "@mcap/support";

const bigints = (_, v) => (typeof v === "bigint" ? v.toString() : v);
const hex = (u8) => Buffer.from(u8).toString("hex");

async function read(path) {
  const decompressHandlers = await loadDecompressHandlers();
  // The stream reader checks magic, record bounds and chunk CRCs while it
  // yields every record of the file in order.
  const stream = new McapStreamReader({ validateCrcs: true, decompressHandlers });
  stream.append(readFileSync(path));
  const out = { channels: [], messages: [] };
  for (let rec; (rec = stream.nextRecord()); ) {
    switch (rec.type) {
      case "Header":
        out.header = { profile: rec.profile, library: rec.library };
        break;
      case "Channel":
        if (!out.channels.some((c) => c.id === rec.id)) {
          out.channels.push({ id: rec.id, schemaId: rec.schemaId, topic: rec.topic,
            messageEncoding: rec.messageEncoding, metadata: Object.fromEntries(rec.metadata) });
        }
        break;
      case "Message":
        out.messages.push({ channelId: rec.channelId, sequence: rec.sequence,
          logTime: rec.logTime, publishTime: rec.publishTime, data: hex(rec.data) });
        break;
    }
  }
  if (!stream.done()) {
    throw new Error(`stream reader: file ends inside a record (${stream.bytesRemaining()} bytes left)`);
  }
  // The indexed reader checks the footer, the summary CRC and the summary.
  const fd = openSync(path, "r");
  const readable = {
    size: async () => BigInt(fstatSync(fd).size),
    read: async (offset, length) => {
      const buf = new Uint8Array(Number(length));
      readSync(fd, buf, 0, buf.length, Number(offset));
      return buf;
    },
  };
  const indexed = await McapIndexedReader.Initialize({ readable, decompressHandlers });
  const s = indexed.statistics;
  if (s) {
    out.statistics = { messageCount: s.messageCount, channelCount: s.channelCount,
      messageStartTime: s.messageStartTime, messageEndTime: s.messageEndTime,
      channelMessageCounts: Object.fromEntries(s.channelMessageCounts) };
  }
  out.summaryChannels = indexed.channelsById.size;
  // Through the chunk and message indexes, for a chunked file.
  out.chunkIndexes = indexed.chunkIndexes.length;
  out.indexedMessages = [];
  for await (const m of indexed.readMessages()) {
    out.indexedMessages.push({ channelId: m.channelId, sequence: m.sequence, logTime: m.logTime,
      publishTime: m.publishTime, data: hex(m.data) });
  }
  return out;
}

async function write(path) {
  const chunks = [];
  const writer = new McapWriter({ writable: {
    position: () => BigInt(chunks.reduce((n, c) => n + c.length, 0)),
    write: async (buf) => { chunks.push(Buffer.from(buf)); },
  } });
  await writer.start({ profile: "", library: "mcapcheck" });
  const a = await writer.registerChannel({ topic: "A/log", messageEncoding: "msgpack", schemaId: 0,
    metadata: new Map([["channel", "A"], ["event", "log"]]) });
  const b = await writer.registerChannel({ topic: "B/bin", messageEncoding: "msgpack", schemaId: 0,
    metadata: new Map() });
  const messages = [
    { channelId: a, sequence: 1, logTime: 1000n, publishTime: 1000n, data: Uint8Array.from([0xa2, 0x68, 0x69]) },
    { channelId: b, sequence: 1, logTime: 2000n, publishTime: 1500n, data: Uint8Array.from([0xc4, 0x03, 0, 1, 2]) },
    { channelId: a, sequence: 2, logTime: 3000n, publishTime: 3000n, data: Uint8Array.from([0x81, 0xa1, 0x78, 0x01]) },
  ];
  for (const m of messages) {
    await writer.addMessage(m);
  }
  await writer.end();
  writeFileSync(path, Buffer.concat(chunks));
  return { messages: messages.map((m) => ({ ...m, data: hex(m.data) })) };
}

const [cmd, path] = process.argv.slice(2);
try {
  const out = cmd === "write" ? await write(path) : await read(path);
  process.stdout.write(JSON.stringify(out, bigints) + "\n");
} catch (e) {
  process.stderr.write(`@mcap/core: ${e.message}\n`);
  process.exit(1);
}
