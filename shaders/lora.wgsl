// LoRA dropout, forward and backward. PEFT applies dropout to the LoRA branch's input only:
//   forward   xd = x ⊙ keep / (1 - p)          x, xd: [T, in]
//   backward  dx += dxd ⊙ keep / (1 - p)       dxd: [T, in], the gradient reaching xd
// `keep` is regenerated from (seed, element index) by a counter-based hash, so the backward
// pass and a recomputed forward see the same mask without storing it, and a seed gives the
// same mask on every device. The matmuls of the branch are GEMMs (ops/lora.ts).

struct Params { n: u32, seed: u32, threshold: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// PCG-style integer hash (an output permutation of one LCG step); two rounds mix seed and index.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// An element is kept when its 32-bit hash is at or above `threshold` = round(p · 2³²).
fn keep(i: u32) -> bool {
  return pcg(pcg(i) ^ p.seed) >= p.threshold;
}

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  dst[i] = select(0.0, src[i] * p.scale, keep(i));
}

@compute @workgroup_size(WG)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  if (keep(i)) { dst[i] += src[i] * p.scale; }
}
