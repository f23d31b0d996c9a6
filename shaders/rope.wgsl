// Rotary position embedding with rotate-half pairs (i, i + d/2), in place on q or k,
// forward and backward:                                   x: [T, heads, d], pos: u32 [T]
//   forward   (a, b) ← (a cos θ − b sin θ,  b cos θ + a sin θ)     θ = pos[t] · inv_freq[i]
//   backward  the inverse rotation, θ → −θ
// cos θ and sin θ come from tables [P, d/2] computed on the CPU (WGSL's cos and sin are only
// accurate to 2⁻¹¹ inside [−π, π]); positions restart per packed sequence.

override WG: u32 = 256;

struct Params { T: u32, heads: u32, half: u32, sign: f32 }   // sign: 1 forward, −1 backward

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> pos: array<u32>;
@group(0) @binding(2) var<storage, read> cosT: array<f32>;
@group(0) @binding(3) var<storage, read> sinT: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * WG;          // one thread per pair
  if (k >= p.T * p.heads * p.half) { return; }
  let i = k % p.half;
  let row = k / p.half;                        // t · heads + head
  let t = row / p.heads;
  let c = cosT[pos[t] * p.half + i];
  let s = p.sign * sinT[pos[t] * p.half + i];
  let ia = row * 2u * p.half + i;
  let ib = ia + p.half;
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * c - b * s;
  x[ib] = b * c + a * s;
}
