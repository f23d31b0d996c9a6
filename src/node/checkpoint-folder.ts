// A run's checkpoints on disk, as transformers lays them out: OUTPUT/checkpoint-N/. Each is
// written into a hidden folder first and renamed into place, so a run killed mid-write leaves
// no half checkpoint under a checkpoint's name (only a .partial folder, removed by the next save).
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointStore } from '../engine/training-run';
import { CHECKPOINT_FILES, CheckpointError, checkpointName, type CheckpointFiles } from '../train/checkpoint';

const NAME = /^checkpoint-(\d+)$/;

export class CheckpointFolder implements CheckpointStore {
  constructor(readonly dir: string) {}

  async save(step: number, files: CheckpointFiles): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const partial = join(this.dir, `.${checkpointName(step)}.partial`);
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial);
    for (const [name, data] of Object.entries(files)) await writeFile(join(partial, name), data);
    const final = join(this.dir, checkpointName(step));
    await rm(final, { recursive: true, force: true });
    await rename(partial, final);
  }

  async steps(): Promise<number[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.flatMap((n) => (NAME.test(n) ? [Number(NAME.exec(n)![1])] : []));
  }

  async remove(step: number): Promise<void> {
    await rm(join(this.dir, checkpointName(step)), { recursive: true, force: true });
  }
}

/**
 * The folder --resume_from_checkpoint names: a checkpoint folder, or `true` for the latest in
 * `outputDir` (as transformers' get_last_checkpoint finds it).
 */
export async function checkpointToResume(given: string, outputDir: string): Promise<string> {
  if (given.toLowerCase() === 'true') {
    const steps = await new CheckpointFolder(outputDir).steps();
    if (steps.length === 0)
      throw new CheckpointError(
        `--resume_from_checkpoint true: there is no checkpoint-N folder in ${outputDir} (--output_dir) to resume from`,
      );
    return join(outputDir, checkpointName(Math.max(...steps)));
  }
  const isDir = await stat(given).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir) throw new CheckpointError(`--resume_from_checkpoint ${given}: there is no such folder`);
  return given;
}

/** The files of a checkpoint folder (those it lacks are reported by readCheckpoint). */
export async function readCheckpointFolder(dir: string): Promise<Partial<CheckpointFiles>> {
  const files: Partial<CheckpointFiles> = {};
  for (const name of CHECKPOINT_FILES) {
    const data = await readFile(join(dir, name)).catch(() => null);
    if (data) files[name] = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return files;
}
