/**
 * Chat templates for `chat_template:` (mergekit's keys): `auto` takes the template most of the input
 * models carry, a built-in name takes one of the common formats below, and anything else must be a
 * Jinja template (checked here by parsing it, and by rendering a short conversation, with
 * @huggingface/jinja, the engine transformers.js uses).
 */
import { Template } from '@huggingface/jinja';

/** Common chat formats, by the names mergekit uses. */
export const BUILT_IN_CHAT_TEMPLATES: Readonly<Record<string, string>> = {
  chatml:
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  llama3:
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
  alpaca:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
    "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
  mistral:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}",
  zephyr:
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
};

export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/** Why `value` cannot be a `chat_template` (undefined when it can): auto, a built-in name, or valid Jinja. */
export function chatTemplateProblem(value: string): string | undefined {
  if (value === 'auto' || Object.hasOwn(BUILT_IN_CHAT_TEMPLATES, value)) return undefined;
  if (!value.includes('{')) {
    return `${JSON.stringify(value)} is neither "auto", a built-in template (${Object.keys(BUILT_IN_CHAT_TEMPLATES).join(', ')}) nor a Jinja template`;
  }
  try {
    new Template(value).render({
      messages: [
        { role: 'system', content: 'You are helpful.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
      ],
      add_generation_prompt: true,
      bos_token: '<s>',
      eos_token: '</s>',
    });
    return undefined;
  } catch (e) {
    // The parser reports an unclosed block as a TypeError about its own state: say what it means.
    const reason = e instanceof TypeError ? 'a {% for %} or {% if %} block is left open' : (e as Error).message.split('\n')[0];
    return `is not a valid Jinja chat template: ${reason}`;
  }
}

/**
 * The template to write for `chat_template`: a built-in's text, a Jinja string as given, or for
 * `auto` the template most input models carry (the first of the most common; none: undefined).
 * `modelTemplates` lists the inputs' templates in recipe order (undefined for a model without one).
 */
export function resolveChatTemplate(value: string, modelTemplates: readonly (string | undefined)[]): string | undefined {
  const problem = chatTemplateProblem(value);
  if (problem) throw new ChatTemplateError(`chat_template: ${problem}`);
  if (value !== 'auto') return BUILT_IN_CHAT_TEMPLATES[value] ?? value;
  const counts = new Map<string, number>();
  for (const t of modelTemplates) if (t) counts.set(t.trim(), (counts.get(t.trim()) ?? 0) + 1);
  let best: string | undefined;
  let bestCount = 0;
  for (const [t, c] of counts) {
    if (c > bestCount) {
      best = t;
      bestCount = c;
    }
  }
  return best;
}
