enable subgroups;
// row_sum.wgsl with subgroups: the sum of a value over the LANES threads of a row by a
// butterfly of shuffles, with no workgroup memory and no barrier. LANES is the adapter's
// narrowest subgroup (subgroupMinSize, src/ops/gemv.ts): subgroups are at least that wide
// and made of consecutive threads, so a row never straddles two of them whatever width the
// driver picks. Valid in every lane.

fn rowSum(v: f32, lane: u32, row: u32) -> f32 {
  var s = v;
  for (var o = LANES / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }
  return s;
}
