// NF4 quantizer on the GPU, appended to nf4.wgsl; byte-identical to src/quant/nf4.ts.
//   x: f32 [n]  ->  Wq: packed codes, u32 [ceil(n / 8)];  absmax: f32 [ceil(n / blocksize)]
// One workgroup per block: the threads reduce max |x|, take the correctly rounded reciprocal
// (integer long division, since WGSL's f32 division is only accurate to 2.5 ulp), and each
// packs whole u32 words of 8 codes. Elements past n are quantized as 0.0, as bitsandbytes
// pads, and a block of zeros is all code 0 (bitsandbytes' 0·(1/0) = NaN path).

// Thresholds of bitsandbytes' dQuantizeNF4 as exact f32 bit patterns (src/quant/nf4.ts
// NF4_THRESHOLDS; a test checks they agree): code = number of thresholds x·r exceeds.
const NF4_THRESHOLD_BITS = array<u32, 15>(
  0xbf591cd8u, 0xbf1c5270u, 0xbeeb8480u, 0xbeadea76u, 0xbe703cecu, 0xbe0d38bcu, 0xbd3a7871u,
  0x3d22faffu, 0x3df64862u, 0x3e5067e0u, 0x3e9582d4u, 0x3ec753f9u, 0x3f006d04u, 0x3f248dafu,
  0x3f5c89dau);

override WG: u32 = 64;

struct Params { n: u32, blocksize: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> Wq: array<u32>;
@group(0) @binding(2) var<storage, read_write> absmax: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> red: array<f32, WG>;

// 1/a rounded to nearest for a normal positive f32 a: with a = M·2^(e-23), M in [2^23, 2^24),
// 1/a = (2^47 / M) · 2^(-24-e); 24 quotient bits by long division, then round on the remainder.
fn recipExact(a: f32) -> f32 {
  let bits = bitcast<u32>(a);
  let e = i32((bits >> 23u) & 0xffu) - 127;
  let M = (bits & 0x7fffffu) | 0x800000u;
  if (M == 0x800000u) { return bitcast<f32>(u32(127 - e) << 23u); }   // a power of two
  var R = 1u << 24u;
  var q = 0u;
  for (var i = 0u; i < 24u; i++) {
    q <<= 1u;
    if (R >= M) { R -= M; q |= 1u; }
    R <<= 1u;
  }
  // R is now twice the remainder; M is not a power of two, so there are no ties.
  if (R > M) { q += 1u; }
  var biased = 126 - e;
  if (q == 0x1000000u) { q = 0x800000u; biased += 1; }
  return bitcast<f32>((u32(biased) << 23u) | (q & 0x7fffffu));
}

fn quantizeOne(v: f32) -> u32 {
  var code = 0u;
  for (var k = 0u; k < 15u; k++) {
    if (v > bitcast<f32>(NF4_THRESHOLD_BITS[k])) { code++; }
  }
  return code;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let block = wid.x + wid.y * nwg.x;
  let start = block * p.blocksize;
  if (start >= p.n) { return; }   // uniform across the workgroup
  let end = min(p.n, start + p.blocksize);

  var m = 0.0;
  for (var i = start + lid.x; i < end; i += WG) { m = max(m, abs(x[i])); }
  red[lid.x] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] = max(red[lid.x], red[lid.x + s]); }
    workgroupBarrier();
  }
  let amax = red[0];
  let zero = amax == 0.0;
  var r = 0.0;
  if (!zero) { r = recipExact(amax); }
  if (lid.x == 0u) { absmax[block] = amax; }

  let w0 = start / 8u;
  let w1 = (end + 7u) / 8u;
  for (var w = w0 + lid.x; w < w1; w += WG) {
    var word = 0u;
    for (var j = 0u; j < 8u; j++) {
      let e = w * 8u + j;
      var v = 0.0;
      if (e < p.n) { v = x[e]; }
      var code = 0u;
      if (!zero) { code = quantizeOne(v * r); }
      // byte j/2 of the word; the even element of a pair in the high nibble
      word |= code << ((j >> 1u) * 8u + select(4u, 0u, (j & 1u) == 1u));
    }
    Wq[w] = word;
  }
}
