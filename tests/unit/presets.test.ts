// The page's presets against the real checkpoints: each preset's config reads as the model's own
// config.json does (tests/fixtures/real-configs.ts), parameter counts are the model cards', and the
// size and memory estimates the page shows before download are the ones these facts give.
import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/model/presets';
import { parseModelConfig } from '../../src/model/registry';
import {
  estimateStoreBytes,
  estimateTrainingMemory,
  lossChunkRows,
  moduleShapes,
  parameterCount,
} from '../../src/model/estimate';
import { QWEN3_06B, LLAMA32_1B, GEMMA3_270M, SMOLLM3_3B } from '../fixtures/real-configs';

const preset = (id: string) => PRESETS.find((p) => p.id === id)!;
const at512r16 = (c: ReturnType<typeof parseModelConfig>) =>
  estimateTrainingMemory(c, { max_length: 512, batch: 1, r: 16, targets: c.linearModules, load_in_4bit: true });

describe('presets', () => {
  it('read as the real config.json files do', () => {
    const pairs: [string, object][] = [
      ['Qwen/Qwen3-0.6B', QWEN3_06B],
      ['google/gemma-3-270m-it', GEMMA3_270M],
      ['HuggingFaceTB/SmolLM3-3B', SMOLLM3_3B],
      ['meta-llama/Llama-3.2-1B-Instruct', LLAMA32_1B],
    ];
    for (const [id, facts] of pairs) expect(parseModelConfig(preset(id).config), id).toEqual(parseModelConfig(facts));
    for (const p of PRESETS) expect(() => parseModelConfig(p.config), p.id).not.toThrow();
    expect(preset('google/gemma-3-270m-it').gated).toBe(true);
    expect(preset('meta-llama/Llama-3.2-1B-Instruct').gated).toBe(true);
  });

  it('gemma-3-270m: 268M parameters, 170M of them the embedding, five local layers to a global one', () => {
    const c = parseModelConfig(GEMMA3_270M);
    expect(c).toMatchObject({
      family: 'gemma',
      qkNorm: true,
      localWindow: 512,
      finalSoftcap: null,
      tieEmbeddings: true,
    });
    expect(c.localLayers.map((l) => (l ? 'L' : 'G')).join('')).toBe('LLLLLGLLLLLGLLLLLG');
    expect(c.rope).toEqual({ theta: 1e6, scaling: null });
    expect(c.ropeLocal).toEqual({ theta: 10000, scaling: null });
    // the model card's 268M: 167.8M embedding, 100.3M in the layers (q/k norms of 256 included)
    expect(parameterCount(c)).toBe(262144 * 640 + 18 * (5_570_560 + 4 * 640 + 2 * 256) + 640);
    expect(parameterCount(c)).toBe(268_098_176);
    expect(estimateStoreBytes(c)).toBe(392_058_112); // the BF16 embedding is most of it
    // the 262k vocabulary: 128 rows of logits at once under WebGPU's default 128 MiB binding
    expect(lossChunkRows(c.vocab, 2 ** 27)).toBe(128);
    const m = at512r16(c);
    expect(m).toMatchObject({
      weights: 392_058_112,
      adapter: 60_751_872,
      total: m.weights + m.adapter + m.activations,
    });
    expect(m.largestBuffer).toBe(64 * 262144 * 4);
    expect(m.total).toBe(656_512_256 + 4 * 512 * (7 * 16 + 3 * 640 + 1024 + 2 * 640 + 2048)); // + LoRA's saved inputs
  });

  it('SmolLM3-3B: 3.08B parameters, RoPE skipped in every 4th layer', () => {
    const c = parseModelConfig(SMOLLM3_3B);
    expect(c.noRope.filter(Boolean).length).toBe(9);
    expect(c.noRope.slice(0, 8)).toEqual([false, false, false, true, false, false, false, true]);
    // without the list, SmolLM3Config derives the same from no_rope_layer_interval
    const { no_rope_layers: _, ...derived } = SMOLLM3_3B;
    expect(parseModelConfig(derived).noRope).toEqual(c.noRope);
    expect(parameterCount(c)).toBe(3_075_098_624);
    expect(moduleShapes(c)).toMatchObject({ k_proj: [512, 2048], gate_proj: [11008, 2048] });
    expect(at512r16(c).total).toBe(3_067_580_416 + 4 * 512 * (7 * 16 + 6 * 2048 + 11008));
  });

  it('Qwen3-0.6B and Llama-3.2-1B: their model cards’ sizes, and what training takes', () => {
    const q = parseModelConfig(QWEN3_06B),
      l = parseModelConfig(LLAMA32_1B);
    expect(parameterCount(q)).toBe(596_049_920);
    expect(parameterCount(l)).toBe(1_235_814_400);
    expect(at512r16(q).total).toBe(994_770_944); // 192 rows of its 152k-token logits at once
    expect(at512r16(l).total).toBe(1_611_141_120 + 4 * 512 * (7 * 16 + 6 * 2048 + 8192));
  });
});
