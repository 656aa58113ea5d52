/** parseCommandArgs: the one parser of every `merge-studio` command line. */
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from './command-args.ts';
import { cli } from './cli.testutil.ts';

class TestUsageError extends Error {}
const usage = (message: string) => new TestUsageError(message);
const OPTIONS = { out: { type: 'string' }, quiet: { type: 'boolean', default: false } } as const;

describe('parseCommandArgs', () => {
  it('gives positionals and typed values, defaults filled in', () => {
    const { values, positionals } = parseCommandArgs(['a.yml', '--out', 'dir'], OPTIONS, usage);
    expect(positionals).toEqual(['a.yml']);
    expect(values).toEqual({ out: 'dir', quiet: false });
  });

  it("turns an unknown option or a missing value into the command's usage error, one line", () => {
    for (const args of [['--bogus'], ['--out']]) {
      let thrown: unknown;
      try {
        parseCommandArgs(args, OPTIONS, usage);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, args.join(' ')).toBeInstanceOf(TestUsageError);
      expect((thrown as Error).message).toContain(args[0]);
      expect((thrown as Error).message).not.toContain('\n');
    }
  });

  it.each(['merge', 'analyze', 'eval', 'extract-lora', 'push'])('%s: an unknown option exits 2 naming it', async (command) => {
    const run = await cli([command, '--bogus-option']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--bogus-option');
  });
});
