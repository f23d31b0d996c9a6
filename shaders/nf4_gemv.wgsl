// NF4 matrix-vector product for decoding, appended to nf4.wgsl:
//   y[m, n] = alpha · Σ_k x[m, k] · W[n, k]      x: [M, K], W: NF4 [N, K], y: [M, N]
// One row of W per group of LANES threads; the group walks the row a u32 (8 codes) at a time,
// so each thread reads whole words of W and 8 consecutive values of x. When K % 8 == 0 (every
// real model) rows are whole words; otherwise rows start mid-word and elements outside the
// row are masked. The group sums its partial dot products in workgroup memory.
// Grid: x·y folds ceil(N / ROWS) workgroups, z = M.

override LANES: u32 = 32;   // threads per row
override ROWS: u32 = 8;     // rows per workgroup
override ACCUMULATE: bool = false;
override ALIGNED: bool = false;  // K % 8 == 0: rows start on word boundaries

struct Params { M: u32, N: u32, K: u32, alpha: f32, blockShift: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;
@group(0) @binding(2) var<storage, read> absmax: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, LANES * ROWS>;
var<workgroup> lut: array<f32, 16>;

@compute @workgroup_size(LANES, ROWS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let n = (wid.x + wid.y * nwg.x) * ROWS + lid.y;
  let m = wid.z;
  // The code table in workgroup memory: a dynamically indexed `const` array is rebuilt per
  // thread by some compilers.
  let tid = lid.y * LANES + lid.x;
  if (tid < 16u) { lut[tid] = NF4_CODE[tid]; }
  workgroupBarrier();

  var sum = 0.0;
  if (n < p.N) {
    let xrow = m * p.K;
    if (ALIGNED) {
      // K % 8 == 0: each row is whole words, and a word's 8 codes share one absmax.
      let kw = p.K >> 3u;
      let base = n * kw;
      for (var i = lid.x; i < kw; i += LANES) {
        let word = Wq[base + i];
        let xo = xrow + i * 8u;
        var acc = 0.0;
        for (var b = 0u; b < 4u; b++) {
          let byte = (word >> (8u * b)) & 0xffu;
          acc += lut[byte >> 4u] * x[xo + 2u * b] + lut[byte & 15u] * x[xo + 2u * b + 1u];
        }
        sum += acc * absmax[((base + i) << 3u) >> p.blockShift];
      }
    } else {
      let e0 = n * p.K;            // first flattened element of the row
      let e1 = e0 + p.K;           // one past the last
      for (var w = (e0 >> 3u) + lid.x; w <= ((e1 - 1u) >> 3u); w += LANES) {
        let word = Wq[w];
        let scale = absmax[(w * 8u) >> p.blockShift];   // blocks hold a multiple of 8 codes
        for (var j = 0u; j < 8u; j++) {
          let e = w * 8u + j;
          if (e >= e0 && e < e1) {
            sum += lut[nf4Code(word, e)] * scale * x[xrow + e - e0];
          }
        }
      }
    }
  }
  partial[lid.y * LANES + lid.x] = sum;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.y * LANES + lid.x] += partial[lid.y * LANES + lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < p.N) {
    let v = p.alpha * partial[lid.y * LANES];
    if (ACCUMULATE) { y[m * p.N + n] += v; } else { y[m * p.N + n] = v; }
  }
}
