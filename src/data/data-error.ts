// The data readers' error and skip counts (re-exported by ./read.ts, where callers import them).

export class DataError extends Error {
  override name = 'DataError';
}

/** Why rows were skipped, with how many each. */
export class SkipCounts {
  readonly reasons = new Map<string, number>();
  add(reason: string): void {
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }
  get total(): number {
    let n = 0;
    for (const k of this.reasons.values()) n += k;
    return n;
  }
  toString(): string {
    return [...this.reasons].map(([r, n]) => `${n} ${r}`).join(', ');
  }
}

/** "32 MB" (or "2000 bytes"): a byte bound as the messages show it. */
export const megabytes = (bytes: number): string =>
  bytes < 2 ** 20 ? `${bytes} bytes` : `${Math.round((bytes / 2 ** 20) * 10) / 10} MB`;
