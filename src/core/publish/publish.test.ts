/**
 * Publishing's pure parts: per-layer coefficients as the engine resolves them, their SVG, the model
 * card's Hub front matter and analysis section, the license rule, and what preparePublish uploads.
 */
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { cardAnalysisOf, modelCard } from '../model-card.ts';
import type { MethodSchema } from '../params.ts';
import type { Recipe } from '../recipe/types.ts';
import { coefficientsSvg, layerCoefficients } from './coefficients.ts';
import { agreedLicense, COEFFICIENTS_IMAGE, preparePublish, PublishError, type PublishFile, type PublishMethodInfo } from './prepare.ts';
import { publishRepoProblem } from './upload.ts';

const LINEAR: PublishMethodInfo = {
  name: 'linear',
  prettyName: 'Linear',
  referenceUrl: 'https://arxiv.org/abs/2203.05482',
  params: [{ name: 'normalize', kind: 'boolean', help: '', default: true }],
  perModelParams: [{ name: 'weight', kind: 'number', help: '', required: true }],
};
const TIES_LIKE: MethodSchema = {
  name: 'ties',
  params: [{ name: 'lambda', kind: 'number', help: '', default: 1 }],
  perModelParams: [
    { name: 'weight', kind: 'number', help: '', required: true },
    { name: 'density', kind: 'number', help: '', default: 1 },
  ],
};
const methods = Object.assign((name: string) => (name === 'linear' ? LINEAR : undefined), { names: ['linear'] });
const names = (layers: number) => [
  'model.embed_tokens.weight',
  ...Array.from({ length: layers }, (_, k) => [`model.layers.${k}.self_attn.q_proj.weight`, `model.layers.${k}.mlp.up_proj.weight`]).flat(),
  'model.norm.weight',
];

describe('layerCoefficients', () => {
  it('resolves gradients over depth and filters per layer, as the engine does', () => {
    const recipe: Recipe = {
      mergeMethod: 'ties',
      baseModel: 'b',
      models: [
        { model: 'b', parameters: {} },
        { model: 'x', parameters: { weight: [0, 1], density: [{ filter: 'self_attn', value: 0.9 }, { value: 0.3 }] } },
        { model: 'y', parameters: { weight: 0.5 } },
      ],
      parameters: {},
    };
    const series = layerCoefficients(recipe, TIES_LIKE, names(5), 5);
    const get = (param: string, model: string | null) => series.find((s) => s.param === param && s.model === model)!.layers;
    expect(get('lambda', null).map((l) => l.min)).toEqual([1, 1, 1, 1, 1]);
    expect(get('weight', 'x').map((l) => l.min)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(get('weight', 'y').every((l) => l.min === 0.5 && l.max === 0.5)).toBe(true);
    expect(get('density', 'x').every((l) => l.min === 0.3 && l.max === 0.9)).toBe(true); // attention 0.9, MLP 0.3
    expect(get('density', 'y').every((l) => l.min === 1)).toBe(true); // the method's default
    expect(series.some((s) => s.model === 'b')).toBe(false); // the base gets no coefficients
    expect(series.map((s) => s.param)).toEqual(['lambda', 'weight', 'weight', 'density', 'density']);
  });

  it('leaves a gap for a layer without tensors', () => {
    const recipe: Recipe = { mergeMethod: 'linear', models: [{ model: 'x', parameters: { weight: 1 } }], parameters: {} };
    const s = layerCoefficients(recipe, LINEAR, ['model.layers.0.a.weight', 'model.layers.2.a.weight'], 3)[0];
    expect(Number.isNaN(s.layers[1].min)).toBe(true);
    expect(s.layers[2].min).toBe(1);
  });
});

describe('coefficientsSvg', () => {
  it('draws one line per model per parameter, a band where a layer has several values, names escaped', () => {
    const svg = coefficientsSvg(
      [
        { param: 'weight', model: 'org/a<b>', layers: [{ min: 0, max: 0 }, { min: 1, max: 1 }] },
        { param: 'density', model: 'org/a<b>', layers: [{ min: 0.3, max: 0.9 }, { min: 0.3, max: 0.9 }] },
      ],
      'TIES & co',
    );
    expect(svg).toContain('TIES &amp; co');
    expect(svg).toContain('org/a&lt;b&gt;');
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<polygon /g)).toHaveLength(1);
    expect(svg).toContain('<polyline points="56.0,222.0 704.0,52.0"'); // weight: 0 at the bottom at layer 0, 1 at the top at layer 1
  });
});

describe('modelCard', () => {
  const recipe: Recipe = {
    mergeMethod: 'linear',
    baseModel: 'org/base@v1',
    models: [
      { model: 'org/a', parameters: { weight: 1 } },
      { model: './local/b', parameters: { weight: 1 } },
    ],
    parameters: {},
  };

  it('has the Hub front matter: Hub inputs as base_model, library, license, tags', () => {
    const card = modelCard({ recipe, yaml: 'merge_method: linear\n', methodPrettyName: 'Linear', license: 'apache-2.0', title: 'me/m' });
    const front = parseYaml(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]);
    expect(front).toEqual({ base_model: ['org/base', 'org/a'], library_name: 'transformers', license: 'apache-2.0', tags: ['merge', 'mergekit', 'merge-studio'] });
    expect(card).toContain('# me/m');
    expect(card).not.toContain('## Analysis');
    expect(card).not.toContain('## Per-layer coefficients');
  });

  it('summarises an analysis: cosine matrix and conflict rates', () => {
    const analysis = cardAnalysisOf({
      models: ['org/a', './local/b'],
      modelStats: { whole: { cosine: [1, 0.25, 0.25, 1], conflictAll: 0.4321, relativeChange: [0.01, 0.02] } },
      recipeStats: { whole: { conflictAll: 0.1, share: [0.6, 0.4] } },
    })!;
    const card = modelCard({ recipe, yaml: 'x: 1\n', methodPrettyName: 'Linear', analysis, coefficientsImage: 'c.svg' });
    expect(card).toContain('| cosine | `org/a` | `./local/b` |');
    expect(card).toContain('| `org/a` | 1.000 | 0.250 |');
    expect(card).toContain('- Sign conflict rate: 43.2% of parameters');
    expect(card).toContain("- After the method's trimming: 10.0%.");
    expect(card).toContain('- Share of the merged change: `org/a` 60.0%, `./local/b` 40.0%.');
    expect(card).toContain('![Per-layer merge coefficients](c.svg)');
    expect(cardAnalysisOf({ models: [], modelStats: null, recipeStats: null })).toBeNull();
  });
});

describe('agreedLicense', () => {
  const recipe: Recipe = { mergeMethod: 'linear', baseModel: 'o/b', models: [{ model: 'o/x', parameters: {} }], parameters: {} };
  it('carries a license over only when every input has the same one', () => {
    expect(agreedLicense(recipe, { 'o/b': 'mit', 'o/x': 'mit' })).toEqual({ license: 'mit', reason: 'every input is mit' });
    expect(agreedLicense(recipe, { 'o/b': 'mit', 'o/x': 'apache-2.0' }).license).toBeNull();
    expect(agreedLicense(recipe, { 'o/b': 'mit', 'o/x': null })).toEqual({ license: null, reason: 'no known license for o/x' });
  });
});

describe('preparePublish', () => {
  const RECIPE = 'models:\n  - model: org/a\n    parameters:\n      weight: [1, 0]\nmerge_method: linear\n';
  function folder(extra: Record<string, string> = {}): PublishFile[] {
    const files: Record<string, string> = {
      'mergekit_config.yml': RECIPE,
      'config.json': JSON.stringify({ num_hidden_layers: 3 }),
      'model.safetensors.index.json': JSON.stringify({ weight_map: Object.fromEntries(names(3).map((n) => [n, 'model-00001-of-00001.safetensors'])) }),
      'model-00001-of-00001.safetensors': 'not read: the index names the tensors',
      'README.md': '# the export card',
      ...extra,
    };
    return Object.entries(files).map(([path, text]) => ({ path, blob: new Blob([text]) }));
  }

  it('keeps every file but the card as it is, writes the card and the coefficients image', async () => {
    const files = folder({ '.DS_Store': 'x' });
    const p = await preparePublish({ files, methods, licenses: { 'org/a': 'mit' }, title: 'me/m' });
    expect(p.files.map((f) => f.path)).toEqual([
      'README.md',
      'config.json',
      'merge_coefficients.svg',
      'mergekit_config.yml',
      'model-00001-of-00001.safetensors',
      'model.safetensors.index.json',
    ]);
    for (const f of p.files.filter((x) => x.path !== 'README.md' && x.path !== COEFFICIENTS_IMAGE)) {
      expect(f.blob).toBe(files.find((x) => x.path === f.path)!.blob); // the very Blob: nothing copied
    }
    expect(await p.files[0].blob.text()).toBe(p.card);
    expect(p.card).toMatch(/^license: mit$/m);
    expect(p.license).toBe('mit');
    expect(p.notes).toEqual(['.DS_Store left out (hidden file)', 'license mit: every input is mit']);
    const svg = await p.files[2].blob.text();
    expect(svg).toContain('<polyline points="56.0,52.0 380.0,137.0 704.0,222.0"'); // weight [1, 0] over 3 layers: 1, 0.5, 0
    // The same inputs give the same bytes.
    const again = await preparePublish({ files, methods, licenses: { 'org/a': 'mit' }, title: 'me/m' });
    expect(await again.files[2].blob.text()).toBe(svg);
    expect(again.card).toBe(p.card);
  });

  it('says what is wrong with a folder that cannot be published', async () => {
    const without = folder().filter((f) => f.path !== 'mergekit_config.yml');
    await expect(preparePublish({ files: without, methods })).rejects.toThrow('the folder has no mergekit_config.yml');
    await expect(preparePublish({ files: folder({ 'pytorch_model.bin': 'x' }), methods })).rejects.toThrow(/pytorch_model\.bin: pickle files/);
    await expect(preparePublish({ files: folder({ '../up.txt': 'x' }), methods })).rejects.toThrow(/file "\.\.\/up\.txt" has an empty, "\." or "\.\." part/);
    await expect(preparePublish({ files: folder({ 'mergekit_config.yml': 'merge_method: nope\nmodels: []\n' }), methods })).rejects.toThrow(/nope/);
    const err = await preparePublish({ files: folder({ 'notes.txt': 'token hf_abcdefgh123' }), methods, secrets: ['hf_abcdefgh123'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect(String(err)).toContain('notes.txt contains your access token');
  });

  it('leaves out an analysis of other models', async () => {
    const p = await preparePublish({
      files: folder(),
      methods,
      analysis: { models: ['org/other'], cosine: [1], conflictAll: 0, keptConflictAll: null, relativeChange: null, share: null },
    });
    expect(p.card).not.toContain('## Analysis');
    expect(p.notes).toContain("the analysis is of other models than this recipe's: left out of the card");
  });
});

describe('publishRepoProblem', () => {
  it('wants namespace/name', () => {
    expect(publishRepoProblem('me/model')).toBeNull();
    expect(publishRepoProblem('model')).toContain('needs a namespace');
    expect(publishRepoProblem('me/bad name')).toContain('may only hold');
  });
});
