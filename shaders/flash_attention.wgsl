// Causal grouped-query attention, fused (FlashAttention's scheme): the scores live in workgroup
// memory a B×B tile at a time and never in global memory, so memory is linear in length.
// src/ops/attention.ts prepends `const D` (head dim) and `const OPT` (= ceil(B·D / WG), the
// output elements each thread owns) and the block/workgroup sizes.
//
//   S = scale · q_h k_jᵀ  (j = h / group; Gemma 2's cap: S ← cap · tanh(S / cap))
//   forward   P = softmax(S, mask),  o_h = P v_j,  lse_h = log Σ exp S  (one pass, online softmax)
//   backward  P = exp(S − lse) (recomputed),  dP = dO_h v_jᵀ,  dS = P ⊙ (dP − Δ),  Δ = rowsum(dO ⊙ o)
//             (× (1 − (S/cap)²) under the cap),  dq_h = scale · dS k_j,
//             dk_j = scale · Σ_h dSᵀ q_h,  dv_j = Σ_h Pᵀ dO_h   (the group's heads summed here)
//
// q, o, dO: [Tq, H, D]; k, v: [Tk, Hkv, D]; lse: [H, Tq]; Δ is recomputed per block of queries.
// Query i sits at position t = i + Tk − Tq among the keys (Tq = Tk in training; the last Tq
// positions when decoding with a KV cache) and sees keys start[i] ≤ j ≤ t: causal, within its
// packed sequence, within a window.
//
// Workgroups: forward and dq take a block of B queries of one head; dkv a block of B keys of
// one KV head. Each thread computes score entries (e = tid, tid + WG, … of the B×B tile) and owns
// OPT elements of the block's [B, D] output (row e / D, column e % D).

struct Params { Tq: u32, Tk: u32, H: u32, Hkv: u32, scale: f32, cap: f32 }

// Bindings 0–5 are the same for every entry point; then each has its own.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> start: array<u32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;     // forward writes it, backward reads it
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;   // the same
@group(0) @binding(6) var<uniform> pf: Params;                    // flash_forward
@group(0) @binding(6) var<storage, read> dO: array<f32>;          // backward
@group(0) @binding(7) var<storage, read_write> g0: array<f32>;    // dq, or dk
@group(0) @binding(8) var<uniform> pq: Params;                    // flash_dq
@group(0) @binding(8) var<storage, read_write> g1: array<f32>;    // dv
@group(0) @binding(9) var<uniform> pkv: Params;                   // flash_dkv

const NEG = -3.0e38;   // a masked score: exp(NEG − m) is 0 for any finite m

var<workgroup> tile: array<f32, B * B>;    // S, then P
var<workgroup> tile2: array<f32, B * B>;   // backward: dS
var<workgroup> rowMax: array<f32, B>;
var<workgroup> rowSum: array<f32, B>;
var<workgroup> corr: array<f32, B>;
var<workgroup> spanLo: u32;               // the first and last key (forward, dq) or query (dkv) to visit
var<workgroup> spanHi: u32;
var<workgroup> rowDelta: array<f32, B>;   // backward: Δ of the block's queries

fn visible(i: u32, j: u32, P: Params) -> bool {
  return i < P.Tq && j < P.Tk && j >= start[i] && j <= i + P.Tk - P.Tq;
}

// A thread's four entries of a B×B tile share a key: entries tid + n·WG (n < 4) are the rows
// tid / B + n·(WG / B) of column tid % B (B = 16, WG = 64). Their dot products load the key's
// row once for the four queries.
fn rowsOf(tid: u32) -> vec4u {
  let r = tid / B;
  let step = WG / B;
  return vec4u(r, r + step, r + 2u * step, r + 3u * step);
}

// q·k for the four rows of queries i0 + rows (clamped to the last query: rows past it are masked
// anyway), head h, against key j of KV head kvh. (dOv4 is the same over dO and v: one function
// over both would bind dO, which the forward's uniform shares a binding with.)
fn qk4(i0: u32, rows: vec4u, h: u32, j: u32, kvh: u32, P: Params) -> vec4f {
  let qa = (min(vec4u(i0) + rows, vec4u(P.Tq - 1u)) * P.H + h) * D;
  let ka = (min(j, P.Tk - 1u) * P.Hkv + kvh) * D;
  var s = vec4f(0.0);
  for (var x = 0u; x < D; x++) { s += vec4f(q[qa.x + x], q[qa.y + x], q[qa.z + x], q[qa.w + x]) * k[ka + x]; }
  return s;
}

fn dOv4(i0: u32, rows: vec4u, h: u32, j: u32, kvh: u32, P: Params) -> vec4f {
  let oa = (min(vec4u(i0) + rows, vec4u(P.Tq - 1u)) * P.H + h) * D;
  let va = (min(j, P.Tk - 1u) * P.Hkv + kvh) * D;
  var s = vec4f(0.0);
  for (var x = 0u; x < D; x++) { s += vec4f(dO[oa.x + x], dO[oa.y + x], dO[oa.z + x], dO[oa.w + x]) * v[va + x]; }
  return s;
}

// The (capped) scores of those four queries against key j.
fn scores4(i0: u32, rows: vec4u, h: u32, j: u32, kvh: u32, P: Params) -> vec4f {
  var s = qk4(i0, rows, h, j, kvh, P) * P.scale;
  if (P.cap > 0.0) { s = P.cap * tanh(s / P.cap); }
  return s;
}

// The keys any of the B queries from i0 sees, into spanLo..spanHi: from the least start to the
// last query's position.
fn keySpan(i0: u32, P: Params) {
  var lo = 0xffffffffu;
  let last = min(i0 + B, P.Tq) - 1u;
  for (var i = i0; i <= last; i++) { lo = min(lo, start[i]); }
  spanLo = lo;
  spanHi = last + P.Tk - P.Tq;
}

// ---- forward ----------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn flash_forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let i0 = wid.x * B;
  let h = wid.y;
  let kvh = h / (pf.H / pf.Hkv);
  if (tid == 0u) { keySpan(i0, pf); }
  if (tid < B) {
    rowMax[tid] = NEG;
    rowSum[tid] = 0.0;
  }
  var acc: array<f32, OPT>;
  workgroupBarrier();
  let first = workgroupUniformLoad(&spanLo) / B;
  let lastBlock = workgroupUniformLoad(&spanHi) / B;
  for (var kb = first; kb <= lastBlock; kb++) {
    let j0 = kb * B;
    let rows = rowsOf(tid);
    let j = j0 + tid % B;
    let s = scores4(i0, rows, h, j, kvh, pf);
    for (var n = 0u; n < 4u; n++) {
      var score = NEG;
      if (visible(i0 + rows[n], j, pf)) { score = s[n]; }
      tile[tid + n * WG] = score;
    }
    workgroupBarrier();
    if (tid < B) {
      // online softmax: rescale what the row has so far to the new running maximum
      let r = tid;
      let mOld = rowMax[r];
      var m = mOld;
      for (var c = 0u; c < B; c++) { m = max(m, tile[r * B + c]); }
      var sum = 0.0;
      for (var c = 0u; c < B; c++) {
        let s = tile[r * B + c];
        var e = 0.0;
        if (s > NEG) { e = exp(s - m); }
        tile[r * B + c] = e;
        sum += e;
      }
      var f = 1.0;
      if (mOld > NEG) { f = exp(mOld - m); }
      corr[r] = f;
      rowSum[r] = rowSum[r] * f + sum;
      rowMax[r] = m;
    }
    workgroupBarrier();
    for (var u = 0u; u < OPT; u++) {
      let e = tid + u * WG;
      let r = e / D;
      let x = e % D;
      if (r < B) {
        var a = acc[u] * corr[r];
        for (var c = 0u; c < B; c++) {
          let j = j0 + c;
          if (j < pf.Tk) { a += tile[r * B + c] * v[(j * pf.Hkv + kvh) * D + x]; }
        }
        acc[u] = a;
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < OPT; u++) {
    let e = tid + u * WG;
    let r = e / D;
    let i = i0 + r;
    if (r < B && i < pf.Tq) { o[(i * pf.H + h) * D + e % D] = acc[u] / rowSum[r]; }
  }
  if (tid < B && i0 + tid < pf.Tq) { lse[h * pf.Tq + i0 + tid] = rowMax[tid] + log(rowSum[tid]); }
}

// ---- backward ---------------------------------------------------------------------------

// Δ of the B queries from i0 of head h, into rowDelta: Δ[i] = Σ_x dO[i, h, x] · o[i, h, x].
fn deltas(i0: u32, h: u32, tid: u32, P: Params) {
  if (tid < B && i0 + tid < P.Tq) {
    let a = ((i0 + tid) * P.H + h) * D;
    var s = 0.0;
    for (var x = 0u; x < D; x++) { s += dO[a + x] * o[a + x]; }
    rowDelta[tid] = s;
  }
}

// P and dS of the four entries this thread owns of the block's tile (rowsOf; key j = j0 + tid % B,
// head h): P into `tile`, dS into `tile2`. rowDelta holds the block's Δ.
fn probabilities(tid: u32, i0: u32, h: u32, j0: u32, kvh: u32, P: Params) {
  let rows = rowsOf(tid);
  let j = j0 + tid % B;
  let s = scores4(i0, rows, h, j, kvh, P);
  let dP = dOv4(i0, rows, h, j, kvh, P);
  for (var n = 0u; n < 4u; n++) {
    let i = i0 + rows[n];
    var p = 0.0;
    var dS = 0.0;
    if (visible(i, j, P)) {
      p = exp(s[n] - lse[h * P.Tq + i]);
      dS = p * (dP[n] - rowDelta[rows[n]]);
      if (P.cap > 0.0) { dS *= 1.0 - (s[n] / P.cap) * (s[n] / P.cap); }
    }
    tile[tid + n * WG] = p;
    tile2[tid + n * WG] = dS;
  }
}

// dq for a block of B queries of head h: Σ over the keys they see of dS k.
@compute @workgroup_size(WG)
fn flash_dq(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let i0 = wid.x * B;
  let h = wid.y;
  let kvh = h / (pq.H / pq.Hkv);
  if (tid == 0u) { keySpan(i0, pq); }
  deltas(i0, h, tid, pq);
  var acc: array<f32, OPT>;
  workgroupBarrier();
  let first = workgroupUniformLoad(&spanLo) / B;
  let lastBlock = workgroupUniformLoad(&spanHi) / B;
  for (var kb = first; kb <= lastBlock; kb++) {
    let j0 = kb * B;
    probabilities(tid, i0, h, j0, kvh, pq);
    workgroupBarrier();
    for (var u = 0u; u < OPT; u++) {
      let e = tid + u * WG;
      let r = e / D;
      let x = e % D;
      if (r < B) {
        var a = acc[u];
        for (var c = 0u; c < B; c++) {
          let j = j0 + c;
          if (j < pq.Tk) { a += tile2[r * B + c] * k[(j * pq.Hkv + kvh) * D + x]; }
        }
        acc[u] = a;
      }
    }
    workgroupBarrier();
  }
  for (var u = 0u; u < OPT; u++) {
    let e = tid + u * WG;
    let r = e / D;
    let i = i0 + r;
    if (r < B && i < pq.Tq) { g0[(i * pq.H + h) * D + e % D] = pq.scale * acc[u]; }
  }
}

// dk, dv for a block of B keys of KV head kvh: Σ over the group's heads and the queries that
// see them of dSᵀ q and Pᵀ dO.
@compute @workgroup_size(WG)
fn flash_dkv(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let j0 = wid.x * B;
  let kvh = wid.y;
  let group = pkv.H / pkv.Hkv;
  if (tid == 0u) {
    // queries that may see these keys: from the first key's position on (t = i + Tk − Tq ≥ j0)
    spanLo = select(0u, j0 - (pkv.Tk - pkv.Tq), j0 > pkv.Tk - pkv.Tq);
    spanHi = pkv.Tq - 1u;
  }
  var dk: array<f32, OPT>;
  var dv: array<f32, OPT>;
  workgroupBarrier();
  let first = workgroupUniformLoad(&spanLo) / B;
  let lastBlock = workgroupUniformLoad(&spanHi) / B;
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var qb = first; qb <= lastBlock; qb++) {
      let i0 = qb * B;
      deltas(i0, h, tid, pkv);
      workgroupBarrier();
      probabilities(tid, i0, h, j0, kvh, pkv);
      workgroupBarrier();
      for (var u = 0u; u < OPT; u++) {
        let e = tid + u * WG;
        let c = e / D;      // the key, within the block
        let x = e % D;
        if (c < B) {
          var ak = dk[u];
          var av = dv[u];
          for (var r = 0u; r < B; r++) {
            let i = i0 + r;
            if (i < pkv.Tq) {
              ak += tile2[r * B + c] * q[(i * pkv.H + h) * D + x];
              av += tile[r * B + c] * dO[(i * pkv.H + h) * D + x];
            }
          }
          dk[u] = ak;
          dv[u] = av;
        }
      }
      workgroupBarrier();
    }
  }
  for (var u = 0u; u < OPT; u++) {
    let e = tid + u * WG;
    let c = e / D;
    let j = j0 + c;
    if (c < B && j < pkv.Tk) {
      g0[(j * pkv.Hkv + kvh) * D + e % D] = pkv.scale * dk[u];
      g1[(j * pkv.Hkv + kvh) * D + e % D] = dv[u];
    }
  }
}
