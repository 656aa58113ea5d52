/**
 * Entry point: starts the engine worker, makes the store, restores the recipe from the link (or
 * opens the demo set), keeps the link in step with the recipe, and renders the studio.
 */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { recipeToYaml } from '../core/recipe/write.ts';
import { App } from './App.tsx';
import { AnalysisRunner } from './analysis/runner.ts';
import { fetchDemoSet } from './demo.ts';
import { decodeRecipeHash, encodeRecipeHash } from './recipe-link.ts';
import { createStudioStore, type StudioDeps } from './store/index.ts';
import { StoreProvider } from './store-context.tsx';
import { installTestApi } from './test-api.ts';
import { EngineClient } from './worker/client.ts';
import { startEngineWorker } from './worker/start.ts';
import './styles.css';

/** How long the recipe stays unchanged before the page address is updated with it. */
const LINK_SYNC_MS = 400;

const engine = new EngineClient(startEngineWorker());
const analysisRunner = new AnalysisRunner(engine);
let exportDirectory: FileSystemDirectoryHandle | null = null;
const downloads: { name: string; size: number }[] = [];

function download(name: string, blob: Blob) {
  downloads.push({ name, size: blob.size });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

const deps: StudioDeps = {
  engine,
  async pickDirectory() {
    if (exportDirectory) return exportDirectory;
    if (!window.showDirectoryPicker) return null;
    return window.showDirectoryPicker({ id: 'merge-studio-export', mode: 'readwrite', startIn: 'downloads' });
  },
  loadDemoSet: () => fetchDemoSet(`${import.meta.env.BASE_URL}demo/`),
  download,
  sessionStorage: webStorage('sessionStorage'),
  localStorage: webStorage('localStorage'),
};

/** The page's Web Storage, or undefined where reading it throws (storage blocked). */
function webStorage(name: 'sessionStorage' | 'localStorage'): Storage | undefined {
  try {
    return window[name];
  } catch {
    return undefined;
  }
}

const store = createStudioStore(deps);
// `?hub=http://host:port` points the studio at a mirror or a local Hub (before the first render, so the field shows it).
store.getState().applyHubParam(location.search);
// `?backend=cpu` (or gpu) picks the backend from the link, as the Run on choice does.
store.getState().applyBackendParam(location.search);
// The test API (window.__mergeStudioTest: the whole store, token included) is in test builds only
// (`vite build --mode e2e`, as playwright.config.ts builds); a production build drops it (tests/build.test.ts).
if (import.meta.env.MODE === 'e2e') installTestApi({ store, setExportDirectory: (dir) => (exportDirectory = dir), downloads });

/** Import the recipe in the link, if any; true when one was found (even if it had an error). */
function importFromLink(): boolean {
  let yaml: string | null;
  try {
    yaml = decodeRecipeHash(location.hash);
  } catch (err) {
    store.setState({ recipeNotice: { kind: 'error', text: (err as Error).message } });
    return true;
  }
  if (yaml === null) return false;
  store.getState().importRecipe(yaml, 'the link');
  return true;
}

async function start() {
  void store.getState().probeGpu();
  void store.getState().refreshRangeCache();
  const fromLink = importFromLink();
  const needsDemo = store.getState().shelf.some((m) => m.ref.startsWith('./demo/') && m.load.status === 'missing');
  if (!fromLink || needsDemo) {
    try {
      await store.getState().loadDemoSet();
    } catch (err) {
      store.setState({ recipeNotice: { kind: 'error', text: (err as Error).message } });
    }
  }
  // From now on the link follows the recipe (replaceState: no history entry per slider move). Writing
  // the address costs the browser a task of its own, so it waits until the recipe has been still for
  // LINK_SYNC_MS (a slider drag writes it once, when it ends); leaving the page writes it at once.
  let lastYaml = '';
  let pending: ReturnType<typeof setTimeout> | null = null;
  const syncLink = () => {
    if (pending !== null) clearTimeout(pending);
    pending = null;
    const yaml = recipeToYaml(store.getState().recipe);
    if (yaml === lastYaml) return;
    lastYaml = yaml;
    history.replaceState(null, '', encodeRecipeHash(yaml));
  };
  syncLink();
  store.subscribe((s, prev) => {
    if (s.recipe === prev.recipe) return;
    if (pending !== null) clearTimeout(pending);
    pending = setTimeout(syncLink, LINK_SYNC_MS);
  });
  window.addEventListener('pagehide', () => pending !== null && syncLink());
  window.addEventListener('hashchange', () => {
    lastYaml = '';
    importFromLink();
  });
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <StoreProvider store={store}>
      <App canPickFolder={typeof window.showDirectoryPicker === 'function'} download={download} analysisRunner={analysisRunner} scoreEngine={engine} loraEngine={engine} />
    </StoreProvider>
  </StrictMode>,
);
void start();
