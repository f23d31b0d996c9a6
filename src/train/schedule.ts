// Learning-rate schedules as transformers' get_scheduler defines them: the multiplier of the
// base rate at optimizer step k (0-based), with linear warmup over `warmup` steps.
export type SchedulerType = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

export const SCHEDULER_TYPES: SchedulerType[] = ['constant', 'constant_with_warmup', 'linear', 'cosine'];

export function lrMultiplier(type: SchedulerType, k: number, warmup: number, total: number): number {
  if (type === 'constant') return 1;
  if (k < warmup) return k / Math.max(1, warmup);
  if (type === 'constant_with_warmup') return 1;
  const progress = (k - warmup) / Math.max(1, total - warmup);
  if (type === 'linear') return Math.max(0, (total - k) / Math.max(1, total - warmup));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress))); // cosine, half a cycle
}
