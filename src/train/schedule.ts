// Learning-rate schedules as transformers' get_scheduler defines them: the multiplier of the
// base rate at optimizer step k (0-based), with linear warmup over `warmup_steps` steps, and
// the schedule's own arguments from lr_scheduler_kwargs (transformers' names and defaults):
//   linear                 (total − k) / (total − warmup), down to 0
//   cosine                 ½ (1 + cos(π · 2 · num_cycles · p)), num_cycles 0.5: half a cycle
//   cosine_with_restarts   ½ (1 + cos(π · ((num_cycles · p) mod 1))), num_cycles 1; 0 once p ≥ 1
//   cosine_with_min_lr     cosine, rescaled to end at min_lr_rate (or min_lr / learning_rate)
//   polynomial             ((lr − lr_end) · (1 − p)^power + lr_end) / lr, lr_end 1e-7, power 1
//   inverse_sqrt           1 / √((k + timescale − warmup) / timescale), timescale: warmup or 10⁴
//   warmup_stable_decay    warmup (warmup_type: linear, cosine or 1-sqrt of k / warmup, from
//                          min_lr_ratio up), 1 for num_stable_steps (default: what the others
//                          leave of total), then num_decay_steps of decay_type (cosine with
//                          num_cycles, linear or 1-sqrt) down to min_lr_ratio, and min_lr_ratio after
//   constant, constant_with_warmup
// where p = (k − warmup) / (total − warmup), the progress after warmup.
export type SchedulerType =
  | 'constant'
  | 'constant_with_warmup'
  | 'linear'
  | 'cosine'
  | 'cosine_with_restarts'
  | 'cosine_with_min_lr'
  | 'polynomial'
  | 'inverse_sqrt'
  | 'warmup_stable_decay';

export const SCHEDULER_TYPES: SchedulerType[] = [
  'constant',
  'constant_with_warmup',
  'linear',
  'cosine',
  'cosine_with_restarts',
  'cosine_with_min_lr',
  'polynomial',
  'inverse_sqrt',
  'warmup_stable_decay',
];

/** The shapes of warmup_stable_decay's warmup and decay (transformers' names). */
const WSD_SHAPES = ['linear', 'cosine', '1-sqrt'] as const;
type WsdShape = (typeof WSD_SHAPES)[number];

type NumberKwarg =
  | 'num_cycles'
  | 'min_lr'
  | 'min_lr_rate'
  | 'lr_end'
  | 'power'
  | 'timescale'
  | 'num_decay_steps'
  | 'num_stable_steps'
  | 'min_lr_ratio';

/** lr_scheduler_kwargs: each schedule's arguments, by transformers' names. */
export type SchedulerKwargs = Partial<Record<NumberKwarg, number> & Record<'warmup_type' | 'decay_type', WsdShape>>;

/** What each schedule accepts in lr_scheduler_kwargs. */
const KWARGS: Record<SchedulerType, (keyof SchedulerKwargs)[]> = {
  constant: [],
  constant_with_warmup: [],
  linear: [],
  cosine: ['num_cycles'],
  cosine_with_restarts: ['num_cycles'],
  cosine_with_min_lr: ['num_cycles', 'min_lr', 'min_lr_rate'],
  polynomial: ['lr_end', 'power'],
  inverse_sqrt: ['timescale'],
  warmup_stable_decay: [
    'num_decay_steps',
    'num_stable_steps',
    'warmup_type',
    'decay_type',
    'min_lr_ratio',
    'num_cycles',
  ],
};

export interface ScheduleSettings {
  lr_scheduler_type: SchedulerType;
  warmup_steps: number;
  learning_rate: number;
  lr_scheduler_kwargs?: SchedulerKwargs;
}

/** Refuses kwargs a schedule does not take, or bad values, as transformers' schedulers would. */
export function checkSchedule(s: ScheduleSettings): void {
  const kw = s.lr_scheduler_kwargs ?? {};
  const allowed = KWARGS[s.lr_scheduler_type];
  if (!allowed) throw new Error(`lr_scheduler_type must be one of ${SCHEDULER_TYPES.join(', ')}`);
  for (const [k, v] of Object.entries(kw)) {
    if (!allowed.includes(k as keyof SchedulerKwargs))
      throw new Error(
        `lr_scheduler_kwargs: ${s.lr_scheduler_type} takes ` +
          `${allowed.length ? allowed.join(', ') : 'no arguments'}, not ${k}`,
      );
    if (k === 'warmup_type' || k === 'decay_type') {
      if (!WSD_SHAPES.includes(v as WsdShape))
        throw new Error(`lr_scheduler_kwargs: ${k} must be one of ${WSD_SHAPES.join(', ')}, not ${JSON.stringify(v)}`);
    } else if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`lr_scheduler_kwargs: ${k} must be a number`);
  }
  if (s.lr_scheduler_type === 'warmup_stable_decay' && kw.num_decay_steps === undefined)
    throw new Error('warmup_stable_decay needs lr_scheduler_kwargs num_decay_steps (the steps of its decay)');
  if (s.lr_scheduler_type === 'cosine_with_min_lr' && (kw.min_lr === undefined) === (kw.min_lr_rate === undefined))
    throw new Error('cosine_with_min_lr needs one of lr_scheduler_kwargs min_lr and min_lr_rate');
  if (s.lr_scheduler_type === 'polynomial' && !(s.learning_rate > (kw.lr_end ?? 1e-7)))
    throw new Error(
      `polynomial: lr_end (${kw.lr_end ?? 1e-7}) must be smaller than learning_rate (${s.learning_rate})`,
    );
}

export function lrMultiplier(s: ScheduleSettings, k: number, total: number): number {
  const type = s.lr_scheduler_type;
  const warmup = s.warmup_steps;
  const kw = s.lr_scheduler_kwargs ?? {};
  if (type === 'constant') return 1;
  if (type === 'warmup_stable_decay') return wsdMultiplier(kw, warmup, k, total);
  if (k < warmup) return k / Math.max(1, warmup);
  if (type === 'constant_with_warmup') return 1;
  const p = (k - warmup) / Math.max(1, total - warmup);
  switch (type) {
    case 'linear':
      return Math.max(0, (total - k) / Math.max(1, total - warmup));
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * (kw.num_cycles ?? 0.5) * p)));
    case 'cosine_with_restarts':
      return p >= 1 ? 0 : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (((kw.num_cycles ?? 1) * p) % 1))));
    case 'cosine_with_min_lr': {
      const rate = kw.min_lr_rate ?? (kw.min_lr ?? 0) / s.learning_rate;
      const f = 0.5 * (1 + Math.cos(Math.PI * 2 * (kw.num_cycles ?? 0.5) * p));
      return Math.max(0, f * (1 - rate) + rate);
    }
    case 'polynomial': {
      const end = kw.lr_end ?? 1e-7;
      if (k > total) return end / s.learning_rate;
      const remaining = 1 - (k - warmup) / (total - warmup);
      return ((s.learning_rate - end) * remaining ** (kw.power ?? 1) + end) / s.learning_rate;
    }
    case 'inverse_sqrt': {
      const timescale = kw.timescale ?? (warmup || 10_000);
      return 1 / Math.sqrt((k + timescale - warmup) / timescale);
    }
  }
}

/** warmup_stable_decay's multiplier at step k, as transformers' get_wsd_schedule computes it. */
function wsdMultiplier(kw: SchedulerKwargs, warmup: number, k: number, total: number): number {
  const decay = kw.num_decay_steps ?? 0;
  const stable = kw.num_stable_steps ?? total - warmup - decay;
  const floor = kw.min_lr_ratio ?? 0;
  const lift = (f: number) => Math.max(0, f * (1 - floor) + floor);
  if (k < warmup) {
    const p = k / Math.max(1, warmup);
    const shape = kw.warmup_type ?? 'linear';
    return lift(shape === 'linear' ? p : shape === 'cosine' ? 0.5 * (1 - Math.cos(Math.PI * p)) : 1 - Math.sqrt(1 - p));
  }
  if (k < warmup + stable) return 1;
  if (k < warmup + stable + decay) {
    const p = (k - warmup - stable) / Math.max(1, decay);
    const shape = kw.decay_type ?? 'cosine';
    if (shape === 'linear') return lift(1 - p);
    if (shape === 'cosine') return lift(0.5 * (1 + Math.cos(Math.PI * (kw.num_cycles ?? 0.5) * 2 * p)));
    return lift(1 - Math.sqrt(p));
  }
  return floor;
}
