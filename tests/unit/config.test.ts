import { describe, expect, it } from 'vitest';
import { ropeInverseFrequencies } from '../../src/model/config';
import { parseModelConfig } from '../../src/model/registry';
import { estimateStoreBytes, estimateTrainingMemory, moduleShapes, parameterCount } from '../../src/model/estimate';
import { checkPositions } from '../../src/engine/session';
import { generate } from '../../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../../src/generate/sampling';
import type { CausalLM } from '../../src/model/causal-lm';
import {
  SMOLLM2_135M,
  QWEN25_05B,
  QWEN3_06B,
  LLAMA32_1B,
  FALCON_7B,
  GEMMA3_270M,
  SMOLLM3_3B,
} from '../fixtures/real-configs';

describe('config.json', () => {
  it('reads the Llama family: SmolLM2, Qwen2.5 with q/k/v biases, Llama 3.2 with llama3 RoPE', () => {
    const s = parseModelConfig(SMOLLM2_135M);
    expect(s).toMatchObject({
      modelType: 'llama',
      hidden: 576,
      heads: 9,
      kvHeads: 3,
      headDim: 64,
      layers: 30,
      vocab: 49152,
      tieEmbeddings: true,
    });
    expect(s.bias).toEqual({ qkv: false, o: false, mlp: false });
    expect(s.norm.eps).toBe(1e-5);
    const q = parseModelConfig(QWEN25_05B);
    expect(q).toMatchObject({
      modelType: 'qwen2',
      headDim: 64,
      kvHeads: 2,
      slidingWindow: null,
      eosTokenIds: [151645],
    });
    expect(q.bias.qkv).toBe(true);
    // biases on q, k and v only: 494,032,768, as PyTorch counts Qwen2.5-0.5B (0.49B on its card)
    expect(parameterCount(q)).toBe(494_032_768);
    const l = parseModelConfig(LLAMA32_1B);
    expect(l.rope.scaling).toEqual({
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(l.eosTokenIds).toEqual([128001, 128008, 128009]);
    expect(l.linearModules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it("reads Qwen3: Qwen3-0.6B's own head_dim, q/k norms, no biases, and what it takes to train", () => {
    const c = parseModelConfig(QWEN3_06B);
    expect(c).toMatchObject({
      modelType: 'qwen3',
      hidden: 1024,
      heads: 16,
      kvHeads: 8,
      headDim: 128,
      layers: 28,
      intermediate: 3072,
      vocab: 151936,
      maxPositions: 40960,
      rope: { theta: 1000000, scaling: null },
      norm: { kind: 'rms', eps: 1e-6 },
      tieEmbeddings: true,
      slidingWindow: null,
      qkNorm: true,
      eosTokenIds: [151645],
      defaultLoraTargets: ['q_proj', 'v_proj'],
    });
    expect(c.bias).toEqual({ qkv: false, o: false, mlp: false });
    // [out, in]
    expect(moduleShapes(c)).toMatchObject({ q_proj: [2048, 1024], k_proj: [1024, 1024], o_proj: [1024, 2048] });
    // 440.5M besides the embedding (the model card's 0.44B non-embedding), q_norm and k_norm [128] included
    expect(parameterCount(c)).toBe(151936 * 1024 + 28 * (15_728_640 + 2 * 1024 + 2 * 128) + 1024);
    expect(estimateStoreBytes(c)).toBe(559_022_080); // NF4 linears (4.5 bits a weight) + the BF16 embedding, once
    const settings = { max_length: 512, batch: 1, r: 16, targets: c.linearModules, load_in_4bit: true };
    const m = estimateTrainingMemory(c, settings);
    // r (in + out) per module: q 1024+2048, k 1024+1024, v 1024+1024, o 2048+1024, gate, up, down 1024+3072
    expect(m.adapter).toBe(28 * 16 * 22528 * 16); // params, grads, two moments
    // LoRA's saved x·Aᵀ and dropped input per module and token, in the one layer being recomputed:
    // r + in, in summed over q, k, v, o, gate, up, down = 3 · 1024 + 2048 + 2 · 1024 + 3072
    const lora = 7 * 16 + 10240;
    expect(m).toMatchObject({ weights: 559_022_080, activations: 253_067_264 + 4 * 512 * lora, total: 994_770_944 });
    expect(m.largestBuffer).toBe(64 * 151936 * 4); // 64 rows of logits, not an attention score buffer
    // without gradient checkpointing all 28 layers keep their intermediates, not one: 27 more layers of
    // 512 tokens × (4 hidden + q + 2 kv + 3 intermediate + heads + LoRA's) f32
    const kept = estimateTrainingMemory(c, { ...settings, gradient_checkpointing: false });
    expect(kept.activations - m.activations).toBe(27 * 4 * 512 * (4 * 1024 + 2048 + 2 * 1024 + 3 * 3072 + 16 + lora));
    // without dropout the modules keep no copy of their input
    const noDropout = estimateTrainingMemory(c, { ...settings, lora_dropout: 0 });
    expect(m.activations - noDropout.activations).toBe(4 * 512 * 10240);
    // transformers' Qwen3Config defaults: head_dim 128, biases only with attention_bias, a window only when used
    const { head_dim: _, ...noHeadDim } = QWEN3_06B;
    expect(parseModelConfig({ ...noHeadDim, hidden_size: 1000 }).headDim).toBe(128);
    expect(parseModelConfig({ ...QWEN3_06B, attention_bias: true }).bias).toEqual({ qkv: true, o: true, mlp: false });
    expect(parseModelConfig({ ...QWEN3_06B, use_sliding_window: true, sliding_window: 4096 }).slidingWindow).toBe(4096);
  });

  it('scales RoPE frequencies as llama3 does: short wavelengths kept, long ones slowed, band between blended', () => {
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
    const linear = ropeInverseFrequencies({
      ...c,
      rope: { theta: c.rope.theta, scaling: { type: 'linear', factor: 4 } },
    });
    expect(linear[3]).toBeCloseTo(plain[3] / 4, 15);
  });

  it('names what it cannot read', () => {
    expect(() => parseModelConfig({ ...SMOLLM2_135M, model_type: 'mamba' })).toThrow(
      /model_type "mamba" is not supported yet; supported: llama, mistral, qwen2/,
    );
    expect(() => parseModelConfig({ ...SMOLLM2_135M, num_key_value_heads: 2 })).toThrow(
      /not a multiple of num_key_value_heads/,
    );
    expect(() => parseModelConfig({ ...SMOLLM2_135M, hidden_size: 577 })).toThrow(
      /hidden_size \(577\) is not a multiple/,
    );
    expect(() => parseModelConfig({ ...SMOLLM2_135M, vocab_size: -3 })).toThrow(
      /vocab_size must be a positive integer/,
    );
    expect(() => parseModelConfig({ ...SMOLLM2_135M, hidden_act: 'gelu' })).toThrow(
      /hidden_act "gelu" is not supported/,
    );
    expect(() => parseModelConfig({ ...SMOLLM2_135M, rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(
      /rope_scaling type "yarn" is not supported/,
    );
    expect(() => parseModelConfig([])).toThrow(/is not a JSON object/);
    expect(() => parseModelConfig({})).toThrow(/has no model_type/);
  });

  it("reads Falcon: tiiuae/falcon-7b's 6.92B parameters, multi-query, tied head, and what it takes to train", () => {
    const c = parseModelConfig(FALCON_7B);
    expect(c).toMatchObject({
      modelType: 'falcon',
      hidden: 4544,
      heads: 71,
      kvHeads: 1,
      headDim: 64,
      layers: 32,
      intermediate: 18176,
      vocab: 65024,
      norm: { kind: 'layer', eps: 1e-5 },
      activation: 'gelu',
      tieEmbeddings: true,
      falcon: { qkv: 'multi-query', twoNorms: false },
      linearModules: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'],
      defaultLoraTargets: ['query_key_value'],
    });
    expect(parameterCount(c)).toBe(6_921_720_704); // as the Hub's model card counts it
    const store = estimateStoreBytes(c);
    expect(store / 1e9).toBeCloseTo(4.32, 2); // NF4 linears (4.5 bits a weight) + BF16 embedding
    const m = estimateTrainingMemory(c, {
      max_length: 512,
      batch: 1,
      r: 16,
      targets: c.linearModules,
      load_in_4bit: true,
    });
    // params, grads, two moments
    expect(m.adapter).toBe(32 * 16 * (4544 + 4672 + 4544 + 4544 + 4544 + 18176 + 18176 + 4544) * 16);
    // the BF16 embedding (591 MB) splits into row blocks, and attention keeps no scores: what
    // must fit one binding is the largest NF4 weight, dense_h_to_4h [18176, 4544] in 4 bits
    expect(m.largestBuffer).toBe((18176 * 4544) / 2);
    // four blocks of 512 laid end to end: the MLP's [2048, 18176] f32 activations are the largest
    expect(
      estimateTrainingMemory(c, { max_length: 512, batch: 4, r: 16, targets: c.linearModules, load_in_4bit: true })
        .largestBuffer,
    ).toBe(2048 * 18176 * 4);
    expect(() => parseModelConfig({ ...FALCON_7B, alibi: true })).toThrow(/alibi is true/);
    const grouped = parseModelConfig({
      ...FALCON_7B,
      new_decoder_architecture: true,
      num_kv_heads: 8,
      n_head: 128,
      hidden_size: 8192,
    });
    expect(grouped.falcon).toEqual({ qkv: 'grouped', twoNorms: true });
    expect(grouped.kvHeads).toBe(8);
  });

  it('admits the largest real models of each family, and nothing far beyond them', () => {
    // meta-llama/Llama-3.1-405B, google/gemma-2-27b, tiiuae/falcon-180B, Qwen/Qwen2.5-7B-Instruct-1M
    const llama405b = {
      ...LLAMA32_1B,
      hidden_size: 16384,
      num_attention_heads: 128,
      num_key_value_heads: 8,
      head_dim: 128,
      num_hidden_layers: 126,
      intermediate_size: 53248,
      tie_word_embeddings: false,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    };
    expect(parseModelConfig(llama405b)).toMatchObject({
      layers: 126,
      hidden: 16384,
      vocab: 128256,
      maxPositions: 131072,
    });
    const gemma27b = {
      model_type: 'gemma2',
      hidden_size: 4608,
      num_attention_heads: 32,
      num_key_value_heads: 16,
      head_dim: 128,
      num_hidden_layers: 46,
      intermediate_size: 36864,
      vocab_size: 256000,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 8192,
      hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: 144,
      attn_logit_softcapping: 50,
      final_logit_softcapping: 30,
      sliding_window: 4096,
    };
    expect(parseModelConfig(gemma27b)).toMatchObject({
      gemma: { attnSoftcap: 50 },
      finalSoftcap: 30,
      localWindow: 4096,
    });
    const falcon180b = {
      ...FALCON_7B,
      hidden_size: 14848,
      n_head: 232,
      num_kv_heads: 8,
      n_layer: 80,
      new_decoder_architecture: true,
      max_position_embeddings: 2048,
    };
    expect(parseModelConfig(falcon180b)).toMatchObject({ layers: 80, heads: 232, kvHeads: 8, headDim: 64 });
    const qwen1m = {
      ...QWEN25_05B,
      hidden_size: 3584,
      num_attention_heads: 28,
      num_key_value_heads: 4,
      max_position_embeddings: 1010000,
    };
    expect(parseModelConfig(qwen1m).maxPositions).toBe(1010000);

    const bad: [Record<string, unknown>, RegExp][] = [
      [
        { num_hidden_layers: 1e9 },
        /config.json: num_hidden_layers must be a positive integer up to 512, got 1000000000/,
      ],
      [{ max_position_embeddings: 1e9 }, /max_position_embeddings must be a positive integer up to 2097152/],
      [{ max_position_embeddings: 2 ** 21, head_dim: 1024 }, /needs a RoPE table of 1073741824 values/],
      [{ rms_norm_eps: Infinity }, /rms_norm_eps must be a number in \(0, 1\), got Infinity/],
      [{ rms_norm_eps: 0 }, /rms_norm_eps must be a number in \(0, 1\)/],
      [{ rope_theta: -5 }, /rope_theta must be a finite number > 0, got -5/],
      [{ model_type: 'mistral', sliding_window: -4 }, /sliding_window must be a positive integer up to \d+ or null/],
      [{ vocab_size: 2 ** 22 }, /vocab_size must be a positive integer up to 2097152/],
      [{ tie_word_embeddings: 'yes' }, /tie_word_embeddings must be true or false, got "yes"/],
      [{ eos_token_id: [-1] }, /eos_token_id must be a token id/],
      [{ rope_scaling: { rope_type: 'linear', factor: Infinity } }, /rope_scaling.factor must be a finite number > 0/],
      [{ model_type: '\u001b[2J' }, /model_type "\\u001b\[2J" is not supported/],
    ];
    for (const [patch, message] of bad) {
      expect(() => parseModelConfig({ ...SMOLLM2_135M, ...patch }), JSON.stringify(patch)).toThrow(message);
    }
    expect(() => parseModelConfig({ ...gemma27b, attn_logit_softcapping: -1 })).toThrow(
      /attn_logit_softcapping must be a finite number > 0 or null/,
    );
    expect(() => parseModelConfig({ ...FALCON_7B, n_layer: 1e9 })).toThrow(
      /n_layer must be a positive integer up to 512/,
    );
    expect(() => parseModelConfig(null)).toThrow(/config.json: is not a JSON object \(got null\)/);
  });

  it('refuses a training or evaluation block longer than max_position_embeddings, before any step', () => {
    const c = parseModelConfig({ ...SMOLLM2_135M, max_position_embeddings: 16 });
    const block = (n: number, positions = Array.from({ length: n }, (_, i) => i)) => ({
      input_ids: Array(n).fill(1),
      labels: Array(n).fill(1),
      position_ids: positions,
    });
    expect(() => checkPositions([block(16), block(3)], c, 'training')).not.toThrow();
    expect(() => checkPositions([block(3), block(17)], c, 'training')).toThrow(
      /max_length: a training block of 17 tokens \(positions up to 16\) is beyond .* of 16/,
    );
    expect(() => checkPositions([block(2, [0, 40])], c, 'evaluation')).toThrow(/positions up to 40/);
  });

  it('refuses generation that would run past the RoPE table, before the cache is made', async () => {
    const config = parseModelConfig({ ...SMOLLM2_135M, max_position_embeddings: 16 });
    const model = {
      config,
      newCache: () => {
        throw new Error('allocated');
      },
    } as unknown as CausalLM;
    const s = { ...SAMPLING_DEFAULTS, num_return_sequences: 1, seed: 1 };
    await expect(generate(model, [1, 2, 3, 4, 5, 6], { ...s, max_new_tokens: 11 })).rejects.toThrow(
      /the prompt \(6 tokens\) plus max_new_tokens \(11\) is 17 positions, beyond .* of 16/,
    );
    await expect(generate(model, [1], { ...s, max_new_tokens: 1e12 })).rejects.toThrow(/beyond this model/);
    // within the table: on to the cache
    await expect(generate(model, [1], { ...s, max_new_tokens: 10 })).rejects.toThrow(/allocated/);
  });
});

describe("PEFT's default LoRA targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)", () => {
  it('targets q_proj and v_proj where PEFT maps the model_type, and nothing where it has no entry', () => {
    for (const c of [SMOLLM2_135M, QWEN25_05B, QWEN3_06B, LLAMA32_1B, GEMMA3_270M])
      expect(parseModelConfig(c).defaultLoraTargets, c.model_type).toEqual(['q_proj', 'v_proj']);
    expect(parseModelConfig(FALCON_7B).defaultLoraTargets).toEqual(['query_key_value']);
    // PEFT raises "Please specify `target_modules` in `peft_config`" for these
    expect(parseModelConfig(SMOLLM3_3B).defaultLoraTargets).toBeNull();
    const phi3 = { ...LLAMA32_1B, model_type: 'phi3', architectures: ['Phi3ForCausalLM'], rope_scaling: null };
    expect(parseModelConfig(phi3).defaultLoraTargets).toBeNull();
  });
});
