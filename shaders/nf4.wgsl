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

// Code c's value with the table in registers: a tree of selects on its four bits, as
// bitsandbytes' dDequantizeNF4 branches on them. No memory is read (a dynamically indexed
// array may be rebuilt per thread, or live in slow memory).
fn nf4Value(c: u32) -> f32 {
  let b0 = (c & 1u) != 0u;
  let b1 = (c & 2u) != 0u;
  let b2 = (c & 4u) != 0u;
  let q0 = select(NF4_CODE[0], NF4_CODE[1], b0);
  let q1 = select(NF4_CODE[2], NF4_CODE[3], b0);
  let q2 = select(NF4_CODE[4], NF4_CODE[5], b0);
  let q3 = select(NF4_CODE[6], NF4_CODE[7], b0);
  let q4 = select(NF4_CODE[8], NF4_CODE[9], b0);
  let q5 = select(NF4_CODE[10], NF4_CODE[11], b0);
  let q6 = select(NF4_CODE[12], NF4_CODE[13], b0);
  let q7 = select(NF4_CODE[14], NF4_CODE[15], b0);
  let low = select(select(q0, q1, b1), select(q2, q3, b1), b2);
  let high = select(select(q4, q5, b1), select(q6, q7, b1), b2);
  return select(low, high, c >= 8u);
}
