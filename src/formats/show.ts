// How a value read from a file is shown in an error message: as JSON (so a string's quotes
// and control characters are visible), cut short, never echoing a megabyte back to the user.

/** `v` for an error message: JSON, Infinity and NaN as such, nothing as "nothing", at most `max` characters. */
export function showValue(v: unknown, max = 80): string {
  // JSON would show Infinity and NaN (what 1e999 parses to) as null
  const s =
    v === undefined
      ? 'nothing'
      : typeof v === 'number' && !Number.isFinite(v)
        ? String(v)
        : (JSON.stringify(v) ?? String(v));
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
