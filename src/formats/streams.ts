// A ReadableStream as an async generator that, when its consumer stops early (a break, an
// error downstream), cancels the stream: a Hub connection or a file read does not stay open.
// (ReadableStream's own async iteration does this, but Chrome has it only since version 124.)
export async function* streamChunks<T>(stream: ReadableStream<T>): AsyncGenerator<T> {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Chunks (holding `bytes` in all) as one array; a single chunk is returned as it is. */
export function concatBytes(parts: Uint8Array[], bytes: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
