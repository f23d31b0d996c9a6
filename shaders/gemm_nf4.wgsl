// NF4 GEMM variant, appended to nf4.wgsl + gemm_core.wgsl. The frozen weight W [out, in] is
// NF4; it is dequantized tile by tile into workgroup memory and never exists as f32 in
// global memory.
//   forward     y  = x · Wᵀ   x: [M=T, K=in],  W: NF4 [N=out, K=in]   (TRANS_B = true)
//   backward    dX = dY · W   dY: [M=T, K=out], W: NF4 [K=out, N=in]  (TRANS_B = false)
// ACCUMULATE adds into C (the LoRA branch and the frozen path share dX).
//
// LORA (forward only) folds the adapter's up-projection into the same product, saving a pass
// over y:  y = x Wᵀ + s · h Bᵀ = [x | h] · [W | s·B]ᵀ, with h = dropout(x) Aᵀ: [M, r] and
// B: [N, r]. K then runs on past the weight's Kw columns over h's r: K = Kw + r. Without it
// K = Kw, and H and LB are bound to any buffer (they are not read).

override TRANS_B: bool = true;
override ACCUMULATE: bool = false;
override LORA: bool = false;
override A_K_CONTIGUOUS: bool = true;
override B_K_CONTIGUOUS: bool = TRANS_B;

struct Params {
  M: u32, N: u32, K: u32, alpha: f32, sA: u32, sB: u32, sC: u32, blockShift: u32, Kw: u32, r: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;     // packed codes
@group(0) @binding(2) var<storage, read> absmax: array<f32>; // one per block
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> H: array<f32>;      // LORA: h [M, r]
@group(0) @binding(5) var<storage, read> LB: array<f32>;     // LORA: B [N, r]
@group(0) @binding(6) var<uniform> p: Params;

fn loadA(m: u32, k: u32) -> f32 {
  if (LORA && k >= p.Kw) { return H[m * p.r + k - p.Kw]; }
  return A[batch * p.sA + m * p.Kw + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (LORA && k >= p.Kw) { return p.scale * LB[n * p.r + k - p.Kw]; }
  var e: u32;
  if (TRANS_B) { e = n * p.Kw + k; } else { e = k * p.N + n; }
  return nf4Value(nf4Code(Wq[e >> 3u], e)) * absmax[e >> p.blockShift];
}

fn storeC(m: u32, n: u32, v: f32) {
  let i = batch * p.sC + m * p.N + n;
  if (ACCUMULATE) { C[i] += v; } else { C[i] = v; }
}
