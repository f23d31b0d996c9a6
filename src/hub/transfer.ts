// A Hub file's bytes from an offset to its end (or a range of them), reconnecting with a Range request where the
// connection drops, and checked: the byte count must be the listed size, and the SHA-256 (for
// LFS files) the listed one. The hash state can be saved with what is stored and restored, so
// a download resumed in a later session is still checked over all of its bytes.
import { createSHA256, type IHasher } from 'hash-wasm';
import { fetchFile, HubError, type HubOptions, type RepoFile } from './hub';

export interface TransferOptions extends HubOptions {
  signal?: AbortSignal;
  /** Reconnections after a dropped connection before giving up (default 5). */
  retries?: number;
  /** Milliseconds before the first reconnection; doubled each time (default 500). */
  backoff?: number;
}

/** Bytes of `file` from `offset` to `end` (default: its end), in the order they arrive. */
export async function* fileBytes(url: string, file: RepoFile, offset: number, o: TransferOptions = {}, end = file.size): AsyncGenerator<Uint8Array> {
  if (offset > file.size) throw new HubError(`${file.path}: ${offset} bytes are stored, more than its ${file.size}; delete the stored part and download again`);
  let at = offset, failures = 0;
  while (at < end) {
    try {
      const reader = (await fetchFile(url, file.size, at, o, end)).getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (at + value.length > end) throw new HubError(`${file.path}: the server sent more than the ${end - offset} bytes asked from its ${file.size}`);
          at += value.length;
          failures = 0;
          yield value;
        }
      } finally {
        // a consumer that stops early (an error downstream) closes the connection too
        if (at < end) await reader.cancel().catch(() => {});
        reader.releaseLock();
      }
      if (at < end) throw new DroppedError();
    } catch (e) {
      if (o.signal?.aborted) throw o.signal.reason ?? e;
      // a dropped connection (undici reports it as a TypeError), the network, a 5xx: try again
      const transient = e instanceof DroppedError || e instanceof TypeError || (e instanceof HubError && e.transient);
      if (!transient) throw e;
      if (++failures > (o.retries ?? 5)) {
        const why = e instanceof DroppedError ? 'the connection closed early' : (e as Error).message;
        throw new HubError(`${file.path}: the download failed at byte ${at} of ${file.size} (${why}) and ${failures - 1} reconnections failed; try again: it resumes from what is stored`);
      }
      await sleep((o.backoff ?? 500) * 2 ** (failures - 1), o.signal);
    }
  }
}

class DroppedError extends Error {}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

/** SHA-256 over a file's bytes as they arrive, resumable from a saved state. */
export class Checksum {
  private constructor(private hasher: IHasher) {}

  static async create(saved?: Uint8Array): Promise<Checksum> {
    const hasher = await createSHA256();
    hasher.init();
    if (saved) hasher.load(saved);
    return new Checksum(hasher);
  }

  update(bytes: Uint8Array): void {
    this.hasher.update(bytes);
  }

  save(): Uint8Array {
    return this.hasher.save();
  }

  hex(): string {
    return this.hasher.digest('hex');
  }
}

/** A small file whole (config, tokenizer, a data file), checked against its size and SHA-256. */
export async function fetchWhole(url: string, file: RepoFile, o: TransferOptions = {}): Promise<Uint8Array> {
  const all = new Uint8Array(file.size);
  const sum = await Checksum.create();
  let at = 0;
  for await (const c of fileBytes(url, file, 0, o)) {
    all.set(c, at);
    at += c.length;
    sum.update(c);
  }
  verifySha256(file, sum.hex());
  return all;
}

/** Throws when a complete file's hash is not the listed one. */
export function verifySha256(file: RepoFile, hex: string): void {
  if (file.sha256 && hex !== file.sha256) {
    throw new HubError(`${file.path} is corrupt: its SHA-256 is ${hex.slice(0, 12)}…, the Hub lists ${file.sha256.slice(0, 12)}…; it was discarded: download it again`);
  }
}
