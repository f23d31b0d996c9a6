// The chat templates assistant_only_loss trains with, as TRL's SFTTrainer picks them.
//
// The assistant-only mask is what a template's {% generation %} … {% endgeneration %} blocks
// render (transformers' return_assistant_tokens_mask). Few models' templates have such blocks,
// so TRL (get_training_chat_template) recognises the templates of the families it knows by
// their exact text and swaps in a training version of its own; any other template without
// blocks is refused. This module does the same. A known template is recognised by the SHA-256
// of its text (the template a model's tokenizer ships, byte for byte; a revision differing by a
// character is another template, as in TRL), and its training version is made from the model's
// own text by the edits below: each puts the blocks where TRL's training template has them.
// Where TRL's version also renders differently (Qwen3 always writes the thinking block, so that
// a turn renders the same whatever follows it), the edit does that too. What each family's
// blocks cover, and so where the loss is taken:
//
//   Llama 3             content (trimmed) <|eot_id|>                 the header stays out
//   Qwen2.5             \n content <|im_end|>\n, or the tool calls   "<|im_start|>assistant" out
//   Qwen3               <think>\n…\n</think>\n\n content, tool calls, <|im_end|>\n
//   Qwen3-Instruct-2507 content, tool calls, <|im_end|>\n
//   Gemma, Gemma 2      content (trimmed) <end_of_turn>\n              "<start_of_turn>model\n" out
//   Gemma 3             content (trimmed) <end_of_turn>\n
//   Phi-3, Phi-3.5      content <|end|>\n, and the final EOS after a last assistant turn
//
// The edits name only the few characters they anchor on; each anchor must occur once in the
// template (a test applies every edit).

/** A template TRL has a training version of: the family, the SHA-256 of the model's own template, the edits. */
export interface KnownTemplate {
  family: string;
  sha256: string;
  /** The training version, made from the model's own template text. */
  training(source: string): string;
}

/** Replaces `from`, which must occur exactly once in `source`, with `to`. */
function replaceOnce(source: string, from: string, to: string): string {
  const at = source.indexOf(from);
  if (at < 0 || source.indexOf(from, at + 1) >= 0) {
    throw new Error(`a training template's edit expects ${JSON.stringify(from.slice(0, 60))} once in the template`);
  }
  return source.slice(0, at) + to + source.slice(at + from.length);
}

/** Applies [from, to] edits in order. */
const edit = (source: string, edits: [string, string][]) => edits.reduce((s, [a, b]) => replaceOnce(s, a, b), source);

/** The text from `start` (which must occur once) up to `end`'s next occurrence, or to its end with `through`. */
function between(source: string, start: string, end: string, through: boolean): string {
  const a = source.indexOf(start);
  const b = a < 0 ? -1 : source.indexOf(end, a + start.length);
  if (a < 0 || b < 0 || source.indexOf(start, a + 1) >= 0) {
    throw new Error(`a training template's edit expects ${JSON.stringify(start.slice(0, 60))} once in the template`);
  }
  return source.slice(a, through ? b + end.length : b);
}

// ChatML (Qwen): the assistant branch ends with its <|im_end|> just before the tool branch begins
const CHATML_END = String.raw`{{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}`;
const CHATML_END_MARKED = String.raw`{{- '<|im_end|>\n' }}{%- endgeneration %}
    {%- elif message.role == "tool" %}`;

const llama3 = (s: string) =>
  edit(s, [
    [
      '{{ content }}{% endfor %}',
      "{% if message['role'] == 'assistant' %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}" +
        String.raw`{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}` +
        "{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}" +
        '{% else %}{{ content }}{% endif %}{% endfor %}',
    ],
  ]);

const qwen2_5 = (s: string) =>
  edit(s, [
    // assistant turns without tool calls leave the branch they share with user turns
    [' or (message.role == "assistant" and not message.tool_calls) %}', ' %}'],
    [
      "{{- '<|im_start|>' + message.role }}",
      "{{- '<|im_start|>' + message.role }}{%- generation %}{%- if not message.tool_calls %}" +
        String.raw`{{- '\n' + message.content + '<|im_end|>\n' }}{%- else %}`,
    ],
    [CHATML_END, CHATML_END_MARKED.replace('{%- endgeneration %}', '{%- endif %}{%- endgeneration %}')],
  ]);

const qwen3 = (s: string) => {
  // the thinking block is written for every assistant turn, not only for those after the last query
  const onlyLast = between(s, '{%- if loop.index0 > ns.last_query_index %}', '{%- if message.tool_calls %}', false);
  const always = String.raw`{{- '<|im_start|>' + message.role + '\n' }}{%- generation %}
        {{- '<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
        `;
  return edit(s, [
    [onlyLast, always],
    [CHATML_END, CHATML_END_MARKED],
  ]);
};

const qwen3Instruct2507 = (s: string) =>
  edit(s, [
    [
      String.raw`{{- '<|im_start|>' + message.role + '\n' + content }}`,
      String.raw`{{- '<|im_start|>' + message.role + '\n' }}{%- generation %}{{- content }}`,
    ],
    [CHATML_END, CHATML_END_MARKED],
  ]);

const gemma = (s: string) => {
  const turn = "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}";
  return replaceOnce(
    s,
    turn,
    "{% if role == 'model' %}{{ '<start_of_turn>model\n' }}" +
      "{% generation %}{{ message['content'] | trim + '<end_of_turn>\n' }}{% endgeneration %}" +
      `{% else %}${turn}{% endif %}`,
  );
};

const gemma3 = (s: string) => {
  // a turn: its header, its content (text, or text and images), <end_of_turn>; the model's content
  // and end of turn go in the block, and other roles' turns render as before
  const turn = between(s, "{{ '<start_of_turn>' + role + '", "{{ '<end_of_turn>\n' }}", true);
  const content = turn.slice(turn.indexOf('}}') + 2, turn.lastIndexOf('{{'));
  return replaceOnce(
    s,
    turn,
    "{%- if role == 'model' -%}{{ '<start_of_turn>model\n' }}{%- generation -%}" +
      `${content}{{ '<end_of_turn>\n' }}{%- endgeneration -%}{%- else -%}${turn}{%- endif -%}`,
  );
};

const phi3 = (s: string) =>
  edit(s, [
    [
      "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}",
      "{{'<|assistant|>\n'}}{% generation %}{{message['content'] + '<|end|>\n'}}{% endgeneration %}",
    ],
    // the EOS that ends a conversation is learnt as the end of its last assistant turn
    [
      '{% else %}{{ eos_token }}{% endif %}',
      "{% elif messages[-1]['role'] == 'assistant' %}{% generation %}{{ eos_token }}{% endgeneration %}" +
        '{% else %}{{ eos_token }}{% endif %}',
    ],
  ]);

/** The templates TRL has training versions of, among the families this tool trains. */
export const KNOWN_TEMPLATES: KnownTemplate[] = [
  { family: 'Llama 3', sha256: 'ba03a121d097859c7b5b9cd03af99aafe95275210d2876f642ad9929a150f122', training: llama3 },
  { family: 'Qwen2.5', sha256: 'cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f', training: qwen2_5 },
  { family: 'Qwen3', sha256: 'a55ee1b1660128b7098723e0abcd92caa0788061051c62d51cbe87d9cf1974d8', training: qwen3 },
  {
    family: 'Qwen3-Instruct-2507',
    sha256: '64f85b198065d0fba2a81f37e10ed68161ce2c19a754c7100e67e0ca2ee9c326',
    training: qwen3Instruct2507,
  },
  {
    family: 'Gemma and Gemma 2',
    sha256: 'ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6',
    training: gemma,
  },
  { family: 'Gemma 3', sha256: '7de1c58e208eda46e9c7f86397df37ec49883aeece39fb961e0a6b24088dd3c4', training: gemma3 },
  { family: 'Phi-3', sha256: 'dcaee66df77bfbb789ec541fe713218da30225a526f1db97138fc39ee6dc56aa', training: phi3 },
  { family: 'Phi-3.5', sha256: '78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90', training: phi3 },
];

/** The known template whose text has this SHA-256 (hex), or null. */
export const knownTemplate = (sha256: string): KnownTemplate | null =>
  KNOWN_TEMPLATES.find((k) => k.sha256 === sha256) ?? null;

/** {% generation %}, with or without whitespace control: the template marks the assistant's turns itself. */
export const GENERATION_BLOCK = /{%-?\s*generation\s*-?%}/;

/** Why a template without blocks that TRL does not know cannot train on the assistant's turns alone, and what to do. */
export const NOT_TRAINABLE =
  'has no {% generation %} blocks to mark what the assistant says, and is not one of the templates TRL has a ' +
  `training version of (${KNOWN_TEMPLATES.map((k) => k.family).join(', ')}, as their models ship them): ` +
  'give a template with {% generation %} … {% endgeneration %} around the assistant turns (--chat_template_path ' +
  'on the command line), or train on every token (assistant_only_loss off)';
