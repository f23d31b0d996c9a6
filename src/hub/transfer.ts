// A Hub file's bytes from an offset to its end (or a range of them), reconnecting with a Range request where the
// connection drops, and checked: the byte count must be the listed size, and the SHA-256 (for
// LFS files) the listed one. The hash state can be saved with what is stored and restored, so
// a download resumed in a later session is still checked over all of its bytes.
// Time is bounded twice: each read waits at most `idleMs` for the server (idle-fetch.ts), and
// the time lost to failures (from the last byte before a failure until bytes flow again: the
// stall, the backoff, the reconnection) adds up over the whole file to at most `retryBudgetMs`,
// so retries cannot multiply the wait, and a server that stalls after every few bytes ends too.
import { createSHA256, type IHasher } from 'hash-wasm';
import { shownUrl } from './idle-fetch';
import { fetchFile, HubError, type HubOptions, type RepoFile } from './hub';

export interface TransferOptions extends HubOptions {
  signal?: AbortSignal;
  /** Reconnections in a row after a dropped connection before giving up (default 5). */
  retries?: number;
  /** Milliseconds before the first reconnection; doubled each time (default 500). */
  backoff?: number;
  /** Milliseconds a file's download may lose to failures and reconnections in all (default 120 s). */
  retryBudgetMs?: number;
}

export const RETRY_BUDGET_MS = 120_000;

/** Bytes of `file` from `offset` to `end` (default: its end), in the order they arrive. */
export async function* fileBytes(
  url: string,
  file: RepoFile,
  offset: number,
  o: TransferOptions = {},
  end = file.size,
): AsyncGenerator<Uint8Array> {
  if (offset > file.size)
    throw new HubError(
      `${file.path}: ${offset} bytes are stored, more than its ${file.size}; delete the stored part and download again`,
    );
  const budget = o.retryBudgetMs ?? RETRY_BUDGET_MS;
  let at = offset,
    failures = 0,
    reconnections = 0,
    lostMs = 0;
  let lastByte = performance.now(); // (or the start): where time lost to a failure starts counting
  let failedAt: number | null = null; // that time, while failures go on
  while (at < end) {
    try {
      const reader = (await fetchFile(url, file.size, at, o, end)).getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (at + value.length > end) {
            throw new HubError(
              `${file.path} (${shownUrl(url)}): the server sent more than the ${end - offset} ` +
                `bytes asked from its ${file.size}`,
            );
          }
          at += value.length;
          lastByte = performance.now();
          if (failedAt !== null) lostMs += lastByte - failedAt; // bytes flow again
          failures = 0;
          failedAt = null;
          yield value;
          lastByte = performance.now(); // the time the reader spent on the bytes is not lost
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
      failedAt ??= lastByte;
      const lost = lostMs + performance.now() - failedAt;
      const wait = (o.backoff ?? 500) * 2 ** failures;
      if (++failures > (o.retries ?? 5) || lost + wait > budget) {
        const why = e instanceof DroppedError ? 'the connection closed early' : (e as Error).message;
        throw new HubError(
          `${file.path} (${shownUrl(url)}): the download failed at byte ${at} of ${file.size} ` +
            `(${why}; ${(lost / 1000).toFixed(1)} s lost to failures) and ${reconnections} reconnections failed; ` +
            'try again: it resumes from what is stored',
        );
      }
      await sleep(wait, o.signal);
      reconnections++;
    }
  }
}

class DroppedError extends Error {}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
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

const MiB = 2 ** 20;

/**
 * The most bytes a file read whole may have, by its name, checked before the request. The caps
 * sit well above real files and far below what would hurt the page:
 * - tokenizer.json: 64 MiB. The largest real ones (256k-token vocabularies, Gemma 3's) are ~33 MB.
 * - model.safetensors.index.json: 32 MiB. Models with tens of thousands of tensors list them in a few MB.
 * - other JSON (config, generation_config, tokenizer_config with its chat template, special tokens
 *   map) and chat templates of their own (chat_template.jinja): 16 MiB. Real ones are KBs; a
 *   tokenizer_config.json that lists many added tokens a few MB.
 * - anything else read whole: 64 MiB (larger files are streamed, never read whole).
 */
export function wholeFileLimit(path: string): number {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (name === 'tokenizer.json') return 64 * MiB;
  if (name === 'model.safetensors.index.json') return 32 * MiB;
  if (name.endsWith('.json') || name.endsWith('.jinja')) return 16 * MiB;
  return 64 * MiB;
}

/**
 * A small file whole (config, tokenizer, the shard index), checked against its size and SHA-256.
 * The listed size is only believed up to `limit`, and the buffer grows as bytes arrive: a
 * listing that claims gigabytes reserves nothing.
 */
export async function fetchWhole(
  url: string,
  file: RepoFile,
  o: TransferOptions = {},
  limit = wholeFileLimit(file.path),
): Promise<Uint8Array> {
  if (file.size > limit) {
    throw new HubError(
      `${file.path} (${shownUrl(url)}) is listed at ${file.size} bytes; a ${file.path} is read ` +
        `whole only up to ${limit / MiB} MiB, so this one is refused: check the repo, or pick another model`,
    );
  }
  const all = new GrowingBytes(file.size);
  const sum = await Checksum.create();
  for await (const c of fileBytes(url, file, 0, o)) {
    all.push(c);
    sum.update(c);
  }
  verifySha256(file, sum.hex(), url);
  return all.bytes();
}

/**
 * Bytes gathered as they arrive, in a buffer that doubles as needed up to the size expected:
 * what is allocated follows what was received, not what a server said it would send.
 */
export class GrowingBytes {
  private buffer: Uint8Array;
  private length = 0;

  constructor(private readonly expected: number) {
    this.buffer = new Uint8Array(Math.min(expected, 64 * 1024));
  }

  push(chunk: Uint8Array): void {
    const need = this.length + chunk.length;
    if (need > this.buffer.length) {
      // (fileBytes never yields more than was asked for: `expected` bounds the growth)
      const grown = new Uint8Array(Math.min(Math.max(this.expected, need), Math.max(need, 2 * this.buffer.length)));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(chunk, this.length);
    this.length = need;
  }

  /** What arrived (the buffer itself when it is exactly full, as it is once a file is complete). */
  bytes(): Uint8Array {
    return this.length === this.buffer.length ? this.buffer : this.buffer.slice(0, this.length);
  }
}

/** Throws when a complete file's hash is not the listed one; `url`, where given, is named too. */
export function verifySha256(file: RepoFile, hex: string, url?: string): void {
  if (file.sha256 && hex !== file.sha256) {
    const from = url ? ` (${shownUrl(url)})` : '';
    throw new HubError(
      `${file.path} is corrupt: its SHA-256 is ${hex.slice(0, 12)}…, the Hub lists ` +
        `${file.sha256.slice(0, 12)}…${from}; it was discarded: download it again`,
    );
  }
}
