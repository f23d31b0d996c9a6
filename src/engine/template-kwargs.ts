// Variables a caller passes to a chat template besides the conversation, as transformers'
// apply_chat_template(..., enable_thinking=False) passes its keyword arguments: Qwen3's template
// reads `enable_thinking`. Checked in the client (a clear error at once) and again in the
// tokenizer's worker, where they reach the template: plain names, plain values, and none of the
// names the renderer sets itself.
import type { ChatTemplateKwargs } from '../data/sft';

/** Names the renderer sets (transformers.js' options, the special tokens, jinja's globals). */
const RESERVED = new Set([
  'messages',
  'add_generation_prompt',
  'continue_final_message',
  'tools',
  'documents',
  'chat_template',
  'tokenize',
  'padding',
  'truncation',
  'max_length',
  'return_tensor',
  'return_dict',
  'tokenizer_kwargs',
  'raise_exception',
  'range',
  'namespace',
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
]);

/** Throws an Error saying what is wrong when `kwargs` is not an object of names to booleans, numbers or texts. */
export function checkTemplateKwargs(kwargs: unknown): asserts kwargs is ChatTemplateKwargs {
  if (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs)) {
    throw new Error('chat template variables must be an object of names and values');
  }
  for (const [name, v] of Object.entries(kwargs)) {
    // a leading underscore is the worker's own (its bounded range() and its loop counter)
    if (!/^[A-Za-z]\w{0,63}$/.test(name) || RESERVED.has(name)) {
      throw new Error(
        `"${name.slice(0, 64)}" cannot be a chat template variable: the renderer sets it, or it is ` +
          'not a name (a letter, then letters, digits or _)',
      );
    }
    const plain = typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
    if (!plain) throw new Error(`the chat template variable "${name}" must be true, false, a number or a text`);
  }
}
