// Generation as text, for the page's chat and `finetune generate` alike: each sequence's text
// streamed as its tokens come, decoded from the whole sequence so far (as transformers'
// TextStreamer decodes: tokens may join into one character only together), and the final texts.
import type { GenerateSettings } from '../generate/generate';
import type { Session } from './session';

interface Decoder {
  decode(ids: number[], o: { skip_special_tokens: boolean }): Promise<string>;
}

/**
 * `onText(sequence, text)` gets each sequence's whole text so far, in order (the tokenizer's
 * worker answers in order); resolves to the texts and the new token ids of every sequence.
 */
export async function streamGeneration(
  session: Session,
  tokenizer: Decoder,
  prompt: number[],
  s: GenerateSettings,
  onText?: (sequence: number, text: string) => void,
): Promise<{ texts: string[]; ids: number[][] }> {
  const soFar: number[][] = [];
  let failed: unknown = null;
  const ids = await session.generate(prompt, s, (n, id) => {
    (soFar[n] ??= []).push(id);
    tokenizer.decode([...soFar[n]], { skip_special_tokens: true }).then(
      (text) => onText?.(n, text),
      (e) => (failed ??= e),
    );
  });
  // the last streamed decode is answered before these (in order), so onText has seen every text
  const texts = await Promise.all(ids.map((x) => tokenizer.decode(x, { skip_special_tokens: true })));
  if (failed) throw failed;
  return { texts, ids };
}
