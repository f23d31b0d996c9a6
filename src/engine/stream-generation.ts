// Generation as text, for the page's chat and `finetune generate` alike: each sequence's text
// streamed as its tokens come, and the final texts. A reply is decoded as transformers'
// text-generation pipeline decodes it: the prompt and the reply together, less the prompt's own
// text, so that a reply's first word keeps the space a SentencePiece token carries ("▁moon" is
// " moon" after a prompt, "moon" alone), and tokens that join into one character only together
// show once they do. Only the prompt's last few tokens are decoded with it: enough for the joins.
import type { GenerateSettings } from '../generate/generate';
import type { Session } from './session';

interface Decoder {
  decode(ids: number[], o: { skip_special_tokens: boolean }): Promise<string>;
}

/** Prompt tokens decoded with the reply: a character or a word's space spans fewer. */
const CONTEXT_TOKENS = 8;

/**
 * `onText(sequence, text)` gets each sequence's whole text so far, in order (the tokenizer's
 * worker answers in order); resolves to the texts and the new token ids of every sequence.
 * `stop()` is asked after each token: true ends generation there (the page's Stop button).
 */
export async function streamGeneration(
  session: Session,
  tokenizer: Decoder,
  prompt: number[],
  s: GenerateSettings,
  onText?: (sequence: number, text: string) => void,
  stop?: () => boolean,
): Promise<{ texts: string[]; ids: number[][] }> {
  const soFar: number[][] = [];
  let failed: unknown = null;
  const reply = replyDecoder(tokenizer, prompt);
  const ids = await session.generate(
    prompt,
    s,
    (n, id) => {
      (soFar[n] ??= []).push(id);
      reply([...soFar[n]]).then(
        (text) => onText?.(n, text),
        (e) => (failed ??= e),
      );
    },
    stop,
  );
  // the last streamed decode is answered before these (in order), so onText has seen every text
  const texts = await Promise.all(ids.map(reply));
  if (failed) throw failed;
  return { texts, ids };
}

/**
 * The text of new tokens after `prompt`: the prompt's last tokens decoded with them, less those
 * tokens' own text. Where that is not a prefix (a decoder that rewrites across the join), the
 * whole prompt is used, and failing that the new tokens alone.
 */
export function replyDecoder(tokenizer: Decoder, prompt: number[]): (ids: number[]) => Promise<string> {
  const decode = (x: number[]) => tokenizer.decode(x, { skip_special_tokens: true });
  const after = async (context: number[], ids: number[]): Promise<string | null> => {
    const [head, all] = await Promise.all([decode(context), decode([...context, ...ids])]);
    return all.startsWith(head) ? all.slice(head.length) : null;
  };
  return async (ids) =>
    (await after(prompt.slice(-CONTEXT_TOKENS), ids)) ?? (await after(prompt, ids)) ?? (await decode(ids));
}
