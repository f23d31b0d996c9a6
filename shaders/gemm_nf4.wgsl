// NF4 GEMM variant, appended to nf4.wgsl + gemm_core.wgsl. The frozen weight W [out, in] is
// NF4; it is dequantized tile by tile into workgroup memory and never exists as f32 in
// global memory.
//   forward     y  = x · Wᵀ   x: [M=T, K=in],  W: NF4 [N=out, K=in]   (TRANS_B = true)
//   backward    dX = dY · W   dY: [M=T, K=out], W: NF4 [K=out, N=in]  (TRANS_B = false)
// ACCUMULATE adds into C (the LoRA branch and the frozen path share dX).

override TRANS_B: bool = true;
override ACCUMULATE: bool = false;
override A_K_CONTIGUOUS: bool = true;
override B_K_CONTIGUOUS: bool = TRANS_B;

struct Params { M: u32, N: u32, K: u32, alpha: f32, sA: u32, sB: u32, sC: u32, blockShift: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;     // packed codes
@group(0) @binding(2) var<storage, read> absmax: array<f32>; // one per block
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn loadA(m: u32, k: u32) -> f32 {
  return A[batch * p.sA + m * p.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  var e: u32;
  if (TRANS_B) { e = n * p.K + k; } else { e = k * p.N + n; }
  return NF4_CODE[nf4Code(Wq[e >> 3u], e)] * absmax[e >> p.blockShift];
}

fn storeC(m: u32, n: u32, v: f32) {
  let i = batch * p.sC + m * p.N + n;
  if (ACCUMULATE) { C[i] += v; } else { C[i] = v; }
}
