// 16-bit weights (embeddings, norms, biases), two to a u32 as the checkpoint stores them:
// element 2j in the low half of word j (little-endian). BF16 widens by a shift, F16 through
// unpack2x16float, which every WebGPU device has. Prepended to the kernels that read them.
// Call as half16(words[i >> 1u], i).

override BF16: bool = true;

fn half16(word: u32, i: u32) -> f32 {
  let bits = select(word & 0xffffu, word >> 16u, (i & 1u) == 1u);
  if (BF16) { return bitcast<f32>(bits << 16u); }
  return unpack2x16float(bits).x;
}
