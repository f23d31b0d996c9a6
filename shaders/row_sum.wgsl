// The sum of a value over the LANES threads of a row (lane, row = local_invocation_id.xy),
// through workgroup memory: log2(LANES) barriers. Valid in lane 0. Prepended to the kernels
// that reduce along rows (gemv_core.wgsl); row_sum_subgroup.wgsl is the same with subgroups.

var<workgroup> rowPartial: array<f32, LANES * ROWS>;

fn rowSum(v: f32, lane: u32, row: u32) -> f32 {
  let at = row * LANES;
  rowPartial[at + lane] = v;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { rowPartial[at + lane] += rowPartial[at + lane + s]; }
    workgroupBarrier();
  }
  return rowPartial[at];
}
