import { describe, expect, it } from 'vitest';
import { parseModelConfig, ropeInverseFrequencies } from '../../src/model/config';
import { estimateStoreBytes, estimateTrainingMemory, parameterCount } from '../../src/model/estimate';

// config.json values of real checkpoints (their Hub repos), trimmed to the fields read.
const SMOLLM2_135M = {
  model_type: 'llama', hidden_size: 576, num_attention_heads: 9, num_key_value_heads: 3, num_hidden_layers: 30,
  intermediate_size: 1536, vocab_size: 49152, rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true,
  hidden_act: 'silu', max_position_embeddings: 8192, bos_token_id: 1, eos_token_id: 2, rope_scaling: null,
};
const QWEN25_05B = {
  model_type: 'qwen2', hidden_size: 896, num_attention_heads: 14, num_key_value_heads: 2, num_hidden_layers: 24,
  intermediate_size: 4864, vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
  hidden_act: 'silu', max_position_embeddings: 32768, use_sliding_window: false, sliding_window: 32768, eos_token_id: 151645,
};
// tiiuae/falcon-7b's config.json (the worked example), with its n_head / n_layer aliases
const FALCON_7B = {
  model_type: 'falcon', hidden_size: 4544, n_head: 71, n_layer: 32, vocab_size: 65024, layer_norm_epsilon: 1e-5,
  multi_query: true, parallel_attn: true, bias: false, alibi: false, new_decoder_architecture: false,
  bos_token_id: 11, eos_token_id: 11, torch_dtype: 'bfloat16',
};
const LLAMA32_1B = {
  model_type: 'llama', hidden_size: 2048, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, num_hidden_layers: 16,
  intermediate_size: 8192, vocab_size: 128256, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true,
  hidden_act: 'silu', max_position_embeddings: 131072, eos_token_id: [128001, 128008, 128009],
  rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
};

describe('config.json', () => {
  it('reads the Llama family: SmolLM2, Qwen2.5 with q/k/v biases, Llama 3.2 with llama3 RoPE', () => {
    const s = parseModelConfig(SMOLLM2_135M);
    expect(s).toMatchObject({ modelType: 'llama', hidden: 576, heads: 9, kvHeads: 3, headDim: 64, layers: 30, vocab: 49152, tieEmbeddings: true });
    expect(s.bias).toEqual({ qkv: false, o: false, mlp: false });
    expect(s.norm.eps).toBe(1e-5);
    const q = parseModelConfig(QWEN25_05B);
    expect(q).toMatchObject({ modelType: 'qwen2', headDim: 64, kvHeads: 2, slidingWindow: null, eosTokenIds: [151645] });
    expect(q.bias.qkv).toBe(true);
    const l = parseModelConfig(LLAMA32_1B);
    expect(l.rope.scaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(l.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(l.linearModules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it("scales RoPE frequencies as llama3 does: short wavelengths kept, long ones slowed, the band between blended", () => {
    const c = parseModelConfig(LLAMA32_1B);
    const plain = ropeInverseFrequencies({ ...c, rope: { ...c.rope, scaling: null } });
    const scaled = ropeInverseFrequencies(c);
    expect(plain[0]).toBe(1);
    expect(plain[1]).toBeCloseTo(500000 ** (-2 / 64), 15);
    let blended = 0;
    for (let i = 0; i < plain.length; i++) {
      const wavelen = (2 * Math.PI) / plain[i];
      if (wavelen < 8192 / 4) expect(scaled[i]).toBe(plain[i]);
      else if (wavelen > 8192) expect(scaled[i]).toBeCloseTo(plain[i] / 32, 18);
      else {
        blended++;
        expect(scaled[i]).toBeGreaterThanOrEqual(plain[i] / 32);
        expect(scaled[i]).toBeLessThanOrEqual(plain[i]);
      }
    }
    expect(blended).toBeGreaterThan(0);
    const linear = ropeInverseFrequencies({ ...c, rope: { theta: c.rope.theta, scaling: { type: 'linear', factor: 4 } } });
    expect(linear[3]).toBeCloseTo(plain[3] / 4, 15);
  });

  it('names what it cannot read', () => {
    expect(() => parseModelConfig({ ...SMOLLM2_135M, model_type: 'mamba' })).toThrow(/model_type "mamba" is not supported yet; supported: llama, mistral, qwen2/);
    expect(() => parseModelConfig({ ...SMOLLM2_135M, num_key_value_heads: 2 })).toThrow(/not a multiple of num_key_value_heads/);
    expect(() => parseModelConfig({ ...SMOLLM2_135M, hidden_size: 577 })).toThrow(/hidden_size \(577\) is not a multiple/);
    expect(() => parseModelConfig({ ...SMOLLM2_135M, vocab_size: -3 })).toThrow(/vocab_size must be a positive integer/);
    expect(() => parseModelConfig({ ...SMOLLM2_135M, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu" is not supported/);
    expect(() => parseModelConfig({ ...SMOLLM2_135M, rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type "yarn" is not supported/);
    expect(() => parseModelConfig([])).toThrow(/has no model_type/);
  });

  it("reads Falcon: tiiuae/falcon-7b's 6.92B parameters, multi-query, tied head, and what it takes to train", () => {
    const c = parseModelConfig(FALCON_7B);
    expect(c).toMatchObject({
      modelType: 'falcon', hidden: 4544, heads: 71, kvHeads: 1, headDim: 64, layers: 32, intermediate: 18176, vocab: 65024,
      norm: { kind: 'layer', eps: 1e-5 }, activation: 'gelu', tieEmbeddings: true, falcon: { qkv: 'multi-query', twoNorms: false },
      linearModules: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'], defaultLoraTargets: ['query_key_value'],
    });
    expect(parameterCount(c)).toBe(6_921_720_704); // as the Hub's model card counts it
    const store = estimateStoreBytes(c);
    expect(store / 1e9).toBeCloseTo(4.32, 2); // NF4 linears (4.5 bits a weight) + BF16 embedding
    const m = estimateTrainingMemory(c, { max_length: 512, batch: 1, r: 16, targets: c.linearModules, load_in_4bit: true });
    expect(m.adapter).toBe(32 * 16 * (4544 + 4672 + 4544 + 4544 + 4544 + 18176 + 18176 + 4544) * 16); // params, grads, two moments
    // the BF16 embedding (591 MB) splits into row blocks: what must fit one binding is the
    // attention scores of one layer, 71 heads × 512 × 512 f32, under the spec's 128 MiB
    expect(m.largestBuffer).toBe(71 * 512 * 512 * 4);
    // the scores span the micro-batch laid end to end: four blocks of 512 need [71, 2048, 2048]
    expect(estimateTrainingMemory(c, { max_length: 512, batch: 4, r: 16, targets: c.linearModules, load_in_4bit: true }).largestBuffer).toBe(71 * 2048 * 2048 * 4);
    expect(() => parseModelConfig({ ...FALCON_7B, alibi: true })).toThrow(/alibi is true/);
    const grouped = parseModelConfig({ ...FALCON_7B, new_decoder_architecture: true, num_kv_heads: 8, n_head: 128, hidden_size: 8192 });
    expect(grouped.falcon).toEqual({ qkv: 'grouped', twoNorms: true });
    expect(grouped.kvHeads).toBe(8);
  });
});
