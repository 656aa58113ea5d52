/**
 * The files of an exported folder for publishing, as disk-backed Files (OPFS, a picked folder, or a
 * folder chosen with a file input): their bytes are read when uploaded, never all at once.
 */
import type { PublishFile } from '../../core/publish/prepare.ts';

/** Every file under a directory handle (the folder a merge wrote, in OPFS or a picked folder), by relative path. */
export async function filesOfDirectory(dir: FileSystemDirectoryHandle, prefix = ''): Promise<PublishFile[]> {
  const out: PublishFile[] = [];
  for await (const [name, handle] of dir.entries()) {
    if (handle.kind === 'directory') out.push(...(await filesOfDirectory(handle as FileSystemDirectoryHandle, `${prefix}${name}/`)));
    else out.push({ path: `${prefix}${name}`, blob: await (handle as FileSystemFileHandle).getFile() });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The files of `<input webkitdirectory>`: paths relative to the chosen folder (the browser gives
 * `folder/sub/file`; the first part is the folder itself). Null when the files are not from one folder.
 */
export function filesOfPickedFolder(files: readonly File[]): { name: string; files: PublishFile[] } | null {
  if (files.length === 0) return null;
  const parts = files.map((f) => (f.webkitRelativePath || f.name).split('/'));
  const top = parts[0][0];
  if (parts.some((p) => p.length < 2 || p[0] !== top)) return null;
  return {
    name: top,
    files: files.map((f, i) => ({ path: parts[i].slice(1).join('/'), blob: f })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}
