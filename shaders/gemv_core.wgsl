// Matrix-vector products for decoding, shared by the weight formats (f32, 16-bit, NF4):
//   y[m, n] = alpha · Σ_k x[m, k] · W[n, k] (+ y)     x: [M, K] with M ≤ 4, W: [N, K], y: [M, N]
// LANES threads share a row of W, each summing every LANES-th piece of it; `rowSum` (from
// row_sum.wgsl, or row_sum_subgroup.wgsl where the device has subgroups) adds their shares.
// A tiled GEMM would compute 64 rows of x where there is one. ROWS rows of W per workgroup.
//
// A variant file is appended and supplies the bindings, the uniform `p` (with M, N, alpha) and
//   fn rowDot(m: u32, n: u32, lane: u32) -> f32   this lane's share of x[m] · W[n]
//   fn storeY(m: u32, n: u32, v: f32)            writes v (the variant decides accumulate or not)
// Grid: x·y fold ceil(N / ROWS) workgroups, z = M.

override LANES: u32 = 32;  // threads per row of W
override ROWS: u32 = 8;    // rows of W per workgroup

@compute @workgroup_size(LANES, ROWS)
fn gemv(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_id) lid: vec3u) {
  let n = (wid.x + wid.y * nwg.x) * ROWS + lid.y;
  let m = wid.z;
  var share = 0.0;
  if (n < p.N) { share = rowDot(m, n, lid.x); }
  let total = rowSum(share, lid.x, lid.y);   // every thread takes part: it may hold barriers
  if (lid.x == 0u && n < p.N) { storeY(m, n, p.alpha * total); }
}
