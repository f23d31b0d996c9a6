// A Hub file read lazily, the way the data reader reads a Blob (src/data/read.ts): a slice
// fetches just its byte range (Parquet's footer, then one row group at a time), a stream
// fetches from its start and reconnects where the connection drops (JSONL, CSV, text, line by
// line). So a data set on the Hub is never held whole in the page, as a dropped File is not.
// A stream over the whole file is checked against the Hub's SHA-256 when it ends.
import type { DataBlob } from '../data/read';
import { fileUrl, type RepoFile, type RepoSnapshot } from './hub';
import { Checksum, fileBytes, GrowingBytes, verifySha256, type TransferOptions } from './transfer';

export class HubBlob implements DataBlob {
  /** A file of a repo snapshot, whole. */
  static of(
    snapshot: Pick<RepoSnapshot, 'repo' | 'type' | 'commit'>,
    file: RepoFile,
    o: TransferOptions = {},
  ): HubBlob {
    return new HubBlob(fileUrl(snapshot, file.path, o), file, o, 0, file.size);
  }

  private constructor(
    private readonly url: string,
    private readonly file: RepoFile,
    private readonly o: TransferOptions,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get size(): number {
    return this.end - this.start;
  }

  /** Blob.slice's arithmetic: negative ends count from the end, and the range is clamped. */
  slice(start = 0, end = this.size): HubBlob {
    const at = (x: number) => Math.min(this.size, Math.max(0, x < 0 ? this.size + x : x));
    const [a, b] = [at(start), at(end)];
    return new HubBlob(this.url, this.file, this.o, this.start + a, this.start + Math.max(a, b));
  }

  /** The range's bytes, in a buffer that grows as they arrive: a listing's size reserves nothing. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const out = new GrowingBytes(this.size);
    for await (const chunk of this.chunks()) out.push(chunk);
    return out.bytes().buffer as ArrayBuffer;
  }

  async text(): Promise<string> {
    return new TextDecoder().decode(await this.arrayBuffer());
  }

  stream(): ReadableStream<Uint8Array> {
    const it = this.chunks();
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await it.next();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (e) {
          controller.error(e);
        }
      },
      async cancel() {
        await it.return(undefined);
      },
    });
  }

  private async *chunks(): AsyncGenerator<Uint8Array> {
    if (this.size === 0) return;
    const whole = this.start === 0 && this.end === this.file.size;
    const sum = whole && this.file.sha256 ? await Checksum.create() : null;
    for await (const chunk of fileBytes(this.url, this.file, this.start, this.o, this.end)) {
      sum?.update(chunk);
      yield chunk;
    }
    if (sum) verifySha256(this.file, sum.hex(), this.url);
  }
}
