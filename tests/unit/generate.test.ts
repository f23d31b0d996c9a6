import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime';
import { replyDecoder } from '../../src/engine/stream-generation';
import { generate } from '../../src/generate/generate';
import { SAMPLING_DEFAULTS } from '../../src/generate/sampling';
import { parseModelConfig } from '../../src/model/registry';
import { attachLora } from '../../src/model/lora-linear';
import type { LlamaModel } from '../../src/model/llama/layer';
import { testGpu } from '../gpu';
import { freshSeed, randn, relError, rng } from '../reference/random';
import { TINY, buildTinyModel } from '../tiny-model';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});

/** Full-recompute logits of the last token: the whole sequence through the network again. */
async function lastLogits(model: LlamaModel, ids: number[]): Promise<Float32Array> {
  const T = ids.length;
  const batch = {
    ids: gpu.tensor([T], 'u32', Uint32Array.from(ids)),
    labels: gpu.tensor([T], 'i32'),
    positions: gpu.tensor([T], 'u32', Uint32Array.from(ids.keys())),
    start: gpu.tensor([T], 'u32', new Uint32Array(T)),
  };
  const z = await gpu.read(model.logits(batch));
  return z.subarray((T - 1) * model.config.vocab);
}

describe('generation with a KV cache', () => {
  it('gives the logits and the greedy text of recomputing the whole sequence each step', async () => {
    const seed = freshSeed();
    const r = rng(seed);
    const c = parseModelConfig({ ...TINY, model_type: 'llama', tie_word_embeddings: true, eos_token_id: 100 });
    const { model, modules } = buildTinyModel(gpu, c, r);
    attachLora(gpu, modules, { r: 4, alpha: 8, dropout: 0.1, random: r }); // dropout is off at inference
    for (const m of modules) gpu.write(m.lora!.B, randn(r, m.lora!.B.numel, 0.05));
    const prompt = [1, 17, 42, 5, 99];

    const cache = model.newCache(16);
    const viaCache = await gpu.read(model.decode(prompt, cache));
    expect(relError(viaCache, await lastLogits(model, prompt)), `seed ${seed}`).toBeLessThan(1e-5);
    const next = await gpu.read(model.decode([7], cache));
    expect(relError(next, await lastLogits(model, [...prompt, 7])), `seed ${seed}`).toBeLessThan(1e-5);
    model.releaseCache(cache);

    const [greedy] = await generate(model, prompt, {
      ...SAMPLING_DEFAULTS,
      max_new_tokens: 8,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [],
    });
    const recomputed: number[] = [];
    for (let i = 0; i < 8; i++) {
      const z = await lastLogits(model, [...prompt, ...recomputed]);
      recomputed.push(z.indexOf(Math.max(...z)));
    }
    expect(greedy, `seed ${seed}`).toEqual(recomputed);

    // max_length counts the prompt; an EOS token stops the sequence
    const [short] = await generate(model, prompt, {
      ...SAMPLING_DEFAULTS,
      max_length: prompt.length + 3,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [],
    });
    expect(short).toEqual(greedy.slice(0, 3));
    const j = greedy.findIndex((id, i) => greedy.indexOf(id) === i && i > 0); // a token not seen before it
    const stopAt = Math.max(j, 0);
    const [stopped] = await generate(model, prompt, {
      ...SAMPLING_DEFAULTS,
      max_new_tokens: 8,
      num_return_sequences: 1,
      seed: 0,
      eos_token_id: [greedy[stopAt]],
    });
    expect(stopped).toEqual(greedy.slice(0, stopAt + 1));
  });

  it('draws independent sequences, the same ones for the same seed', async () => {
    const r = rng(11);
    const c = parseModelConfig({ ...TINY, model_type: 'llama', tie_word_embeddings: true });
    const { model } = buildTinyModel(gpu, c, r);
    const settings = {
      ...SAMPLING_DEFAULTS,
      do_sample: true,
      temperature: 1.5,
      top_k: 20,
      top_p: 0.9,
      repetition_penalty: 1.2,
      max_new_tokens: 6,
      num_return_sequences: 3,
      seed: 5,
    };
    const a = await generate(model, [3, 4, 5], settings);
    expect(a.length).toBe(3);
    expect(a.every((s) => s.length === 6)).toBe(true);
    expect(await generate(model, [3, 4, 5], settings)).toEqual(a);
    expect(new Set(a.map((s) => s.join())).size).toBeGreaterThan(1);
    await expect(generate(model, [], settings)).rejects.toThrow(/the prompt is empty/);
    // transformers' GenerationConfig.validate refuses several greedy sequences: they would all be one
    await expect(generate(model, [3, 4, 5], { ...settings, do_sample: false })).rejects.toThrow(
      'Greedy methods without beam search do not support `num_return_sequences` different than 1 (got 3)',
    );
    await expect(generate(model, [3, 4, 5], { ...settings, num_return_sequences: 0 })).rejects.toThrow(
      'num_return_sequences must be an integer ≥ 1, got 0',
    );
    // stop() true ends the sequence after its last token, as a stopping criterion does: the same tokens, fewer
    const one = { ...settings, num_return_sequences: 1 };
    expect(await generate(model, [3, 4, 5], one, undefined, () => true)).toEqual([a[0].slice(0, 1)]);
    let seen = 0;
    expect(
      await generate(
        model,
        [3, 4, 5],
        one,
        () => seen++,
        () => seen === 3,
      ),
    ).toEqual([a[0].slice(0, 3)]);
  });
});

describe('a reply decoded as the text-generation pipeline decodes it', () => {
  // a SentencePiece decoder as Llama 2's and Mistral's tokenizers have: ▁ is a space, and the
  // text's first space is stripped (Strip decoder), so "▁moon" alone is "moon"
  const pieces = ['<s>', '▁Hello', '▁moon', 'light', '▁!', '<0xE2>', '<0x82>', '<0xAC>'];
  const decoder = {
    async decode(ids: number[], o: { skip_special_tokens: boolean }) {
      const kept = ids.filter((i) => !(o.skip_special_tokens && i === 0)).map((i) => pieces[i]);
      const utf8 = (p: string) => [...new TextEncoder().encode(p.replace(/▁/g, ' '))];
      const bytes = kept.flatMap((p) => (/^<0x..>$/.test(p) ? [Number.parseInt(p.slice(3, 5), 16)] : utf8(p)));
      return new TextDecoder().decode(new Uint8Array(bytes)).replace(/^ /, '');
    },
  };

  it("keeps the first word's space, and shows a character only once its bytes are all there", async () => {
    const reply = replyDecoder(decoder, [0, 1]); // "<s>Hello"
    expect(await decoder.decode([2, 3], { skip_special_tokens: true })).toBe('moonlight'); // the new tokens alone
    expect(await reply([2, 3])).toBe(' moonlight'); // after the prompt, as the pipeline gives it
    expect(await reply([4, 5, 6])).toBe(' !\uFFFD'); // € half there: replaced, as the decoder does
    expect(await reply([4, 5, 6, 7])).toBe(' !€');
    expect(await replyDecoder(decoder, [])([2])).toBe('moon'); // no prompt: the text's own start
  });
});
