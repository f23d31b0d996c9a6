// `npm run bench`: the bench in Node on Dawn (the system's Vulkan driver, else SwiftShader): the
// device's correctness check, the kernels, then the end-to-end rows of ./model-bench.ts. Prints
// the tables and writes them as JSON under bench/results/.
//   node bin/ts.mjs bench/node-bench.ts [--size small|large] [--models a,b] [--no-kernels] [--out FILE]
//                                        [--against REV] [--print-cases]
// --against REV first runs the same cases on REV's code (an export of it, with these bench files),
// then this tree's, and prints the ratios: the before-and-after of a change, on one machine at one time.
// On a GPU machine without npm (../shared/device/README.md) it runs bundled: bench/device-bench.ts.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { nodeGpu } from '../src/node/dawn';
import { checkKernels } from '../src/ops/kernel-check';
import { benchKernels, formatTable, type BenchRow } from './kernels';
import {
  benchCases,
  benchModel,
  formatComparison,
  formatModelTable,
  formatSplitTable,
  type ModelRow,
} from './model-bench';

export interface BenchResult {
  date: string;
  adapter: string;
  /** The subgroup width the kernels use (0: none, or the start-up check failed). */
  subgroups: number;
  size: 'small' | 'large';
  kernels: BenchRow[];
  models: ModelRow[];
  /** --against: the same cases on another commit, run just before these. */
  against?: { rev: string; models: ModelRow[] };
}

const flag = (argv: string[], name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);

/** The model rows of `rev`'s code for the same cases, from an export of it beside this tree. */
function benchAt(rev: string, size: string, only: string[] | undefined): ModelRow[] {
  const commit = execFileSync('git', ['rev-parse', '--short', rev], { encoding: 'utf8' }).trim();
  const dir = `/tmp/bench-at-${commit}`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('bash', ['-c', `git archive ${commit} | tar -x -C ${dir}`]);
  symlinkSync(resolve('node_modules'), `${dir}/node_modules`);
  // this tree's harness: it reads the runtime's counters and timers only where they exist (and
  // the kernel check, which older trees kept inside the engine)
  const harness = ['bench/node-bench.ts', 'bench/model-bench.ts', 'bench/kernels.ts', 'src/ops/kernel-check.ts'];
  for (const f of harness) copyFileSync(f, `${dir}/${f}`);
  const out = `${dir}/result.json`;
  const args = ['bin/ts.mjs', 'bench/node-bench.ts', '--no-kernels', '--size', size, '--out', out];
  if (only) args.push('--models', only.join(','));
  console.log(`\n— ${rev} (${commit}) —`);
  execFileSync(process.execPath, args, { cwd: dir, stdio: 'inherit' });
  const models = (JSON.parse(readFileSync(out, 'utf8')) as BenchResult).models;
  rmSync(dir, { recursive: true, force: true });
  return models;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--print-cases')) {
    // the cases as JSON, for bench/torch_bench.py to time PyTorch on the same shapes
    console.log(JSON.stringify(benchCases((flag(argv, '--size') ?? 'large') as 'small' | 'large'), null, 1));
    return 0;
  }
  const gpu = await nodeGpu();
  const adapter = [gpu.info.vendor, gpu.info.architecture, gpu.info.description].filter(Boolean).join(' ');
  // SwiftShader runs at a few hundred MFLOP/s: the small shapes there, the real ones on a GPU
  const size = (flag(argv, '--size') ?? (/swiftshader/i.test(adapter) ? 'small' : 'large')) as 'small' | 'large';
  // subgroup kernels run only where the start-up check passed (Gpu.checkSubgroups)
  const subgroups = gpu.subgroupSize;
  console.log(`adapter: ${adapter} (${size} shapes); subgroup kernels: ${subgroups ? `${subgroups} wide` : 'off'}`);
  let kernels: BenchRow[] = [];
  if (!argv.includes('--no-kernels')) {
    // correctness on this device first: the GPU quantizer's bytes against the CPU's, the GEMV against float64
    const shapes =
      size === 'small'
        ? [[257, 384]]
        : [
            [257, 384],
            [4672, 4544],
          ];
    for (const [out, inF] of shapes) {
      const c = await checkKernels(gpu, out, inF, 7);
      console.log(
        `check W [${out}×${inF}]: bytes identical to CPU: ${c.bytesIdentical}, ` +
          `GEMV rel. error ${c.relError.toExponential(2)}`,
      );
    }
    kernels = await benchKernels(gpu, size === 'small', async () => null);
    console.log(`\n${formatTable(kernels)}\n`);
  }
  gpu.destroy();

  const only = flag(argv, '--models')?.split(',');
  const rev = flag(argv, '--against');
  const against = rev ? { rev, models: benchAt(rev, size, only) } : undefined;
  if (rev) console.log('\n— this tree —');
  const models: ModelRow[] = [];
  for (const k of benchCases(size).filter((k) => !only || only.includes(k.name))) {
    process.stdout.write(`${k.name}: ${k.tokens} tokens per step… `);
    const t0 = performance.now();
    models.push(await benchModel(() => nodeGpu(), k));
    console.log(`${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  if (models.length) console.log(`\n${formatModelTable(models)}\n\n${formatSplitTable(models)}`);
  if (against) {
    console.log(`\nagainst ${rev}:\n${formatModelTable(against.models)}\n\n${formatSplitTable(against.models)}`);
    console.log(`\n${formatComparison(against.models, models)}`);
  }

  const result: BenchResult = { date: new Date().toISOString(), adapter, subgroups, size, kernels, models, against };
  const stamp = result.date.slice(0, 19).replace(/[:T]/g, '-');
  // BENCH_OUT, or $OUT on a lent GPU machine: where that machine's files come back from
  const dir = process.env.BENCH_OUT ?? process.env.OUT ?? 'bench/results';
  const file = flag(argv, '--out') ?? `${dir}/${stamp}-node-${adapter.replace(/\W+/g, '_')}.json`;
  mkdirSync(file.replace(/\/[^/]*$/, '') || '.', { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
  return 0;
}
