// Lines over 120 characters in the project's own source (.ts, .mjs, .wgsl, .css): what is left for a
// person after `npm run format`, which wraps code but never a comment, a string or a template literal,
// nor a WGSL or CSS file (Biome formats neither). Prints path:line: length and a guess at what the line
// is, then the count; exits 1 when there is any, so it can run as a check.
// Usage: node scripts/long-lines.mjs [max-width]   (default 120)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const max = Number(process.argv[2] ?? 120);
if (!Number.isInteger(max) || max < 1) {
  console.error(`long-lines: the width must be a positive whole number, not ${process.argv[2]}`);
  process.exit(2);
}

// tracked files and new ones not ignored: node_modules, dist, test-results and /fixtures/ stay out
const patterns = ['*.ts', '*.mjs', '*.wgsl', '*.css'];
const args = ['ls-files', '-co', '--exclude-standard', '-z', '--', ...patterns];
const listed = execFileSync('git', args, { encoding: 'utf8' });
const files = listed.split('\0').filter((f) => f !== '');

/** What a long line mostly is, so whoever wraps it knows how: a comment, a string, or code. */
function kind(line) {
  const text = line.trim();
  if (/^(\/\/|\/\*|\*)/.test(text)) return 'comment';
  if (/\/\/ /.test(text) && text.indexOf('// ') > text.length / 2) return 'code, trailing comment';
  if (/['"`]/.test(text)) return 'string';
  return 'code';
}

let count = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    continue; // listed by git but deleted in the work tree
  }
  for (const [i, line] of text.split('\n').entries()) {
    const length = [...line].length; // characters, as an editor counts them, not UTF-16 units
    if (length <= max) continue;
    count++;
    console.log(`${file}:${i + 1}: ${length} (${kind(line)})`);
  }
}
console.log(`${count} line(s) over ${max} characters in ${files.length} files`);
process.exit(count === 0 ? 0 : 1);
