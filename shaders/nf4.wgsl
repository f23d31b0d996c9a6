// NF4 in bitsandbytes' layout, shared by every kernel that reads or writes it (prepended).
// The weight [rows, cols] is flattened row-major and cut into blocks of `blocksize` elements
// (a power of two, 32..4096), each with one f32 absmax. Two 4-bit codes per byte, element 2j
// in the high nibble and 2j+1 in the low one; bytes are read four to a u32, little-endian,
// exactly as the bytes bitsandbytes writes.

const NF4_CODE = array<f32, 16>(
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0);

// The 4-bit code of flattened element e.
fn nf4Code(packed: u32, e: u32) -> u32 {
  // byte (e >> 1) & 3 of the word; the even element sits in the byte's high nibble.
  let shift = ((e >> 1u) & 3u) * 8u + select(4u, 0u, (e & 1u) == 1u);
  return (packed >> shift) & 15u;
}
