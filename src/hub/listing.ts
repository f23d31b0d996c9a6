// A repo's file listing, checked entry by entry as it arrives. It comes from whatever server
// the endpoint names, and its paths become file names in caches and its sizes become loop
// bounds and buffer sizes, so nothing in it is taken on trust: each entry must be an object
// with a safe relative path, a whole-number size within bounds and, for LFS files, a SHA-256
// of 64 hex digits; no path twice, no file inside another file; not more files than any repo
// we could use has. Every refusal names the repo, the entry and the field.
import { showValue } from '../formats/show';
import { HubError, type RepoFile } from './hub';

/** Larger than any file on the Hub (its largest are tens of GB): a size above it is a lie, not a file. */
export const MAX_FILE_BYTES = 2 ** 45;
/** More files than any repo this tool reads has (the Hub advises under 100,000): bounds the listing's memory. */
export const MAX_FILES = 200_000;

export class ListingCheck {
  readonly files: RepoFile[] = [];
  private entries = 0;
  private readonly paths = new Set<string>();
  private readonly folders = new Set<string>();

  /** `what`: the repo as messages name it ("model owner/name"). */
  constructor(private readonly what: string) {}

  /** Takes one entry of the listing (folders are skipped); throws a HubError on anything amiss. */
  add(entry: unknown): void {
    const i = this.entries++;
    if (i >= MAX_FILES) this.fail(`it lists more than ${MAX_FILES} entries, more than a repo this tool can read has`);
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      this.fail(`entry ${i} is ${showValue(entry)}; each entry is an object {type, path, size}`);
    }
    const e = entry as { type?: unknown; path?: unknown; size?: unknown; lfs?: unknown; oid?: unknown };
    if (e.type !== 'file' && e.type !== 'directory' && e.type !== 'unknown') {
      this.fail(`entry ${i} has type ${showValue(e.type)}; it is "file" or "directory"`);
    }
    if (e.type !== 'file') return;
    const path = this.path(e.path, i);
    let size = this.size(e.size, `entry ${i} (${path}): size`);
    let sha256: string | null = null;
    if ('lfs' in e) {
      const lfs = e.lfs as { oid?: unknown; size?: unknown } | null;
      if (lfs === null || typeof lfs !== 'object') {
        this.fail(`entry ${i} (${path}): lfs is ${showValue(lfs)}; it is an object {oid, size} or absent`);
      }
      if (typeof lfs.oid !== 'string' || !/^[0-9a-f]{64}$/.test(lfs.oid)) {
        this.fail(`entry ${i} (${path}): lfs.oid is ${showValue(lfs.oid)}; it is a SHA-256, 64 lowercase hex digits`);
      }
      const lfsSize = this.size(lfs.size, `entry ${i} (${path}): lfs.size`);
      if (lfsSize !== size) {
        this.fail(`entry ${i} (${path}): lfs.size ${lfsSize} and size ${size} disagree; both are the file's size`);
      }
      size = lfsSize;
      sha256 = lfs.oid;
    }
    // the git blob id names a small file's blob in huggingface_hub's cache: 40 hex digits, or not used
    const oid = typeof e.oid === 'string' && /^[0-9a-f]{40}$/.test(e.oid) ? e.oid : null;
    this.files.push({ path, size, sha256, oid });
  }

  /** The files, once the listing has ended. */
  done(): RepoFile[] {
    const nested = this.files.find((f) => this.folders.has(f.path));
    if (nested) this.fail(`path ${showValue(nested.path)} is listed as a file and as a folder of other files`);
    return this.files;
  }

  /** A path that stays inside the repo's folder wherever it is written to disk, listed once. */
  private path(path: unknown, i: number): string {
    const bad = (why: string): never => this.fail(`entry ${i}: path ${showValue(path)} ${why}`);
    if (typeof path !== 'string') return bad("is not text; it is the file's path in the repo");
    if (path.length === 0 || path.length > 1024) bad('is empty or longer than 1024 characters');
    // paths become file names in caches: refuse anything that could leave the repo's folder
    if (path.split('/').some((part) => part === '' || part === '.' || part === '..') || /^[/\\]|\\/.test(path)) {
      bad('could leave the repo\'s folder; a path is relative, with no "..", "." or empty parts and no backslashes');
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
    if (/[\u0000-\u001f\u007f]/.test(path)) bad('holds control characters, which no file name should');
    if (this.paths.has(path)) bad('is listed twice');
    this.paths.add(path);
    for (let at = path.indexOf('/'); at > 0; at = path.indexOf('/', at + 1)) this.folders.add(path.slice(0, at));
    return path;
  }

  private size(size: unknown, field: string): number {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > MAX_FILE_BYTES) {
      this.fail(`${field} is ${showValue(size)}; a file's size is a whole number of bytes from 0 to 2^45`);
    }
    return size as number;
  }

  private fail(why: string): never {
    throw new HubError(
      `the Hub's listing of ${this.what} is not usable: ${why}. Check the Hub endpoint; ` +
        'if it is the real Hub, the repo itself is broken: tell its owner',
    );
  }
}

/** A value as a message shows it: short, with its quotes and escapes. */
