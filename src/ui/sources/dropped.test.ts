import { describe, expect, it } from 'vitest';
import { groupLooseFiles, LOOSE_MODEL_NAME, readDrop, readPickedFolder } from './dropped.ts';

const file = (name: string, relative = '') => {
  const f = new File([name], name);
  if (relative) Object.defineProperty(f, 'webkitRelativePath', { value: relative });
  return f;
};

type Tree = { [name: string]: Tree | null };

/** Entries-API stand-ins; directory readers hand out entries in batches of 2, like Chromium's 100. */
function entry(name: string, node: Tree | null): FileSystemEntry {
  if (node === null) {
    return { name, isFile: true, isDirectory: false, file: (ok: (f: File) => void) => ok(file(name)) } as unknown as FileSystemEntry;
  }
  return {
    name,
    isFile: false,
    isDirectory: true,
    createReader() {
      const children = Object.entries(node).map(([n, c]) => entry(n, c));
      let at = 0;
      return {
        readEntries(ok: (batch: FileSystemEntry[]) => void) {
          const batch = children.slice(at, at + 2);
          at += batch.length;
          setTimeout(() => ok(batch), 0);
        },
      };
    },
  } as unknown as FileSystemEntry;
}

const summary = (models: { name: string; files: { path: string }[] }[]) =>
  models.map((m) => ({ name: m.name, paths: m.files.map((f) => f.path).sort() }));

describe('dropped folders', () => {
  it('a folder is one model named after it; nested files keep their paths; dotfiles are skipped', async () => {
    const drop = await readDrop(
      [entry('expert3', { 'model.safetensors': null, 'config.json': null, 'tokenizer.json': null, '.DS_Store': null, extra: { 'notes.txt': null } })],
      [],
    );
    expect(summary(drop.models)).toEqual([{ name: 'expert3', paths: ['config.json', 'extra/notes.txt', 'model.safetensors', 'tokenizer.json'] }]);
  });

  it('a folder of model folders gives one model per sub-folder, and its recipes', async () => {
    const drop = await readDrop(
      [entry('models', { a: { 'model.safetensors': null }, b: { 'model-00001-of-00002.safetensors': null, 'model-00002-of-00002.safetensors': null, 'model.safetensors.index.json': null }, 'merge.yml': null })],
      [],
    );
    expect(summary(drop.models)).toEqual([
      { name: 'a', paths: ['model.safetensors'] },
      { name: 'b', paths: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'] },
    ]);
    expect(drop.recipes.map((f) => f.name)).toEqual(['merge.yml']);
  });

  it('reads every batch of a large folder', async () => {
    const many: Tree = { 'model.safetensors.index.json': null };
    for (let i = 1; i <= 7; i++) many[`model-0000${i}-of-00007.safetensors`] = null;
    const drop = await readDrop([entry('big', many)], []);
    expect(drop.models[0].files).toHaveLength(8);
  });

  it('a folder without weights is still a model, so opening it can say what is wrong', async () => {
    const drop = await readDrop([entry('old', { 'pytorch_model.bin': null, 'config.json': null })], []);
    expect(summary(drop.models)).toEqual([{ name: 'old', paths: ['config.json', 'pytorch_model.bin'] }]);
  });

  it('files picked with a folder input group by their top folder', () => {
    const drop = readPickedFolder([file('model.safetensors', 'expert2/model.safetensors'), file('config.json', 'expert2/config.json')]);
    expect(summary(drop.models)).toEqual([{ name: 'expert2', paths: ['config.json', 'model.safetensors'] }]);
  });
});

describe('loose files', () => {
  it('model.safetensors with its config is one model', () => {
    const { models } = groupLooseFiles([file('model.safetensors'), file('config.json')]);
    expect(summary(models)).toEqual([{ name: LOOSE_MODEL_NAME, paths: ['config.json', 'model.safetensors'] }]);
  });

  it('one named weights file names its model', () => {
    expect(summary(groupLooseFiles([file('my-merge.safetensors'), file('config.json')]).models)).toEqual([
      { name: 'my-merge', paths: ['config.json', 'my-merge.safetensors'] },
    ]);
  });

  it('unrelated weights files are one model each; recipes are set apart', () => {
    const drop = groupLooseFiles([file('a.safetensors'), file('b.safetensors'), file('recipe.yaml')]);
    expect(summary(drop.models)).toEqual([
      { name: 'a', paths: ['a.safetensors'] },
      { name: 'b', paths: ['b.safetensors'] },
    ]);
    expect(drop.recipes.map((f) => f.name)).toEqual(['recipe.yaml']);
  });

  it('only a recipe gives no model', () => {
    expect(groupLooseFiles([file('x.yml')]).models).toEqual([]);
  });
});
