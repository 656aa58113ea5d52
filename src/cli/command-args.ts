/** The command line of one `merge-studio` command, parsed the same way for every command. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/**
 * `args` parsed against `options` (positionals allowed, unknown options refused); a parse error
 * becomes `usage(first line of its message)`, the CLI's usage error (exit code 2).
 */
export function parseCommandArgs<O extends OptionsConfig>(
  args: string[],
  options: O,
  usage: (message: string) => Error,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw usage(err instanceof Error ? err.message.split('\n')[0] : String(err));
  }
}
